"""Referring samples → Text4Seg conversation items (the refcoco, grefcoco, reasonseg, synthetic builders and the
quickstart).

Recipe (the reference's ``create_refcoco.py``): the refs of one image are taken together; every ref starts
``repeat`` items; an item has ``rounds`` question/answer rounds, round 1 about that ref and every later round
about a random ref of the same image; each round picks a random sentence of its ref, a question template and
an answer sentence (a seeded choice, a fixed index, or a literal text). The foreground label of the grid is the sentence itself (``fg_label="sentence"``) or a
fixed word. Every random choice comes from one ``random.Random(seed)`` consumed in a fixed order, so a seed
always gives the same file.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from text4seg.datasets.samples import ReferringSample
from text4seg.descriptors import (
    binary_grid_labels,
    encode_descriptor,
    ids_to_labels,
    mask_to_grid,
    parse_grid_size,
    sanitize_label,
    wrap_descriptor,
)
from text4seg.items.output import BuildSummary, write_items
from text4seg.prompts import IMAGE_TOKEN, answer_text, conversation_item, referring_question

__all__ = ["safe_text", "referring_items", "write_referring", "DOWNSAMPLE_MODES", "EXPRESSION_CHOICES"]

DOWNSAMPLE_MODES = ("nearest", "area")
# which sentence of a ref a round asks about: a seeded random one (the reference), or always the first
EXPRESSION_CHOICES = ("random", "first")


def safe_text(text: str) -> str:
    """Make an expression usable both as a descriptor label and inside a question.

    Descriptor separators and tags go as in :func:`text4seg.descriptors.sanitize_label` (``|`` → ``/``,
    ``*`` → ``x``, newlines/tabs → space, ``<seg>``/``</seg>`` removed); ``<image>`` is removed too, so that the
    question never carries a second image token.
    """
    return sanitize_label(str(text).replace(IMAGE_TOKEN, " "))


@dataclass
class _Ref:
    sample: ReferringSample
    expressions: list[str]
    grid: np.ndarray  # (H, W) int64, 1 = target; with instance labels k = the k-th target (later over earlier)
    empty: bool
    instances: bool = False


def _check_recipe(rounds: int, repeat: int, downsample: str, limit: int | None) -> None:
    if not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be an int >= 1, got {rounds!r}")
    if not isinstance(repeat, int) or repeat < 1:
        raise ValueError(f"repeat must be an int >= 1, got {repeat!r}")
    if downsample not in DOWNSAMPLE_MODES:
        raise ValueError(f"downsample must be one of {DOWNSAMPLE_MODES}, got {downsample!r}")
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be an int >= 0, got {limit!r}")


def template_index(value: int | str, name: str) -> int | None:
    """``"random"`` -> None (a seeded choice), an index >= 0 -> itself; anything else is a ValueError."""
    if value == "random":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be 'random' or a template index >= 0, got {value!r}")
    return value


def check_question_template(template: str | None) -> str | None:
    """A literal question template must be text containing ``{expression}`` (and no other field)."""
    if template is None:
        return None
    if not isinstance(template, str) or "{expression}" not in template:
        raise ValueError(f"question_template {template!r}: a question text containing {{expression}}")
    try:
        template.format(expression="x")
    except (KeyError, IndexError, ValueError) as err:
        raise ValueError(f"question_template {template!r}: only {{expression}} may be a field ({err})") from None
    return template


def _by_image(samples: Iterable[ReferringSample]) -> Iterator[list[ReferringSample]]:
    for _, group in itertools.groupby(samples, key=lambda s: s.image):
        yield list(group)


def _prepare(
    sample: ReferringSample, grid_hw: tuple[int, int], downsample: str, summary: BuildSummary,
    instance_labels: bool = False,
) -> _Ref | None:
    expressions = []
    for text in sample.expressions:
        safe = safe_text(text)
        if safe != text.strip():
            summary.sanitized += 1
        if safe:
            expressions.append(safe)
    if not expressions:
        summary.skips.add("no usable expression", sample.id)
        return None
    if instance_labels and sample.instance_masks is None and not sample.no_target:
        raise ValueError(f"sample {sample.id}: instance labels need per-target masks (read with instances=True)")
    if instance_labels and not sample.no_target:
        painted = np.zeros((sample.height, sample.width), dtype=np.int64)
        for k, part in enumerate(sample.instance_masks, start=1):
            painted[np.asarray(part, dtype=bool)] = k
        grid = mask_to_grid(painted, grid_hw[0], grid_hw[1], mode=downsample)
    else:
        grid = mask_to_grid(sample.mask, grid_hw[0], grid_hw[1], mode=downsample)
    empty = bool(sample.no_target) or not grid.any()
    return _Ref(sample, expressions, grid, empty, instance_labels)


def _grid_labels(ref: _Ref, label: str) -> np.ndarray:
    if not ref.instances:
        return binary_grid_labels(ref.grid, label)
    # instances renumbered 1..n in annotation order among those that survive the grid
    present = [int(v) for v in np.unique(ref.grid) if v != 0]
    return ids_to_labels(ref.grid, {v: f"{label} {k}" for k, v in enumerate(present, start=1)})


def referring_items(
    samples: Iterable[ReferringSample],
    summary: BuildSummary,
    grid: int | str | tuple[int, int] = 16,
    downsample: str = "nearest",
    rle: bool = True,
    fg_label: str = "sentence",
    rounds: int = 2,
    repeat: int = 2,
    seed: int = 0,
    question_index: int | str = "random",
    answer_index: int | str = "random",
    question_template: str | None = None,
    answer_sentence: str | None = None,
    expressions: str = "random",
    shuffle: bool = False,
    limit: int | None = None,
    instance_labels: bool = False,
) -> Iterator[dict]:
    """Turn referring samples (grouped by image, as the readers yield them) into conversation items.

    Args:
        samples: reader output; consecutive samples with the same ``image`` form one image's refs.
        summary: counts are added to it (items, rounds, empty targets, sanitized, skips).
        grid: descriptor grid, ``N`` or ``"HxW"`` (rows x columns).
        downsample: ``"nearest"`` or ``"area"`` (see :func:`text4seg.descriptors.mask_to_grid`).
        rle: R-RLE (True) or plain descriptors.
        fg_label: ``"sentence"`` (the chosen sentence is the foreground label) or a fixed label such as
            ``"target"``.
        rounds: rounds per item (>= 1); rounds after the first ask about a random ref of the same image.
        repeat: items per ref (>= 1), each with fresh random choices; ids get ``_r<k>`` when > 1.
        seed: seed of the single random generator.
        question_index, answer_index: ``"random"`` (seeded choice) or a fixed index into
            :data:`text4seg.prompts.REFERRING_QUESTIONS` / :data:`text4seg.prompts.ANSWER_SENTENCES`.
        question_template: a literal question containing ``{expression}`` (replaces ``question_index``).
        answer_sentence: a literal sentence before ``<seg>`` ("" = the descriptor alone; replaces
            ``answer_index``).
        expressions: ``"random"`` (a seeded choice among the ref's sentences) or ``"first"``.
        shuffle: yield the items in a seeded random order (held in memory) instead of reader order.
        limit: only the first ``limit`` images.
        instance_labels: label each target on its own, ``"{label} {k}"`` (k = 1, 2, ... in annotation order),
            so a multi-target answer gives one instance per target; samples need ``instance_masks``.

    Yields:
        Items ``{"id", "image", "height", "width", "conversations"}`` (image size in pixels).
    """
    _check_recipe(rounds, repeat, downsample, limit)
    if expressions not in EXPRESSION_CHOICES:
        raise ValueError(f"expressions {expressions!r}: expected one of {', '.join(EXPRESSION_CHOICES)}")
    grid_hw = parse_grid_size(grid)
    question_index = template_index(question_index, "question_index")
    answer_index = template_index(answer_index, "answer_index")
    question_template = check_question_template(question_template)
    if answer_sentence is not None and not isinstance(answer_sentence, str):
        raise ValueError(f"answer_sentence {answer_sentence!r}: expected a text")
    fixed_label = None
    if fg_label != "sentence":
        fixed_label = sanitize_label(fg_label)
        if not fixed_label:
            raise ValueError(f"fg_label {fg_label!r} is empty after removing descriptor separators")
    items = _referring_items(samples, summary, grid_hw, downsample, rle, fixed_label, rounds, repeat, seed,
                             question_index, answer_index, question_template, answer_sentence, expressions, limit,
                             instance_labels)
    if not shuffle:
        return items
    return _shuffled(items, seed)


def _shuffled(items: Iterator[dict], seed: int) -> Iterator[dict]:
    held = list(items)
    random.Random(seed).shuffle(held)
    yield from held


def _referring_items(samples, summary, grid_hw, downsample, rle, fixed_label, rounds, repeat, seed, question_index,
                     answer_index, question_template, answer_sentence, expressions, limit,
                     instance_labels=False) -> Iterator[dict]:
    rng = random.Random(seed)
    for n, group in enumerate(_by_image(samples)):
        if limit is not None and n >= limit:
            break
        refs = [ref for ref in (_prepare(s, grid_hw, downsample, summary, instance_labels) for s in group)
                if ref is not None]
        for r in range(repeat):
            for first in refs:
                qa = []
                for turn in range(rounds):
                    ref = first if turn == 0 else rng.choice(refs)
                    expression = rng.choice(ref.expressions) if expressions == "random" else ref.expressions[0]
                    labels = _grid_labels(ref, fixed_label or expression)
                    descriptor = encode_descriptor(labels, rle=rle)
                    if question_template is not None:
                        question = question_template.format(expression=expression)
                    else:
                        question = referring_question(expression, rng=rng, template=question_index)
                    if answer_sentence is not None:
                        answer = wrap_descriptor(descriptor, answer_sentence)
                    else:
                        answer = answer_text(descriptor, rng=rng, template=answer_index)
                    qa.append((question, answer))
                    summary.rounds += 1
                    summary.empty_targets += int(ref.empty)
                sample = first.sample
                item_id = sample.id if repeat == 1 else f"{sample.id}_r{r}"
                summary.items += 1
                yield conversation_item(item_id, sample.image, sample.height, sample.width, qa)


def write_referring(
    name: str,
    samples: Iterable[ReferringSample],
    out: str,
    summary: BuildSummary,
    total: int | None = None,
    quiet: bool = False,
    **recipe,
) -> BuildSummary:
    """Build items from ``samples`` with :func:`referring_items` (``recipe`` = its options) and write ``out``.

    Args:
        name: builder name (progress bar label).
        samples: reader output.
        out: output JSON path.
        summary: filled in and returned.
        total: number of samples, for the progress bar (None: unknown).
        quiet: no progress bar.
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    with tqdm(samples, total=total, desc=name, unit="ref", disable=quiet, leave=False) as progress:
        write_items(out, referring_items(progress, summary, **recipe), summary)
    summary.seconds = time.perf_counter() - start
    return summary
