"""``train()``: one fine-tuning run, as a few readable steps.

resolve the base model (a tiny one built from the data, an adapter to continue, or a hub id/directory) →
load it → LoRA or freeze → dataset → :class:`~text4seg.training.trainer.Text4SegTrainer` with its callbacks →
train → save the model or adapter with its processor and ``text4seg_config.json``. Every option is a field
of :class:`~text4seg.training.config.TrainConfig`. Runs unchanged under ``accelerate launch`` (DDP, DeepSpeed
ZeRO-2; see ``scripts/``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from text4seg._optional import require
from text4seg.config import Text4SegConfig
from text4seg.io import write_json_atomic
from text4seg.training.config import DataSource, TrainConfig

__all__ = ["TrainResult", "train", "tiny_arch"]

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """Outcome of :func:`train`.

    Attributes:
        output_dir: final model or adapter directory (with text4seg_config.json and the processor).
        global_step: optimizer steps done (counting steps before a resume).
        stopped_by_time: True when ``minutes`` ran out before the planned steps.
        seconds: wall time of the training loop.
        log_history: the Trainer's log entries (``loss``, ``learning_rate``, ``step``, ...).
        skipped: bad items skipped at load time (with ``skip_bad``).
        adapter: True when ``output_dir`` holds a LoRA adapter, False for a full model.
    """

    output_dir: Path
    global_step: int
    stopped_by_time: bool
    seconds: float
    log_history: list[dict] = field(default_factory=list)
    skipped: int = 0
    adapter: bool = True


def train(config: TrainConfig | None = None, *, callbacks: Sequence[Any] = (), progress: bool = True,
          **fields: Any) -> TrainResult:
    """Fine-tune an image-text-to-text model on Text4Seg JSON files (LoRA by default).

    Args:
        config: every option of the run (:class:`TrainConfig`); ``fields`` change single ones
            (``train(data=["a.json"], out="runs/x", max_steps=100)``; fields of
            :class:`~text4seg.options.LoadOptions` such as ``device`` go to ``config.load``).
        callbacks: extra ``transformers.TrainerCallback`` objects.
        progress: show the tqdm progress bar.

    Returns:
        :class:`TrainResult`.

    Raises:
        ValueError, FileNotFoundError: bad options or data (before any model is loaded where possible).
        ImportError: peft or accelerate missing (the message names ``pip install 'text4seg[train]'``).
    """
    config = (config or TrainConfig()).replace(**fields) if fields else (config or TrainConfig())
    for module in ("peft", "accelerate"):
        require(module, extra="train", purpose="text4seg train")
    sources = config.sources
    if not sources:
        raise ValueError("data: give at least one training JSON file (--data FILE.json[:ratio])")
    for source in sources:
        if not source.path.is_file():
            raise FileNotFoundError(f"--data {source.path}: no such file")

    import torch
    from transformers import set_seed

    from text4seg.modeling.loading import load_model, resolve_device
    from text4seg.training.data import DataFiles, Text4SegDataset

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    set_seed(config.seed)
    files = DataFiles(max_mb=config.max_data_mb)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = config.load.device or (f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    dev = resolve_device(device)
    load_dtype, bf16, fp16 = _precision(config.precision, dev)

    with tempfile.TemporaryDirectory(prefix="text4seg-tiny-") as scratch:
        model, adapter = _base_model(config, sources, files, out, Path(scratch))
        model_config = _model_config(model, adapter, config, sources, files)
        loaded = load_model(model, adapter, dataclasses.replace(config.load, device=str(dev), dtype=load_dtype),
                            trainable_adapter=True, config=model_config)
        interpolation = _curriculum_hooks(config, model_config, loaded.model)
        tokenizer = getattr(loaded.processor, "tokenizer", loaded.processor)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        hf_model, is_peft, projector_params = _trainable(loaded.model, config, adapter is not None)
        try:
            dataset = Text4SegDataset(sources, loaded.processor, model_config, image_root=config.data_root,
                                      seed=config.seed, max_length=config.max_length, skip_bad=config.skip_bad,
                                      fg_weight=config.fg_weight, cell_noise=config.cell_noise, files=files,
                                      allow_outside_root=config.allow_outside_root)
        finally:
            files.clear()
        trainer, time_limit = _trainer(config, hf_model, loaded.processor, tokenizer, dataset, model_config,
                                       interpolation, projector_params, dev, bf16, fp16, callbacks, progress)
        resume_from = _resume_checkpoint(config.resume, out)
        start = time.monotonic()
        trainer.train(resume_from_checkpoint=resume_from)
        seconds = time.monotonic() - start
        if trainer.is_world_process_zero():
            trainer.save_model(str(out))
            loaded.processor.save_pretrained(str(out))
            model_config.save(out)
            if is_peft:
                _record_base(out, loaded.source)
    return TrainResult(
        output_dir=out,
        global_step=trainer.state.global_step,
        stopped_by_time=bool(time_limit is not None and time_limit.triggered),
        seconds=seconds,
        log_history=list(trainer.state.log_history),
        skipped=len(dataset.skipped),
        adapter=is_peft,
    )


# ------------------------------------------------------------------------------------------------ the steps


def _precision(precision: str, device: Any) -> tuple[Any, bool, bool]:
    """-> (load dtype, bf16 amp flag, fp16 amp flag)."""
    import torch

    if precision == "auto":
        if device.type == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "fp32"
    if precision == "fp32":
        return torch.float32, False, False
    if precision == "bf16":
        return torch.bfloat16, True, False
    return torch.float32, False, True  # fp16: fp32 master weights, fp16 autocast (GradScaler needs fp32 params)


def _base_model(config: TrainConfig, sources: Sequence[DataSource], files: Any, out: Path,
                scratch: Path) -> tuple[str, str | None]:
    """(base model, adapter to continue or None). ``tiny`` builds a tiny model whose tokenizer knows the data:
    under ``out/base`` for LoRA (the adapter refers to it), in ``scratch`` for full training (the saved model
    is complete)."""
    from text4seg.modeling.loading import adapter_base, is_adapter_dir

    arch = tiny_arch(config.model)
    if arch is not None:
        return str(_build_tiny_base(scratch if config.full else out / "base", sources, files, config, arch)), None
    if Path(config.model).is_dir() and is_adapter_dir(config.model):
        return adapter_base(config.model), config.model
    return config.model, None


def tiny_arch(model: str) -> str | None:
    """The backbone family of a tiny model name (``"tiny"`` = LLaVA, ``"tiny-qwen2-vl"``, ...), None for others.

    Raises:
        ValueError: a ``tiny-`` name of no known family.
    """
    from text4seg.modeling.tiny import TINY_ARCHS

    if model == "tiny":
        return "llava"
    if not model.startswith("tiny-") or Path(model).exists():
        return None
    arch = model[len("tiny-"):]
    if arch not in TINY_ARCHS:
        raise ValueError(f"--model {model}: expected tiny or one of {', '.join('tiny-' + a for a in TINY_ARCHS)}")
    return arch


def _build_tiny_base(out_dir: Path, sources: Sequence[DataSource], files: Any, config: TrainConfig, arch: str,
                     max_label_tokens: int = 512) -> Path:
    from text4seg.modeling.tiny import build_tiny_model
    from text4seg.presets import TINY_PRESET
    from text4seg.training.data import probe_data

    probe = probe_data(sources, files)
    overrides = config.overrides
    background = Text4SegConfig().background
    probe.labels.pop(background, None)
    labels = [name for name, _ in probe.labels.most_common(max_label_tokens)]
    if len(probe.labels) > max_label_tokens:
        logger.warning("tiny tokenizer: %d labels in the data, cell tokens for the %d most frequent",
                       len(probe.labels), max_label_tokens)
    dims = TINY_PRESET.model.model_kwargs()
    preset_grid = dims.pop("grid")
    dims.update(config.tiny or {})
    # explicit option > explicit tiny dims > the data's own grid > the preset
    grid = overrides.get("grid") or dims.pop("grid", None) or probe.grid or preset_grid
    kwargs = dict(dims)
    kwargs.update(
        grid=grid,
        seed=config.seed,
        descriptor_form=overrides.get("descriptor_form") or dims.get("descriptor_form", "plain"),
        image_position=overrides.get("image_position") or dims.get("image_position", "after"),
        # the question wording is the data's business: the library default unless given explicitly
        question_template=overrides.get("question_template") or (config.tiny or {}).get("question_template"),
        fg_label=overrides.get("fg_label") or (labels[0] if len(labels) == 1 else "sentence"),
    )
    kwargs.pop("image_size", None)
    kwargs["arch"] = arch
    logger.info("building a tiny %s model (grid %s, %d cell labels) in %s", arch, grid, len(labels) + 1, out_dir)
    return build_tiny_model(out_dir, texts=probe.texts, labels=labels, **kwargs)


def _model_config(model: str, adapter: str | None, config: TrainConfig, sources: Sequence[DataSource],
                  files: Any) -> Text4SegConfig:
    """The model's text4seg_config.json with this run's overrides. A model without one learns the data's own
    grid and form (no silent re-encoding)."""
    from text4seg.modeling.loading import resolve_config
    from text4seg.training.data import probe_data

    base = resolve_config(model, adapter)
    overrides = config.overrides
    values = base.to_dict() if base is not None else {}
    if base is None and "grid" not in overrides and "descriptor_form" not in overrides:
        probe = probe_data(sources, files, limit=50)
        if probe.grid is not None:
            values.update(grid=list(probe.grid), descriptor_form=probe.form)
    values.update(overrides)
    return Text4SegConfig.from_dict(values, source="training options")


def _curriculum_hooks(config: TrainConfig, model_config: Text4SegConfig, model: Any) -> Any:
    if config.curriculum_grid is None:
        return None
    from text4seg.training.curriculum import PositionInterpolation, stage_config

    stage_config(model_config, config.curriculum_grid)  # fail before training when the sizes do not work out
    return PositionInterpolation(model)


def _trainable(model: Any, config: TrainConfig, continuing: bool) -> tuple[Any, bool, list[str]]:
    """LoRA on the language model (projector trained fully), or full training with the vision tower frozen
    unless ``train_vision``. Returns (model, is_peft, names of the trainable projector parameters)."""
    from text4seg.modeling.modules import lora_target_regex, projector_names, vision_tower_names

    if continuing:
        model.train()
    inner = model.get_base_model() if continuing else model
    projectors = projector_names(inner)
    vision = vision_tower_names(inner)
    is_peft = continuing
    if not config.full and not continuing:
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        if config.load.quantized:
            model = prepare_model_for_kbit_training(
                model,
                use_gradient_checkpointing=config.gradient_checkpointing,
                gradient_checkpointing_kwargs={"use_reentrant": False},
            )
        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=lora_target_regex(inner),
            modules_to_save=[p.rsplit(".", 1)[-1] if "." in p else p for p in projectors] or None,
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
        is_peft = True
    elif config.full:
        for name, param in model.named_parameters():
            frozen = (
                not config.train_vision
                and any(name == v or name.startswith(v + ".") for v in vision)
                and not any(name.startswith(p + ".") for p in projectors)
            )
            param.requires_grad_(not frozen)
    if is_peft:
        # peft marks only LoRA + modules_to_save trainable; make sure the vision side stays frozen.
        for name, param in model.named_parameters():
            if "lora_" not in name and "modules_to_save" not in name:
                param.requires_grad_(False)
    projector_params = [
        name
        for name, param in model.named_parameters()
        if param.requires_grad and any(p.rsplit(".", 1)[-1] in name.split(".") for p in projectors)
    ]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    logger.info("trainable parameters: %d of %d (%.2f%%)", trainable, total, 100.0 * trainable / max(total, 1))
    return model, is_peft, projector_params


def _trainer(config: TrainConfig, model: Any, processor: Any, tokenizer: Any, dataset: Any,
             model_config: Text4SegConfig, interpolation: Any, projector_params: list[str], device: Any,
             bf16: bool, fp16: bool, callbacks: Sequence[Any], progress: bool) -> tuple[Any, Any]:
    """The trainer with its callbacks; returns (trainer, the time-limit callback or None)."""
    from transformers import TrainingArguments
    from transformers.trainer_callback import ProgressCallback

    from text4seg.training.callbacks import (
        ConfigSaverCallback,
        CurriculumCallback,
        TimeLimitCallback,
        TimeProgressCallback,
    )
    from text4seg.training.collator import Text4SegCollator
    from text4seg.training.schedule import TimeSchedule
    from text4seg.training.trainer import Text4SegTrainer

    c = config
    args = TrainingArguments(
        output_dir=c.out,
        num_train_epochs=float(c.epochs),
        max_steps=c.max_steps if c.max_steps is not None else -1,
        per_device_train_batch_size=c.batch_size,
        gradient_accumulation_steps=c.grad_accum,
        learning_rate=c.lr,
        weight_decay=c.weight_decay,
        lr_scheduler_type=c.lr_scheduler,
        warmup_steps=float(c.warmup_ratio) if 0 < c.warmup_ratio < 1 else int(c.warmup_ratio),
        logging_steps=c.logging_steps,
        save_strategy="steps",
        save_steps=c.save_steps,
        save_total_limit=c.save_total_limit,
        seed=c.seed,
        data_seed=c.seed,
        bf16=bf16,
        fp16=fp16,
        activation_checkpointing=c.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if c.gradient_checkpointing else None,
        train_sampling_strategy="group_by_length" if c.group_by_length else "random",
        dataloader_num_workers=c.workers,
        remove_unused_columns=False,
        report_to="none",
        disable_tqdm=not progress,
        optim="adamw_torch",
        use_cpu=device.type == "cpu",
    )
    time_limit = TimeLimitCallback(c.minutes) if c.minutes is not None else None
    extra = [ConfigSaverCallback(model_config)]
    if time_limit is not None:
        extra.append(time_limit)
    if interpolation is not None:
        extra.append(CurriculumCallback(dataset, interpolation, c.curriculum_grid, c.curriculum_fraction, c.minutes))
    trainer = Text4SegTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=Text4SegCollator(tokenizer.pad_token_id),
        processing_class=processor,
        callbacks=[*extra, *callbacks],
        projector_lr=c.projector_lr,
        projector_params=projector_params,
        time_schedule=TimeSchedule(c.minutes * 60.0, c.warmup_ratio, c.lr_scheduler) if c.time_schedule else None,
    )
    if c.minutes is not None and progress:
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(TimeProgressCallback(c.minutes))
    return trainer, time_limit


def _resume_checkpoint(resume: bool | str, out: Path) -> str | None:
    if not resume:
        return None
    if resume is not True:
        if not checkpoint_complete(Path(resume)):
            raise ValueError(f"--resume {resume}: not a complete checkpoint (no valid trainer_state.json or no "
                             "weights: it was cut off while saving)")
        return str(resume)
    found = last_complete_checkpoint(out)
    if found is None:
        logger.warning("--resume: no complete checkpoint in %s, starting from scratch", out)
    return None if found is None else str(found)


_WEIGHTS = ("model.safetensors", "adapter_model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
            "adapter_model.bin")


def checkpoint_complete(path: Path) -> bool:
    """True when ``path`` is a checkpoint the Trainer finished writing.

    The Trainer writes a checkpoint's files one after another, ``trainer_state.json`` last, and none of them
    atomically; so a checkpoint is complete when that file parses, records the step the folder is named after
    and the weights are there (a kill during the save leaves it absent or cut off).
    """
    state = path / "trainer_state.json"
    if not path.is_dir() or not state.is_file() or not any((path / name).is_file() for name in _WEIGHTS):
        return False
    try:
        step = json.loads(state.read_text(encoding="utf-8")).get("global_step")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return False
    suffix = path.name.rpartition("-")[2]
    return not suffix.isdigit() or step == int(suffix)


def last_complete_checkpoint(out: Path) -> Path | None:
    """The ``checkpoint-N`` of ``out`` with the highest N that is complete (half-written ones are skipped)."""
    if not out.is_dir():
        return None
    numbered = []
    for path in out.iterdir():
        prefix, _, number = path.name.rpartition("-")
        if prefix == "checkpoint" and number.isdigit() and path.is_dir():
            numbered.append((int(number), path))
    for _, path in sorted(numbered, reverse=True):
        if checkpoint_complete(path):
            return path
        logger.warning("--resume: skipping %s, a checkpoint cut off while it was being saved", path)
    return None


def _record_base(adapter_dir: Path, base: str) -> None:
    """Store the base model's absolute path (local dirs) in adapter_config.json so the adapter reloads alone."""
    path = adapter_dir / "adapter_config.json"
    if not path.is_file():
        return
    data = json.loads(path.read_text(encoding="utf-8"))
    if Path(base).is_dir():
        base = str(Path(base).resolve())
    data["base_model_name_or_path"] = base
    write_json_atomic(path, data)
