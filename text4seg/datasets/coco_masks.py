"""COCO-style segmentations (polygons, compressed or uncompressed RLE) → boolean masks, skip bookkeeping, and
the readers' one JSON loader (:func:`read_json`).

Parts of a multi-part segmentation are merged as a union (``pycocotools.mask.merge``), so overlapping parts
never wrap around the way a uint8 sum would, and polygons are clipped to the image.
"""

from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "AnnotationError",
    "SkipLog",
    "read_json",
    "skip_or_raise",
    "decode_rle",
    "encode_rle",
    "segmentation_to_mask",
    "segmentation_to_rle",
    "union_masks",
]


def read_json(path: str | os.PathLike, what: str, layout: str, kind: type = dict) -> object:
    """An annotation file's JSON, of type ``kind`` (``dict`` or ``list``).

    Raises:
        FileNotFoundError: ``path`` is missing (the message names ``what`` and the expected ``layout``).
        ValueError: not valid JSON, or not a ``kind`` (the message names the file).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} file {path} not found ({layout})")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except ValueError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, kind):
        raise ValueError(f"{path}: expected a JSON {'list' if kind is list else 'object'} ({what})")
    return data


class AnnotationError(ValueError):
    """A malformed annotation (raised in strict mode; otherwise the annotation is skipped and counted)."""


@dataclass
class SkipLog:
    """Counts of annotations a reader skipped, by reason, with the first few offending ids per reason.

    Readers take ``strict`` and ``skips``: in strict mode a malformed annotation raises
    :class:`AnnotationError` naming its id; otherwise it is recorded here and reading goes on.
    """

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    max_examples: int = 3

    def add(self, reason: str, item_id: str) -> None:
        """Record one skipped annotation ``item_id`` for ``reason``."""
        self.counts[reason] += 1
        kept = self.examples.setdefault(reason, [])
        if len(kept) < self.max_examples:
            kept.append(str(item_id))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        """``"3 (empty polygon: 2, bad rle: 1)"`` or ``"0"``."""
        if not self.counts:
            return "0"
        parts = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.counts.items()))
        return f"{self.total} ({parts})"


def skip_or_raise(reason: str, item_id: str, source: str, strict: bool, skips: SkipLog | None) -> None:
    """Raise :class:`AnnotationError` in strict mode, else record the skip in ``skips`` (if given)."""
    if strict:
        raise AnnotationError(f"{source}: annotation {item_id}: {reason}")
    if skips is not None:
        skips.add(reason, item_id)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def segmentation_to_rle(segmentation: object, height: int, width: int) -> dict:
    """Convert one COCO segmentation to a single compressed RLE (union of its parts).

    Args:
        segmentation: a list of polygons ``[[x0, y0, x1, y1, ...], ...]`` (pixel coordinates, any number of parts),
            a list of RLE dicts, or one RLE dict ``{"size": [h, w], "counts": str | bytes | list[int]}``.
        height, width: image size; polygons are clipped to it, RLE sizes must match it.

    Returns:
        A compressed RLE dict (``counts`` bytes) of size ``(height, width)``.

    Raises:
        ValueError: malformed segmentation (the message says what is wrong).
    """
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, dict):
        parts: Sequence = [segmentation]
    elif isinstance(segmentation, (list, tuple)):
        parts = segmentation
    else:
        raise ValueError(f"segmentation must be a list or an RLE dict, got {type(segmentation).__name__}")
    if not parts:
        raise ValueError("empty segmentation")
    rles = []
    for part in parts:
        if isinstance(part, dict):
            rles.append(_rle_part(part, height, width, mask_utils))
        elif isinstance(part, (list, tuple)):
            if len(part) < 6 or len(part) % 2 or not all(_is_number(v) for v in part):
                raise ValueError(
                    f"polygon needs an even number (>= 6) of coordinates, got {len(part)} values"
                )
            # A list of exactly one polygon is passed on its own: pycocotools reads a 4-value list as a box.
            rles.extend(mask_utils.frPyObjects([[float(v) for v in part]], height, width))
        else:
            raise ValueError(
                f"segmentation part must be a polygon list or an RLE dict, got {type(part).__name__}"
            )
    return rles[0] if len(rles) == 1 else mask_utils.merge(rles, intersect=False)


def _rle_part(part: dict, height: int, width: int, mask_utils) -> dict:
    size, counts = part.get("size"), part.get("counts")
    if not isinstance(size, (list, tuple)) or len(size) != 2 or counts is None:
        raise ValueError("RLE needs 'size' [h, w] and 'counts'")
    if [int(size[0]), int(size[1])] != [height, width]:
        raise ValueError(f"RLE size {list(size)} does not match the image size [{height}, {width}]")
    if isinstance(counts, list):  # uncompressed RLE
        if not all(_is_number(v) and v >= 0 for v in counts) or sum(counts) != height * width:
            raise ValueError(f"uncompressed RLE counts must be >= 0 and sum to {height * width}")
        return mask_utils.frPyObjects(
            {"size": [height, width], "counts": [int(v) for v in counts]}, height, width
        )
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    if not isinstance(counts, bytes):
        raise ValueError(f"RLE counts must be a string or a list, got {type(counts).__name__}")
    rle = {"size": [height, width], "counts": counts}
    try:
        total = int(mask_utils.area(rle))
    except Exception as err:  # pycocotools raises plain Exceptions on corrupt strings
        raise ValueError(f"corrupt RLE counts ({err})") from err
    if total > height * width:
        raise ValueError("corrupt RLE counts (area larger than the image)")
    return rle


def decode_rle(rle: dict) -> np.ndarray:
    """Decode one compressed RLE to a ``(h, w)`` bool mask."""
    from pycocotools import mask as mask_utils

    with warnings.catch_warnings():
        # pycocotools under numpy 2 warns about its own __array__ on every decode.
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(rle).astype(bool)


def encode_rle(mask: np.ndarray) -> dict:
    """COCO RLE of an (H, W) bool mask, JSON-ready: ``{"size": [H, W], "counts": str}`` (pycocotools,
    column-major; :func:`decode_rle` reads it back)."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    counts = rle["counts"]
    return {"size": [int(v) for v in rle["size"]],
            "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def segmentation_to_mask(segmentation: object, height: int, width: int) -> np.ndarray:
    """Decode one COCO segmentation (see :func:`segmentation_to_rle`) to a ``(height, width)`` bool mask."""
    return decode_rle(segmentation_to_rle(segmentation, height, width))


def union_masks(segmentations: Sequence[object], height: int, width: int) -> np.ndarray:
    """Union of several segmentations as a ``(height, width)`` bool mask (all False when empty)."""
    from pycocotools import mask as mask_utils

    if not segmentations:
        return np.zeros((height, width), dtype=bool)
    rles = [segmentation_to_rle(s, height, width) for s in segmentations]
    return decode_rle(rles[0] if len(rles) == 1 else mask_utils.merge(rles, intersect=False))
