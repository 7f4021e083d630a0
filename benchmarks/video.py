"""Video benchmark: per-frame ``fast`` decoding without and with temporal drafts, and keyframes + SAM2
propagation (``first``, ``best``, ``stride:N``), on the synthetic videos.

For each of ``--videos`` synthetic videos of ``--frames`` frames (a fresh seeded ``valid_u`` split) and one
expression per video (its first: an appearance expression), it prints per strategy the model answers, the
decoder forward passes (per frame), the SAM2 calls, the wall time and J&F against the ground truth
(:mod:`text4seg.video_metrics`). Per-frame with temporal drafts must give the masks of per-frame without them
(``temporal_identical``); the drafts only cut forward passes.

The model: ``--model`` (default ``/tmp/qs/model`` or ``runs/quickstart/model``, the quickstart's tiny LLaVA
trained on still shapes, when one exists), else an untrained tiny model built from configs (its answers are
grammar-forced noise, so passes are not representative). SAM2 is a tiny *random* ``Sam2VideoModel``
(:func:`text4seg.refine.sam2_video.build_tiny_sam2_video`): its J&F is meaningless, printed as such; only the call
counts and mechanics are.

The last line printed is one JSON object: ``temporal_pass_ratio`` (forward passes per frame of per-frame ``fast``
without / with temporal drafts), ``temporal_identical``, ``propagate_call_ratio`` (model answers per video,
per-frame / propagate with ``first``), ``frames``, and the totals.

Usage: ``python benchmarks/video.py [--model DIR] [--videos 3] [--frames 30] [--stride 10] [--threads 1]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_MODELS = ("/tmp/qs/model", "runs/quickstart/model")


def _model(arg: str | None, scratch: Path) -> tuple[str, str]:
    """(model directory, description)."""
    if arg is not None:
        return arg, arg
    for candidate in DEFAULT_MODELS:
        if (Path(candidate) / "config.json").is_file():
            return candidate, f"{candidate} (quickstart-trained tiny LLaVA)"
    from text4seg.modeling import build_tiny_model

    texts = ["Segment the red circle.", "Here is the mask.", "the green square moving left"]
    out = build_tiny_model(scratch / "tiny", texts=texts, labels=["target"], grid=16, image_position="after",
                           question_template="Segment {expression}.", fg_label="target", seed=0)
    return str(out), "untrained tiny LLaVA (no quickstart model found: passes are not representative)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model directory (default: the quickstart model if present)")
    parser.add_argument("--videos", type=int, default=3, help="synthetic videos (default: 3)")
    parser.add_argument("--frames", type=int, default=30, help="frames per video (default: 30)")
    parser.add_argument("--size", type=int, default=64, help="frame side in pixels (default: 64)")
    parser.add_argument("--stride", type=int, default=10, help="propagate stride:N keyframes (default: 10)")
    parser.add_argument("--candidates", type=int, default=4, help="propagate best: candidates (default: 4)")
    parser.add_argument("--seed", type=int, default=1, help="synthetic video seed (default: 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    args = parser.parse_args(argv)

    import torch
    from PIL import Image

    from text4seg.datasets import read_video
    from text4seg.datasets.synthetic_video import write_synthetic_videos
    from text4seg.refine.sam2_video import Sam2Propagator, build_tiny_sam2_video
    from text4seg.segmenter import Segmenter
    from text4seg.video_metrics import expression_scores

    torch.set_num_threads(args.threads)
    scratch = Path(tempfile.mkdtemp(prefix="t4s-video-bench-"))
    model, described = _model(args.model, scratch)
    write_synthetic_videos(scratch / "data", "valid_u", args.videos, num_frames=args.frames, size=args.size,
                           seed=args.seed)
    seen: set[str] = set()
    samples = []
    for sample in read_video("synthetic-video", scratch / "data", "valid_u"):
        if sample.video_id not in seen:
            seen.add(sample.video_id)
            samples.append(sample)
    segmenter = Segmenter.from_pretrained(model, device="cpu", decoding="fast")
    propagator = Sam2Propagator.from_pretrained(build_tiny_sam2_video(scratch / "sam2"), device="cpu")
    print(f"model: {described}; decoding fast; {len(samples)} videos x {args.frames} frames of {args.size} px; "
          f"torch threads {args.threads}")
    print("SAM2: a tiny RANDOM Sam2VideoModel: propagate J&F below is meaningless (mechanics and call counts only)")

    strategies = [
        ("per-frame", dict(temporal_drafts=False)),
        ("per-frame+temporal", dict(temporal_drafts=True)),
        ("propagate:first", dict(strategy="propagate", keyframes="first", propagator=propagator)),
        ("propagate:best", dict(strategy="propagate", keyframes="best", candidates=args.candidates,
                                propagator=propagator)),
        (f"propagate:stride:{args.stride}", dict(strategy="propagate", keyframes=f"stride:{args.stride}",
                                                 propagator=propagator)),
    ]
    totals = {name: {"calls": 0, "passes": 0, "sam2": 0, "seconds": 0.0, "jf": []} for name, _ in strategies}
    identical = True
    # warm-up (first-call costs out of the figures)
    first = samples[0]
    warm = [np.asarray(Image.open(scratch / "data" / p).convert("RGB")) for p in first.frame_paths[:2]]
    segmenter.segment_video(warm, first.expression, temporal_drafts=False)
    for sample in samples:
        frames = [np.asarray(Image.open(scratch / "data" / p).convert("RGB")) for p in sample.frame_paths]
        truth = sample.masks()
        print(f"\nvideo {sample.video_id} ({len(frames)} frames): {sample.expression!r}")
        print(f"  {'strategy':<22}{'answers':>8}{'passes':>8}{'pass/fr':>9}{'SAM2':>6}{'wall s':>8}{'J&F':>7}")
        results = {}
        for name, options in strategies:
            began = time.perf_counter()
            result = segmenter.segment_video(frames, sample.expression, **options)
            seconds = time.perf_counter() - began
            results[name] = result
            jf = expression_scores(result.masks, truth)["jf"]
            t = totals[name]
            t["calls"] += result.model_calls
            t["passes"] += result.forward_passes
            t["sam2"] += result.sam2_calls
            t["seconds"] += seconds
            t["jf"].append(jf)
            note = " (meaningless: random SAM2)" if name.startswith("propagate") else ""
            print(f"  {name:<22}{result.model_calls:>8}{result.forward_passes:>8}"
                  f"{result.forward_passes / len(frames):>9.2f}{result.sam2_calls:>6}{seconds:>8.2f}{jf:>7.3f}{note}")
        same = (np.array_equal(results["per-frame"].masks, results["per-frame+temporal"].masks)
                and results["per-frame"].texts == results["per-frame+temporal"].texts)
        identical &= same
        print(f"  temporal drafts: masks and answers identical to per-frame: {same}")

    frames_total = args.frames * len(samples)
    base, temporal = totals["per-frame"], totals["per-frame+temporal"]
    pass_ratio = (base["passes"] / frames_total) / max(temporal["passes"] / frames_total, 1e-9)
    call_ratio = base["calls"] / max(totals["propagate:first"]["calls"], 1)
    print("\ntotals")
    for name, t in totals.items():
        print(f"  {name:<22} answers {t['calls']:>4}  passes/frame {t['passes'] / frames_total:>6.2f}  SAM2 "
              f"{t['sam2']:>4}  wall {t['seconds']:>7.2f} s  mean J&F {np.mean(t['jf']):.3f}"
              + (" (meaningless)" if name.startswith("propagate") else ""))
    print(f"temporal drafts: {pass_ratio:.2f}x fewer forward passes per frame, wall "
          f"{base['seconds'] / max(temporal['seconds'], 1e-9):.2f}x, identical masks: {identical}")
    print(f"propagate (first): {call_ratio:.1f}x fewer model answers than per-frame")
    summary = {
        "temporal_pass_ratio": round(pass_ratio, 3),
        "temporal_identical": bool(identical),
        "propagate_call_ratio": round(call_ratio, 3),
        "frames": args.frames,
        "videos": len(samples),
        "model": described,
        "temporal_wall_ratio": round(base["seconds"] / max(temporal["seconds"], 1e-9), 3),
        "passes_per_frame": {name: round(t["passes"] / frames_total, 3) for name, t in totals.items()},
        "model_answers": {name: t["calls"] for name, t in totals.items()},
        "sam2_calls": {name: t["sam2"] for name, t in totals.items()},
        "wall_seconds": {name: round(t["seconds"], 2) for name, t in totals.items()},
        "jf": {name: round(float(np.mean(t["jf"])), 4) for name, t in totals.items()},
        "propagate_jf_meaningful": False,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
