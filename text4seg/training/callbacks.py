"""The trainer callbacks of a run: time limit, time-budget progress bar, config saver, resolution curriculum."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from text4seg.config import Text4SegConfig
from text4seg.training._quiet import quiet_optional_kernels

quiet_optional_kernels()

from transformers.trainer_callback import TrainerCallback  # noqa: E402

from text4seg.training.curriculum import PositionInterpolation  # noqa: E402
from text4seg.training.data import Text4SegDataset  # noqa: E402

__all__ = ["TimeLimitCallback", "TimeProgressCallback", "ConfigSaverCallback", "CurriculumCallback"]

logger = logging.getLogger(__name__)


class TimeLimitCallback(TrainerCallback):
    """Stops training cleanly, with a checkpoint, once ``minutes`` of training time have passed.

    Attributes:
        triggered: True once the budget stopped training.
    """

    def __init__(self, minutes: float) -> None:
        self.seconds = float(minutes) * 60.0
        self.start: float | None = None
        self.triggered = False

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if self.start is not None and time.monotonic() - self.start >= self.seconds:
            self.triggered = True
            control.should_training_stop = True
            control.should_save = True
        return control


class TimeProgressCallback(TrainerCallback):
    """Progress bar over a time budget (the step total of a time-bound run means nothing) with step and loss."""

    def __init__(self, minutes: float) -> None:
        self.seconds = float(minutes) * 60.0
        self.bar = None
        self.start = 0.0
        self.loss: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            from tqdm.auto import tqdm

            self.start = time.monotonic()
            self.bar = tqdm(
                total=round(self.seconds),
                desc="train",
                dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} s [{elapsed}<{remaining}{postfix}]",
            )

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.n = min(round(time.monotonic() - self.start), self.bar.total)
            postfix = {"step": state.global_step}
            if self.loss is not None:
                postfix["loss"] = f"{self.loss:.4f}"
            self.bar.set_postfix(postfix, refresh=True)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.loss = float(logs["loss"])

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class ConfigSaverCallback(TrainerCallback):
    """Writes text4seg_config.json into every checkpoint directory."""

    def __init__(self, config: Text4SegConfig) -> None:
        self.config = config

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if ckpt.is_dir():
                self.config.save(ckpt)
        return control


class CurriculumCallback(TrainerCallback):
    """Low-resolution first stage: the dataset serves a coarser grid with smaller images (and the vision
    tower interpolates its position embeddings) until ``fraction`` of the training is done, by time with a
    time budget, else by steps; then the model's own grid and size. The step of the switch is logged in
    the trainer state, so a resumed run knows whether the first stage is over."""

    def __init__(self, dataset: Text4SegDataset, interpolation: PositionInterpolation,
                 grid: int | str | tuple[int, int], fraction: float, minutes: float | None) -> None:
        self.dataset, self.interpolation, self.grid = dataset, interpolation, grid
        self.fraction, self.seconds = float(fraction), None if minutes is None else float(minutes) * 60.0
        self.start = 0.0

    def _over(self, state) -> bool:
        if self.seconds is not None:
            return time.monotonic() - self.start >= self.fraction * self.seconds
        return state.global_step >= self.fraction * state.max_steps

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.monotonic()
        if any("curriculum_end" in entry for entry in state.log_history) or self._over(state):
            return
        self.dataset.set_stage(self.grid)
        # Stays on to the end: a batch prefetched before the switch may still hold small images, and at the
        # native size the interpolation returns the position embeddings unchanged.
        self.interpolation.enable()
        logger.info("curriculum: training on a %dx%d grid with %dx%d images first", *self.dataset.stage.grid,
                    *self.dataset.stage.image_size)

    def on_step_end(self, args, state, control, **kwargs):
        if self.dataset.stage is not None and self._over(state):
            self.dataset.set_stage(None)
            state.log_history.append({"curriculum_end": state.global_step, "step": state.global_step})
            logger.info("curriculum: step %d, switching to the model's %dx%d grid", state.global_step,
                        *self.dataset.config.grid)
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self.dataset.set_stage(None)
        self.interpolation.disable()
