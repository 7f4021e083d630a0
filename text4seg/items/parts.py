"""PACO-LVIS and Pascal-Part samples → training items, as the reference builds them (``paco_lvis`` and
``pascal_part`` builders).

Both start from the reference's map: every annotation, objects and parts, painted in annotation order (later over
earlier, :meth:`~text4seg.datasets.parts.PartSample.category_map`), reduced to the grid (32 x 32 nearest by
default); the classes "in the image" are those left on the grid. Images with none are dropped (counted; the
reference also drops an image whose grid is one single class, we keep it). Each item has ``rounds`` rounds (2).

PACO-LVIS (:func:`paco_items`): a part category is labelled ``"{obj} {part}"`` (probability 0.3) or ``"{part}
of the {obj}"``, drawn once per category from the seeded generator (the short form falls back to the long one
should it equal another label); an object category is its name. A round lists the labels of 1 category present
(probability 0.8) or of 1..3 (:data:`text4seg.prompts.PARTIAL_CLASSES_QUESTIONS`), and the answer labels those,
everything else ``others``.

Pascal-Part (:func:`pascal_part_items`): labels are the bare part names (``"head"``). A round draws x in [0, 1)
and asks

- x < 0.5, *object parts*: 1..all objects of the image (:data:`text4seg.prompts.OBJECT_PARTS_QUESTIONS`); the
  answer labels every part of those objects by its part name;
- x < 0.6, *objects*: 1..all objects (the partial family); the answer labels their parts with the object name;
- otherwise *object part*: one object and 1 of its parts present (probability 0.8) or 1..4, plus (probability
  0.2) 1..2 of its parts absent from the image, shuffled (:data:`text4seg.prompts.OBJECT_PART_QUESTIONS`); the
  answer labels the listed parts of that object (absent ones are nowhere: ``others``).

After an *object parts* round, the next rounds are *objects* (0.3) or *object part* (0.7), as in the reference.
Every draw is made on sorted lists (the reference's ``random.sample`` on a set fails on Python >= 3.11 and
would depend on set order).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator

import numpy as np

from text4seg.datasets.parts import PartCategory, PartSample
from text4seg.descriptors import encode_descriptor, ids_to_labels, mask_to_grid, parse_grid_size
from text4seg.items.output import BuildSummary
from text4seg.items.referring import DOWNSAMPLE_MODES
from text4seg.prompts import (
    answer_text,
    conversation_item,
    object_part_question,
    object_parts_question,
    semantic_question,
)

__all__ = ["SHORT_LABEL_SHARE", "paco_labels", "paco_items", "pascal_part_items"]

SHORT_LABEL_SHARE = 0.3  # PACO part labels written "{obj} {part}"; the others "{part} of the {obj}"
_NONE = -1  # category map value of pixels without annotation


def paco_labels(categories: dict[int, PartCategory], rng: random.Random) -> dict[int, str]:
    """Category id -> label of a PACO build: one draw per part category, in category-id order."""
    draws = {cid: rng.random() < SHORT_LABEL_SHARE for cid, cat in sorted(categories.items()) if cat.part is not None}
    long = {cid: cat.label for cid, cat in categories.items()}
    taken = {label.casefold() for label in long.values()}
    labels = {}
    for cid, cat in sorted(categories.items()):
        short = f"{cat.object} {cat.part}"
        labels[cid] = short if draws.get(cid) and short.casefold() not in taken else long[cid]
    return labels


def _check(rounds: int, downsample: str, answer_index: int | str) -> int | None:
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be an int >= 1, got {rounds!r}")
    if downsample not in DOWNSAMPLE_MODES:
        raise ValueError(f"downsample must be one of {DOWNSAMPLE_MODES}, got {downsample!r}")
    if answer_index != "random" and (isinstance(answer_index, bool) or not isinstance(answer_index, int)):
        raise ValueError(f"answer_index must be 'random' or a template index, got {answer_index!r}")
    return None if answer_index == "random" else answer_index


def _grids(samples: Iterable[PartSample], summary: BuildSummary, grid: int | str | tuple[int, int], downsample: str,
           limit: int | None) -> Iterator[tuple[PartSample, np.ndarray, list[int]]]:
    """(sample, (H, W) category-id grid, category ids on the grid) of the images with a class on the grid."""
    grid_h, grid_w = parse_grid_size(grid)
    for n, sample in enumerate(samples):
        if limit is not None and n >= limit:
            break
        ids = mask_to_grid(sample.category_map(), grid_h, grid_w, mode=downsample, background_id=_NONE)
        present = [int(v) for v in np.unique(ids) if v != _NONE]
        if not present:
            summary.notes["images without classes on the grid"] += 1
            continue
        yield sample, ids, present


def _answer(ids: np.ndarray, names: dict[int, str], rle: bool, rng: random.Random, answer_index: int | None) -> str:
    return answer_text(encode_descriptor(ids_to_labels(ids, names), rle=rle), rng=rng, template=answer_index)


def paco_items(
    samples: Iterable[PartSample],
    summary: BuildSummary,
    grid: int | str | tuple[int, int] = 32,
    downsample: str = "nearest",
    rle: bool = True,
    rounds: int = 2,
    seed: int = 0,
    answer_index: int | str = "random",
    limit: int | None = None,
) -> Iterator[dict]:
    """PACO-LVIS samples → conversation items (see the module docstring).

    Args:
        samples: :func:`text4seg.datasets.parts.read_parts` output for ``paco_lvis``.
        summary: counts are added to it.
        grid: descriptor grid, ``N`` or ``"HxW"``.
        downsample: ``"nearest"`` (the reference) or ``"area"``, applied to the category map.
        rle: R-RLE (True) or plain descriptors.
        rounds: rounds per item (>= 1).
        seed: seed of the single random generator (labels first, then the rounds).
        answer_index: ``"random"`` or a fixed index into ``ANSWER_SENTENCES``.
        limit: only the first ``limit`` images.

    Yields:
        Items ``{"id", "image", "height", "width", "conversations"}``.
    """
    answer_index = _check(rounds, downsample, answer_index)
    rng = random.Random(seed)
    labels: dict[int, str] | None = None
    for sample, ids, present in _grids(samples, summary, grid, downsample, limit):
        if labels is None:  # the categories are shared by every sample of the split
            labels = paco_labels(sample.categories, rng)
        qa = []
        for _ in range(rounds):
            count = 1 if rng.random() < 0.8 else rng.randint(1, min(len(present), 3))
            chosen = rng.sample(present, count)
            rng.shuffle(chosen)
            question = semantic_question([labels[c] for c in chosen], "partial", rng=rng)
            qa.append((question, _answer(ids, {c: labels[c] for c in chosen}, rle, rng, answer_index)))
            summary.rounds += 1
        summary.items += 1
        yield conversation_item(sample.id, sample.image, sample.height, sample.width, qa)


def pascal_part_items(
    samples: Iterable[PartSample],
    summary: BuildSummary,
    grid: int | str | tuple[int, int] = 32,
    downsample: str = "nearest",
    rle: bool = True,
    rounds: int = 2,
    seed: int = 0,
    answer_index: int | str = "random",
    limit: int | None = None,
) -> Iterator[dict]:
    """Pascal-Part samples → conversation items with the three question kinds (see the module docstring).

    Args:
        samples: :func:`text4seg.datasets.parts.read_parts` output for ``pascal_part``.
        summary: counts are added to it (``notes`` count the rounds of each kind).
        grid, downsample, rle, rounds, seed, answer_index, limit: as in :func:`paco_items`.

    Yields:
        Items ``{"id", "image", "height", "width", "conversations"}``.
    """
    answer_index = _check(rounds, downsample, answer_index)
    rng = random.Random(seed)
    for sample, ids, present in _grids(samples, summary, grid, downsample, limit):
        cats = sample.categories
        parts = [c for c in present if cats[c].part is not None]
        objects = sorted({cats[c].object for c in parts})
        if not objects:
            summary.notes["images without parts on the grid"] += 1
            continue
        qa = []
        asked_all = False
        for _ in range(rounds):
            x = rng.random()
            if asked_all:
                x = 0.55 if rng.random() < 0.3 else 0.9
            if x < 0.5:
                asked_all = True
                chosen = rng.sample(objects, rng.randint(1, len(objects)))
                names = {c: cats[c].part for c in parts if cats[c].object in chosen}
                question = object_parts_question(chosen, rng=rng)
                summary.notes["object-parts rounds"] += 1
            elif x < 0.6:
                chosen = rng.sample(objects, rng.randint(1, len(objects)))
                rng.shuffle(chosen)
                names = {c: cats[c].object for c in parts if cats[c].object in chosen}
                question = semantic_question(chosen, "partial", rng=rng)
                summary.notes["objects rounds"] += 1
            else:
                obj = rng.choice(objects)
                all_parts = [c.part for _, c in sorted(cats.items()) if c.object == obj and c.part is not None]
                existing = [cats[c].part for c in parts if cats[c].object == obj]
                absent = [p for p in all_parts if p not in existing]
                asked = rng.sample(existing, 1 if rng.random() < 0.8 else rng.randint(1, min(len(existing), 4)))
                if rng.random() < 0.2 and absent:
                    asked += rng.sample(absent, rng.randint(1, min(len(absent), 2)))
                rng.shuffle(asked)
                names = {c: cats[c].part for c in parts if cats[c].object == obj and cats[c].part in asked}
                question = object_part_question(obj, asked, rng=rng)
                summary.notes["object-part rounds"] += 1
            qa.append((question, _answer(ids, names, rle, rng, answer_index)))
            summary.rounds += 1
        summary.items += 1
        yield conversation_item(sample.id, sample.image, sample.height, sample.width, qa)
