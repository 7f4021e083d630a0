"""Video evaluation throughput: ``text4seg eval rvos`` against a naive per-frame loop, in one run.

Both score the same synthetic video split (``synthetic-video``, MeViS layout, 5-6 expressions per video) with the
same model and decoding:

- **ours**: :func:`text4seg.evaluation.evaluate` (task ``rvos``) as the CLI runs it: per frame, one
  ``Segmenter.segment_many`` call with every expression of the video (the frame is preprocessed once and, in the
  fast decoding modes, goes through the vision tower once), frames scored as they are predicted, one JSONL
  record per expression;
- **naive**: for every expression and every frame, the frame is read again and one ``Segmenter.segment`` call
  answers that single expression; the expression's masks are collected and scored with ``RVOSMeter.update``.

Model: ``--model DIR``; else ``runs/quickstart/model`` (written by ``text4seg quickstart``) when it exists; else an
untrained tiny model (its answers are noise, but throughput and the identity of the two score paths are still
measured). The loops alternate ``--repeat`` times and each keeps its best time (the machine may be shared).
Prints one line per loop; the last line is one JSON object with ``frames_per_s`` / ``expressions_per_s`` of
both, ``speedup`` (ours / naive, wall clock), ``speedup_cpu`` (per CPU-second of this process) and
``identical_scores`` (J, F, J&F and every expression's J and F equal to the naive loop's).

Usage: ``python benchmarks/video_eval.py [--model DIR] [--videos 4] [--frames 6] [--decoding fast]
[--repeat 2] [--threads 1]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

QUICKSTART_MODEL = Path("runs/quickstart/model")


def untrained_model(work: Path, seed: int) -> Path:
    from text4seg.datasets.synthetic import COLOURS, SHAPES
    from text4seg.modeling import build_tiny_model
    from text4seg.presets import TINY_PRESET

    print("no --model and no trained quickstart model: building an UNTRAINED tiny model (noise answers)", flush=True)
    data = TINY_PRESET.data
    words = [f"the {c} {s}" for c in COLOURS for s in SHAPES] + [data.question_template, data.answer_sentence]
    return build_tiny_model(work / "untrained", texts=words, labels=[data.fg_label], seed=seed,
                            fg_label=data.fg_label, question_template=data.question_template,
                            **TINY_PRESET.model.model_kwargs())


def naive_loop(segmenter, root: Path, samples) -> tuple[dict, list[tuple[float, float]]]:
    """One ``segment`` call per frame and expression; returns the scores and each expression's (J, F)."""
    from text4seg.images import load_image
    from text4seg.video_metrics import RVOSMeter

    meter, per_expression = RVOSMeter(), []
    for sample in samples:
        preds = [segmenter.segment(load_image(root / path), sample.expression).mask for path in sample.frame_paths]
        scores = meter.update(preds, list(sample.masks()))
        per_expression.append((scores["j"], scores["f"]))
    return meter.compute(), per_expression


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model directory (default: runs/quickstart/model)")
    parser.add_argument("--videos", type=int, default=4, help="synthetic videos to evaluate")
    parser.add_argument("--frames", type=int, default=6, help="frames per video")
    parser.add_argument("--size", type=int, default=64, help="frame side in pixels (the quickstart's image size)")
    parser.add_argument("--decoding", default="fast", help="decoding mode of both loops (default: fast)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1 keeps timings stable on a shared machine)")
    parser.add_argument("--repeat", type=int, default=2, help="rounds of both loops (best time kept)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch

    from text4seg.datasets import read_video
    from text4seg.datasets.synthetic_video import write_synthetic_videos
    from text4seg.evaluation import evaluate
    from text4seg.evaluation.records import read_records
    from text4seg.segmenter import Segmenter

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="t4s-video-bench-") as tmp:
        work = Path(tmp)
        model = args.model or (str(QUICKSTART_MODEL) if (QUICKSTART_MODEL / "config.json").is_file() else None)
        if model is None:
            model = str(untrained_model(work, args.seed))
        root = work / "data"
        write_synthetic_videos(root, "valid_u", args.videos, num_frames=args.frames, size=args.size,
                               seed=args.seed + 1)
        samples = list(read_video("synthetic-video", root, "valid_u"))
        n_expr, n_frames = len(samples), args.videos * args.frames
        print(f"model: {model} (decoding {args.decoding})")
        print(f"data: {args.videos} videos x {args.frames} frames of {args.size} px, {n_expr} expressions "
              f"({n_expr / args.videos:.2f} per video)")
        segmenter = Segmenter.from_pretrained(model, device="cpu", decoding=args.decoding)
        segmenter.segment(root / samples[0].frame_paths[0], samples[0].expression)  # warm-up

        runs = ("ours", "naive")
        wall: dict[str, list[float]] = {name: [] for name in runs}
        cpu: dict[str, list[float]] = {name: [] for name in runs}
        results: dict[str, tuple[dict, list]] = {}
        for r in range(args.repeat):
            for name in runs:
                start, start_cpu = time.perf_counter(), time.process_time()
                if name == "naive":
                    scores, per_expression = naive_loop(segmenter, root, samples)
                else:
                    scores = evaluate("rvos", data_root=root, dataset="synthetic-video", split="valid_u",
                                      segmenter=segmenter, out=work / f"ours{r}", progress=False, rank=0,
                                      world_size=1)
                    per_expression = [(rec["j"], rec["f"]) for rec in read_records(work / f"ours{r}" /
                                                                                   "samples.jsonl")]
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
                results[name] = ({k: scores[k] for k in ("j", "f", "jf")}, per_expression)
            print(f"round {r}: " + ", ".join(f"{n} {wall[n][-1]:.2f} s" for n in runs), flush=True)

    figures: dict = {"model": model, "decoding": args.decoding, "videos": args.videos, "frames": n_frames,
                     "expressions": n_expr, "threads": args.threads, "repeat": args.repeat}
    for name in runs:
        seconds, cpu_seconds = min(wall[name]), min(cpu[name])
        got = results[name][0]
        print(f"{name:>6}: {seconds:8.2f} s  {n_frames / seconds:7.3f} frames/s  {n_expr / seconds:7.3f} "
              f"expressions/s  ({n_expr / cpu_seconds:7.3f} per CPU-second)  J&F {got['jf']:.4f}  J {got['j']:.4f}  "
              f"F {got['f']:.4f}")
        figures[f"{name}_frames_per_s"] = round(n_frames / seconds, 4)
        figures[f"{name}_expressions_per_s"] = round(n_expr / seconds, 4)
        figures[f"{name}_expressions_per_cpu_s"] = round(n_expr / cpu_seconds, 4)
    same = results["ours"] == results["naive"]
    if not same:
        differing = sum(a != b for a, b in zip(results["ours"][1], results["naive"][1]))
        print(f"{differing} of {n_expr} expressions score differently from the naive loop")
    figures["speedup"] = round(figures["ours_expressions_per_s"] / figures["naive_expressions_per_s"], 3)
    figures["speedup_cpu"] = round(figures["ours_expressions_per_cpu_s"] / figures["naive_expressions_per_cpu_s"], 3)
    figures["identical_scores"] = same
    figures.update({k: results["ours"][0][k] for k in ("jf", "j", "f")})
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main(sys.argv[1:])
