"""``grefcoco``: gRefCOCO → referring training JSON (multi-target unions, no-target refs as all-``others``).

Reads ``<root>/refer_seg/grefcoco/grefs(unc).json`` and ``instances.json`` (polygon and RLE segmentations);
images are never opened. Defaults: 24 x 24 grid, each ref twice, two rounds, the sentence as the label.
"""

from __future__ import annotations

import argparse

from data_builders.options import add_grid_options, add_io_options, add_recipe_options, add_template_options
from text4seg.datasets.grefer import count_grefcoco, read_grefcoco
from text4seg.items.output import BuildSummary
from text4seg.items.referring import write_referring

__all__ = ["build", "configure"]

HELP = "gRefCOCO (grefs(unc).json + instances.json) -> referring JSON with no-target and multi-target refs"


def build(
    root: str,
    out: str,
    split: str = "train",
    split_by: str = "unc",
    grid: int | str = 24,
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
    instance_labels: bool = False,
) -> BuildSummary:
    """Build a referring training JSON from a gRefCOCO split.

    No-target refs answer with an all-``others`` grid (counted as empty targets); multi-target refs label the
    union of their targets, or with ``instance_labels`` each target as ``"{label} {k}"`` (k = 1, 2, ... in
    annotation order: "the two dogs" gives two instances). Other arguments as :func:`data_builders.refcoco.build`.
    """
    summary = BuildSummary(name="grefcoco")
    samples = read_grefcoco(root, split, split_by=split_by, strict=strict, skips=summary.skips,
                            instances=instance_labels)
    total = None if limit is not None else count_grefcoco(root, split, split_by=split_by)
    return write_referring(
        "grefcoco", samples, out, summary, total=total, quiet=quiet,
        grid=grid, downsample=downsample, rle=rle, fg_label=fg_label, rounds=rounds, repeat=repeat, seed=seed,
        question_index=question_index, answer_index=answer_index, question_template=question_template,
        answer_sentence=answer_sentence, limit=limit, instance_labels=instance_labels,
    )  # fmt: skip


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m data_builders grefcoco``."""
    add_io_options(parser, "train (default), val, testA, testB")
    parser.add_argument("--split-by", default=None, help="grefs(<split_by>).json (default unc)")
    add_grid_options(parser, "24")
    parser.add_argument("--fg-label", default=None, help="'sentence' (default) or a fixed short label")
    add_recipe_options(parser, rounds_default=2, repeat_default=2)
    add_template_options(parser, question=True, default="random")
    parser.add_argument("--instance-labels", action="store_true", default=None,
                        help="label each target of a multi-target ref '{label} {k}' (default: off, their union)")
