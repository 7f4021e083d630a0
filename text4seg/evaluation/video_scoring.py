"""Per-expression video records and the meters rebuilt from them (numpy only, no torch).

Every finished expression of a ``rvos`` / ``reasonvos`` run becomes one JSON record (``samples.jsonl``):

- ``index`` (expression number in reader order), ``video``, ``exp_id``, ``expression``, ``frames`` (frames
  scored), ``segmented`` (frames the model was asked about; fewer with ``--frame-stride``), ``repairs`` (frames
  whose answer needed repairs), ``repair_examples`` (up to 3 distinct repair messages), ``seconds``;
- with ground truth: ``j``, ``f``, ``jf`` — the expression's means over its frames; ReVOS adds ``a``, ``r`` and
  ``type`` (``referring`` / ``reasoning`` / ``no_target``). These means are exactly what
  :class:`~text4seg.video_metrics.RVOSMeter` / :class:`~text4seg.video_metrics.ReVOSMeter` sum (exact sums of
  floats), so a resumed or sharded run rebuilds bit-identical scores from the records;
- ``no_target`` when the expression refers to nothing.

:class:`VideoScorer` feeds records to the meters; :func:`video_markdown_table` prints the scores.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from text4seg.evaluation.tasks import COLUMN_TITLES, TaskSpec
from text4seg.video_metrics import ReVOSMeter, RVOSMeter

__all__ = ["CONVENTIONS", "VideoScorer", "video_markdown_table"]

# How the figures are computed, stated in scores.json.
CONVENTIONS: dict[str, str] = {
    "rvos": ("per expression (Ref-DAVIS17 convention (B), as VISA and Sa2VA; MeViS and Ref-YouTube-VOS the same): "
             "J (region IoU, 1 when both masks are empty) and F (DAVIS boundary F, davis2017-evaluation's "
             "db_eval_boundary) averaged over each expression's frames, then over expressions; J&F = (J + F) / 2. "
             "Not comparable with convention (A) (fused palette PNGs per annotator, Hungarian matching)."),
    "reasonvos": ("per expression: J, F, A (pixel accuracy) and R (robustness against the video's foreground "
                  "union) averaged over each expression's frames, then over the expressions of each type; "
                  "J&F = (J + F) / 2; overall = (referring + reasoning) / 2 (mean of the two means, not pooled); "
                  "no-target expressions reported apart. A and R are computed on 0/1 masks (the reference scorer "
                  "reads raw PNG values, which inflates false positives 255 times for 0/255 masks)."),
}
_FIGURES = ("j", "f", "jf", "a", "r")


class VideoScorer:
    """The meters of a video task, fed with expression records (see the module docstring).

    Args:
        spec: the ``rvos`` or ``reasonvos`` task.
        ground_truth: the split has ground truth (records carry ``j``/``f``); False for server-scored splits.
    """

    def __init__(self, spec: TaskSpec, ground_truth: bool = True) -> None:
        self.spec = spec
        self.ground_truth = ground_truth
        self.meter: RVOSMeter | ReVOSMeter = ReVOSMeter() if spec.name == "reasonvos" else RVOSMeter()
        self.expressions = 0
        self.frames = 0
        self.segmented = 0
        self.repaired = 0
        self.repairs = 0
        self.seconds = 0.0
        self.videos: dict[str, int] = {}  # video -> its number of frames

    def add(self, record: dict) -> None:
        """Feed one expression record (as written to ``samples.jsonl``)."""
        self.expressions += 1
        self.frames += int(record["frames"])
        self.segmented += int(record.get("segmented") or 0)
        self.repaired += int(bool(record.get("repairs")))
        self.repairs += int(record.get("repairs") or 0)
        self.seconds += float(record.get("seconds") or 0.0)
        self.videos[str(record["video"])] = int(record["frames"])
        if not self.ground_truth:
            return
        if isinstance(self.meter, ReVOSMeter):
            self.meter.add_scores(record["type"], record)
        else:
            self.meter.add_scores(record)

    def add_all(self, records: Iterable[dict]) -> VideoScorer:
        """Feed many records; returns self."""
        for record in records:
            self.add(record)
        return self

    def live(self) -> float | None:
        """The J&F so far (overall for ReVOS), for the progress bar; None without ground truth."""
        if not self.ground_truth or not self.expressions:
            return None
        out = self.meter.compute()
        return out["overall"]["jf"] if isinstance(self.meter, ReVOSMeter) else out["jf"]

    def result(self) -> dict[str, Any]:
        """The scores: counts (``expressions``, ``videos``, ``video_frames`` (frames of the videos),
        ``frames`` (frames scored, summed over expressions), ``segmented_frames`` (frames asked about, summed over
        expressions), ``repaired_expressions``, ``repairs``, ``seconds``), ``ground_truth``, and with ground truth the
        ``convention`` and the figures: ``j``, ``f``, ``jf`` at the top level for ``rvos``; ``referring``,
        ``reasoning``, ``overall`` and ``no_target`` objects (each ``j``, ``f``, ``jf``, ``a``, ``r``,
        ``expressions``, ``frames``) for ``reasonvos``. Figures are fractions in [0, 1] (None without
        expressions)."""
        out: dict[str, Any] = {
            "expressions": self.expressions,
            "videos": len(self.videos),
            "video_frames": sum(self.videos.values()),
            "frames": self.frames,
            "segmented_frames": self.segmented,
            "repaired_expressions": self.repaired,
            "repairs": self.repairs,
            "seconds": self.seconds,
            "ground_truth": self.ground_truth,
        }
        if not self.ground_truth:
            return out
        out["convention"] = CONVENTIONS[self.spec.name]
        computed = self.meter.compute()
        if isinstance(self.meter, ReVOSMeter):
            for group in ("referring", "reasoning", "overall", "no_target"):
                out[group] = {k: computed[group][k] for k in (*_FIGURES, "expressions", "frames")}
        else:
            out.update({k: computed[k] for k in ("j", "f", "jf")})
        return out


def _percent(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100.0 * float(value):.2f}"


def video_markdown_table(scores: dict[str, Any]) -> str:
    """The printed summary of a video run's ``scores.json`` (figures in percent).

    Example::

        | mevis valid_u (rvos) | expressions | J&F | J | F |
        |---|---:|---:|---:|---:|
        | all | 793 | 40.12 | 37.50 | 42.74 |

        repaired expressions: 3 of 793 · 50 videos · 4,210 frames · 21.30 frames/s · 4.01 expressions/s
    """
    from text4seg.evaluation.tasks import task_spec

    spec = task_spec(scores["task"])
    title = f"{scores.get('dataset', '')} {scores.get('split', '')} ({scores['task']})".strip()
    footer = (f"repaired expressions: {scores['repaired_expressions']} of {scores['expressions']} · "
              f"{scores['videos']} video{'' if scores['videos'] == 1 else 's'} · {scores['video_frames']:,} frames")
    if scores.get("seconds"):
        footer += (f" · {scores['video_frames'] / scores['seconds']:.2f} frames/s · "
                   f"{scores['expressions'] / scores['seconds']:.2f} expressions/s")
    if not scores.get("ground_truth", True):
        submission = scores.get("submission") or {}
        return (f"{title}: no ground truth: submission written to {submission.get('path', 'submission.zip')} "
                f"({submission.get('expressions', scores['expressions'])} expressions, "
                f"{submission.get('files', 0)} masks)\n\n" + footer)
    header = [title, "expressions", *(COLUMN_TITLES.get(c, c) for c in spec.columns)]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    if spec.name == "reasonvos":
        rows = [(group, scores[group]) for group in ("referring", "reasoning", "overall", "no_target")]
    else:
        rows = [("all", {**scores})]
    for label, figures in rows:
        n = figures.get("expressions", scores["expressions"])
        lines.append("| " + " | ".join([label, str(n), *(_percent(figures.get(c)) for c in spec.columns)]) + " |")
    return "\n".join(lines) + "\n\n" + footer

