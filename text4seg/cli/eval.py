"""``text4seg eval TASK``: benchmark evaluation (:func:`text4seg.evaluation.evaluate`).

Per-sample results (per expression for the video tasks) are appended to ``OUT/samples.jsonl`` (rerunning the
same command resumes); scores go to ``OUT/scores.json`` and ``OUT/scores.md`` and the table is printed. Video
splits without ground truth write ``OUT/masks/`` and ``OUT/submission.zip`` instead of scores.
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
  text4seg eval semantic-seg --model runs/t4s-llava --dataset ADE-847 --split validation --class-chunk 100
  text4seg eval panoptic --model runs/t4s-panoptic --data-root playground/data --split val   # PQ, SQ, RQ
  text4seg eval instance --model runs/t4s-panoptic --data-root playground/data --split val   # mask AP
  text4seg eval part-seg --model runs/t4s-parts --dataset pascal_part --split val   # mIoU over part classes
  text4seg eval gcg --model runs/t4s-gcg --data-root playground/data --split val   # METEOR, CIDEr, AP50, mIoU, recall
  torchrun --nproc_per_node 2 -m text4seg.cli eval synthetic --model runs/quickstart/model   # CPU processes
  text4seg eval rvos --model runs/t4s-llava --dataset mevis --split valid_u --frame-stride 2 --save-vis 4
  text4seg eval rvos --model runs/t4s-llava --dataset ref-youtube-vos --split valid   # -> OUT/submission.zip
  text4seg eval reasonvos --model runs/t4s-llava --dataset revos --split valid --save-masks
"""



def configure(parser: argparse.ArgumentParser) -> None:
    from text4seg.evaluation.tasks import TASKS

    parser.add_argument("task", choices=sorted(TASKS), help="benchmark task")
    parser.add_argument("--model", default=None, help="model directory or hub id, with text4seg_config.json "
                        "(required unless a segmenter is given from Python)")
    parser.add_argument("--adapter", default=None, metavar="DIR", help="LoRA adapter on top of --model (default: none)")
    parser.add_argument("--data-root", default=None, metavar="DIR", help="data root (default: playground/data)")
    parser.add_argument("--dataset", default=None,
                        help="refcoco, refcoco+, refcocog, refclef, grefcoco, reasonseg, ade20k, pascal_context, "
                        "pascal_voc, synthetic; panoptic, instance: coco; part-seg: paco_lvis, pascal_part; rvos: ref-youtube-vos, ref-davis17, mevis, "
                        "synthetic-video; reasonvos: revos; gcg: grandf (default: the task's usual one)")
    parser.add_argument("--split", default=None, help="split as the dataset spells it: val, testA, valid_u, ... "
                        "(default: val; gcg: val or test; video datasets: valid, valid_u for mevis and synthetic-video)")
    parser.add_argument("--expressions", choices=("all", "first"), default=None,
                        help="expressions of each referring sample to evaluate (default: all)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N samples (default: all)")
    parser.add_argument("--out", default=None, metavar="DIR", help="output folder (default: runs/eval/TASK_DATASET_SPLIT)")
    parser.add_argument("--save-vis", type=int, default=None, metavar="N",
                        help="side-by-side overlays of the first N samples in OUT/vis; video tasks: one GIF per "
                        "expression (default: 0)")
    parser.add_argument("--batch-size", type=int, default=None, metavar="N",
                        help="images (video: segmented frames) per batched call; an image's expressions always go "
                        "together (default: 1)")
    parser.add_argument("--class-chunk", type=int, default=None, metavar="N",
                        help="semantic-seg: ask at most N classes per prompt (several prompts per image) and merge "
                        "the answers cell by cell by their label scores, for long class lists such as ADE-847 "
                        "(default: 0, one prompt listing every class)")
    video = parser.add_argument_group("video tasks (rvos, reasonvos)")
    video.add_argument("--frame-stride", type=int, default=None, metavar="K",
                       help="segment every K-th frame; frames between get the mask of the nearest segmented frame "
                       "(default: 1)")
    video.add_argument("--save-masks", action="store_true", default=None,
                       help="write OUT/masks/<video>/<exp_id>/<frame>.png, 0/255 (default: off; always on for "
                       "splits without ground truth)")
    video.add_argument("--video-strategy", choices=("per-frame", "propagate"), default=None,
                       help="the model on every (K-th) frame, or on keyframes carried by SAM2 (default: per-frame)")
    video.add_argument("--keyframes", default=None, metavar="first|middle|best|stride:N",
                       help="propagate: which frames the model answers on (default: first)")
    video.add_argument("--candidates", type=int, default=None, metavar="K",
                       help="propagate with --keyframes best: frames tried per expression (default: 4)")
    video.add_argument("--sam2", default=None, metavar="ID|DIR",
                       help="SAM2 video model for propagate, e.g. facebook/sam2.1-hiera-large (default: none)")
    video.add_argument("--context-frames", type=int, default=None, metavar="K",
                       help="for a model trained with context frames: show the K frames before each answered "
                       "frame (default: 0)")
    gcg = parser.add_argument_group("grounded captions (gcg)")
    gcg.add_argument("--similarity-model", default=None, metavar="DIR",
                     help="local transformers model dir (e.g. bert-base-uncased) for mask recall's phrase similarity, "
                     "GLaMM's (default: offline bag-of-words cosine)")
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
             "batch_size", "refiner", "sam_checkpoint", "sam_type", "question_template", "question_index",
             "frame_stride", "save_masks", "video_strategy", "keyframes", "candidates", "sam2", "context_frames",
             "class_chunk", "similarity_model")
    scores = evaluate(
        args.task,
        load=LoadOptions(**given(args, LoadOptions.__dataclass_fields__)),
        decoding=DecodingOptions(**given(args, DecodingOptions.__dataclass_fields__)),
        **given(args, names),
    )
    if scores is not None:
        print(markdown_table(scores))
    return 0
