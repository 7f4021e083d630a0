"""PACO-LVIS and Pascal-Part readers (COCO-format JSONs of ``obj:part`` categories): one :class:`PartSample` per
annotated image.

===========  =================================================  ===================================================
dataset      annotations under the data root                    image of ``images[].file_name``
===========  =================================================  ===================================================
paco_lvis    ``vlpart/paco_lvis/annotations/``                   ``coco/<file_name>`` (PACO writes ``train2017/...``;
             ``paco_lvis_v1_<split>.json`` (LISA's               its val images are COCO *train2017* images); a bare
             ``vlpart/paco/annotations/`` also read)             name goes to ``coco/train2017/`` as the reference
pascal_part  ``vlpart/pascal_part/<split>.json`` (VLPart's)     ``vlpart/pascal_part/VOCdevkit/VOC2010/JPEGImages/``
                                                                 ``<base name of file_name>`` (the reference's path)
===========  =================================================  ===================================================

Categories: ``"obj:part"`` is a part, a name without ``:`` an object (PACO has 75 objects and 456 parts,
Pascal-Part 93 parts of 14 objects). LVIS disambiguations ``_(...)`` are dropped (``glass_(drink_container)`` ->
``glass``) and underscores kept (``trash_can``), as the reference builders name them; should two categories
end with the same name, they keep their full names. Names are made descriptor-safe
(:func:`text4seg.descriptors.sanitize_label`).

Part classes: id 0 ``"others"``, ids 1..K the part categories in category-id order, named
``"{part} of the {obj}"`` (:func:`part_class_name`); :attr:`PartSample.synonyms` also accepts ``"{obj} {part}"``
and, per image, the bare part name when exactly one object of the image has a part of that name.

Maps (painted on demand from the annotations' RLEs, in annotation order, later over earlier; no pixel is
ignored: both datasets leave everything outside a part unlabelled):

- :attr:`PartSample.label_map`: part class ids of the part annotations; every other pixel (object pixels that
  no part covers included) is 0.
- :meth:`PartSample.category_map`: the reference builders' map: category ids of *every* annotation, objects
  and parts, -1 where none.

Images are yielded in image-id order; images without annotations are not yielded. A malformed image entry or
annotation (missing field, unknown category, bad segmentation, unsafe ``file_name``) is skipped and counted in
``skips`` (the image, or only the annotation), or raises :class:`~text4seg.datasets.coco_masks.AnnotationError`
naming the file and field with ``strict=True``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from text4seg.datasets.coco_masks import SkipLog, decode_rle, read_json, segmentation_to_rle, skip_or_raise
from text4seg.descriptors import BACKGROUND, sanitize_label
from text4seg.paths import safe_relative_id

__all__ = [
    "PART_DATASETS",
    "PartCategory",
    "PartSample",
    "part_annotations_path",
    "part_categories",
    "part_class_name",
    "read_parts",
    "count_parts",
]

PART_DATASETS = ("paco_lvis", "pascal_part")
_PASCAL_IMAGES = "vlpart/pascal_part/VOCdevkit/VOC2010/JPEGImages"


@dataclass(frozen=True)
class PartCategory:
    """One category: dataset ``id``, raw ``name``, ``object`` name, ``part`` name (None for an object category)."""

    id: int
    name: str
    object: str
    part: str | None

    @property
    def label(self) -> str:
        """The class name: ``"{part} of the {obj}"`` for a part, the object name for an object."""
        return self.object if self.part is None else part_class_name(self.object, self.part)


def part_class_name(obj: str, part: str) -> str:
    """``"{part} of the {obj}"``, the part-class name evaluation lists and decodes (``"lid of the trash_can"``)."""
    return f"{part} of the {obj}"


def _safe(name: str) -> str:
    return sanitize_label(name.replace("<image>", " "))


def _short(name: str) -> str:
    return _safe(name.split("_(")[0])


def part_categories(data: dict, source: str | os.PathLike) -> dict[int, PartCategory]:
    """Category id -> :class:`PartCategory` of a COCO-format JSON's ``categories`` (see the module docstring).

    Raises:
        ValueError: no ``categories`` list, a category without ``id``/``name``, a name with more than one ``:``
            or an empty piece, duplicate ids, or no part category at all.
    """
    raw = data.get("categories")
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{source}: no 'categories' list")
    pieces: dict[int, tuple[str, list[str]]] = {}
    for k, cat in enumerate(raw):
        if not isinstance(cat, dict) or not isinstance(cat.get("id"), int) or not isinstance(cat.get("name"), str):
            raise ValueError(f"{source}: categories[{k}] needs an int 'id' and a str 'name'")
        split = cat["name"].strip().split(":")
        if len(split) > 2 or not all(_short(p) for p in split):
            raise ValueError(f"{source}: categories[{k}] name {cat['name']!r}: expected 'object' or 'object:part'")
        if cat["id"] in pieces:
            raise ValueError(f"{source}: categories[{k}]: duplicate id {cat['id']}")
        pieces[cat["id"]] = (cat["name"], split)

    def build(full: set[int]) -> dict[int, PartCategory]:
        out = {}
        for cid, (name, split) in pieces.items():
            names = [_safe(p) if cid in full else _short(p) for p in split]
            out[cid] = PartCategory(cid, name, names[0], names[1] if len(names) == 2 else None)
        return out

    categories = build(set())
    by_label: dict[str, list[int]] = {}
    for cid, cat in categories.items():
        by_label.setdefault(cat.label.casefold(), []).append(cid)
    clashes = {cid for ids in by_label.values() if len(ids) > 1 for cid in ids}
    if clashes:
        categories = build(clashes)
        if len({c.label.casefold() for c in categories.values()}) != len(categories):
            raise ValueError(f"{source}: category names are not unique")
    if not any(c.part is not None for c in categories.values()):
        raise ValueError(f"{source}: no 'object:part' category")
    return categories


@dataclass
class PartSample:
    """One image of a part dataset.

    Attributes:
        id: ``"<dataset>_<split>_<image_id>"``.
        image: image path relative to the data root.
        height, width: from the JSON's image entry.
        class_names: ``["others", part class 1, ..., part class K]`` (shared by all samples of the split).
        categories: category id -> :class:`PartCategory` (shared).
        part_ids: part category id -> part class id in ``1..K`` (shared).
        annotations: ``(category_id, rle)`` per valid annotation, in annotation order (compressed RLEs).
        objects: the image's object names, sorted: those of its object annotations and of its parts' objects.
        prompt_classes: the part classes of those objects, in class-id order (what evaluation asks for).
        synonyms: alias -> class name for decoding answers on this image (see the module docstring).
    """

    id: str
    image: str
    height: int
    width: int
    class_names: list[str]
    categories: dict[int, PartCategory]
    part_ids: dict[int, int]
    annotations: list[tuple[int, dict]]
    objects: list[str] = field(default_factory=list)
    prompt_classes: list[str] = field(default_factory=list)
    synonyms: dict[str, str] = field(default_factory=dict)

    def _paint(self, values: dict[int, int], fill: int) -> np.ndarray:
        out = np.full((self.height, self.width), fill, dtype=np.int64)
        for category_id, rle in self.annotations:
            if category_id in values:
                out[decode_rle(rle)] = values[category_id]
        return out

    @functools.cached_property
    def label_map(self) -> np.ndarray:
        """(H, W) int64 part class ids in ``[0, K]`` (0 = others), decoded at first use."""
        return self._paint(self.part_ids, 0)

    def category_map(self) -> np.ndarray:
        """(H, W) int64 category ids of every annotation (objects and parts), -1 where none."""
        return self._paint({cid: cid for cid in self.categories}, -1)


def part_annotations_path(root: str | os.PathLike, dataset: str, split: str) -> Path:
    """The annotation JSON of ``dataset``/``split`` (see the module docstring)."""
    root = Path(root)
    if dataset == "paco_lvis":
        name = f"paco_lvis_v1_{split}.json"
        path = root / "vlpart" / "paco_lvis" / "annotations" / name
        lisa = root / "vlpart" / "paco" / "annotations" / name
        return lisa if not path.is_file() and lisa.is_file() else path
    if dataset == "pascal_part":
        return root / "vlpart" / "pascal_part" / f"{split}.json"
    raise ValueError(f"unknown part dataset {dataset!r}; known: {', '.join(PART_DATASETS)}")


def _load(root: Path, dataset: str, split: str) -> tuple[Path, dict]:
    path = part_annotations_path(root, dataset, split)
    layout = ("vlpart/paco_lvis/annotations/paco_lvis_v1_<split>.json + coco/<train2017|val2017>/*.jpg"
              if dataset == "paco_lvis" else f"vlpart/pascal_part/<split>.json + {_PASCAL_IMAGES}/*.jpg")
    data = read_json(path, f"{dataset} annotations", f"layout: {layout}")
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{path}: no {key!r} list")
    return path, data


def _image_path(dataset: str, file_name: str, path: Path) -> str:
    safe_relative_id(file_name, "images[].file_name", path)
    if dataset == "pascal_part":
        return f"{_PASCAL_IMAGES}/{PurePosixPath(file_name).name}"
    return f"coco/{file_name}" if "/" in file_name else f"coco/train2017/{file_name}"


def _image_problem(image: object) -> str | None:
    if not isinstance(image, dict):
        return "image entry is not an object"
    for key in ("id", "file_name", "height", "width"):
        if key not in image:
            return f"image entry without {key!r}"
    if not all(isinstance(image[k], int) and not isinstance(image[k], bool) and image[k] > 0
               for k in ("height", "width")):
        return "image 'height'/'width' are not positive ints"
    return None


def _class_table(categories: dict[int, PartCategory]) -> tuple[list[str], dict[int, int], dict[str, str]]:
    parts = [c for _, c in sorted(categories.items()) if c.part is not None]
    names = [BACKGROUND, *(c.label for c in parts)]
    taken = {n.casefold() for n in names}
    synonyms = {}
    for c in parts:
        alias = f"{c.object} {c.part}"
        if alias.casefold() not in taken:
            synonyms[alias] = c.label
    return names, {c.id: k for k, c in enumerate(parts, start=1)}, synonyms


def read_parts(root: str | os.PathLike, split: str, dataset: str, strict: bool = False,
               skips: SkipLog | None = None) -> Iterator[PartSample]:
    """Iterate a PACO-LVIS / Pascal-Part split in image-id order (RLEs built while reading, maps on demand).

    Args:
        root: data root (the reference layout, ``playground/data``).
        split: ``"train"`` / ``"val"`` (PACO also ``"test"``).
        dataset: ``"paco_lvis"`` or ``"pascal_part"``.
        strict: raise on a malformed image entry or annotation instead of skipping it.
        skips: where skipped images and annotations are counted.

    Yields:
        :class:`PartSample`, one per image with at least one valid annotation.

    Raises:
        FileNotFoundError: a missing annotation JSON (naming the layout).
        ValueError: malformed JSON or categories; in strict mode ``AnnotationError`` for a bad entry.
    """
    root = Path(root)
    path, data = _load(root, dataset, split)
    source = str(path)
    categories = part_categories(data, path)
    class_names, part_ids, dataset_synonyms = _class_table(categories)
    parts_of: dict[str, list[PartCategory]] = {}
    for _, cat in sorted(categories.items()):
        if cat.part is not None:
            parts_of.setdefault(cat.object, []).append(cat)
    by_image: dict[object, list[tuple[int, dict]]] = {}
    for k, ann in enumerate(data["annotations"]):
        image_id = ann.get("image_id") if isinstance(ann, dict) else None
        by_image.setdefault(image_id, []).append((k, ann))
    images = [img for img in data["images"] if isinstance(img, dict) and isinstance(img.get("id"), int)]
    for k, image in enumerate(data["images"]):
        if not isinstance(image, dict) or not isinstance(image.get("id"), int):
            skip_or_raise("image entry without an int 'id'", f"images[{k}]", source, strict, skips)
    for image in sorted(images, key=lambda i: i["id"]):
        sample_id = f"{dataset}_{split}_{image['id']}"
        problem = _image_problem(image)
        if problem is None:
            try:
                image_path = _image_path(dataset, image["file_name"], path)
            except ValueError as err:
                problem = str(err).removeprefix(f"{source}: ")
        if problem is not None:
            skip_or_raise(problem, sample_id, source, strict, skips)
            continue
        height, width = image["height"], image["width"]
        annotations = []
        for k, ann in by_image.get(image["id"], []):
            where = f"{sample_id} (annotations[{k}])"
            category_id = ann.get("category_id")
            if category_id not in categories:
                skip_or_raise(f"unknown category_id {category_id!r}", where, source, strict, skips)
                continue
            try:
                rle = segmentation_to_rle(ann.get("segmentation"), height, width)
            except ValueError as err:
                skip_or_raise(f"bad segmentation ({err})", where, source, strict, skips)
                continue
            annotations.append((int(category_id), rle))
        if not annotations:
            continue
        objects = sorted({categories[c].object for c, _ in annotations})
        prompt = [cat for obj in objects for cat in parts_of.get(obj, [])]
        prompt.sort(key=lambda c: part_ids[c.id])
        synonyms = dict(dataset_synonyms)
        bare: dict[str, list[PartCategory]] = {}
        for cat in prompt:
            bare.setdefault(cat.part.casefold(), []).append(cat)
        for cats in bare.values():
            if len(cats) == 1 and cats[0].part.casefold() not in {n.casefold() for n in class_names}:
                synonyms.setdefault(cats[0].part, cats[0].label)
        yield PartSample(
            id=sample_id, image=image_path, height=height, width=width, class_names=class_names,
            categories=categories, part_ids=part_ids, annotations=annotations, objects=objects,
            prompt_classes=[c.label for c in prompt], synonyms=synonyms,
        )


def count_parts(root: str | os.PathLike, split: str, dataset: str, **_: object) -> int:
    """Number of images with at least one annotation (what :func:`read_parts` yields at most)."""
    _, data = _load(Path(root), dataset, split)
    with_annotations = {a.get("image_id") for a in data["annotations"] if isinstance(a, dict)}
    return sum(isinstance(i, dict) and i.get("id") in with_annotations for i in data["images"])
