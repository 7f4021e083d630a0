"""``gcg``: GLaMM's GranD-f grounded-caption sets → grounded-caption training JSON.

``--dataset grandf-ha|psg|flickr30k|refcocog|all`` (the layout: :mod:`text4seg.datasets.grandf`); the answer
marks the caption's phrases and labels one descriptor with them. The recipe (painting order, grid, phrases too
small for the grid) is :func:`text4seg.items.grounded.grounded_items`.
"""

from __future__ import annotations

import argparse
import itertools
import time

from tqdm import tqdm

from data_builders.options import add_grid_options, add_io_options, template_index
from text4seg.datasets.grandf import GCG_DATASETS, gcg_annotation_path, read_grandf
from text4seg.items.grounded import GCG_GRID, grounded_items
from text4seg.items.output import BuildSummary, write_items

__all__ = ["build", "configure"]

HELP = "GranD-f GCG sets (GranDf-HA, PSG, Flickr30k, RefCOCOg) -> grounded-caption JSON (<p>phrases</p> + descriptor)"
DATASET_CHOICES = (*GCG_DATASETS, "all")


def build(
    root: str,
    out: str,
    dataset: str = "all",
    split: str = "train",
    grid: int | str = GCG_GRID,
    downsample: str = "nearest",
    rle: bool = True,
    seed: int = 0,
    question_index: int | str = "random",
    limit: int | None = None,
    strict: bool = False,
    quiet: bool = False,
) -> BuildSummary:
    """Build a grounded-caption training JSON from GranD-f sets (see :func:`grounded_items`).

    Args:
        dataset: one of :data:`~text4seg.datasets.grandf.GCG_DATASETS` or ``"all"``: every set with ``split``
            (GranDf-HA has only ``train``) whose annotation file is there, in that order; the missing ones are
            named in the summary.
        split: ``train`` or ``val``.
        limit: only the first N images over all sets.
    """
    if dataset not in DATASET_CHOICES:
        raise ValueError(f"dataset {dataset!r}: expected one of {', '.join(DATASET_CHOICES)}")
    names = [n for n in GCG_DATASETS if split in GCG_DATASETS[n][0]] if dataset == "all" else [dataset]
    if not names:
        raise ValueError(f"no GCG dataset has a {split!r} split")
    start = time.perf_counter()
    summary = BuildSummary(name="gcg")
    if dataset == "all":
        found = [n for n in names if gcg_annotation_path(root, n, split).is_file()]
        if not found:  # reading the first gives the layout error
            found = names[:1]
        for name in names:
            if name not in found:
                summary.notes[f"sets without annotations ({name})"] += 1
        names = found
    samples = itertools.chain.from_iterable(
        read_grandf(root, name, split, strict=strict, skips=summary.skips) for name in names)
    items = grounded_items(tqdm(samples, desc="gcg", unit="img", disable=quiet, leave=False), summary, grid=grid,
                           downsample=downsample, rle=rle, seed=seed, question_index=question_index, limit=limit)
    write_items(out, items, summary)
    summary.seconds = time.perf_counter() - start
    return summary


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m data_builders gcg``."""
    add_io_options(parser, "train (default), val (psg, flickr30k, refcocog)")
    parser.add_argument("--dataset", choices=DATASET_CHOICES, default=None,
                        help="GranD-f set, or all of them (default: all)")
    add_grid_options(parser, str(GCG_GRID))
    parser.add_argument("--seed", type=int, default=None, help="seed of every random choice (default: 0)")
    parser.add_argument("--question-index", type=template_index, default=None, metavar="K|random",
                        help="question: a seeded random choice or a fixed index into GCG_QUESTIONS (default: random)")
