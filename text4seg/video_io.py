"""Reading videos as frames and writing overlay videos: a folder of frames or a video file in (PyAV), MP4 (PyAV)
or GIF (PIL) out, every output written atomically.

PyAV is optional (extra ``video``): folders of frames and GIFs need only PIL.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from text4seg._optional import require
from text4seg.io import atomic_write

__all__ = ["VideoFrames", "FRAME_SUFFIXES", "read_frames", "write_mp4", "write_gif"]

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DEFAULT_FPS = 10.0


@dataclass
class VideoFrames:
    """Decoded frames of one video.

    Attributes:
        frames: RGB (H, W, 3) uint8 arrays, all of one size.
        names: per frame, the file stem (folder input) or the zero-padded index (video file).
        fps: frame rate of a video file, None for a folder of frames.
        source: where they came from.
    """

    frames: list[np.ndarray]
    names: list[str]
    fps: float | None
    source: str

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.frames[0].shape[:2]


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.stem)]


def read_frames(source: str | os.PathLike, *, max_frames: int | None = None) -> VideoFrames:
    """Frames of a folder of images (in natural name order: ``2.jpg`` before ``10.jpg``) or of a video file.

    Raises:
        FileNotFoundError: no such file or folder.
        ValueError: an empty folder, a file that is not a readable image or video (named), frames of
            different sizes, ``max_frames`` < 1.
        ImportError: a video file without PyAV installed (``pip install 'text4seg[video]'``).
    """
    from text4seg.images import load_image

    path = Path(source)
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames {max_frames}: expected >= 1")
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and p.is_file()),
                       key=_natural_key)
        if not files:
            raise ValueError(f"{path}: no frames ({', '.join(FRAME_SUFFIXES)} files) in this folder")
        files = files[:max_frames] if max_frames else files
        frames = [np.asarray(load_image(p)) for p in files]
        video = VideoFrames(frames, [p.stem for p in files], None, str(path))
    elif path.is_file():
        video = _decode_video(path, max_frames)
    else:
        raise FileNotFoundError(f"{path}: no such video file or folder of frames")
    height, width = video.size
    for name, frame in zip(video.names, video.frames):
        if frame.shape[:2] != (height, width):
            raise ValueError(f"{path}: frame {name} is {frame.shape[1]}x{frame.shape[0]}, the first is "
                             f"{width}x{height}")
    return video


def _decode_video(path: Path, max_frames: int | None) -> VideoFrames:
    av = require("av", extra="video", purpose="reading video files")
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path}: no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames and len(frames) >= max_frames:
                    break
    except av.FFmpegError as err:
        raise ValueError(f"{path}: not a readable video ({err})") from None
    if not frames:
        raise ValueError(f"{path}: the video has no frames")
    digits = max(5, len(str(len(frames) - 1)))
    return VideoFrames(frames, [f"{k:0{digits}d}" for k in range(len(frames))],
                       float(rate) if rate else None, str(path))


def _check_frames(frames: Sequence[np.ndarray]) -> tuple[int, int]:
    if not frames:
        raise ValueError("no frames to write")
    height, width = np.asarray(frames[0]).shape[:2]
    return height, width


def write_mp4(path: str | os.PathLike, frames: Sequence[np.ndarray], fps: float | None = None) -> Path:
    """Write RGB frames as an H.264 MP4 (even sizes: odd frames are padded by one pixel), atomically."""
    av = require("av", extra="video", purpose="writing MP4 overlays")
    height, width = _check_frames(frames)
    even_h, even_w = height + height % 2, width + width % 2
    rate = Fraction(fps or DEFAULT_FPS).limit_denominator(1001)
    with atomic_write(path, binary=True) as handle:
        with av.open(handle, mode="w", format="mp4") as container:
            stream = container.add_stream("h264", rate=rate)
            stream.width, stream.height, stream.pix_fmt = even_w, even_h, "yuv420p"
            for frame in frames:
                padded = np.zeros((even_h, even_w, 3), dtype=np.uint8)
                padded[:height, :width] = np.asarray(frame, dtype=np.uint8)
                for packet in stream.encode(av.VideoFrame.from_ndarray(padded, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return Path(path)


def write_gif(path: str | os.PathLike, frames: Sequence[np.ndarray], fps: float | None = None) -> Path:
    """Write RGB frames as a looping GIF, atomically."""
    _check_frames(frames)
    images = [Image.fromarray(np.asarray(frame, dtype=np.uint8)) for frame in frames]
    duration = round(1000.0 / (fps or DEFAULT_FPS))
    with atomic_write(path, binary=True) as handle:
        images[0].save(handle, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0)
    return Path(path)
