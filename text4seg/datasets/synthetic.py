"""Synthetic referring dataset: coloured shapes on a dark background, with exact masks.

It serves the quickstart (a tiny model learns it from scratch on CPU), tests and throughput benchmarks.
Layout under ``root``::

    synthetic/<split>/000000.png ...   RGB images (uint8), square, ``image_size`` pixels a side
    synthetic/<split>.json             index: parameters + per image its shapes (attributes, box, COCO RLE mask,
                                       expressions)

Each image holds 1-4 non-overlapping shapes (circle, square, triangle, diamond, star) whose side is 15-45% of the
image side, drawn in colours from a small palette. Every shape gets at least one expression that refers to it and
to nothing else in its image: ``"the red circle"``, ``"the circle"`` when its kind is unique, and, when two shapes
share colour and kind, a spatial relation to a uniquely named anchor (``"the blue square left of the green
triangle"``) or a position within the pair (``"the blue square on the left"``). Masks are the exact pixels painted
in the image (no anti-aliasing). Splits draw from different seeds derived from ``seed``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from text4seg.datasets.coco_masks import decode_rle
from text4seg.datasets.samples import ReferringSample
from text4seg.io import atomic_write, write_json_atomic

__all__ = [
    "COLOURS",
    "SHAPES",
    "INDEX_VERSION",
    "generate_synthetic",
    "read_synthetic",
    "count_synthetic",
    "synthetic_index_path",
]

INDEX_VERSION = 1

# Colour name -> RGB; all bright, far from each other and from the dark background.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 90, 235),
    "yellow": (235, 215, 40),
    "white": (240, 240, 240),
    "purple": (160, 60, 210),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star")

_MIN_FRACTION, _MAX_FRACTION = 0.15, 0.45
_GAP = 2  # pixels kept free between the boxes of two shapes


@dataclass
class _Shape:
    kind: str
    colour: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)

    @property
    def center(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return (x0 + x1) / 2.0, (y0 + y1) / 2.0


def _split_seed(seed: int, split: str) -> int:
    digest = hashlib.sha256(f"text4seg-synthetic:{seed}:{split}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def synthetic_index_path(root: str | os.PathLike, split: str) -> Path:
    """Path of the index JSON of a split: ``root/synthetic/<split>.json``."""
    return Path(root) / "synthetic" / f"{split}.json"


def _draw_shape(draw: ImageDraw.ImageDraw, shape: _Shape) -> None:
    x0, y0, x1, y1 = shape.box
    w, h = x1 - x0, y1 - y0
    # PIL's coordinates are inclusive of the last pixel: draw inside [x0, x1-1] x [y0, y1-1].
    r, b = x1 - 1, y1 - 1
    if shape.kind == "circle":
        draw.ellipse((x0, y0, r, b), fill=1)
    elif shape.kind == "square":
        draw.rectangle((x0, y0, r, b), fill=1)
    elif shape.kind == "triangle":
        draw.polygon([(x0 + (w - 1) / 2.0, y0), (r, b), (x0, b)], fill=1)
    elif shape.kind == "diamond":
        cx, cy = x0 + (w - 1) / 2.0, y0 + (h - 1) / 2.0
        draw.polygon([(cx, y0), (r, cy), (cx, b), (x0, cy)], fill=1)
    elif shape.kind == "star":
        cx, cy = x0 + (w - 1) / 2.0, y0 + (h - 1) / 2.0
        outer = (w - 1) / 2.0
        inner = outer * 0.45
        points = []
        for i in range(10):
            radius = outer if i % 2 == 0 else inner
            angle = np.pi / 2 + i * np.pi / 5  # first point straight up
            points.append((cx + radius * np.cos(angle), cy - radius * np.sin(angle)))
        draw.polygon(points, fill=1)
    else:  # pragma: no cover - kinds come from SHAPES
        raise ValueError(f"unknown shape kind {shape.kind!r}")


def _shape_mask(shape: _Shape, size: int) -> np.ndarray:
    canvas = Image.new("L", (size, size), 0)
    _draw_shape(ImageDraw.Draw(canvas), shape)
    return np.asarray(canvas, dtype=bool)


def _boxes_clear(box: tuple[int, int, int, int], others: Sequence[_Shape]) -> bool:
    x0, y0, x1, y1 = box
    for other in others:
        a0, b0, a1, b1 = other.box
        if x0 < a1 + _GAP and a0 < x1 + _GAP and y0 < b1 + _GAP and b0 < y1 + _GAP:
            return False
    return True


def _place(
    rng: random.Random,
    size: int,
    placed: Sequence[_Shape],
    kind: str,
    colour: str,
    sides: tuple[float, float] = (_MIN_FRACTION, _MAX_FRACTION),
) -> _Shape | None:
    low, high = sides
    side = rng.uniform(low, high) * size
    while True:
        s = max(int(round(side)), 3)
        for _ in range(30):
            x0 = rng.randint(0, size - s)
            y0 = rng.randint(0, size - s)
            box = (x0, y0, x0 + s, y0 + s)
            if _boxes_clear(box, placed):
                return _Shape(kind, colour, box)
        if side <= low * size:
            return None
        side = max(side * 0.8, low * size)


def _describe(colour: str | None, kind: str | None) -> str:
    if colour and kind:
        return f"the {colour} {kind}"
    if kind:
        return f"the {kind}"
    return f"the {colour} shape"


def _matches(shape: _Shape, colour: str | None, kind: str | None) -> bool:
    return (colour is None or shape.colour == colour) and (kind is None or shape.kind == kind)


def _unique_name(shape: _Shape, shapes: Sequence[_Shape]) -> str | None:
    """The shortest attribute phrase naming only ``shape`` (colour+kind preferred as the canonical form)."""
    for colour, kind in ((shape.colour, shape.kind), (None, shape.kind), (shape.colour, None)):
        if sum(_matches(s, colour, kind) for s in shapes) == 1:
            return _describe(colour, kind)
    return None


# relation -> (strict test: boxes separated along the axis; loose test: centres ordered along the axis)
def _left(a: _Shape, b: _Shape, strict: bool) -> bool:
    return a.box[2] <= b.box[0] if strict else a.center[0] < b.center[0]


def _above(a: _Shape, b: _Shape, strict: bool) -> bool:
    return a.box[3] <= b.box[1] if strict else a.center[1] < b.center[1]


_RELATIONS = {
    "left of": _left,
    "right of": lambda a, b, strict: _left(b, a, strict),
    "above": _above,
    "below": lambda a, b, strict: _above(b, a, strict),
}
_POSITIONS = {
    "on the left": "left of",
    "on the right": "right of",
    "at the top": "above",
    "at the bottom": "below",
}


def _expressions(shape: _Shape, shapes: Sequence[_Shape]) -> list[str]:
    """Expressions that refer to ``shape`` and to no other shape of the image, most specific first."""
    out: list[str] = []
    if sum(_matches(s, shape.colour, shape.kind) for s in shapes) == 1:
        out.append(_describe(shape.colour, shape.kind))
        if sum(_matches(s, None, shape.kind) for s in shapes) == 1:
            out.append(_describe(None, shape.kind))
        return out
    # Colour and kind are shared with another shape: relate it to a uniquely named anchor.
    twins = [s for s in shapes if _matches(s, shape.colour, shape.kind)]
    base = _describe(shape.colour, shape.kind)
    for anchor in shapes:
        anchor_name = _unique_name(anchor, shapes)
        if anchor is shape or anchor_name is None:
            continue
        for relation, test in _RELATIONS.items():
            # Clear for the target (boxes separated), and no twin even loosely in that relation.
            if test(shape, anchor, True) and not any(test(t, anchor, False) for t in twins if t is not shape):
                out.append(f"{base} {relation} {anchor_name}")
    for position, relation in _POSITIONS.items():
        test = _RELATIONS[relation]
        if all(test(shape, t, True) for t in twins if t is not shape):
            out.append(f"{base} {position}")
    return out


def _compose(
    rng: random.Random,
    size: int,
    max_shapes: int = 4,
    twin_rate: float = 0.25,
    distinct_colours: bool = False,
    sides: tuple[float, float] = (_MIN_FRACTION, _MAX_FRACTION),
) -> list[tuple[_Shape, list[str]]]:
    while True:
        count = rng.randint(1, max_shapes)
        shapes: list[_Shape] = []
        for i in range(count):
            if i > 0 and rng.random() < twin_rate:
                # A twin of an earlier shape, so that relations are needed to tell them apart.
                twin = rng.choice(shapes)
                kind, colour = twin.kind, twin.colour
            else:
                used = {s.colour for s in shapes} if distinct_colours else set()
                kind, colour = rng.choice(SHAPES), rng.choice(sorted(set(COLOURS) - used))
            placed = _place(rng, size, shapes, kind, colour, sides)
            if placed is not None:
                shapes.append(placed)
        described = [(s, _expressions(s, shapes)) for s in shapes]
        if all(expressions for _, expressions in described):
            return described


def _render(
    np_rng: np.random.Generator, size: int, shapes: Sequence[_Shape]
) -> tuple[np.ndarray, list[np.ndarray]]:
    level = int(np_rng.integers(20, 70))
    noise = np_rng.integers(-6, 7, size=(size, size, 1), dtype=np.int16)
    image = np.clip(level + noise, 0, 255).astype(np.uint8).repeat(3, axis=2)
    masks = []
    for shape in shapes:
        mask = _shape_mask(shape, size)
        image[mask] = COLOURS[shape.colour]
        masks.append(mask)
    return image, masks


def _encode_rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _decode_rle(rle: dict) -> np.ndarray:
    return decode_rle({"size": rle["size"], "counts": rle["counts"].encode("ascii")})


def _index_is_current(path: Path, root: Path, params: dict) -> bool:
    if not path.is_file():
        return False
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(index, dict) or any(index.get(k) != v for k, v in params.items()):
        return False
    # defaults, absent from version-1 indexes
    difficulty = {
        "max_shapes": 4,
        "twin_rate": 0.25,
        "distinct_colours": False,
        "shape_size": [_MIN_FRACTION, _MAX_FRACTION],
    }
    if any(index.get(k, d) != params.get(k, d) for k, d in difficulty.items()):
        return False
    return all((root / entry["file"]).is_file() for entry in index.get("images", []))


def generate_synthetic(
    root: str | os.PathLike,
    split: str = "train",
    num_images: int = 200,
    image_size: int = 224,
    seed: int = 0,
    max_shapes: int = 4,
    twin_rate: float = 0.25,
    distinct_colours: bool = False,
    shape_size: tuple[float, float] = (_MIN_FRACTION, _MAX_FRACTION),
) -> list[ReferringSample]:
    """Draw a split of the synthetic dataset and write it under ``root/synthetic``.

    Deterministic for its arguments; idempotent: when an index with the same parameters already exists and all
    its images are present, nothing is rewritten.

    Args:
        root: data root; images go to ``root/synthetic/<split>/NNNNNN.png``, the index to
            ``root/synthetic/<split>.json``.
        split: split name; ``"train"``, ``"val"`` and ``"test"`` (or any other name) use different seeds.
        num_images: number of images (>= 1).
        image_size: side of the square images in pixels (>= 32).
        seed: base seed.
        max_shapes: most shapes per image (each image has 1..max_shapes).
        twin_rate: chance that a further shape copies the kind and colour of an earlier one, so that only a
            relation ("left of the green triangle") or a position ("on the left") tells them apart.
        distinct_colours: every shape of an image that is not a twin gets a colour of its own (at most
            ``len(COLOURS)`` such shapes per image), so its colour alone picks it out.
        shape_size: (smallest, largest) side of a shape's box as a share of the image side; a shape that does
            not fit shrinks towards the smallest.

    Returns:
        One sample per shape (``(image_size, image_size)`` bool masks), in image order.
    """
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    if image_size < 32:
        raise ValueError(f"image_size must be >= 32, got {image_size}")
    if max_shapes < 1:
        raise ValueError(f"max_shapes must be >= 1, got {max_shapes}")
    if not 0.0 <= twin_rate <= 1.0:
        raise ValueError(f"twin_rate must be in [0, 1], got {twin_rate}")
    shape_size = (float(shape_size[0]), float(shape_size[1]))
    if not 0.0 < shape_size[0] <= shape_size[1] <= 1.0:
        raise ValueError(f"shape_size must be (smallest, largest) with 0 < smallest <= largest <= 1, got {shape_size}")
    if distinct_colours and max_shapes > len(COLOURS):
        raise ValueError(f"distinct_colours: at most {len(COLOURS)} shapes per image, got max_shapes {max_shapes}")
    if not split or any(c in split for c in "/\\") or split.startswith("."):
        raise ValueError(f"split must be a plain name, got {split!r}")
    root = Path(root)
    index_path = synthetic_index_path(root, split)
    params = {
        "version": INDEX_VERSION,
        "split": split,
        "num_images": num_images,
        "image_size": image_size,
        "seed": seed,
    }
    # Non-default difficulty is part of the index identity; defaults keep the index format of version 1.
    if (max_shapes, twin_rate) != (4, 0.25):
        params.update(max_shapes=max_shapes, twin_rate=twin_rate)
    if distinct_colours:
        params.update(distinct_colours=True)
    if shape_size != (_MIN_FRACTION, _MAX_FRACTION):
        params.update(shape_size=list(shape_size))
    if _index_is_current(index_path, root, params):
        return list(read_synthetic(root, split))

    split_seed = _split_seed(seed, split)
    rng = random.Random(split_seed)
    np_rng = np.random.default_rng(split_seed)
    image_dir = root / "synthetic" / split
    image_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for n in range(num_images):
        described = _compose(rng, image_size, max_shapes, twin_rate, distinct_colours, shape_size)
        pixels, masks = _render(np_rng, image_size, [s for s, _ in described])
        rel = f"synthetic/{split}/{n:06d}.png"
        final = root / rel
        # compress_level=1: the files stay small (flat colours) and writing stays fast.
        with atomic_write(final, binary=True) as handle:
            Image.fromarray(pixels, "RGB").save(handle, format="PNG", compress_level=1)
        entries.append(
            {
                "file": rel,
                "height": image_size,
                "width": image_size,
                "shapes": [
                    {
                        "kind": shape.kind,
                        "colour": shape.colour,
                        "box": list(shape.box),
                        "expressions": expressions,
                        "mask": _encode_rle(mask),
                    }
                    for (shape, expressions), mask in zip(described, masks)
                ],
            }
        )
    write_json_atomic(index_path, {**params, "images": entries}, indent=None)
    return list(read_synthetic(root, split))


def _load_index(root: Path, split: str) -> dict:
    path = synthetic_index_path(root, split)
    if not path.is_file():
        raise FileNotFoundError(
            f"synthetic index {path} not found (synthetic layout: <root>/synthetic/<split>.json); "
            f"create it with `python -m data_builders synthetic --data-root {root}` or generate_synthetic()"
        )
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(index, dict) or not isinstance(index.get("images"), list):
        raise ValueError(f"{path}: expected an object with an 'images' list")
    return index


def read_synthetic(
    root: str | os.PathLike, split: str, strict: bool = False, skips: object = None
) -> Iterator[ReferringSample]:
    """Iterate the samples of a generated split lazily (images are not decoded).

    Args:
        root: data root given to :func:`generate_synthetic`.
        split: split name.
        strict, skips: accepted for the common reader signature; a generated index has nothing to skip.

    Yields:
        One :class:`ReferringSample` per shape; ``extra`` holds ``kind``, ``colour``, ``box`` (x0, y0, x1, y1,
        exclusive) and ``image_index``.
    """
    root = Path(root)
    index = _load_index(root, split)
    for n, entry in enumerate(index["images"]):
        for k, shape in enumerate(entry["shapes"]):
            yield ReferringSample(
                id=f"synthetic_{split}_{n:06d}_{k}",
                image=entry["file"],
                height=int(entry["height"]),
                width=int(entry["width"]),
                expressions=list(shape["expressions"]),
                mask=_decode_rle(shape["mask"]),
                extra={
                    "kind": shape["kind"],
                    "colour": shape["colour"],
                    "box": list(shape["box"]),
                    "image_index": n,
                },
            )


def count_synthetic(root: str | os.PathLike, split: str, **_: object) -> int:
    """Number of samples (shapes) in a generated split, read from the index without decoding masks."""
    index = _load_index(Path(root), split)
    return sum(len(entry["shapes"]) for entry in index["images"])
