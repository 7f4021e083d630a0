"""PQ / SQ / RQ on hand-made cases with exact values (panopticapi's matching, void and crowd rules)."""

from __future__ import annotations

import numpy as np
import pytest

from text4seg.panoptic_metrics import PanopticMeter, panoptic_image_stats

CATS = {1: True, 2: False, 3: True}  # person (thing), sky (stuff), car (thing)
GT = np.array([[1, 1, 1, 1, 0, 0, 2, 2, 2, 2, 3, 3, 3, 0, 0, 0, 4, 4, 4, 4]])
GT_SEGMENTS = [{"id": 1, "category_id": 1}, {"id": 2, "category_id": 2},
               {"id": 3, "category_id": 1, "iscrowd": 1}, {"id": 4, "category_id": 3}]
PRED = np.array([[5, 5, 5, 0, 5, 5, 6, 6, 0, 0, 7, 7, 0, 8, 8, 8, 9, 9, 0, 0]])
PRED_SEGMENTS = [{"id": 5, "category_id": 1}, {"id": 6, "category_id": 2}, {"id": 7, "category_id": 1},
                 {"id": 8, "category_id": 3}, {"id": 9, "category_id": 1}]


def test_matching_rules_exact_counts():
    stats = panoptic_image_stats(PRED, PRED_SEGMENTS, GT, GT_SEGMENTS)
    # 5: 3 px on gt 1 + 2 px on void -> union 5 + 4 - 3 - 2 = 4, IoU 0.75 (a match only thanks to the void rule)
    # 6: IoU exactly 0.5 -> no match (strict >): sky FN and FP
    # 7: on the person crowd region -> ignored; 8: all on void -> ignored
    # 9: person on the car -> person FP, car FN
    assert stats == {1: [0.75, 1, 1, 0], 2: [0.0, 0, 1, 1], 3: [0.0, 0, 0, 1]}
    meter = PanopticMeter(CATS)
    meter.add_stats(stats)
    out = meter.compute()
    assert out["all"] == {"pq": pytest.approx(1 / 6), "sq": pytest.approx(0.25), "rq": pytest.approx(2 / 9), "n": 3}
    assert out["things"] == {"pq": pytest.approx(0.25), "sq": pytest.approx(0.375), "rq": pytest.approx(1 / 3),
                             "n": 2}
    assert out["stuff"] == {"pq": 0.0, "sq": 0.0, "rq": 0.0, "n": 1}
    assert meter.per_class()[1] == {"pq": 0.5, "sq": 0.75, "rq": pytest.approx(2 / 3), "tp": 1, "fp": 1, "fn": 0}


def test_crowd_of_another_class_does_not_hide_a_false_positive():
    gt = np.array([[3, 3, 3, 3]])
    stats = panoptic_image_stats(np.array([[1, 1, 0, 0]]), [{"id": 1, "category_id": 3}], gt,
                                 [{"id": 3, "category_id": 1, "iscrowd": 1}])
    assert stats == {3: [0.0, 0, 1, 0]}  # crowd person region; the car prediction counts as FP
    stats = panoptic_image_stats(np.array([[1, 1, 0, 0]]), [{"id": 1, "category_id": 1}], gt,
                                 [{"id": 3, "category_id": 1, "iscrowd": 1}])
    assert stats == {}  # crowd GT is never a FN; a prediction on it is ignored


def test_perfect_and_merge_is_exact():
    a, b = PanopticMeter(CATS), PanopticMeter(CATS)
    a.update(PRED, PRED_SEGMENTS, GT, GT_SEGMENTS)
    b.update(GT, [s for s in GT_SEGMENTS if s["id"] != 3] + [{"id": 3, "category_id": 1}], GT,
             [s for s in GT_SEGMENTS if s["id"] != 3])  # the crowd becomes an unmatched FP prediction
    single = PanopticMeter(CATS)
    single.update(GT, [s for s in GT_SEGMENTS if s["id"] != 3] + [{"id": 3, "category_id": 1}], GT,
                  [s for s in GT_SEGMENTS if s["id"] != 3])
    single.update(PRED, PRED_SEGMENTS, GT, GT_SEGMENTS)
    merged = a.merge(b).compute()
    assert merged == single.compute() and merged["images"] == 2
    # person: TP 0.75 + TP 1.0, FP 1 + FP 1 -> PQ 1.75 / 3
    assert single.per_class()[1]["pq"] == pytest.approx(1.75 / 3)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="segment 9 is in the map but not in the segment list"):
        panoptic_image_stats(PRED, PRED_SEGMENTS[:-1], GT, GT_SEGMENTS)
    with pytest.raises(ValueError, match="segment 4 is in the segment list but not in the map"):
        panoptic_image_stats(np.zeros((1, 2), np.int64), [{"id": 4, "category_id": 1}], np.zeros((1, 2), np.int64), [])
    with pytest.raises(ValueError, match="shape"):
        panoptic_image_stats(PRED[:, :4], [], GT, GT_SEGMENTS)
    with pytest.raises(ValueError, match="category 7"):
        PanopticMeter(CATS).add_stats({7: [0.0, 0, 1, 0]})
    assert PanopticMeter(CATS).compute()["all"] == {"pq": None, "sq": None, "rq": None, "n": 0}
