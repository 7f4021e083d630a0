"""Evaluation throughput: ``text4seg.evaluation.evaluate`` against a naive evaluation loop, in one run.

Both score the same synthetic split (several expressions per image) with the same tiny model and greedy decoding:

- **ours**: :func:`text4seg.evaluation.evaluate` (task ``synthetic``) as the CLI runs it by default: one
  ``Segmenter.segment`` call per image with all its expressions (batched generation), scores from streaming
  meters, per-sample JSONL records; also with ``--batch-size`` images per call (``segment_many``);
- **naive** (what the reference's eval scripts do): for every expression, the image is read and encoded again,
  one ``generate`` per expression, the predicted and ground-truth masks are written as PNG files and read back,
  then scored.

Model: ``--model DIR``; else ``runs/quickstart/model`` (written by ``text4seg quickstart``) when it exists; else
a tiny model is trained here for ``--train-minutes`` (quickstart recipe), or, with ``--train-minutes 0``, built
untrained (its answers are noise, but throughput and the identity of the two score paths are still measured).

The two loops alternate ``--repeat`` times and each keeps its best time (the machine may be shared). Prints one
line per loop; the last line is one JSON object with ``speedup`` (default evaluation / naive, samples per
wall-clock second), ``speedup_cpu`` (the same per CPU-second of this process), ``speedup_batched`` (with
``--batch-size``) and ``identical_scores`` (cIoU, gIoU and every per-sample IoU equal to the naive loop's).

Usage: ``python benchmarks/eval_throughput.py [--model DIR] [--images 8] [--batch-size 4] [--repeat 3]
[--threads 1] [--train-minutes 3]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

QUICKSTART_MODEL = Path("runs/quickstart/model")


def tiny_model(work: Path, train_minutes: float, seed: int) -> Path:
    """A quickstart-recipe tiny model: trained for ``train_minutes`` (> 0) or built untrained."""
    from text4seg.presets import TINY_PRESET
    from text4seg.quickstart import quickstart

    if train_minutes > 0:
        print(f"no --model and no {QUICKSTART_MODEL}: training a tiny model for {train_minutes:g} min", flush=True)
        return quickstart(work / "quickstart", minutes=train_minutes, seed=seed, progress=False).model_dir
    from text4seg.datasets.synthetic import COLOURS, SHAPES
    from text4seg.modeling import build_tiny_model

    print("no --model and no trained quickstart model: building an UNTRAINED tiny model (noise answers)", flush=True)
    data = TINY_PRESET.data
    words = [f"the {c} {s}" for c in COLOURS for s in SHAPES] + [data.question_template, data.answer_sentence]
    return build_tiny_model(work / "untrained", texts=words, labels=[data.fg_label], seed=seed,
                            fg_label=data.fg_label, question_template=data.question_template,
                            **TINY_PRESET.model.model_kwargs())


def naive_loop(segmenter, root: Path, samples, work: Path) -> tuple[dict, list[float]]:
    """One generate per expression, image re-read each time, masks through PNG files; returns scores, IoUs."""
    from text4seg.images import load_image, save_mask_png
    from text4seg.metrics import ReferSegMeter

    meter, ious = ReferSegMeter(), []
    for n, sample in enumerate(samples):
        for k, expression in enumerate(sample.expressions):
            image = load_image(root / sample.image)
            result = segmenter.segment(image, expression)
            pred_path, gt_path = work / f"{n}_{k}_pred.png", work / f"{n}_{k}_gt.png"
            save_mask_png(result.mask, pred_path)
            save_mask_png(sample.mask, gt_path)
            pred = np.asarray(Image.open(pred_path)) > 0
            gt = np.asarray(Image.open(gt_path)) > 0
            ious.append(meter.update(pred, gt))
    return meter.compute(), ious


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model directory (default: runs/quickstart/model)")
    parser.add_argument("--images", type=int, default=8, help="synthetic images to evaluate")
    parser.add_argument("--batch-size", type=int, default=4,
                        help="also run our evaluation with this many images per batched call (1: only the default)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1 keeps timings stable on a shared machine)")
    parser.add_argument("--train-minutes", type=float, default=3.0,
                        help="training budget when no model is given or found (0: untrained model)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of both loops (best time kept)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch

    from text4seg.datasets.synthetic import generate_synthetic
    from text4seg.evaluation import evaluate
    from text4seg.evaluation.records import read_records
    from text4seg.segmenter import Segmenter

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="t4s-eval-bench-") as tmp:
        work = Path(tmp)
        model = args.model or (str(QUICKSTART_MODEL) if (QUICKSTART_MODEL / "config.json").is_file() else None)
        if model is None:
            model = str(tiny_model(work, args.train_minutes, args.seed))
        root = work / "data"
        # a split of its own ("bench"), drawn like the quickstart's images (64 px)
        samples = generate_synthetic(root, "bench", num_images=args.images, image_size=64, seed=args.seed + 1)
        n_samples = sum(len(s.expressions) for s in samples)
        print(f"model: {model}")
        print(f"data: {args.images} images, {len(samples)} shapes, {n_samples} expressions "
              f"({n_samples / args.images:.2f} per image)")
        segmenter = Segmenter.from_pretrained(model, device="cpu", decoding="plain")
        segmenter.segment(root / samples[0].image, samples[0].expressions[0])  # warm-up

        # Alternate the loops and keep each one's best time: the machine may be shared and noisy.
        runs = {"ours": args.batch_size, "naive": None}
        if args.batch_size != 1:
            runs = {"ours": 1, f"ours_batch{args.batch_size}": args.batch_size, "naive": None}
        wall: dict[str, list[float]] = {name: [] for name in runs}
        cpu: dict[str, list[float]] = {name: [] for name in runs}
        scores: dict[str, tuple[dict, list[float]]] = {}
        for r in range(args.repeat):
            for name, batch_size in runs.items():
                out = work / f"{name}{r}"
                out.mkdir()
                start, start_cpu = time.perf_counter(), time.process_time()
                if batch_size is None:
                    result, ious = naive_loop(segmenter, root, samples, out)
                else:
                    result = evaluate("synthetic", data_root=root, split="bench", segmenter=segmenter, out=out,
                                      batch_size=batch_size, progress=False, rank=0, world_size=1)["coarse"]
                    ious = [rec["iou"] for rec in read_records(out / "samples.jsonl")]
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
                scores[name] = ({"ciou": result["ciou"], "giou": result["giou"]}, ious)
            print(f"round {r}: " + ", ".join(f"{n} {wall[n][-1]:.2f} s" for n in runs), flush=True)

    naive_scores, naive_ious = scores["naive"]
    figures = {"model": model, "images": args.images, "samples": n_samples, "threads": args.threads,
               "repeat": args.repeat}
    for name in runs:
        rate, cpu_rate = n_samples / min(wall[name]), n_samples / min(cpu[name])
        got, ious = scores[name]
        print(f"{name:>14}: {min(wall[name]):8.2f} s  {rate:7.3f} samples/s  ({cpu_rate:7.3f} per CPU-second)  "
              f"cIoU {got['ciou']:.4f}  gIoU {got['giou']:.4f}")
        figures[f"{name}_samples_per_s"] = round(rate, 4)
        figures[f"{name}_samples_per_cpu_s"] = round(cpu_rate, 4)
        if name != "naive":
            same = got == naive_scores and ious == naive_ious
            if not same:
                differing = sum(a != b for a, b in zip(ious, naive_ious))
                print(f"{name}: {differing} of {n_samples} per-sample IoUs differ from the naive loop")
            figures[f"identical_{name}"] = same
    naive_rate = figures["naive_samples_per_s"]
    figures["speedup"] = round(figures["ours_samples_per_s"] / naive_rate, 3)
    figures["speedup_cpu"] = round(figures["ours_samples_per_cpu_s"] / figures["naive_samples_per_cpu_s"], 3)
    if args.batch_size != 1:
        figures["speedup_batched"] = round(figures[f"ours_batch{args.batch_size}_samples_per_s"] / naive_rate, 3)
    figures["identical_scores"] = all(v for k, v in figures.items() if k.startswith("identical_"))
    figures["ciou"], figures["giou"] = scores["ours"][0]["ciou"], scores["ours"][0]["giou"]
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main(sys.argv[1:])
