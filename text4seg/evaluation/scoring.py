"""Per-sample score records and the meters rebuilt from them (numpy only, no torch).

Every finished sample becomes one JSON record holding, next to what a reader wants (``iou``, ``text``,
``repairs``), the exact counts the streaming meters of :mod:`text4seg.metrics` need:

- referring tasks: ``intersection``, ``union``, ``pred_pixels``, ``gt_pixels`` of the coarse mask (after
  excluding ``ignore`` pixels) and the same with a ``_refined`` suffix; REC tasks add the XYXY ``box`` of the
  prediction and the ``gt_box``;
- semantic segmentation: the image's confusion counts as ``[[gt_id, pred_id, pixels], ...]`` (non-zero entries
  only; ``pred_id == num_classes`` for a predicted value that is not a class id).

:class:`Scorer` feeds records to the meters: scores never go through PNG files, a resumed run rebuilds its meters
exactly from the records already written, and shards merge exactly (the meters are order-independent, so
``scores.json`` is bit-identical whatever the sharding).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from text4seg.datasets.semantic import ignore_id
from text4seg.evaluation.tasks import COLUMN_TITLES, TaskSpec
from text4seg.metrics import GroupedMeter, RECMeter, ReferSegMeter, SemanticSegMeter, box_from_mask

__all__ = [
    "Scorer",
    "referring_fields",
    "semantic_fields",
    "gt_box",
    "markdown_table",
]

_SUBSETS = ("short", "long")


# ------------------------------------------------------------------------------------------ record fields


def referring_fields(pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None,
                     suffix: str = "") -> dict[str, int | float]:
    """Counts of one binary prediction against its ground truth.

    Args:
        pred: ``(H, W)`` bool predicted mask.
        gt: ``(H, W)`` bool ground-truth mask (all False for a no-target sample).
        ignore: optional ``(H, W)`` bool pixels excluded from every count (ReasonSeg).
        suffix: appended to every key (``"_refined"`` for the refined mask).

    Returns:
        ``{"iou", "intersection", "union", "pred_pixels", "gt_pixels"}`` (keys + suffix); ``iou`` in [0, 1],
        1.0 for an empty union (the meters' convention).
    """
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction has shape {pred.shape}, ground truth {gt.shape}")
    if ignore is not None:
        keep = ~np.asarray(ignore, dtype=bool)
        pred, gt = pred & keep, gt & keep
    inter = int(np.count_nonzero(pred & gt))
    pred_pixels = int(np.count_nonzero(pred))
    gt_pixels = int(np.count_nonzero(gt))
    union = pred_pixels + gt_pixels - inter
    return {
        f"iou{suffix}": 1.0 if union == 0 else inter / union,
        f"intersection{suffix}": inter,
        f"union{suffix}": union,
        f"pred_pixels{suffix}": pred_pixels,
        f"gt_pixels{suffix}": gt_pixels,
    }


def gt_box(sample: Any) -> list[float] | None:
    """REC target box of a referring sample, XYXY: the annotation's COCO ``bbox`` ``[x, y, w, h]`` when the
    reader provides one in ``extra``, else the tight box of the ground-truth mask (None for no target)."""
    bbox = sample.extra.get("bbox") if isinstance(getattr(sample, "extra", None), dict) else None
    if bbox is not None and len(bbox) == 4 and not bool(getattr(sample, "no_target", False)):
        x, y, w, h = (float(v) for v in bbox)
        return [x, y, x + w, y + h]
    box = box_from_mask(sample.mask)
    return None if box is None else [float(v) for v in box]


def _confusion_triples(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> list[list[int]]:
    """Non-zero confusion entries ``[gt_id, pred_id, pixels]`` (pred_id ``num_classes`` = not a class id)."""
    g = np.asarray(gt, dtype=np.int64).ravel()
    p = np.asarray(pred, dtype=np.int64).ravel()
    valid = g != ignore_id(num_classes)
    g, p = g[valid], p[valid]
    bad = (g < 0) | (g >= num_classes)
    if bad.any():
        raise ValueError(f"ground truth holds {int(g[bad][0])}, not a class id in [0, {num_classes}) "
                         f"nor {ignore_id(num_classes)}")
    p = np.where((p < 0) | (p >= num_classes), num_classes, p)
    cols = num_classes + 1
    counts = np.bincount(g * cols + p, minlength=num_classes * cols)
    nonzero = np.flatnonzero(counts)
    return [[int(k // cols), int(k % cols), int(counts[k])] for k in nonzero]


def semantic_fields(pred: np.ndarray, gt: np.ndarray, num_classes: int, background_id: int | None = 0,
                    suffix: str = "") -> dict[str, Any]:
    """Confusion counts and per-image mIoU of one predicted label map.

    Args:
        pred: ``(H, W)`` int predicted class ids (values outside ``[0, num_classes)`` count as wrong).
        gt: ``(H, W)`` int ground-truth ids in ``[0, num_classes)`` or the ignore id (255; 65535 past 255 classes).
        num_classes: number of class ids.
        background_id: class left out of the mean (``"others"``), or None.
        suffix: appended to every key.

    Returns:
        ``{"iou": per-image mIoU or None, "confusion": [[gt_id, pred_id, pixels], ...]}`` (keys + suffix).
    """
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction has shape {pred.shape}, ground truth {gt.shape}")
    meter = SemanticSegMeter(num_classes, ignore_id(num_classes), background_id)
    meter.update(pred, gt)
    return {f"iou{suffix}": meter.compute()["miou"], f"confusion{suffix}": _confusion_triples(pred, gt, num_classes)}


# ----------------------------------------------------------------------------------------- replay


def _replay_masks(record: dict, suffix: str) -> tuple[np.ndarray, np.ndarray]:
    """A ``(1, union)`` prediction / ground-truth pair with exactly the record's counts."""
    inter = int(record[f"intersection{suffix}"])
    pred_pixels = int(record[f"pred_pixels{suffix}"])
    gt_pixels = int(record["gt_pixels"])
    union = pred_pixels + gt_pixels - inter
    if min(inter, pred_pixels, gt_pixels) < 0 or inter > min(pred_pixels, gt_pixels):
        raise ValueError(f"record {record.get('index')}: inconsistent pixel counts{suffix}")
    pred = np.zeros((1, max(union, 1)), dtype=bool)
    gt = np.zeros_like(pred)
    pred[0, :pred_pixels] = True
    gt[0, :inter] = True
    gt[0, pred_pixels:union] = True
    return pred, gt


def _box_mask(box: Sequence[int] | None) -> np.ndarray:
    """The smallest mask whose tight box is ``box`` (XYXY ints), or a 1x1 empty mask for None."""
    if box is None:
        return np.zeros((1, 1), dtype=bool)
    x0, y0, x1, y1 = (int(v) for v in box)
    mask = np.zeros((y1, x1), dtype=bool)
    mask[y0, x0] = mask[y1 - 1, x1 - 1] = True
    return mask


class Scorer:
    """The meters of one task, fed with sample records (see the module docstring).

    Args:
        spec: the task.
        refined: also score the ``*_refined`` fields.
        class_names: semantic tasks: class name per id (id 0 ``"others"`` is scored but left out of mIoU).
    """

    def __init__(self, spec: TaskSpec, refined: bool = False, class_names: Sequence[str] | None = None) -> None:
        self.spec = spec
        self.refined = refined
        self.kinds = ("coarse", "refined") if refined else ("coarse",)
        self.samples = 0
        self.repaired = 0
        self.repairs = 0
        self.seconds = 0.0
        self.images: set[str] = set()
        self.class_names = list(class_names) if class_names is not None else None
        if spec.kind == "semantic":
            if not self.class_names:
                raise ValueError(f"task {spec.name}: class_names are required")
            k = len(self.class_names)
            self.background_id = 0 if self.class_names[0] == "others" else None
            self._confusion = {kind: np.zeros((k, k + 1), dtype=np.int64) for kind in self.kinds}
        else:
            self.masks = {kind: GroupedMeter(ReferSegMeter(), _SUBSETS if spec.query_subsets else ())
                          for kind in self.kinds}
            self.boxes = {kind: RECMeter(0.5) for kind in self.kinds} if spec.boxes else {}

    def add(self, record: dict) -> None:
        """Feed one sample record (as written to ``samples.jsonl``)."""
        self.samples += 1
        self.repaired += int(bool(record.get("repairs")))
        self.repairs += len(record.get("repairs") or ())
        self.seconds += float(record.get("seconds") or 0.0)
        if record.get("image") is not None:
            self.images.add(record["image"])
        for kind in self.kinds:
            suffix = "" if kind == "coarse" else "_refined"
            if self.spec.kind == "semantic":
                confusion = self._confusion[kind]
                for g, p, n in record[f"confusion{suffix}"]:
                    confusion[g, p] += n
                continue
            pred, gt = _replay_masks(record, suffix)
            group = "all"
            if self.spec.query_subsets:
                flag = record.get("is_sentence")
                group = "unknown" if flag is None else ("long" if flag else "short")
            self.masks[kind].update(group, pred, gt)
            if self.boxes:
                target = record.get("gt_box")
                self.boxes[kind].update(_box_mask(record.get(f"box{suffix}")), target)

    def add_all(self, records: Iterable[dict]) -> Scorer:
        """Feed many records; returns self."""
        for record in records:
            self.add(record)
        return self

    def _semantic_meter(self, kind: str) -> SemanticSegMeter:
        meter = SemanticSegMeter(len(self.class_names), ignore_id(len(self.class_names)), self.background_id)
        state = meter.state_dict()
        state["confusion"] = self._confusion[kind]
        state["samples"] = self.samples
        return SemanticSegMeter.from_state_dict(state)

    def metrics(self, kind: str = "coarse", subset: str | None = None) -> dict[str, Any]:
        """Scores of the ``"coarse"`` or ``"refined"`` masks (floats in [0, 1] or None), optionally of one
        query subset (``"short"`` / ``"long"``, ReasonSeg)."""
        if self.spec.kind == "semantic":
            out = self._semantic_meter(kind).compute()
            keep = ("miou", "pixel_accuracy", "miou_with_background", "classes_in_mean")
            return {k: out[k] for k in keep if k in out}
        grouped = self.masks[kind]
        meter = grouped.total() if subset is None else grouped.group(subset)
        out = meter.compute()
        metrics = {k: out[k] for k in self.spec.mask_metrics}
        metrics["samples"] = out["samples"]
        if self.boxes and subset is None:
            metrics["acc@0.5"] = self.boxes[kind].compute()["acc"]
            metrics["mean_box_iou"] = self.boxes[kind].compute()["mean_box_iou"]
        return metrics

    def result(self) -> dict[str, Any]:
        """The scores: ``samples``, ``images``, ``repaired_samples`` (samples whose answer needed repairs),
        ``repairs`` (total fixes), ``seconds`` (sum of per-sample times), ``coarse`` and, when refined,
        ``refined`` metric dicts; ReasonSeg adds ``subsets`` (``short`` / ``long``), semantic tasks add
        ``per_class_iou`` (class name -> IoU or None)."""
        out: dict[str, Any] = {
            "samples": self.samples,
            "images": len(self.images),
            "repaired_samples": self.repaired,
            "repairs": self.repairs,
            "seconds": self.seconds,
        }
        for kind in self.kinds:
            out[kind] = self.metrics(kind)
        if self.spec.query_subsets:
            out["subsets"] = {
                subset: {kind: self.metrics(kind, subset) for kind in self.kinds}
                for subset in sorted(self.masks["coarse"].groups)
            }
        if self.spec.kind == "semantic":
            out["per_class_iou"] = {}
            for kind in self.kinds:
                per_class = self._semantic_meter(kind).compute()["per_class_iou"]
                out["per_class_iou"][kind] = dict(zip(self.class_names, per_class))
        return out


# -------------------------------------------------------------------------------------------- table


def _percent(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100.0 * float(value):.2f}"


def markdown_table(scores: dict[str, Any]) -> str:
    """The printed summary of ``scores.json``: one row per mask kind (and query subset), scores in percent.

    Example::

        | synthetic val (synthetic) | samples | cIoU | gIoU |
        |---|---:|---:|---:|
        | coarse | 64 | 71.52 | 70.03 |

        repaired samples: 0 of 64 · 16 images · 12.1 samples/s
    """
    from text4seg.evaluation.tasks import task_spec

    spec = task_spec(scores["task"])
    if spec.kind == "video":
        from text4seg.evaluation.video_scoring import video_markdown_table

        return video_markdown_table(scores)
    kinds = [k for k in ("coarse", "refined") if k in scores]
    title = f"{scores.get('dataset', '')} {scores.get('split', '')} ({scores['task']})".strip()
    header = [title, "samples", *(COLUMN_TITLES.get(c, c) for c in spec.columns)]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]

    def row(label: str, metrics: dict[str, Any], samples: int) -> None:
        cells = [label, str(samples), *(_percent(metrics.get(c)) for c in spec.columns)]
        lines.append("| " + " | ".join(cells) + " |")

    for kind in kinds:
        row(kind, scores[kind], scores["samples"])
    for subset, by_kind in (scores.get("subsets") or {}).items():
        for kind in kinds:
            row(f"{kind} · {subset}", by_kind[kind], by_kind[kind].get("samples", 0))
    rate = scores["samples"] / scores["seconds"] if scores.get("seconds") else None
    footer = f"repaired samples: {scores['repaired_samples']} of {scores['samples']} · {scores['images']} images"
    if rate is not None:
        footer += f" · {rate:.2f} samples/s"
    return "\n".join(lines) + "\n\n" + footer


def per_class_table(scores: dict[str, Any]) -> str:
    """Per-class IoU (percent) of a semantic run as a markdown table (one row per class)."""
    per_class = scores.get("per_class_iou") or {}
    kinds = [k for k in ("coarse", "refined") if k in per_class]
    if not kinds:
        return ""
    lines = ["| class | " + " | ".join(f"IoU {k}" for k in kinds) + " |", "|---|" + "---:|" * len(kinds)]
    for name in per_class[kinds[0]]:
        lines.append(f"| {name} | " + " | ".join(_percent(per_class[k][name]) for k in kinds) + " |")
    return "\n".join(lines)
