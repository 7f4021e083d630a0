"""Ref-YouTube-VOS and Ref-DAVIS17 (DAVIS-2017 converted to the Ref-YouTube-VOS layout by ReferFormer's script).

Layout under the data root (``<folder>`` is ``ref-youtube-vos`` or ``ref-davis``)::

    <folder>/<split>/JPEGImages/<vid>/<frame>.jpg
    <folder>/<split>/Annotations/<vid>/<frame>.png   palette PNG, pixel value = object id, 0 = background
    <folder>/<split>/meta.json                      {"videos": {vid: {"objects": {obj_id: {"category": str,
                                                     "frames": [frame, ...]}}}}}
    <folder>/meta_expressions/<split>/meta_expressions.json
                                                    {"videos": {vid: {"expressions": {exp_id: {"exp": str,
                                                     "obj_id": str}}, "frames": [frame, ...]}}}

The target of an expression is ``annotation == int(obj_id)`` in each frame; frames where the object is absent
are empty targets. When ``meta.json`` is present it is used to check the data: the object must be listed for
the video, and a frame it lists for the object must hold at least one pixel of that id.

Splits: Ref-YouTube-VOS ``train`` (ground truth), ``valid`` (the valid meta file minus the videos of the test
meta file: 202 videos, scored by the server) and ``test`` (frames under ``valid/JPEGImages``, no ground truth);
Ref-DAVIS17 ``train`` and ``valid``, both with ground truth (scored per expression, VISA/Sa2VA convention).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from text4seg.datasets.coco_masks import SkipLog
from text4seg.datasets.video_samples import (
    BadVideoInput,
    NoGroundTruth,
    VideoFrames,
    VideoSample,
    expression_text,
    iter_video_samples,
    load_videos_meta,
    sample_id,
)

__all__ = ["YTVOS_LAYOUTS", "PaletteMasks", "read_ytvos", "count_ytvos"]

# dataset -> (folder, {split: (frames folder, has ground truth)})
YTVOS_LAYOUTS: dict[str, tuple[str, dict[str, tuple[str, bool]]]] = {
    "ref-youtube-vos": ("ref-youtube-vos", {"train": ("train", True), "valid": ("valid", False),
                                            "test": ("valid", False)}),
    "ref-davis17": ("ref-davis", {"train": ("train", True), "valid": ("valid", True)}),
}


def _layout(dataset: str, split: str) -> tuple[Path, str, bool]:
    if dataset not in YTVOS_LAYOUTS:
        raise ValueError(f"unknown Ref-YouTube-VOS-layout dataset {dataset!r}; "
                         f"known: {', '.join(sorted(YTVOS_LAYOUTS))}")
    folder, splits = YTVOS_LAYOUTS[dataset]
    if split not in splits:
        raise ValueError(f"{dataset} has no split {split!r}; splits: {', '.join(splits)}")
    return Path(folder), *splits[split]


class PaletteMasks:
    """Mask source of one expression: ``annotation == obj_id`` in each frame's palette PNG.

    Args:
        paths: one annotation PNG per frame.
        obj_id: the palette index of the object (1..255).
        present: indices of the frames in which ``meta.json`` lists the object (None: unchecked).
        height, width: the frame size every PNG must have.
    """

    def __init__(self, paths: list[Path], obj_id: int, present: set[int] | None, height: int, width: int):
        self.paths = paths
        self.obj_id = obj_id
        self.present = present
        self.height = height
        self.width = width

    def frame(self, index: int) -> np.ndarray:
        path = self.paths[index]
        if not path.is_file():
            raise BadVideoInput("missing annotation", path, "annotation PNG not found", missing=True)
        try:
            with Image.open(path) as image:
                if image.mode not in ("P", "L"):
                    raise BadVideoInput("malformed annotation", path,
                                        f"expected a palette (P) or grayscale (L) PNG, got mode {image.mode}")
                if image.size != (self.width, self.height):
                    raise BadVideoInput("annotation size", path,
                                        f"annotation is {image.size[0]}x{image.size[1]}, the frame is "
                                        f"{self.width}x{self.height}")
                labels = np.asarray(image)
        except (OSError, SyntaxError) as err:
            raise BadVideoInput("malformed annotation", path, f"not a readable PNG ({err})") from err
        mask = labels == self.obj_id
        if self.present is not None and index in self.present and not mask.any():
            raise BadVideoInput("object id absent", path,
                                f"meta.json lists object {self.obj_id} in this frame but the palette PNG has no "
                                f"pixel of that id")
        return mask


def _objects_meta(path: Path) -> dict | None:
    """``meta.json``'s videos (None when the file is absent)."""
    return load_videos_meta(path, "meta.json") if path.is_file() else None


def _expression_videos(base: Path, dataset: str, split: str) -> tuple[Path, dict]:
    meta_path = base / "meta_expressions" / split / "meta_expressions.json"
    videos = load_videos_meta(meta_path, f"{dataset} meta_expressions.json")
    if dataset == "ref-youtube-vos" and split == "valid":
        test_path = base / "meta_expressions" / "test" / "meta_expressions.json"
        test = load_videos_meta(test_path, "ref-youtube-vos test meta_expressions.json (valid = valid - test)")
        videos = {vid: video for vid, video in videos.items() if vid not in test}
    return meta_path, videos


def read_ytvos(
    root: str | os.PathLike,
    split: str,
    dataset: str = "ref-youtube-vos",
    skip_bad: bool = False,
    skips: SkipLog | None = None,
    check_masks: bool = False,
) -> Iterator[VideoSample]:
    """Iterate the expressions of a Ref-YouTube-VOS-layout split lazily (meta-file order).

    Args:
        root: data root holding ``ref-youtube-vos/`` (or ``ref-davis/``).
        split: see the module docstring.
        dataset: ``"ref-youtube-vos"`` or ``"ref-davis17"`` (see :data:`YTVOS_LAYOUTS`).
        skip_bad: skip (and count in ``skips``) bad videos and expressions instead of raising.
        skips: where skips are counted by reason.
        check_masks: decode every mask while reading, so bad annotation PNGs are found (and skipped) here.

    Yields:
        :class:`VideoSample` with ``object_ids = [obj_id]`` (a string; empty on splits without ground truth) and
        ``extra["category"]`` when ``meta.json`` names it.

    Raises:
        FileNotFoundError / ValueError: missing or malformed meta files; without ``skip_bad``, a bad video or
            expression (naming the file, video and expression).
    """
    folder, frames_split, has_gt = _layout(dataset, split)
    root = Path(root)
    base = root / folder
    meta_path, videos = _expression_videos(base, dataset, split)
    objects_path = base / split / "meta.json"
    objects = _objects_meta(objects_path) if has_gt else None
    annotations = base / split / "Annotations"

    def make(video_id: str, exp_id: str, entry: dict, frames: VideoFrames, video: dict) -> VideoSample:
        text = expression_text(entry, meta_path)
        extra: dict = {}
        if not has_gt:
            obj = entry.get("obj_id")
            object_ids = [obj] if isinstance(obj, str) else []
            source = NoGroundTruth(dataset, split)
        else:
            obj = entry.get("obj_id")
            if not (isinstance(obj, str) and obj.isdigit() and 1 <= int(obj) <= 255):
                raise BadVideoInput("malformed expression", meta_path,
                                    f"'obj_id' must be a string object id in 1..255, got {obj!r}")
            present = None
            if objects is not None:
                video_objects = objects.get(video_id)
                table = video_objects.get("objects") if isinstance(video_objects, dict) else None
                obj_meta = table.get(obj) if isinstance(table, dict) else None
                if not isinstance(obj_meta, dict):
                    raise BadVideoInput("object absent", objects_path,
                                        f"object {obj!r} is not listed for this video in meta.json")
                listed = obj_meta.get("frames", [])
                listed = set(listed) if isinstance(listed, list) else set()
                present = {i for i, name in enumerate(frames.names) if name in listed}
                if isinstance(obj_meta.get("category"), str):
                    extra["category"] = obj_meta["category"]
            object_ids = [obj]
            paths = [annotations / video_id / f"{name}.png" for name in frames.names]
            source = PaletteMasks(paths, int(obj), present, frames.height, frames.width)
        return VideoSample(
            id=sample_id(dataset, split, video_id, exp_id), dataset=dataset, split=split, video_id=video_id,
            expression_id=exp_id, expression=text, frame_names=frames.names, frame_paths=frames.paths,
            height=frames.height, width=frames.width, object_ids=object_ids, extra=extra, mask_source=source,
        )

    return iter_video_samples(videos, meta_path, root=root, frames_dir=base / frames_split / "JPEGImages",
                              dataset=dataset, split=split, make=make, skip_bad=skip_bad, skips=skips,
                              check_masks=check_masks)


def count_ytvos(root: str | os.PathLike, split: str, dataset: str = "ref-youtube-vos", **_: object) -> int:
    """Number of expressions of the split (Ref-YouTube-VOS valid: without the test videos)."""
    folder, _frames, _gt = _layout(dataset, split)
    _, videos = _expression_videos(Path(root) / folder, dataset, split)
    return sum(len(v["expressions"]) for v in videos.values()
               if isinstance(v, dict) and isinstance(v.get("expressions"), dict))
