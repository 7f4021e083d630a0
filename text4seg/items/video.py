"""Video samples → per-frame referring conversation items (the video builders of ``python -m data_builders``).

Recipe: every expression of the split gives ``frames_per_expression`` distinct frames, drawn uniformly with the
seed (all frames when the video has fewer), in frame order; every chosen frame starts ``repeat`` items of
``rounds`` rounds. Round 1 asks about the expression in that frame, later rounds about a random expression of
the same video in the same frame. The answer's grid is the target in that frame (all ``others`` where the
target is absent or the expression refers to nothing). The foreground label is the expression itself
(``fg_label="sentence"``) or a fixed word; ReVOS reasoning expressions (``type_id`` 1) are questions or
instructions, so like ReasonSeg queries they go into the question and their grid label is
``reasoning_fg_label`` (``"target"``). Items use the Text4Seg image format with the frame as the image.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator

import numpy as np

from text4seg.datasets.video_samples import VideoSample
from text4seg.descriptors import (
    binary_grid_labels,
    encode_descriptor,
    mask_to_grid,
    parse_grid_size,
    sanitize_label,
    wrap_descriptor,
)
from text4seg.items.output import BuildSummary
from text4seg.items.referring import DOWNSAMPLE_MODES, check_question_template, safe_text, template_index
from text4seg.prompts import answer_text, conversation_item, referring_question

__all__ = ["sample_frames", "video_items", "context_indices"]


def context_indices(frame: int, k: int) -> list[int]:
    """The ``k`` frames shown before ``frame``, oldest first: ``frame - k .. frame - 1``, frame 0 repeated where
    the video has fewer."""
    return [max(0, frame - k + j) for j in range(k)]


def sample_frames(num_frames: int, k: int, rng: random.Random) -> list[int]:
    """``k`` distinct frame indices drawn uniformly from ``range(num_frames)``, sorted (all when fewer)."""
    if num_frames <= k:
        return list(range(num_frames))
    return sorted(rng.sample(range(num_frames), k))


def _by_video(samples: Iterable[VideoSample]) -> Iterator[list[VideoSample]]:
    group: list[VideoSample] = []
    for sample in samples:
        if group and sample.video_id != group[0].video_id:
            yield group
            group = []
        group.append(sample)
    if group:
        yield group


def _fixed(label: str, name: str) -> str | None:
    if label == "sentence":
        return None
    fixed = sanitize_label(label)
    if not fixed:
        raise ValueError(f"{name} {label!r} is empty after removing descriptor separators")
    return fixed


class _GridCache:
    """Grids of one video's (expression, frame) pairs, decoded once; bad masks raise (strict) or are counted."""

    def __init__(self, height: int, width: int, downsample: str, strict: bool, summary: BuildSummary) -> None:
        self.height, self.width, self.downsample = height, width, downsample
        self.strict, self.summary = strict, summary
        self.grids: dict[tuple[str, int], np.ndarray] = {}
        self.bad: set[str] = set()

    def grid(self, sample: VideoSample, index: int) -> np.ndarray | None:
        """``(H, W)`` int64 grid of the target in frame ``index`` (1 = target), None for a bad mask."""
        key = (sample.id, index)
        if not sample.has_masks:
            raise ValueError(f"{sample.dataset} split {sample.split!r} has no ground-truth masks: training items "
                             f"need a split with annotations")
        if key not in self.grids:
            try:
                mask = sample.mask(index)
            except (ValueError, FileNotFoundError):
                if self.strict:
                    raise
                if sample.id not in self.bad:
                    self.bad.add(sample.id)
                    self.summary.skips.add("bad mask", sample.id)
                return None
            self.grids[key] = mask_to_grid(mask, self.height, self.width, mode=self.downsample)
        return self.grids[key]


def video_items(
    samples: Iterable[VideoSample],
    summary: BuildSummary,
    frames_per_expression: int = 4,
    grid: int | str | tuple[int, int] = 16,
    downsample: str = "nearest",
    rle: bool = True,
    fg_label: str = "sentence",
    reasoning_fg_label: str = "target",
    rounds: int = 1,
    repeat: int = 1,
    seed: int = 0,
    question_index: int | str = "random",
    answer_index: int | str = "random",
    question_template: str | None = None,
    answer_sentence: str | None = None,
    limit: int | None = None,
    strict: bool = False,
    context_frames: int = 0,
) -> Iterator[dict]:
    """Turn video samples (one video's expressions consecutive, as the readers yield them) into items.

    Args:
        samples: reader output.
        summary: counts are added to it (items, rounds, empty targets, sanitized, skips).
        frames_per_expression: frames per expression (>= 1).
        grid, downsample, rle, rounds, repeat, seed, question_index, answer_index, question_template,
            answer_sentence: as :func:`text4seg.items.referring_items`.
        fg_label: ``"sentence"`` (the expression is the label) or a fixed label.
        reasoning_fg_label: label of ReVOS reasoning expressions (``"sentence"`` to use the expression).
        limit: only the first ``limit`` expressions.
        strict: raise on a bad annotation instead of skipping the expression (counted as ``"bad mask"``).
        context_frames: K >= 1: each item shows the K frames before the target frame and the target frame
            (``"image"`` is a list of K+1 paths, one ``<image>`` per frame in the first turn; frame 0 repeats
            where the video has fewer earlier frames); the answer is the target frame's descriptor.

    Yields:
        Items ``{"id": "<sample id>_f<frame>[_r<k>]", "image": frame path, "height", "width", "conversations"}``.
    """
    if isinstance(context_frames, bool) or not isinstance(context_frames, int) or context_frames < 0:
        raise ValueError(f"context_frames must be an int >= 0, got {context_frames!r}")
    for name, value in (("frames_per_expression", frames_per_expression), ("rounds", rounds), ("repeat", repeat)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if downsample not in DOWNSAMPLE_MODES:
        raise ValueError(f"downsample must be one of {DOWNSAMPLE_MODES}, got {downsample!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be an int >= 0, got {limit!r}")
    grid_h, grid_w = parse_grid_size(grid)
    question_index = template_index(question_index, "question_index")
    answer_index = template_index(answer_index, "answer_index")
    question_template = check_question_template(question_template)
    fixed_label = _fixed(fg_label, "fg_label")
    reasoning_label = _fixed(reasoning_fg_label, "reasoning_fg_label")
    rng = random.Random(seed)
    seen = 0
    for group in _by_video(samples):
        texts: dict[str, str] = {}
        for sample in group:
            text = safe_text(sample.expression)
            summary.sanitized += int(text != sample.expression.strip())
            if text:
                texts[sample.id] = text
            else:
                summary.skips.add("no usable expression", sample.id)
        usable = [s for s in group if s.id in texts]
        cache = _GridCache(grid_h, grid_w, downsample, strict, summary)

        def label_of(sample: VideoSample, texts: dict[str, str] = texts) -> str:
            if sample.type_id == 1 and fixed_label is None:
                return reasoning_label or texts[sample.id]
            return fixed_label or texts[sample.id]

        for sample in usable:
            if limit is not None and seen >= limit:
                return
            seen += 1
            frames = sample_frames(sample.num_frames, frames_per_expression, rng)
            if any(cache.grid(sample, f) is None for f in frames):
                continue
            for r in range(repeat):
                for f in frames:
                    qa = []
                    for turn in range(rounds):
                        ref = sample
                        if turn:
                            others = [s for s in usable if s.id not in cache.bad]
                            ref = rng.choice(others)
                            if cache.grid(ref, f) is None:
                                ref = sample
                        cells = cache.grid(ref, f)
                        labels = binary_grid_labels(cells, label_of(ref))
                        descriptor = encode_descriptor(labels, rle=rle)
                        if question_template is not None:
                            question = question_template.format(expression=texts[ref.id])
                        else:
                            question = referring_question(texts[ref.id], rng=rng, template=question_index)
                        if answer_sentence is not None:
                            answer = wrap_descriptor(descriptor, answer_sentence)
                        else:
                            answer = answer_text(descriptor, rng=rng, template=answer_index)
                        qa.append((question, answer))
                        summary.rounds += 1
                        summary.empty_targets += int(not cells.any())
                    item_id = f"{sample.id}_f{sample.frame_names[f]}" + (f"_r{r}" if repeat > 1 else "")
                    summary.items += 1
                    image = (sample.frame_paths[f] if not context_frames else
                             [sample.frame_paths[k] for k in context_indices(f, context_frames)] + [sample.frame_paths[f]])
                    yield conversation_item(item_id, image, sample.height, sample.width, qa)
