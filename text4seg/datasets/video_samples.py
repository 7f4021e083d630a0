"""Video samples (one referring expression over a video, masks decoded on demand) and what video readers share.

Every video reader yields :class:`VideoSample` objects. A sample knows its frames (names and paths, in the
order of the meta file) and how to decode its target masks, but decodes nothing until :meth:`VideoSample.mask`
or :meth:`VideoSample.masks` is called, so a whole split can be listed cheaply.

Readers report bad input the same way: a :class:`BadVideoInput` raised while a video or an expression is read
becomes, through :func:`report_bad`, a ``ValueError`` / ``FileNotFoundError`` naming the file, the video and the
expression, or (with ``skip_bad=True``) one skip counted in a :class:`~text4seg.datasets.coco_masks.SkipLog`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from text4seg.datasets.coco_masks import SkipLog
from text4seg.paths import unsafe_id_reason

__all__ = [
    "VideoSample",
    "BadVideoInput",
    "MaskSource",
    "NoGroundTruth",
    "REVOS_TYPES",
    "VideoFrames",
    "iter_video_samples",
    "load_json",
    "load_videos_meta",
    "report_bad",
    "video_frames",
]

# type_id values of ReVOS expressions (defined by its reference scorer).
REVOS_TYPES: dict[int, str] = {0: "referring", 1: "reasoning", 2: "no_target"}


@dataclass
class VideoSample:
    """One referring expression over one video, with its target masks decoded lazily.

    Attributes:
        id: unique within the dataset and split, ``"<dataset>_<split>_<video_id>_<expression_id>"``.
        dataset: reader name, e.g. ``"mevis"``.
        split: split name as the benchmark spells it (``"train"``, ``"valid_u"``, ...).
        video_id: video id from the meta file (a safe relative path, possibly nested: ``"UVO/all/-fbscFfkh4M"``).
        expression_id: expression id from the meta file (a string, e.g. ``"0"``).
        expression: the referring sentence (ReVOS reasoning expressions are questions or instructions).
        frame_names: frame names without extension, in the order of the meta file's ``frames`` list.
        frame_paths: frame image paths relative to the data root, same order.
        height, width: frame size in pixels (from the first frame's header).
        object_ids: the objects the expression refers to (``obj_id``; strings for Ref-YouTube-VOS/Ref-DAVIS,
            ints for MeViS/ReVOS); empty when the meta file gives none (splits without ground truth).
        type_id: ReVOS expression type (0 referring, 1 reasoning, 2 no target), None elsewhere.
        no_target: True when the expression refers to nothing (ReVOS ``type_id`` 2, MeViS-layout expressions
            with an empty ``anno_id`` list).
        extra: dataset-specific JSON-able fields (``anno_id``, ``category``, ...).
    """

    id: str
    dataset: str
    split: str
    video_id: str
    expression_id: str
    expression: str
    frame_names: list[str]
    frame_paths: list[str]
    height: int
    width: int
    object_ids: list = field(default_factory=list)
    type_id: int | None = None
    no_target: bool = False
    extra: dict = field(default_factory=dict)
    mask_source: MaskSource | None = field(default=None, repr=False, compare=False)
    foreground_source: MaskSource | None = field(default=None, repr=False, compare=False)

    @property
    def num_frames(self) -> int:
        return len(self.frame_names)

    @property
    def key(self) -> str:
        """``"<video_id>/<expression_id>"``: where this expression's masks go in a masks folder or submission."""
        return f"{self.video_id}/{self.expression_id}"

    @property
    def type_name(self) -> str | None:
        """``"referring"``, ``"reasoning"`` or ``"no_target"`` for ReVOS, None elsewhere."""
        return None if self.type_id is None else REVOS_TYPES.get(self.type_id)

    @property
    def has_masks(self) -> bool:
        """False for splits without ground truth (scored by a benchmark server)."""
        return self.mask_source is not None and not isinstance(self.mask_source, NoGroundTruth)

    def _frame_from(self, source: MaskSource | None, what: str, frame_index: int) -> np.ndarray:
        n = self.num_frames
        if not -n <= frame_index < n:
            raise IndexError(f"frame index {frame_index} out of range for {n} frames of video {self.video_id!r}")
        if source is None:
            raise ValueError(f"{self.dataset} {self.split}: sample {self.id!r} has no {what}")
        try:
            return source.frame(frame_index % n)
        except BadVideoInput as err:
            report_bad(err, self.video_id, self.expression_id, self.id, False, None)
            raise  # unreachable: report_bad raises when skip_bad is False

    def mask(self, frame_index: int) -> np.ndarray:
        """Target mask of one frame, decoded now (nothing is cached).

        Args:
            frame_index: position in :attr:`frame_names` (negative indices count from the end).

        Returns:
            ``(height, width)`` bool, all False where the target is absent.

        Raises:
            IndexError: ``frame_index`` out of range.
            ValueError: the split has no ground truth, or the annotation is bad (naming file, video, expression).
            FileNotFoundError: an annotation file is missing (naming file, video, expression).
        """
        return self._frame_from(self.mask_source, "ground-truth masks", frame_index)

    def masks(self) -> np.ndarray:
        """All target masks, ``(num_frames, height, width)`` bool (see :meth:`mask` for errors)."""
        out = np.zeros((self.num_frames, self.height, self.width), dtype=bool)
        for index in range(self.num_frames):
            out[index] = self.mask(index)
        return out

    def foreground(self, frame_index: int) -> np.ndarray:
        """ReVOS only: union of all annotated objects of the video in one frame (for the R score).

        Returns:
            ``(height, width)`` bool. Raises ``ValueError`` for datasets without foreground masks.
        """
        return self._frame_from(self.foreground_source, "foreground masks", frame_index)

    def foregrounds(self) -> np.ndarray:
        """ReVOS only: :meth:`foreground` of every frame, ``(num_frames, height, width)`` bool."""
        out = np.zeros((self.num_frames, self.height, self.width), dtype=bool)
        for index in range(self.num_frames):
            out[index] = self.foreground(index)
        return out


class MaskSource(Protocol):
    """Decodes one frame's mask on demand; raises :class:`BadVideoInput` on bad annotations."""

    def frame(self, index: int) -> np.ndarray:
        """``(height, width)`` bool mask of frame ``index`` (0-based, in range)."""
        ...


class NoGroundTruth:
    """Mask source of a split without public ground truth: asking for a mask raises a clear ``ValueError``."""

    def __init__(self, dataset: str, split: str) -> None:
        self.message = (f"{dataset} split {split!r} has no ground-truth masks: it is scored by the benchmark "
                        f"server from a submission")

    def frame(self, index: int) -> np.ndarray:
        raise ValueError(self.message)


class BadVideoInput(Exception):
    """Bad input found while reading a video or expression; :func:`report_bad` raises or counts it.

    Args:
        reason: short reason, the key skips are counted under (e.g. ``"missing frame"``).
        path: the offending file.
        detail: what is wrong, for the message (defaults to ``reason``).
        missing: a missing file (reported as ``FileNotFoundError``) rather than a malformed one (``ValueError``).
    """

    def __init__(self, reason: str, path: str | os.PathLike, detail: str | None = None, missing: bool = False):
        super().__init__(detail or reason)
        self.reason = reason
        self.path = os.fspath(path)
        self.detail = detail or reason
        self.missing = missing


def report_bad(err: BadVideoInput, video_id: object, expression_id: object, sample_id: str,
               skip_bad: bool, skips: SkipLog | None) -> None:
    """Raise ``err`` as ``FileNotFoundError``/``ValueError`` naming file, video and expression, or count a skip.

    Args:
        err: the problem found.
        video_id, expression_id: where it was found (None when unknown).
        sample_id: id of the skipped sample, kept as an example in ``skips``.
        skip_bad: count the skip instead of raising.
        skips: where skips are counted (may be None).
    """
    if skip_bad:
        if skips is not None:
            skips.add(err.reason, sample_id)
        return
    where = f"video {video_id!r}" + ("" if expression_id is None else f", expression {expression_id!r}")
    kind = FileNotFoundError if err.missing else ValueError
    raise kind(f"{err.path}: {where}: {err.detail}") from err


def load_videos_meta(path: Path, what: str) -> dict:
    """The ``"videos"`` object of a meta file (``{"videos": {vid: {...}}}``).

    Raises:
        FileNotFoundError: ``path`` is missing (``what`` says which file the layout needs).
        ValueError: not JSON, or no ``"videos"`` object; the message names ``path``.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    videos = payload.get("videos") if isinstance(payload, dict) else None
    if not isinstance(videos, dict):
        raise ValueError(f"{path}: expected an object with a 'videos' object")
    return videos


def load_json(path: Path, what: str) -> object:
    """Parse a JSON file, naming ``path`` in the errors (``what`` describes it when it is missing)."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err


@dataclass
class VideoFrames:
    """The checked frames of one video: names, paths relative to the data root, and the frame size."""

    names: list[str]
    paths: list[str]
    height: int
    width: int


def video_frames(root: Path, frames_dir: Path, video_id: str, frames: object, meta_path: Path,
                 extension: str = ".jpg") -> VideoFrames:
    """Check a video's ``frames`` list against the frame files and read the frame size from the first header.

    Args:
        root: data root (paths are returned relative to it).
        frames_dir: the ``JPEGImages`` folder holding ``<video_id>/<frame><extension>``.
        video_id: checked video id.
        frames: the meta file's ``frames`` value (must be a non-empty list of safe names).
        meta_path: the meta file, for messages.

    Raises:
        BadVideoInput: malformed ``frames``, a missing frame file (``missing``), or an unreadable first frame.
    """
    from text4seg.images import image_size

    if not isinstance(frames, list) or not frames:
        raise BadVideoInput("malformed frames", meta_path, "'frames' must be a non-empty list of frame names")
    for name in frames:
        why = unsafe_id_reason(name)
        if why is not None:
            raise BadVideoInput("malformed frames", meta_path, f"frame name {name!r} {why}")
    names: list[str] = list(frames)
    if len(set(names)) != len(names):
        raise BadVideoInput("malformed frames", meta_path, "'frames' lists a frame twice")
    files = [frames_dir / video_id / f"{name}{extension}" for name in names]
    for path in files:
        if not path.is_file():
            raise BadVideoInput("missing frame", path, "frame file not found", missing=True)
    try:
        height, width = image_size(files[0])
    except (ValueError, OSError) as err:
        raise BadVideoInput("unreadable frame", files[0], str(err)) from err
    return VideoFrames(names, [p.relative_to(root).as_posix() for p in files], height, width)


def expression_text(entry: dict, meta_path: Path) -> str:
    """The ``exp`` string of an expression entry (stripped, non-empty)."""
    text = entry.get("exp")
    if not isinstance(text, str) or not text.strip():
        raise BadVideoInput("malformed expression", meta_path, "'exp' must be a non-empty string")
    return text.strip()


def int_list(entry: dict, key: str, meta_path: Path) -> list[int]:
    """An expression's list of integer ids (``obj_id`` / ``anno_id`` in the MeViS layout)."""
    value = entry.get(key)
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise BadVideoInput("malformed expression", meta_path, f"{key!r} must be a list of integers, got {value!r}")
    return value


def checked_ids(video_id: object, expression_id: object, meta_path: Path) -> tuple[str, str]:
    """Both ids through :func:`~text4seg.paths.safe_relative_id` (they name output paths later)."""
    for field_name, value in (("video id", video_id), ("expression id", expression_id)):
        why = unsafe_id_reason(value)
        if why is not None:
            raise BadVideoInput("unsafe id", meta_path, f"{field_name} {value!r} {why}")
    return video_id, expression_id  # type: ignore[return-value]


def union_of(masks: Sequence[np.ndarray], height: int, width: int) -> np.ndarray:
    """Union of boolean masks, ``(height, width)`` bool (all False for none)."""
    out = np.zeros((height, width), dtype=bool)
    for mask in masks:
        out |= mask
    return out


# make(video_id, expression_id, entry, frames, video) -> VideoSample; raises BadVideoInput on a bad expression.
SampleMaker = Callable[[str, str, dict, VideoFrames, dict], VideoSample]


def iter_video_samples(
    videos: dict,
    meta_path: Path,
    *,
    root: Path,
    frames_dir: Path,
    dataset: str,
    split: str,
    make: SampleMaker,
    skip_bad: bool,
    skips: SkipLog | None,
    check_masks: bool,
) -> Iterator[VideoSample]:
    """The loop every video reader shares: videos in meta-file order, then their expressions in order.

    A bad video (malformed entry, unsafe id, missing frame) fails or skips all of its expressions; a bad
    expression fails or skips itself. With ``check_masks`` every mask of every sample is decoded once before the
    sample is yielded, so that bad annotations are found (and skipped) while reading rather than on use.
    """
    for video_id, video in videos.items():
        expressions = video.get("expressions") if isinstance(video, dict) else None
        exp_ids = list(expressions) if isinstance(expressions, dict) and expressions else [None]
        try:
            if not isinstance(video, dict) or not isinstance(expressions, dict):
                raise BadVideoInput("malformed video", meta_path,
                                    "expected an object with 'expressions' (an object) and 'frames'")
            why = unsafe_id_reason(video_id)
            if why is not None:
                raise BadVideoInput("unsafe id", meta_path, f"video id {video_id!r} {why}")
            frames = video_frames(root, frames_dir, video_id, video.get("frames"), meta_path)
        except BadVideoInput as err:
            for exp_id in exp_ids:
                report_bad(err, video_id, exp_id, sample_id(dataset, split, video_id, exp_id), skip_bad, skips)
            continue
        for exp_id, entry in expressions.items():
            this_id = sample_id(dataset, split, video_id, exp_id)
            try:
                checked_ids(video_id, exp_id, meta_path)
                if not isinstance(entry, dict):
                    raise BadVideoInput("malformed expression", meta_path, "expected an object with 'exp'")
                sample = make(video_id, exp_id, entry, frames, video)
                if check_masks and sample.has_masks:
                    for index in range(sample.num_frames):
                        sample.mask_source.frame(index)  # type: ignore[union-attr]
            except BadVideoInput as err:
                report_bad(err, video_id, exp_id, this_id, skip_bad, skips)
                continue
            yield sample


def sample_id(dataset: str, split: str, video_id: str, expression_id: str) -> str:
    """``"<dataset>_<split>_<video_id>_<expression_id>"`` (the :attr:`VideoSample.id` convention)."""
    return f"{dataset}_{split}_{video_id}_{expression_id}"
