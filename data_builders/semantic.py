"""``cocostuff``, ``ade20k``, ``pascal_context``, ``pascal_voc``: semantic label maps → training JSON.

The recipe (random crops, question families, answers) is :func:`text4seg.items.semantic_items`.
"""

from __future__ import annotations

import argparse
import time

from tqdm import tqdm

from data_builders.options import add_grid_options, add_io_options, add_recipe_options, add_template_options
from text4seg.datasets.semantic import count_semantic_dataset, read_semantic_dataset
from text4seg.items.output import BuildSummary, write_items
from text4seg.items.semantic import CROP_SIZES, FAMILY_WEIGHTS, semantic_items

__all__ = ["CROP_SIZES", "FAMILY_WEIGHTS", "semantic_items", "build", "configure"]
DEFAULT_SPLITS = {
    "cocostuff": "train2017",
    "ade20k": "training",
    "pascal_context": "train",
    "pascal_voc": "train",
}

HELP = {
    "cocostuff": "COCO-Stuff 171 classes (*_labelTrainIds.png) -> semantic JSON with random crops",
    "ade20k": "ADE20K 150 classes (ADEChallengeData2016) -> semantic JSON with random crops",
    "pascal_context": "PASCAL-Context 59 classes (PC59) -> semantic JSON",
    "pascal_voc": "PASCAL VOC 20 classes (PAS20; 255 boundaries ignored) -> semantic JSON",
}


def build(
    root: str,
    out: str,
    dataset: str,
    split: str | None = None,
    grid: int | str = 32,
    downsample: str = "nearest",
    rle: bool = True,
    rounds: int = 2,
    repeat: int = 1,
    seed: int = 0,
    max_classes: int = 40,
    crop: bool | None = None,
    answer_index: int | str = "random",
    limit: int | None = None,
    strict: bool = False,
    quiet: bool = False,
) -> BuildSummary:
    """Build a semantic segmentation training JSON.

    Args:
        root: data root; ``image`` fields are relative to it.
        out: output JSON file.
        dataset: ``cocostuff``, ``ade20k``, ``pascal_context`` or ``pascal_voc``.
        split: default ``train2017`` (cocostuff), ``training`` (ade20k), ``train`` (PASCAL).
        crop: random square crops; default on for cocostuff and ade20k (as the reference), off for PASCAL.
        repeat: passes over the images (the reference used 10 for COCO-Stuff and 5 for ADE20K).
        Other arguments: see :func:`semantic_items`; ``strict``/``quiet`` as :func:`data_builders.refcoco.build`.
    """
    if dataset not in DEFAULT_SPLITS:
        raise ValueError(f"dataset must be one of {sorted(DEFAULT_SPLITS)}, got {dataset!r}")
    split = split or DEFAULT_SPLITS[dataset]
    if crop is None:
        crop = dataset in ("cocostuff", "ade20k")
    start = time.perf_counter()
    summary = BuildSummary(name=dataset)
    samples = read_semantic_dataset(root, split, dataset, strict=strict, skips=summary.skips)
    total = None if limit is not None else count_semantic_dataset(root, split, dataset)
    items = semantic_items(
        tqdm(samples, total=total, desc=dataset, unit="img", disable=quiet, leave=False), summary,
        grid=grid, downsample=downsample, rle=rle, rounds=rounds, repeat=repeat, seed=seed,
        max_classes=max_classes, crop=crop, answer_index=answer_index, limit=limit,
    )  # fmt: skip
    write_items(out, items, summary)
    summary.seconds = time.perf_counter() - start
    return summary


def configure(parser: argparse.ArgumentParser, dataset: str | None = None) -> None:
    """Options of ``python -m data_builders cocostuff|ade20k|pascal_context|pascal_voc``."""
    default_split = DEFAULT_SPLITS.get(dataset or "", "see the dataset")
    add_io_options(parser, f"split (default {default_split})")
    add_grid_options(parser, "32")
    add_recipe_options(parser, rounds_default=2, repeat_default=1)
    parser.add_argument(
        "--max-classes", type=int, default=None, help="most class names listed in one question (default 40)"
    )
    parser.add_argument(
        "--crop",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="random square crops recorded as crop_size (default on for cocostuff/ade20k)",
    )
    add_template_options(parser, question=False, default="random")
