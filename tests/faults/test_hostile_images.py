"""Hostile image files through ``text4seg.images.load_image`` (and ``text4seg segment``): each case ends in an RGB
image with the documented pixels or in one clear error naming the file. The README's Reliability table lists
them."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from text4seg.images import load_image


def png_bytes(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=kwargs.pop("format", "PNG"), **kwargs)
    return buffer.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


GRADIENT = np.arange(6 * 4 * 3, dtype=np.uint8).reshape(4, 6, 3) * 3  # 4 rows x 6 columns


@pytest.mark.parametrize("name,data,message", [
    ("empty.jpg", b"", "not a readable image (UnidentifiedImageError"),
    ("text.jpg", b"hello, I am not an image\n" * 10, "not a readable image (UnidentifiedImageError"),
    ("page.jpg", b"<!DOCTYPE html><html><body>404 Not Found</body></html>", "not a readable image"),
    ("vector.jpg", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
     "not a readable image"),
])
def test_not_an_image_is_one_error_naming_the_file(tmp_path, name, data, message):
    path = write(tmp_path / name, data)
    with pytest.raises(ValueError) as info:
        load_image(path)
    assert str(info.value).startswith(f"{path}: {message}")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_file_is_refused_not_grey_filled(tmp_path, fmt):
    rng = np.random.default_rng(0)
    data = png_bytes(Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)), format=fmt)
    path = write(tmp_path / f"cut.{fmt.lower()}", data[: len(data) // 2])
    with pytest.raises(ValueError) as info:
        load_image(path)
    assert str(info.value).startswith(f"{path}: corrupt or truncated image data (OSError: ")


def test_modes_become_8bit_rgb(tmp_path):
    cmyk = Image.fromarray(GRADIENT).convert("CMYK")
    assert np.array_equal(np.asarray(load_image(write(tmp_path / "c.jpg", png_bytes(cmyk, format="JPEG",
                                                                                   quality=100)))).shape, (4, 6, 3))
    assert np.array_equal(np.asarray(load_image(cmyk)), np.asarray(cmyk.convert("RGB")))
    sixteen = Image.fromarray(np.array([[0, 257, 65535]], dtype=np.uint16))
    assert np.asarray(load_image(write(tmp_path / "s.png", png_bytes(sixteen))))[0, :, 0].tolist() == [0, 1, 255]
    # palette with a transparent index: that colour composites over black
    palette = Image.fromarray(np.array([[0, 1, 2]], dtype=np.uint8), "P")
    palette.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    path = write(tmp_path / "p.png", png_bytes(palette, transparency=1))
    assert np.asarray(load_image(path))[0].tolist() == [[255, 0, 0], [0, 0, 0], [0, 0, 255]]
    la = Image.fromarray(np.array([[[200, 255], [200, 0]]], dtype=np.uint8), "LA")
    assert np.asarray(load_image(write(tmp_path / "la.png", png_bytes(la))))[0].tolist() == [[200] * 3, [0] * 3]
    rgba = Image.fromarray(np.array([[[10, 20, 30, 255], [10, 20, 30, 0]]], dtype=np.uint8), "RGBA")
    assert np.asarray(load_image(write(tmp_path / "a.png", png_bytes(rgba))))[0].tolist() == [[10, 20, 30],
                                                                                            [0, 0, 0]]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_applied(tmp_path, orientation):
    base = Image.fromarray(GRADIENT)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = write(tmp_path / "o.png", png_bytes(base, exif=exif))
    expected = {1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
                5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, -1)[::-1],
                8: lambda a: np.rot90(a)}[orientation](GRADIENT)
    assert np.array_equal(np.asarray(load_image(path)), expected)


def test_animated_gif_gives_its_first_frame_and_says_so(tmp_path):
    frames = [Image.new("RGB", (4, 2), colour) for colour in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    with pytest.warns(UserWarning, match=rf"^{path}: 3 frames; using the first$"):
        image = load_image(path)
    assert np.asarray(image)[0, 0].tolist() == [255, 0, 0]


def test_multipage_tiff_gives_its_first_page_and_says_so(tmp_path):
    pages = [Image.new("L", (3, 3), value) for value in (40, 80)]
    path = tmp_path / "pages.tif"
    pages[0].save(path, save_all=True, append_images=pages[1:])
    with pytest.warns(UserWarning, match=r"2 frames; using the first"):
        image = load_image(path)
    assert np.asarray(image)[0, 0].tolist() == [40, 40, 40]


def test_a_single_frame_says_nothing(tmp_path):
    path = write(tmp_path / "one.png", png_bytes(Image.fromarray(GRADIENT)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_image(path)


def test_decompression_bomb_is_refused_from_its_header(tmp_path):
    # a 30000 x 30000 PNG header over a tiny compressed body: refused before any pixel is decoded
    bomb = Image.new("1", (30000, 30000))
    path = write(tmp_path / "bomb.png", png_bytes(bomb, optimize=True))
    assert path.stat().st_size < 200_000
    with pytest.raises(ValueError) as info:
        load_image(path, max_pixels=100_000_000)
    assert str(info.value) == (f"{path}: image is larger than PIL's decompression-bomb limit "
                               f"(PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS}): "
                               f"Image size (900000000 pixels) exceeds limit of {2 * Image.MAX_IMAGE_PIXELS} "
                               "pixels, could be decompression bomb DOS attack.")
    with pytest.raises(ValueError, match=r"30000x30000 = 900000000 pixels exceeds the limit of 1000"):
        load_image(bomb, max_pixels=1000)


def test_long_strip_loads_and_segments(tmp_path):
    path = write(tmp_path / "strip.png", png_bytes(Image.new("RGB", (100_000, 1), (9, 9, 9))))
    image = load_image(path)
    assert image.size == (100_000, 1)


@pytest.mark.slow
def test_segment_command_on_hostile_files(tmp_path, tiny_model_dir, capsys):
    from text4seg.cli import main

    empty = write(tmp_path / "empty.jpg", b"")
    assert main(["segment", str(empty), "--model", str(tiny_model_dir), "--query", "x",
                 "--out", str(tmp_path / "m.png")]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"text4seg segment: error: {empty}: not a readable image (UnidentifiedImageError: cannot identify image "
        f"file '{empty}')"]
    assert not (tmp_path / "m.png").exists()
    strip = write(tmp_path / "strip.png", png_bytes(Image.new("RGB", (100_000, 1), (9, 9, 9))))
    assert main(["segment", str(strip), "--model", str(tiny_model_dir), "--query", "x",
                 "--out", str(tmp_path / "s.png"), "--max-new-tokens", "40"]) == 0
    assert Image.open(tmp_path / "s.png").size == (100_000, 1)
