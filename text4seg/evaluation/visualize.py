"""Overlays of evaluated samples (no torch): side-by-side strips (image, coarse, refined, ground truth) as PNG,
and for videos one strip per frame as an animated GIF."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from text4seg.images import overlay_mask
from text4seg.io import atomic_write

__all__ = ["panel_strip", "save_panels", "save_gif"]

_MAX_SIDE = 512  # panels are downscaled so that the strip stays viewable for large images
_TITLE_HEIGHT = 14


def panel_strip(image: Image.Image, panels: Sequence[tuple[str, np.ndarray | None]], caption: str = "",
                max_side: int = _MAX_SIDE, with_image: bool = True, ignore_index: int = 255) -> Image.Image:
    """A horizontal strip: the image (unless ``with_image`` is False), then one overlay per ``(title, mask)``.

    Args:
        image: RGB PIL image.
        panels: ``(title, mask)`` pairs; a mask is ``(H, W)`` bool or an int label map at the image size
            (``0`` = others and ``ignore_index`` left uncoloured); None gives the plain image.
        caption: text drawn under the strip (e.g. the expression), clipped to 200 characters.
        max_side: panels are downscaled so that their longer side is at most this.
        ignore_index: the label maps' ignore id (255; 65535 for datasets past 255 classes, e.g. ADE-847).

    Returns:
        The RGB strip.
    """
    tiles = [("image", image)] if with_image else []
    for title, mask in panels:
        tiles.append((title, image if mask is None else overlay_mask(image, mask, ignore_index=ignore_index)))
    scale = min(1.0, max_side / max(image.size))
    width, height = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    strip = Image.new("RGB", (width * len(tiles), height + 2 * _TITLE_HEIGHT), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    for k, (title, tile) in enumerate(tiles):
        strip.paste(tile.resize((width, height), Image.NEAREST), (k * width, _TITLE_HEIGHT))
        draw.text((k * width + 2, 1), title, fill=(0, 0, 0))
    if caption:
        draw.text((2, height + _TITLE_HEIGHT + 1), caption[:200], fill=(0, 0, 0))
    return strip


def save_panels(image: Image.Image, panels: Sequence[tuple[str, np.ndarray | None]], path: str | os.PathLike,
                caption: str = "", ignore_index: int = 255) -> None:
    """Write :func:`panel_strip` of ``image`` and ``panels`` as a PNG (atomically: temporary file, then rename)."""
    strip = panel_strip(image, panels, caption, ignore_index=ignore_index)
    with atomic_write(path, binary=True) as handle:
        strip.save(handle, format="PNG")


def save_gif(frames: Sequence[Image.Image], path: str | os.PathLike, fps: float = 4.0) -> None:
    """Write RGB ``frames`` (same size) as a looping animated GIF, atomically.

    Args:
        frames: at least one frame.
        path: the ``.gif`` to write.
        fps: frames per second of the animation.
    """
    if not frames:
        raise ValueError(f"{path}: a GIF needs at least one frame")
    duration = max(20, int(round(1000 / fps)))
    with atomic_write(path, binary=True) as handle:
        frames[0].save(handle, format="GIF", save_all=True, append_images=list(frames[1:]), duration=duration,
                       loop=0, disposal=1)
