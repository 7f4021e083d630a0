"""``coco_panoptic``: COCO panoptic (panoptic_<split>2017.json + PNGs) → instance-aware training JSON.

Things are instance labels (``"person 1"``, ``"person 2"``), stuff are class labels (``"sky"``); the questions
are the condition family. The recipe is :func:`text4seg.items.panoptic.panoptic_items`.
"""

from __future__ import annotations

import argparse
import time

from tqdm import tqdm

from data_builders.options import add_grid_options, add_io_options, add_recipe_options, add_template_options
from text4seg.datasets.coco_panoptic import count_coco_panoptic, read_coco_panoptic
from text4seg.descriptors import MAX_INSTANCES
from text4seg.items.output import BuildSummary, write_items
from text4seg.items.panoptic import panoptic_items

__all__ = ["build", "configure"]

HELP = "COCO panoptic (panoptic_<split>2017.json + PNGs) -> JSON with instance labels for things, class labels for stuff"


def build(
    root: str,
    out: str,
    split: str = "train",
    grid: int | str = 32,
    downsample: str = "nearest",
    rle: bool = True,
    rounds: int = 1,
    repeat: int = 1,
    seed: int = 0,
    max_classes: int = 40,
    max_instances: int = MAX_INSTANCES,
    answer_index: int | str = "random",
    limit: int | None = None,
    strict: bool = False,
    quiet: bool = False,
) -> BuildSummary:
    """Build an instance-aware training JSON from a COCO panoptic split (see :func:`panoptic_items`)."""
    if repeat != 1:
        raise ValueError(f"repeat {repeat!r}: coco_panoptic builds one item per image (use --rounds)")
    start = time.perf_counter()
    summary = BuildSummary(name="coco_panoptic")
    samples = read_coco_panoptic(root, split, strict=strict, skips=summary.skips)
    total = None if limit is not None else count_coco_panoptic(root, split)
    items = panoptic_items(
        tqdm(samples, total=total, desc="coco_panoptic", unit="img", disable=quiet, leave=False), summary,
        grid=grid, downsample=downsample, rle=rle, rounds=rounds, seed=seed, max_classes=max_classes,
        max_instances=max_instances, answer_index=answer_index, limit=limit,
    )  # fmt: skip
    write_items(out, items, summary)
    summary.seconds = time.perf_counter() - start
    return summary


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m data_builders coco_panoptic``."""
    add_io_options(parser, "train (default), val")
    add_grid_options(parser, "32")
    add_recipe_options(parser, rounds_default=1, repeat_default=1)
    parser.add_argument("--max-classes", type=int, default=None, help="most class names per question (default: 40)")
    parser.add_argument("--max-instances", type=int, default=None,
                        help=f"highest instance number k of '{{class}} {{k}}' labels (default: {MAX_INSTANCES})")
    add_template_options(parser, question=False, default="random")
