"""Benchmark evaluation: resumable, sharded, scored by streaming meters (see :func:`evaluate`).

Modules: :mod:`~text4seg.evaluation.tasks` (what each task reads and reports), :mod:`~.records` (crash-safe
JSONL), :mod:`~.scoring` (per-sample records → meters → scores, tables), :mod:`~.runner` (the loop, sharding,
merging), :mod:`~.visualize` (overlays). The ``text4seg eval`` command is :mod:`text4seg.cli.eval`.
"""

from __future__ import annotations

from text4seg.evaluation.runner import evaluate, merge_shards
from text4seg.evaluation.scoring import Scorer, markdown_table
from text4seg.evaluation.tasks import TASKS, TaskSpec

__all__ = ["TASKS", "Scorer", "TaskSpec", "evaluate", "markdown_table", "merge_shards"]
