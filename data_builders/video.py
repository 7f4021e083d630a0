"""``ref_youtube_vos``, ``ref_davis17``, ``mevis``, ``revos``, ``synthetic_video``: videos → per-frame referring JSON.

The recipe is :func:`text4seg.items.video.video_items`. ``synthetic_video`` first writes its videos under the
data root (seeded, see :func:`text4seg.datasets.synthetic_video.write_synthetic_videos`).
"""

from __future__ import annotations

import argparse
import time

from tqdm import tqdm

from data_builders.options import add_grid_options, add_io_options, add_recipe_options, add_template_options
from text4seg.datasets import count_video, read_video
from text4seg.items.output import BuildSummary, write_items
from text4seg.items.video import sample_frames, video_items

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
    "synthetic-video": "synthetic moving shapes: writes videos under --data-root, then the per-frame referring JSON",
}


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
    question_index: int | str = "random",
    answer_index: int | str = "random",
    question_template: str | None = None,
    answer_sentence: str | None = None,
    limit: int | None = None,
    strict: bool = False,
    quiet: bool = False,
    context_frames: int = 0,
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
            seed=seed, question_index=question_index, answer_index=answer_index,
            question_template=question_template, answer_sentence=answer_sentence, limit=limit,
            strict=strict, context_frames=context_frames,
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
    parser.add_argument(
        "--context-frames", type=int, default=None, metavar="K",
        help="each item also shows the K frames before the target frame (multi-image items; default 0)",
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
