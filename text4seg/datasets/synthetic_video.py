"""Synthetic referring videos: coloured shapes that move, stop, appear, leave the frame and occlude each other.

Written in the MeViS on-disk layout, so the ``synthetic-video`` reader is the MeViS reader pointed at it::

    <root>/synthetic-video/<split>/JPEGImages/<vid>/<frame>.jpg   frames "00000", "00001", ...
    <root>/synthetic-video/<split>/meta_expressions.json        {"videos": {vid: {"expressions": {exp_id:
                                                                 {"exp", "obj_id": [...], "anno_id": [...]}},
                                                                 "frames": [...], "vid_id": n}}}
    <root>/synthetic-video/<split>/mask_dict.json               {str(anno_id): [RLE | null per frame]}

Each video holds 2-3 shapes (circle, square, triangle) of distinct colours on a dark background. Each shape has
one motion: ``moving left/right/up/down``, ``that stops`` (moves, then stands still from the middle frame on),
``that appears later`` (absent from the first frames), ``leaving the frame`` (gone before the last frame) or
``that stays still``. Shapes are painted in a fixed order, later ones on top, and a mask holds only the visible
pixels of its shape (occluded pixels belong to the shape on top); a frame where a shape is not visible has a
``null`` RLE. Expressions per video: one appearance expression per shape (``"the red circle"``), one motion
expression per shape (``"the square moving left"``, with the colour added when kind and motion are not unique),
one two-shape expression (``"the red circle and the blue square"``, union of both) and one no-target expression
naming a colour-kind pair absent from the video (empty ``obj_id``/``anno_id``). Everything is drawn from a
seeded generator: the same arguments give the same bytes.
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from text4seg.datasets.synthetic import COLOURS
from text4seg.io import atomic_directory, write_json_atomic

__all__ = ["SYNTHETIC_VIDEO_SPLITS", "VIDEO_KINDS", "MOTIONS", "write_synthetic_videos"]

SYNTHETIC_VIDEO_SPLITS = ("train", "valid_u")
VIDEO_KINDS: tuple[str, ...] = ("circle", "square", "triangle")
# motion -> the phrase that names it in expressions
MOTIONS: dict[str, str] = {
    "left": "moving left",
    "right": "moving right",
    "up": "moving up",
    "down": "moving down",
    "stops": "that stops",
    "appears": "that appears later",
    "leaves": "leaving the frame",
    "still": "that stays still",
}
_BACKGROUND = (20, 20, 24)
_DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


@dataclass
class _Track:
    kind: str
    colour: str
    motion: str
    side: int  # shape box side in pixels
    positions: list[tuple[float, float] | None]  # top-left per frame; None = not in the video yet


def _seed_for(seed: int, split: str) -> int:
    digest = hashlib.sha256(f"text4seg-synthetic-video:{seed}:{split}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _track(rng: random.Random, kind: str, colour: str, motion: str, num_frames: int, height: int,
           width: int) -> _Track:
    side = max(4, int(round(min(height, width) * rng.uniform(0.2, 0.32))))
    x, y = rng.uniform(0, width - side), rng.uniform(0, height - side)
    speed = min(height, width) * rng.uniform(0.25, 0.4) / max(num_frames - 1, 1)
    positions: list[tuple[float, float] | None] = []
    if motion == "leaves":
        # head for the nearest vertical edge fast enough to be wholly outside before the last frame
        dx = -1 if x + side / 2 < width / 2 else 1
        distance = (x + side) if dx < 0 else (width - x)
        speed = max(speed, (distance + 1) / max(num_frames - 2, 1))
        positions = [(x + dx * speed * t, y) for t in range(num_frames)]
    elif motion in _DIRECTIONS:
        dx, dy = _DIRECTIONS[motion]
        # start on the side the shape moves away from, so it stays mostly in view
        if dx:
            x = rng.uniform(0, width * 0.3) if dx > 0 else rng.uniform(width * 0.7 - side, width - side)
        if dy:
            y = rng.uniform(0, height * 0.3) if dy > 0 else rng.uniform(height * 0.7 - side, height - side)
        x, y = max(0.0, x), max(0.0, y)
        positions = [(x + dx * speed * t, y + dy * speed * t) for t in range(num_frames)]
    elif motion == "stops":
        dx = 1 if x < (width - side) / 2 else -1
        stop = num_frames // 2
        positions = [(x + dx * speed * min(t, stop), y) for t in range(num_frames)]
    elif motion == "appears":
        start = rng.randint(max(1, num_frames // 4), max(1, num_frames // 2))
        positions = [None if t < start else (x, y) for t in range(num_frames)]
    else:  # still
        positions = [(x, y)] * num_frames
    return _Track(kind, colour, motion, side, positions)


def _paint(draw: ImageDraw.ImageDraw, kind: str, x: float, y: float, side: int, fill: object) -> None:
    x0, y0 = int(round(x)), int(round(y))
    x1, y1 = x0 + side - 1, y0 + side - 1
    if kind == "circle":
        draw.ellipse((x0, y0, x1, y1), fill=fill)
    elif kind == "square":
        draw.rectangle((x0, y0, x1, y1), fill=fill)
    else:  # triangle, apex up
        draw.polygon([(x0 + (side - 1) / 2.0, y0), (x1, y1), (x0, y1)], fill=fill)


def _render(tracks: list[_Track], index: int, height: int, width: int) -> tuple[Image.Image, np.ndarray]:
    """Frame ``index``: the RGB image and a label map (0 background, k + 1 = visible pixels of track k)."""
    image = Image.new("RGB", (width, height), _BACKGROUND)
    labels = Image.new("L", (width, height), 0)
    draw_rgb, draw_labels = ImageDraw.Draw(image), ImageDraw.Draw(labels)
    for k, track in enumerate(tracks):  # later tracks on top
        position = track.positions[index]
        if position is None:
            continue
        _paint(draw_rgb, track.kind, *position, track.side, COLOURS[track.colour])
        _paint(draw_labels, track.kind, *position, track.side, k + 1)
    return image, np.asarray(labels)


def _rle(mask: np.ndarray) -> dict | None:
    if not mask.any():
        return None
    from pycocotools import mask as mask_utils

    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode("ascii")}


def _expressions(tracks: list[_Track], anno_ids: list[int], rng: random.Random) -> dict[str, dict]:
    def entry(text: str, objects: list[int]) -> dict:
        return {"exp": text, "obj_id": objects, "anno_id": [anno_ids[k] for k in objects]}

    out: list[dict] = []
    for k, track in enumerate(tracks):
        out.append(entry(f"the {track.colour} {track.kind}", [k]))
    for k, track in enumerate(tracks):
        same = [t for t in tracks if t.kind == track.kind and t.motion == track.motion]
        name = track.kind if len(same) == 1 else f"{track.colour} {track.kind}"
        out.append(entry(f"the {name} {MOTIONS[track.motion]}", [k]))
    a, b = rng.sample(range(len(tracks)), 2)
    a, b = min(a, b), max(a, b)
    out.append(entry(f"the {tracks[a].colour} {tracks[a].kind} and the {tracks[b].colour} {tracks[b].kind}", [a, b]))
    present = {(t.colour, t.kind) for t in tracks}
    absent = [(c, k) for c in COLOURS for k in VIDEO_KINDS if (c, k) not in present]
    colour, kind = rng.choice(absent)
    out.append(entry(f"the {colour} {kind}", []))
    return {str(i): e for i, e in enumerate(out)}


def write_synthetic_videos(
    root: str | os.PathLike,
    split: str,
    num_videos: int,
    *,
    num_frames: int = 8,
    size: int | tuple[int, int] = 64,
    seed: int = 0,
    overwrite: bool = False,
    jpeg_quality: int = 95,
) -> Path:
    """Write a synthetic video split in the MeViS layout (see the module docstring), atomically.

    Args:
        root: data root; the split goes to ``root/synthetic-video/<split>/``.
        split: ``"train"`` or ``"valid_u"`` (both with ground truth).
        num_videos: number of videos (>= 1).
        num_frames: frames per video (>= 2).
        size: frame side in pixels, or ``(height, width)`` (each >= 16).
        seed: seed of every random choice; splits draw from different streams.
        overwrite: replace an existing split folder (kept until the new one is complete).
        jpeg_quality: JPEG quality of the frames (written without chroma subsampling, so small shapes keep
            their colour).

    Returns:
        The split folder.

    Raises:
        ValueError: an unknown split or out-of-range sizes.
        FileExistsError: the split folder exists and ``overwrite`` is False (nothing is written).
    """
    if split not in SYNTHETIC_VIDEO_SPLITS:
        raise ValueError(f"synthetic-video has no split {split!r}; splits: {', '.join(SYNTHETIC_VIDEO_SPLITS)}")
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if num_videos < 1 or num_frames < 2 or height < 16 or width < 16:
        raise ValueError(f"need num_videos >= 1, num_frames >= 2 and frames of at least 16x16 pixels, got "
                         f"{num_videos} videos of {num_frames} frames of {height}x{width}")
    rng = random.Random(_seed_for(seed, split))
    destination = Path(root) / "synthetic-video" / split
    frame_names = [f"{t:05d}" for t in range(num_frames)]
    videos: dict[str, dict] = {}
    mask_dict: dict[str, list] = {}
    next_anno = 0
    with atomic_directory(destination, overwrite=overwrite) as tmp:
        for v in range(num_videos):
            vid = f"v{v:04d}"
            count = rng.randint(2, 3)
            colours = rng.sample(sorted(COLOURS), count)
            tracks = [_track(rng, rng.choice(VIDEO_KINDS), colours[k], rng.choice(sorted(MOTIONS)), num_frames,
                             height, width) for k in range(count)]
            anno_ids = list(range(next_anno, next_anno + count))
            next_anno += count
            per_track: list[list] = [[] for _ in tracks]
            folder = Path(tmp) / "JPEGImages" / vid
            folder.mkdir(parents=True)
            for t, name in enumerate(frame_names):
                image, labels = _render(tracks, t, height, width)
                image.save(folder / f"{name}.jpg", format="JPEG", quality=jpeg_quality, subsampling=0)
                for k in range(count):
                    per_track[k].append(_rle(labels == k + 1))
            for k, anno_id in enumerate(anno_ids):
                mask_dict[str(anno_id)] = per_track[k]
            videos[vid] = {"expressions": _expressions(tracks, anno_ids, rng), "frames": frame_names, "vid_id": v}
        write_json_atomic(Path(tmp) / "meta_expressions.json", {"videos": videos})
        write_json_atomic(Path(tmp) / "mask_dict.json", mask_dict, indent=None)
    return destination
