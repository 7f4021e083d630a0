"""``text4seg segment IMAGE "QUERY"``: segment one image (:func:`text4seg.segment.segment_image`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from text4seg.cli.options import add_decoding_options, add_load_options, add_question_options, given

EPILOG = """examples:
  text4seg segment photo.jpg "the dog on the left" --model runs/t4s --out out/dog.png   # + out/dog_overlay.png
  text4seg segment photo.jpg --instruction "What keeps the rain off?" --model runs/t4s --json
  text4seg segment photo.jpg --classes "sky,road,car" --model runs/t4s --load-in-4bit
  text4seg segment room.jpg --classes-file ade847.txt --class-chunk 100 --model runs/t4s   # 9 prompts, merged
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
    parser.add_argument("--classes-file", default=None, metavar="TXT",
                        help="class names, one per line (blank lines skipped), instead of --classes (default: none)")
    parser.add_argument("--class-chunk", type=int, default=None, metavar="N",
                        help="ask prompts of at most N classes each and merge the answers by their label scores; "
                        "0: one prompt (default: 0)")
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
    if args.classes_file is not None:
        if classes is not None:
            raise ValueError("give --classes or --classes-file, not both")
        classes = read_class_file(args.classes_file)
    overlay = False if args.no_overlay else (Path(args.overlay) if args.overlay else True)
    if args.grounded:
        from text4seg.segment import ground_image

        conflicts = [name for name, value in (("QUERY", queries), ("--classes", classes),
                                              ("--class-chunk", args.class_chunk),
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
        class_chunk=args.class_chunk,
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


def read_class_file(path: str) -> list[str]:
    """Class names from a text file, one per line (surrounding whitespace and blank lines dropped).

    Raises:
        OSError: the file cannot be read (the message names it).
        ValueError: not UTF-8, or no class name in it.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise ValueError(f"{path}: no class name (one per line)")
    return names
