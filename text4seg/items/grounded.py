"""GranD-f samples → grounded-caption training items (the ``gcg`` builder).

Recipe: each phrase's mask is painted into one id map at the image size, **larger phrases first** (by pixel
area, ties in caption order), so a small phrase lying on a larger one (a racket in a man's hand) keeps its
pixels; the id map is reduced to the grid (16 x 16 nearest by default: a GCG answer carries a long caption *and*
a descriptor with several multi-word labels, and 16 x 16 keeps the answer within a few hundred tokens where
32 x 32 quadruples the descriptor). The answer is :func:`text4seg.grounded.grounded_answer`: the caption with
every phrase that keeps at least one cell marked ``<p>...</p>``, and the descriptor labelled with those phrases.

A phrase left without a cell (smaller than a cell, or covered by smaller phrases) stays in the caption
**unmarked**: in the training data a marked phrase always has a mask, so a ``<p>`` the model writes is a
mask it means to give (GLaMM keeps every phrase; ``--downsample area`` keeps small objects on the grid).
Such phrases are counted in the build summary; an image left without any marked phrase is skipped. The
question is :func:`text4seg.prompts.gcg_question` (a seeded random template, or a fixed one).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator

import numpy as np

from text4seg.datasets.grandf import GcgSample
from text4seg.descriptors import BACKGROUND, ids_to_labels, mask_to_grid, parse_grid_size
from text4seg.grounded import grounded_answer, phrase_labels
from text4seg.items.output import BuildSummary
from text4seg.items.referring import DOWNSAMPLE_MODES
from text4seg.prompts import conversation_item, gcg_question

__all__ = ["GCG_GRID", "paint_phrases", "grounded_grid", "grounded_items"]

GCG_GRID = 16


def paint_phrases(masks: list[np.ndarray]) -> np.ndarray:
    """(H, W) int64 id map: phrase k (caption order) is id k + 1, painted larger first; 0 = background."""
    if not masks:
        raise ValueError("no phrase mask to paint")
    ids = np.zeros(masks[0].shape, dtype=np.int64)
    order = sorted(range(len(masks)), key=lambda k: (-int(masks[k].sum()), k))
    for k in order:
        ids[masks[k]] = k + 1
    return ids


def grounded_grid(sample: GcgSample, grid: tuple[int, int], downsample: str = "nearest"
                  ) -> tuple[list[tuple[int, int]], np.ndarray]:
    """The marked spans and the (H, W) label grid of one sample (see the module docstring).

    Returns:
        ``(spans, labels)``: the ``(start, end)`` of the phrases that keep a cell, in caption order, and the
        object grid of their :func:`~text4seg.grounded.phrase_labels` (``others`` elsewhere).
    """
    ids = mask_to_grid(paint_phrases(sample.masks()), grid[0], grid[1], mode=downsample)
    present = set(int(v) for v in np.unique(ids)) - {0}
    kept = [k for k in range(len(sample.phrases)) if k + 1 in present]
    spans = [sample.spans[k] for k in kept]
    labels = phrase_labels([sample.caption[s:e] for s, e in spans])
    return spans, ids_to_labels(ids, {k + 1: label for k, label in zip(kept, labels)}, BACKGROUND)


def grounded_items(
    samples: Iterable[GcgSample],
    summary: BuildSummary,
    grid: int | str | tuple[int, int] = GCG_GRID,
    downsample: str = "nearest",
    rle: bool = True,
    seed: int = 0,
    question_index: int | str = "random",
    limit: int | None = None,
) -> Iterator[dict]:
    """Turn GranD-f samples into grounded-caption conversation items (one round per image).

    Args:
        samples: :func:`text4seg.datasets.grandf.read_grandf` output.
        summary: counts are added to it (``notes``: unmarked phrases, images without a marked phrase).
        grid: descriptor grid, ``N`` or ``"HxW"``.
        downsample: ``"nearest"`` or ``"area"`` (applied to the painted id map).
        rle: R-RLE (True) or plain descriptors.
        seed: seed of the single random generator (question templates).
        question_index: ``"random"`` or a fixed index into :data:`text4seg.prompts.GCG_QUESTIONS`.
        limit: only the first ``limit`` samples.

    Yields:
        Items ``{"id", "image", "height", "width", "conversations"}``.
    """
    if downsample not in DOWNSAMPLE_MODES:
        raise ValueError(f"downsample must be one of {DOWNSAMPLE_MODES}, got {downsample!r}")
    template = None if question_index == "random" else question_index
    grid_hw = parse_grid_size(grid)
    rng = random.Random(seed)
    for n, sample in enumerate(samples):
        if limit is not None and n >= limit:
            break
        spans, labels = grounded_grid(sample, grid_hw, downsample)
        unmarked = len(sample.phrases) - len(spans)
        if unmarked:
            summary.notes["unmarked phrases (no cell on the grid)"] += unmarked
        if not spans:
            summary.notes["images without a marked phrase"] += 1
            continue
        question = gcg_question(rng, template)
        answer = grounded_answer(sample.caption, spans, labels, rle=rle)
        summary.rounds += 1
        summary.items += 1
        yield conversation_item(sample.id, sample.image, sample.height, sample.width, [(question, answer)])
