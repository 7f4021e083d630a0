"""``TrainConfig``: every option of ``text4seg train`` / :func:`text4seg.training.train`, once (no torch).

Each field carries its default and a one-line help; ``train(**fields)``, the ``text4seg train`` flags and their
help text (defaults included) are derived from it. Validation happens here, in ``__post_init__``, so a bad value
fails before any model is loaded, with the same message from Python and from the command line.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from text4seg.descriptors import parse_grid_size
from text4seg.options import LoadOptions, option

__all__ = ["DataSource", "parse_data_spec", "TrainConfig", "PRECISIONS"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_FORMS = ("rle", "plain")
_POSITIONS = ("before", "after")


@dataclass(frozen=True)
class DataSource:
    """One training JSON file and its mixing ratio.

    ``ratio`` r >= 0 gives ``floor(r)`` full passes over the file plus a seeded random ``frac(r)`` share of its
    items per epoch: ``a.json:3`` repeats a.json three times, ``b.json:0.5`` takes half of b.json.
    """

    path: Path
    ratio: float = 1.0


def parse_data_spec(spec: str | os.PathLike | tuple[str, float] | DataSource) -> DataSource:
    """``"file.json"`` or ``"file.json:RATIO"`` (or a (path, ratio) pair) -> :class:`DataSource`.

    Raises:
        ValueError: a negative or non-finite ratio.
    """
    if isinstance(spec, DataSource):
        return spec
    if isinstance(spec, tuple):
        path, ratio = spec
    else:
        text = str(spec)
        path, ratio = text, 1.0
        head, sep, tail = text.rpartition(":")
        if sep and head:
            try:
                path, ratio = head, float(tail)
            except ValueError:
                path, ratio = text, 1.0
    ratio = float(ratio)
    if not math.isfinite(ratio) or ratio < 0:
        raise ValueError(f"--data {spec}: ratio must be a finite number >= 0")
    return DataSource(Path(path), ratio)


def _grid_or_none(text: str) -> str:
    """``--curriculum-grid none`` turns a preset's curriculum off (kept as "none" until validation)."""
    return "none" if text.strip().lower() in ("none", "off", "0") else text


def _resume_value(text: str) -> bool | str:
    return True if text in ("", "True", "true", "last") else text


MAX_SIDE = 8192  # largest --grid / --image-size / --curriculum-grid side


@dataclass
class TrainConfig:
    """Options of a fine-tuning run (``text4seg train``; :func:`text4seg.training.train`)."""

    # ---- model and data
    model: str = option("tiny", "hub id, model directory, adapter directory (training continues it), or 'tiny': "
                        "a fresh tiny LLaVA whose tokenizer is trained on the data (tiny-qwen2-vl, "
                        "tiny-qwen2.5-vl, tiny-internvl: the same in another backbone family)",
                        group="model and data")
    data: tuple[str, ...] = option((), "training JSON, FILE or FILE:RATIO (repeatable; ratio 0.5 = a random "
                                   "half per epoch, 3 = three passes)", group="model and data",
                                   metavar="FILE[:RATIO]", multiple=True)
    out: str = option("runs/train", "checkpoints and the final model or adapter", group="model and data",
                      aliases=("--output-dir",), metavar="DIR")
    data_root: str | None = option(None, "folder the JSON's image paths are relative to; default: each JSON "
                                   "file's own folder", group="model and data", aliases=("--image-root",),
                                   metavar="DIR")
    max_length: int = option(3072, "longest token sequence; longer items are cut at the end",
                             group="model and data")
    skip_bad: bool = option(False, "skip and count malformed items and missing images instead of failing",
                            group="model and data")
    workers: int = option(0, "DataLoader worker processes", group="model and data")
    allow_outside_root: bool = option(False, "accept image paths that leave the data root ('../', absolute "
                                      "paths); refused by default", group="model and data")
    max_data_mb: float = option(4096.0, "largest training JSON file read, in MB (a file is parsed whole, in "
                                "memory); a larger one is refused before it is read", group="model and data")

    # ---- optimisation
    epochs: float = option(1.0, "passes over the mixed data (ignored with --max-steps)", group="optimisation")
    max_steps: int | None = option(None, "optimizer steps to run; default: from --epochs", group="optimisation")
    minutes: float | None = option(None, "training-time budget: stop cleanly, saving, when it is spent",
                                   group="optimisation")
    time_schedule: bool = option(False, "with --minutes: warmup and decay follow the time budget, not the step "
                                 "count", group="optimisation")
    lr: float = option(2e-4, "learning rate (LoRA weights, or all weights with --full)", group="optimisation")
    projector_lr: float | None = option(None, "learning rate of the vision-language projector; default: --lr",
                                        group="optimisation")
    batch_size: int = option(4, "items per device and step", group="optimisation")
    grad_accum: int = option(1, "steps accumulated per optimizer step", group="optimisation")
    warmup_ratio: float = option(0.03, "linear warmup share of all steps (>= 1: a number of steps)",
                                 group="optimisation")
    weight_decay: float = option(0.0, "AdamW weight decay (not on biases and norms)", group="optimisation")
    lr_scheduler: str = option("cosine", "transformers scheduler name: cosine, linear, constant, ...",
                               group="optimisation")
    precision: str = option("auto", "auto: bf16 on capable GPUs, fp16 on other GPUs, fp32 on CPU",
                            group="optimisation", choices=PRECISIONS)
    gradient_checkpointing: bool = option(False, "trade compute for memory", group="optimisation")
    group_by_length: bool = option(False, "batch items of similar length together", group="optimisation")
    seed: int = option(0, "seed of everything random (initialisation, data order, ratio sampling)",
                       group="optimisation")

    # ---- what is trained
    full: bool = option(False, "full fine-tuning of language model + projector instead of LoRA",
                        group="what is trained")
    train_vision: bool = option(False, "with --full, train the vision tower too (needed for an untrained tower "
                                "such as --model tiny's)", group="what is trained")
    lora_r: int = option(64, "LoRA rank (every linear layer of the language model, not lm_head)",
                         group="what is trained")
    lora_alpha: int = option(128, "LoRA scaling alpha", group="what is trained")
    lora_dropout: float = option(0.05, "LoRA dropout", group="what is trained")

    # ---- loss and curriculum
    fg_weight: float = option(1.0, "loss weight of descriptor tokens of non-background cells",
                              group="loss and curriculum")
    cell_noise: float = option(0.0, "share of input descriptor cells swapped for another label, targets kept "
                               "(tokenizers with one token per cell, i.e. tiny models)",
                               group="loss and curriculum")
    curriculum_grid: int | str | None = option(None, "train on this coarser grid first, images scaled down to match "
                                         "(e.g. 8 for a 16x16 model; none: no curriculum)",
                                         group="loss and curriculum", metavar="GRID|none", parse=_grid_or_none)
    curriculum_fraction: float = option(0.25, "share of the training (of --minutes, else of the steps) on "
                                        "--curriculum-grid", group="loss and curriculum")

    # ---- checkpoints
    save_steps: int = option(500, "write a checkpoint every N steps", group="checkpoints")
    save_total_limit: int | None = option(None, "keep at most this many checkpoints; default: all",
                                          group="checkpoints")
    logging_steps: int = option(10, "loss/learning-rate log interval (shown on the progress bar)",
                                group="checkpoints")
    resume: bool | str = option(False, "continue from the last complete checkpoint in --out (or the one given)",
                                group="checkpoints", metavar="CHECKPOINT", nargs="?", const=True,
                                parse=_resume_value)

    # ---- the model's descriptor grammar (text4seg_config.json overrides)
    grid: int | str | None = option(None, "descriptor grid, N or HxW; default: the model's text4seg_config.json, "
                              "else the data's", group="model overrides", metavar="N|HxW")
    descriptor_form: str | None = option(None, "descriptor form; default: the model's, else the data's",
                                         group="model overrides", choices=_FORMS)
    question_template: str | None = option(None, "referring question stored for inference, containing "
                                           "{expression}; default: the model's", group="model overrides",
                                           cli=False)
    image_position: str | None = option(None, "image before or after the question text; default: the model's",
                                        group="model overrides", choices=_POSITIONS)
    fg_label: str | None = option(None, "foreground label of referring answers: 'sentence' (the expression) or a "
                                  "fixed word; default: the model's", group="model overrides")
    image_size: int | str | None = option(None, "vision input size, N or HxW; default: the model's",
                                    group="model overrides", metavar="N|HxW")

    # ---- Python-only
    tiny: dict[str, Any] | None = option(None, "tiny-model dimensions overriding the preset (keys of "
                                         "text4seg.modeling.build_tiny_model)", cli=False)
    load: LoadOptions = option(None, "device, quantization, attention kernel (the loading flags)",
                               default_factory=LoadOptions, cli=False)

    def __post_init__(self) -> None:
        if isinstance(self.curriculum_grid, str) and self.curriculum_grid == "none":
            self.curriculum_grid = None
        if isinstance(self.data, (str, os.PathLike)):
            self.data = (self.data,)
        self.data = tuple(self.data)
        for spec in self.data:
            parse_data_spec(spec)
        self.out = str(self.out)
        if self.load is None:
            self.load = LoadOptions()
        if not isinstance(self.load, LoadOptions):
            raise ValueError(f"load: expected LoadOptions, got {type(self.load).__name__}")
        if self.load.dtype is not None:
            raise ValueError("train: the weights dtype follows --precision (fp32, bf16, fp16); do not set dtype")
        _at_least("max_length", self.max_length, 1)
        _at_least("workers", self.workers, 0)
        _at_least("batch_size", self.batch_size, 1)
        _at_least("grad_accum", self.grad_accum, 1)
        _at_least("lora_r", self.lora_r, 1)
        _at_least("lora_alpha", self.lora_alpha, 1)
        _at_least("save_steps", self.save_steps, 1)
        _at_least("logging_steps", self.logging_steps, 1)
        if self.save_total_limit is not None:
            _at_least("save_total_limit", self.save_total_limit, 1)
        if self.max_steps is not None:
            _at_least("max_steps", self.max_steps, 1)
        _positive("lr", self.lr)
        if self.projector_lr is not None:
            _positive("projector_lr", self.projector_lr)
        _positive("epochs", self.epochs)
        if self.minutes is not None:
            _positive("minutes", self.minutes)
        _finite_in("warmup_ratio", self.warmup_ratio, 0.0, math.inf)
        _finite_in("weight_decay", self.weight_decay, 0.0, math.inf)
        _finite_in("lora_dropout", self.lora_dropout, 0.0, 1.0, closed_high=False)
        _finite_in("cell_noise", self.cell_noise, 0.0, 1.0, closed_high=False)
        _positive("fg_weight", self.fg_weight)
        _positive("max_data_mb", self.max_data_mb)
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r}: expected one of {', '.join(PRECISIONS)}")
        for name, allowed in (("descriptor_form", _FORMS), ("image_position", _POSITIONS)):
            value = getattr(self, name)
            if value is not None and value not in allowed:
                raise ValueError(f"{name} {value!r}: expected one of {', '.join(allowed)}")
        for name in ("grid", "image_size", "curriculum_grid"):
            value = getattr(self, name)
            if value is not None:
                try:
                    size = parse_grid_size(value)
                except (ValueError, TypeError) as err:
                    raise ValueError(f"{name} {value!r}: {err}") from None
                if max(size) > MAX_SIDE:  # a typo, not a size: 10**18 cells would exhaust memory first
                    raise ValueError(f"{name} {value!r}: height and width must be <= {MAX_SIDE}")
        if self.time_schedule and self.minutes is None:
            raise ValueError("time_schedule needs a time budget (minutes)")
        if self.full and self.load.quantized:
            raise ValueError("--full cannot train a 4-bit/8-bit model; drop --load-in-4bit/--load-in-8bit")
        if self.train_vision and not self.full:
            raise ValueError("--train-vision needs --full (a LoRA adapter does not carry vision-tower weights)")
        if self.curriculum_grid is not None:
            _finite_in("curriculum_fraction", self.curriculum_fraction, 0.0, 1.0, closed_low=False,
                       closed_high=False)
            if self.workers:
                raise ValueError("--curriculum-grid needs --workers 0 (worker processes would not see the switch)")

    @property
    def sources(self) -> list[DataSource]:
        """The data files with their ratios."""
        return [parse_data_spec(spec) for spec in self.data]

    @property
    def overrides(self) -> dict[str, Any]:
        """The ``text4seg_config.json`` fields this run sets (those not None)."""
        names = ("grid", "descriptor_form", "question_template", "image_position", "fg_label", "image_size")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated again); fields of :class:`LoadOptions` go to ``load``."""
        load_names = {f.name for f in dataclasses.fields(LoadOptions)}
        load_changes = {k: changes.pop(k) for k in list(changes) if k in load_names}
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise TypeError(f"TrainConfig: unknown options {unknown}")
        if load_changes:
            changes["load"] = dataclasses.replace(changes.get("load", self.load), **load_changes)
        return dataclasses.replace(self, **changes)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} {value!r}: expected a number")
    return float(value)


def _at_least(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} {value!r}: expected an integer >= {low}")


def _positive(name: str, value: Any) -> None:
    number = _number(name, value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} {value!r}: expected a finite number > 0")


def _finite_in(name: str, value: Any, low: float, high: float, *, closed_low: bool = True,
               closed_high: bool = True) -> None:
    number = _number(name, value)
    ok = (math.isfinite(number) and (number >= low if closed_low else number > low)
          and (number <= high if closed_high else number < high))
    if not ok:
        lo, hi = "[" if closed_low else "(", "]" if closed_high else ")"
        raise ValueError(f"{name} {value!r}: expected a number in {lo}{low:g}, {high:g}{hi}")
