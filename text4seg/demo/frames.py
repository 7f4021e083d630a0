"""The Video tab's input checks: a zip of frames extracted safely (no path traversal, bounded size and frame
count, natural frame order) and frame sizes read from headers before anything is decoded (no torch).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PIL import Image

from text4seg.demo.options import _UNZIP_FACTOR


def extract_zip_frames(archive: str | os.PathLike, out: str | os.PathLike, *, name: str | None = None,
                       max_frames: int | None = None, max_bytes: int | None = None) -> list[Path]:
    """Extract the frames of a zip (``.jpg .jpeg .png .bmp .webp`` files, in any one folder of it) into the flat
    folder ``out``, safely.

    Every entry name is checked before anything is written: an absolute name, a drive letter or a ``..`` part
    refuses the whole archive. Frames are taken in natural name order (``2.png`` before ``10.png``, as
    :func:`text4seg.video_io.read_frames` orders a folder), the first ``max_frames`` of them; their bytes are
    counted while they are read (not trusted from the archive's header) against ``max_bytes``. Other files,
    folders and ``__MACOSX`` / dot-file clutter are skipped; entries are written as plain files (never links).

    Args:
        archive: the zip file; name: how messages name it (default: its file name).
        out: folder to create (it must not exist yet or be empty).

    Returns:
        The extracted frame files, in order.

    Raises:
        ValueError: not a readable zip, an unsafe entry name, an encrypted frame, no frames, two frames of the
            same name in different folders, more than ``max_bytes`` unzipped.
    """
    import zipfile
    import zlib

    from text4seg.video_io import FRAME_SUFFIXES

    archive = Path(archive)
    name = name or archive.name
    out = Path(out)
    try:
        with zipfile.ZipFile(archive) as handle:
            infos = handle.infolist()
            for info in infos:
                entry = info.filename.replace("\\", "/")
                parts = entry.split("/")
                if entry.startswith("/") or ":" in parts[0] or ".." in parts:
                    raise ValueError(f"{name}: unsafe entry {info.filename!r} (an absolute path or '..'): "
                                     f"refusing the archive")
            frames = []
            for info in infos:
                parts = info.filename.replace("\\", "/").split("/")
                if info.is_dir() or "__MACOSX" in parts or any(p.startswith(".") for p in parts if p):
                    continue
                if Path(parts[-1]).suffix.lower() in FRAME_SUFFIXES:
                    frames.append((parts[-1], info))
            if not frames:
                raise ValueError(f"{name}: no frames ({', '.join(FRAME_SUFFIXES)} files) in this zip")
            seen: dict[str, str] = {}
            for base, info in frames:
                if base in seen:
                    raise ValueError(f"{name}: two frames named {base} ({seen[base]}, {info.filename}): put the "
                                     f"frames of one video in one folder")
                seen[base] = info.filename
            frames.sort(key=lambda item: _natural_key(item[0]))
            frames = frames[:max_frames] if max_frames else frames
            out.mkdir(parents=True, exist_ok=True)
            total, written = 0, []
            for base, info in frames:
                if info.flag_bits & 0x1:
                    raise ValueError(f"{name}: {info.filename} is encrypted")
                target = out / base
                with handle.open(info) as source, target.open("wb") as sink:
                    while chunk := source.read(1 << 20):
                        total += len(chunk)
                        if max_bytes is not None and total > max_bytes:
                            raise ValueError(f"{name}: more than {max_bytes / 2**20:g} MB of frames unzipped "
                                             f"(the limit is {_UNZIP_FACTOR} x --max-upload-mb)")
                        sink.write(chunk)
                written.append(target)
            return written
    except zipfile.BadZipFile as err:
        raise ValueError(f"{name}: not a readable zip file ({err})") from None
    except (zipfile.LargeZipFile, NotImplementedError, EOFError, zlib.error) as err:
        raise ValueError(f"{name}: not a readable zip file ({type(err).__name__}: {err})") from None


def _natural_key(file_name: str) -> list:
    import re

    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", Path(file_name).stem)]


def _frame_sizes(folder: Path, name: str) -> list[tuple[str, tuple[int, int]]]:
    """``(label, (width, height))`` of each frame file from its header (unreadable files are left to
    ``read_frames``, which names them)."""
    sizes = []
    for path in sorted(folder.iterdir(), key=lambda p: _natural_key(p.name)):
        try:
            with Image.open(path) as image:
                sizes.append((f"{name}/{path.name}", image.size))
        except Exception:  # noqa: BLE001 - read_frames reports it with the CLI's message
            continue
    return sizes


def _video_size(path: Path, name: str) -> list[tuple[str, tuple[int, int]]]:
    """``[(name, (width, height))]`` of a video file's first video stream, from its header (nothing decoded);
    empty when PyAV cannot tell (``read_frames`` then reports why)."""
    from text4seg._optional import require

    av = require("av", extra="video", purpose="reading video files")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return []
            context = container.streams.video[0].codec_context
            if context.width and context.height:
                return [(name, (int(context.width), int(context.height)))]
    except Exception:  # noqa: BLE001 - read_frames reports it with the CLI's message
        return []
    return []


def _whole(value: Any, flag: str) -> int:
    """A whole number >= 1 from a page field (Gradio numbers arrive as floats)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number >= 1 or number != int(number):
        raise ValueError(f"{flag} {value!r}: expected an integer >= 1")
    return int(number)
