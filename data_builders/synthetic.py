"""``synthetic``: draw the coloured-shapes dataset under ``--root`` and write its referring training JSON.

Defaults are tuned for a tiny model learning from scratch on CPU: one round per item, each shape once, and a
FIXED question and answer template (index 0, the evaluation template) so that every answer starts with the same
prefix and the model spends its capacity on the grid. Use ``--question-template random`` /
``--answer-template random`` for the varied recipe of the real datasets.
"""

from __future__ import annotations

import argparse
import time

from data_builders.options import add_grid_options, add_io_options, add_recipe_options, add_template_options
from data_builders.output import BuildSummary
from data_builders.referring import write_referring
from text4seg.datasets.synthetic import generate_synthetic, read_synthetic

__all__ = ["build", "configure"]

HELP = "synthetic coloured shapes: writes images under --root, then the referring JSON"


def build(
    root: str,
    out: str,
    split: str = "train",
    num_images: int = 200,
    image_size: int = 224,
    grid: int | str = 16,
    downsample: str = "nearest",
    rle: bool = True,
    fg_label: str = "sentence",
    rounds: int = 1,
    repeat: int = 1,
    seed: int = 0,
    question_template: int | str = 0,
    answer_template: int | str = 0,
    limit: int | None = None,
    strict: bool = False,
    quiet: bool = False,
) -> BuildSummary:
    """Generate ``num_images`` images of a split (idempotent, seeded) and build their training JSON.

    Args:
        root: data root; images go to ``<root>/synthetic/<split>/``.
        out: output JSON file.
        split: ``train`` (default), ``val``, ``test``: different seeds derived from ``seed``.
        num_images: images to draw.
        image_size: side of the square images in pixels.
        question_template, answer_template: fixed index 0 by default (see the module docstring) or
            ``"random"``.
        Other arguments as :func:`data_builders.refcoco.build` (``strict`` has nothing to check here).
    """
    start = time.perf_counter()
    generate_synthetic(root, split=split, num_images=num_images, image_size=image_size, seed=seed)
    summary = BuildSummary(name="synthetic")
    write_referring(
        "synthetic", read_synthetic(root, split), out, summary, quiet=quiet,
        grid=grid, downsample=downsample, rle=rle, fg_label=fg_label, rounds=rounds, repeat=repeat, seed=seed,
        question_template=question_template, answer_template=answer_template, limit=limit,
    )  # fmt: skip
    summary.seconds = time.perf_counter() - start
    return summary


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m data_builders synthetic``."""
    add_io_options(parser, "train (default), val, test")
    parser.add_argument("--num-images", type=int, default=None, help="images to draw (default 200)")
    parser.add_argument("--image-size", type=int, default=None, help="image side in pixels (default 224)")
    add_grid_options(parser, "16")
    parser.add_argument("--fg-label", default=None, help="'sentence' (default) or a fixed short label")
    add_recipe_options(parser, rounds_default=1, repeat_default=1)
    add_template_options(parser, question=True, default="0 (fixed)")
