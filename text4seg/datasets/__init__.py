"""Dataset readers: datasets as downloaded → :class:`ReferringSample` / :class:`SemanticSample` iterators.

Readers are lazy (nothing is decoded before it is needed; image sizes come from the annotations) and use only
numpy, PIL and pycocotools. Dispatch by name::

    for sample in read_referring("refcoco", "playground/data", "val", split_by="unc"):
        ...
    for sample in read_semantic("ade20k", "playground/data", "validation"):
        ...
    for sample in read_semantic("pascal_part", "playground/data", "val"):  # PartSample: part class ids
        ...
    for sample in read_video("mevis", "playground/data", "valid_u"):
        masks = sample.masks()  # decoded only now: (frames, H, W) bool

Each reader module also exposes a cheap ``count_*`` function; :func:`count_referring` / :func:`count_semantic`
dispatch to them (:func:`count_video` for videos).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator

from text4seg.datasets.samples import ReferringSample, SemanticSample
from text4seg.datasets.video_samples import VideoSample

__all__ = [
    "ReferringSample",
    "SemanticSample",
    "VideoSample",
    "REFERRING_READERS",
    "SEMANTIC_READERS",
    "PART_READERS",
    "VIDEO_READERS",
    "read_referring",
    "read_semantic",
    "count_referring",
    "count_semantic",
    "read_video",
    "count_video",
]

# name -> (module, reader function, count function, fixed keyword options)
REFERRING_READERS: dict[str, tuple[str, str, str, dict]] = {
    "refcoco": ("text4seg.datasets.refer", "read_refer", "count_refer", {"dataset": "refcoco"}),
    "refcoco+": ("text4seg.datasets.refer", "read_refer", "count_refer", {"dataset": "refcoco+"}),
    "refcocog": ("text4seg.datasets.refer", "read_refer", "count_refer", {"dataset": "refcocog"}),
    "refclef": ("text4seg.datasets.refer", "read_refer", "count_refer", {"dataset": "refclef"}),
    "grefcoco": ("text4seg.datasets.grefer", "read_grefcoco", "count_grefcoco", {}),
    "reasonseg": ("text4seg.datasets.reasonseg", "read_reasonseg", "count_reasonseg", {}),
    "synthetic": ("text4seg.datasets.synthetic", "read_synthetic", "count_synthetic", {}),
}
SEMANTIC_READERS: dict[str, tuple[str, str, str, dict]] = {
    name: ("text4seg.datasets.semantic", "read_semantic_dataset", "count_semantic_dataset", {"dataset": name})
    for name in ("ade20k", "pascal_context", "pascal_voc", "cocostuff")
}
SEMANTIC_READERS.update({
    name: ("text4seg.datasets.large_vocab", "read_large_vocab", "count_large_vocab", {"dataset": name})
    for name in ("ade847", "pc459")
})
# Part datasets (PACO-LVIS, Pascal-Part) yield PartSample: a SemanticSample-like record over the part classes,
# with the classes each image is asked for (prompt_classes) and per-image answer synonyms.
PART_READERS: dict[str, tuple[str, str, str, dict]] = {
    name: ("text4seg.datasets.parts", "read_parts", "count_parts", {"dataset": name})
    for name in ("paco_lvis", "pascal_part")
}
SEMANTIC_READERS.update(PART_READERS)

# Video readers: one sample per referring expression; folders ref-youtube-vos/, ref-davis/, mevis/, ReVOS/,
# synthetic-video/ under the data root.
VIDEO_READERS: dict[str, tuple[str, str, str, dict]] = {
    "ref-youtube-vos": ("text4seg.datasets.ytvos", "read_ytvos", "count_ytvos", {"dataset": "ref-youtube-vos"}),
    "ref-davis17": ("text4seg.datasets.ytvos", "read_ytvos", "count_ytvos", {"dataset": "ref-davis17"}),
    "mevis": ("text4seg.datasets.mevis", "read_mevis", "count_mevis", {"dataset": "mevis"}),
    "revos": ("text4seg.datasets.revos", "read_revos", "count_revos", {}),
    "synthetic-video": ("text4seg.datasets.mevis", "read_mevis", "count_mevis", {"dataset": "synthetic-video"}),
}


def _resolve(registry: dict, kind: str, name: str, attr: int) -> tuple[Callable, dict]:
    if name not in registry:
        raise ValueError(f"unknown {kind} dataset {name!r}; known: {', '.join(sorted(registry))}")
    entry = registry[name]
    return getattr(importlib.import_module(entry[0]), entry[attr]), entry[3]


def read_referring(name: str, root: str | os.PathLike, split: str, **options) -> Iterator[ReferringSample]:
    """Iterate the referring samples of dataset ``name`` (see ``REFERRING_READERS``) lazily.

    Args:
        name: dataset name, e.g. ``"refcoco"``, ``"grefcoco"``, ``"reasonseg"``, ``"synthetic"``.
        root: data root (the reference layout, e.g. ``playground/data``).
        split: split name as the dataset spells it (``"train"``, ``"val"``, ``"testA"``, ...).
        **options: reader options (e.g. ``split_by="unc"`` for the RefCOCO family).
    """
    reader, fixed = _resolve(REFERRING_READERS, "referring", name, 1)
    return reader(root, split, **fixed, **options)


def read_semantic(name: str, root: str | os.PathLike, split: str, **options) -> Iterator[SemanticSample]:
    """Iterate the semantic samples of dataset ``name`` (see ``SEMANTIC_READERS``) lazily."""
    reader, fixed = _resolve(SEMANTIC_READERS, "semantic", name, 1)
    return reader(root, split, **fixed, **options)


def count_referring(name: str, root: str | os.PathLike, split: str, **options) -> int:
    """Number of samples :func:`read_referring` would yield, computed without decoding masks."""
    counter, fixed = _resolve(REFERRING_READERS, "referring", name, 2)
    return counter(root, split, **fixed, **options)


def count_semantic(name: str, root: str | os.PathLike, split: str, **options) -> int:
    """Number of samples :func:`read_semantic` would yield, computed without decoding label maps."""
    counter, fixed = _resolve(SEMANTIC_READERS, "semantic", name, 2)
    return counter(root, split, **fixed, **options)


def read_video(name: str, root: str | os.PathLike, split: str, **options) -> Iterator[VideoSample]:
    """Iterate the expressions of video dataset ``name`` (see ``VIDEO_READERS``); masks decode on demand.

    Args:
        name: ``"ref-youtube-vos"``, ``"ref-davis17"``, ``"mevis"``, ``"revos"`` or ``"synthetic-video"``.
        root: data root holding the benchmark's folder.
        split: split name as the benchmark spells it (``"train"``, ``"valid"``, ``"valid_u"``, ...).
        **options: ``skip_bad=True`` (with ``skips=SkipLog()``) skips and counts bad videos/expressions;
            ``check_masks=True`` decodes every mask while reading.
    """
    reader, fixed = _resolve(VIDEO_READERS, "video", name, 1)
    return reader(root, split, **fixed, **options)


def count_video(name: str, root: str | os.PathLike, split: str, **options) -> int:
    """Number of expressions :func:`read_video` would yield at most, from the meta files alone."""
    counter, fixed = _resolve(VIDEO_READERS, "video", name, 2)
    return counter(root, split, **fixed, **options)
