"""Semantic segmentation datasets: ADE20K (150), PASCAL-Context (59), PASCAL VOC (20), COCO-Stuff (171).

Every reader numbers classes the same way: id 0 is ``"others"`` (the dataset's background / unlabelled value
folded into it), ids 1..K are the classes of :mod:`text4seg.datasets.class_names`, and 255 marks pixels to
ignore (VOC object boundaries, values outside the class range). Accepted layouts under the data root (the first
that exists is used):

==============  ======================================================================  =====================
dataset         folders                                                                 raw values -> ids
==============  ======================================================================  =====================
ade20k          ``ADEChallengeData2016`` | ``semantic_seg/ADEChallengeData2016`` |     0 -> others, k -> k
                ``semantic_seg/ADE20K`` | ``ADE20K``: ``images/<split>/*.jpg``,
                ``annotations/<split>/*.png`` (or flat ``images/``, ``annotations/``)
pascal_context  ``PC59`` | ``semantic_seg/PC59``: ``JPEGImages``,                        0 -> others, k -> k
                ``SegmentationClassContext``, split list ``pascalcontext_<split>.txt``
                | ``<split>.txt`` | ``ImageSets/SegmentationContext/<split>.txt``
pascal_voc      ``PAS20`` | ``semantic_seg/PAS20`` | ``VOCdevkit/VOC2012``: ``JPEGImages``,  0 -> others, k -> k,
                ``SegmentationClass`` (palette PNGs), split list ``<split>.txt`` |        255 -> ignore
                ``ImageSets/Segmentation/<split>.txt``
cocostuff       ``cocostuff/annotations[/<split>2017]/*_labelTrainIds.png``, images      k -> k + 1,
                ``coco/<split>2017/*.jpg``                                              255 -> others
==============  ======================================================================  =====================

Label maps are decoded from the annotation PNGs; images are never opened (their size is the annotation's).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from text4seg.datasets.class_names import class_names
from text4seg.datasets.coco_masks import SkipLog, skip_or_raise
from text4seg.datasets.samples import SemanticSample

__all__ = [
    "IGNORE_ID",
    "ignore_id",
    "SEMANTIC_DATASETS",
    "read_semantic_dataset",
    "count_semantic_dataset",
    "read_ade20k",
    "read_pascal_context",
    "read_pascal_voc",
    "read_cocostuff",
    "load_label_png",
]

IGNORE_ID = 255


def ignore_id(num_classes: int) -> int:
    """The ignore id of a dataset with ``num_classes`` ids: 255, or 65535 when ids reach 255 (ADE-847, PC-459)."""
    return IGNORE_ID if num_classes <= IGNORE_ID else 65535
SEMANTIC_DATASETS = ("ade20k", "pascal_context", "pascal_voc", "cocostuff")


@dataclass(frozen=True)
class _Entry:
    stem: str
    image: Path
    annotation: Path


def _lut(dataset: str) -> np.ndarray:
    """Raw annotation value (0..65535) -> id."""
    lut = np.full(65536, IGNORE_ID, dtype=np.int64)
    num_classes = len(class_names(dataset)) - 1
    if dataset == "cocostuff":
        lut[:num_classes] = np.arange(1, num_classes + 1)
        lut[255] = 0
    else:
        lut[: num_classes + 1] = np.arange(num_classes + 1)
    return lut


_LUTS: dict[str, np.ndarray] = {}


def load_label_png(path: str | os.PathLike) -> np.ndarray:
    """Read an annotation PNG of class values (``L``, ``P`` palette indices, or 16-bit ``I;16``/``I``).

    Returns:
        ``(H, W)`` int64 raw values.

    Raises:
        ValueError: unreadable file, or a colour (RGB) annotation instead of class values.
    """
    try:
        with Image.open(path) as image:
            if image.mode not in ("L", "P", "I;16", "I", "1"):
                raise ValueError(
                    f"{path}: annotation mode {image.mode!r}; expected class values (L, P or I;16)"
                )
            return np.asarray(image).astype(np.int64)
    except OSError as err:
        raise ValueError(f"{path}: unreadable annotation ({err})") from err


def _first_dir(root: Path, candidates: tuple[str, ...], layout: str) -> Path:
    for candidate in candidates:
        if (root / candidate).is_dir():
            return root / candidate
    tried = ", ".join(str(root / c) for c in candidates)
    raise FileNotFoundError(f"none of {tried} exists ({layout})")


def _ade20k_entries(root: Path, split: str) -> list[_Entry]:
    layout = "ADE20K layout: ADEChallengeData2016/{images,annotations}/{training,validation}"
    base = _first_dir(
        root,
        ("ADEChallengeData2016", "semantic_seg/ADEChallengeData2016", "semantic_seg/ADE20K", "ADE20K"),
        layout,
    )
    folder = {"train": "training", "val": "validation"}.get(split, split)
    images, annotations = base / "images" / folder, base / "annotations" / folder
    if not annotations.is_dir():
        flat = base / "annotations"
        if flat.is_dir() and not any(p.is_dir() for p in flat.iterdir()):
            images, annotations = base / "images", flat  # the reference's flat validation layout
        else:
            raise FileNotFoundError(f"ADE20K annotations folder {annotations} not found ({layout})")
    return [_Entry(p.stem, images / f"{p.stem}.jpg", p) for p in sorted(annotations.glob("*.png"))]


def _read_split_list(base: Path, names: tuple[str, ...], layout: str) -> list[str]:
    for name in names:
        path = base / name
        if path.is_file():
            return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    tried = ", ".join(str(base / n) for n in names)
    raise FileNotFoundError(f"split list not found; tried {tried} ({layout})")


def _pascal_entries(root: Path, split: str, context: bool) -> list[_Entry]:
    if context:
        layout = (
            "PASCAL-Context layout: PC59/{JPEGImages, SegmentationClassContext, pascalcontext_<split>.txt}"
        )
        base = _first_dir(root, ("PC59", "semantic_seg/PC59"), layout)
        annotations = base / "SegmentationClassContext"
        lists = (f"pascalcontext_{split}.txt", f"{split}.txt", f"ImageSets/SegmentationContext/{split}.txt")
    else:
        layout = "PASCAL VOC layout: PAS20/{JPEGImages, SegmentationClass, <split>.txt}"
        base = _first_dir(root, ("PAS20", "semantic_seg/PAS20", "VOCdevkit/VOC2012"), layout)
        annotations = base / "SegmentationClass"
        lists = (f"{split}.txt", f"ImageSets/Segmentation/{split}.txt")
    if not annotations.is_dir():
        raise FileNotFoundError(f"annotation folder {annotations} not found ({layout})")
    stems = _read_split_list(base, lists, layout)
    return [_Entry(s, base / "JPEGImages" / f"{s}.jpg", annotations / f"{s}.png") for s in stems]


def _cocostuff_entries(root: Path, split: str) -> list[_Entry]:
    layout = "COCO-Stuff layout: cocostuff/annotations/*_labelTrainIds.png + coco/<split>2017/*.jpg"
    year_split = split if split.endswith("2017") else f"{split}2017"
    annotations = root / "cocostuff" / "annotations"
    if (annotations / year_split).is_dir():
        annotations = annotations / year_split
    elif not annotations.is_dir():
        raise FileNotFoundError(f"COCO-Stuff annotations folder {annotations} not found ({layout})")
    images = root / "coco" / year_split
    suffix = "_labelTrainIds"
    return [
        _Entry(p.stem[: -len(suffix)], images / f"{p.stem[: -len(suffix)]}.jpg", p)
        for p in sorted(annotations.glob(f"*{suffix}.png"))
    ]


def _entries(dataset: str, root: Path, split: str) -> list[_Entry]:
    if dataset == "ade20k":
        return _ade20k_entries(root, split)
    if dataset == "pascal_context":
        return _pascal_entries(root, split, context=True)
    if dataset == "pascal_voc":
        return _pascal_entries(root, split, context=False)
    if dataset == "cocostuff":
        return _cocostuff_entries(root, split)
    raise ValueError(f"unknown semantic dataset {dataset!r}; known: {', '.join(SEMANTIC_DATASETS)}")


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def read_semantic_dataset(
    root: str | os.PathLike,
    split: str,
    dataset: str,
    strict: bool = False,
    skips: SkipLog | None = None,
) -> Iterator[SemanticSample]:
    """Iterate a semantic dataset split lazily, one sample per annotated image (file-name order or the split
    list's order).

    Args:
        root: data root.
        split: ade20k ``"training"``/``"validation"`` (``"train"``/``"val"`` accepted); PASCAL: the split list
            name (``"train"``, ``"val"``); cocostuff ``"train2017"``/``"val2017"`` (``"train"``/``"val"``).
        dataset: ``"ade20k"``, ``"pascal_context"``, ``"pascal_voc"`` or ``"cocostuff"``.
        strict: raise on an unreadable annotation instead of skipping it.
        skips: where skipped samples are counted by reason.

    Yields:
        :class:`SemanticSample` with ``(H, W)`` int64 ``label_map`` (0 others, 1..K classes, 255 ignore) and the
        dataset's ``class_names`` (index == id).

    Raises:
        FileNotFoundError: a missing folder or split list (naming the expected layout) or a missing image.
    """
    root = Path(root)
    names = class_names(dataset)
    if dataset not in _LUTS:
        _LUTS[dataset] = _lut(dataset)
    lut = _LUTS[dataset]
    for entry in _entries(dataset, root, split):
        sample_id = f"{dataset}_{split}_{entry.stem}"
        if not entry.image.is_file():
            raise FileNotFoundError(f"image {entry.image} of annotation {entry.annotation} not found")
        try:
            if not entry.annotation.is_file():
                raise ValueError(f"annotation {entry.annotation} not found")
            raw = load_label_png(entry.annotation)
        except ValueError as err:
            skip_or_raise(str(err), sample_id, str(entry.annotation), strict, skips)
            continue
        label_map = lut[np.clip(raw, 0, 65535)]
        yield SemanticSample(
            id=sample_id,
            image=_relative(entry.image, root),
            height=int(label_map.shape[0]),
            width=int(label_map.shape[1]),
            label_map=label_map,
            class_names=list(names),
        )


def count_semantic_dataset(root: str | os.PathLike, split: str, dataset: str, **_: object) -> int:
    """Number of samples of a split (from the file listing or split list; nothing is decoded)."""
    return len(_entries(dataset, Path(root), split))


def read_ade20k(root: str | os.PathLike, split: str, **options) -> Iterator[SemanticSample]:
    """ADE20K SceneParsing (150 classes); see :func:`read_semantic_dataset`."""
    return read_semantic_dataset(root, split, "ade20k", **options)


def read_pascal_context(root: str | os.PathLike, split: str, **options) -> Iterator[SemanticSample]:
    """PASCAL-Context 59 classes; see :func:`read_semantic_dataset`."""
    return read_semantic_dataset(root, split, "pascal_context", **options)


def read_pascal_voc(root: str | os.PathLike, split: str, **options) -> Iterator[SemanticSample]:
    """PASCAL VOC 2012, 20 classes (255 boundaries ignored); see :func:`read_semantic_dataset`."""
    return read_semantic_dataset(root, split, "pascal_voc", **options)


def read_cocostuff(root: str | os.PathLike, split: str, **options) -> Iterator[SemanticSample]:
    """COCO-Stuff 164k, 171 classes (255 unlabelled -> others); see :func:`read_semantic_dataset`."""
    return read_semantic_dataset(root, split, "cocostuff", **options)
