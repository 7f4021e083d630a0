"""Resolution curriculum: a coarser grid with proportionally smaller images first, then the model's own.

:func:`stage_config` derives the low-resolution config; :class:`PositionInterpolation` lets the vision tower
take the smaller images; :class:`text4seg.training.callbacks.CurriculumCallback` switches between the stages.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Any

from text4seg.config import Text4SegConfig
from text4seg.descriptors import parse_grid_size

__all__ = ["stage_config", "PositionInterpolation"]


def stage_config(config: Text4SegConfig, grid: int | str | tuple[int, int]) -> Text4SegConfig:
    """The config of a low-resolution curriculum stage: a coarser ``grid`` and the image size scaled with it
    (so the vision tower sees proportionally fewer patches and the answer has fewer cells).

    Raises:
        ValueError: ``config`` has no fixed image size or does not stretch images, ``grid`` is not coarser than
            ``config.grid`` in both directions, or the scaled image size is not a whole number of pixels.
    """
    low = parse_grid_size(grid)
    if config.image_size is None or config.resize != "stretch":
        raise ValueError(
            "curriculum: needs a model whose text4seg_config.json has a fixed image_size and resize 'stretch'"
        )
    if low[0] >= config.grid[0] or low[1] >= config.grid[1]:
        raise ValueError(
            f"curriculum grid {low[0]}x{low[1]}: must be coarser than the model's grid {config.grid[0]}x{config.grid[1]}"
        )
    (height, width), (rows, cols) = config.image_size, config.grid
    if (height * low[0]) % rows or (width * low[1]) % cols:
        raise ValueError(
            f"curriculum grid {low[0]}x{low[1]}: the image size {height}x{width} does not scale to it in whole "
            f"pixels (grid {rows}x{cols})"
        )
    return replace(config, grid=low, image_size=(height * low[0] // rows, width * low[1] // cols))


class PositionInterpolation:
    """Makes a vision tower accept images smaller (or larger) than its native size by interpolating its
    position embeddings: a forward pre-hook that sets ``interpolate_pos_encoding=True`` on every module whose
    ``forward`` takes that argument (the embeddings of CLIP, SigLIP and similar towers).

    Needed because multimodal ``forward`` methods do not pass the flag down to the vision tower.

    Raises:
        ValueError: the model has no such module.
    """

    def __init__(self, model: Any) -> None:
        self.modules = []
        for module in model.modules():
            try:
                params = inspect.signature(module.forward).parameters
            except (TypeError, ValueError):
                continue
            if "interpolate_pos_encoding" in params and callable(getattr(module, "interpolate_pos_encoding", None)):
                self.modules.append(module)
        if not self.modules:
            raise ValueError(
                f"curriculum: the vision tower of {type(model).__name__} cannot interpolate its position "
                "embeddings (no module with an interpolate_pos_encoding option), so it cannot take smaller images"
            )
        self.handles: list[Any] = []

    @staticmethod
    def _hook(module, args, kwargs):
        kwargs["interpolate_pos_encoding"] = True
        return args, kwargs

    def enable(self) -> None:
        if not self.handles:
            self.handles = [m.register_forward_pre_hook(self._hook, with_kwargs=True) for m in self.modules]

    def disable(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []
