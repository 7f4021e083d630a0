"""SAM2 propagation mechanics with a random tiny Sam2VideoModel (no real weights here: shapes, coverage,
keyframes kept, both directions run; not tracking quality)."""

from __future__ import annotations

import numpy as np
import pytest

from text4seg.refine.sam2_video import Sam2Propagator, build_tiny_sam2_video

H, W, T = 48, 64, 5


@pytest.fixture(scope="module")
def propagator(tmp_path_factory):
    path = build_tiny_sam2_video(tmp_path_factory.mktemp("sam2") / "tiny-sam2")
    return Sam2Propagator.from_pretrained(path, device="cpu")


def _frames():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (H, W, 3), dtype=np.uint8) for _ in range(T)]


def _box(top, left, h, w):
    mask = np.zeros((H, W), dtype=bool)
    mask[top:top + h, left:left + w] = True
    return mask


@pytest.mark.slow
def test_every_frame_covered_keyframes_kept_both_directions(propagator, monkeypatch):
    directions = []
    original = propagator.model.propagate_in_video_iterator

    def spy(session, start_frame_idx, reverse):
        directions.append((start_frame_idx, reverse))
        yield from original(session, start_frame_idx=start_frame_idx, reverse=reverse)

    monkeypatch.setattr(propagator.model, "propagate_in_video_iterator", spy)
    key = _box(10, 20, 20, 16)
    result = propagator.propagate(_frames(), {2: key})
    assert result.masks.shape == (T, H, W) and result.masks.dtype == bool
    assert np.array_equal(result.masks[2], key)
    assert result.sources == ["propagated", "propagated", "keyframe", "propagated", "propagated"]
    assert directions == [(2, False), (2, True)]
    assert result.sam2_calls == 1 + 3 + 3  # the keyframe, frames 2..4 forward, frames 2..0 backward
    assert result.keyframes == [2]

    second = _box(5, 5, 10, 10)
    again = propagator.propagate(_frames(), {0: key, 3: second})
    assert np.array_equal(again.masks[0], key) and np.array_equal(again.masks[3], second)
    assert again.sources.count("keyframe") == 2 and directions[-1] == (0, False)  # nothing before frame 0


def test_empty_keyframes_mean_an_empty_video_without_sam2(propagator, monkeypatch):
    monkeypatch.setattr(propagator.processor, "init_video_session",
                        lambda **kw: pytest.fail("SAM2 called for an empty video"))
    result = propagator.propagate(_frames(), {1: np.zeros((H, W), bool), 3: np.zeros((H, W), bool)})
    assert not result.masks.any() and result.sam2_calls == 0
    assert result.sources == ["propagated", "keyframe", "propagated", "keyframe", "propagated"]


def test_bad_inputs_are_clear(propagator, tmp_path):
    with pytest.raises(ValueError, match="no frames"):
        propagator.propagate([], {})
    with pytest.raises(ValueError, match="keyframe 9"):
        propagator.propagate(_frames(), {9: _box(0, 0, 2, 2)})
    with pytest.raises(ValueError, match="keyframe 1: mask"):
        propagator.propagate(_frames(), {1: np.zeros((4, 4), bool)})
    frames = _frames()
    frames[3] = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="frame 3: size 10x10"):
        propagator.propagate(frames, {0: _box(0, 0, 2, 2)})
    with pytest.raises(ValueError, match=r"frame 0: expected an RGB image"):
        propagator.propagate([np.zeros((4, 4), np.float32)], {})
    with pytest.raises(FileNotFoundError, match="--sam2"):
        Sam2Propagator.from_pretrained(tmp_path / "missing")
