"""``text4seg segment-video VIDEO "EXPRESSION"``: segment a video (:func:`text4seg.video_segment.segment_video_file`)."""

from __future__ import annotations

import argparse

from text4seg.cli.options import add_decoding_options, add_load_options, add_question_options, given

EPILOG = """examples:
  text4seg segment-video clip.mp4 "the dog running left" --model runs/t4s --out out/dog
  text4seg segment-video frames/ "the red car" --model runs/t4s --video-strategy propagate --keyframes best \\
      --sam2 facebook/sam2.1-hiera-large --gif
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", help="a video file (decoded with PyAV) or a folder of frames")
    parser.add_argument("expression", nargs="?", default=None, help="the referring expression")
    parser.add_argument("--instruction", default=None,
                        help="a free-form request sent as is, instead of an expression (default: none)")
    parser.add_argument("--model", required=True, help="model directory or hub id, or an adapter directory (required)")
    parser.add_argument("--adapter", default=None, metavar="DIR", help="LoRA adapter directory (default: none)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="masks/<frame>.png, overlay.mp4 and result.json go here (default: video_masks)")
    parser.add_argument("--gif", action="store_true", default=None, help="overlay as GIF instead of MP4 (default: off)")
    parser.add_argument("--max-frames", type=int, default=None, metavar="N", help="only the first N frames (default: all)")
    video = parser.add_argument_group("video strategy")
    video.add_argument("--video-strategy", choices=("per-frame", "propagate"), default=None,
                       help="the model on every frame, or on keyframes carried through the video by SAM2 "
                       "(default: per-frame)")
    video.add_argument("--frame-stride", type=int, default=None, metavar="K",
                       help="per-frame: answer every K-th frame, the others take the nearest answer (default: 1)")
    video.add_argument("--no-temporal-drafts", dest="temporal_drafts", action="store_false", default=None,
                       help="per-frame: answer frames independently instead of drafting each answer from the "
                       "previous frame's (same masks, more forward passes in fast decoding) (default: drafts on)")
    video.add_argument("--keyframes", default=None, metavar="first|middle|best|stride:N",
                       help="propagate: which frames the model answers on (default: first)")
    video.add_argument("--candidates", type=int, default=None, metavar="K",
                       help="propagate with --keyframes best: frames tried, spread over the video (default: 4)")
    video.add_argument("--context-frames", type=int, default=None, metavar="K",
                       help="for a model trained with context frames: show the K frames before each answered "
                       "frame too (default: 0)")
    video.add_argument("--sam2", default=None, metavar="ID|DIR",
                       help="SAM2 video model for propagate, e.g. facebook/sam2.1-hiera-large (default: none)")
    add_question_options(parser)
    groups: dict = {}
    add_load_options(parser, groups=groups)
    add_decoding_options(parser, groups=groups)


def run(args: argparse.Namespace) -> int:
    from text4seg.options import DecodingOptions, LoadOptions
    from text4seg.video_segment import segment_video_file

    if (args.expression is None) == (args.instruction is None):
        raise ValueError("give an EXPRESSION or --instruction (exactly one)")
    options = given(args, ("adapter", "frame_stride", "keyframes", "candidates", "sam2", "max_frames",
                           "question_template", "question_index", "context_frames", "temporal_drafts"))
    record = segment_video_file(
        args.video, args.expression, model=args.model, instruction=args.instruction, out=args.out or "video_masks",
        gif=bool(args.gif), load=LoadOptions(**given(args, LoadOptions.__dataclass_fields__)),
        decoding=DecodingOptions(**given(args, DecodingOptions.__dataclass_fields__)),
        strategy=args.video_strategy or "per-frame", **options,
    )
    keys = ", ".join(record["keyframes"]) or "none"
    print(f"{record['frames']} frames ({record['strategy']}): {record['model_calls']} model answers, "
          f"{record['sam2_calls']} SAM2 passes, keyframes {keys}, {record['seconds']:.1f} s")
    print(f"masks: {args.out or 'video_masks'}/masks/  overlay: {record['overlay']}  result: "
          f"{args.out or 'video_masks'}/result.json")
    return 0
