"""Segmenting a video by text: per-frame with stride, keyframes + propagation (first, middle, best, stride:N),
no-target videos, and the tiny model with a tiny SAM2 end to end."""

from __future__ import annotations

import numpy as np
import pytest

from text4seg.config import Text4SegConfig
from text4seg.decoding import GeneratedText
from text4seg.descriptors import encode_descriptor
from text4seg.refine.sam2_video import PropagationResult
from text4seg.segmenter import Segmenter
from text4seg.video_segment import keyframe_candidates, parse_keyframes

CONFIG = Text4SegConfig(grid=(4, 4), descriptor_form="plain", fg_label="target",
                        question_template="Find {expression}.")
T, H, W = 7, 8, 8


def _answer(cells):
    grid = np.array([["target" if (i, j) in cells else "others" for j in range(4)] for i in range(4)], dtype=object)
    return "<seg>" + encode_descriptor(grid, rle=False) + "</seg>"


class FrameBackend:
    """Answers per frame (the frame's pixel value names it) and scores answers from a table."""

    def __init__(self, answers, scores=None):
        self.answers, self.scores, self.asked = answers, scores or {}, []

    def generate_batch(self, images, prompts):
        out = []
        for image, _ in zip(images, prompts):
            frame = int(np.asarray(image)[0, 0, 0])
            self.asked.append(frame)
            out.append(GeneratedText(self.answers(frame), tokens=3, forward_passes=2, seconds=0.0))
        return out

    def confidence(self, images, prompts, answers):
        return [self.scores.get(int(np.asarray(image)[0, 0, 0])) for image in images]


class FakePropagator:
    def __init__(self):
        self.calls = []

    def propagate(self, frames, prompts):
        self.calls.append(sorted(prompts))
        masks = np.zeros((len(frames),) + frames[0].shape[:2], dtype=bool)
        sources = ["propagated"] * len(frames)
        for k, mask in prompts.items():
            masks[k], sources[k] = mask, "keyframe"
        first = min(prompts)
        for k in range(len(frames)):
            if sources[k] != "keyframe":
                masks[k] = prompts[first]
        return PropagationResult(masks, sources, sam2_calls=len(frames) + 1, keyframes=sorted(prompts))


def _frames():
    return [np.full((H, W, 3), k, dtype=np.uint8) for k in range(T)]


def _cell_mask(cells):
    mask = np.zeros((H, W), dtype=bool)
    for i, j in cells:
        mask[2 * i:2 * i + 2, 2 * j:2 * j + 2] = True
    return mask


def test_keyframe_rules():
    assert parse_keyframes("stride:3") == ("stride", 3)
    assert keyframe_candidates(7, "first") == [0] and keyframe_candidates(7, "middle") == [3]
    assert keyframe_candidates(7, "best", 4) == [0, 2, 4, 6] and keyframe_candidates(2, "best", 4) == [0, 1]
    assert keyframe_candidates(7, "stride:3") == [0, 3, 6]
    for bad in ("stride:0", "stride:x", "last", "stride"):
        with pytest.raises(ValueError, match="--keyframes"):
            parse_keyframes(bad)


def test_per_frame_with_stride_copies_the_nearest_answer():
    backend = FrameBackend(lambda f: _answer({(f % 4, 0)}))
    seg = Segmenter(backend, CONFIG)
    full = seg.segment_video(_frames(), "the dot")
    assert backend.asked == list(range(T)) and full.sources == ["model"] * T
    assert all(np.array_equal(full.masks[k], _cell_mask({(k % 4, 0)})) for k in range(T))
    assert (full.model_calls, full.forward_passes, full.strategy) == (T, 2 * T, "per-frame")
    backend.asked.clear()
    strided = seg.segment_video(_frames(), "the dot", frame_stride=3)
    assert backend.asked == [0, 3, 6] and strided.keyframes == [0, 3, 6]
    # frame 1 -> 0, frame 2 -> 3 (nearer), frame 4 -> 3, frame 5 -> 6
    assert [int(np.argmax(strided.masks[k].any(axis=1))) // 2 for k in range(T)] == [0, 0, 3, 3, 3, 2, 2]
    assert strided.sources == ["model", "nearest", "nearest", "model", "nearest", "nearest", "model"]


def test_propagate_first_middle_stride_and_best():
    propagator = FakePropagator()
    seg = Segmenter(FrameBackend(lambda f: _answer({(1, 1)}) if f != 4 else _answer(set()),
                                 scores={0: -2.0, 2: -0.5, 4: -0.1, 6: -1.0}), CONFIG)
    first = seg.segment_video(_frames(), "x", strategy="propagate", propagator=propagator)
    assert first.keyframes == [0] and first.model_calls == 1 and propagator.calls[-1] == [0]
    assert first.sources[0] == "model" and first.sources[1:] == ["propagated"] * (T - 1)
    assert first.masks.shape == (T, H, W) and first.sam2_calls == T + 1 and first.strategy == "propagate:first"
    middle = seg.segment_video(_frames(), "x", strategy="propagate", keyframes="middle", propagator=propagator)
    assert middle.keyframes == [3]
    strided = seg.segment_video(_frames(), "x", strategy="propagate", keyframes="stride:2", propagator=propagator)
    assert strided.keyframes == [0, 2, 6] and strided.model_calls == 4  # frame 4's answer is empty: no prompt
    best = seg.segment_video(_frames(), "x", strategy="propagate", keyframes="best", candidates=4,
                             propagator=propagator)
    # candidates 0, 2, 4, 6: frame 4 is the most confident but empty, so frame 2 wins
    assert best.scores == {0: -2.0, 2: -0.5, 4: -0.1, 6: -1.0} and best.keyframes == [2]
    assert best.model_calls == 4 and propagator.calls[-1] == [2]


def test_no_target_on_any_keyframe_means_an_empty_video_without_sam2():
    propagator = FakePropagator()
    seg = Segmenter(FrameBackend(lambda f: _answer(set()), scores={}), CONFIG)
    for rule in ("first", "best", "stride:3"):
        result = seg.segment_video(_frames(), "x", strategy="propagate", keyframes=rule, propagator=propagator)
        assert not result.masks.any() and result.sources == ["empty"] * T and result.sam2_calls == 0
    assert propagator.calls == []


def test_bad_video_requests():
    seg = Segmenter(FrameBackend(lambda f: _answer(set())), CONFIG)
    with pytest.raises(ValueError, match="not both"):
        seg.segment_video(_frames(), "x", instruction="y")
    with pytest.raises(ValueError, match="needs a SAM2 model"):
        seg.segment_video(_frames(), "x", strategy="propagate")
    with pytest.raises(ValueError, match="--video-strategy"):
        seg.segment_video(_frames(), "x", strategy="optical-flow")
    with pytest.raises(ValueError, match="--frame-stride"):
        seg.segment_video(_frames(), "x", frame_stride=0)
    with pytest.raises(ValueError, match="no frames"):
        seg.segment_video([], "x")
    frames = _frames()
    frames[2] = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="frame 2: size 4x4"):
        seg.segment_video(frames, "x")


class DraftedBackend(FrameBackend):
    """Records the previous answer each frame was given (temporal drafts)."""

    def __init__(self, answers):
        super().__init__(answers)
        self.previous = {}

    def generate_batch(self, images, prompts, previous=None):
        out = super().generate_batch(images, prompts)
        for image, before in zip(images, previous or [None] * len(images)):
            self.previous[int(np.asarray(image)[0, 0, 0])] = before
        return [GeneratedText(a.text, a.tokens, a.forward_passes, a.seconds, ids=(int(np.asarray(i)[0, 0, 0]),))
                for a, i in zip(out, images)]


def test_per_frame_temporal_drafts_pass_the_previous_answer():
    backend = DraftedBackend(lambda k: _answer({(0, k % 4)}))
    seg = Segmenter(backend, CONFIG)
    seg.segment_video(_frames(), "x")
    # in order, each frame given its predecessor's answer (its token ids), the first none
    assert backend.asked == list(range(T)) and backend.previous == {0: None, **{k: [k - 1] for k in range(1, T)}}
    backend = DraftedBackend(lambda k: _answer({(0, k % 4)}))
    seg = Segmenter(backend, CONFIG)
    result = seg.segment_video(_frames(), "x", frame_stride=2, streams=2)
    # answered 0, 2, 4, 6 in two runs side by side: (0, 2) and (4, 6)
    assert backend.asked == [0, 4, 2, 6] and backend.previous == {0: None, 4: None, 2: [0], 6: [4]}
    assert result.keyframes == [0, 2, 4, 6]
    backend = DraftedBackend(lambda k: _answer({(0, k % 4)}))
    Segmenter(backend, CONFIG).segment_video(_frames(), "x", temporal_drafts=False)
    assert set(backend.previous.values()) == {None}
    with pytest.raises(ValueError, match="streams"):
        seg.segment_video(_frames(), "x", streams=0)


def test_temporal_drafts_same_masks_fewer_passes(tiny_model_dir):
    """The tiny model, fast decoding: per-frame with temporal drafts gives the answers of frame-by-frame
    decoding, in fewer forward passes on slowly changing frames."""
    seg = Segmenter.from_pretrained(tiny_model_dir, device="cpu", decoding="fast", max_new_tokens=48)
    rng = np.random.default_rng(2)
    first = rng.integers(0, 250, (32, 32, 3), dtype=np.uint8)
    frames = [first + k for k in range(3)]
    alone = seg.segment_video(frames, "the red circle", temporal_drafts=False)
    for streams in (2, 1):
        drafted = seg.segment_video(frames, "the red circle", streams=streams)
        assert drafted.texts == alone.texts and np.array_equal(drafted.masks, alone.masks)
        assert drafted.model_calls == alone.model_calls == 3
    assert drafted.forward_passes < alone.forward_passes


@pytest.mark.slow
def test_tiny_model_with_tiny_sam2_end_to_end(tiny_model_dir, tmp_path):
    from text4seg.refine.sam2_video import Sam2Propagator, build_tiny_sam2_video

    seg = Segmenter.from_pretrained(tiny_model_dir, device="cpu", max_new_tokens=40)
    propagator = Sam2Propagator.from_pretrained(build_tiny_sam2_video(tmp_path / "sam2"), device="cpu")
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(4)]
    per_frame = seg.segment_video(frames, "the red circle")
    assert per_frame.masks.shape == (4, 32, 32) and per_frame.model_calls == 4
    best = seg.segment_video(frames, "the red circle", strategy="propagate", keyframes="best", candidates=2,
                             propagator=propagator)
    assert best.masks.shape == (4, 32, 32) and set(best.scores) == {0, 3}
    assert all(score is None or score <= 0 for score in best.scores.values())


@pytest.mark.slow
def test_segment_video_command_writes_masks_overlay_and_result(tiny_model_dir, tmp_path, capsys):
    import json

    from PIL import Image

    from text4seg.cli import main
    from text4seg.refine.sam2_video import build_tiny_sam2_video
    from text4seg.video_io import write_mp4

    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(5)]
    video = write_mp4(tmp_path / "clip.mp4", frames, fps=5)
    out = tmp_path / "out"
    argv = ["segment-video", str(video), "the red circle", "--model", str(tiny_model_dir), "--out", str(out),
            "--device", "cpu", "--max-new-tokens", "30", "--frame-stride", "2", "--gif"]
    assert main(argv) == 0
    assert "5 frames (per-frame:2): 3 model answers" in capsys.readouterr().out
    record = json.loads((out / "result.json").read_text())
    assert [f["frame"] for f in record["per_frame"]] == [f"{k:05d}" for k in range(5)]
    assert [f["source"] for f in record["per_frame"]] == ["model", "nearest", "model", "nearest", "model"]
    assert record["fps"] == pytest.approx(5.0) and record["keyframes"] == ["00000", "00002", "00004"]  # frames 0, 2, 4
    for entry in record["per_frame"]:
        mask = np.asarray(Image.open(entry["mask_png"]))
        assert mask.shape == (32, 32) and set(np.unique(mask)) <= {0, 255}
    with Image.open(out / "overlay.gif") as gif:
        assert gif.n_frames == 5

    sam2 = build_tiny_sam2_video(tmp_path / "sam2")
    argv = ["segment-video", str(video), "the red circle", "--model", str(tiny_model_dir), "--out", str(out),
            "--device", "cpu", "--max-new-tokens", "30", "--video-strategy", "propagate", "--keyframes", "stride:3",
            "--sam2", str(sam2)]
    assert main(argv) == 0
    record = json.loads((out / "result.json").read_text())
    assert record["strategy"] == "propagate:stride:3" and record["model_calls"] == 2
    assert (out / "overlay.mp4").is_file()
    assert main(["segment-video", str(video), "x", "--model", str(tiny_model_dir), "--video-strategy",
                 "propagate"]) == 1
    assert "needs --sam2" in capsys.readouterr().err
    assert main(["segment-video", str(tmp_path / "none.mp4"), "x", "--model", str(tiny_model_dir)]) == 1
    assert "none.mp4" in capsys.readouterr().err
