"""``synthetic``: draw the coloured-shapes dataset under ``--data-root`` and write its referring training JSON.

Defaults are tuned for a tiny model learning from scratch on CPU: one round per item, each shape once, and a
FIXED question and answer template (index 0, the evaluation template) so that every answer starts with the same
prefix and the model spends its capacity on the grid. Use ``--question-index random`` / ``--answer-index
random`` for the varied recipe of the real datasets. The difficulty knobs (``--max-shapes``, ``--twin-rate``,
``--distinct-colours``, ``--shape-size``) and the answer form rebuild the quickstart's set exactly; the
quickstart prints the command.
"""

from __future__ import annotations

import argparse
import time

from data_builders.options import add_grid_options, add_io_options, add_recipe_options, add_template_options
from text4seg.datasets.synthetic import generate_synthetic, read_synthetic
from text4seg.items.output import BuildSummary
from text4seg.items.referring import EXPRESSION_CHOICES, write_referring

__all__ = ["build", "configure"]

HELP = "synthetic coloured shapes: writes images under --data-root, then the referring JSON"


def _shape_size(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH shares of the image side, got {text!r}") from None
    return (low, high)


def build(
    root: str,
    out: str,
    split: str = "train",
    num_images: int = 200,
    image_size: int = 224,
    max_shapes: int = 4,
    twin_rate: float = 0.25,
    distinct_colours: bool = False,
    shape_size: tuple[float, float] = (0.15, 0.45),
    grid: int | str = 16,
    downsample: str = "nearest",
    rle: bool = True,
    fg_label: str = "sentence",
    rounds: int = 1,
    repeat: int = 1,
    seed: int = 0,
    question_index: int | str = 0,
    answer_index: int | str = 0,
    question_template: str | None = None,
    answer_sentence: str | None = None,
    expressions: str = "random",
    shuffle: bool = False,
    limit: int | None = None,
    strict: bool = False,
    quiet: bool = False,
) -> BuildSummary:
    """Generate ``num_images`` images of a split (idempotent, seeded) and build their training JSON.

    Args:
        root: data root; images go to ``<root>/synthetic/<split>/``.
        out: output JSON file.
        split: ``train`` (default), ``val``, ``test``: different seeds derived from ``seed``.
        num_images: images to draw; image_size: side of the square images in pixels.
        max_shapes, twin_rate, distinct_colours, shape_size: difficulty, see
            :func:`text4seg.datasets.synthetic.generate_synthetic`.
        question_index, answer_index: fixed index 0 by default (see the module docstring) or ``"random"``.
        expressions, shuffle: see :func:`text4seg.items.referring_items`.
        Other arguments as :func:`data_builders.refcoco.build` (``strict`` has nothing to check here).
    """
    start = time.perf_counter()
    generate_synthetic(root, split=split, num_images=num_images, image_size=image_size, seed=seed,
                       max_shapes=max_shapes, twin_rate=twin_rate, distinct_colours=distinct_colours,
                       shape_size=tuple(shape_size))
    summary = BuildSummary(name="synthetic")
    write_referring(
        "synthetic", read_synthetic(root, split), out, summary, quiet=quiet,
        grid=grid, downsample=downsample, rle=rle, fg_label=fg_label, rounds=rounds, repeat=repeat, seed=seed,
        question_index=question_index, answer_index=answer_index, question_template=question_template,
        answer_sentence=answer_sentence, expressions=expressions, shuffle=shuffle, limit=limit,
    )  # fmt: skip
    summary.seconds = time.perf_counter() - start
    return summary


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m data_builders synthetic``."""
    add_io_options(parser, "train, val or test (default: train)")
    parser.add_argument("--num-images", type=int, default=None, help="images to draw (default: 200)")
    parser.add_argument("--image-size", type=int, default=None, help="image side in pixels (default: 224)")
    parser.add_argument("--max-shapes", type=int, default=None, help="most shapes per image (default: 4)")
    parser.add_argument("--twin-rate", type=float, default=None,
                        help="chance of a twin shape only a relation or position tells apart (default: 0.25)")
    parser.add_argument("--distinct-colours", action=argparse.BooleanOptionalAction, default=None,
                        help="one colour per shape in an image (default: --no-distinct-colours)")
    parser.add_argument("--shape-size", type=_shape_size, default=None, metavar="LOW,HIGH",
                        help="box side range as shares of the image side (default: 0.15,0.45)")
    add_grid_options(parser, "16")
    parser.add_argument("--fg-label", default=None, help="'sentence' or a fixed short label (default: sentence)")
    parser.add_argument("--expressions", choices=EXPRESSION_CHOICES, default=None,
                        help="sentence of a shape each round asks about (default: random)")
    parser.add_argument("--shuffle", action="store_true", default=None,
                        help="write the items in a seeded random order (default: image order)")
    add_recipe_options(parser, rounds_default=1, repeat_default=1)
    add_template_options(parser, question=True, default="0 (fixed)")
