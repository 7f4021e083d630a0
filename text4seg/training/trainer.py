"""``Text4SegTrainer``: the Hugging Face Trainer with a projector learning rate, a foreground-weighted loss, a
time-budget schedule, reproducible length grouping and a checkpoint reload that keeps every weight."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from text4seg.training._quiet import quiet_optional_kernels

quiet_optional_kernels()

from transformers import Trainer  # noqa: E402
from transformers.trainer_pt_utils import get_length_grouped_indices  # noqa: E402

from text4seg.training.collator import CROSS_ENTROPY_IGNORE_INDEX  # noqa: E402
from text4seg.training.schedule import TimeSchedule  # noqa: E402

__all__ = ["Text4SegTrainer", "LengthGroupedSampler", "is_peft_model"]


def is_peft_model(model: Any) -> bool:
    """True for a peft ``PeftModel`` (False when peft is not installed)."""
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


class LengthGroupedSampler(torch.utils.data.Sampler):
    """Length-grouped order, reproducible from (seed, epoch) so that resuming replays it exactly."""

    def __init__(self, lengths: list[int], group: int, seed: int) -> None:
        self.lengths, self.group, self.seed, self.epoch = lengths, group, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.group, generator=generator))

class Text4SegTrainer(Trainer):
    """Trainer with a separate projector learning rate, foreground-weighted loss and cheap length grouping."""

    def __init__(
        self,
        *args,
        projector_lr: float | None = None,
        projector_params: Sequence[str] = (),
        time_schedule: TimeSchedule | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.projector_lr = projector_lr
        self.projector_params = set(projector_params)
        self.time_schedule = time_schedule

    def create_scheduler(self, num_training_steps, optimizer=None):
        if self.time_schedule is None or self.lr_scheduler is not None:
            return super().create_scheduler(num_training_steps, optimizer)
        self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer or self.optimizer, self.time_schedule)
        return self.lr_scheduler

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy == "group_by_length" and hasattr(dataset, "lengths"):
            group = self.args.train_batch_size * self.args.gradient_accumulation_steps
            return LengthGroupedSampler(dataset.lengths(), group, self.args.seed)
        return super()._get_train_sampler(train_dataset)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        # transformers saves multimodal models with legacy key names (e.g. "language_model.model.*") but
        # Trainer reloads a full checkpoint with a raw, non-strict load_state_dict: every key misses and
        # training would silently restart from the initial weights. from_pretrained applies the key
        # conversion; the strict load then proves every weight arrived.
        target = self.model if model is None else model
        ckpt = Path(resume_from_checkpoint)
        full_weights = (ckpt / "model.safetensors").is_file() or (ckpt / "model.safetensors.index.json").is_file()
        if full_weights and not is_peft_model(target) and not self.is_fsdp_enabled and hasattr(target, "config"):
            reloaded = type(target).from_pretrained(str(ckpt), dtype=target.dtype, device_map={"": "cpu"})
            target.load_state_dict(reloaded.state_dict(), strict=True)
            del reloaded
            return
        super()._load_from_checkpoint(resume_from_checkpoint, model)

    def create_optimizer(self, model=None):
        opt_model = self.model if model is None else model
        if self.optimizer is not None or self.projector_lr is None:
            return super().create_optimizer(model)
        decay = set(self.get_decay_parameter_names(opt_model))
        groups: dict[tuple[bool, bool], list] = {}
        for name, param in opt_model.named_parameters():
            if not param.requires_grad:
                continue
            is_projector = name in self.projector_params
            groups.setdefault((name in decay, is_projector), []).append(param)
        param_groups = []
        for (has_decay, is_projector), params in sorted(groups.items()):
            group = {"params": params, "weight_decay": self.args.weight_decay if has_decay else 0.0}
            if is_projector:
                group["lr"] = self.projector_lr
            param_groups.append(group)
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        self.optimizer = optimizer_cls(param_groups, **optimizer_kwargs)
        return self.optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        weights = inputs.pop("loss_weights", None)
        if weights is None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        logits = outputs.logits[:, :-1, :].float()
        target = labels[:, 1:].to(logits.device)
        weight = weights[:, 1:].to(logits.device) * (target != CROSS_ENTROPY_IGNORE_INDEX)
        token_loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=CROSS_ENTROPY_IGNORE_INDEX, reduction="none"
        )
        total = (token_loss * weight.reshape(-1)).sum()
        if num_items_in_batch is not None:
            loss = total / num_items_in_batch
            self.loss_is_scaled_for_ga = True
            if self.args.average_tokens_across_devices:
                loss = loss * self.accelerator.num_processes
        else:
            loss = total / (target != CROSS_ENTROPY_IGNORE_INDEX).sum().clamp(min=1)
            self.loss_is_scaled_for_ga = False
        return (loss, outputs) if return_outputs else loss
