"""Context frames on motion expressions: J&F of a tiny model trained with K earlier frames per item vs without,
the same time budget, on the synthetic videos (one run; CPU).

    python benchmarks/context_frames.py --minutes 4 --context 1

Both models start from the tiny recipe (``TINY_PRESET``) and train on per-frame items of the synthetic train
videos (``python -m data_builders synthetic_video``); the held-out ``valid_u`` videos are segmented frame by
frame (``Segmenter.segment_video``) and scored with ``RVOSMeter`` on motion expressions (``moving left``,
``that stops``, ...) and, for reference, on appearance expressions. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def _build(root: Path, split: str, out: Path, context: int, seed: int) -> int:
    from text4seg.datasets import read_video
    from text4seg.items import BuildSummary, write_items
    from text4seg.items.video import video_items
    from text4seg.presets import TINY_PRESET

    summary = BuildSummary(name="synthetic_video")
    items = video_items(read_video("synthetic-video", root, split), summary, frames_per_expression=4, grid=16,
                        rle=False, fg_label=TINY_PRESET.data.fg_label, seed=seed, context_frames=context,
                        question_template=TINY_PRESET.data.question_template,
                        answer_sentence=TINY_PRESET.data.answer_sentence)
    return write_items(out, items, summary)


def _train(data: Path, root: Path, out: Path, minutes: float, seed: int) -> Path:
    from text4seg.presets import TINY_PRESET
    from text4seg.training import train

    preset = TINY_PRESET
    config = preset.train.replace(model="tiny", data=(str(data),), out=str(out), data_root=str(root), seed=seed,
                                  device="cpu", save_steps=10**9, minutes=minutes, tiny=preset.model.model_kwargs(),
                                  descriptor_form=preset.model.descriptor_form,
                                  image_position=preset.model.image_position,
                                  question_template=preset.data.question_template, fg_label=preset.data.fg_label)
    result = train(config, progress=False)
    print(f"  trained {result.global_step} steps in {result.seconds / 60:.1f} min -> {out}", flush=True)
    return out


def _score(model: Path, root: Path, context: int) -> dict:
    from text4seg.datasets import read_video
    from text4seg.datasets.synthetic_video import MOTIONS
    from text4seg.images import load_image
    from text4seg.options import LoadOptions
    from text4seg.segmenter import Segmenter
    from text4seg.video_metrics import RVOSMeter

    segmenter = Segmenter.from_pretrained(model, load=LoadOptions(device="cpu"))
    meters = {"motion": RVOSMeter(), "appearance": RVOSMeter()}
    frames_cache: dict[str, list[np.ndarray]] = {}
    for sample in read_video("synthetic-video", root, "valid_u"):
        if sample.no_target or " and the " in sample.expression:
            continue
        kind = "motion" if any(phrase in sample.expression for phrase in MOTIONS.values()) else "appearance"
        frames = frames_cache.setdefault(sample.video_id, [np.asarray(load_image(root / p)) for p in sample.frame_paths])
        video = segmenter.segment_video(frames, sample.expression, context_frames=context)
        meters[kind].update(list(video.masks), sample.masks())
    return {kind: meter.compute() for kind, meter in meters.items()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="training budget per model (default: 4)")
    parser.add_argument("--context", type=int, default=1, help="context frames K of the second model (default: 1)")
    parser.add_argument("--train-videos", type=int, default=60, help="synthetic train videos (default: 60)")
    parser.add_argument("--val-videos", type=int, default=6, help="held-out videos (default: 6)")
    parser.add_argument("--frames", type=int, default=8, help="frames per video (default: 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args(argv)

    from text4seg.datasets.synthetic_video import write_synthetic_videos

    work = Path(args.work or tempfile.mkdtemp(prefix="t4s-context-"))
    root = work / "data"
    write_synthetic_videos(root, "train", args.train_videos, num_frames=args.frames, size=64, seed=args.seed,
                           overwrite=True)
    write_synthetic_videos(root, "valid_u", args.val_videos, num_frames=args.frames, size=64, seed=args.seed + 1,
                           overwrite=True)
    results = {}
    for context in (0, args.context):
        start = time.perf_counter()
        data = work / f"train_k{context}.json"
        items = _build(root, "train", data, context, args.seed)
        print(f"context frames {context}: {items} items", flush=True)
        model = _train(data, root, work / f"model_k{context}", args.minutes, args.seed)
        scores = _score(model, root, context)
        results[context] = scores
        for kind, s in scores.items():
            print(f"  {kind:10s} J {s['j']:.3f}  F {s['f']:.3f}  J&F {s['jf']:.3f}  ({s['expressions']} expressions)",
                  flush=True)
        print(f"  {time.perf_counter() - start:.0f} s", flush=True)
    summary = {
        "minutes": args.minutes, "context": args.context, "frames": args.frames,
        "motion_jf_without": results[0]["motion"]["jf"], "motion_jf_with": results[args.context]["motion"]["jf"],
        "appearance_jf_without": results[0]["appearance"]["jf"],
        "appearance_jf_with": results[args.context]["appearance"]["jf"],
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
