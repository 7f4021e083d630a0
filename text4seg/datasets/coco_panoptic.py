"""COCO panoptic and COCO instances readers: one :class:`PanopticSample` / :class:`InstanceSample` per image.

Layout under the data root (``coco/`` or the root itself)::

    coco/annotations/panoptic_{train,val}2017.json     annotations[] = {image_id, file_name, segments_info[]}
    coco/panoptic_{train,val}2017/<12 digits>.png       segment id = R + 256·G + 256²·B, 0 = void
    coco/annotations/instances_{train,val}2017.json     COCO instances (polygons / RLE)
    coco/{train,val}2017/<12 digits>.jpg                images (never opened)

Categories keep their COCO ids; ``class_name`` turns a COCO panoptic name into a prompt word (``"wall-other-merged"``
-> ``"wall"``, ``"playingfield"`` kept, ``"-"`` -> space) while names stay unique. Masks decode on demand.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from text4seg.datasets.coco_masks import SkipLog, read_json, segmentation_to_mask, skip_or_raise

__all__ = [
    "PanopticCategory",
    "PanopticSegment",
    "PanopticSample",
    "InstanceSample",
    "class_name",
    "read_coco_panoptic",
    "count_coco_panoptic",
    "read_coco_instances",
    "panoptic_categories",
    "load_panoptic_png",
    "instances_path",
]

_LAYOUT = ("COCO panoptic layout: coco/annotations/panoptic_<split>2017.json + coco/panoptic_<split>2017/*.png "
           "+ coco/<split>2017/*.jpg")


@dataclass(frozen=True)
class PanopticCategory:
    """A COCO panoptic category: ``id``, COCO ``name``, prompt ``label`` (unique), ``isthing``."""

    id: int
    name: str
    label: str
    isthing: bool


@dataclass(frozen=True)
class PanopticSegment:
    """One entry of ``segments_info``: id in the PNG, category, crowd flag, area (pixels), bbox [x, y, w, h]."""

    id: int
    category_id: int
    iscrowd: bool
    area: int
    bbox: tuple[float, float, float, float] | None = None


@dataclass
class PanopticSample:
    """One image of a panoptic split.

    Attributes:
        id: ``"coco_panoptic_<split>_<image_id>"``.
        image_id: COCO image id.
        image: image path relative to the data root.
        height, width: from the PNG header.
        segments: its ``segments_info``.
        categories: category id -> :class:`PanopticCategory` (shared by all samples).
        png: the panoptic PNG.
    """

    id: str
    image_id: int
    image: str
    height: int
    width: int
    segments: list[PanopticSegment]
    categories: dict[int, PanopticCategory]
    png: Path

    def id_map(self) -> np.ndarray:
        """(H, W) int64 segment ids decoded from the PNG (0 = void)."""
        return load_panoptic_png(self.png)

    def segment_dicts(self) -> list[dict]:
        """``segments_info`` as plain dicts (for :func:`text4seg.panoptic_metrics.panoptic_image_stats`)."""
        return [{"id": s.id, "category_id": s.category_id, "iscrowd": int(s.iscrowd), "area": s.area}
                for s in self.segments]


@dataclass
class InstanceSample:
    """One image of a COCO instances split: its annotations, decoded on demand.

    Attributes:
        annotations: the image's raw COCO annotations (``id``, ``category_id``, ``segmentation``, ``iscrowd``).
        categories: category id -> name.
    """

    id: str
    image_id: int
    image: str
    height: int
    width: int
    annotations: list[dict]
    categories: dict[int, str] = field(default_factory=dict)

    def masks(self) -> list[np.ndarray]:
        """One (H, W) bool mask per annotation, in order."""
        return [segmentation_to_mask(a["segmentation"], self.height, self.width) for a in self.annotations]


def load_panoptic_png(path: str | os.PathLike) -> np.ndarray:
    """Segment ids of a COCO panoptic PNG: R + 256·G + 256²·B as (H, W) int64.

    Raises:
        ValueError: unreadable file or not an RGB image.
    """
    try:
        with Image.open(path) as image:
            if image.mode != "RGB":
                raise ValueError(f"{path}: panoptic PNG mode {image.mode!r}; expected RGB (id = R + 256G + 256^2 B)")
            rgb = np.asarray(image).astype(np.int64)
    except OSError as err:
        raise ValueError(f"{path}: unreadable panoptic PNG ({err})") from err
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def class_name(name: str) -> str:
    """Prompt word of a COCO panoptic category name: ``-merged``/``-other`` suffixes dropped, ``-`` -> space."""
    parts = [p for p in str(name).split("-") if p not in ("merged", "other")]
    return " ".join(" ".join(parts).split()) or str(name)


def _base(root: Path) -> Path:
    return root / "coco" if (root / "coco" / "annotations").is_dir() else root


def _year(split: str) -> str:
    return split if split.endswith("2017") else f"{split}2017"


def _load_json(path: Path, what: str) -> dict:
    return read_json(path, what, _LAYOUT)


def panoptic_categories(data: dict, source: str | os.PathLike = "panoptic JSON") -> dict[int, PanopticCategory]:
    """Category id -> :class:`PanopticCategory` of a panoptic JSON's ``categories`` (labels made unique: a
    collision keeps the COCO name with ``-`` as space)."""
    raw = data.get("categories")
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{source}: no 'categories' list")
    out: dict[int, PanopticCategory] = {}
    labels = [class_name(c.get("name", "")) for c in raw]
    for k, cat in enumerate(raw):
        for key in ("id", "name", "isthing"):
            if key not in cat:
                raise ValueError(f"{source}: category #{k} has no {key!r} field")
        label = labels[k]
        if labels.count(label) > 1:
            label = " ".join(str(cat["name"]).replace("-", " ").split())
        out[int(cat["id"])] = PanopticCategory(int(cat["id"]), str(cat["name"]), label, bool(cat["isthing"]))
    if len({c.label for c in out.values()}) != len(out):
        raise ValueError(f"{source}: category names are not unique")
    return out


def _panoptic_json(root: Path, split: str) -> tuple[Path, dict]:
    path = _base(root) / "annotations" / f"panoptic_{_year(split)}.json"
    data = _load_json(path, "panoptic annotations")
    if not isinstance(data.get("annotations"), list):
        raise ValueError(f"{path}: no 'annotations' list")
    return path, data


def _image_order(entry: tuple[int, dict]) -> tuple[int, int]:
    image_id = entry[1].get("image_id")
    return (image_id if isinstance(image_id, int) else -1, entry[0])


def read_coco_panoptic(root: str | os.PathLike, split: str = "val", strict: bool = False,
                       skips: SkipLog | None = None) -> Iterator[PanopticSample]:
    """Iterate a COCO panoptic split in image-id order (PNG headers read for the size, pixels on demand).

    Args:
        root: data root (holding ``coco/`` or the COCO folders directly).
        split: ``"train"`` / ``"val"`` (or ``"val2017"``).
        strict: raise on a malformed annotation instead of skipping it.
        skips: where skipped images are counted.

    Raises:
        FileNotFoundError: missing JSON (naming the layout).
        ValueError: malformed JSON or categories.
    """
    root = Path(root)
    path, data = _panoptic_json(root, split)
    categories = panoptic_categories(data, path)
    images = {img.get("id"): img for img in data.get("images", []) if isinstance(img, dict)}
    png_dir = path.parent.parent / f"panoptic_{_year(split)}"
    base = _base(root)
    for k, ann in sorted(enumerate(data["annotations"]), key=_image_order):
        sample_id = f"coco_panoptic_{split}_{ann.get('image_id')}"
        problem, segments = None, []
        if not {"image_id", "file_name", "segments_info"} <= set(ann):
            problem = "annotation without image_id, file_name or segments_info"
        else:
            for s in ann["segments_info"]:
                if not isinstance(s, dict) or "id" not in s or int(s.get("category_id", -1)) not in categories:
                    problem = "segment without id or with an unknown category_id"
                    break
                bbox = s.get("bbox")
                segments.append(PanopticSegment(int(s["id"]), int(s["category_id"]), bool(s.get("iscrowd", 0)),
                                                int(s.get("area", 0)), tuple(bbox) if bbox else None))
        png = png_dir / str(ann.get("file_name", ""))
        if problem is None and not png.is_file():
            problem = f"panoptic PNG {png} not found"
        if problem is None:
            try:
                with Image.open(png) as image:
                    width, height = image.size
            except OSError as err:
                problem = f"unreadable panoptic PNG ({err})"
        if problem is not None:
            skip_or_raise(problem, f"{sample_id} (annotation #{k})", str(path), strict, skips)
            continue
        image_info = images.get(ann["image_id"], {})
        file_name = image_info.get("file_name") or f"{Path(ann['file_name']).stem}.jpg"
        image_path = base / _year(split) / file_name
        yield PanopticSample(
            id=sample_id, image_id=int(ann["image_id"]), image=image_path.relative_to(root).as_posix(),
            height=int(height), width=int(width), segments=segments, categories=categories, png=png,
        )


def count_coco_panoptic(root: str | os.PathLike, split: str = "val", **_: object) -> int:
    """Number of annotated images of a panoptic split."""
    return len(_panoptic_json(Path(root), split)[1]["annotations"])


def instances_path(root: str | os.PathLike, split: str = "val") -> Path:
    """``<root>[/coco]/annotations/instances_<split>2017.json``."""
    return _base(Path(root)) / "annotations" / f"instances_{_year(split)}.json"


def read_coco_instances(root: str | os.PathLike, split: str = "val") -> Iterator[InstanceSample]:
    """Iterate a COCO instances split (``instances_<split>2017.json``) by image id, with its annotations."""
    root = Path(root)
    path = instances_path(root, split)
    data = _load_json(path, "instances annotations")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{path}: expected a COCO instances object with a {key!r} list")
    categories = {int(c["id"]): str(c["name"]) for c in data["categories"]}
    by_image: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        by_image.setdefault(ann.get("image_id"), []).append(ann)
    base = _base(root)
    for image in sorted(data["images"], key=lambda i: i["id"]):
        for key in ("id", "file_name", "height", "width"):
            if key not in image:
                raise ValueError(f"{path}: image {image.get('id')!r} has no {key!r} field")
        yield InstanceSample(
            id=f"coco_instances_{split}_{image['id']}", image_id=int(image["id"]),
            image=(base / _year(split) / image["file_name"]).relative_to(root).as_posix(),
            height=int(image["height"]), width=int(image["width"]),
            annotations=by_image.get(image["id"], []), categories=categories,
        )
