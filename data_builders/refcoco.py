"""``refcoco``: RefCOCO / RefCOCO+ / RefCOCOg / RefCLEF → referring training JSON.

Reads ``<root>/refer_seg/<dataset>/refs(<split_by>).p`` (restricted unpickler) and ``instances.json``; image
sizes come from the annotations, images are never opened. Default recipe as the reference: each ref twice,
two-round conversations (round 2 about a random ref of the same image), 16 x 16 grid, the sentence as the
foreground label.
"""

from __future__ import annotations

import argparse

from data_builders.options import add_grid_options, add_io_options, add_recipe_options, add_template_options
from text4seg.datasets.refer import DEFAULT_SPLIT_BY, REFER_DATASETS, count_refer, read_refer
from text4seg.items.output import BuildSummary
from text4seg.items.referring import write_referring

__all__ = ["build", "configure"]

HELP = "RefCOCO/RefCOCO+/RefCOCOg/RefCLEF (refs(*).p + instances.json) -> referring JSON"


def build(
    root: str,
    out: str,
    dataset: str = "refcoco",
    split: str = "train",
    split_by: str | None = None,
    grid: int | str = 16,
    downsample: str = "nearest",
    rle: bool = True,
    fg_label: str = "sentence",
    rounds: int = 2,
    repeat: int = 2,
    seed: int = 0,
    question_index: int | str = "random",
    answer_index: int | str = "random",
    question_template: str | None = None,
    answer_sentence: str | None = None,
    limit: int | None = None,
    strict: bool = False,
    quiet: bool = False,
) -> BuildSummary:
    """Build a referring training JSON from a RefCOCO-family split.

    Args:
        root: data root holding ``refer_seg/``; ``image`` fields are relative to it.
        out: output JSON file.
        dataset: ``refcoco``, ``refcoco+``, ``refcocog`` or ``refclef``.
        split: ``train``, ``val``, ``test``, ``testA``, ``testB``.
        split_by: ``unc``/``google``/``umd``; default ``umd`` for refcocog, else ``unc``.
        grid, downsample, rle, fg_label, rounds, repeat, seed, question_index, answer_index, question_template, answer_sentence, limit: see
            :func:`text4seg.items.referring_items`.
        strict: fail on the first malformed annotation instead of skipping it.
        quiet: no progress bar.

    Returns:
        The build summary (also describes skipped annotations).
    """
    if dataset not in REFER_DATASETS:
        raise ValueError(f"dataset must be one of {REFER_DATASETS}, got {dataset!r}")
    summary = BuildSummary(name=dataset)
    samples = read_refer(root, split, dataset=dataset, split_by=split_by, strict=strict, skips=summary.skips)
    total = None if limit is not None else count_refer(root, split, dataset=dataset, split_by=split_by)
    return write_referring(
        dataset, samples, out, summary, total=total, quiet=quiet,
        grid=grid, downsample=downsample, rle=rle, fg_label=fg_label, rounds=rounds, repeat=repeat, seed=seed,
        question_index=question_index, answer_index=answer_index, question_template=question_template,
        answer_sentence=answer_sentence, limit=limit,
    )  # fmt: skip


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m data_builders refcoco``."""
    add_io_options(parser, "train (default), val, test, testA, testB")
    parser.add_argument("--dataset", choices=REFER_DATASETS, default=None, help="default refcoco")
    parser.add_argument(
        "--split-by",
        default=None,
        help="refs(<split_by>).p: "
        + ", ".join(f"{k} -> {v}" for k, v in DEFAULT_SPLIT_BY.items())
        + " by default",
    )
    add_grid_options(parser, "16")
    parser.add_argument(
        "--fg-label",
        default=None,
        help="'sentence' (default: the expression labels the target cells) or a fixed short label, e.g. target",
    )
    add_recipe_options(parser, rounds_default=2, repeat_default=2)
    add_template_options(parser, question=True, default="random")
