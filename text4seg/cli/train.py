"""``text4seg train``: fine-tune on Text4Seg JSON files (:func:`text4seg.training.train`)."""

from __future__ import annotations

import argparse
import logging

from text4seg.cli.options import add_dataclass_options, add_load_options, add_question_options, given

EPILOG = """examples:
  text4seg train --model llava-hf/llava-1.5-7b-hf --data refcoco.json --data grefcoco.json:0.5 --out runs/lora
  text4seg train --model tiny --data synthetic.json --out runs/tiny      # starts from the tiny recipe's values
  accelerate launch --num_processes 8 -m text4seg.cli train --model ... --data ... --load-in-4bit
"""


def configure(parser: argparse.ArgumentParser) -> None:
    """Every :class:`~text4seg.training.TrainConfig` field as a flag; help shows the default and, where it
    differs, the tiny recipe's value (used with ``--model tiny``)."""
    from text4seg.presets import TINY_PRESET
    from text4seg.training.config import TrainConfig

    tiny = {name: getattr(TINY_PRESET.train, name) for name in TrainConfig.__dataclass_fields__}
    groups: dict = {}
    add_dataclass_options(parser, TrainConfig, also=tiny, also_name="tiny", groups=groups)
    add_question_options(parser, index=False, default="the model's")
    add_load_options(parser, groups=groups, exclude=("dtype",))


def run(args: argparse.Namespace) -> int:
    """Train; prints the steps, time and output directory."""
    from text4seg.options import LoadOptions
    from text4seg.presets import TINY_PRESET
    from text4seg.training.config import TrainConfig
    from text4seg.training.recipe import train

    fields = [*TrainConfig.__dataclass_fields__, *LoadOptions.__dataclass_fields__, "question_template"]
    values = given(args, fields)
    model = str(values.get("model", "tiny"))
    base = TINY_PRESET.train if model == "tiny" or model.startswith("tiny-") else TrainConfig()
    config = base.replace(**values)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    result = train(config)
    kind = "adapter" if result.adapter else "model"
    how = " (time budget reached)" if result.stopped_by_time else ""
    print(f"trained {result.global_step} steps in {result.seconds:.0f}s{how}; {kind}: {result.output_dir}")
    if result.skipped:
        print(f"skipped {result.skipped} bad items")
    return 0
