"""``cocostuff``, ``ade20k``, ``pascal_context``, ``pascal_voc``: semantic label maps → training JSON.

Recipe (the reference's ``create_cocostuff.py``): per image and pass, a random square crop (side drawn from
256/336/392/448 among those that fit, else the short side) recorded as ``crop_size`` ``[left, top, right,
bottom]``; the crop's label map is reduced to the grid (32 x 32 by default); crops whose grid holds no class are
dropped (counted). Each item has ``rounds`` rounds; a round asks one question family:

- ``all`` (probability 0.1, at most once per item, only when the dataset has at most ``max_classes`` classes):
  lists every class; the answer labels every class present.
- ``partial`` (0.3 — or 0.4 when ``all`` is not possible): a random subset of the classes present; the others
  are ``others`` in the answer.
- ``condition`` (0.6): a random subset of the classes present plus distractor classes absent from the crop, at
  most ``max_classes`` names in all, shuffled; the answer labels the listed classes that are present.

Ignored pixels (VOC boundaries, 255) count as ``others`` in the grid. Grid labels are the class names of
:mod:`text4seg.datasets.class_names`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator

import numpy as np

from text4seg.datasets.samples import SemanticSample
from text4seg.datasets.semantic import IGNORE_ID
from text4seg.descriptors import encode_descriptor, ids_to_labels, mask_to_grid, parse_grid_size
from text4seg.items.output import BuildSummary
from text4seg.items.referring import DOWNSAMPLE_MODES, safe_text
from text4seg.prompts import answer_text, conversation_item, semantic_question

__all__ = ["CROP_SIZES", "FAMILY_WEIGHTS", "semantic_items"]

CROP_SIZES = (256, 336, 392, 448)
FAMILY_WEIGHTS = (0.1, 0.3, 0.6)  # all, partial, condition


def _random_crop(rng: random.Random, height: int, width: int) -> tuple[int, int, int, int]:
    sizes = [s for s in CROP_SIZES if s <= height and s <= width] or [min(height, width)]
    side = rng.choice(sizes)
    left = rng.randint(0, width - side)
    top = rng.randint(0, height - side)
    return left, top, left + side, top + side


def _pick_family(rng: random.Random, all_allowed: bool) -> str:
    x = rng.random()
    if x < FAMILY_WEIGHTS[0]:
        return "all" if all_allowed else "partial"
    return "partial" if x < FAMILY_WEIGHTS[0] + FAMILY_WEIGHTS[1] else "condition"


def _names(sample: SemanticSample, cache: dict, summary: BuildSummary) -> list[str]:
    key = tuple(sample.class_names)
    if key not in cache:
        safe = [safe_text(name) for name in sample.class_names]
        summary.sanitized += sum(a != b for a, b in zip(safe, sample.class_names))
        if not all(safe) or len(set(safe)) != len(safe):
            raise ValueError(f"class names of {sample.id} are empty or not unique after sanitizing: {safe}")
        cache[key] = safe
    return cache[key]


def semantic_items(
    samples: Iterable[SemanticSample],
    summary: BuildSummary,
    grid: int | str | tuple[int, int] = 32,
    downsample: str = "nearest",
    rle: bool = True,
    rounds: int = 2,
    repeat: int = 1,
    seed: int = 0,
    max_classes: int = 40,
    crop: bool = True,
    answer_index: int | str = "random",
    limit: int | None = None,
) -> Iterator[dict]:
    """Turn semantic samples into conversation items (see the module docstring for the recipe).

    Args:
        samples: reader output (``label_map`` 0 = others, 1..K classes, 255 ignore).
        summary: counts are added to it.
        grid: descriptor grid, ``N`` or ``"HxW"``.
        downsample: ``"nearest"`` or ``"area"``.
        rle: R-RLE (True) or plain descriptors.
        rounds: rounds per item (>= 1).
        repeat: passes per image (>= 1), each with a new crop; ids get ``_r<k>`` when > 1.
        seed: seed of the single random generator.
        max_classes: most class names one question may list (>= 1).
        crop: random square crops (recorded as ``crop_size``) or the whole image.
        answer_index: ``"random"`` or a fixed index into ``ANSWER_SENTENCES``.
        limit: only the first ``limit`` images.

    Yields:
        Items ``{"id", "image", "height", "width", ["crop_size",] "conversations"}``.
    """
    if not isinstance(rounds, int) or rounds < 1 or not isinstance(repeat, int) or repeat < 1:
        raise ValueError(f"rounds and repeat must be ints >= 1, got {rounds!r}, {repeat!r}")
    if not isinstance(max_classes, int) or max_classes < 1:
        raise ValueError(f"max_classes must be an int >= 1, got {max_classes!r}")
    if downsample not in DOWNSAMPLE_MODES:
        raise ValueError(f"downsample must be one of {DOWNSAMPLE_MODES}, got {downsample!r}")
    if answer_index != "random" and (
        isinstance(answer_index, bool) or not isinstance(answer_index, int)
    ):
        raise ValueError(f"answer_index must be 'random' or a template index, got {answer_index!r}")
    answer_index = None if answer_index == "random" else answer_index
    grid_h, grid_w = parse_grid_size(grid)
    rng = random.Random(seed)
    name_cache: dict = {}
    for n, sample in enumerate(samples):
        if limit is not None and n >= limit:
            break
        names = _names(sample, name_cache, summary)
        num_classes = len(names) - 1
        for r in range(repeat):
            box = _random_crop(rng, sample.height, sample.width) if crop else None
            label_map = sample.label_map
            if box is not None:
                left, top, right, bottom = box
                label_map = label_map[top:bottom, left:right]
            label_map = np.where((label_map == IGNORE_ID) | (label_map > num_classes), 0, label_map)
            ids = mask_to_grid(label_map, grid_h, grid_w, mode=downsample)
            present = [int(v) for v in np.unique(ids) if v != 0]
            if not present:
                summary.notes["crops without classes"] += 1
                continue
            absent = [i for i in range(1, num_classes + 1) if i not in set(present)]
            qa = []
            all_allowed = num_classes <= max_classes
            for _ in range(rounds):
                family = _pick_family(rng, all_allowed)
                if family == "all":
                    all_allowed = False
                    shown, listed = present, list(range(1, num_classes + 1))
                else:
                    shown = rng.sample(present, rng.randint(1, min(len(present), max_classes)))
                    listed = list(shown)
                    room = max_classes - len(shown)
                    if family == "condition" and room > 0 and absent:
                        listed += rng.sample(absent, rng.randint(0, min(room, len(absent))))
                    rng.shuffle(listed)
                grid_labels = ids_to_labels(np.where(np.isin(ids, shown), ids, 0), names)
                question = semantic_question([names[i] for i in listed], family, rng=rng)
                answer = answer_text(encode_descriptor(grid_labels, rle=rle), rng=rng, template=answer_index)
                qa.append((question, answer))
                summary.rounds += 1
            item_id = sample.id if repeat == 1 else f"{sample.id}_r{r}"
            summary.items += 1
            yield conversation_item(item_id, sample.image, sample.height, sample.width, qa, crop_size=box)
