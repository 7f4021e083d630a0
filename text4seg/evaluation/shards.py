"""Run state of an evaluation folder: settings check, per-rank record files, shard markers, exact merge.

Files under ``out``:

- ``run.json``: the run's settings; a rerun with different settings in the same folder is refused (``limit``,
  ``save_vis`` and ``batch_size`` may change).
- ``samples.jsonl`` (single process) or ``samples.rank<R>.jsonl`` (one per process when sharded): one JSON
  line per finished sample, appended and fsynced (:class:`~text4seg.evaluation.records.SampleLog`).
- ``done.rank<R>-of-<N>.json``: written by each process when its shard is complete.
- ``scores.json`` / ``scores.md``: written by :func:`merge_shards` once every shard is done; the per-rank files
  are then folded into ``samples.jsonl`` in sample order.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from text4seg.evaluation.records import read_records
from text4seg.evaluation.scoring import Scorer, markdown_table, per_class_table
from text4seg.evaluation.tasks import task_spec
from text4seg.io import write_json_atomic, write_jsonl_atomic, write_text_atomic

__all__ = ["RUN_FILE", "SAMPLES_FILE", "check_settings", "completed_records", "done_file", "finish_shard", "merge_shards",
           "rank_world", "samples_file"]

RUN_FILE = "run.json"
SAMPLES_FILE = "samples.jsonl"
# settings that may change between a run and its resumption
_RESUMABLE_CHANGES = ("limit", "save_vis", "batch_size")


def rank_world(rank: int | None, world_size: int | None) -> tuple[int, int, Any]:
    """(rank, world size, accelerate state or None): explicit values win, else accelerate, else (0, 1)."""
    if rank is not None or world_size is not None:
        world = 1 if world_size is None else int(world_size)
        r = 0 if rank is None else int(rank)
        if world < 1 or not 0 <= r < world:
            raise ValueError(f"rank {r} is not in [0, world_size={world})")
        return r, world, None
    launched = int(os.environ.get("WORLD_SIZE", "1") or 1)
    try:
        from accelerate import PartialState
    except ImportError:
        if launched > 1:
            raise ValueError(f"WORLD_SIZE={launched} but accelerate is not installed: install it to shard the "
                             "evaluation (pip install accelerate)") from None
        return 0, 1, None
    import torch

    # Without CUDA, accelerate detects a multi-process launch (torchrun / accelerate launch) only when asked for
    # CPU; with CUDA, asking for CPU would keep the model off the GPU.
    use_cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    state = PartialState(cpu=use_cpu or not torch.cuda.is_available())
    if launched > 1 and state.num_processes != launched:
        raise ValueError(f"WORLD_SIZE={launched} but accelerate sees {state.num_processes} process(es); the shards "
                         "would overlap (check the launcher configuration)")
    return int(state.process_index), int(state.num_processes), state


def samples_file(out: Path, rank: int, world: int) -> Path:
    """The record file of one process: ``samples.jsonl`` alone, ``samples.rank<R>.jsonl`` when sharded."""
    return out / (SAMPLES_FILE if world == 1 else f"samples.rank{rank}.jsonl")


def done_file(out: Path, rank: int, world: int) -> Path:
    """The marker a process writes when shard ``rank`` of ``world`` is complete."""
    return out / f"done.rank{rank}-of-{world}.json"


def _record_files(out: Path) -> list[Path]:
    return sorted(p for p in out.glob("samples*.jsonl") if p.is_file())


def completed_records(out: Path) -> dict[int, dict]:
    """index -> record over every record file (this process's own file was repaired by its SampleLog)."""
    done: dict[int, dict] = {}
    for path in _record_files(out):
        for record in read_records(path):
            done.setdefault(int(record["index"]), record)
    return done


def check_settings(out: Path, settings: dict) -> None:
    """Refuse to resume a folder whose ``run.json`` holds other settings (ValueError naming the setting)."""
    path = out / RUN_FILE
    if not path.is_file():
        return
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); remove it or use another --out") from err
    for key, value in settings.items():
        if key in _RESUMABLE_CHANGES or key == "class_names":
            continue
        if key in previous and previous[key] != value:
            raise ValueError(f"{path}: this folder holds a run with {key}={previous[key]!r}, not {value!r}; "
                             "use another --out (or remove the folder) to start a new evaluation")



def merge_shards(out: str | os.PathLike, world_size: int = 1) -> dict:
    """Merge the shards of a finished run and write ``scores.json`` / ``scores.md``.

    Reads every ``samples*.jsonl`` of ``out`` (a record present twice is counted once), checks that every
    rank of ``world_size`` finished its shard, feeds the records to fresh meters in sample order, and folds the
    per-rank files into ``samples.jsonl``.

    Args:
        out: the run's output folder.
        world_size: number of shards of the run.

    Returns:
        The scores dict (see :meth:`Scorer.result`) with ``task``, ``dataset``, ``split`` and ``settings``.

    Raises:
        FileNotFoundError: no ``run.json`` in ``out``.
        ValueError: a shard is not finished, or records are missing.
    """
    out = Path(out)
    run_path = out / RUN_FILE
    if not run_path.is_file():
        raise FileNotFoundError(f"{run_path} not found: {out} holds no evaluation run")
    settings = json.loads(run_path.read_text(encoding="utf-8"))
    limit = settings.get("limit")
    expected = 0
    for r in range(world_size):
        path = done_file(out, r, world_size)
        if not path.is_file():
            raise ValueError(f"shard {r} of {world_size} is not finished ({path} missing); rerun it")
        marker = json.loads(path.read_text(encoding="utf-8"))
        if marker.get("limit") != limit:
            raise ValueError(f"{path}: shard finished with limit {marker.get('limit')}, the run has {limit}; "
                             "rerun that shard")
        expected += int(marker["samples"])
    files = _record_files(out)
    records: dict[int, dict] = {}
    for path in files:
        for record in read_records(path):
            records.setdefault(int(record["index"]), record)
    scored = [records[i] for i in sorted(records) if limit is None or i < limit]
    if len(scored) != expected:
        raise ValueError(f"{out}: {len(scored)} sample records found, the shards hold {expected}; rerun the "
                         "evaluation to complete them")
    merged = out / SAMPLES_FILE
    ordered = [records[i] for i in sorted(records)]
    if files != [merged] or read_records(merged) != ordered:
        write_jsonl_atomic(merged, ordered)
        for path in files:
            if path != merged:
                path.unlink(missing_ok=True)
    spec = task_spec(settings["task"])
    if spec.kind == "video":
        from text4seg.evaluation.video import finish_video_run

        return finish_video_run(out, settings, scored)
    scorer = Scorer(spec, settings.get("refiner", "none") != "none", settings.get("class_names"))
    scorer.add_all(scored)
    scores = {"task": settings["task"], "dataset": settings["dataset"], "split": settings["split"],
              **scorer.result(), "settings": {k: v for k, v in settings.items() if k != "class_names"}}
    write_json_atomic(out / "scores.json", scores)
    text = markdown_table(scores) + "\n"
    if spec.kind == "semantic":
        text += "\n" + per_class_table(scores) + "\n"
    write_text_atomic(out / "scores.md", text)
    return scores


def finish_shard(out: Path, rank: int, world: int, state: Any, samples: int, limit: int | None) -> dict | None:
    """Mark shard ``rank`` done (its sample count) and merge: at once for a single process, else on rank 0
    once every process of the accelerate ``state`` is done. Returns the scores where they were merged."""
    write_json_atomic(done_file(out, rank, world),
                      {"rank": rank, "world_size": world, "samples": samples, "limit": limit})
    if world == 1:
        return merge_shards(out, 1)
    if state is not None:
        state.wait_for_everyone()
        if rank == 0:
            return merge_shards(out, world)
    return None
