"""Frames in (folders, video files) and overlay videos out (MP4, GIF), atomically."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from text4seg.video_io import read_frames, write_gif, write_mp4


def _frames(n=4, h=30, w=40):
    return [np.full((h, w, 3), 20 + 40 * k, dtype=np.uint8) for k in range(n)]


def test_folder_in_natural_order_and_errors(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for k, frame in zip((10, 2, 1), _frames(3)):
        Image.fromarray(frame).save(folder / f"{k}.png")
    (folder / "notes.txt").write_text("not a frame")
    video = read_frames(folder)
    assert video.names == ["1", "2", "10"] and video.fps is None and video.size == (30, 40)
    assert [int(f[0, 0, 0]) for f in video.frames] == [100, 60, 20]
    assert read_frames(folder, max_frames=2).names == ["1", "2"]
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(folder / "11.png")
    with pytest.raises(ValueError, match="frame 11 is 5x5, the first is 40x30"):
        read_frames(folder)
    (folder / "12.jpg").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="12.jpg"):
        read_frames(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no frames"):
        read_frames(empty)
    with pytest.raises(FileNotFoundError, match="no such video"):
        read_frames(tmp_path / "missing.mp4")


def test_mp4_roundtrip_keeps_count_size_and_rate(tmp_path):
    pytest.importorskip("av")
    path = write_mp4(tmp_path / "out" / "v.mp4", _frames(6, 31, 41), fps=12)
    assert not list((tmp_path / "out").glob(".*tmp"))
    video = read_frames(path)
    assert len(video.frames) == 6 and video.size == (32, 42)  # padded to even sizes for yuv420p
    assert video.fps == pytest.approx(12.0) and video.names[0] == "00000"
    assert abs(int(video.frames[3][10, 10, 0]) - 140) <= 6  # lossy, close
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="bad.mp4"):
        read_frames(tmp_path / "bad.mp4")


def test_gif_has_every_frame(tmp_path):
    path = write_gif(tmp_path / "v.gif", _frames(5), fps=5)
    with Image.open(path) as gif:
        assert gif.n_frames == 5 and gif.info["duration"] == 200
    with pytest.raises(ValueError, match="no frames"):
        write_gif(tmp_path / "none.gif", [])
    assert not (tmp_path / "none.gif").exists()
