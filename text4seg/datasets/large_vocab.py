"""Large open vocabularies: ADE20K-847 and PASCAL-Context-459 (detectron2 layouts, uint16 ``.tif`` label maps).

==========  ============================================================================  ==========================
dataset     folders under the data root                                                   raw values -> ids
==========  ============================================================================  ==========================
ade847      ``ADE20K_2021_17_01/images_detectron2/<split>/*.jpg``,                        k -> k + 1, 65535 ignored
            ``ADE20K_2021_17_01/annotations_detectron2/<split>/*.tif``
pc459       ``pascal_ctx_d2/images/<split>/*.jpg``, ``pascal_ctx_d2/annotations_ctx459/``   k -> k + 1, 65535 ignored
            ``<split>/*.tif`` (already label - 1)
==========  ============================================================================  ==========================

``<split>`` is ``training`` / ``validation`` (``train`` / ``val`` accepted). Id 0 is ``"others"`` (no pixel
has it: both sets label every pixel or ignore it) and the ignore id is :data:`LARGE_IGNORE_ID` (65535), since
ids go past 255. The class list is read from ``class_names.txt`` in the dataset folder (one class per line in
train-id order, synonyms comma-separated as in the reference lists: ``"bag, handbag, pocketbook, purse"``); the
library does not ship the 847 / 459 names. Primary names (the first synonym) are not unique in ADE-847 (bag
three times; pot, basket, screen, pier, control panel, pipe, grill, patio twice): a repeated primary name takes
its next synonym in parentheses (``"bag (handbag)"``), or ``"(2)"``, ``"(3)"`` when it has none.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from text4seg.datasets.coco_masks import SkipLog, skip_or_raise
from text4seg.datasets.samples import SemanticSample
from text4seg.descriptors import BACKGROUND, sanitize_label

__all__ = ["LARGE_IGNORE_ID", "LARGE_VOCAB_DATASETS", "read_large_vocab", "count_large_vocab",
           "large_vocab_class_names", "unique_primary_names"]

LARGE_IGNORE_ID = 65535
# dataset -> (base folder, image folder, annotation folder, number of classes)
LARGE_VOCAB_DATASETS: dict[str, tuple[str, str, str, int]] = {
    "ade847": ("ADE20K_2021_17_01", "images_detectron2", "annotations_detectron2", 847),
    "pc459": ("pascal_ctx_d2", "images", "annotations_ctx459", 459),
}
_SPLITS = {"train": "training", "val": "validation"}


def unique_primary_names(entries: list[list[str]]) -> list[str]:
    """The primary name (first synonym) of each class, made unique (see the module docstring)."""
    primary = [entry[0] for entry in entries]
    out: list[str] = []
    seen: dict[str, int] = {}
    for entry, name in zip(entries, primary):
        count = seen.get(name.casefold(), 0)
        seen[name.casefold()] = count + 1
        if primary.count(name) > 1 and count > 0:
            name = f"{name} ({entry[1]})" if len(entry) > 1 else f"{name} ({count + 1})"
        out.append(name)
    if len({n.casefold() for n in out}) != len(out):
        raise ValueError(f"class names are not unique after disambiguation: {out}")
    return out


def large_vocab_class_names(root: str | os.PathLike, dataset: str) -> tuple[list[str], dict[str, str]]:
    """``([others, class 1, ..., class K], synonyms)`` from ``<base>/class_names.txt``.

    Raises:
        FileNotFoundError: no ``class_names.txt`` (the message says what it must hold).
        ValueError: a wrong number of classes or an empty line.
    """
    base_name, _, _, num = _spec(dataset)
    path = Path(root) / base_name / "class_names.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {dataset} needs its {num} class names, one per line in train-id "
                                "order (comma-separated synonyms allowed)")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    entries = []
    for k, line in enumerate(lines):
        names = [sanitize_label(n) for n in line.split(",") if sanitize_label(n)]
        if not names:
            raise ValueError(f"{path}: line {k + 1} is empty (class {k})")
        entries.append(names)
    if len(entries) != num:
        raise ValueError(f"{path}: {len(entries)} classes, {dataset} has {num}")
    primary = unique_primary_names(entries)
    synonyms: dict[str, str] = {}
    taken = {p.casefold() for p in primary}
    for name, entry in zip(primary, entries):
        for alias in entry[1:]:
            if alias.casefold() not in taken:
                synonyms.setdefault(alias, name)
    return [BACKGROUND, *primary], synonyms


def _spec(dataset: str) -> tuple[str, str, str, int]:
    if dataset not in LARGE_VOCAB_DATASETS:
        raise ValueError(f"unknown large-vocabulary dataset {dataset!r}; known: {', '.join(LARGE_VOCAB_DATASETS)}")
    return LARGE_VOCAB_DATASETS[dataset]


def _entries(root: Path, split: str, dataset: str) -> list[tuple[str, Path, Path]]:
    base_name, images, annotations, _ = _spec(dataset)
    folder = _SPLITS.get(split, split)
    ann_dir = root / base_name / annotations / folder
    if not ann_dir.is_dir():
        raise FileNotFoundError(f"{dataset} annotations folder {ann_dir} not found (layout: {base_name}/{annotations}/"
                                f"<training|validation>/*.tif)")
    return [(p.stem, root / base_name / images / folder / f"{p.stem}.jpg", p) for p in sorted(ann_dir.glob("*.tif"))]


def read_large_vocab(root: str | os.PathLike, split: str, dataset: str, strict: bool = False,
                     skips: SkipLog | None = None) -> Iterator[SemanticSample]:
    """Iterate ADE20K-847 / PASCAL-Context-459 lazily (file-name order).

    Yields:
        :class:`SemanticSample` with ``(H, W)`` int64 ``label_map`` (1..K classes, 65535 ignore).

    Raises:
        FileNotFoundError: a missing folder, ``class_names.txt`` or image.
    """
    from text4seg.datasets.semantic import load_label_png

    root = Path(root)
    names, _ = large_vocab_class_names(root, dataset)
    num = len(names) - 1
    for stem, image, annotation in _entries(root, split, dataset):
        sample_id = f"{dataset}_{split}_{stem}"
        if not image.is_file():
            raise FileNotFoundError(f"image {image} of annotation {annotation} not found")
        try:
            raw = load_label_png(annotation)
            bad = (raw != LARGE_IGNORE_ID) & ((raw < 0) | (raw >= num))
            if bad.any():
                raise ValueError(f"{annotation}: value {int(raw[bad][0])} is neither a train id in [0, {num}) nor "
                                 f"{LARGE_IGNORE_ID}")
        except ValueError as err:
            skip_or_raise(str(err), sample_id, str(annotation), strict, skips)
            continue
        label_map = np.where(raw == LARGE_IGNORE_ID, LARGE_IGNORE_ID, raw + 1).astype(np.int64)
        yield SemanticSample(id=sample_id, image=image.relative_to(root).as_posix(), height=int(raw.shape[0]),
                             width=int(raw.shape[1]), label_map=label_map, class_names=list(names))


def count_large_vocab(root: str | os.PathLike, split: str, dataset: str, **_: object) -> int:
    """Number of annotated images of a split."""
    return len(_entries(Path(root), split, dataset))
