"""Per-frame video evaluation (tasks ``rvos`` and ``reasonvos``), called by :func:`text4seg.evaluation.evaluate`.

The model segments every frame of a video (every ``frame_stride``-th frame with ``frame_stride > 1``; a frame
in between gets the mask of the nearest segmented frame, the earlier one on a tie), with all pending expressions
of the video asked about each frame in one ``Segmenter.segment_many`` call (the frame goes through the vision
tower once in the fast decoding modes); masks come back at frame size. Frames are scored as they are predicted
(:class:`~text4seg.video_metrics.ExpressionAccumulator`), so memory holds two predicted frames per expression,
never a whole video of masks.

Outputs under ``out`` (the same run machinery as the image tasks, :mod:`text4seg.evaluation.shards`):
``run.json``; ``samples.jsonl`` (``samples.rank<R>.jsonl`` when sharded) with one line per finished expression
(:mod:`text4seg.evaluation.video_scoring`), appended and fsynced when its video is done — a ``kill -9`` loses only
the expressions of the video in flight, and a rerun predicts only the unfinished expressions;
``done.rank<R>-of-<N>.json``; ``scores.json`` / ``scores.md``; with ``save_masks`` (always on a split without
ground truth) ``masks/<video>/<exp_id>/<frame>.png`` (0/255 grayscale, frame size; nested ReVOS video ids are
nested folders); on a split without ground truth ``submission.zip`` in the benchmark server's layout
(:mod:`text4seg.evaluation.submission`); ``vis/<video>/<exp_id>.gif`` overlays of the first ``save_vis``
expressions (frame, prediction, ground truth).

Shards are whole videos: video ``g`` (in reader order) goes to rank ``g % world_size``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from text4seg.datasets.video_samples import VideoSample
from text4seg.evaluation.lock import RunLock
from text4seg.evaluation.records import SampleLog
from text4seg.evaluation.shards import (
    RUN_FILE,
    check_settings,
    completed_records,
    done_file,
    finish_shard,
    rank_world,
    samples_file,
)
from text4seg.evaluation.tasks import TaskSpec
from text4seg.evaluation.video_scoring import VideoScorer, video_markdown_table
from text4seg.io import write_json_atomic, write_text_atomic
from text4seg.options import DecodingOptions, LoadOptions
from text4seg.paths import safe_relative_id

__all__ = ["SUBMISSION_LAYOUTS_BY_DATASET", "evaluate_video", "finish_video_run", "nearest_segmented",
           "segmented_frames"]

# dataset -> layout of write_submission_zip, for the splits without ground truth
SUBMISSION_LAYOUTS_BY_DATASET: dict[str, str] = {"ref-youtube-vos": "ref-youtube-vos", "mevis": "mevis"}
_REPAIR_EXAMPLES = 3
_VIS_SIDE = 256


def segmented_frames(num_frames: int, frame_stride: int) -> list[int]:
    """Indices of the frames the model is asked about: ``0, k, 2k, ...`` below ``num_frames``."""
    return list(range(0, num_frames, frame_stride))



def nearest_segmented(index: int, frame_stride: int, num_frames: int) -> int:
    """The segmented frame whose mask frame ``index`` gets: the nearest of :func:`segmented_frames`, the
    earlier one when two are equally near."""
    before = (index // frame_stride) * frame_stride
    after = before + frame_stride
    return after if after < num_frames and after - index < index - before else before


@dataclass
class _Expression:
    index: int
    sample: VideoSample


def _video_groups(samples: Iterator[VideoSample], limit: int | None) -> Iterator[list[_Expression]]:
    """The expressions numbered in reader order (the first ``limit`` only), grouped by video."""
    numbered = (_Expression(i, s) for i, s in enumerate(itertools.islice(samples, limit)))
    for _, group in itertools.groupby(numbered, key=lambda e: e.sample.video_id):
        yield list(group)


def evaluate_video(
    spec: TaskSpec,
    *,
    dataset: str,
    split: str,
    root: Path,
    out: Path,
    model: str | None,
    adapter: str | None,
    segmenter: Any,
    load: LoadOptions,
    decoding: DecodingOptions,
    limit: int | None,
    save_vis: int,
    save_masks: bool,
    frame_stride: int,
    batch_size: int,
    question_index: int | None,
    question_template: str | None,
    rank: int | None,
    world_size: int | None,
    device: Any,
    progress: bool,
    video_strategy: str = "per-frame",
    keyframes: str = "first",
    candidates: int = 4,
    sam2: str | None = None,
    context_frames: int = 0,
) -> dict | None:
    """Evaluate a video task (arguments as :func:`text4seg.evaluation.evaluate`, already checked there);
    ``batch_size`` is the number of segmented frames per ``segment_many`` call."""
    from text4seg.datasets import count_video, read_video
    from text4seg.evaluation.runner import _build_segmenter, _with_question
    from text4seg.video_segment import STRATEGIES, parse_keyframes

    if int(frame_stride) < 1:
        raise ValueError(f"frame_stride must be >= 1, got {frame_stride}")
    frame_stride = int(frame_stride)
    if video_strategy not in STRATEGIES:
        raise ValueError(f"--video-strategy {video_strategy!r}: expected one of {', '.join(STRATEGIES)}")
    if video_strategy == "propagate":
        parse_keyframes(keyframes)
        if sam2 is None:
            raise ValueError("--video-strategy propagate needs --sam2 ID|DIR (e.g. facebook/sam2.1-hiera-large)")
    if isinstance(context_frames, bool) or not isinstance(context_frames, int) or context_frames < 0:
        raise ValueError(f"--context-frames {context_frames!r}: expected an integer >= 0")
    rank, world, state = rank_world(rank, world_size)
    if device is None and state is not None and world > 1:
        device = state.device
    samples = iter(read_video(dataset, root, split))
    first = next(samples, None)
    if first is None:
        raise ValueError(f"dataset {dataset!r} split {split!r} under {root} has no expressions")
    samples = itertools.chain([first], samples)
    ground_truth = first.has_masks
    if not ground_truth and dataset not in SUBMISSION_LAYOUTS_BY_DATASET:
        raise ValueError(f"{dataset} split {split!r} has no ground truth and no known submission layout")
    save_masks = bool(save_masks) or not ground_truth
    settings = {
        "task": spec.name,
        "dataset": dataset,
        "split": split,
        "data_root": str(root),
        "model": model,
        "adapter": adapter,
        "refiner": "none",
        "question_index": question_index,
        "question_template": question_template,
        "frame_stride": frame_stride,
        "strategy": video_strategy if video_strategy == "per-frame" else f"propagate:{keyframes}",
        "candidates": candidates if video_strategy == "propagate" and keyframes == "best" else None,
        "sam2": sam2 if video_strategy == "propagate" else None,
        "context_frames": context_frames,
        "save_masks": save_masks,
        "ground_truth": ground_truth,
        "decoding": None if segmenter is not None else decoding.decoding,
        "max_new_tokens": None if segmenter is not None else decoding.max_new_tokens,
        "dtype": None if segmenter is not None or load.dtype is None else str(load.dtype),
        "quantization": "4bit" if load.load_in_4bit else "8bit" if load.load_in_8bit else None,
        "limit": None if limit is None else int(limit),
    }
    out.mkdir(parents=True, exist_ok=True)
    with RunLock(out, rank):  # a second process on this folder and rank refuses here
        check_settings(out, settings)
        write_json_atomic(out / RUN_FILE, settings)
        done_file(out, rank, world).unlink(missing_ok=True)

        if segmenter is None:
            segmenter = _build_segmenter(model, adapter, load, decoding, device)
        segmenter = _with_question(segmenter, question_index, question_template)
        propagator = None
        if video_strategy == "propagate":
            from text4seg.refine.sam2_video import Sam2Propagator

            propagator = Sam2Propagator.from_pretrained(sam2, device=None if device is None else str(device))
        run = _VideoRun(spec=spec, segmenter=segmenter, root=root, out=out, ground_truth=ground_truth,
                        frame_stride=frame_stride, batch_size=int(batch_size), save_masks=save_masks,
                        save_vis=int(save_vis), strategy=video_strategy, keyframes=keyframes,
                        candidates=int(candidates), propagator=propagator, context_frames=context_frames)
        total = None
        if world == 1:
            total = count_video(dataset, root, split)
            total = total if limit is None else min(total, int(limit))
        log = SampleLog(samples_file(out, rank, world))
        try:
            shard = run.shard(_video_groups(samples, limit), log, completed_records(out), rank, world,
                              total=total, progress=progress)
        finally:
            log.close()
        return finish_shard(out, rank, world, state, shard, settings["limit"])


def finish_video_run(out: Path, settings: dict, records: list[dict]) -> dict:
    """Score the merged records of a video run; write ``scores.json``, ``scores.md`` and, for a split without
    ground truth, ``submission.zip`` (called by :func:`~text4seg.evaluation.shards.merge_shards`)."""
    from text4seg.evaluation.tasks import task_spec

    spec = task_spec(settings["task"])
    ground_truth = bool(settings.get("ground_truth", True))
    scorer = VideoScorer(spec, ground_truth).add_all(records)
    scores: dict[str, Any] = {"task": settings["task"], "dataset": settings["dataset"], "split": settings["split"],
                              "frame_stride": settings.get("frame_stride", 1),
                              "strategy": settings.get("strategy", "per-frame"),
                              "context_frames": settings.get("context_frames", 0), **scorer.result()}
    if not ground_truth:
        scores["submission"] = _write_submission(out, settings, records)
    scores["settings"] = dict(settings)
    write_json_atomic(out / "scores.json", scores)
    write_text_atomic(out / "scores.md", video_markdown_table(scores) + "\n")
    return scores


def _write_submission(out: Path, settings: dict, records: list[dict]) -> dict:
    from text4seg.datasets import read_video
    from text4seg.evaluation.submission import write_submission_zip

    wanted = {(r["video"], r["exp_id"]) for r in records}
    samples = [s for s in read_video(settings["dataset"], Path(settings["data_root"]), settings["split"])
               if (s.video_id, s.expression_id) in wanted]
    layout = SUBMISSION_LAYOUTS_BY_DATASET[settings["dataset"]]
    summary = write_submission_zip(samples, out / "masks", out / "submission.zip", layout)
    return {"path": "submission.zip", "layout": layout, "expressions": summary.expressions, "files": summary.files}


@dataclass
class _VideoRun:
    """What the loop needs: the task, the predictor, where data and outputs live, the per-frame options."""

    spec: TaskSpec
    segmenter: Any
    root: Path
    out: Path
    ground_truth: bool
    frame_stride: int
    batch_size: int
    save_masks: bool
    save_vis: int
    strategy: str = "per-frame"
    keyframes: str = "first"
    candidates: int = 4
    propagator: Any = None
    context_frames: int = 0

    def shard(self, groups: Iterator[list[_Expression]], log: SampleLog, done: dict[int, dict], rank: int,
              world: int, *, total: int | None, progress: bool) -> int:
        """Predict and record the pending expressions of shard ``rank``; returns the shard's expression count."""
        from tqdm.auto import tqdm

        live = VideoScorer(self.spec, self.ground_truth)
        count = 0
        bar = tqdm(desc=f"eval {self.spec.name}", unit="expr", total=total, disable=not progress or rank != 0,
                   dynamic_ncols=True)
        frames, seconds = 0, 0.0
        for number, group in enumerate(groups):
            if number % world != rank:
                continue
            count += len(group)
            todo = [e for e in group if e.index not in done]
            for e in group:
                if e.index in done:
                    live.add(done[e.index])
            bar.update(len(group) - len(todo))
            if not todo:
                continue
            started = time.perf_counter()
            records = self.run_video(todo)
            seconds += time.perf_counter() - started
            frames += todo[0].sample.num_frames
            for record in records:
                log.append(record)
                live.add(record)
            bar.update(len(todo))
            postfix = {"frames/s": f"{frames / seconds:.2f}" if seconds else "-"}
            if live.live() is not None:
                postfix["J&F"] = f"{100 * live.live():.1f}"
            bar.set_postfix(postfix, refresh=False)
        bar.close()
        return count

    def run_video(self, todo: list[_Expression]) -> list[dict]:
        """Segment the frames of one video for its pending expressions; one record per expression."""
        from text4seg.images import load_image
        from text4seg.video_metrics import ExpressionAccumulator

        started = time.perf_counter()
        samples = [e.sample for e in todo]
        video = samples[0]
        for s in samples[1:]:
            if s.frame_names != video.frame_names or (s.height, s.width) != (video.height, video.width):
                raise ValueError(f"video {video.video_id!r}: expressions {video.expression_id!r} and "
                                 f"{s.expression_id!r} list different frames")
        for s in samples:
            safe_relative_id(s.video_id, "video id", s.id)
            safe_relative_id(s.expression_id, "expression id", s.id)
        n = video.num_frames
        queries = [s.expression for s in samples]
        accumulators = [ExpressionAccumulator() for _ in samples] if self.ground_truth else None
        repairs = [0] * len(samples)
        examples: list[list[str]] = [[] for _ in samples]
        vis = {k: [] for k, e in enumerate(todo) if e.index < self.save_vis}
        predictions: dict[int, list[np.ndarray]] = {}
        images: dict[int, Any] = {}
        segmented = segmented_frames(n, self.frame_stride)
        if self.strategy != "per-frame" or self.context_frames:
            segmented = self._whole_video(video, samples, accumulators, repairs, examples, vis)
        scored = n if self.strategy != "per-frame" or self.context_frames else 0
        for start in range(0, len(segmented) if scored < n else 0, self.batch_size):
            chunk = segmented[start:start + self.batch_size]
            loaded = [load_image(self.root / video.frame_paths[t]) for t in chunk]
            for t, image in zip(chunk, loaded):
                if (image.height, image.width) != (video.height, video.width):
                    raise ValueError(f"{self.root / video.frame_paths[t]}: video {video.video_id!r}: frame is "
                                     f"{image.width}x{image.height}, its first frame {video.width}x{video.height}")
            results = self.segmenter.segment_many([(image, queries) for image in loaded])
            for t, image, per_query in zip(chunk, loaded, results):
                predictions[t] = [np.asarray(r.mask, dtype=bool) for r in per_query]
                if vis:
                    images[t] = image
                for k, result in enumerate(per_query):
                    if result.repairs:
                        repairs[k] += 1
                        for message in result.repairs:
                            if message not in examples[k] and len(examples[k]) < _REPAIR_EXAMPLES:
                                examples[k].append(message)
            # frames up to the last segmented one can be scored now (no later segmented frame is nearer)
            upto = n if chunk[-1] == segmented[-1] else chunk[-1] + 1
            for i in range(scored, upto):
                self.score_frame(i, video, samples, predictions[nearest_segmented(i, self.frame_stride, n)],
                                 accumulators, vis, images)
            scored = upto
            if scored < n:
                keep = nearest_segmented(scored, self.frame_stride, n)
                for t in [t for t in predictions if t < keep]:
                    del predictions[t]
                    images.pop(t, None)
        seconds = (time.perf_counter() - started) / len(samples)
        records = []
        for k, (e, s) in enumerate(zip(todo, samples)):
            answered = segmented[k] if isinstance(segmented, dict) else len(segmented)
            record: dict[str, Any] = {"index": e.index, "video": s.video_id, "exp_id": s.expression_id,
                                      "expression": s.expression, "frames": n, "segmented": answered}
            if isinstance(segmented, dict):
                record.update(keyframes=self._keyframes[k], sam2_calls=self._sam2_calls[k])
            if accumulators is not None:
                scores = accumulators[k].result()
                record.update(j=scores["j"], f=scores["f"], jf=scores["jf"])
                if self.spec.name == "reasonvos":
                    record.update(a=scores["a"], r=scores["r"], type=s.type_name)
            if s.no_target:
                record["no_target"] = True
            record.update(repairs=repairs[k], repair_examples=examples[k], seconds=seconds)
            records.append(record)
        for k, strips in vis.items():
            from text4seg.evaluation.visualize import save_gif

            save_gif(strips, self.out / "vis" / samples[k].video_id / f"{samples[k].expression_id}.gif")
        return records

    def _whole_video(self, video: VideoSample, samples: list[VideoSample], accumulators: list | None,
                     repairs: list[int], examples: list[list[str]], vis: dict[int, list]) -> dict[int, int]:
        """Propagate or context-frame strategies: each expression segmented through the whole video by
        :func:`text4seg.video_segment.segment_video`, then every frame scored. Returns expression -> answers."""
        from text4seg.images import load_image
        from text4seg.video_segment import segment_video

        frames = []
        for path in video.frame_paths:
            image = load_image(self.root / path)
            if (image.height, image.width) != (video.height, video.width):
                raise ValueError(f"{self.root / path}: video {video.video_id!r}: frame is {image.width}x"
                                 f"{image.height}, its first frame {video.width}x{video.height}")
            frames.append(np.asarray(image))
        results = [segment_video(self.segmenter, frames, s.expression, strategy=self.strategy,
                                 frame_stride=self.frame_stride, keyframes=self.keyframes,
                                 candidates=self.candidates, propagator=self.propagator,
                                 context_frames=self.context_frames) for s in samples]
        self._keyframes = [[video.frame_names[t] for t in r.keyframes] for r in results]
        self._sam2_calls = [r.sam2_calls for r in results]
        images = {}
        for k, r in enumerate(results):
            repairs[k] += r.repaired
            for message in r.repair_examples:
                if message not in examples[k] and len(examples[k]) < _REPAIR_EXAMPLES:
                    examples[k].append(message)
        for i in range(video.num_frames):
            if vis:
                from PIL import Image

                images[i] = Image.fromarray(frames[i])
            self.score_frame(i, video, samples, [r.masks[i] for r in results], accumulators, vis, images)
            images.pop(i, None)
        return {k: r.model_calls for k, r in enumerate(results)}

    def score_frame(self, i: int, video: VideoSample, samples: list[VideoSample], masks: list[np.ndarray],
                    accumulators: list | None, vis: dict[int, list], images: dict[int, Any]) -> None:
        """Score (and save, and draw) frame ``i`` of every pending expression with its predicted ``masks``."""
        from text4seg.images import load_image, save_mask_png

        foreground = None
        if accumulators is not None and self.spec.name == "reasonvos":
            foreground = video.foreground(i)
        image = images.get(i)
        if vis and image is None:
            image = load_image(self.root / video.frame_paths[i])
        for k, (s, pred) in enumerate(zip(samples, masks)):
            gt = s.mask(i) if accumulators is not None else None
            if accumulators is not None:
                accumulators[k].add_frame(pred, gt, foreground)
            if self.save_masks:
                save_mask_png(pred, self.out / "masks" / s.video_id / s.expression_id / f"{s.frame_names[i]}.png")
            if k in vis:
                from text4seg.evaluation.visualize import panel_strip

                panels = [("prediction", pred)] + ([("ground truth", gt)] if gt is not None else [])
                vis[k].append(panel_strip(image, panels, caption=f"{s.frame_names[i]}: {s.expression}",
                                          max_side=_VIS_SIDE))
