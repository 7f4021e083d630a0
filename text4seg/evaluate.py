"""``text4seg eval``: benchmark evaluation of a Text4Seg model (refer-seg, rec, grefer-seg, reason-seg,
semantic-seg, synthetic).

Examples::

    text4seg eval refer-seg --model runs/t4s-llava --data-root playground/data --dataset refcoco --split val
    text4seg eval semantic-seg --model runs/t4s-llava --dataset ade20k --split validation --refiner sam \\
        --sam-checkpoint sam_vit_h_4b8939.pth --sam-type vit_h
    accelerate launch --num_processes 8 -m text4seg.cli eval reason-seg --model ... --dataset reasonseg --split val
    torchrun --nproc_per_node 2 -m text4seg.cli eval synthetic --model runs/quickstart/model   # CPU processes

Per-sample results are appended to ``OUT/samples.jsonl`` (rerunning the same command resumes); scores go to
``OUT/scores.json`` and ``OUT/scores.md`` and the table is printed. The library function is
:func:`text4seg.evaluation.evaluate`.
"""

from __future__ import annotations

import argparse

from text4seg.evaluation.tasks import TASKS

__all__ = ["configure", "run", "evaluate", "merge_shards"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``eval`` options to ``parser`` (every default is ``None``: the library owns the defaults)."""
    parser.add_argument("task", choices=sorted(TASKS), help="benchmark task")
    parser.add_argument("--model", default=None, help="model directory or hub id (with text4seg_config.json)")
    parser.add_argument("--adapter", default=None, help="LoRA adapter directory on top of --model")
    parser.add_argument("--data-root", dest="data_root", default=None, help="data root (default: playground/data)")
    parser.add_argument("--dataset", default=None, help="dataset name, e.g. refcoco, refcoco+, refcocog, refclef, "
                        "grefcoco, reasonseg, ade20k, pascal_context, pascal_voc, synthetic")
    parser.add_argument("--split", default=None, help="split name, e.g. val, testA, testB, test")
    parser.add_argument("--refiner", choices=["none", "sam"], default=None, help="mask refiner (default: none)")
    parser.add_argument("--sam-checkpoint", dest="sam_checkpoint", default=None,
                        help="SAM checkpoint file, e.g. sam_vit_h_4b8939.pth (with --refiner sam)")
    parser.add_argument("--sam-type", dest="sam_type", default=None, choices=["vit_h", "vit_l", "vit_b"],
                        help="SAM model type (default: vit_h)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N samples")
    parser.add_argument("--out", default=None, help="output folder (default: runs/eval/TASK_DATASET_SPLIT)")
    parser.add_argument("--save-vis", dest="save_vis", type=int, default=None,
                        help="write side-by-side overlays for the first N samples to OUT/vis")
    parser.add_argument("--template", type=int, default=None,
                        help="question template index K (default: the model's training template)")
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=None,
                        help="images predicted per batched call (default: 1; all expressions of an image always "
                        "go together)")


def run(args: argparse.Namespace) -> int:
    """Run ``text4seg eval`` from parsed arguments; prints the score table. Returns the exit status."""
    from text4seg.evaluation import evaluate as _evaluate
    from text4seg.evaluation.scoring import markdown_table

    options = {k: v for k, v in vars(args).items() if v is not None and k not in ("command", "task")}
    scores = _evaluate(args.task, **options)
    if scores is not None:
        print(markdown_table(scores))
    return 0


def evaluate(*args, **kwargs):
    """Alias of :func:`text4seg.evaluation.evaluate` (imported lazily: it needs torch)."""
    from text4seg.evaluation import evaluate as _evaluate

    return _evaluate(*args, **kwargs)


def merge_shards(*args, **kwargs):
    """Alias of :func:`text4seg.evaluation.merge_shards`."""
    from text4seg.evaluation import merge_shards as _merge

    return _merge(*args, **kwargs)
