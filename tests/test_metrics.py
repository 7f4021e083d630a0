"""Exact, hand-computed tests for text4seg.metrics."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from text4seg.metrics import (
    GroupedMeter,
    JFMeter,
    RECMeter,
    ReferSegMeter,
    SemanticSegMeter,
    _dilate,
    _disk,
    _ExactSum,
    _seg2bmap,
    boundary_f_measure,
    box_accuracy,
    box_from_mask,
    box_iou,
    jf_score,
    meter_from_state_dict,
    region_iou,
)


def mask(shape, *boxes):
    """HxW bool with the given (row0, row1, col0, col1) half-open blocks set."""
    out = np.zeros(shape, dtype=bool)
    for r0, r1, c0, c1 in boxes:
        out[r0:r1, c0:c1] = True
    return out


def roundtrip(meter):
    return meter_from_state_dict(json.loads(json.dumps(meter.state_dict())))


# ------------------------------------------------------------------------------------------ ReferSegMeter


def refer_cases():
    return [
        (mask((4, 4), (0, 2, 0, 2)), mask((4, 4), (0, 2, 0, 3))),  # I=4 U=6
        (mask((4, 4)), mask((4, 4))),  # no target, predicted empty: IoU 1
        (mask((4, 4), (3, 4, 3, 4)), mask((4, 4))),  # no target, predicted something: I=0 U=1
        (mask((4, 4)), mask((4, 4), (0, 1, 0, 3))),  # target missed: I=0 U=3
    ]


def test_refer_seg_hand_computed():
    meter = ReferSegMeter()
    ious = [meter.update(p, g) for p, g in refer_cases()]
    assert ious == [4 / 6, 1.0, 0.0, 0.0]
    assert meter.compute() == {
        "ciou": 4 / 10,
        "giou": (4 / 6 + 1.0) / 4,
        "n_acc": 1 / 2,
        "t_acc": 1 / 2,
        "samples": 4,
        "no_target_samples": 2,
    }


def test_refer_seg_empty_meter_and_only_targets():
    assert ReferSegMeter().compute() == {"ciou": None, "giou": None, "n_acc": None, "t_acc": None,
                                         "samples": 0, "no_target_samples": 0}
    meter = ReferSegMeter()
    meter.update(mask((2, 2), (0, 1, 0, 1)), mask((2, 2), (0, 1, 0, 1)))
    out = meter.compute()
    assert (out["ciou"], out["giou"], out["n_acc"], out["t_acc"]) == (1.0, 1.0, None, 1.0)


def test_refer_seg_all_empty_unions_count_one():
    meter = ReferSegMeter()
    meter.update(mask((3, 3)), mask((3, 3)))
    assert meter.compute()["ciou"] == 1.0 and meter.compute()["giou"] == 1.0


def test_refer_seg_ignore_pixels_excluded():
    pred = np.array([[1, 1, 0, 0]], dtype=bool)
    gt = np.array([[1, 0, 1, 0]], dtype=bool)
    ignore = np.array([[0, 1, 0, 0]], dtype=bool)
    meter = ReferSegMeter()
    assert meter.update(pred, gt, ignore=ignore) == 1 / 2  # I = {0}, U = {0, 2}
    assert (meter.intersection, meter.union) == (1, 2)
    # a prediction only on ignored pixels counts as empty for N-acc
    meter = ReferSegMeter()
    assert meter.update(np.array([[0, 1]], bool), np.array([[0, 0]], bool), ignore=np.array([[0, 1]], bool)) == 1.0
    assert meter.compute()["n_acc"] == 1.0


def test_refer_seg_accepts_uint8_masks():
    meter = ReferSegMeter()
    assert meter.update(np.array([[0, 255]], np.uint8), np.array([[1, 1]], np.uint8)) == 0.5


def test_refer_seg_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        ReferSegMeter().update(np.zeros((2, 3), bool), np.zeros((3, 2), bool))
    with pytest.raises(ValueError, match=r"ignore has shape \(2, 2\)"):
        ReferSegMeter().update(np.zeros((2, 3), bool), np.zeros((2, 3), bool), ignore=np.zeros((2, 2), bool))
    with pytest.raises(ValueError, match="2-D"):
        ReferSegMeter().update(np.zeros((2, 3, 1), bool), np.zeros((2, 3, 1), bool))


def random_pairs(n, seed, shape=(7, 9)):
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(n):
        gt = rng.random(shape) < rng.random() if i % 5 else np.zeros(shape, bool)
        pred = rng.random(shape) < rng.random() if i % 7 else np.zeros(shape, bool)
        pairs.append((pred, gt))
    return pairs


def test_refer_seg_merged_equals_single_pass():
    pairs = random_pairs(60, seed=0)
    single = ReferSegMeter()
    for p, g in pairs:
        single.update(p, g)
    shards = [ReferSegMeter() for _ in range(3)]
    for i, (p, g) in enumerate(pairs):
        shards[(i * 7) % 3].update(p, g)
    for order in ([0, 1, 2], [2, 0, 1]):
        merged = ReferSegMeter()
        for k in order:
            merged.merge(roundtrip(shards[k]))
        assert merged == single
        assert merged.compute() == single.compute()  # bit-for-bit, not approximately


def test_refer_seg_state_dict_roundtrip_is_json():
    meter = ReferSegMeter()
    for p, g in refer_cases():
        meter.update(p, g)
    state = json.loads(json.dumps(meter.state_dict()))
    back = ReferSegMeter.from_state_dict(state)
    assert back == meter and back.compute() == meter.compute()
    with pytest.raises(ValueError, match="not a ReferSegMeter state"):
        ReferSegMeter.from_state_dict(RECMeter().state_dict())


def test_exact_sum_is_order_independent():
    values = [0.1, 1e-17, 2 / 3, 1e-17, 0.3, 1.0 / 7]
    a, b = _ExactSum(), _ExactSum()
    for v in values:
        a.add(v)
    for v in reversed(values):
        b.add(v)
    assert a.units == b.units and a.state() == b.state()
    assert _ExactSum.from_state(a.state()).units == a.units
    assert a.value == sum(map(__import__("fractions").Fraction, values)).__float__()
    with pytest.raises(ValueError, match="non-finite"):
        a.add(float("nan"))


def test_grouped_meter_overall_is_merge_of_groups():
    meter = GroupedMeter(ReferSegMeter(), groups=("short", "long"))
    cases = refer_cases()
    meter.update("short", *cases[0])
    meter.update("long", *cases[1])
    meter.update("long", *cases[3])
    out = meter.compute()
    assert out["groups"]["short"]["ciou"] == 4 / 6
    assert out["groups"]["long"]["ciou"] == 0.0 and out["groups"]["long"]["giou"] == 1 / 2
    assert out["overall"]["ciou"] == 4 / 9 and out["overall"]["samples"] == 3
    back = roundtrip(meter)
    assert isinstance(back, GroupedMeter) and back == meter and back.compute() == out
    other = GroupedMeter(ReferSegMeter())
    other.update("extra", *cases[2])
    back.merge(other)
    assert sorted(back.groups) == ["extra", "long", "short"] and back.compute()["overall"]["samples"] == 4
    with pytest.raises(ValueError, match="cannot merge"):
        back.merge(GroupedMeter(RECMeter()))
    with pytest.raises(ValueError, match="strings"):
        meter.group(3)


def test_grouped_meter_keeps_prototype_settings():
    meter = GroupedMeter(SemanticSegMeter(5, ignore_index=-1, background_id=0))
    meter.update("a", np.zeros((1, 2), int), np.array([[0, 4]]))
    back = roundtrip(meter)
    assert back.group("new").settings() == {"num_classes": 5, "ignore_index": -1, "background_id": 0,
                                            "include_background": False}


# ---------------------------------------------------------------------------------------------------- REC


def test_box_from_mask_is_inclusive_exclusive_xyxy():
    assert box_from_mask(mask((5, 8), (1, 3, 3, 6))) == (3, 1, 6, 3)
    assert box_from_mask(mask((5, 8), (4, 5, 7, 8))) == (7, 4, 8, 5)
    assert box_from_mask(mask((5, 8))) is None


def test_box_iou():
    assert box_iou((0, 0, 2, 2), (1, 1, 3, 3)) == 1 / 7
    assert box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
    assert box_iou((1, 1, 1, 1), (1, 1, 1, 1)) == 1.0
    with pytest.raises(ValueError, match="XYXY"):
        box_iou((2, 0, 1, 1), (0, 0, 1, 1))


def test_box_accuracy_rules():
    gt_box = (0, 0, 4, 2)  # area 8
    assert box_accuracy(mask((4, 6), (0, 2, 0, 2)), gt_box) is False  # IoU exactly 0.5 is not > 0.5
    assert box_accuracy(mask((4, 6), (0, 2, 0, 3)), gt_box) is True  # 6 / 8
    assert box_accuracy(mask((4, 6), (0, 2, 0, 3)), np.array(gt_box, dtype=float)) is True
    assert box_accuracy(mask((4, 6), (0, 2, 0, 3)), mask((4, 6), (0, 2, 0, 4))) is True  # gt as a mask
    assert box_accuracy(mask((4, 6)), gt_box) is False  # empty prediction: miss
    assert box_accuracy(mask((4, 6)), mask((4, 6))) is True  # both empty: hit
    assert box_accuracy(mask((4, 6)), None) is True
    assert box_accuracy(mask((4, 6), (0, 1, 0, 1)), None) is False
    with pytest.raises(ValueError, match="XYXY box"):
        box_accuracy(mask((4, 6)), [1, 2, 3])


def test_rec_meter_counts_merges_and_roundtrips():
    meter = RECMeter()
    assert meter.update(mask((4, 6), (0, 2, 0, 3)), (0, 0, 4, 2)) is True  # 0.75
    assert meter.update(mask((4, 6), (0, 2, 0, 2)), (0, 0, 4, 2)) is False  # 0.5
    other = RECMeter()
    assert other.update(mask((4, 6)), (0, 0, 4, 2)) is False  # 0
    merged = roundtrip(meter).merge(other)
    assert merged.compute() == {"acc": 1 / 3, "hits": 1, "samples": 3, "threshold": 0.5,
                                "mean_box_iou": (0.75 + 0.5) / 3}
    with pytest.raises(ValueError, match="different settings"):
        merged.merge(RECMeter(threshold=0.7))
    assert RECMeter().compute()["acc"] is None


# ---------------------------------------------------------------------------------------------- semantic

GT = np.array([[0, 0, 1], [1, 2, 255]])
PRED = np.array([[0, 1, 1], [1, 1, 0]])  # the 0 under the ignored pixel must not count for class 0


def test_semantic_hand_computed():
    meter = SemanticSegMeter(3)
    meter.update(PRED, GT)
    # class 0: tp 1, union 2; class 1: tp 2, union 4; class 2: tp 0, union 1
    assert meter.compute() == {"miou": (0.5 + 0.5 + 0.0) / 3, "per_class_iou": [0.5, 0.5, 0.0],
                               "pixel_accuracy": 3 / 5, "classes_in_mean": 3, "pixels": 5, "samples": 1}


def test_semantic_absent_classes_skipped_and_json_safe():
    meter = SemanticSegMeter(5)
    meter.update(PRED, GT)
    out = meter.compute()
    assert out["per_class_iou"] == [0.5, 0.5, 0.0, None, None]
    assert out["miou"] == 1 / 3 and out["classes_in_mean"] == 3
    assert json.loads(json.dumps(out)) == out


def test_semantic_background_excluded_only_when_declared():
    meter = SemanticSegMeter(3, background_id=0)
    meter.update(PRED, GT)
    out = meter.compute()
    assert out["miou"] == (0.5 + 0.0) / 2 and out["miou_with_background"] == 1 / 3
    meter = SemanticSegMeter(3, background_id=0, include_background=True)
    meter.update(PRED, GT)
    assert meter.compute()["miou"] == 1 / 3


def test_semantic_invalid_prediction_is_a_miss():
    meter = SemanticSegMeter(3)
    meter.update(np.array([[255, 2]]), np.array([[2, 2]]))
    out = meter.compute()
    assert out["per_class_iou"] == [None, None, 0.5] and out["pixel_accuracy"] == 0.5


def test_semantic_errors():
    meter = SemanticSegMeter(3)
    with pytest.raises(ValueError, match="neither a class id"):
        meter.update(np.zeros((1, 2), int), np.array([[0, 7]]))
    with pytest.raises(ValueError, match=r"\(1, 2\).*\(2, 1\)"):
        meter.update(np.zeros((1, 2), int), np.zeros((2, 1), int))
    with pytest.raises(ValueError, match="integer label map"):
        meter.update(np.zeros((1, 2), float), np.zeros((1, 2), int))
    with pytest.raises(ValueError, match="collides"):
        SemanticSegMeter(300)
    assert SemanticSegMeter(300, ignore_index=-1).num_classes == 300
    assert SemanticSegMeter(2).compute()["miou"] is None


def test_semantic_merge_equals_single_and_roundtrip():
    rng = np.random.default_rng(1)
    maps = [(rng.integers(0, 6, (5, 7)), np.where(rng.random((5, 7)) < 0.2, 255, rng.integers(0, 6, (5, 7))))
            for _ in range(10)]
    single = SemanticSegMeter(6)
    a, b = SemanticSegMeter(6), SemanticSegMeter(6)
    for i, (p, g) in enumerate(maps):
        single.update(p, g)
        (a if i % 2 else b).update(p, g)
    merged = roundtrip(a).merge(roundtrip(b))
    assert merged == single and merged.compute() == single.compute()
    with pytest.raises(ValueError, match="different settings"):
        merged.merge(SemanticSegMeter(7))


# ------------------------------------------------------------------------------------------------- video


def test_seg2bmap_marks_right_and_bottom_transitions():
    m = mask((4, 8), (0, 4, 0, 4))
    assert np.array_equal(np.argwhere(_seg2bmap(m)), [[r, 3] for r in range(4)])


def test_boundary_f_hand_computed():
    gt = mask((4, 8), (0, 4, 0, 4))
    # 4x8 image: radius ceil(0.008 * 8.94) = 1 (a plus-shaped disk)
    assert boundary_f_measure(mask((4, 8), (0, 4, 0, 5)), gt) == 1.0  # boundary 1 px away: matched
    assert boundary_f_measure(mask((4, 8), (0, 4, 0, 6)), gt) == 0.0  # 2 px away: unmatched
    # pred boundary {(0,3),(1,3),(1,4),(1,5),(2,5),(3,5)}: precision 3/6, recall 3/4
    pred = mask((4, 8), (0, 2, 0, 4), (2, 4, 0, 6))
    assert boundary_f_measure(pred, gt) == pytest.approx(2 * 0.5 * 0.75 / 1.25, abs=1e-15)
    assert boundary_f_measure(mask((4, 8)), mask((4, 8))) == 1.0
    assert boundary_f_measure(mask((4, 8)), gt) == 0.0
    assert boundary_f_measure(gt, mask((4, 8))) == 0.0


def test_boundary_tolerance_is_ceil_of_diagonal_fraction():
    gt = mask((100, 100), (0, 100, 0, 50))  # diagonal 141.4 -> ceil(1.13) = 2 pixels
    assert boundary_f_measure(mask((100, 100), (0, 100, 0, 52)), gt) == 1.0
    assert boundary_f_measure(mask((100, 100), (0, 100, 0, 53)), gt) == 0.0
    assert boundary_f_measure(mask((100, 100), (0, 100, 0, 53)), gt, bound_th=3) == 1.0


def brute_force_f(pred, gt, radius):
    pb, gb = np.argwhere(_seg2bmap(pred)), np.argwhere(_seg2bmap(gt))
    if len(pb) == 0 or len(gb) == 0:
        return float(len(pb) == len(gb))
    d2 = ((pb[:, None, :] - gb[None, :, :]) ** 2).sum(-1)
    precision = (d2.min(1) <= radius ** 2).mean()
    recall = (d2.min(0) <= radius ** 2).mean()
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def test_boundary_f_matches_brute_force_disk_matching():
    rng = np.random.default_rng(3)
    for _ in range(20):
        gt = rng.random((30, 40)) < 0.4
        pred = gt ^ (rng.random((30, 40)) < 0.1)
        assert boundary_f_measure(pred, gt, bound_th=2) == pytest.approx(brute_force_f(pred, gt, 2), abs=1e-12)


def test_dilation_numpy_fallback_equals_scipy(monkeypatch):
    rng = np.random.default_rng(4)
    m = rng.random((25, 31)) < 0.05
    with_scipy = _dilate(m, 3)
    monkeypatch.setitem(sys.modules, "scipy", None)  # import scipy -> ImportError
    assert np.array_equal(_dilate(m, 3), with_scipy)
    assert _disk(1).sum() == 5 and _disk(2).sum() == 13


def test_jf_score_per_frame_and_means():
    gt = mask((4, 8), (0, 4, 0, 4))
    out = jf_score([gt, mask((4, 8), (0, 4, 0, 5)), mask((4, 8))], [gt, gt, mask((4, 8))])
    assert out["j_frames"] == [1.0, 16 / 20, 1.0]
    assert out["f_frames"] == [1.0, 1.0, 1.0]
    assert out["j"] == (1.0 + 0.8 + 1.0) / 3 and out["f"] == 1.0
    assert out["jf"] == (out["j"] + out["f"]) / 2 and out["frames"] == 3
    with pytest.raises(ValueError, match="frames"):
        jf_score([gt], [gt, gt])
    with pytest.raises(ValueError, match="frame 1"):
        jf_score([gt, gt], [gt, gt[:, :4]])


def test_jf_meter_means_over_videos_merge_roundtrip():
    gt = mask((4, 8), (0, 4, 0, 4))
    a, b = JFMeter(), JFMeter()
    a.update([gt, gt], [gt, gt])  # J 1, F 1
    b.update([mask((4, 8))], [gt])  # J 0, F 0
    merged = roundtrip(a).merge(b)
    assert merged.compute() == {"j": 0.5, "f": 0.5, "jf": 0.5, "videos": 2, "frames": 3}
    assert JFMeter().compute()["jf"] is None
    with pytest.raises(ValueError, match="at least one frame"):
        a.update([], [])


def test_region_iou():
    assert region_iou(mask((2, 2), (0, 1, 0, 2)), mask((2, 2), (0, 2, 0, 1))) == 1 / 3
    assert region_iou(mask((2, 2)), mask((2, 2))) == 1.0


def test_metrics_import_does_not_import_torch():
    code = "import sys, text4seg.metrics; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_meter_from_state_dict_rejects_unknown():
    with pytest.raises(ValueError, match="unknown meter type"):
        meter_from_state_dict({"type": "Nope"})
