"""Referring video segmentation scores (numpy only): per-frame J, F, A, R, per-expression means, streaming meters.

Definitions (davis2017-evaluation for J and F; the ReVOS reference scorer for A and R):

- **J** per frame: IoU of the two masks; 1 when both are empty (:func:`~text4seg.metrics.region_iou`).
- **F** per frame: DAVIS boundary F-measure (:func:`~text4seg.metrics.boundary_f_measure`, equal to
  ``db_eval_boundary`` including its empty cases and its ``bound_th`` handling).
- **A** per frame: pixel accuracy ``mean(gt == pred)``.
- **R** per frame: robustness ``max(1 - sum((1 - gt) * pred) / (sum(fg) + 1e-6), 0)``, ``fg`` the union of all
  annotated objects of the video in that frame (ReVOS ``mask_dict_foreground.json``).

A and R are computed on 0/1 masks (the reference reads raw PNG values, so 0/255 predictions would count each
false positive 255 times in R). An expression's J, F, A, R are the means over its frames; a benchmark figure is
the mean over expressions, and J&F = (J + F) / 2.

Meters (mergeable, exact, JSON-able state like those of :mod:`text4seg.metrics`, rebuilt by
:func:`text4seg.metrics.meter_from_state_dict`):

- :class:`RVOSMeter`: Ref-YouTube-VOS, Ref-DAVIS17 (per expression, VISA/Sa2VA convention), MeViS: ``j``, ``f``,
  ``jf`` over expressions.
- :class:`ReVOSMeter`: ReVOS ``referring``, ``reasoning``, ``overall = (referring + reasoning) / 2`` (the mean
  of the two means, not pooled) and ``no_target`` apart, each with ``j``, ``f``, ``jf``, ``a``, ``r``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from text4seg.metrics import (
    _STATE_VERSION,
    _as_bool_mask,
    _check_same_shape,
    _check_state,
    _ExactSum,
    _Meter,
    boundary_f_measure,
    region_iou,
)

__all__ = [
    "REVOS_GROUPS",
    "ExpressionAccumulator",
    "RVOSMeter",
    "ReVOSMeter",
    "expression_scores",
    "frame_accuracy",
    "frame_robustness",
]

R_EPSILON = 1e-6  # the ReVOS scorer's guard against an empty foreground
REVOS_GROUPS: tuple[str, ...] = ("referring", "reasoning", "no_target")  # index = ReVOS type_id
_FIGURES = ("j", "f", "a", "r")


def frame_accuracy(pred: np.ndarray, gt: np.ndarray) -> float:
    """ReVOS A of one frame: share of pixels where the 0/1 masks agree, in [0, 1]."""
    p = _as_bool_mask(pred, "pred")
    g = _as_bool_mask(gt, "gt")
    _check_same_shape(p, g, ("pred", "gt"))
    return int(np.count_nonzero(p == g)) / p.size


def frame_robustness(pred: np.ndarray, gt: np.ndarray, foreground: np.ndarray) -> float:
    """ReVOS R of one frame: ``max(1 - false positives / (foreground pixels + 1e-6), 0)`` on 0/1 masks.

    Args:
        pred, gt: HxW bool masks.
        foreground: HxW bool union of all annotated objects of the video in this frame.

    Returns:
        R in [0, 1]; 1 when the prediction has no pixel outside ``gt``; 0 for any false positive on a frame
        whose foreground is empty.
    """
    p = _as_bool_mask(pred, "pred")
    g = _as_bool_mask(gt, "gt")
    fg = _as_bool_mask(foreground, "foreground")
    _check_same_shape(p, g, ("pred", "gt"))
    _check_same_shape(p, fg, ("pred", "foreground"))
    false_positives = int(np.count_nonzero(p & ~g))
    return max(1.0 - false_positives / (int(np.count_nonzero(fg)) + R_EPSILON), 0.0)


class ExpressionAccumulator:
    """Per-frame J, F, A (and R) of one expression, fed frame by frame (only the figures are kept, not masks).

    :func:`expression_scores` is this accumulator over a list of frames, so both give the same bits.

    Args:
        bound_th: F tolerance (see :func:`~text4seg.metrics.boundary_radius`).
    """

    def __init__(self, bound_th: float = 0.008) -> None:
        self.bound_th = float(bound_th)
        self.per: dict[str, list[float]] = {name: [] for name in _FIGURES}

    @property
    def frames(self) -> int:
        return len(self.per["j"])

    def add_frame(self, pred: np.ndarray, gt: np.ndarray, foreground: np.ndarray | None = None) -> None:
        """Score one frame: ``pred``/``gt`` HxW bool, ``foreground`` HxW bool (ReVOS R) or None.

        Raises:
            ValueError: shapes that differ (naming the frame), or a foreground given for some frames only.
        """
        i = self.frames
        p = _as_bool_mask(pred, f"pred frame {i}")
        g = _as_bool_mask(gt, f"gt frame {i}")
        if p.shape != g.shape:
            raise ValueError(f"shape mismatch at frame {i}: pred has shape {p.shape}, gt has shape {g.shape}")
        if i > 0 and (foreground is not None) != bool(self.per["r"]):
            raise ValueError(f"frame {i}: give a foreground for every frame of an expression or for none")
        if foreground is not None:
            fg = _as_bool_mask(foreground, f"foreground frame {i}")
            if fg.shape != p.shape:
                raise ValueError(f"shape mismatch at frame {i}: foreground has shape {fg.shape}, pred {p.shape}")
            self.per["r"].append(frame_robustness(p, g, fg))
        self.per["j"].append(region_iou(p, g))
        self.per["f"].append(boundary_f_measure(p, g, self.bound_th))
        self.per["a"].append(frame_accuracy(p, g))

    def result(self) -> dict[str, Any]:
        """``{"j", "f", "jf", "a", "r", "frames", "j_frames", "f_frames", "a_frames", "r_frames"}``: means over
        frames (``r`` and ``r_frames`` None without foregrounds). ValueError before any frame."""
        n = self.frames
        if not n:
            raise ValueError("an expression must have at least one frame")
        out: dict[str, Any] = {name: (math.fsum(values) / n if values else None) for name, values in self.per.items()}
        out["jf"] = (out["j"] + out["f"]) / 2
        out["frames"] = n
        for name in _FIGURES:
            out[f"{name}_frames"] = list(self.per[name]) if self.per[name] else None
        return out


def expression_scores(
    pred_frames: Sequence[np.ndarray],
    gt_frames: Sequence[np.ndarray],
    foreground_frames: Sequence[np.ndarray] | None = None,
    bound_th: float = 0.008,
) -> dict[str, Any]:
    """Scores of one expression over its frames.

    Args:
        pred_frames: HxW bool predicted masks, one per frame.
        gt_frames: HxW bool ground-truth masks, same length and shapes.
        foreground_frames: HxW bool video foregrounds (ReVOS) for R; None leaves R out.
        bound_th: F tolerance (see :func:`~text4seg.metrics.boundary_radius`).

    Returns:
        ``{"j", "f", "jf", "a", "r", "frames", "j_frames", "f_frames", "a_frames", "r_frames"}``: means over frames
        (``r`` and ``r_frames`` None without foregrounds).

    Raises:
        ValueError: no frames, different numbers of frames, or shapes that differ (naming the frame).
    """
    preds, gts = list(pred_frames), list(gt_frames)
    fgs = None if foreground_frames is None else list(foreground_frames)
    if len(preds) != len(gts) or (fgs is not None and len(fgs) != len(gts)):
        counts = f"pred_frames has {len(preds)}, gt_frames has {len(gts)}"
        raise ValueError(counts + ("" if fgs is None else f", foreground_frames has {len(fgs)}") + " frames")
    if not preds:
        raise ValueError("an expression must have at least one frame")
    accumulator = ExpressionAccumulator(bound_th)
    for i, (pred, gt) in enumerate(zip(preds, gts)):
        accumulator.add_frame(pred, gt, None if fgs is None else fgs[i])
    return accumulator.result()


def _checked_scores(scores: dict[str, Any], required: tuple[str, ...]) -> dict[str, Any]:
    """The figures of one scored expression, checked to be in [0, 1] with a positive frame count."""
    frames = scores.get("frames")
    if not isinstance(frames, int) or isinstance(frames, bool) or frames < 1:
        raise ValueError(f"scored expression: 'frames' must be a positive integer, got {frames!r}")
    out: dict[str, Any] = {"frames": frames}
    for name in _FIGURES:
        value = scores.get(name)
        if value is None and name not in required:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"scored expression: {name!r} must be a number in [0, 1], got {value!r}")
        out[name] = float(value)
    return out


class _ExpressionSums:
    """Exact sums of per-expression means of each figure, and the counts."""

    def __init__(self) -> None:
        self.expressions = 0
        self.frames = 0
        self.sums = {name: _ExactSum() for name in _FIGURES}
        self.r_expressions = 0  # expressions scored with a foreground

    def add(self, scores: dict[str, Any]) -> None:
        self.expressions += 1
        self.frames += int(scores["frames"])
        for name in _FIGURES:
            if scores.get(name) is not None:
                self.sums[name].add(scores[name])
        self.r_expressions += int(scores.get("r") is not None)

    def merge(self, other: _ExpressionSums) -> None:
        self.expressions += other.expressions
        self.frames += other.frames
        self.r_expressions += other.r_expressions
        for name in _FIGURES:
            self.sums[name].merge(other.sums[name])

    def means(self) -> dict[str, Any]:
        n = self.expressions
        out: dict[str, Any] = {name: (self.sums[name].value / n if n else None) for name in ("j", "f", "a")}
        out["r"] = self.sums["r"].value / self.r_expressions if self.r_expressions else None
        out["jf"] = None if n == 0 else (out["j"] + out["f"]) / 2
        out["expressions"] = n
        out["frames"] = self.frames
        return out

    def state(self) -> dict[str, Any]:
        return {"expressions": self.expressions, "frames": self.frames, "r_expressions": self.r_expressions,
                **{f"{name}_sum": self.sums[name].state() for name in _FIGURES}}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> _ExpressionSums:
        out = cls()
        out.expressions = int(state["expressions"])
        out.frames = int(state["frames"])
        out.r_expressions = int(state["r_expressions"])
        out.sums = {name: _ExactSum.from_state(state[f"{name}_sum"]) for name in _FIGURES}
        return out


class RVOSMeter(_Meter):
    """Streaming referring-video scores: per-expression J and F (means over frames), then means over expressions.

    ``update(pred_frames, gt_frames)`` scores one expression; ``add_missing(frames)`` counts an expression that
    has no prediction as 0 (MeViS: "a video without predictions scores 0"). ``compute()`` returns
    ``{"j", "f", "jf", "expressions", "frames", "missing"}`` (None means without expressions).
    """

    kind = "RVOSMeter"

    def __init__(self, bound_th: float = 0.008) -> None:
        self.bound_th = float(bound_th)
        self._sums = _ExpressionSums()
        self.missing = 0

    def settings(self) -> dict[str, Any]:
        return {"bound_th": self.bound_th}

    def update(self, pred_frames: Sequence[np.ndarray], gt_frames: Sequence[np.ndarray]) -> dict[str, Any]:
        """Score one expression and add it; returns its :func:`expression_scores`."""
        scores = expression_scores(pred_frames, gt_frames, bound_th=self.bound_th)
        self._sums.add(scores)
        return scores

    def add_scores(self, scores: dict[str, Any]) -> None:
        """Add one expression already scored (``{"j", "f", "frames"}`` as :func:`expression_scores` or
        :meth:`ExpressionAccumulator.result` return them, or an evaluation record): same sums as :meth:`update`."""
        self._sums.add(_checked_scores(scores, ("j", "f")))

    def add_missing(self, frames: int) -> None:
        """Count one expression without a prediction as J = F = 0 over ``frames`` frames."""
        self._sums.add({"j": 0.0, "f": 0.0, "a": 0.0, "frames": int(frames)})
        self.missing += 1

    def compute(self) -> dict[str, Any]:
        means = self._sums.means()
        return {"j": means["j"], "f": means["f"], "jf": means["jf"], "expressions": means["expressions"],
                "frames": means["frames"], "missing": self.missing}

    def merge(self, other: RVOSMeter) -> RVOSMeter:
        self._check_mergeable(other)
        self._sums.merge(other._sums)
        self.missing += other.missing
        return self

    def state_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "version": _STATE_VERSION, "bound_th": self.bound_th,
                "missing": self.missing, **self._sums.state()}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> RVOSMeter:
        _check_state(state, cls.kind)
        meter = cls(bound_th=float(state["bound_th"]))
        meter._sums = _ExpressionSums.from_state(state)
        meter.missing = int(state["missing"])
        return meter


class ReVOSMeter(_Meter):
    """Streaming ReVOS scores: J, F, A, R per expression type, overall = (referring + reasoning) / 2.

    ``update(group, pred_frames, gt_frames, foreground_frames)`` scores one expression of ``group``
    (``"referring"``, ``"reasoning"``, ``"no_target"`` or the ReVOS ``type_id`` 0/1/2). ``compute()`` returns
    ``{"referring": {...}, "reasoning": {...}, "overall": {...}, "no_target": {...}}``, each with ``j``, ``f``,
    ``jf``, ``a``, ``r`` (means over the group's expressions; ``r`` over those scored with a foreground) and
    ``expressions``. ``overall`` is the mean of the referring and reasoning figures (None unless both groups
    have expressions); no-target expressions are left out of it, as in the reference scorer.
    """

    kind = "ReVOSMeter"

    def __init__(self, bound_th: float = 0.008) -> None:
        self.bound_th = float(bound_th)
        self._groups = {name: _ExpressionSums() for name in REVOS_GROUPS}

    def settings(self) -> dict[str, Any]:
        return {"bound_th": self.bound_th}

    @staticmethod
    def group_name(group: str | int) -> str:
        """``"referring"``/``"reasoning"``/``"no_target"`` from a name or a ReVOS ``type_id``."""
        if isinstance(group, int) and not isinstance(group, bool) and 0 <= group < len(REVOS_GROUPS):
            return REVOS_GROUPS[group]
        if group in REVOS_GROUPS:
            return str(group)
        raise ValueError(f"ReVOS group must be one of {', '.join(REVOS_GROUPS)} or a type_id 0-2, got {group!r}")

    def update(self, group: str | int, pred_frames: Sequence[np.ndarray], gt_frames: Sequence[np.ndarray],
               foreground_frames: Sequence[np.ndarray] | None = None) -> dict[str, Any]:
        """Score one expression of ``group`` and add it; returns its :func:`expression_scores`."""
        name = self.group_name(group)
        scores = expression_scores(pred_frames, gt_frames, foreground_frames, bound_th=self.bound_th)
        self._groups[name].add(scores)
        return scores

    def add_scores(self, group: str | int, scores: dict[str, Any]) -> None:
        """Add one expression of ``group`` already scored (``{"j", "f", "a", "r", "frames"}``, ``r`` may be
        None): same sums as :meth:`update`."""
        self._groups[self.group_name(group)].add(_checked_scores(scores, ("j", "f", "a")))

    def compute(self) -> dict[str, Any]:
        out = {name: self._groups[name].means() for name in REVOS_GROUPS}
        ref, rea = out["referring"], out["reasoning"]
        overall: dict[str, Any] = {}
        for figure in ("j", "f", "jf", "a", "r"):
            both = ref[figure] is not None and rea[figure] is not None
            overall[figure] = (ref[figure] + rea[figure]) / 2 if both else None
        overall["expressions"] = ref["expressions"] + rea["expressions"]
        overall["frames"] = ref["frames"] + rea["frames"]
        return {"referring": ref, "reasoning": rea, "overall": overall, "no_target": out["no_target"]}

    def merge(self, other: ReVOSMeter) -> ReVOSMeter:
        self._check_mergeable(other)
        for name in REVOS_GROUPS:
            self._groups[name].merge(other._groups[name])
        return self

    def state_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "version": _STATE_VERSION, "bound_th": self.bound_th,
                "groups": {name: self._groups[name].state() for name in REVOS_GROUPS}}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> ReVOSMeter:
        _check_state(state, cls.kind)
        meter = cls(bound_th=float(state["bound_th"]))
        groups = state["groups"]
        if sorted(groups) != sorted(REVOS_GROUPS):
            raise ValueError(f"ReVOSMeter state groups {sorted(groups)} are not {sorted(REVOS_GROUPS)}")
        meter._groups = {name: _ExpressionSums.from_state(groups[name]) for name in REVOS_GROUPS}
        return meter
