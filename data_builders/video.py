"""``ref_youtube_vos``, ``ref_davis17``, ``mevis``, ``revos``, ``synthetic_video``: videos → per-frame referring JSON.

Recipe: every expression of the split gives ``frames_per_expression`` distinct frames, drawn uniformly with the
seed (all frames when the video has fewer), in frame order; every chosen frame starts ``repeat`` items of
``rounds`` rounds. Round 1 asks about the expression in that frame, later rounds about a random expression of
the same video in the same frame. The answer's grid is the target in that frame (all ``others`` where the
target is absent or the expression refers to nothing). The foreground label is the expression itself
(``fg_label="sentence"``) or a fixed word; ReVOS reasoning expressions (``type_id`` 1) are questions or
instructions, so like ReasonSeg queries they go into the question and their grid label is
``reasoning_fg_label`` (``"target"``). Items use the Text4Seg image format with the frame as the image.
``synthetic_video`` first writes its videos under the data root (seeded, see
:func:`text4seg.datasets.synthetic_video.write_synthetic_videos`).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Iterable, Iterator

import numpy as np
from tqdm import tqdm

from data_builders.options import add_grid_options, add_io_options, add_recipe_options, add_template_options
from data_builders.output import BuildSummary, write_items
from data_builders.referring import DOWNSAMPLE_MODES, safe_text
from text4seg.datasets import count_video, read_video
from text4seg.datasets.video_samples import VideoSample
from text4seg.descriptors import (
    binary_grid_labels,
    encode_descriptor,
    mask_to_grid,
    parse_grid_size,
    sanitize_label,
)
from text4seg.prompts import answer_text, conversation_item, referring_question

__all__ = ["VIDEO_BUILDERS", "build", "configure", "sample_frames", "video_items"]

# builder name -> reader name
VIDEO_BUILDERS: dict[str, str] = {
    "ref_youtube_vos": "ref-youtube-vos",
    "ref_davis17": "ref-davis17",
    "mevis": "mevis",
    "revos": "revos",
    "synthetic_video": "synthetic-video",
}
_SPLITS = {
    "ref-youtube-vos": "train (default; valid and test have no masks)",
    "ref-davis17": "train (default), valid",
    "mevis": "train (default), valid_u",
    "revos": "train (default), valid",
    "synthetic-video": "train (default), valid_u",
}
HELP: dict[str, str] = {
    "ref-youtube-vos": "Ref-YouTube-VOS (ref-youtube-vos/) -> per-frame referring JSON",
    "ref-davis17": "Ref-DAVIS17 (ref-davis/, ReferFormer layout) -> per-frame referring JSON",
    "mevis": "MeViS (mevis/, multi-object motion expressions) -> per-frame referring JSON",
    "revos": "ReVOS (ReVOS/, referring + reasoning expressions) -> per-frame referring JSON",
    "synthetic-video": "synthetic moving shapes: writes videos under --root, then the per-frame referring JSON",
}


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


def _template(value: int | str, name: str) -> int | None:
    if value == "random":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be 'random' or a template index >= 0, got {value!r}")
    return value


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
    question_template: int | str = "random",
    answer_template: int | str = "random",
    limit: int | None = None,
    strict: bool = False,
) -> Iterator[dict]:
    """Turn video samples (one video's expressions consecutive, as the readers yield them) into items.

    Args:
        samples: reader output.
        summary: counts are added to it (items, rounds, empty targets, sanitized, skips).
        frames_per_expression: frames per expression (>= 1).
        grid, downsample, rle, rounds, repeat, seed, question_template, answer_template: as
            :func:`data_builders.referring.referring_items`.
        fg_label: ``"sentence"`` (the expression is the label) or a fixed label.
        reasoning_fg_label: label of ReVOS reasoning expressions (``"sentence"`` to use the expression).
        limit: only the first ``limit`` expressions.
        strict: raise on a bad annotation instead of skipping the expression (counted as ``"bad mask"``).

    Yields:
        Items ``{"id": "<sample id>_f<frame>[_r<k>]", "image": frame path, "height", "width", "conversations"}``.
    """
    for name, value in (("frames_per_expression", frames_per_expression), ("rounds", rounds), ("repeat", repeat)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if downsample not in DOWNSAMPLE_MODES:
        raise ValueError(f"downsample must be one of {DOWNSAMPLE_MODES}, got {downsample!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be an int >= 0, got {limit!r}")
    grid_h, grid_w = parse_grid_size(grid)
    question_index = _template(question_template, "question_template")
    answer_index = _template(answer_template, "answer_template")
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
                        question = referring_question(texts[ref.id], rng=rng, template=question_index)
                        answer = answer_text(encode_descriptor(labels, rle=rle), rng=rng, template=answer_index)
                        qa.append((question, answer))
                        summary.rounds += 1
                        summary.empty_targets += int(not cells.any())
                    item_id = f"{sample.id}_f{sample.frame_names[f]}" + (f"_r{r}" if repeat > 1 else "")
                    summary.items += 1
                    yield conversation_item(item_id, sample.frame_paths[f], sample.height, sample.width, qa)


def build(
    dataset: str,
    root: str,
    out: str,
    split: str = "train",
    frames_per_expression: int = 4,
    grid: int | str = 16,
    downsample: str = "nearest",
    rle: bool = True,
    fg_label: str = "sentence",
    reasoning_fg_label: str = "target",
    rounds: int = 1,
    repeat: int = 1,
    seed: int = 0,
    question_template: int | str = "random",
    answer_template: int | str = "random",
    limit: int | None = None,
    strict: bool = False,
    quiet: bool = False,
    num_videos: int = 20,
    num_frames: int = 8,
    frame_size: int = 64,
) -> BuildSummary:
    """Build a per-frame referring training JSON from a video dataset split.

    Args:
        dataset: reader name (``"ref-youtube-vos"``, ``"ref-davis17"``, ``"mevis"``, ``"revos"``,
            ``"synthetic-video"``).
        root: data root holding the benchmark's folder (``synthetic-video``: where the videos are written).
        out: output JSON file (written atomically).
        split: split name as the benchmark spells it.
        strict: fail on the first bad video, expression or mask instead of skipping and counting it.
        quiet: no progress bar.
        num_videos, num_frames, frame_size: ``synthetic-video`` only: videos written (seeded by ``seed``;
            an existing split folder is rewritten, with the same bytes for the same arguments).
        Other arguments: see :func:`video_items`.
    """
    start = time.perf_counter()
    name = next((b for b, d in VIDEO_BUILDERS.items() if d == dataset), dataset)
    if dataset == "synthetic-video":
        from text4seg.datasets.synthetic_video import write_synthetic_videos

        write_synthetic_videos(root, split, num_videos, num_frames=num_frames, size=frame_size, seed=seed,
                               overwrite=True)
    summary = BuildSummary(name=name)
    samples = read_video(dataset, root, split, skip_bad=not strict, skips=summary.skips)
    total = None if limit is not None else count_video(dataset, root, split)
    with tqdm(samples, total=total, desc=name, unit="expression", disable=quiet, leave=False) as progress:
        items = video_items(
            progress, summary, frames_per_expression=frames_per_expression, grid=grid, downsample=downsample,
            rle=rle, fg_label=fg_label, reasoning_fg_label=reasoning_fg_label, rounds=rounds, repeat=repeat,
            seed=seed, question_template=question_template, answer_template=answer_template, limit=limit,
            strict=strict,
        )  # fmt: skip
        write_items(out, items, summary)
    summary.seconds = time.perf_counter() - start
    return summary


def configure(parser: argparse.ArgumentParser, dataset: str) -> None:
    """Options of ``python -m data_builders <video builder>``."""
    add_io_options(parser, _SPLITS[dataset])
    parser.add_argument(
        "--frames-per-expression", type=int, default=None, metavar="K",
        help="distinct frames per expression, drawn uniformly with the seed (default 4; all when fewer)",
    )  # fmt: skip
    add_grid_options(parser, "16")
    parser.add_argument("--fg-label", default=None, help="'sentence' (default: the expression) or a fixed label")
    if dataset == "revos":
        parser.add_argument(
            "--reasoning-fg-label", default=None,
            help="grid label of reasoning expressions (default target; or sentence)",
        )  # fmt: skip
    add_recipe_options(parser, rounds_default=1, repeat_default=1)
    add_template_options(parser, question=True, default="random")
    if dataset == "synthetic-video":
        parser.add_argument("--num-videos", type=int, default=None, help="videos to write (default 20)")
        parser.add_argument("--num-frames", type=int, default=None, help="frames per video (default 8)")
        parser.add_argument("--frame-size", type=int, default=None, help="frame side in pixels (default 64)")
