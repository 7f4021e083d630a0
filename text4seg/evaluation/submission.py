"""Submission zips for the video splits scored by a benchmark server (Ref-YouTube-VOS valid, MeViS valid).

Predictions are read from a masks folder ``<masks_dir>/<video_id>/<expression_id>/<frame>.png`` (any PNG whose
non-zero pixels are the prediction: 0/1 or 0/255) and written, re-encoded as 8-bit grayscale 0/255, under the
names each server expects:

- ``ref-youtube-vos``: ``Annotations/<video_id>/<expression_id>/<frame>.png``;
- ``mevis``: ``<video_id>/<expression_id>/<frame>.png`` (the video folders at the top, no parent folder).

One entry per frame of the meta file's ``frames`` list, for every expression of the split, in meta-file order;
the zip holds file entries only (no directory entries) with a fixed timestamp, so the same predictions give the
same bytes. The zip is written atomically (a temporary sibling renamed into place when complete).
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from text4seg.datasets.video_samples import VideoSample
from text4seg.io import atomic_write
from text4seg.paths import safe_relative_id

__all__ = ["SUBMISSION_LAYOUTS", "SubmissionSummary", "submission_names", "write_submission_zip"]

# layout -> prefix of every name in the zip
SUBMISSION_LAYOUTS: dict[str, str] = {"ref-youtube-vos": "Annotations/", "mevis": ""}
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass
class SubmissionSummary:
    """What :func:`write_submission_zip` wrote.

    Attributes:
        path: the zip.
        layout: ``"ref-youtube-vos"`` or ``"mevis"``.
        expressions: expressions in the zip.
        files: PNG entries in the zip.
        filled: frames without a prediction PNG, written as empty masks (``fill_missing=True`` only).
    """

    path: Path
    layout: str
    expressions: int
    files: int
    filled: int


def _prefix(layout: str) -> str:
    if layout not in SUBMISSION_LAYOUTS:
        raise ValueError(f"unknown submission layout {layout!r}; known: {', '.join(SUBMISSION_LAYOUTS)}")
    return SUBMISSION_LAYOUTS[layout]


def submission_names(samples: Iterable[VideoSample], layout: str) -> list[str]:
    """The exact entry names of the zip for ``samples`` (meta-file order, frames in order)."""
    prefix = _prefix(layout)
    return [f"{prefix}{s.video_id}/{s.expression_id}/{frame}.png" for s in samples for frame in s.frame_names]


def _read_prediction(path: Path, height: int, width: int) -> np.ndarray:
    try:
        with Image.open(path) as image:
            if image.size != (width, height):
                raise ValueError(f"{path}: prediction is {image.size[0]}x{image.size[1]}, the frame is "
                                 f"{width}x{height}")
            if image.mode not in ("1", "L", "P", "I", "I;16"):
                raise ValueError(f"{path}: expected a single-channel PNG (0/1 or 0/255), got mode {image.mode}")
            return np.asarray(image) != 0
    except (OSError, SyntaxError) as err:
        raise ValueError(f"{path}: not a readable PNG ({err})") from err


def _png_bytes(mask: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255, "L").save(buffer, format="PNG")
    return buffer.getvalue()


def write_submission_zip(
    samples: Iterable[VideoSample],
    masks_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    layout: str,
    *,
    fill_missing: bool = False,
) -> SubmissionSummary:
    """Build a server submission zip from a masks folder.

    Args:
        samples: the split's expressions (e.g. ``read_video("mevis", root, "valid")``); their frames decide
            which PNGs go in.
        masks_dir: folder holding ``<video_id>/<expression_id>/<frame>.png`` predictions.
        out_path: the zip to write (replaced atomically if it exists).
        layout: ``"ref-youtube-vos"`` or ``"mevis"`` (see :data:`SUBMISSION_LAYOUTS`).
        fill_missing: write an empty mask for a frame without a prediction PNG (counted in ``filled``) instead
            of failing.

    Returns:
        A :class:`SubmissionSummary`.

    Raises:
        ValueError: an unknown layout, an unsafe id, a prediction of another size than the frame or not a
            single-channel PNG.
        FileNotFoundError: a prediction PNG is missing (without ``fill_missing``); the message names the first
            missing file and the number missing. Nothing is written then.
    """
    prefix = _prefix(layout)
    samples = list(samples)
    masks_dir = Path(masks_dir)
    missing: list[Path] = []
    for s in samples:
        safe_relative_id(s.video_id, "video id", f"sample {s.id}")
        safe_relative_id(s.expression_id, "expression id", f"sample {s.id}")
        for frame in s.frame_names:
            path = masks_dir / s.video_id / s.expression_id / f"{frame}.png"
            if not path.is_file():
                missing.append(path)
    if missing and not fill_missing:
        raise FileNotFoundError(f"{missing[0]}: prediction not found ({len(missing)} frame PNGs missing under "
                                f"{masks_dir}; pass fill_missing=True to submit them empty)")
    files = 0
    with atomic_write(out_path, binary=True) as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as zf:
        for s in samples:
            for frame in s.frame_names:
                path = masks_dir / s.video_id / s.expression_id / f"{frame}.png"
                if path.is_file():
                    mask = _read_prediction(path, s.height, s.width)
                else:
                    mask = np.zeros((s.height, s.width), dtype=bool)
                info = zipfile.ZipInfo(f"{prefix}{s.video_id}/{s.expression_id}/{frame}.png", date_time=_ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, _png_bytes(mask))
                files += 1
    return SubmissionSummary(path=Path(out_path), layout=layout, expressions=len(samples), files=files,
                             filled=len(missing))
