"""``text4seg demo --model DIR``: a web page to try a model (:mod:`text4seg.demo`, extra ``demo``)."""

from __future__ import annotations

import argparse

from text4seg.cli.options import (
    add_dataclass_options,
    add_decoding_options,
    add_load_options,
    add_question_options,
    given,
)

EPILOG = """examples:
  text4seg demo --model runs/quickstart/model --device cpu        # then open http://127.0.0.1:7860
  text4seg demo --model runs/t4s-llava --sam-checkpoint sam_vit_h_4b8939.pth --sam-type vit_h
  text4seg demo --model runs/t4s-llava --sam2 facebook/sam2.1-hiera-large   # Video tab: propagate too
  text4seg demo --model runs/t4s-llava --host 0.0.0.0 --port 8080   # other machines too (warns)
"""


def configure(parser: argparse.ArgumentParser) -> None:
    from text4seg.demo import DemoOptions

    parser.add_argument("--model", required=True, help="model directory or hub id, or an adapter directory (required)")
    parser.add_argument("--adapter", default=None, metavar="DIR", help="LoRA adapter directory (default: none)")
    add_question_options(parser)
    groups: dict = {}
    add_load_options(parser, groups=groups)
    add_decoding_options(parser, groups=groups)
    add_dataclass_options(parser, DemoOptions, groups=groups)


def run(args: argparse.Namespace) -> int:
    import logging

    from text4seg._optional import require
    from text4seg.demo import DemoOptions, load_demo, serve
    from text4seg.options import DecodingOptions, LoadOptions
    from text4seg.segment import resolve_question

    require("gradio", extra="demo", purpose="text4seg demo")  # before the model loads: fail at once
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    options = DemoOptions(**given(args, DemoOptions.__dataclass_fields__))
    handler = load_demo(
        args.model,
        args.adapter,
        load=LoadOptions(**given(args, LoadOptions.__dataclass_fields__)),
        decoding=DecodingOptions(**given(args, DecodingOptions.__dataclass_fields__)),
        question_template=resolve_question(args.question_template, args.question_index),
        options=options,
    )
    serve(handler, options)
    return 0
