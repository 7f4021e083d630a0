"""Instance-aware descriptors: ``{class} {k}`` labels -> one mask per instance, the Segmenter's instance mode,
the constrained labels, gRefCOCO instance labels and per-label scores."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from fixtures_data import make_grefcoco_layout

from text4seg.config import Text4SegConfig
from text4seg.decoding import GeneratedText
from text4seg.decoding.labels import MAX_INSTANCES, allowed_labels, instance_labels
from text4seg.descriptors import (
    decode_descriptor,
    instance_label,
    instances_from_grid,
    label_spans,
    split_instance_label,
)
from text4seg.segmenter import Segmenter

ANSWER = "Sure.\n<seg>others *1| person 1 *2| sky *1\n person 2 *3| others *1\n</seg>"


def test_instances_from_grid_one_mask_per_label():
    grid = decode_descriptor(ANSWER, 2, 4).labels
    found, unknown = instances_from_grid(grid, ["person", "sky"], (4, 8))
    assert unknown == []
    assert [(i.label, i.class_name, i.class_id, i.number, i.cells) for i in found] == [
        ("person 1", "person", 0, 1, 2), ("person 2", "person", 0, 2, 3), ("sky", "sky", 1, None, 1)]
    expected = np.zeros((4, 8), dtype=bool)
    expected[:2, 2:6] = True
    assert np.array_equal(found[0].mask, expected)
    assert np.array_equal(found[1].mask, np.pad(np.ones((2, 6), bool), ((2, 0), (0, 2))))
    assert found[2].mask.sum() == 4 and found[2].mask[0, 6:].all()
    assert not (found[0].mask & found[1].mask).any()


def test_instances_unknown_labels_case_and_caps():
    grid = np.array([["Person 1", "person  1", "dog 3", "person 12"]], dtype=object)
    found, unknown = instances_from_grid(grid, ["person"], (1, 4), max_instances=10)
    assert [(i.label, i.number, i.cells) for i in found] == [("Person 1", 1, 2)]  # one instance, two spellings
    assert unknown == ["dog 3", "person 12"]
    assert split_instance_label("Person 12", ["person"]) == ("person", 12)
    assert split_instance_label("t 2", ["t 2"]) == ("t 2", None)  # a class name ending in a number
    assert split_instance_label("others", ["person"]) is None
    assert instance_label("traffic light", 3) == "traffic light 3"
    with pytest.raises(ValueError, match="instance number 0"):
        instance_label("person", 0)
    found, unknown = instances_from_grid(np.full((2, 2), "others", dtype=object), ["person"], (4, 4))
    assert found == [] and unknown == []


def test_label_spans_skip_counts():
    spans = label_spans(ANSWER)
    assert [ANSWER[a:b] for _, a, b in spans] == ["others", "person 1", "sky", "person 2", "others"]
    assert [label for label, _, _ in spans] == ["others", "person 1", "sky", "person 2", "others"]
    assert label_spans("no seg") == []


def test_allowed_labels_of_instance_prompts():
    config = Text4SegConfig(grid=(4, 4))
    seg = Segmenter(None, config)
    labels = allowed_labels(seg.instance_prompt(["person", "sky"]), config, max_instances=2)
    assert labels == ["person", "person 1", "person 2", "sky", "sky 1", "sky 2", "others"]
    assert len(allowed_labels(seg.instance_prompt(["cat"]), config)) == MAX_INSTANCES + 2
    assert allowed_labels(seg.semantic_prompt(["person", "sky"]), config) == ["person", "sky", "others"]
    assert instance_labels(["a"], 1) == ["a", "a 1"]


class _Backend:
    def __init__(self, text, scores=None):
        self.text, self.scores, self.asked = text, scores, []

    def generate(self, image, prompts):
        self.asked.extend(prompts)
        return [GeneratedText(self.text, 10, 1, 0.1) for _ in prompts]


class _ScoringBackend(_Backend):
    def label_scores(self, images, prompts, answers):
        assert answers == [self.text]
        return [self.scores]


def test_segmenter_instances_with_scores():
    config = Text4SegConfig(grid=(2, 4))
    backend = _ScoringBackend(ANSWER, {"person 1": -0.5, "person 2": -1.0, "others": -0.1})
    res = Segmenter(backend, config).segment(np.zeros((4, 8, 3), np.uint8), classes=["person", "sky"],
                                             instances=True)
    assert backend.asked == ["Segment whichever of these classes appear in the image: person, sky."]
    assert [(i.label, i.score) for i in res.instances] == [
        ("person 1", pytest.approx(math.exp(-0.5))), ("person 2", pytest.approx(math.exp(-1.0))), ("sky", None)]
    assert res.mask.dtype == np.int64 and res.mask[0].tolist() == [0, 0, 1, 1, 1, 1, 3, 3]
    assert res.mask[3].tolist() == [2, 2, 2, 2, 2, 2, 0, 0]
    plain = Segmenter(_Backend("<seg>cat 1 *4\n others *4\n</seg>"), config).segment(
        np.zeros((2, 4, 3), np.uint8), classes=["person"], instances=True)
    assert plain.instances == [] and plain.repairs == ["unknown label 'cat 1': no instance"]
    with pytest.raises(ValueError, match="instances=True needs classes"):
        Segmenter(_Backend(""), config).segment(np.zeros((2, 2, 3), np.uint8), "x", instances=True)


def test_grefcoco_instance_labels(tmp_path):
    from data_builders import grefcoco

    make_grefcoco_layout(tmp_path)
    out = tmp_path / "g.json"
    grefcoco.build(str(tmp_path), str(out), split="val", grid=4, rounds=1, repeat=1, question_index=0,
                   answer_index=0, quiet=True, instance_labels=True)
    items = json.loads(out.read_text())
    answers = [item["conversations"][1]["value"] for item in items]
    b1, b2 = "both blocks 1", "both blocks 2"
    assert answers[1].endswith(f"<seg>{b1} *2| others *2\n {b1} *2| others *2\n others *2| {b2} *2\n"
                               f" others *2| {b2} *2\n</seg>")
    assert "top left block 1 *2" in answers[0] and "others *4\n others *4\n others *4\n others *4" in answers[2]
    grid = decode_descriptor(answers[1], 4, 4).labels
    found, _ = instances_from_grid(grid, ["both blocks"], (32, 32))
    assert [i.label for i in found] == [b1, b2] and [int(i.mask.sum()) for i in found] == [256, 256]


@pytest.mark.slow
def test_label_scores_on_the_tiny_model(tiny_model_dir, tiny_data):
    from text4seg.decoding import HFGenerationBackend
    from text4seg.images import load_image
    from text4seg.modeling import load_model

    loaded = load_model(tiny_model_dir, device="cpu")
    backend = HFGenerationBackend(loaded.model, loaded.processor, loaded.config, decoding="plain", max_new_tokens=8)
    image = load_image(tiny_data.root / tiny_data.samples[0].image)
    prompt = "Segment whichever of these classes appear in the image: circle."
    h, w = loaded.config.grid
    answer = "Sure.\n<seg>" + "\n ".join([f"circle 1 *{w}"] + [f"others *{w}"] * (h - 1)) + "\n</seg>"
    (scores,) = backend.label_scores([image], [prompt], [answer])
    assert sorted(scores) == ["circle 1", "others"]
    assert all(v <= 0 and math.isfinite(v) for v in scores.values())
    assert backend.label_scores([image], [prompt], ["nothing"]) == [{}]
    seg = Segmenter(backend, loaded.config)
    res = seg.segment(image, classes=["circle"], instances=True)
    assert all(i.score is None or 0 < i.score <= 1 for i in res.instances)


@pytest.mark.slow
def test_instance_prompts_under_constrained_and_fast_decoding(tiny_model_dir, tiny_data):
    """The grammar modes answer an instance-aware prompt with listed labels only, token-identically."""
    from text4seg.decoding import HFGenerationBackend
    from text4seg.images import load_image
    from text4seg.modeling import load_model

    loaded = load_model(tiny_model_dir, device="cpu")
    image = load_image(tiny_data.root / tiny_data.samples[0].image)
    classes = ["circle", "red square"]
    allowed = set(instance_labels(classes)) | {loaded.config.background}
    answers = {}
    for mode in ("constrained", "fast"):
        backend = HFGenerationBackend(loaded.model, loaded.processor, loaded.config, decoding=mode)
        res = Segmenter(backend, loaded.config).segment(image, classes=classes, instances=True)
        assert res.repairs == []
        assert set(np.unique(res.grid.astype(str))) <= allowed
        assert sum(int(i.mask.sum()) for i in res.instances) == int((res.mask > 0).sum())
        answers[mode] = (res.token_ids, res.forward_passes)
    assert answers["constrained"][0] == answers["fast"][0]
    assert answers["fast"][1] <= answers["constrained"][1]
