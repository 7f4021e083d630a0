"""text4seg.images: odd image kinds built in temp dirs, limits, errors, overlays and atomic PNG writes."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from text4seg.images import MAX_PIXELS, image_size, label_color, load_image, overlay_mask, save_mask_png


def halves(width=40, height=20):
    """Stored image: left half red, right half blue."""
    arr = np.zeros((height, width, 3), np.uint8)
    arr[:, : width // 2] = (255, 0, 0)
    arr[:, width // 2:] = (0, 0, 255)
    return arr


def save_rotated_jpeg(path, orientation=6):
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(halves()).save(path, quality=95, exif=exif)
    return path


def test_exif_orientation_applied_to_files_and_pil_images(tmp_path):
    path = save_rotated_jpeg(tmp_path / "rot.jpg")
    for source in (path, str(path), Image.open(path)):
        img = load_image(source)
        assert img.mode == "RGB" and img.size == (20, 40)  # stored 40x20, displayed rotated 90 degrees
        arr = np.asarray(img).astype(int)
        assert arr[5, 10, 0] > 200 and arr[5, 10, 2] < 60  # stored left (red) is now the top
        assert arr[35, 10, 2] > 200 and arr[35, 10, 0] < 60
    assert image_size(path) == (40, 20)
    assert image_size(save_rotated_jpeg(tmp_path / "flip.jpg", orientation=2)) == (20, 40)


def test_palette_png_with_and_without_transparency(tmp_path):
    pal = Image.new("P", (3, 1))
    pal.putpalette([0, 0, 0, 10, 200, 30, 250, 250, 250] + [0] * (256 * 3 - 9))
    pal.putdata([0, 1, 2])
    pal.save(tmp_path / "p.png")
    assert np.asarray(load_image(tmp_path / "p.png")).tolist() == [[[0, 0, 0], [10, 200, 30], [250, 250, 250]]]
    pal.save(tmp_path / "pt.png", transparency=1)
    assert np.asarray(load_image(tmp_path / "pt.png"))[0, 1].tolist() == [0, 0, 0]
    white = load_image(tmp_path / "pt.png", background=(255, 255, 255))
    assert np.asarray(white)[0].tolist() == [[0, 0, 0], [255, 255, 255], [250, 250, 250]]


def test_rgba_and_la_composited_over_background(tmp_path):
    rgba = np.array([[[255, 0, 0, 255], [255, 0, 0, 0], [200, 100, 50, 128]]], np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    black = np.asarray(load_image(tmp_path / "a.png")).astype(int)
    assert black[0, 0].tolist() == [255, 0, 0] and black[0, 1].tolist() == [0, 0, 0]
    assert np.abs(black[0, 2] - [100, 50, 25]).max() <= 1
    white = np.asarray(load_image(tmp_path / "a.png", background=(255, 255, 255))).astype(int)
    assert white[0, 1].tolist() == [255, 255, 255]
    assert np.abs(white[0, 2] - [227, 177, 152]).max() <= 1
    Image.fromarray(np.array([[[90, 255], [90, 0]]], np.uint8), "LA").save(tmp_path / "la.png")
    assert np.asarray(load_image(tmp_path / "la.png")).tolist() == [[[90, 90, 90], [0, 0, 0]]]
    assert np.asarray(load_image(rgba)).astype(int)[0, 1].tolist() == [0, 0, 0]  # HxWx4 array too


def test_sixteen_bit_png_scaled(tmp_path):
    Image.fromarray(np.array([[0, 257 * 100, 65535]], np.uint16)).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    assert np.asarray(load_image(tmp_path / "g16.png"))[0, :, 0].tolist() == [0, 100, 255]


def test_integer_and_float_modes_stretched():
    i_img = Image.fromarray(np.array([[10, 20, 30]], np.int32))
    assert i_img.mode == "I"
    assert np.asarray(load_image(i_img))[0, :, 1].tolist() == [0, 128, 255]
    f_img = Image.fromarray(np.array([[-1.0, 0.0, 1.0]], np.float32))
    assert np.asarray(load_image(f_img))[0, :, 2].tolist() == [0, 128, 255]
    assert np.asarray(load_image(Image.fromarray(np.full((1, 2), 7, np.int32))))[0, :, 0].tolist() == [0, 0]


def test_cmyk_jpeg_and_grayscale(tmp_path):
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # red
    cmyk.save(tmp_path / "c.jpg", quality=95)
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    red = np.asarray(load_image(tmp_path / "c.jpg")).astype(int)
    assert red[4, 4, 0] > 230 and red[4, 4, 1] < 30 and red[4, 4, 2] < 30
    Image.new("L", (4, 2), 77).save(tmp_path / "g.png")
    gray = load_image(tmp_path / "g.png")
    assert gray.mode == "RGB" and gray.size == (4, 2) and np.asarray(gray)[1, 3].tolist() == [77, 77, 77]
    Image.new("1", (2, 2), 1).save(tmp_path / "b.png")
    assert np.asarray(load_image(tmp_path / "b.png")).min() == 255


def test_arrays():
    arr = halves(6, 4)
    assert np.array_equal(np.asarray(load_image(arr)), arr)
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert np.array_equal(np.asarray(load_image(gray))[:, :, 1], gray)
    assert np.array_equal(np.asarray(load_image(gray[:, :, None]))[:, :, 0], gray)
    assert np.asarray(load_image(np.array([[True, False]])))[0, :, 0].tolist() == [255, 0]
    assert np.asarray(load_image(np.array([[0.0, 1.0]])))[0, :, 0].tolist() == [0, 255]
    with pytest.raises(ValueError, match=r"shape \(2, 2, 2\)"):
        load_image(np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="int32"):
        load_image(np.zeros((2, 2), np.int32))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        load_image(np.array([[2.0]]))
    with pytest.raises(ValueError, match="cannot load an image from int"):
        load_image(3)


def test_missing_corrupt_truncated_and_directory(tmp_path):
    missing = tmp_path / "nope.jpg"
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        load_image(missing)
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        image_size(missing)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"definitely not an image" * 10)
    with pytest.raises(ValueError, match="junk.png"):
        load_image(junk)
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    full = tmp_path / "full.jpg"
    Image.fromarray(noise).save(full, quality=95)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(ValueError, match="cut.jpg.*truncated"):
        load_image(cut)
    assert image_size(cut) == (64, 64)  # the header is intact: size needs no pixels
    with pytest.raises(ValueError, match="not a file"):
        load_image(tmp_path)


def test_pixel_limit_checked_before_decoding(tmp_path):
    big = tmp_path / "big.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (200, 300, 3), dtype=np.uint8)).save(big)
    cut = tmp_path / "big_cut.jpg"
    cut.write_bytes(big.read_bytes()[: big.stat().st_size // 4])  # pixels unreadable: only a header check can give the limit error
    for path in (big, cut):
        with pytest.raises(ValueError, match=rf"{path.name}: 300x200 = 60000 pixels exceeds the limit of 1000"):
            load_image(path, max_pixels=1000)
    assert load_image(big, max_pixels=60000).size == (300, 200)
    assert load_image(big, max_pixels=None).size == (300, 200)
    with pytest.raises(ValueError, match="image array: 3x2"):
        load_image(np.zeros((2, 3), np.uint8), max_pixels=5)
    assert MAX_PIXELS == 178_956_970


def test_first_frame_of_animation(tmp_path):
    frames = [Image.new("RGB", (4, 4), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert np.asarray(load_image(tmp_path / "anim.gif"))[0, 0].tolist() == [255, 0, 0]


def test_label_colors_are_the_voc_map():
    assert [label_color(i) for i in range(5)] == [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128)]
    assert label_color(15) == (192, 128, 128) and label_color(256) == (0, 0, 0)


def test_overlay_bool_and_label_map():
    black = np.zeros((2, 2, 3), np.uint8)
    out = np.asarray(overlay_mask(black, np.array([[True, False], [False, False]])))
    assert out[0, 0].tolist() == [128, 0, 0] and out[0, 1].tolist() == [0, 0, 0]
    out = np.asarray(overlay_mask(black, np.array([[True, False], [False, True]]), color=(0, 200, 0), alpha=1.0))
    assert out[1, 1].tolist() == [0, 200, 0]
    labels = np.array([[0, 1], [2, 255]])
    out = np.asarray(overlay_mask(black, labels, alpha=1.0))
    assert out.tolist() == [[[0, 0, 0], [128, 0, 0]], [[0, 128, 0], [0, 0, 0]]]
    out = np.asarray(overlay_mask(np.full((2, 2, 3), 255, np.uint8), labels, alpha=1.0, background_id=None))
    assert out[0, 0].tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match=r"mask has shape \(3, 2\)"):
        overlay_mask(black, np.zeros((3, 2), bool))
    with pytest.raises(ValueError, match="alpha"):
        overlay_mask(black, np.zeros((2, 2), bool), alpha=2)


def test_save_mask_png_kinds(tmp_path):
    m = np.array([[True, False], [False, True]])
    save_mask_png(m, tmp_path / "sub" / "m.png")
    back = Image.open(tmp_path / "sub" / "m.png")
    assert back.mode == "L" and np.asarray(back).tolist() == [[255, 0], [0, 255]]
    labels = np.array([[0, 3], [254, 255]], np.int64)
    save_mask_png(labels, tmp_path / "l.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "l.png")), labels)
    wide = np.array([[0, 300], [65535, 7]])
    save_mask_png(wide, tmp_path / "w.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "w.png")).astype(np.int64), wide)
    save_mask_png(labels, tmp_path / "w.png", sixteen_bit=True)  # small ids of a map over > 256 classes
    back = np.asarray(Image.open(tmp_path / "w.png"))
    assert back.dtype == np.uint16 and np.array_equal(back, labels)
    with pytest.raises(ValueError, match="65535"):
        save_mask_png(np.array([[-1, 0]]), tmp_path / "bad.png")
    with pytest.raises(ValueError, match="2-D"):
        save_mask_png(np.zeros((1, 2, 3), bool), tmp_path / "bad.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.png", "sub", "w.png"]


def test_save_mask_png_is_atomic(tmp_path, monkeypatch):
    dest = tmp_path / "mask.png"
    save_mask_png(np.ones((2, 2), bool), dest)
    before = dest.read_bytes()

    def broken_save(self, fp, format=None, **params):
        fp.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_mask_png(np.zeros((2, 2), bool), dest)
    assert dest.read_bytes() == before  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["mask.png"]  # no temp file left behind
    umask = os.umask(0)
    os.umask(umask)
    assert dest.stat().st_mode & 0o777 == 0o666 & ~umask  # ordinary permissions, not a temp file's 0600


def test_images_import_does_not_import_torch():
    code = "import sys, text4seg.images; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
