"""Command-line options shared by the builders (every default is None: the build functions own defaults).

The names are those of every text4seg command: ``--data-root`` (``--root`` still accepted), ``--out``,
``--question-template TEXT`` (a literal question with ``{expression}``), ``--question-index K|random`` (a
template of :data:`text4seg.prompts.REFERRING_QUESTIONS`), ``--answer-index K|random`` (``--answer-template``
still accepted) and ``--answer-sentence TEXT``.
"""

from __future__ import annotations

import argparse

from text4seg.cli.options import question_index

__all__ = [
    "add_io_options",
    "add_grid_options",
    "add_recipe_options",
    "add_template_options",
    "template_index",
]


def add_io_options(parser: argparse.ArgumentParser, split_help: str) -> None:
    """``--data-root``, ``--out``, ``--split``, ``--limit``, ``--strict``, ``--quiet``."""
    parser.add_argument("--data-root", "--root", dest="root", required=True, metavar="DIR",
                        help="data root, the reference layout (e.g. playground/data); required")
    parser.add_argument("--out", required=True, metavar="FILE", help="output JSON file, written atomically; required")
    parser.add_argument("--split", default=None, help=split_help)
    parser.add_argument(
        "--limit", type=int, default=None, metavar="N", help="only the first N images (default: all)"
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        default=None,
        help="fail on the first malformed annotation (naming its id) instead of skipping and counting it "
        "(default: skip)",
    )
    parser.add_argument("--quiet", action="store_true", default=None, help="no progress bar (default: shown)")


def add_grid_options(parser: argparse.ArgumentParser, grid_default: str) -> None:
    """``--grid``, ``--downsample``, ``--rle/--no-rle``."""
    parser.add_argument(
        "--grid", default=None, metavar="N|HxW", help=f"descriptor grid (default: {grid_default})"
    )
    parser.add_argument(
        "--downsample",
        choices=("nearest", "area"),
        default=None,
        help="mask -> grid: 'nearest' (the reference) or 'area' (small objects survive) (default: nearest)",
    )
    parser.add_argument(
        "--rle",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="row-wise run-length encoded descriptors, or plain ones with --no-rle (default: --rle)",
    )


def add_recipe_options(parser: argparse.ArgumentParser, rounds_default: int, repeat_default: int) -> None:
    """``--rounds``, ``--repeat``, ``--seed``."""
    parser.add_argument(
        "--rounds", type=int, default=None, help=f"question/answer rounds per item (default: {rounds_default})"
    )
    parser.add_argument(
        "--repeat", type=int, default=None, help=f"passes over the data, each with fresh random choices "
        f"(default: {repeat_default})",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=None, help="seed of every random choice (default: 0)")


# the same parser as every text4seg command's --question-index
template_index = question_index


def add_template_options(parser: argparse.ArgumentParser, question: bool, default: str) -> None:
    """``--answer-index`` and, with ``question`` (referring builders), ``--question-index``, ``--question-template``
    and ``--answer-sentence``."""
    if question:
        parser.add_argument(
            "--question-index",
            type=template_index,
            default=None,
            metavar="K|random",
            help=f"question: a seeded random choice or a fixed index into REFERRING_QUESTIONS (default: {default})",
        )
        parser.add_argument(
            "--question-template",
            default=None,
            metavar="TEXT",
            help="a literal question containing {expression}, replacing --question-index (default: none)",
        )
    parser.add_argument(
        "--answer-index",
        "--answer-template",
        dest="answer_index",
        type=template_index,
        default=None,
        metavar="K|random",
        help=f"answer sentence: a seeded random choice or a fixed index into ANSWER_SENTENCES (default: {default})",
    )
    if not question:
        return
    parser.add_argument(
        "--answer-sentence",
        default=None,
        metavar="TEXT",
        help="a literal sentence before <seg> ('' for none), replacing --answer-index (default: none)",
    )
