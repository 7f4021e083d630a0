"""``mix``: combine builder outputs by ratio and shuffle: ``mix a.json:3 b.json:0.5 --out mix.json``.

A ratio ``r`` takes ``floor(r)`` full copies of a file's items plus a seeded random ``r - floor(r)`` share of
them (``b.json:0.5`` = a random half, ``a.json:3`` = three copies; no ratio = 1). The result is shuffled with the
seed. Items are kept as they are (ids included), so the reference project's own JSON files mix as well.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections.abc import Sequence
from pathlib import Path

from text4seg.items.output import BuildSummary, write_items

__all__ = ["parse_spec", "build", "configure"]

HELP = "mix builder outputs by ratio (FILE.json[:RATIO] ...) and shuffle by seed"


def parse_spec(spec: str) -> tuple[Path, float]:
    """``"a.json:3"`` → ``(Path("a.json"), 3.0)``; ``"a.json"`` → ratio 1.

    Raises:
        ValueError: a ratio that is not a number > 0.
    """
    path, sep, ratio = spec.rpartition(":")
    if not sep or not path:
        return Path(spec), 1.0
    try:
        value = float(ratio)
    except ValueError:
        raise ValueError(f"{spec!r}: expected FILE.json[:RATIO] with a numeric ratio") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{spec!r}: ratio must be a number > 0")
    return Path(path), value


def _load(path: Path) -> list[dict]:
    if not path.is_file():
        raise FileNotFoundError(f"mix input {path} not found")
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(items, list):
        raise ValueError(f"{path}: expected a JSON list of conversation items")
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("conversations"), list):
            raise ValueError(f"{path}: item #{i} has no 'conversations' list")
    return items


def build(inputs: Sequence[str], out: str, seed: int = 0, quiet: bool = False) -> BuildSummary:
    """Mix training JSON files by ratio and shuffle.

    Args:
        inputs: ``FILE.json[:RATIO]`` specs, at least one.
        out: output JSON file.
        seed: seed of subsampling and shuffling.
        quiet: unused (no progress bar needed); accepted like the other builders.
    """
    if not inputs:
        raise ValueError("mix needs at least one FILE.json[:RATIO]")
    start = time.perf_counter()
    rng = random.Random(seed)
    summary = BuildSummary(name="mix")
    mixed: list[dict] = []
    for spec in inputs:
        path, ratio = parse_spec(spec)
        items = _load(path)
        whole = math.floor(ratio)
        mixed.extend(items * whole)
        extra = round((ratio - whole) * len(items))
        if extra:
            mixed.extend(rng.sample(items, extra))
        summary.notes[f"from {path.name} (x{ratio:g})"] = whole * len(items) + extra
    rng.shuffle(mixed)
    summary.rounds = sum(
        sum(1 for turn in item["conversations"] if turn.get("from") == "gpt") for item in mixed
    )
    summary.items = write_items(out, mixed, summary)
    summary.seconds = time.perf_counter() - start
    return summary


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m data_builders mix``."""
    parser.add_argument(
        "inputs", nargs="+", metavar="FILE.json[:RATIO]", help="builder outputs and their ratios"
    )
    parser.add_argument("--out", required=True, help="output JSON file (written atomically)")
    parser.add_argument(
        "--seed", type=int, default=None, help="seed of subsampling and shuffling (default 0)"
    )
    parser.add_argument("--quiet", action="store_true", default=None, help=argparse.SUPPRESS)
