"""ReVOS (reasoning video object segmentation: referring, reasoning and no-target expressions).

Layout under the data root (train and valid videos share the frame folder and the mask files)::

    ReVOS/JPEGImages/<vid>/<frame>.jpg             video ids may be nested: "UVO/all/-fbscFfkh4M"
    ReVOS/meta_expressions_train_.json, ReVOS/meta_expressions_valid_.json
        {"videos": {vid: {"frames": [...], "height": H, "width": W, "expressions": {exp_id: {"exp": str,
         "obj_id": [int, ...], "anno_id": [int, ...], "type_id": 0 | 1 | 2}}}}}
    ReVOS/mask_dict.json                           MeViS format: {str(anno_id): [RLE | null per frame]}
    ReVOS/mask_dict_foreground.json                {vid: {"masks_rle": [RLE per frame],
                                                    "foreground_ratio": [float per frame]}}

``type_id``: 0 referring, 1 reasoning, 2 no target (``no_target``). Targets are the union of the expression's
``anno_id`` masks. The video's foreground (union of all its annotated objects, used by the R score) comes from
``mask_dict_foreground.json``, loaded on the first :meth:`VideoSample.foreground` call.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from text4seg.datasets.coco_masks import SkipLog, decode_rle, segmentation_to_rle
from text4seg.datasets.mevis import RLEMasks, RLEMaskStore
from text4seg.datasets.video_samples import (
    BadVideoInput,
    VideoFrames,
    VideoSample,
    expression_text,
    int_list,
    iter_video_samples,
    load_json,
    load_videos_meta,
    sample_id,
)

__all__ = ["REVOS_SPLITS", "ForegroundStore", "read_revos", "count_revos"]

REVOS_SPLITS = ("train", "valid")


def _meta_path(root: str | os.PathLike, split: str) -> Path:
    if split not in REVOS_SPLITS:
        raise ValueError(f"revos has no split {split!r}; splits: {', '.join(REVOS_SPLITS)}")
    return Path(root) / "ReVOS" / f"meta_expressions_{split}_.json"


class ForegroundStore:
    """``mask_dict_foreground.json``, loaded on first use and shared by the samples of one read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._data: dict | None = None

    def data(self) -> dict:
        if self._data is None:
            payload = load_json(self.path, "ReVOS mask_dict_foreground.json (per-video foreground masks)")
            if not isinstance(payload, dict):
                raise ValueError(f"{self.path}: expected an object {{video_id: {{'masks_rle': [...]}}}}")
            self._data = payload
        return self._data

    def frame(self, video_id: str, index: int, frames: VideoFrames) -> np.ndarray:
        entry = self.data().get(video_id)
        rles = entry.get("masks_rle") if isinstance(entry, dict) else None
        if not isinstance(rles, list) or len(rles) != len(frames.names):
            raise BadVideoInput("malformed foreground", self.path,
                                f"expected 'masks_rle' with {len(frames.names)} RLEs (one per frame) for this "
                                f"video")
        rle = rles[index]
        if rle is None:
            return np.zeros((frames.height, frames.width), dtype=bool)
        try:
            return decode_rle(segmentation_to_rle(rle, frames.height, frames.width))
        except ValueError as err:
            raise BadVideoInput("bad rle", self.path, f"frame {frames.names[index]!r}: {err}") from err


class _VideoForeground:
    def __init__(self, store: ForegroundStore, video_id: str, frames: VideoFrames) -> None:
        self.store, self.video_id, self.frames = store, video_id, frames

    def frame(self, index: int) -> np.ndarray:
        return self.store.frame(self.video_id, index, self.frames)


def read_revos(
    root: str | os.PathLike,
    split: str,
    skip_bad: bool = False,
    skips: SkipLog | None = None,
    check_masks: bool = False,
) -> Iterator[VideoSample]:
    """Iterate the expressions of a ReVOS split lazily (meta-file order).

    Args:
        root: data root holding ``ReVOS/``.
        split: ``"train"`` or ``"valid"``.
        skip_bad: skip (and count in ``skips``) bad videos and expressions instead of raising.
        skips: where skips are counted by reason.
        check_masks: decode every target mask while reading, so bad RLEs are found (and skipped) here.

    Yields:
        :class:`VideoSample` with ``type_id``, ``no_target`` (``type_id == 2``), ``object_ids`` = ``obj_id``,
        ``extra["anno_id"]``; targets and foregrounds decoded on demand.

    Raises:
        FileNotFoundError / ValueError: a missing or malformed meta file or ``mask_dict.json``; without
            ``skip_bad``, a bad video or expression (naming the file, video and expression).
    """
    meta_path = _meta_path(root, split)
    root = Path(root)
    base = root / "ReVOS"
    videos = load_videos_meta(meta_path, "ReVOS meta expressions")
    store = RLEMaskStore(base / "mask_dict.json")
    store.data()
    foreground = ForegroundStore(base / "mask_dict_foreground.json")

    def make(video_id: str, exp_id: str, entry: dict, frames: VideoFrames, video: dict) -> VideoSample:
        text = expression_text(entry, meta_path)
        type_id = entry.get("type_id")
        if type_id not in (0, 1, 2) or isinstance(type_id, bool):
            raise BadVideoInput("malformed expression", meta_path, f"'type_id' must be 0, 1 or 2, got {type_id!r}")
        obj_ids = int_list(entry, "obj_id", meta_path)
        anno_ids = int_list(entry, "anno_id", meta_path)
        for anno_id in anno_ids:
            store.check(anno_id, frames)
        return VideoSample(
            id=sample_id("revos", split, video_id, exp_id), dataset="revos", split=split, video_id=video_id,
            expression_id=exp_id, expression=text, frame_names=frames.names, frame_paths=frames.paths,
            height=frames.height, width=frames.width, object_ids=list(obj_ids), type_id=int(type_id),
            no_target=type_id == 2, extra={"anno_id": list(anno_ids)},
            mask_source=RLEMasks(store, anno_ids, frames),
            foreground_source=_VideoForeground(foreground, video_id, frames),
        )

    return iter_video_samples(videos, meta_path, root=root, frames_dir=base / "JPEGImages", dataset="revos",
                              split=split, make=make, skip_bad=skip_bad, skips=skips, check_masks=check_masks)


def count_revos(root: str | os.PathLike, split: str, **_: object) -> int:
    """Number of expressions in the split's meta file (skipped ones are not subtracted)."""
    videos = load_videos_meta(_meta_path(root, split), "ReVOS meta expressions")
    return sum(len(v["expressions"]) for v in videos.values()
               if isinstance(v, dict) and isinstance(v.get("expressions"), dict))
