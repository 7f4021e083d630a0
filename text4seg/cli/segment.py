"""``text4seg segment IMAGE "QUERY"``: segment one image (:func:`text4seg.segment.segment_image`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from text4seg.cli.options import add_decoding_options, add_load_options, add_question_options, given

EPILOG = """examples:
  text4seg segment photo.jpg "the dog on the left" --model runs/t4s --out out/dog.png   # + out/dog_overlay.png
  text4seg segment photo.jpg --instruction "What keeps the rain off?" --model runs/t4s --json
  text4seg segment photo.jpg --classes "sky,road,car" --model runs/t4s --load-in-4bit
  text4seg segment photo.jpg --grounded --model runs/t4s --out out/gcg.png   # out/gcg_0.png ... per phrase
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="image file")
    parser.add_argument("queries", nargs="*", metavar="QUERY", help="referring expression(s), one mask each")
    parser.add_argument("--query", action="append", dest="extra_queries", metavar="QUERY", default=None,
                        help="one more referring expression (repeatable; default: none)")
    parser.add_argument("--instruction", default=None,
                        help="a free-form request sent as is, e.g. reasoning segmentation (default: none)")
    parser.add_argument("--classes", default=None, metavar="A,B,...",
                        help="comma-separated class names: a semantic prompt (default: none)")
    parser.add_argument("--grounded", action="store_true", default=None,
                        help="a grounded caption (GCG): the caption, its phrases and one mask PNG per phrase; "
                        "--instruction replaces the request (default: off)")
    parser.add_argument("--model", required=True, help="model directory or hub id, or an adapter directory (required)")
    parser.add_argument("--adapter", default=None, metavar="DIR", help="LoRA adapter directory (default: none)")
    parser.add_argument("--out", default=None, metavar="PNG",
                        help="mask PNG; numbered PNG_K for several queries (default: mask.png)")
    parser.add_argument("--overlay", default=None, metavar="PNG",
                        help="overlay PNG (default: beside the mask, <mask stem>_overlay.png)")
    parser.add_argument("--no-overlay", action="store_true", default=None, help="write no overlay (default: off)")
    parser.add_argument("--json", action="store_true", dest="json_output", default=None,
                        help="print one JSON object, masks as COCO RLE (default: text)")
    parser.add_argument("--upsample", choices=("nearest", "smooth"), default=None,
                        help="grid -> pixels (default: nearest)")
    add_question_options(parser)
    groups: dict = {}
    add_load_options(parser, groups=groups)
    add_decoding_options(parser, groups=groups)


def run(args: argparse.Namespace) -> int:
    from text4seg.options import DecodingOptions, LoadOptions
    from text4seg.segment import segment_image

    queries = list(args.queries) + list(args.extra_queries or [])
    classes = None if args.classes is None else [c.strip() for c in args.classes.split(",") if c.strip()]
    overlay = False if args.no_overlay else (Path(args.overlay) if args.overlay else True)
    if args.grounded:
        from text4seg.segment import ground_image

        conflicts = [name for name, value in (("QUERY", queries), ("--classes", args.classes),
                                              ("--question-template", args.question_template),
                                              ("--question-index", args.question_index)) if value]
        if conflicts:
            raise ValueError(f"--grounded asks for a caption: give no {', '.join(conflicts)} (--instruction "
                             "replaces the request)")
        ground_image(args.image, model=args.model, adapter=args.adapter, instruction=args.instruction,
                     out=args.out or "mask.png", overlay=overlay, json_output=bool(args.json_output),
                     load=LoadOptions(**given(args, LoadOptions.__dataclass_fields__)),
                     decoding=DecodingOptions(**given(args, DecodingOptions.__dataclass_fields__)),
                     upsample=args.upsample or "nearest")
        return 0
    segment_image(
        args.image,
        queries,
        model=args.model,
        adapter=args.adapter,
        instruction=args.instruction,
        classes=classes,
        out=args.out or "mask.png",
        overlay=overlay,
        json_output=bool(args.json_output),
        load=LoadOptions(**given(args, LoadOptions.__dataclass_fields__)),
        decoding=DecodingOptions(**given(args, DecodingOptions.__dataclass_fields__)),
        question_template=args.question_template,
        question_index=args.question_index,
        upsample=args.upsample or "nearest",
    )
    return 0
