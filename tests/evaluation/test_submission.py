"""Submission zips: exact entry names per server layout, 0/255 PNGs, missing and bad predictions."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image
from video_fixtures import H, W, box

from text4seg.datasets import read_video
from text4seg.evaluation.submission import submission_names, write_submission_zip


def write_prediction(masks_dir, key, frame, mask, scale=255):
    path = masks_dir / key / f"{frame}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.uint8) * scale, "L").save(path)


def predict_all(samples, masks_dir, scale=255):
    for s in samples:
        for i, frame in enumerate(s.frame_names):
            write_prediction(masks_dir, s.key, frame, box(0, 0, 1 + i, 2), scale)


def read_entry(zf, name):
    return np.asarray(Image.open(io.BytesIO(zf.read(name))))


def test_ref_youtube_vos_layout(ytvos_root, tmp_path):
    samples = list(read_video("ref-youtube-vos", ytvos_root, "valid"))
    masks_dir = tmp_path / "out" / "masks"
    predict_all(samples, masks_dir, scale=1)  # 0/1 PNGs are re-encoded as 0/255
    summary = write_submission_zip(samples, masks_dir, tmp_path / "out" / "submission.zip", "ref-youtube-vos")
    expected = [
        "Annotations/vidV/0/00000.png",
        "Annotations/vidV/0/00005.png",
        "Annotations/vidV/1/00000.png",
        "Annotations/vidV/1/00005.png",
    ]
    with zipfile.ZipFile(tmp_path / "out" / "submission.zip") as zf:
        assert zf.namelist() == expected
        first = read_entry(zf, "Annotations/vidV/0/00005.png")
        assert first.dtype == np.uint8 and first.shape == (H, W)
        np.testing.assert_array_equal(first, box(0, 0, 2, 2).astype(np.uint8) * 255)
        assert Image.open(io.BytesIO(zf.read(expected[0]))).mode == "L"
    assert submission_names(samples, "ref-youtube-vos") == expected
    assert (summary.expressions, summary.files, summary.filled) == (2, 4, 0)


def test_mevis_layout_has_no_parent_folder(mevis_root, tmp_path):
    samples = list(read_video("mevis", mevis_root, "valid"))
    predict_all(samples, tmp_path / "masks")
    out = tmp_path / "mevis.zip"
    write_submission_zip(samples, tmp_path / "masks", out, "mevis")
    with zipfile.ZipFile(out) as zf:
        assert zf.namelist() == ["w0/0/00000.png", "w0/0/00001.png"]
        np.testing.assert_array_equal(read_entry(zf, "w0/0/00001.png"), box(0, 0, 2, 2).astype(np.uint8) * 255)


def test_same_predictions_same_bytes(mevis_root, tmp_path):
    samples = list(read_video("mevis", mevis_root, "valid"))
    predict_all(samples, tmp_path / "masks")
    write_submission_zip(samples, tmp_path / "masks", tmp_path / "a.zip", "mevis")
    write_submission_zip(samples, tmp_path / "masks", tmp_path / "b.zip", "mevis")
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()


def test_missing_predictions_fail_or_are_filled(mevis_root, tmp_path):
    samples = list(read_video("mevis", mevis_root, "valid"))
    masks_dir = tmp_path / "masks"
    write_prediction(masks_dir, "w0/0", "00000", box(1, 1, 2, 2))
    out = tmp_path / "sub.zip"
    with pytest.raises(FileNotFoundError) as info:
        write_submission_zip(samples, masks_dir, out, "mevis")
    assert str(info.value).startswith(f"{masks_dir / 'w0/0/00001.png'}: prediction not found (1 frame PNGs")
    assert not out.exists()
    summary = write_submission_zip(samples, masks_dir, out, "mevis", fill_missing=True)
    assert summary.filled == 1 and summary.files == 2
    with zipfile.ZipFile(out) as zf:
        assert not read_entry(zf, "w0/0/00001.png").any()
        np.testing.assert_array_equal(read_entry(zf, "w0/0/00000.png"), box(1, 1, 2, 2).astype(np.uint8) * 255)


def test_bad_predictions_and_layouts(mevis_root, tmp_path):
    samples = list(read_video("mevis", mevis_root, "valid"))
    predict_all(samples, tmp_path / "masks")
    wrong = tmp_path / "masks" / "w0" / "0" / "00001.png"
    Image.new("L", (W + 1, H)).save(wrong)
    out = tmp_path / "sub.zip"
    out.write_bytes(b"old")
    with pytest.raises(ValueError, match=f"{wrong}: prediction is 9x6, the frame is 8x6"):
        write_submission_zip(samples, tmp_path / "masks", out, "mevis")
    assert out.read_bytes() == b"old"  # the previous file survives a failed write
    Image.new("RGB", (W, H)).save(wrong)
    with pytest.raises(ValueError, match="expected a single-channel PNG"):
        write_submission_zip(samples, tmp_path / "masks", out, "mevis")
    with pytest.raises(ValueError, match="unknown submission layout 'davis'"):
        write_submission_zip(samples, tmp_path / "masks", out, "davis")
