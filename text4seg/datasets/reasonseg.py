"""ReasonSeg (reasoning segmentation: implicit queries such as "what can be used to cut the bread?").

Layout under the data root::

    reason_seg/ReasonSeg/<split>/<name>.jpg
    reason_seg/ReasonSeg/<split>/<name>.json   {"text": [query, ...], "is_sentence": bool,
                                                "shapes": [{"label": "target"|"ignore"|"flag",
                                                            "points": [[x, y], ...]}, ...]}

Masks follow the ReasonSeg/LISA convention: ``flag`` polygons are dropped; the others are painted from the
largest to the smallest (so a small polygon inside a large one wins), ``ignore`` polygons as pixels excluded
from scoring, the rest as target. Polygon vertices are truncated to integer pixels and filled together with
their one-pixel outline. The image size is read from the JSON (``imageHeight``/``imageWidth``) when present,
else from the image header (EXIF orientation applied); the pixels are never decoded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from text4seg.datasets.coco_masks import SkipLog, skip_or_raise
from text4seg.datasets.samples import ReferringSample
from text4seg.images import image_size

__all__ = ["read_reasonseg", "count_reasonseg", "reasonseg_dir", "polygon_label_map"]

_LAYOUT = "ReasonSeg layout: <root>/reason_seg/ReasonSeg/<split>/<name>.jpg + <name>.json"
_TARGET, _IGNORE = 1, 255


def reasonseg_dir(root: str | os.PathLike, split: str) -> Path:
    """``<root>/reason_seg/ReasonSeg/<split>``."""
    return Path(root) / "reason_seg" / "ReasonSeg" / split


def _split_images(root: str | os.PathLike, split: str) -> list[Path]:
    directory = reasonseg_dir(root, split)
    if not directory.is_dir():
        raise FileNotFoundError(f"ReasonSeg split folder {directory} not found ({_LAYOUT})")
    return sorted(directory.glob("*.jpg"))


def _polygon_points(shape: dict) -> list[tuple[int, int]]:
    points = shape.get("points")
    if not isinstance(points, list) or len(points) < 3:
        raise ValueError(f"polygon {shape.get('label')!r} needs >= 3 points")
    out = []
    for point in points:
        if not isinstance(point, (list, tuple)) or len(point) != 2:
            raise ValueError(f"polygon {shape.get('label')!r}: point {point!r} is not [x, y]")
        out.append((int(point[0]), int(point[1])))  # truncation, as np.int32 in the reference
    return out


def polygon_label_map(shapes: list, height: int, width: int) -> np.ndarray:
    """Paint ReasonSeg polygons into a ``(height, width)`` uint8 map: 0 background, 1 target, 255 ignore.

    Args:
        shapes: the JSON ``shapes`` list (``label``, ``points``).
        height, width: image size.

    Raises:
        ValueError: a shape that is not a polygon of >= 3 ``[x, y]`` points.
    """
    painted = []
    for shape in shapes:
        if not isinstance(shape, dict) or not isinstance(shape.get("label"), str):
            raise ValueError(f"shape {shape!r} has no string 'label'")
        label = shape["label"].lower()
        if label == "flag":  # deprecated annotations
            continue
        points = _polygon_points(shape)
        single = Image.new("L", (width, height), 0)
        ImageDraw.Draw(single).polygon(points, fill=1, outline=1)
        area = int(np.asarray(single, dtype=np.uint8).sum())
        painted.append((area, _IGNORE if "ignore" in label else _TARGET, points))
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    # Largest first, stable for equal areas: smaller polygons end up on top.
    for _, value, points in sorted(painted, key=lambda item: -item[0]):
        draw.polygon(points, fill=value, outline=value)
    return np.asarray(canvas, dtype=np.uint8)


class _BadAnnotation(ValueError):
    """A malformed annotation JSON (skipped and counted, or raised in strict mode)."""


def _parse_annotation(json_path: Path) -> tuple[dict, list[str], list]:
    if not json_path.is_file():
        raise _BadAnnotation("annotation JSON missing")
    try:
        anno = json.loads(json_path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise _BadAnnotation(f"not valid JSON ({err})") from err
    if not isinstance(anno, dict):
        raise _BadAnnotation("expected a JSON object")
    texts = anno.get("text")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list):
        raise _BadAnnotation("'text' must be a list of queries")
    texts = [t.strip() for t in texts if isinstance(t, str) and t.strip()]
    if not texts:
        raise _BadAnnotation("no query text")
    shapes = anno.get("shapes")
    if not isinstance(shapes, list):
        raise _BadAnnotation("'shapes' must be a list")
    return anno, texts, shapes


def read_reasonseg(
    root: str | os.PathLike,
    split: str,
    strict: bool = False,
    skips: SkipLog | None = None,
) -> Iterator[ReferringSample]:
    """Iterate a ReasonSeg split lazily (one sample per image, sorted by file name).

    Args:
        root: data root holding ``reason_seg/``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        strict: raise on a malformed JSON instead of skipping the image.
        skips: where skipped images are counted by reason.

    Yields:
        :class:`ReferringSample` with every query in ``expressions``, the target ``mask`` and the ``ignore``
        mask (both ``(height, width)`` bool) and ``is_sentence``.
    """
    for image_path in _split_images(root, split):
        json_path = image_path.with_suffix(".json")
        sample_id = f"reasonseg_{split}_{image_path.stem}"
        try:
            anno, texts, shapes = _parse_annotation(json_path)
            height, width = anno.get("imageHeight"), anno.get("imageWidth")
            if not (isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0):
                # Header only; an unreadable image is not an annotation problem: it fails the run.
                height, width = image_size(image_path)
            try:
                label_map = polygon_label_map(shapes, height, width)
            except ValueError as err:
                raise _BadAnnotation(str(err)) from err
            mask = label_map == _TARGET
            if not mask.any():
                raise _BadAnnotation("no target polygon")
        except _BadAnnotation as err:
            skip_or_raise(str(err), sample_id, str(json_path), strict, skips)
            continue
        is_sentence = anno.get("is_sentence")
        yield ReferringSample(
            id=sample_id,
            image=image_path.relative_to(Path(root)).as_posix(),
            height=int(height),
            width=int(width),
            expressions=texts,
            mask=mask,
            ignore=label_map == _IGNORE,
            is_sentence=bool(is_sentence) if is_sentence is not None else None,
            extra={"json": json_path.relative_to(Path(root)).as_posix()},
        )


def count_reasonseg(root: str | os.PathLike, split: str, **_: object) -> int:
    """Number of images of a split (skipped images are not subtracted)."""
    return len(_split_images(root, split))
