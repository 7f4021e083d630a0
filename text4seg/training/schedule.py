"""Learning-rate schedule over a wall-clock budget."""

from __future__ import annotations

import math
import time

__all__ = ["TimeSchedule"]


class TimeSchedule:
    """LR factor from the share of a wall-clock budget spent: linear warmup, then cosine/linear decay to 0
    when the budget ends (the budget, not a step count, ends training)."""

    def __init__(self, seconds: float, warmup_ratio: float, kind: str) -> None:
        if kind not in ("cosine", "linear", "constant", "constant_with_warmup"):
            raise ValueError(f"lr_scheduler {kind!r}: a time schedule supports cosine, linear, constant")
        self.seconds, self.warmup, self.kind = float(seconds), float(warmup_ratio), kind
        self.start: float | None = None

    def __call__(self, step: int) -> float:
        now = time.monotonic()
        if self.start is None:
            self.start = now
        progress = min(1.0, (now - self.start) / self.seconds)
        if self.warmup > 0 and progress < self.warmup:
            return max(progress / self.warmup, 1e-3)
        if self.kind.startswith("constant"):
            return 1.0
        rest = (progress - self.warmup) / max(1.0 - self.warmup, 1e-9)
        if self.kind == "linear":
            return max(0.0, 1.0 - rest)
        return 0.5 * (1.0 + math.cos(math.pi * rest))
