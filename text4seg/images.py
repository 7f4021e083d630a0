"""Safe image loading, overlays and mask files (PIL + numpy, no torch).

Every image that enters text4seg goes through :func:`load_image`, so training and inference see the same
pixels: EXIF orientation applied, any PIL mode converted to 8-bit RGB, a pixel-count limit checked before
the pixels are decoded, and broken files reported with their path.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

__all__ = ["MAX_PIXELS", "image_size", "label_color", "load_image", "overlay_mask", "save_mask_png"]

MAX_PIXELS = 178_956_970  # PIL's own hard decompression-bomb limit (2 x Image.MAX_IMAGE_PIXELS)

_ORIENTATION_TAG = 0x0112
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}  # transpose / rotate 90 / transverse / rotate 270

# Errors PIL raises for unreadable, corrupt or truncated data.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, Image.DecompressionBombError)


def _describe(source: object) -> str:
    return f"{type(source).__name__} image" if isinstance(source, (Image.Image, np.ndarray)) else str(source)


def _check_pixels(size: tuple[int, int], max_pixels: int | None, what: str) -> None:
    width, height = size
    if max_pixels is not None and width * height > max_pixels:
        raise ValueError(f"{what}: {width}x{height} = {width * height} pixels exceeds the limit of {max_pixels} "
                         f"(raise max_pixels if this image is trusted)")


def _open(path: Path) -> Image.Image:
    """Open lazily (header only), turning PIL errors into ValueError naming the path."""
    if not path.exists():
        raise FileNotFoundError(f"image file not found: {path}")
    if not path.is_file():
        raise ValueError(f"image path is not a file: {path}")
    try:
        with warnings.catch_warnings():
            # our own limit is checked right after; PIL's size warning would only be noise
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path)
    except Image.DecompressionBombError as err:
        raise ValueError(f"{path}: image is larger than PIL's decompression-bomb limit "
                         f"(PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS}): {err}") from err
    except _DECODE_ERRORS as err:
        raise ValueError(f"{path}: not a readable image ({type(err).__name__}: {err})") from err


def _exif_orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # a malformed EXIF block only loses the orientation, never the image
        return 1


def _flatten_alpha(rgba: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    base = Image.new("RGBA", rgba.size, (*background, 255))
    return Image.alpha_composite(base, rgba).convert("RGB")


def _to_rgb(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Any PIL mode -> 8-bit RGB (see :func:`load_image` for the rules)."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P":
        has_alpha = "transparency" in image.info or image.palette is not None and image.palette.mode == "RGBA"
        return _flatten_alpha(image.convert("RGBA"), background) if has_alpha else image.convert("RGB")
    if mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        return _flatten_alpha(image.convert("RGBA"), background)
    if mode in ("L", "1"):
        return image.convert("L").convert("RGB")
    if mode.startswith("I;16"):
        arr = np.asarray(image).astype(np.uint32)
        return Image.fromarray(((arr + 128) // 257).astype(np.uint8), "L").convert("RGB")
    if mode in ("I", "F"):
        # 32-bit integer / float data has no fixed display range: stretch its finite min..max to 0..255
        arr = np.asarray(image).astype(np.float64)
        finite = np.isfinite(arr)
        lo = float(arr[finite].min()) if finite.any() else 0.0
        hi = float(arr[finite].max()) if finite.any() else 0.0
        scaled = np.zeros(arr.shape) if hi <= lo else (np.where(finite, arr, lo) - lo) * (255.0 / (hi - lo))
        return Image.fromarray(np.rint(scaled).astype(np.uint8), "L").convert("RGB")
    return image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, ...


def _from_array(arr: np.ndarray) -> Image.Image:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ValueError(f"image array must be HxW, HxWx1, HxWx3 or HxWx4, got shape {arr.shape}")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint16:
        arr = ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
            raise ValueError("a float image array must hold finite values in [0, 1]")
        arr = np.rint(arr * 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise ValueError(f"image array dtype must be uint8 (or bool, uint16, float in [0, 1]), got {arr.dtype}")
    mode = "L" if arr.ndim == 2 else ("RGB" if arr.shape[2] == 3 else "RGBA")
    return Image.fromarray(np.ascontiguousarray(arr), mode)


def load_image(source: str | os.PathLike | Image.Image | np.ndarray, max_pixels: int | None = MAX_PIXELS, *,
               background: tuple[int, int, int] = (0, 0, 0)) -> Image.Image:
    """Load an image as 8-bit RGB with its EXIF orientation applied.

    Conversions: grayscale (``L``, ``1``) and palette images are expanded to RGB; images with transparency
    (``RGBA``, ``LA``, ``PA``, palette with a transparent index) are alpha-composited over ``background``
    (black by default: fully opaque pixels are unchanged and fully transparent pixels become black, which is
    what a plain PIL ``convert("RGB")`` gives for the usual transparent-black pixels); 16-bit images
    (``I;16*``) are scaled by 255/65535; 32-bit integer and float images (``I``, ``F``) have their finite
    min..max stretched to 0..255; ``CMYK`` (Adobe-inverted JPEGs included) and other modes go through PIL's
    RGB conversion (no ICC colour management). Animated and multi-page images give their first frame, with a
    ``UserWarning`` saying so.

    Args:
        source: a file path, a PIL image, or an array: HxWx3 uint8 RGB, HxW (or HxWx1) uint8 gray, HxWx4 uint8
            RGBA; bool (0/255), uint16 (scaled) and float arrays in [0, 1] are accepted too.
        max_pixels: refuse images with more than this many pixels, checked from the header before decoding
            (None: no limit of ours; PIL's own ``Image.MAX_IMAGE_PIXELS`` bomb check still applies to files).
        background: RGB colour that transparent pixels are composited over.

    Returns:
        A fully decoded, file-independent PIL image in mode ``RGB``.

    Raises:
        FileNotFoundError: the path does not exist (the message names it).
        ValueError: too many pixels (path and size named), an unreadable, corrupt or truncated file (path
            named), or an array of an unsupported shape/dtype.
    """
    if isinstance(source, np.ndarray):
        image = _from_array(source)
        _check_pixels(image.size, max_pixels, "image array")
        return _to_rgb(image, background)
    if isinstance(source, Image.Image):
        what = "PIL image"
        _check_pixels(source.size, max_pixels, what)
        image = source
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        what = str(path)
        image = _open(path)
        _check_pixels(image.size, max_pixels, what)
    else:
        raise ValueError(f"cannot load an image from {type(source).__name__}; give a path, PIL image or array")
    try:
        frames = getattr(image, "n_frames", 1)
        if frames > 1:  # animated GIF/PNG/WebP, multi-page TIFF: one image in, one image out, and say so
            warnings.warn(f"{what}: {frames} frames; using the first", UserWarning, stacklevel=2)
            image.seek(0)
        image.load()
        try:
            transposed = ImageOps.exif_transpose(image)
        except Exception:  # malformed EXIF: keep the stored orientation rather than fail
            transposed = image
        out = _to_rgb(transposed, background)
        if out is image:
            out = image.copy()
        out.load()
    except _DECODE_ERRORS as err:
        raise ValueError(f"{what}: corrupt or truncated image data ({type(err).__name__}: {err})") from err
    finally:
        if image is not source:
            image.close()
    return out


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """Displayed size of an image file without decoding its pixels.

    Args:
        path: image file.

    Returns:
        ``(height, width)`` after EXIF orientation (orientations 5-8 swap the stored width and height), i.e.
        the size of ``load_image(path)``.

    Raises:
        FileNotFoundError / ValueError: as :func:`load_image` (no pixel limit is applied).
    """
    image = _open(Path(path))
    try:
        width, height = image.size
        if _exif_orientation(image) in _SWAPPING_ORIENTATIONS:
            width, height = height, width
    finally:
        image.close()
    return height, width


def label_color(label: int) -> tuple[int, int, int]:
    """Fixed colour of an integer label (the PASCAL VOC colour map: bit-interleaved, 0 = black).

    Args:
        label: integer >= 0; colours repeat with period 256.

    Returns:
        ``(r, g, b)`` uint8 values.
    """
    c = int(label) % 256
    r = g = b = 0
    for shift in range(7, -1, -1):
        r |= (c & 1) << shift
        g |= ((c >> 1) & 1) << shift
        b |= ((c >> 2) & 1) << shift
        c >>= 3
    return r, g, b


def overlay_mask(image: str | os.PathLike | Image.Image | np.ndarray, mask: np.ndarray,
                 color: tuple[int, int, int] = (255, 0, 0), alpha: float = 0.5, *,
                 background_id: int | None = 0, ignore_index: int | None = 255) -> Image.Image:
    """Blend a mask over an image for viewing.

    Args:
        image: anything :func:`load_image` accepts.
        mask: HxW at the image's (oriented) size: bool -> pixels blended with ``color``; integer label map ->
            each label blended with :func:`label_color` (labels ``background_id`` and ``ignore_index`` are left
            uncoloured; pass None to colour them too).
        color: RGB colour for a boolean mask.
        alpha: opacity of the mask colour in [0, 1].

    Returns:
        RGB PIL image of the same size.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    rgb = np.asarray(load_image(image), dtype=np.float64)
    m = np.asarray(mask)
    if m.shape != rgb.shape[:2]:
        raise ValueError(f"shape mismatch: mask has shape {m.shape}, image has (height, width) {rgb.shape[:2]}")
    colors = np.zeros_like(rgb)
    if m.dtype == bool:
        draw = m
        colors[:] = color
    elif np.issubdtype(m.dtype, np.integer):
        draw = np.ones(m.shape, dtype=bool)
        for skip in (background_id, ignore_index):
            if skip is not None:
                draw &= m != skip
        labels = np.unique(m[draw])
        lut = np.array([label_color(v) for v in labels], dtype=np.float64).reshape(-1, 3)
        colors[draw] = lut[np.searchsorted(labels, m[draw])]
    else:
        raise ValueError(f"mask must be bool or an integer label map, got dtype {m.dtype}")
    out = rgb.copy()
    out[draw] = (1.0 - alpha) * rgb[draw] + alpha * colors[draw]
    return Image.fromarray(np.rint(out).astype(np.uint8), "RGB")


def save_mask_png(mask: np.ndarray, path: str | os.PathLike, *, sixteen_bit: bool = False) -> None:
    """Write a mask as PNG atomically (temporary file in the same directory, then ``os.replace``).

    Args:
        mask: HxW bool -> 8-bit ``L`` PNG with 0/255; HxW integer label map with values in [0, 255] -> 8-bit
            ``L`` PNG of the ids; values up to 65535 (or ``sixteen_bit``) -> 16-bit PNG.
        sixteen_bit: write a label map as 16-bit even when its values fit 8 bits (maps over more than 256
            classes, so that every file of a run has one depth).
        path: destination; missing parent directories are created. An existing file is replaced only once
            the new one is complete.

    Raises:
        ValueError: not 2-D, negative or > 65535 labels, or an unsupported dtype.
    """
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D HxW, got shape {m.shape}")
    if m.dtype == bool:
        image = Image.fromarray(m.astype(np.uint8) * 255, "L")
    elif np.issubdtype(m.dtype, np.integer):
        lo, hi = (int(m.min()), int(m.max())) if m.size else (0, 0)
        if lo < 0 or hi > 65535:
            raise ValueError(f"label map values must be in [0, 65535] for PNG, got range [{lo}, {hi}]")
        wide = sixteen_bit or hi > 255
        image = Image.fromarray(m.astype(np.uint16)) if wide else Image.fromarray(m.astype(np.uint8), "L")
    else:
        raise ValueError(f"mask must be bool or an integer label map, got dtype {m.dtype}")
    from text4seg.io import atomic_write

    with atomic_write(path, binary=True) as handle:
        image.save(handle, format="PNG")
