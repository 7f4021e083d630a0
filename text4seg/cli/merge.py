"""``text4seg merge``: fold a LoRA adapter into its base model (:func:`text4seg.merge.merge`)."""

from __future__ import annotations

import argparse

from text4seg.cli.options import add_load_options, given

EPILOG = "example:\n  text4seg merge --adapter runs/lora --out runs/merged --dtype bfloat16\n"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--adapter", required=True, metavar="DIR", help="LoRA adapter directory (required)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory of the merged model (required)")
    parser.add_argument("--model", default=None,
                        help="base model, hub id or directory (default: the one recorded in the adapter)")
    from text4seg.options import LoadOptions

    add_load_options(parser, exclude=("load_in_4bit", "load_in_8bit", "attn"), defaults=LoadOptions(device="cpu"))


def run(args: argparse.Namespace) -> int:
    from text4seg.merge import merge
    from text4seg.options import LoadOptions

    load = LoadOptions(**given(args, LoadOptions.__dataclass_fields__))
    out = merge(args.adapter, args.out, model=args.model, load=load)
    print(f"merged model: {out}")
    return 0
