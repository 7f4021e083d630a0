"""`eval rvos` with the video strategies: keyframes + SAM2 propagation, and context frames."""

from __future__ import annotations

import numpy as np
import pytest
from test_video_evaluation import answer_for, image_key, run, synthetic_videos

from text4seg.config import Text4SegConfig
from text4seg.decoding import GeneratedText
from text4seg.images import load_image
from text4seg.segmenter import Segmenter


class ContextStub:
    """Answers with the ground truth of the LAST image of each prompt; records how many images it was shown."""

    def __init__(self, masks):
        self.masks, self.shown = masks, []

    def generate(self, image, prompts):
        frames = image if isinstance(image, list) else [image]
        self.shown.append(len(frames))
        key = image_key(frames[-1])
        return [GeneratedText(answer_for(self.masks[key, p[len("Segment "):-1]]), tokens=1, forward_passes=1,
                              seconds=0.0) for p in prompts]


def _stub(root, samples):
    masks = {}
    for s in samples:
        for i, path in enumerate(s.frame_paths):
            masks[image_key(load_image(root / path)), s.expression] = s.mask(i)
    config = Text4SegConfig(grid=(16, 16), question_template="Segment {expression}.", descriptor_form="plain")
    return Segmenter(ContextStub(masks), config)


def test_context_frames_show_earlier_frames_and_score_the_target(tmp_path):
    root = tmp_path / "data"
    samples = synthetic_videos(root, num_videos=1, num_frames=4)
    segmenter = _stub(root, samples)
    scores = run("rvos", root, tmp_path / "out", segmenter, dataset="synthetic-video", context_frames=2)
    assert (scores["j"], scores["f"]) == (1.0, 1.0) and scores["context_frames"] == 2
    assert set(segmenter.backend.shown) == {3} and len(segmenter.backend.shown) == 4 * len(samples)
    assert scores["settings"]["strategy"] == "per-frame"


def test_strategy_options_are_checked(tmp_path):
    root = tmp_path / "data"
    samples = synthetic_videos(root, num_videos=1, num_frames=3)
    with pytest.raises(ValueError, match="needs --sam2"):
        run("rvos", root, tmp_path / "a", _stub(root, samples), dataset="synthetic-video", video_strategy="propagate")
    with pytest.raises(ValueError, match="--keyframes"):
        run("rvos", root, tmp_path / "b", _stub(root, samples), dataset="synthetic-video",
            video_strategy="propagate", keyframes="last", sam2="x")
    with pytest.raises(ValueError, match="apply to the video tasks"):
        run("synthetic", root, tmp_path / "c", _stub(root, samples), context_frames=1)


@pytest.mark.slow
def test_propagate_strategy_records_keyframes_and_sam2_calls(tmp_path):
    from text4seg.evaluation.records import read_records
    from text4seg.refine.sam2_video import build_tiny_sam2_video

    root = tmp_path / "data"
    samples = synthetic_videos(root, num_videos=1, num_frames=4)
    sam2 = build_tiny_sam2_video(tmp_path / "sam2")
    segmenter = _stub(root, samples)
    scores = run("rvos", root, tmp_path / "out", segmenter, dataset="synthetic-video", video_strategy="propagate",
                 keyframes="stride:2", sam2=str(sam2))
    assert scores["strategy"] == "propagate:stride:2" and scores["settings"]["sam2"] == str(sam2)
    records = read_records(tmp_path / "out" / "samples.jsonl")
    assert len(records) == len(samples)
    for record, sample in zip(records, samples):
        assert record["segmented"] == 2  # frames 0 and 2 answered by the model
        expected = [name for k, name in enumerate(sample.frame_names) if k in (0, 2) and sample.mask(k).any()]
        assert record["keyframes"] == expected
        assert (record["sam2_calls"] > 0) == bool(expected)
    assert 0.0 <= scores["jf"] <= 1.0 and np.isfinite(scores["jf"])


def test_a_second_video_evaluation_on_the_same_folder_is_refused(tmp_path):
    from text4seg.evaluation.lock import RunLock

    root = tmp_path / "data"
    samples = synthetic_videos(root, num_videos=1, num_frames=2)
    out = tmp_path / "out"
    out.mkdir()
    with RunLock(out, 0):
        with pytest.raises(ValueError, match="another evaluation"):
            run("rvos", root, out, _stub(root, samples), dataset="synthetic-video")
    assert run("rvos", root, out, _stub(root, samples), dataset="synthetic-video")["j"] == 1.0
