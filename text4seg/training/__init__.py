"""Supervised fine-tuning on Text4Seg JSON: LoRA/QLoRA/full, data mixing, loss masks, curriculum.

- :mod:`~text4seg.training.config`: :class:`TrainConfig`, every option once (no torch).
- :mod:`~text4seg.training.data`: data files, :class:`Text4SegDataset` (re-encoding, loss masks, cell noise).
- :mod:`~text4seg.training.collator`: padding into batches.
- :mod:`~text4seg.training.trainer`: :class:`Text4SegTrainer` (projector lr, weighted loss, length grouping).
- :mod:`~text4seg.training.callbacks`: time limit, time progress, config saver, curriculum switch.
- :mod:`~text4seg.training.curriculum`, :mod:`~text4seg.training.schedule`: resolution curriculum, time schedule.
- :mod:`~text4seg.training.recipe`: :func:`train`, the run as a few steps.

Names are imported on first use (``import text4seg.training`` imports neither torch nor transformers)::

    from text4seg.training import TrainConfig, train
    result = train(TrainConfig(model="llava-hf/llava-1.5-7b-hf", data=("refcoco.json",), out="runs/lora"))
"""

from __future__ import annotations

from text4seg._lazy import lazy_exports

_LAZY = {
    "TrainConfig": "config",
    "DataSource": "config",
    "parse_data_spec": "config",
    "PRECISIONS": "config",
    "DataFiles": "data",
    "Text4SegDataset": "data",
    "probe_data": "data",
    "Text4SegCollator": "collator",
    "CROSS_ENTROPY_IGNORE_INDEX": "collator",
    "Text4SegTrainer": "trainer",
    "LengthGroupedSampler": "trainer",
    "TimeLimitCallback": "callbacks",
    "TimeProgressCallback": "callbacks",
    "ConfigSaverCallback": "callbacks",
    "CurriculumCallback": "callbacks",
    "stage_config": "curriculum",
    "PositionInterpolation": "curriculum",
    "TimeSchedule": "schedule",
    "TrainResult": "recipe",
    "train": "recipe",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _LAZY)
