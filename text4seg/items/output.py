"""Writing a training JSON atomically while it is built, and the one-line build summary."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from text4seg.datasets.coco_masks import SkipLog
from text4seg.io import atomic_write

__all__ = ["BuildSummary", "write_items"]


@dataclass
class BuildSummary:
    """What a build produced; :meth:`line` is the summary printed at the end.

    Attributes:
        name: builder name.
        out: output path.
        items: conversation items written.
        rounds: question/answer rounds over all items.
        empty_targets: rounds whose answer grid is all background (no-target refs, targets too small for the
            grid).
        sanitized: expressions/class names that contained a descriptor separator (``|``, ``*``, a newline) or a
            ``<seg>``/``<image>`` tag and were made safe, in the label and the question alike.
        skips: annotations skipped by the reader, by reason.
        notes: other counts worth reporting (e.g. crops without any class).
        seconds: wall time of the build.
    """

    name: str
    out: str = ""
    items: int = 0
    rounds: int = 0
    empty_targets: int = 0
    sanitized: int = 0
    skips: SkipLog = field(default_factory=SkipLog)
    notes: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def line(self) -> str:
        """One line: ``"refcoco: 12 items, 24 rounds, 0 empty targets, 1 sanitized, skipped 0 -> out.json
        (0.3 s, 40 items/s)"``."""
        rate = self.items / self.seconds if self.seconds > 0 else 0.0
        notes = "".join(f", {n} {what}" for what, n in sorted(self.notes.items()))
        return (
            f"{self.name}: {self.items} items, {self.rounds} rounds, {self.empty_targets} empty targets, "
            f"{self.sanitized} sanitized, skipped {self.skips.summary()}{notes} -> {self.out} "
            f"({self.seconds:.1f} s, {rate:.0f} items/s)"
        )


def write_items(path: str | os.PathLike, items: Iterable[dict], summary: BuildSummary) -> int:
    """Stream ``items`` into a JSON list at ``path`` atomically (temp file in the same folder, then rename).

    Nothing is left at ``path`` (and an existing file there is kept unchanged) when building fails.

    Args:
        path: output JSON file; its folder is created.
        items: conversation items (consumed lazily).
        summary: its ``out`` and ``seconds`` are filled in.

    Returns:
        Number of items written.
    """
    start = time.perf_counter()
    path = Path(path)
    count = 0
    with atomic_write(path) as handle:
        handle.write("[")
        for item in items:
            handle.write(",\n" if count else "\n")
            handle.write(json.dumps(item, ensure_ascii=False))
            count += 1
        handle.write("\n]\n" if count else "]\n")
    summary.out = str(path)
    summary.seconds = time.perf_counter() - start
    return count
