"""Segment a video by text: per frame, or keyframes from the model carried through the video by SAM2.

Strategies (``segment_video(..., strategy=...)``, ``text4seg segment-video --video-strategy``):

- ``per-frame``: the model answers on every ``frame_stride``-th frame; a frame in between takes the mask of the
  nearest segmented frame (the earlier one on a tie). With ``temporal_drafts`` (default) the frames are
  answered in order and each answer drafts from the previous answered frame's (the ``fast`` decoder verifies
  the drafts: the same answers as frame by frame, in fewer forward passes); ``streams`` frame sequences are
  decoded side by side in one batch.
- ``propagate``: the model answers on keyframes only and :class:`text4seg.refine.sam2_video.Sam2Propagator`
  carries their masks forward and backward. Keyframes (``keyframes=``): ``first``, ``middle``, ``best`` (the
  model answers on ``candidates`` frames spread over the video; the keyframe is the non-empty answer the model
  is most sure of, by the mean log-probability of its descriptor tokens) or ``stride:N`` (every N-th frame,
  each a prompt for the same object). When every keyframe answer is all background the target is absent: the
  whole video is empty and SAM2 is not called.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["STRATEGIES", "VideoSegmentation", "parse_keyframes", "segment_video", "keyframe_candidates",
           "segment_video_file", "video_record"]

STRATEGIES = ("per-frame", "propagate")


@dataclass
class VideoSegmentation:
    """The masks of one expression through a video.

    Attributes:
        masks: (T, H, W) bool.
        sources: per frame ``"model"`` (answered by the model), ``"nearest"`` (copied from the nearest answered
            frame), ``"propagated"`` (SAM2) or ``"empty"`` (no target found on any keyframe).
        keyframes: the frames whose model answer seeded SAM2 (propagate), or every answered frame (per-frame).
        scores: frame -> descriptor confidence of each answer scored (``best`` candidates).
        texts: frame -> the model's answer.
        model_calls: answers generated; forward_passes: decoder passes over them; sam2_calls: SAM2 passes.
        repaired: answers that needed repairs; repair_examples: a few of the repairs.
        temporal_drafts: whether the answers drafted from the previous frame's; context_frames: earlier frames
            shown with each answered frame.
        seconds: wall time.
        strategy: the strategy used (with its keyframe rule for propagate).
    """

    masks: np.ndarray
    sources: list[str]
    keyframes: list[int]
    scores: dict[int, float | None] = field(default_factory=dict)
    texts: dict[int, str] = field(default_factory=dict)
    model_calls: int = 0
    forward_passes: int = 0
    sam2_calls: int = 0
    seconds: float = 0.0
    strategy: str = "per-frame"
    repaired: int = 0
    repair_examples: list[str] = field(default_factory=list)
    temporal_drafts: bool = False
    context_frames: int = 0


def parse_keyframes(rule: str) -> tuple[str, int | None]:
    """``first`` | ``middle`` | ``best`` | ``stride:N`` -> (kind, N)."""
    if rule in ("first", "middle", "best"):
        return rule, None
    kind, sep, value = str(rule).partition(":")
    if kind == "stride" and sep:
        try:
            step = int(value)
        except ValueError:
            step = 0
        if step >= 1:
            return "stride", step
    raise ValueError(f"--keyframes {rule!r}: expected first, middle, best or stride:N with N >= 1")


def keyframe_candidates(num_frames: int, rule: str, candidates: int = 4) -> list[int]:
    """The frames the model answers on for a keyframe rule (``best``: ``candidates`` spread evenly, ends
    included)."""
    kind, step = parse_keyframes(rule)
    if num_frames < 1:
        raise ValueError("no frames")
    if kind == "first":
        return [0]
    if kind == "middle":
        return [num_frames // 2]
    if kind == "stride":
        return list(range(0, num_frames, step))
    if candidates < 1:
        raise ValueError(f"candidates {candidates}: expected >= 1")
    return sorted({int(round(x)) for x in np.linspace(0, num_frames - 1, min(candidates, num_frames))})


def _ask(segmenter: Any, frames: Sequence[np.ndarray], part: Sequence[int], expression: str | None,
         instruction: str | None, previous: Sequence[Any] | None = None, context_frames: int = 0) -> list[Any]:
    """One batched call for the frames ``part``; with ``context_frames`` K each prompt shows the K frames before
    its frame too (:func:`text4seg.items.video.context_indices`)."""
    from text4seg.items.video import context_indices

    def shown(k: int) -> Any:
        if not context_frames:
            return frames[k]
        return [frames[c] for c in context_indices(k, context_frames)] + [frames[k]]

    extra = {} if previous is None else {"previous": [None if p is None else [p] for p in previous]}
    if expression is not None:
        answers = segmenter.segment_many([(shown(k), expression) for k in part], **extra)
    else:
        answers = segmenter.segment_many([(shown(k), None) for k in part], instruction=instruction, **extra)
    return [r[0] for r in answers]


def _answer_in_order(segmenter: Any, frames: Sequence[np.ndarray], indices: Sequence[int], expression: str | None,
                     instruction: str | None, progress: bool = False, streams: int = 1,
                     context_frames: int = 0) -> list[Any]:
    """The model's answers on ``indices``, each drafting from the answer on the index before it: ``streams``
    contiguous runs of ``indices`` advance side by side, one frame of each per batch."""
    from tqdm.auto import tqdm

    streams = max(1, min(streams, len(indices)))
    bounds = np.linspace(0, len(indices), streams + 1).round().astype(int)
    runs = [list(indices[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    by_frame: dict[int, Any] = {}
    with tqdm(total=len(indices), desc="frames", unit="frame", disable=not progress, leave=False) as bar:
        for step in range(max(len(run) for run in runs)):
            part = [run[step] for run in runs if step < len(run)]
            previous = [by_frame[run[step - 1]] if step else None for run in runs if step < len(run)]
            for k, result in zip(part, _ask(segmenter, frames, part, expression, instruction, previous,
                                            context_frames)):
                by_frame[k] = result
            bar.update(len(part))
    return [by_frame[k] for k in indices]


def _answer(segmenter: Any, frames: Sequence[np.ndarray], indices: Sequence[int], expression: str | None,
            instruction: str | None, progress: bool = False, chunk: int = 8, context_frames: int = 0) -> list[Any]:
    """The model's answers on ``indices``, in chunks of frames (a progress bar over frames); with
    ``context_frames`` K each prompt shows the K frames before its frame too."""
    from tqdm.auto import tqdm

    out: list[Any] = []
    with tqdm(total=len(indices), desc="frames", unit="frame", disable=not progress, leave=False) as bar:
        for start in range(0, len(indices), chunk):
            part = indices[start:start + chunk]
            out.extend(_ask(segmenter, frames, part, expression, instruction, context_frames=context_frames))
            bar.update(len(part))
    return out


def _repairs(results: Sequence[Any]) -> tuple[int, list[str]]:
    examples: list[str] = []
    for r in results:
        for message in r.repairs:
            if message not in examples and len(examples) < 3:
                examples.append(message)
    return sum(1 for r in results if r.repairs), examples


def segment_video(
    segmenter: Any,
    frames: Sequence[Any],
    expression: str | None = None,
    *,
    instruction: str | None = None,
    strategy: str = "per-frame",
    frame_stride: int = 1,
    keyframes: str = "first",
    candidates: int = 4,
    propagator: Any = None,
    progress: bool = False,
    context_frames: int = 0,
    temporal_drafts: bool = True,
    streams: int = 1,
) -> VideoSegmentation:
    """Masks of ``expression`` (or ``instruction``) in every frame.

    Args:
        segmenter: a :class:`text4seg.Segmenter`.
        frames: RGB frames ((H, W, 3) uint8 arrays or PIL images), all of one size, in order.
        expression, instruction: exactly one: a referring expression or a free-form request sent as is.
        strategy: ``"per-frame"`` or ``"propagate"`` (see the module docstring).
        frame_stride: per-frame: answer every k-th frame.
        keyframes, candidates: propagate: the keyframe rule and the number of ``best`` candidates.
        propagator: propagate: a :class:`~text4seg.refine.sam2_video.Sam2Propagator`.
        progress: a progress bar over the frames the model answers on.
        context_frames: K >= 1 for a model trained with context frames: each answer is asked about the K
            frames before its frame and the frame itself.
        temporal_drafts: per-frame: answer frames in order, each drafting from the previous answered frame's
            answer (lossless; fewer forward passes in the ``fast`` modes, no effect in the others). False:
            frames are answered independently, 8 per batch.
        streams: per-frame with temporal drafts: frame runs decoded side by side in one batch (1: every frame
            after the first drafts from its predecessor).

    Raises:
        ValueError: bad options, no frames, frames of different sizes, ``propagate`` without a propagator.
    """
    if (expression is None) == (instruction is None):
        raise ValueError("segment_video: give an expression or instruction=, not both")
    if strategy not in STRATEGIES:
        raise ValueError(f"--video-strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
    if isinstance(context_frames, bool) or not isinstance(context_frames, int) or context_frames < 0:
        raise ValueError(f"--context-frames {context_frames!r}: expected an integer >= 0")
    if isinstance(frame_stride, bool) or not isinstance(frame_stride, int) or frame_stride < 1:
        raise ValueError(f"--frame-stride {frame_stride!r}: expected an integer >= 1")
    if isinstance(streams, bool) or not isinstance(streams, int) or streams < 1:
        raise ValueError(f"streams {streams!r}: expected an integer >= 1")
    arrays = [np.asarray(f.convert("RGB")) if hasattr(f, "convert") else np.asarray(f) for f in frames]
    if not arrays:
        raise ValueError("segment_video: no frames")
    height, width = arrays[0].shape[:2]
    for k, array in enumerate(arrays):
        if array.shape[:2] != (height, width):
            raise ValueError(f"frame {k}: size {array.shape[1]}x{array.shape[0]}, frame 0 is {width}x{height}")
    start = time.perf_counter()
    count = len(arrays)
    if strategy == "per-frame":
        answered = list(range(0, count, frame_stride))  # as `text4seg eval rvos --frame-stride`
        if temporal_drafts:
            results = _answer_in_order(segmenter, arrays, answered, expression, instruction, progress, streams,
                                       context_frames=context_frames)
        else:
            results = _answer(segmenter, arrays, answered, expression, instruction, progress,
                              context_frames=context_frames)
        masks = np.zeros((count, height, width), dtype=bool)
        sources = ["nearest"] * count
        by_frame = dict(zip(answered, results))
        for k in range(count):
            nearest = min(answered, key=lambda a: (abs(a - k), a))
            masks[k] = by_frame[nearest].mask
            if nearest == k:
                sources[k] = "model"
        repaired, examples = _repairs(results)
        return VideoSegmentation(
            masks, sources, answered, texts={k: r.text for k, r in by_frame.items()}, model_calls=len(results),
            forward_passes=sum(r.forward_passes for r in results), seconds=time.perf_counter() - start,
            strategy=f"per-frame:{frame_stride}" if frame_stride > 1 else "per-frame", repaired=repaired,
            repair_examples=examples, temporal_drafts=bool(temporal_drafts), context_frames=context_frames)
    if propagator is None:
        raise ValueError("--video-strategy propagate needs a SAM2 model (--sam2 ID|DIR)")
    kind, _ = parse_keyframes(keyframes)
    chosen = keyframe_candidates(count, keyframes, candidates)
    results = _answer(segmenter, arrays, chosen, expression, instruction, progress, context_frames=context_frames)
    texts = {k: r.text for k, r in zip(chosen, results)}
    scores: dict[int, float | None] = {}
    if kind == "best":
        confidence = getattr(segmenter.backend, "confidence", None)
        if confidence is None:
            raise ValueError("--keyframes best needs a backend that scores answers (HFGenerationBackend)")
        from PIL import Image

        scores = dict(zip(chosen, confidence([Image.fromarray(arrays[k]) for k in chosen],
                                             [r.prompt for r in results], [r.text for r in results])))
        found = [(k, r) for k, r in zip(chosen, results) if r.mask.any()]
        if found:
            best = max(found, key=lambda kr: (scores[kr[0]] if scores[kr[0]] is not None else -np.inf, -kr[0]))
            prompts = {best[0]: best[1].mask}
        else:
            prompts = {}
    else:
        prompts = {k: r.mask for k, r in zip(chosen, results) if r.mask.any()}
    passes = sum(r.forward_passes for r in results)
    label = f"propagate:{keyframes}"
    repaired, examples = _repairs(results)
    if not prompts:
        masks = np.zeros((count, height, width), dtype=bool)
        return VideoSegmentation(masks, ["empty"] * count, [], scores, texts, len(results), passes, 0,
                                 time.perf_counter() - start, label, repaired, examples)
    propagated = propagator.propagate(arrays, prompts)
    sources = ["model" if s == "keyframe" else s for s in propagated.sources]
    return VideoSegmentation(propagated.masks, sources, sorted(prompts), scores, texts, len(results), passes,
                             propagated.sam2_calls, time.perf_counter() - start, label, repaired, examples)


def segment_video_file(
    video: str | os.PathLike,
    expression: str | None = None,
    *,
    model: str,
    adapter: str | None = None,
    instruction: str | None = None,
    out: str | os.PathLike = "video_masks",
    gif: bool = False,
    load: Any = None,
    decoding: Any = None,
    question_template: str | None = None,
    question_index: int | None = None,
    strategy: str = "per-frame",
    frame_stride: int = 1,
    keyframes: str = "first",
    candidates: int = 4,
    sam2: str | None = None,
    max_frames: int | None = None,
    progress: bool = True,
    context_frames: int = 0,
    temporal_drafts: bool = True,
) -> dict:
    """``text4seg segment-video``: read a video (file or folder of frames), segment it, write ``OUT/masks/<frame>.png``
    (0/255, frame size), ``OUT/overlay.mp4`` (``.gif`` with ``gif``) and ``OUT/result.json`` (per-frame COCO RLE,
    sources, keyframes and their scores, timing). Returns the result record.

    Raises:
        ValueError, FileNotFoundError: bad options or input (nothing is written then).
    """
    from text4seg.images import overlay_mask
    from text4seg.io import atomic_directory, write_json_atomic
    from text4seg.segment import resolve_question
    from text4seg.segmenter import Segmenter
    from text4seg.video_io import read_frames, write_gif, write_mp4

    if strategy not in STRATEGIES:
        raise ValueError(f"--video-strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
    if strategy == "propagate":
        parse_keyframes(keyframes)
        if sam2 is None:
            raise ValueError("--video-strategy propagate needs --sam2 ID|DIR (e.g. facebook/sam2.1-hiera-large)")
    frames = read_frames(video, max_frames=max_frames)  # fails early, naming the file
    t0 = time.perf_counter()
    segmenter = Segmenter.from_pretrained(model, adapter, load=load, decoding=decoding,
                                          question_template=resolve_question(question_template, question_index))
    propagator = None
    if strategy == "propagate":
        from text4seg.refine.sam2_video import Sam2Propagator

        device = getattr(load, "device", None)
        propagator = Sam2Propagator.from_pretrained(sam2, device=device)
    load_seconds = time.perf_counter() - t0
    result = segment_video(segmenter, frames.frames, expression, instruction=instruction, strategy=strategy,
                           frame_stride=frame_stride, keyframes=keyframes, candidates=candidates,
                           propagator=propagator, progress=progress, context_frames=context_frames,
                           temporal_drafts=temporal_drafts)
    out = Path(out)
    from PIL import Image

    with atomic_directory(out / "masks", overwrite=True) as tmp:
        for name, mask in zip(frames.names, result.masks):
            Image.fromarray(mask.astype(np.uint8) * 255).save(tmp / f"{name}.png")
    overlays = [np.asarray(overlay_mask(frame, mask)) for frame, mask in zip(frames.frames, result.masks)]
    overlay_path = out / ("overlay.gif" if gif else "overlay.mp4")
    (write_gif if gif else write_mp4)(overlay_path, overlays, frames.fps)
    record = video_record(result, frames, video=video, query=expression if expression is not None else instruction,
                          model=model, adapter=adapter, load_seconds=load_seconds, overlay=overlay_path,
                          masks_dir=out / "masks")
    write_json_atomic(out / "result.json", record)
    return record


def video_record(result: VideoSegmentation, frames: Any, *, video: str | os.PathLike, query: str | None,
                 model: str | os.PathLike, adapter: str | os.PathLike | None, load_seconds: float,
                 overlay: str | os.PathLike, masks_dir: str | os.PathLike) -> dict:
    """The ``result.json`` record of ``text4seg segment-video`` (and of the demo's Video tab): the run's options
    and counts, then per frame its name, source, mask PNG (``masks_dir/<frame>.png``), COCO RLE and the model's
    answer where it answered.

    Args:
        result: :func:`segment_video`'s answer; frames: the :class:`text4seg.video_io.VideoFrames` it ran on.
        video, query, model, adapter, load_seconds, overlay: reported as given.
    """
    from text4seg.datasets.coco_masks import encode_rle

    return {
        "video": str(video),
        "query": query,
        "model": str(model),
        "adapter": None if adapter is None else str(adapter),
        "frames": len(frames.frames),
        "size": list(frames.size),
        "fps": frames.fps,
        "strategy": result.strategy,
        "temporal_drafts": result.temporal_drafts,
        "context_frames": result.context_frames,
        "keyframes": [frames.names[k] for k in result.keyframes],
        "scores": {frames.names[k]: v for k, v in result.scores.items()},
        "model_calls": result.model_calls,
        "forward_passes": result.forward_passes,
        "sam2_calls": result.sam2_calls,
        "load_seconds": round(load_seconds, 3),
        "seconds": round(result.seconds, 3),
        "overlay": str(overlay),
        "per_frame": [
            {"frame": name, "source": source, "mask_png": str(Path(masks_dir) / f"{name}.png"),
             "rle": encode_rle(mask), **({"text": result.texts[k]} if k in result.texts else {})}
            for k, (name, source, mask) in enumerate(zip(frames.names, result.sources, result.masks))
        ],
    }
