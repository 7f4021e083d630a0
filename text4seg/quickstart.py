"""``text4seg quickstart``: synthetic data -> tiny model trained on CPU -> held-out cIoU/gIoU -> one mask + overlay.

The recipe is :data:`text4seg.presets.TINY_PRESET`. The training JSON is built by the library's item builder
(:mod:`text4seg.items`), exactly as ``python -m data_builders synthetic`` with the preset's options builds it
(the command is printed), and the held-out set is scored by :func:`text4seg.evaluation.evaluate`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from text4seg.io import write_json_atomic
from text4seg.presets import TINY_PRESET, TinyPreset

__all__ = ["QuickstartResult", "quickstart", "build_synthetic_json"]


def build_synthetic_json(preset: TinyPreset, data_root: str | os.PathLike, out: str | os.PathLike, *,
                         split: str = "train", num_images: int | None = None, seed: int = 0,
                         quiet: bool = True) -> int:
    """Draw a synthetic split with the preset's difficulty and write its training JSON (what
    ``preset.data.command(...)`` does from the command line). Returns the number of items."""
    from text4seg.datasets.synthetic import generate_synthetic, read_synthetic
    from text4seg.items import BuildSummary, write_referring

    options = preset.data.builder_options(preset.model.grid, preset.model.descriptor_form)
    drawing = {key: options.pop(key) for key in ("image_size", "max_shapes", "twin_rate", "distinct_colours",
                                                  "shape_size")}
    count = preset.data.train_images if num_images is None else num_images
    generate_synthetic(data_root, split=split, num_images=count, seed=seed, **drawing)
    summary = BuildSummary(name="synthetic")
    write_referring("synthetic", read_synthetic(data_root, split), str(out), summary, quiet=quiet, seed=seed,
                    **options)
    return summary.items


@dataclass
class QuickstartResult:
    """Outcome of :func:`quickstart`: scores, file paths and timings."""

    ciou: float | None
    giou: float | None
    samples: int
    model_dir: Path
    mask_path: Path
    overlay_path: Path
    scores_path: Path
    train_steps: int
    train_seconds: float
    total_seconds: float
    learning_curve: list[dict]


def quickstart(
    out: str | os.PathLike = "runs/quickstart",
    *,
    minutes: float | None = None,
    seed: int = 0,
    progress: bool = True,
    preset: TinyPreset | None = None,
    **overrides: Any,
) -> QuickstartResult:
    """Build the synthetic referring set, train a tiny model on CPU, evaluate it and segment one image.

    Args:
        out: run directory: ``data/`` (synthetic images + JSON), ``model/`` (trained model), ``eval/`` (the
            evaluation's records), ``mask.png``, ``overlay.png``, ``scores.json``.
        minutes: training-time budget (default: the preset's).
        seed: seed of data, initialisation and training.
        progress: progress bars.
        preset: recipe (default :data:`TINY_PRESET`); ``overrides`` replace single fields of any of its
            sections by name (:meth:`TinyPreset.replace`).

    Returns:
        :class:`QuickstartResult`.
    """
    from text4seg.datasets.synthetic import generate_synthetic, read_synthetic
    from text4seg.evaluation import evaluate
    from text4seg.images import overlay_mask, save_mask_png
    from text4seg.options import LoadOptions
    from text4seg.segmenter import Segmenter
    from text4seg.training import train

    preset = (preset or TINY_PRESET).replace(**overrides)
    if minutes is not None:
        preset = preset.replace(minutes=float(minutes))
    data, model = preset.data, preset.model
    t0 = time.monotonic()
    out = Path(out)
    data_root = out / "data"
    print(f"[1/4] synthetic data: {data.train_images} train + {data.val_images} held-out images -> {data_root}")
    train_json = data_root / "synthetic_train.json"
    n_items = build_synthetic_json(preset, data_root, train_json, seed=seed, quiet=not progress)
    drawing = preset.data.builder_options(model.grid, model.descriptor_form)
    generate_synthetic(data_root, split="val", num_images=data.val_images, seed=seed,
                       **{k: drawing[k] for k in ("image_size", "max_shapes", "twin_rate", "distinct_colours",
                                                  "shape_size")})
    print(f"      {n_items} training items in {train_json}; the same file from the command line:")
    print(f"      {data.command(str(data_root), str(train_json), model.grid, model.descriptor_form, seed)}")

    print(f"[2/4] training a tiny model on CPU for up to {preset.train.minutes:g} min")
    model_dir = out / "model"
    config = preset.train.replace(
        model="tiny", data=(str(train_json),), out=str(model_dir), data_root=str(data_root), seed=seed,
        device="cpu", save_steps=10**9, tiny=model.model_kwargs(), descriptor_form=model.descriptor_form,
        image_position=model.image_position, question_template=data.question_template, fg_label=data.fg_label,
    )
    result = train(config, progress=progress)
    curve = [
        {"step": e["step"], "loss": round(float(e["loss"]), 4)} for e in result.log_history if "loss" in e
    ]

    shapes = sum(1 for _ in read_synthetic(data_root, "val"))
    print(f"[3/4] evaluating on {shapes} held-out shapes of {data.val_images} images (greedy)")
    segmenter = Segmenter.from_pretrained(model_dir, load=LoadOptions(device="cpu"),
                                          batch_size=preset.eval_batch_size)
    eval_dir = out / "eval"
    shutil.rmtree(eval_dir, ignore_errors=True)  # records of an earlier model in this run folder
    scores = evaluate("synthetic", data_root=data_root, split="val", segmenter=segmenter, out=eval_dir,
                      expressions=preset.eval_expressions, batch_size=max(1, preset.eval_batch_size // 2),
                      progress=progress)
    coarse = scores["coarse"]

    print("[4/4] segmenting one held-out image")
    example = next(iter(read_synthetic(data_root, "val")))
    example_path = data_root / example.image
    shown = segmenter.segment(example_path, example.expressions[0])
    mask_path, overlay_path = out / "mask.png", out / "overlay.png"
    save_mask_png(shown.mask, mask_path)
    overlay_mask(example_path, shown.mask).save(overlay_path)

    total = time.monotonic() - t0
    scores_path = out / "scores.json"
    payload = {
        "ciou": coarse["ciou"],
        "giou": coarse["giou"],
        "samples": scores["samples"],
        "answers_repaired": scores["repaired_samples"],
        "train_steps": result.global_step,
        "train_seconds": round(result.seconds, 1),
        "total_seconds": round(total, 1),
        "example": {"image": str(example_path), "query": example.expressions[0], "answer": shown.text},
        "learning_curve": curve,
        "preset": preset.to_dict(),
    }
    write_json_atomic(scores_path, payload)
    ciou, giou = coarse["ciou"], coarse["giou"]
    print()
    print(f"held-out cIoU {ciou:.3f}  gIoU {giou:.3f}  ({scores['samples']} expressions, greedy)")
    print(f"trained {result.global_step} steps in {result.seconds / 60:.1f} min; total {total / 60:.1f} min")
    print(f'example: "{example.expressions[0]}" -> {mask_path} and {overlay_path}')
    print(f"model: {model_dir}   scores: {scores_path}")
    print(f"try it in a browser: text4seg demo --model {shlex.quote(str(model_dir))} --device cpu")
    return QuickstartResult(
        ciou=ciou,
        giou=giou,
        samples=scores["samples"],
        model_dir=model_dir,
        mask_path=mask_path,
        overlay_path=overlay_path,
        scores_path=scores_path,
        train_steps=result.global_step,
        train_seconds=result.seconds,
        total_seconds=total,
        learning_curve=curve,
    )
