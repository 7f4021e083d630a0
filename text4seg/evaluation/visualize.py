"""Side-by-side overlays of one evaluated sample: image, coarse mask, refined mask, ground truth (no torch)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from text4seg.images import overlay_mask
from text4seg.io import atomic_write

__all__ = ["save_panels"]

_MAX_SIDE = 512  # panels are downscaled so that the strip stays viewable for large images
_TITLE_HEIGHT = 14


def save_panels(image: Image.Image, panels: Sequence[tuple[str, np.ndarray | None]], path: str | os.PathLike,
                caption: str = "") -> None:
    """Write a horizontal strip: the image, then one overlay per ``(title, mask)`` panel.

    Args:
        image: RGB PIL image.
        panels: ``(title, mask)`` pairs; a mask is ``(H, W)`` bool or an int label map at the image size
            (``0`` = others and ``255`` = ignore left uncoloured); None gives the plain image.
        path: PNG to write (atomically: temporary file, then rename).
        caption: text drawn under the strip (e.g. the expression), clipped to the strip width.
    """
    tiles = [("image", image)]
    for title, mask in panels:
        tiles.append((title, image if mask is None else overlay_mask(image, mask)))
    scale = min(1.0, _MAX_SIDE / max(image.size))
    width, height = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    strip = Image.new("RGB", (width * len(tiles), height + 2 * _TITLE_HEIGHT), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    for k, (title, tile) in enumerate(tiles):
        strip.paste(tile.resize((width, height), Image.NEAREST), (k * width, _TITLE_HEIGHT))
        draw.text((k * width + 2, 1), title, fill=(0, 0, 0))
    if caption:
        draw.text((2, height + _TITLE_HEIGHT + 1), caption[:200], fill=(0, 0, 0))
    with atomic_write(path, binary=True) as handle:
        strip.save(handle, format="PNG")
