"""``reasonseg``: ReasonSeg → referring training JSON with the query in the question.

ReasonSeg queries are long ("what in the kitchen keeps food cold?"), so the grid label is a fixed word
(``--fg-label``, default ``target``) rather than the query. ``ignore`` polygons are left out of the target
(their cells read ``others``); the readers keep them so that evaluation can skip those pixels.
"""

from __future__ import annotations

import argparse

from data_builders.options import add_grid_options, add_io_options, add_recipe_options, add_template_options
from text4seg.datasets.reasonseg import count_reasonseg, read_reasonseg
from text4seg.items.output import BuildSummary
from text4seg.items.referring import write_referring

__all__ = ["build", "configure"]

HELP = "ReasonSeg (<split>/*.jpg + .json polygons) -> referring JSON, query in the question"


def build(
    root: str,
    out: str,
    split: str = "train",
    grid: int | str = 16,
    downsample: str = "nearest",
    rle: bool = True,
    fg_label: str = "target",
    rounds: int = 1,
    repeat: int = 1,
    seed: int = 0,
    question_index: int | str = "random",
    answer_index: int | str = "random",
    question_template: str | None = None,
    answer_sentence: str | None = None,
    limit: int | None = None,
    strict: bool = False,
    quiet: bool = False,
) -> BuildSummary:
    """Build a referring training JSON from a ReasonSeg split (one ref per image, its queries as sentences).

    Arguments as :func:`data_builders.refcoco.build`; ``fg_label`` defaults to ``"target"``.
    """
    summary = BuildSummary(name="reasonseg")
    samples = read_reasonseg(root, split, strict=strict, skips=summary.skips)
    total = None if limit is not None else count_reasonseg(root, split)
    return write_referring(
        "reasonseg", samples, out, summary, total=total, quiet=quiet,
        grid=grid, downsample=downsample, rle=rle, fg_label=fg_label, rounds=rounds, repeat=repeat, seed=seed,
        question_index=question_index, answer_index=answer_index, question_template=question_template,
        answer_sentence=answer_sentence, limit=limit,
    )  # fmt: skip


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m data_builders reasonseg``."""
    add_io_options(parser, "train (default), val, test")
    add_grid_options(parser, "16")
    parser.add_argument(
        "--fg-label", default=None, help="grid label of the target (default target; or sentence)"
    )
    add_recipe_options(parser, rounds_default=1, repeat_default=1)
    add_template_options(parser, question=True, default="random")
