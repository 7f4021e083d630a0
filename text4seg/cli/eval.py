"""``text4seg eval TASK``: benchmark evaluation (:func:`text4seg.evaluation.evaluate`).

Per-sample results are appended to ``OUT/samples.jsonl`` (rerunning the same command resumes); scores go to
``OUT/scores.json`` and ``OUT/scores.md`` and the table is printed.
"""

from __future__ import annotations

import argparse

from text4seg.cli.options import add_decoding_options, add_load_options, add_question_options, given

EPILOG = """examples:
  text4seg eval refer-seg --model runs/t4s-llava --data-root playground/data --dataset refcoco --split val
  text4seg eval refer-seg --model llava-hf/llava-1.5-7b-hf --adapter runs/lora --load-in-4bit --decoding constrained
  text4seg eval semantic-seg --model runs/t4s-llava --dataset ade20k --split validation --refiner sam \\
      --sam-checkpoint sam_vit_h_4b8939.pth --sam-type vit_h
  accelerate launch --num_processes 8 -m text4seg.cli eval reason-seg --model ... --dataset reasonseg --split val
  text4seg eval panoptic --model runs/t4s-panoptic --data-root playground/data --split val   # PQ, SQ, RQ
  text4seg eval instance --model runs/t4s-panoptic --data-root playground/data --split val   # mask AP
  torchrun --nproc_per_node 2 -m text4seg.cli eval synthetic --model runs/quickstart/model   # CPU processes
"""



def configure(parser: argparse.ArgumentParser) -> None:
    from text4seg.evaluation.tasks import TASKS

    parser.add_argument("task", choices=sorted(TASKS), help="benchmark task")
    parser.add_argument("--model", default=None, help="model directory or hub id, with text4seg_config.json "
                        "(required unless a segmenter is given from Python)")
    parser.add_argument("--adapter", default=None, metavar="DIR", help="LoRA adapter on top of --model (default: none)")
    parser.add_argument("--data-root", default=None, metavar="DIR", help="data root (default: playground/data)")
    parser.add_argument("--dataset", default=None,
                        help="refcoco, refcoco+, refcocog, refclef, grefcoco, reasonseg, ade20k, pascal_context, coco (panoptic, instance), "
                        "pascal_voc, synthetic (default: the task's usual one)")
    parser.add_argument("--split", default=None, help="split as the dataset spells it: val, testA, ... (default: val)")
    parser.add_argument("--expressions", choices=("all", "first"), default=None,
                        help="expressions of each referring sample to evaluate (default: all)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N samples (default: all)")
    parser.add_argument("--out", default=None, metavar="DIR", help="output folder (default: runs/eval/TASK_DATASET_SPLIT)")
    parser.add_argument("--save-vis", type=int, default=None, metavar="N",
                        help="side-by-side overlays of the first N samples in OUT/vis (default: 0)")
    parser.add_argument("--batch-size", type=int, default=None, metavar="N",
                        help="images per batched call; an image's expressions always go together (default: 1)")
    refine = parser.add_argument_group("refinement")
    refine.add_argument("--refiner", choices=("none", "sam"), default=None, help="mask refiner (default: none)")
    refine.add_argument("--sam-checkpoint", default=None, metavar="FILE",
                        help="SAM checkpoint, e.g. sam_vit_h_4b8939.pth (with --refiner sam; default: none)")
    refine.add_argument("--sam-type", choices=("vit_h", "vit_l", "vit_b"), default=None,
                        help="SAM model type (default: vit_h)")
    add_question_options(parser)
    groups: dict = {}
    add_load_options(parser, groups=groups)
    add_decoding_options(parser, groups=groups)


def run(args: argparse.Namespace) -> int:
    from text4seg.evaluation import evaluate
    from text4seg.evaluation.scoring import markdown_table
    from text4seg.options import DecodingOptions, LoadOptions

    names = ("model", "adapter", "data_root", "dataset", "split", "expressions", "limit", "out", "save_vis",
             "batch_size", "refiner", "sam_checkpoint", "sam_type", "question_template", "question_index")
    scores = evaluate(
        args.task,
        load=LoadOptions(**given(args, LoadOptions.__dataclass_fields__)),
        decoding=DecodingOptions(**given(args, DecodingOptions.__dataclass_fields__)),
        **given(args, names),
    )
    if scores is not None:
        print(markdown_table(scores))
    return 0
