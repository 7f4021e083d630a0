"""``paco_lvis``: PACO-LVIS (``vlpart/paco_lvis/annotations/paco_lvis_v1_<split>.json`` + COCO images) → training
JSON with object and part labels (``"lid of the trash_can"``, ``"trash_can lid"``), two partial rounds per image.

The recipe is :func:`text4seg.items.parts.paco_items`; the reader :func:`text4seg.datasets.parts.read_parts`.
"""

from __future__ import annotations

import argparse
import time

from tqdm import tqdm

from data_builders.options import add_grid_options, add_io_options, add_recipe_options, add_template_options
from text4seg.datasets.parts import count_parts, read_parts
from text4seg.items.output import BuildSummary, write_items
from text4seg.items.parts import paco_items, pascal_part_items

__all__ = ["build", "build_parts", "configure"]

HELP = "PACO-LVIS (paco_lvis_v1_<split>.json + COCO images) -> JSON with object and part labels"

_RECIPES = {"paco_lvis": paco_items, "pascal_part": pascal_part_items}


def build_parts(dataset: str, root: str, out: str, split: str = "train", grid: int | str = 32,
                downsample: str = "nearest", rle: bool = True, rounds: int = 2, repeat: int = 1, seed: int = 0,
                answer_index: int | str = "random", limit: int | None = None, strict: bool = False,
                quiet: bool = False) -> BuildSummary:
    """Build a part training JSON of ``dataset`` (``paco_lvis`` or ``pascal_part``), written atomically."""
    if repeat != 1:
        raise ValueError(f"repeat {repeat!r}: {dataset} builds one item per image (use --rounds)")
    start = time.perf_counter()
    summary = BuildSummary(name=dataset)
    samples = read_parts(root, split, dataset, strict=strict, skips=summary.skips)
    total = None if limit is not None else count_parts(root, split, dataset)
    items = _RECIPES[dataset](
        tqdm(samples, total=total, desc=dataset, unit="img", disable=quiet, leave=False), summary, grid=grid,
        downsample=downsample, rle=rle, rounds=rounds, seed=seed, answer_index=answer_index, limit=limit,
    )
    write_items(out, items, summary)
    summary.seconds = time.perf_counter() - start
    return summary


def build(root: str, out: str, **options: object) -> BuildSummary:
    """Build a PACO-LVIS training JSON (see :func:`text4seg.items.parts.paco_items` for the recipe)."""
    return build_parts("paco_lvis", root, out, **options)


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m data_builders paco_lvis`` (and ``pascal_part``)."""
    add_io_options(parser, "train (default), val")
    add_grid_options(parser, "32")
    add_recipe_options(parser, rounds_default=2, repeat_default=1)
    add_template_options(parser, question=False, default="random")
