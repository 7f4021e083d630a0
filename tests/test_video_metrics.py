"""Video scores: per-frame J, F (= davis2017-evaluation db_eval_boundary), A, R, per-expression means, meters.

Expected values are derived by hand in the comments (frames are 6 x 8 unless said otherwise: the F tolerance is
then ``ceil(0.008 * sqrt(36 + 64)) = ceil(0.08) = 1`` pixel, a 3 x 3 cross).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from text4seg.metrics import _dilate, _disk, boundary_f_measure, boundary_radius, meter_from_state_dict
from text4seg.video_metrics import (
    ReVOSMeter,
    RVOSMeter,
    expression_scores,
    frame_accuracy,
    frame_robustness,
)

H, W = 6, 8


def mask(*boxes, shape=(H, W)) -> np.ndarray:
    out = np.zeros(shape, dtype=bool)
    for top, left, bottom, right in boxes:
        out[top:bottom, left:right] = True
    return out


def pixel(y, x, shape=(H, W)) -> np.ndarray:
    return mask((y, x, y + 1, x + 1), shape=shape)


EMPTY = mask()
FULL = mask((0, 0, H, W))


# ------------------------------------------------ an independent re-derivation of the reference (loops only)


def reference_f(pred: np.ndarray, gt: np.ndarray, bound_th: float) -> float:
    """db_eval_boundary written from its definition with plain loops: seg2bmap (east/south/south-east with the
    last row/column rules), skimage's disk(r) on arange(-r, r + 1), cv2.dilate anchored at k // 2 with a zero
    border, and the reference's precision/recall rules for empty boundaries."""
    h, w = pred.shape
    radius = bound_th if bound_th >= 1 else math.ceil(bound_th * math.sqrt(h * h + w * w))

    def bmap(m):
        b = np.zeros_like(m)
        for y in range(h):
            for x in range(w):
                east = m[y, x + 1] if x + 1 < w else False
                south = m[y + 1, x] if y + 1 < h else False
                se = m[y + 1, x + 1] if (y + 1 < h and x + 1 < w) else False
                if y == h - 1 and x == w - 1:
                    b[y, x] = False
                elif y == h - 1:
                    b[y, x] = m[y, x] != east
                elif x == w - 1:
                    b[y, x] = m[y, x] != south
                else:
                    b[y, x] = m[y, x] != east or m[y, x] != south or m[y, x] != se
        return b

    offsets = [-radius + i for i in range(int(math.floor(2 * radius)) + 1)]
    kernel = [(i, j) for i, oy in enumerate(offsets) for j, ox in enumerate(offsets) if oy * oy + ox * ox <= radius * radius]
    anchor = len(offsets) // 2

    def dilate(m):
        out = np.zeros_like(m)
        for y in range(h):
            for x in range(w):
                out[y, x] = any(0 <= y + i - anchor < h and 0 <= x + j - anchor < w and m[y + i - anchor, x + j - anchor]
                                for i, j in kernel)
        return out

    pb, gb = bmap(pred), bmap(gt)
    n_p, n_g = int(pb.sum()), int(gb.sum())
    if n_p == 0 and n_g > 0:
        precision, recall = 1, 0
    elif n_p > 0 and n_g == 0:
        precision, recall = 0, 1
    elif n_p == 0 and n_g == 0:
        precision, recall = 1, 1
    else:
        precision = int((pb & dilate(gb)).sum()) / n_p
        recall = int((gb & dilate(pb)).sum()) / n_g
    return 0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


@pytest.mark.parametrize("bound_th", [0.008, 0.1, 1, 1.5, 2, 2.5])
def test_boundary_f_equals_the_reference_on_random_masks(bound_th):
    rng = np.random.default_rng(int(bound_th * 1000))
    for _ in range(25):
        h, w = (int(v) for v in rng.integers(1, 13, size=2))
        pred = rng.random((h, w)) < rng.random()
        gt = np.zeros((h, w), bool)
        y, x = rng.integers(0, h), rng.integers(0, w)
        gt[y:y + rng.integers(1, h + 1), x:x + rng.integers(1, w + 1)] = True
        assert boundary_f_measure(pred, gt, bound_th) == reference_f(pred, gt, bound_th)


def test_boundary_radius():
    assert boundary_radius((480, 854)) == 8.0  # ceil(0.008 * 979.63...) = ceil(7.84)
    assert boundary_radius((H, W)) == 1.0  # ceil(0.08)
    assert boundary_radius((100, 100)) == 2.0  # ceil(1.13)
    assert boundary_radius((H, W), 1.5) == 1.5  # >= 1: pixels, kept as given
    assert boundary_radius((H, W), 0) == 0.0
    with pytest.raises(ValueError, match="bound_th must be a finite number >= 0"):
        boundary_radius((H, W), -0.1)


def test_disk_footprints_follow_skimage():
    np.testing.assert_array_equal(_disk(1), [[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    # r = 1.5: offsets -1.5, -0.5, 0.5, 1.5; only (+-0.5, +-0.5) lie within the radius
    np.testing.assert_array_equal(_disk(1.5), [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]])


def test_even_footprint_dilates_towards_the_bottom_right_like_cv2(monkeypatch):
    # cv2 anchors the 4x4 kernel at (2, 2): its cells (1..2, 1..2) read src[y-1..y, x-1..x]
    expected = mask((2, 3, 4, 5))
    np.testing.assert_array_equal(_dilate(pixel(2, 3), 1.5), expected)
    import sys

    monkeypatch.setitem(sys.modules, "scipy", None)  # the numpy fallback agrees
    np.testing.assert_array_equal(_dilate(pixel(2, 3), 1.5), expected)
    np.testing.assert_array_equal(_dilate(pixel(0, 0), 8), _dilate(pixel(0, 0), 8))


# ----------------------------------------------------------------------------------------- hand-built frames


def test_empty_prediction_and_empty_truth():
    s = expression_scores([EMPTY], [EMPTY], [EMPTY])
    assert (s["j"], s["f"], s["a"], s["r"], s["jf"]) == (1.0, 1.0, 1.0, 1.0, 1.0)


def test_prediction_on_an_empty_truth():
    pred = mask((1, 1, 3, 3))  # 4 pixels, all false positives
    fg = mask((4, 0, 6, 5))  # 10 foreground pixels (other objects of the video)
    s = expression_scores([pred], [EMPTY], [fg])
    assert s["j"] == 0.0  # union 4, intersection 0
    assert s["f"] == 0.0  # prediction has a boundary, truth none: P = 0, R = 1
    assert s["a"] == 44 / 48
    assert s["r"] == 1 - 4 / (10 + 1e-6)
    assert frame_robustness(pred, EMPTY, EMPTY) == 0.0  # 1 - 4 / 1e-6 < 0, clipped


def test_empty_prediction_on_a_target():
    s = expression_scores([EMPTY], [mask((1, 1, 3, 3))], [mask((1, 1, 3, 3))])
    assert (s["j"], s["f"], s["a"], s["r"]) == (0.0, 0.0, 44 / 48, 1.0)


def test_full_frame_against_empty_keeps_the_reference_quirk():
    # a full-frame mask has no boundary pixel, so F(full, empty) = 1 while J = 0
    assert boundary_f_measure(FULL, EMPTY) == 1.0
    s = expression_scores([FULL], [EMPTY])
    assert (s["j"], s["f"], s["a"], s["r"]) == (0.0, 1.0, 0.0, None)


def test_one_pixel_objects():
    # a pixel at (y, x) has the boundary {(y-1, x-1), (y-1, x), (y, x-1), (y, x)}
    assert boundary_f_measure(pixel(2, 3), pixel(2, 3)) == 1.0
    # gt two columns right: with the 1-px cross, pred boundary (1,3), (2,3) meets dilated (1,4), (2,4): P = R = 1/2
    assert boundary_f_measure(pixel(2, 3), pixel(2, 5)) == 0.5
    # 2 px tolerance (disk of radius 2 reaches two columns): everything matched
    assert boundary_f_measure(pixel(2, 3), pixel(2, 5), bound_th=2) == 1.0
    # 1.5 px (even 2x2 footprint, dilating towards the bottom right as cv2 does): gt one column right;
    # dilated gt covers columns 3..5 -> P = 2/4; dilated pred covers columns 2..4 -> R = 4/4; F = 2/3
    assert boundary_f_measure(pixel(2, 3), pixel(2, 4), bound_th=1.5) == 2 * 0.5 * 1.0 / 1.5
    s = expression_scores([pixel(2, 3)], [pixel(2, 5)], [pixel(2, 5)])
    assert (s["j"], s["f"], s["a"], s["r"]) == (0.0, 0.5, 46 / 48, 1 - 1 / (1 + 1e-6))


def test_masks_touching_the_border():
    gt = mask((0, 0, H, 4))  # left half: boundary is column 3 only (no boundary along the frame edge)
    assert boundary_f_measure(mask((0, 0, H, 5)), gt) == 1.0  # column 4 lies within 1 px of column 3
    assert boundary_f_measure(mask((0, 0, H, 6)), gt) == 0.0  # column 5 does not
    s = expression_scores([mask((0, 0, H, 6))], [gt])
    assert s["j"] == 24 / 36 and s["a"] == 36 / 48
    # a pixel in the bottom-right corner: boundary (5, 6), (4, 7), (4, 6); the corner itself is forced to 0
    corner = pixel(H - 1, W - 1)
    assert boundary_f_measure(corner, corner) == 1.0
    assert boundary_f_measure(EMPTY, corner) == 0.0
    assert boundary_f_measure(FULL, FULL) == 1.0


def test_non_square_frames_and_accuracy_robustness():
    pred = mask((0, 0, 2, 3))  # 6 px
    gt = mask((0, 0, 2, 2))  # 4 px: 2 false positives
    fg = gt | mask((4, 6, 6, 8))  # 8 px
    assert frame_accuracy(pred, gt) == 46 / 48
    assert frame_robustness(pred, gt, fg) == 1 - 2 / (8 + 1e-6)
    # a 3 x 20 frame: tolerance ceil(0.008 * sqrt(409)) = 1
    tall = np.zeros((3, 20), bool)
    tall[:, :10] = True
    wide_pred = np.zeros((3, 20), bool)
    wide_pred[:, :11] = True
    assert boundary_f_measure(wide_pred, tall) == 1.0
    assert expression_scores([wide_pred], [tall])["j"] == 30 / 33
    # 0/255 predictions count as 0/1: A and R are unchanged
    assert frame_robustness(pred.astype(np.uint8) * 255, gt, fg) == 1 - 2 / (8 + 1e-6)


def test_expression_means_over_frames():
    preds = [EMPTY, mask((1, 1, 3, 3)), pixel(2, 3)]
    gts = [EMPTY, EMPTY, pixel(2, 5)]
    s = expression_scores(preds, gts)
    assert s["j_frames"] == [1.0, 0.0, 0.0] and s["f_frames"] == [1.0, 0.0, 0.5]
    assert s["a_frames"] == [1.0, 44 / 48, 46 / 48]
    assert s["j"] == 1 / 3 and s["f"] == 0.5 and s["jf"] == (1 / 3 + 0.5) / 2
    assert s["a"] == math.fsum([1.0, 44 / 48, 46 / 48]) / 3
    assert s["frames"] == 3 and s["r"] is None
    with pytest.raises(ValueError, match="pred_frames has 1, gt_frames has 2 frames"):
        expression_scores([EMPTY], [EMPTY, EMPTY])
    with pytest.raises(ValueError, match="at least one frame"):
        expression_scores([], [])
    with pytest.raises(ValueError, match="shape mismatch at frame 0"):
        expression_scores([EMPTY], [EMPTY[:, :4]])


# ---------------------------------------------------------------------------------------------------- meters


def test_rvos_meter_means_over_expressions_merge_and_state():
    a, b, whole = RVOSMeter(), RVOSMeter(), RVOSMeter()
    cases = [([EMPTY], [EMPTY]), ([pixel(2, 3)], [pixel(2, 5)]), ([EMPTY, FULL], [EMPTY, EMPTY])]
    for i, (p, g) in enumerate(cases):
        (a if i < 2 else b).update(p, g)
        whole.update(p, g)
    # per expression (J, F): (1, 1), (0, 0.5), ((1 + 0) / 2, (1 + 1) / 2) = (0.5, 1)
    expected_j, expected_f = (1 + 0 + 0.5) / 3, (1 + 0.5 + 1) / 3
    assert a.merge(b) == whole
    out = whole.compute()
    assert out == {"j": expected_j, "f": expected_f, "jf": (expected_j + expected_f) / 2, "expressions": 3,
                   "frames": 4, "missing": 0}
    state = json.loads(json.dumps(whole.state_dict()))
    assert meter_from_state_dict(state) == whole
    whole.add_missing(frames=5)
    assert whole.compute()["j"] == (1 + 0 + 0.5 + 0) / 4 and whole.compute()["missing"] == 1
    assert RVOSMeter().compute() == {"j": None, "f": None, "jf": None, "expressions": 0, "frames": 0,
                                     "missing": 0}
    with pytest.raises(ValueError, match="different settings"):
        RVOSMeter().merge(RVOSMeter(bound_th=2))


def test_revos_meter_groups_and_overall():
    meter = ReVOSMeter()
    fg = mask((1, 1, 3, 3)) | pixel(2, 5)
    ref = meter.update(0, [mask((1, 1, 3, 3))], [mask((1, 1, 3, 3))], [fg])  # perfect: J = F = A = R = 1
    rea = meter.update("reasoning", [pixel(2, 3)], [pixel(2, 5)], [fg])
    nt = meter.update(2, [EMPTY], [EMPTY], [fg])
    assert (ref["j"], ref["f"], ref["a"], ref["r"]) == (1.0, 1.0, 1.0, 1.0)
    # reasoning: J 0, F 0.5, A 46/48, R = 1 - 1 / (5 + 1e-6)
    assert rea["r"] == 1 - 1 / (5 + 1e-6)
    out = meter.compute()
    assert out["referring"] == {"j": 1.0, "f": 1.0, "a": 1.0, "r": 1.0, "jf": 1.0, "expressions": 1, "frames": 1}
    assert out["reasoning"]["jf"] == 0.25 and out["reasoning"]["a"] == 46 / 48
    assert out["overall"] == {
        "j": 0.5, "f": 0.75, "jf": (1.0 + 0.25) / 2, "a": (1 + 46 / 48) / 2,
        "r": (1 + (1 - 1 / (5 + 1e-6))) / 2, "expressions": 2, "frames": 2,
    }
    assert out["no_target"]["jf"] == nt["jf"] == 1.0 and out["no_target"]["expressions"] == 1
    state = json.loads(json.dumps(meter.state_dict()))
    assert meter_from_state_dict(state).compute() == out
    # merging shards equals one pass
    first, second = ReVOSMeter(), ReVOSMeter()
    first.update(0, [mask((1, 1, 3, 3))], [mask((1, 1, 3, 3))], [fg])
    second.update(1, [pixel(2, 3)], [pixel(2, 5)], [fg])
    second.update(2, [EMPTY], [EMPTY], [fg])
    assert first.merge(second) == meter


def test_revos_overall_needs_both_groups_and_valid_names():
    meter = ReVOSMeter()
    meter.update("referring", [EMPTY], [EMPTY])
    out = meter.compute()
    assert out["overall"]["jf"] is None and out["referring"]["r"] is None
    with pytest.raises(ValueError, match="ReVOS group must be one of referring, reasoning, no_target"):
        meter.update(3, [EMPTY], [EMPTY])


def test_meter_from_state_dict_rejects_unknown_types():
    with pytest.raises(ValueError, match="RVOSMeter"):
        meter_from_state_dict({"type": "Nope"})


def test_accumulator_equals_expression_scores_and_add_scores_equals_update():
    from text4seg.video_metrics import ExpressionAccumulator

    rng = np.random.default_rng(3)
    preds = [rng.random((6, 9)) > 0.5 for _ in range(4)]
    gts = [rng.random((6, 9)) > 0.6 for _ in range(4)]
    fgs = [g | (rng.random((6, 9)) > 0.8) for g in gts]
    accumulator = ExpressionAccumulator()
    for p, g, fg in zip(preds, gts, fgs):
        accumulator.add_frame(p, g, fg)
    assert accumulator.result() == expression_scores(preds, gts, fgs)
    with pytest.raises(ValueError, match="for every frame of an expression or for none"):
        accumulator.add_frame(preds[0], gts[0])
    with pytest.raises(ValueError, match="at least one frame"):
        ExpressionAccumulator().result()

    streamed, replayed = RVOSMeter(), RVOSMeter()
    revos_streamed, revos_replayed = ReVOSMeter(), ReVOSMeter()
    for k in range(3):
        scores = streamed.update(preds[k:], gts[k:])
        replayed.add_scores(json.loads(json.dumps(scores)))  # through a JSON record
        scores = revos_streamed.update(k % 2, preds[k:], gts[k:], fgs[k:])
        revos_replayed.add_scores(k % 2, json.loads(json.dumps(scores)))
    assert replayed.state_dict() == streamed.state_dict()
    assert revos_replayed.state_dict() == revos_streamed.state_dict()
    for bad in ({"j": 1.5, "f": 0.0, "frames": 2}, {"j": 0.5, "frames": 2}, {"j": 0.5, "f": 0.5, "frames": 0}):
        with pytest.raises(ValueError, match="scored expression"):
            RVOSMeter().add_scores(bad)
