"""``text4seg quickstart``: synthetic data -> tiny model trained on CPU -> held-out cIoU/gIoU -> one mask + overlay.

Every knob of the recipe lives in :data:`TINY_PRESET` (a :class:`TinyPreset`); ``quickstart(**overrides)`` and the
``text4seg train --model tiny`` path read their defaults from it, so tuning the recipe means editing one place.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

__all__ = ["TinyPreset", "TINY_PRESET", "QuickstartResult", "build_referring_json", "quickstart", "configure", "run"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TinyPreset:
    """The tiny-model recipe: data, model, training and evaluation knobs with the current best values.

    Data (synthetic referring set, :mod:`text4seg.datasets.synthetic`):
        train_images, val_images: images per split (every shape 1+ expressions).
        max_shapes, twin_rate, distinct_colours, shape_size: difficulty of the synthetic images
            (1..max_shapes shapes; chance of a twin shape that only a relation or position tells apart; one
            colour per shape; box side range as a share of the image side), see ``generate_synthetic``.
        image_pixels: side of the generated square images.
        grid: descriptor grid side (= vision patch grid: image side of the model = grid * patch_size).
        grid_mode, min_fraction: how masks become grids (``descriptors.mask_to_grid``).
        descriptor_form: ``"plain"`` or ``"rle"``.
        fg_label: foreground word of answers (``"sentence"`` = the expression).
        question_template: user question, contains ``{expression}``.
        answer_sentence: constant sentence before ``<seg>`` (empty: the descriptor alone).
        image_position: ``"before"``/``"after"`` the question text.
        expressions: ``"all"`` (one item per expression) or ``"first"`` (one per shape).
    Model (:func:`text4seg.model.build_tiny_model`):
        patch_size, vision_hidden, vision_layers, text_hidden, text_layers, heads, mlp_ratio, vocab_size.
    Training (:func:`text4seg.train.train`):
        minutes (time budget), time_schedule (warmup/decay follow the time budget, not steps), max_steps
        (None: ``epochs``), epochs, batch_size, grad_accum, lr, projector_lr,
        warmup_ratio, lr_scheduler, weight_decay, fg_weight, cell_noise (input cell-token swap rate against the
        copy-the-cell-above shortcut), curriculum_grid and curriculum_fraction (train on a coarser grid with
        smaller images for that share of the budget first: short sequences, on which the model learns to
        ground the query; None = no curriculum), full (full fine-tuning; False = LoRA with lora_r,
        lora_alpha, lora_dropout), train_vision (train the from-scratch vision tower too), logging_steps.
    Evaluation:
        eval_expressions: ``"first"`` or ``"all"`` expressions of each held-out shape; eval_batch_size.
    """

    # data
    train_images: int = 2000
    val_images: int = 40
    max_shapes: int = 3
    twin_rate: float = 0.0
    distinct_colours: bool = True
    shape_size: tuple[float, float] = (0.3, 0.5)
    image_pixels: int = 64
    grid: int = 16
    grid_mode: str = "nearest"
    min_fraction: float = 0.25
    descriptor_form: str = "plain"
    fg_label: str = "target"
    question_template: str = "Segment {expression}."
    answer_sentence: str = "Here is the mask."
    image_position: str = "after"
    expressions: str = "first"
    # model
    patch_size: int = 4
    vision_hidden: int = 64
    vision_layers: int = 2
    text_hidden: int = 128
    text_layers: int = 4
    heads: int = 4
    mlp_ratio: int = 4
    vocab_size: int = 512
    # training
    minutes: float = 9.0
    time_schedule: bool = True
    max_steps: int | None = None
    epochs: float = 100.0
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 1e-3
    projector_lr: float | None = None
    warmup_ratio: float = 0.03
    lr_scheduler: str = "cosine"
    weight_decay: float = 0.0
    fg_weight: float = 3.0
    cell_noise: float = 0.5
    curriculum_grid: int | None = 8
    curriculum_fraction: float = 0.35
    full: bool = True
    train_vision: bool = True
    lora_r: int = 64
    lora_alpha: int = 128
    lora_dropout: float = 0.05
    logging_steps: int = 10
    # evaluation
    eval_expressions: str = "first"
    eval_batch_size: int = 32

    def model_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`text4seg.model.build_tiny_model` from this preset."""
        return {
            "grid": (self.grid, self.grid),
            "patch_size": self.patch_size,
            "vision_hidden": self.vision_hidden,
            "vision_layers": self.vision_layers,
            "text_hidden": self.text_hidden,
            "text_layers": self.text_layers,
            "heads": self.heads,
            "mlp_ratio": self.mlp_ratio,
            "vocab_size": self.vocab_size,
            "descriptor_form": self.descriptor_form,
            "image_position": self.image_position,
            "question_template": self.question_template,
        }

    def train_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`text4seg.train.train` from this preset (model/data/output excluded)."""
        out = {
            "minutes": self.minutes,
            "time_schedule": self.time_schedule,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "grad_accum": self.grad_accum,
            "lr": self.lr,
            "projector_lr": self.projector_lr,
            "warmup_ratio": self.warmup_ratio,
            "lr_scheduler": self.lr_scheduler,
            "weight_decay": self.weight_decay,
            "fg_weight": self.fg_weight,
            "cell_noise": self.cell_noise,
            "curriculum_grid": self.curriculum_grid,
            "curriculum_fraction": self.curriculum_fraction,
            "full": self.full,
            "train_vision": self.train_vision,
            "lora_r": self.lora_r,
            "lora_alpha": self.lora_alpha,
            "lora_dropout": self.lora_dropout,
            "logging_steps": self.logging_steps,
            "max_steps": self.max_steps,
            "precision": "fp32",
            "descriptor_form": self.descriptor_form,
            "question_template": self.question_template,
            "image_position": self.image_position,
            "fg_label": self.fg_label,
        }
        return {k: v for k, v in out.items() if v is not None}


TINY_PRESET = TinyPreset()


def build_referring_json(
    samples: Sequence[Any],
    out_path: str | os.PathLike,
    *,
    grid: int | tuple[int, int] = 16,
    descriptor_form: str = "plain",
    fg_label: str = "target",
    question_template: str = "Segment {expression}.",
    answer_sentence: str = "Here is the mask.",
    grid_mode: str = "nearest",
    min_fraction: float = 0.25,
    expressions: str = "all",
    seed: int = 0,
) -> int:
    """Write Text4Seg training JSON for referring samples: one single-round item per expression.

    Args:
        samples: :class:`text4seg.datasets.ReferringSample` objects (``image`` relative to the JSON's directory
            or to the training ``--image-root``).
        out_path: JSON file to write (atomically).
        grid: descriptor grid; descriptor_form: ``"plain"``/``"rle"``.
        fg_label: ``"sentence"`` (the expression is the label) or a fixed word.
        question_template: question containing ``{expression}``; answer_sentence: text before ``<seg>``.
        grid_mode, min_fraction: see :func:`text4seg.descriptors.mask_to_grid`.
        expressions: ``"all"`` or ``"first"`` expression of each sample.
        seed: shuffles the items.

    Returns:
        Number of items written.
    """
    from text4seg.descriptors import (
        binary_grid_labels,
        encode_descriptor,
        mask_to_grid,
        parse_grid_size,
        sanitize_label,
        wrap_descriptor,
    )
    from text4seg.prompts import conversation_item

    height, width = parse_grid_size(grid)
    if expressions not in ("all", "first"):
        raise ValueError(f"expressions {expressions!r}: expected 'all' or 'first'")
    items = []
    for sample in samples:
        ids = mask_to_grid(sample.mask, height, width, mode=grid_mode, min_fraction=min_fraction)
        chosen = sample.expressions if expressions == "all" else sample.expressions[:1]
        for k, expression in enumerate(chosen):
            label = sanitize_label(expression) if fg_label == "sentence" else fg_label
            descriptor = encode_descriptor(binary_grid_labels(ids, label), rle=descriptor_form == "rle")
            answer = wrap_descriptor(descriptor, answer_sentence)
            question = question_template.format(expression=expression)
            items.append(
                conversation_item(f"{sample.id}_{k}", sample.image, sample.height, sample.width, [(question, answer)])
            )
    random.Random(seed).shuffle(items)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    tmp.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, out_path)
    return len(items)


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
        out: run directory: ``data/`` (synthetic images + JSON), ``model/`` (trained model), ``mask.png``,
            ``overlay.png``, ``scores.json``.
        minutes: training-time budget (default: the preset's).
        seed: seed of data, initialisation and training.
        progress: progress bars.
        preset: recipe (default :data:`TINY_PRESET`); ``overrides`` replace single fields of it.

    Returns:
        :class:`QuickstartResult`.
    """
    from text4seg.datasets.synthetic import generate_synthetic
    from text4seg.images import overlay_mask, save_mask_png
    from text4seg.metrics import ReferSegMeter
    from text4seg.segmenter import Segmenter
    from text4seg.train import train

    preset = preset or TINY_PRESET
    unknown = sorted(set(overrides) - {f.name for f in fields(TinyPreset)})
    if unknown:
        raise ValueError(f"quickstart: unknown preset fields {unknown}")
    preset = replace(preset, **overrides)
    if minutes is not None:
        preset = replace(preset, minutes=float(minutes))
    t0 = time.monotonic()
    out = Path(out)
    data_root = out / "data"
    print(f"[1/4] synthetic data: {preset.train_images} train + {preset.val_images} held-out images -> {data_root}")
    difficulty = {
        "max_shapes": preset.max_shapes,
        "twin_rate": preset.twin_rate,
        "distinct_colours": preset.distinct_colours,
        "shape_size": preset.shape_size,
    }
    train_samples = generate_synthetic(data_root, "train", preset.train_images, preset.image_pixels, seed, **difficulty)
    val_samples = generate_synthetic(data_root, "val", preset.val_images, preset.image_pixels, seed, **difficulty)
    train_json = data_root / "synthetic_train.json"
    n_items = build_referring_json(
        train_samples,
        train_json,
        grid=preset.grid,
        descriptor_form=preset.descriptor_form,
        fg_label=preset.fg_label,
        question_template=preset.question_template,
        answer_sentence=preset.answer_sentence,
        grid_mode=preset.grid_mode,
        min_fraction=preset.min_fraction,
        expressions=preset.expressions,
        seed=seed,
    )
    print(f"      {n_items} training items in {train_json}")

    print(f"[2/4] training a tiny model on CPU for up to {preset.minutes:g} min")
    model_dir = out / "model"
    result = train(
        "tiny",
        [str(train_json)],
        model_dir,
        image_root=data_root,
        seed=seed,
        device="cpu",
        save_steps=10**9,
        tiny=preset.model_kwargs(),
        progress=progress,
        **preset.train_kwargs(),
    )
    curve = [
        {"step": e["step"], "loss": round(float(e["loss"]), 4)} for e in result.log_history if "loss" in e
    ]

    print(f"[3/4] evaluating on {len(val_samples)} held-out shapes (greedy)")
    segmenter = Segmenter.from_pretrained(model_dir, device="cpu", batch_size=preset.eval_batch_size)
    meter = ReferSegMeter()
    by_image: dict[str, list] = {}
    for sample in val_samples:
        by_image.setdefault(sample.image, []).append(sample)
    requests, targets = [], []
    for image, samples in by_image.items():
        queries, masks = [], []
        for sample in samples:
            chosen = sample.expressions if preset.eval_expressions == "all" else sample.expressions[:1]
            queries.extend(chosen)
            masks.extend([sample.mask] * len(chosen))
        requests.append((str(data_root / image), queries))
        targets.append(masks)
    answers = _batched(segmenter, requests, preset.eval_batch_size, progress)
    repaired = 0
    for results, masks in zip(answers, targets):
        for res, gt in zip(results, masks):
            meter.update(res.mask, gt)
            repaired += bool(res.repairs)
    scores = meter.compute()

    print("[4/4] segmenting one held-out image")
    example = val_samples[0]
    example_path = data_root / example.image
    shown = segmenter.segment(example_path, example.expressions[0])
    mask_path, overlay_path = out / "mask.png", out / "overlay.png"
    save_mask_png(shown.mask, mask_path)
    overlay_mask(example_path, shown.mask).save(overlay_path)

    total = time.monotonic() - t0
    scores_path = out / "scores.json"
    payload = {
        "ciou": scores["ciou"],
        "giou": scores["giou"],
        "samples": scores["samples"],
        "answers_repaired": repaired,
        "train_steps": result.global_step,
        "train_seconds": round(result.seconds, 1),
        "total_seconds": round(total, 1),
        "example": {"image": str(example_path), "query": example.expressions[0], "answer": shown.text},
        "learning_curve": curve,
        "preset": asdict(preset),
    }
    scores_path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    ciou, giou = scores["ciou"], scores["giou"]
    print()
    print(f"held-out cIoU {ciou:.3f}  gIoU {giou:.3f}  ({scores['samples']} expressions, greedy)")
    print(f"trained {result.global_step} steps in {result.seconds / 60:.1f} min; total {total / 60:.1f} min")
    print(f'example: "{example.expressions[0]}" -> {mask_path} and {overlay_path}')
    print(f"model: {model_dir}   scores: {scores_path}")
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


def _batched(segmenter: Any, requests: list, batch: int, progress: bool) -> list:
    """segment_many over chunks of images (about ``batch`` prompts each) with a progress bar."""
    from tqdm.auto import tqdm

    out: list = []
    bar = tqdm(total=sum(len(q) for _, q in requests), desc="eval", unit="expr", disable=not progress)
    chunk: list = []
    for request in requests + [None]:
        if request is not None:
            chunk.append(request)
        if chunk and (request is None or sum(len(q) for _, q in chunk) >= batch):
            out.extend(segmenter.segment_many(chunk))
            bar.update(sum(len(q) for _, q in chunk))
            chunk = []
    bar.close()
    return out


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of ``text4seg quickstart`` (defaults None: :func:`quickstart` and the preset own them)."""
    parser.add_argument("--out", help="run directory (default: runs/quickstart)")
    parser.add_argument("--minutes", type=float, help=f"training-time budget (default: {TINY_PRESET.minutes:g})")
    parser.add_argument("--seed", type=int, help="seed of data and training (default: 0)")


def run(args: argparse.Namespace) -> int:
    """Run ``text4seg quickstart``."""
    kwargs = {k: v for k, v in vars(args).items() if v is not None and k != "command"}
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Optional CPU kernels of bitsandbytes (imported by peft) are irrelevant here; weight loading bars are noise.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    quickstart(**kwargs)
    return 0
