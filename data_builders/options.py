"""Command-line options shared by the builders (every default is None: the build functions own defaults)."""

from __future__ import annotations

import argparse

__all__ = [
    "add_io_options",
    "add_grid_options",
    "add_recipe_options",
    "add_template_options",
    "template_index",
]


def add_io_options(parser: argparse.ArgumentParser, split_help: str) -> None:
    """``--root``, ``--out``, ``--split``, ``--limit``, ``--strict``, ``--quiet``."""
    parser.add_argument("--root", required=True, help="data root (reference layout, e.g. playground/data)")
    parser.add_argument("--out", required=True, help="output JSON file (written atomically)")
    parser.add_argument("--split", default=None, help=split_help)
    parser.add_argument(
        "--limit", type=int, default=None, metavar="N", help="only the first N images (smoke runs)"
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        default=None,
        help="fail on the first malformed annotation (naming its id) instead of skipping and counting it",
    )
    parser.add_argument("--quiet", action="store_true", default=None, help="no progress bar")


def add_grid_options(parser: argparse.ArgumentParser, grid_default: str) -> None:
    """``--grid``, ``--downsample``, ``--rle/--no-rle``."""
    parser.add_argument(
        "--grid", default=None, metavar="N|HxW", help=f"descriptor grid (default {grid_default})"
    )
    parser.add_argument(
        "--downsample",
        choices=("nearest", "area"),
        default=None,
        help="mask -> grid: 'nearest' (reference, default) or 'area' (small objects survive)",
    )
    parser.add_argument(
        "--rle",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="row-wise run-length encoded descriptors (default) or plain ones",
    )


def add_recipe_options(parser: argparse.ArgumentParser, rounds_default: int, repeat_default: int) -> None:
    """``--rounds``, ``--repeat``, ``--seed``."""
    parser.add_argument(
        "--rounds", type=int, default=None, help=f"question/answer rounds per item (default {rounds_default})"
    )
    parser.add_argument(
        "--repeat", type=int, default=None, help=f"passes over the data, each with fresh random choices "
        f"(default {repeat_default})",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=None, help="seed of every random choice (default 0)")


def template_index(value: str) -> int | str:
    """Parse ``--question-template``/``--answer-template``: ``"random"`` or a template index."""
    if value == "random":
        return value
    try:
        index = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'random' or a template index, got {value!r}") from None
    if index < 0:
        raise argparse.ArgumentTypeError(f"template index must be >= 0, got {index}")
    return index


def add_template_options(parser: argparse.ArgumentParser, question: bool, default: str) -> None:
    """``--answer-template`` and, with ``question``, ``--question-template``."""
    if question:
        parser.add_argument(
            "--question-template",
            type=template_index,
            default=None,
            metavar="random|N",
            help=f"question template: seeded random choice or a fixed index into REFERRING_QUESTIONS "
            f"(default {default})",
        )
    parser.add_argument(
        "--answer-template",
        type=template_index,
        default=None,
        metavar="random|N",
        help=f"answer sentence: seeded random choice or a fixed index into ANSWER_SENTENCES (default {default})",
    )
