"""Panoptic quality (PQ, SQ, RQ) as panopticapi's ``pq_compute`` defines it, as a streaming, mergeable meter
(numpy only; ``panopticapi`` is not on PyPI).

Per image (:func:`panoptic_image_stats`), a (ground truth, prediction) pair of segments matches when both have
the same category, the ground truth is not crowd, and IoU > 0.5 with union = |p| + |g| - |p ∩ g| - |p ∩ void|
(the part of the prediction on void pixels does not count against it). Matches are unique because IoU > 0.5.
Unmatched non-crowd ground truth is a false negative. An unmatched prediction is a false positive unless more
than half of it lies on void or on the crowd region of its own category (then it is ignored). Per category c
with TP + FP + FN > 0::

    PQ_c = Σ IoU(TP) / (TP + FP/2 + FN/2)    SQ_c = Σ IoU(TP) / TP (0 without TP)    RQ_c = TP / (TP + FP/2 + FN/2)

and PQ, SQ, RQ are the means over those categories: all of them, the things (``isthing``) and the stuff.
Void is segment id 0 in both maps (a prediction of 0 is "no segment"). Only the last crowd segment of a category
in an image is its crowd region, as in panopticapi.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from text4seg.metrics import _ExactSum

__all__ = ["VOID", "PanopticMeter", "panoptic_image_stats"]

VOID = 0


def _areas(id_map: np.ndarray) -> dict[int, int]:
    values, counts = np.unique(id_map, return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts)}


def _check_map(id_map: Any, name: str) -> np.ndarray:
    id_map = np.asarray(id_map)
    if id_map.ndim != 2 or not np.issubdtype(id_map.dtype, np.integer):
        raise ValueError(f"{name}: expected a 2-D integer segment-id map, got shape {id_map.shape} {id_map.dtype}")
    return id_map.astype(np.int64, copy=False)


def panoptic_image_stats(
    pred_map: np.ndarray,
    pred_segments: Sequence[Mapping[str, Any]],
    gt_map: np.ndarray,
    gt_segments: Sequence[Mapping[str, Any]],
) -> dict[int, list]:
    """Matching counts of one image.

    Args:
        pred_map: (H, W) int segment ids of the prediction, 0 = no segment.
        pred_segments: ``{"id", "category_id"}`` per predicted segment; every non-zero id of ``pred_map`` must
            be listed and every listed id present in it (as panopticapi checks).
        gt_map: (H, W) int ground-truth segment ids, 0 = void.
        gt_segments: ``{"id", "category_id", "iscrowd"}`` (``iscrowd`` optional, default 0; ``area`` optional,
            default the pixel count in ``gt_map``, as panopticapi takes it from the JSON).

    Returns:
        category id -> ``[iou_sum, tp, fp, fn]`` for every category with a count.

    Raises:
        ValueError: shapes differ, or ids of the map and the segment list disagree.
    """
    pred_map, gt_map = _check_map(pred_map, "pred_map"), _check_map(gt_map, "gt_map")
    if pred_map.shape != gt_map.shape:
        raise ValueError(f"pred_map has shape {pred_map.shape}, gt_map {gt_map.shape}")
    gt = {int(s["id"]): s for s in gt_segments}
    pred = {int(s["id"]): s for s in pred_segments}
    if VOID in pred or VOID in gt:
        raise ValueError("segment id 0 is void; segments need ids >= 1")
    pred_area = _areas(pred_map)
    for label in pred_area:
        if label != VOID and label not in pred:
            raise ValueError(f"predicted segment {label} is in the map but not in the segment list")
    for label in pred:
        if label not in pred_area:
            raise ValueError(f"predicted segment {label} is in the segment list but not in the map")
    gt_area = _areas(gt_map)
    gt_area = {label: int(gt[label].get("area", gt_area.get(label, 0))) for label in gt}
    # intersections of every (gt id, pred id) pair, one pass
    offset = int(max(pred_map.max(initial=0), 0)) + 1
    pairs, counts = np.unique(gt_map * offset + pred_map, return_counts=True)
    inter = {(int(k // offset), int(k % offset)): int(c) for k, c in zip(pairs, counts)}
    stats: dict[int, list] = {}

    def bump(cat: int, slot: int, value: float | int = 1) -> None:
        stats.setdefault(cat, [0.0, 0, 0, 0])[slot] += value

    gt_matched, pred_matched = set(), set()
    for (g, p), n in inter.items():
        if g not in gt or p not in pred:
            continue
        if int(gt[g].get("iscrowd", 0)) == 1 or int(gt[g]["category_id"]) != int(pred[p]["category_id"]):
            continue
        union = pred_area[p] + gt_area[g] - n - inter.get((VOID, p), 0)
        iou = n / union
        if iou > 0.5:
            cat = int(gt[g]["category_id"])
            bump(cat, 0, iou)
            bump(cat, 1)
            gt_matched.add(g)
            pred_matched.add(p)
    crowd: dict[int, int] = {}
    for g, segment in gt.items():
        if int(segment.get("iscrowd", 0)) == 1:
            crowd[int(segment["category_id"])] = g
        elif g not in gt_matched:
            bump(int(segment["category_id"]), 3)
    for p, segment in pred.items():
        if p in pred_matched:
            continue
        cat = int(segment["category_id"])
        ignored = inter.get((VOID, p), 0)
        if cat in crowd:
            ignored += inter.get((crowd[cat], p), 0)
        if ignored / pred_area[p] > 0.5:
            continue
        bump(cat, 2)
    return stats


class PanopticMeter:
    """Streaming PQ / SQ / RQ (see the module docstring); order-independent and mergeable exactly.

    Args:
        categories: category id -> isthing (bool) for every category of the dataset.
    """

    def __init__(self, categories: Mapping[int, bool]) -> None:
        self.categories = {int(k): bool(v) for k, v in categories.items()}
        self.images = 0
        self._iou = {c: _ExactSum() for c in self.categories}
        self._counts = {c: [0, 0, 0] for c in self.categories}  # tp, fp, fn

    def add_stats(self, stats: Mapping[Any, Sequence[float]]) -> None:
        """Add one image's counts (:func:`panoptic_image_stats`; keys may be str, as read back from JSON)."""
        for cat, (iou, tp, fp, fn) in stats.items():
            cat = int(cat)
            if cat not in self.categories:
                raise ValueError(f"category {cat} is not a category of the meter")
            self._iou[cat].add(float(iou))
            counts = self._counts[cat]
            counts[0] += int(tp)
            counts[1] += int(fp)
            counts[2] += int(fn)
        self.images += 1

    def update(self, pred_map: np.ndarray, pred_segments: Sequence[Mapping[str, Any]], gt_map: np.ndarray,
               gt_segments: Sequence[Mapping[str, Any]]) -> dict[int, list]:
        """Score one image and add it; returns its counts."""
        stats = panoptic_image_stats(pred_map, pred_segments, gt_map, gt_segments)
        for cat in stats:
            if cat not in self.categories:
                raise ValueError(f"segment category {cat} is not a category of the meter")
        self.add_stats(stats)
        return stats

    def merge(self, other: PanopticMeter) -> PanopticMeter:
        """Add another meter's counts (same categories)."""
        if other.categories != self.categories:
            raise ValueError("cannot merge panoptic meters over different categories")
        for cat in self.categories:
            self._iou[cat].merge(other._iou[cat])
            for k in range(3):
                self._counts[cat][k] += other._counts[cat][k]
        self.images += other.images
        return self

    def per_class(self) -> dict[int, dict[str, float] | None]:
        """category id -> ``{"pq", "sq", "rq", "tp", "fp", "fn"}``, None for a category never seen."""
        out: dict[int, dict[str, float] | None] = {}
        for cat, (tp, fp, fn) in self._counts.items():
            if tp + fp + fn == 0:
                out[cat] = None
                continue
            iou = self._iou[cat].value
            denom = tp + 0.5 * fp + 0.5 * fn
            out[cat] = {"pq": iou / denom, "sq": iou / tp if tp else 0.0, "rq": tp / denom,
                        "tp": tp, "fp": fp, "fn": fn}
        return out

    def compute(self) -> dict[str, Any]:
        """``{"all"|"things"|"stuff": {"pq", "sq", "rq", "n"}}`` (means over categories with a count, None
        when there are none) and ``images``."""
        per_class = self.per_class()
        out: dict[str, Any] = {"images": self.images}
        for group, keep in (("all", None), ("things", True), ("stuff", False)):
            rows = [r for cat, r in per_class.items() if r is not None and keep in (None, self.categories[cat])]
            n = len(rows)
            out[group] = {k: (sum(r[k] for r in rows) / n if n else None) for k in ("pq", "sq", "rq")}
            out[group]["n"] = n
        return out
