"""``text4seg quickstart``: synthetic data → tiny model trained on CPU → held-out scores → one mask."""

from __future__ import annotations

import argparse
import logging


def configure(parser: argparse.ArgumentParser) -> None:
    from text4seg.presets import TINY_PRESET

    parser.add_argument("--out", default=None, metavar="DIR",
                        help="run folder: data/, model/, eval/, mask.png, overlay.png, scores.json "
                        "(default: runs/quickstart)")
    parser.add_argument("--minutes", type=float, default=None,
                        help=f"training-time budget (default: {TINY_PRESET.train.minutes:g})")
    parser.add_argument("--seed", type=int, default=None, help="seed of data and training (default: 0)")


def run(args: argparse.Namespace) -> int:
    from transformers.utils import logging as hf_logging

    from text4seg.quickstart import quickstart

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    hf_logging.disable_progress_bar()
    kwargs = {k: v for k, v in vars(args).items() if v is not None and k != "command"}
    quickstart(**kwargs)
    return 0
