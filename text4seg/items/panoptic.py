"""COCO panoptic samples → instance-aware training items (the ``coco_panoptic`` builder).

Recipe: the panoptic segment-id map is reduced to the grid (32 x 32 nearest by default). Each round asks one
condition question (:data:`text4seg.prompts.CONDITION_QUESTIONS`, the reference's family for classes that may be
absent): a seeded random subset of the categories present plus absent distractors, at most ``max_classes``
names, shuffled. The answer labels the segments of the listed categories: every non-crowd *thing* segment is an
instance ``"{class} {k}"`` (k = 1, 2, ... in ``segments_info`` order among the segments that survive the grid,
up to ``max_instances``; further ones and crowd regions take the bare class name), every *stuff* segment the
bare class name; everything else is ``others``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator

import numpy as np

from text4seg.datasets.coco_panoptic import PanopticSample
from text4seg.descriptors import (
    MAX_INSTANCES,
    encode_descriptor,
    ids_to_labels,
    mask_to_grid,
    parse_grid_size,
)
from text4seg.items.output import BuildSummary
from text4seg.items.referring import DOWNSAMPLE_MODES
from text4seg.prompts import answer_text, conversation_item, semantic_question

__all__ = ["panoptic_grid_labels", "panoptic_items"]


def panoptic_grid_labels(sample: PanopticSample, grid_ids: np.ndarray, listed: set[int] | None = None,
                         max_instances: int = MAX_INSTANCES) -> np.ndarray:
    """Label a grid of segment ids (see the module docstring).

    Args:
        sample: the panoptic sample (segments and categories).
        grid_ids: (H, W) segment ids (0 = void).
        listed: category ids to label (None: all); other segments become ``others``.
        max_instances: highest instance number.

    Returns:
        (H, W) object array of str labels.
    """
    present = set(int(v) for v in np.unique(grid_ids))
    names: dict[int, str] = {}
    numbers: dict[int, int] = {}
    for segment in sample.segments:
        if segment.id not in present or (listed is not None and segment.category_id not in listed):
            continue
        category = sample.categories[segment.category_id]
        if category.isthing and not segment.iscrowd and numbers.get(category.id, 0) < max_instances:
            numbers[category.id] = numbers.get(category.id, 0) + 1
            names[segment.id] = f"{category.label} {numbers[category.id]}"
        else:
            names[segment.id] = category.label
    return ids_to_labels(grid_ids, names)


def panoptic_items(
    samples: Iterable[PanopticSample],
    summary: BuildSummary,
    grid: int | str | tuple[int, int] = 32,
    downsample: str = "nearest",
    rle: bool = True,
    rounds: int = 1,
    seed: int = 0,
    max_classes: int = 40,
    max_instances: int = MAX_INSTANCES,
    answer_index: int | str = "random",
    limit: int | None = None,
) -> Iterator[dict]:
    """Turn panoptic samples into instance-aware conversation items.

    Args:
        samples: :func:`text4seg.datasets.coco_panoptic.read_coco_panoptic` output.
        summary: counts are added to it.
        grid: descriptor grid, ``N`` or ``"HxW"``.
        downsample: ``"nearest"`` or ``"area"`` (applied to the segment-id map).
        rle: R-RLE (True) or plain descriptors.
        rounds: rounds per item (>= 1).
        seed: seed of the single random generator.
        max_classes: most class names one question lists (>= 1).
        max_instances: highest instance number (>= 1).
        answer_index: ``"random"`` or a fixed index into ``ANSWER_SENTENCES``.
        limit: only the first ``limit`` images.

    Yields:
        Items ``{"id", "image", "height", "width", "conversations"}``.
    """
    if not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be an int >= 1, got {rounds!r}")
    for name, value in (("max_classes", max_classes), ("max_instances", max_instances)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if downsample not in DOWNSAMPLE_MODES:
        raise ValueError(f"downsample must be one of {DOWNSAMPLE_MODES}, got {downsample!r}")
    answer_index = None if answer_index == "random" else answer_index
    grid_h, grid_w = parse_grid_size(grid)
    rng = random.Random(seed)
    for n, sample in enumerate(samples):
        if limit is not None and n >= limit:
            break
        ids = mask_to_grid(sample.id_map(), grid_h, grid_w, mode=downsample)
        on_grid = set(int(v) for v in np.unique(ids))
        present = sorted({s.category_id for s in sample.segments if s.id in on_grid})
        if not present:
            summary.notes["images without segments"] += 1
            continue
        absent = [c for c in sorted(sample.categories) if c not in set(present)]
        qa = []
        for _ in range(rounds):
            shown = rng.sample(present, rng.randint(1, min(len(present), max_classes)))
            listed = list(shown)
            room = max_classes - len(shown)
            if room > 0 and absent:
                listed += rng.sample(absent, rng.randint(0, min(room, len(absent))))
            rng.shuffle(listed)
            labels = panoptic_grid_labels(sample, ids, set(shown), max_instances)
            question = semantic_question([sample.categories[c].label for c in listed], "condition", rng=rng)
            qa.append((question, answer_text(encode_descriptor(labels, rle=rle), rng=rng, template=answer_index)))
            summary.rounds += 1
        summary.items += 1
        yield conversation_item(sample.id, sample.image, sample.height, sample.width, qa)
