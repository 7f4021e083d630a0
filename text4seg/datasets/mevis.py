"""MeViS (motion expressions video segmentation) and the synthetic video set, which ships in the same layout.

Layout under the data root (``<folder>`` is ``mevis`` or ``synthetic-video``)::

    <folder>/<split>/JPEGImages/<vid>/<frame>.jpg
    <folder>/<split>/meta_expressions.json   {"videos": {vid: {"expressions": {exp_id: {"exp": str,
                                              "obj_id": [int, ...], "anno_id": [int, ...]}},
                                              "frames": [frame, ...]}}}
    <folder>/<split>/mask_dict.json          {str(anno_id): [COCO RLE {"size": [h, w], "counts": str} | null,
                                              one per frame]}    (splits with ground truth only)

The target of an expression is the union of its ``anno_id`` masks (``null`` = empty in that frame); an
expression with an empty ``anno_id`` list refers to nothing (``no_target``). MeViS splits: ``train`` and
``valid_u`` have ground truth, ``valid`` is scored by the server. ``mask_dict.json`` is loaded once per read,
when the first sample with ground truth is built; each mask is decoded only when asked for.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from text4seg.datasets.coco_masks import SkipLog, decode_rle, segmentation_to_rle
from text4seg.datasets.video_samples import (
    BadVideoInput,
    NoGroundTruth,
    VideoFrames,
    VideoSample,
    expression_text,
    int_list,
    iter_video_samples,
    load_json,
    load_videos_meta,
    sample_id,
)

__all__ = ["MEVIS_LAYOUTS", "RLEMaskStore", "RLEMasks", "read_mevis", "count_mevis", "mevis_dir"]

# dataset -> (folder under the data root, {split: has ground truth})
MEVIS_LAYOUTS: dict[str, tuple[str, dict[str, bool]]] = {
    "mevis": ("mevis", {"train": True, "valid_u": True, "valid": False}),
    "synthetic-video": ("synthetic-video", {"train": True, "valid_u": True}),
}


def _layout(dataset: str, split: str) -> tuple[str, bool]:
    if dataset not in MEVIS_LAYOUTS:
        raise ValueError(f"unknown MeViS-layout dataset {dataset!r}; known: {', '.join(sorted(MEVIS_LAYOUTS))}")
    folder, splits = MEVIS_LAYOUTS[dataset]
    if split not in splits:
        raise ValueError(f"{dataset} has no split {split!r}; splits: {', '.join(splits)}")
    return folder, splits[split]


def mevis_dir(root: str | os.PathLike, split: str, dataset: str = "mevis") -> Path:
    """``<root>/<folder>/<split>`` of a MeViS-layout dataset."""
    return Path(root) / _layout(dataset, split)[0] / split


class RLEMaskStore:
    """A ``mask_dict.json`` (``{str(anno_id): [RLE | null per frame]}``), loaded on first use and shared.

    Entries are checked (length, RLE sizes) once per annotation id without decoding; decoding happens per frame
    on demand.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._data: dict | None = None
        self._checked: dict[str, tuple[int, int, int]] = {}

    def data(self) -> dict:
        if self._data is None:
            payload = load_json(self.path, "mask_dict.json (per-annotation RLE masks)")
            if not isinstance(payload, dict):
                raise ValueError(f"{self.path}: expected an object {{anno_id: [RLE or null per frame]}}")
            self._data = payload
        return self._data

    def check(self, anno_id: int | str, frames: VideoFrames) -> None:
        """Check that ``anno_id`` has one RLE (or null) per frame, each of the frame size.

        Raises:
            BadVideoInput: the id is absent, the entry is not a list of the video's length, or an RLE is
                malformed or of another size than the frames.
        """
        key = str(anno_id)
        shape = (len(frames.names), frames.height, frames.width)
        if self._checked.get(key) == shape:
            return
        entry = self.data().get(key)
        if entry is None:
            raise BadVideoInput("anno_id absent", self.path, f"anno_id {key} is not in mask_dict.json")
        if not isinstance(entry, list) or len(entry) != shape[0]:
            got = len(entry) if isinstance(entry, list) else type(entry).__name__
            raise BadVideoInput("malformed masks", self.path,
                                f"anno_id {key}: expected a list of {shape[0]} RLEs or nulls (one per frame), "
                                f"got {got}")
        for index, rle in enumerate(entry):
            if rle is None:
                continue
            size = rle.get("size") if isinstance(rle, dict) else None
            if not (isinstance(size, list) and len(size) == 2 and isinstance(rle.get("counts"), (str, list))):
                raise BadVideoInput("malformed masks", self.path,
                                    f"anno_id {key}, frame {frames.names[index]!r}: expected null or an RLE "
                                    f"{{'size': [h, w], 'counts': ...}}")
            if size != [frames.height, frames.width]:
                raise BadVideoInput("rle size", self.path,
                                    f"anno_id {key}, frame {frames.names[index]!r}: RLE size {size} does not "
                                    f"match the frame size [{frames.height}, {frames.width}]")
        self._checked[key] = shape

    def frame(self, anno_id: int | str, index: int, height: int, width: int, frame_name: str) -> np.ndarray:
        """Decoded ``(height, width)`` bool mask of one annotation in one frame (all False for null)."""
        rle = self.data()[str(anno_id)][index]
        if rle is None:
            return np.zeros((height, width), dtype=bool)
        try:
            return decode_rle(segmentation_to_rle(rle, height, width))
        except ValueError as err:
            raise BadVideoInput("bad rle", self.path, f"anno_id {anno_id}, frame {frame_name!r}: {err}") from err


class RLEMasks:
    """Mask source of one expression: the union of its annotations' RLE masks, per frame."""

    def __init__(self, store: RLEMaskStore, anno_ids: list, frames: VideoFrames) -> None:
        self.store = store
        self.anno_ids = list(anno_ids)
        self.frames = frames

    def frame(self, index: int) -> np.ndarray:
        out = np.zeros((self.frames.height, self.frames.width), dtype=bool)
        for anno_id in self.anno_ids:
            out |= self.store.frame(anno_id, index, self.frames.height, self.frames.width,
                                    self.frames.names[index])
        return out


def read_mevis(
    root: str | os.PathLike,
    split: str,
    dataset: str = "mevis",
    skip_bad: bool = False,
    skips: SkipLog | None = None,
    check_masks: bool = False,
) -> Iterator[VideoSample]:
    """Iterate the expressions of a MeViS-layout split lazily (videos and expressions in meta-file order).

    The meta file and ``mask_dict.json`` are read (and checked) when this is called; frames and masks as the
    iterator is consumed.

    Args:
        root: data root holding ``mevis/`` (or ``synthetic-video/``).
        split: ``"train"``, ``"valid_u"`` or ``"valid"`` (no ground truth) for MeViS; ``"train"`` or
            ``"valid_u"`` for ``synthetic-video``.
        dataset: ``"mevis"`` or ``"synthetic-video"`` (see :data:`MEVIS_LAYOUTS`).
        skip_bad: skip (and count in ``skips``) bad videos and expressions instead of raising.
        skips: where skips are counted by reason.
        check_masks: decode every mask while reading, so bad RLEs are found (and skipped) here.

    Yields:
        :class:`VideoSample` with ``object_ids`` = ``obj_id``, ``extra["anno_id"]``, and masks decoded on demand.

    Raises:
        FileNotFoundError / ValueError: a missing or malformed meta file or ``mask_dict.json``; without
            ``skip_bad``, a bad video or expression (naming the file, video and expression).
    """
    folder, has_gt = _layout(dataset, split)
    root = Path(root)
    base = root / folder / split
    meta_path = base / "meta_expressions.json"
    videos = load_videos_meta(meta_path, f"{dataset} meta_expressions.json")
    store = RLEMaskStore(base / "mask_dict.json") if has_gt else None
    if store is not None:
        store.data()  # a missing or malformed mask_dict.json fails the whole read, before any sample

    def make(video_id: str, exp_id: str, entry: dict, frames: VideoFrames, video: dict) -> VideoSample:
        text = expression_text(entry, meta_path)
        if store is None:
            obj_ids = entry.get("obj_id", [])
            anno_ids = entry.get("anno_id", [])
            obj_ids = obj_ids if isinstance(obj_ids, list) else []
            anno_ids = anno_ids if isinstance(anno_ids, list) else []
            source = NoGroundTruth(dataset, split)
        else:
            obj_ids = int_list(entry, "obj_id", meta_path)
            anno_ids = int_list(entry, "anno_id", meta_path)
            for anno_id in anno_ids:
                store.check(anno_id, frames)
            source = RLEMasks(store, anno_ids, frames)
        return VideoSample(
            id=sample_id(dataset, split, video_id, exp_id), dataset=dataset, split=split, video_id=video_id,
            expression_id=exp_id, expression=text, frame_names=frames.names, frame_paths=frames.paths,
            height=frames.height, width=frames.width, object_ids=list(obj_ids),
            no_target=store is not None and not anno_ids, extra={"anno_id": list(anno_ids)},
            mask_source=source,
        )

    return iter_video_samples(videos, meta_path, root=root, frames_dir=base / "JPEGImages", dataset=dataset,
                              split=split, make=make, skip_bad=skip_bad, skips=skips, check_masks=check_masks)


def count_mevis(root: str | os.PathLike, split: str, dataset: str = "mevis", **_: object) -> int:
    """Number of expressions in the split's meta file (skipped ones are not subtracted)."""
    folder, _has_gt = _layout(dataset, split)
    meta_path = Path(root) / folder / split / "meta_expressions.json"
    videos = load_videos_meta(meta_path, f"{dataset} meta_expressions.json")
    return sum(len(v["expressions"]) for v in videos.values()
               if isinstance(v, dict) and isinstance(v.get("expressions"), dict))
