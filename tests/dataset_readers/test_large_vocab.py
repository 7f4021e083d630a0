"""ADE20K-847 / PASCAL-Context-459: uint16 .tif label maps (65535 ignored), unique primary names, and
``eval semantic-seg --dataset ADE-847`` end to end with ids past 255."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_data import write_image
from PIL import Image

from text4seg.config import Text4SegConfig
from text4seg.decoding import GeneratedText
from text4seg.segmenter import Segmenter


def _names(num: int) -> list[str]:
    lines = [f"class {k}" for k in range(num)]
    lines[0], lines[1], lines[2] = "bag", "bag, handbag, pocketbook", "bag, traveling bag"
    lines[3], lines[4] = "pot", "pot, flowerpot"
    lines[-1] = "zebra crossing, crosswalk"
    return lines


def make_ade847_layout(root, split="validation"):
    base = root / "ADE20K_2021_17_01"
    (base / "annotations_detectron2" / split).mkdir(parents=True)
    (base / "class_names.txt").write_text("\n".join(_names(847)) + "\n")
    raw = np.zeros((8, 8), dtype=np.uint16)
    raw[:, :4] = 846
    raw[4:, 4:] = 65535
    Image.fromarray(raw).save(base / "annotations_detectron2" / split / "ADE_val_1.tif")
    write_image(base / "images_detectron2" / split / "ADE_val_1.jpg", 8, 8)
    return raw


def test_ade847_reader(tmp_path):
    from text4seg.datasets import read_semantic
    from text4seg.datasets.large_vocab import large_vocab_class_names

    make_ade847_layout(tmp_path)
    (sample,) = read_semantic("ade847", tmp_path, "val")
    assert sample.image == "ADE20K_2021_17_01/images_detectron2/validation/ADE_val_1.jpg"
    assert sample.label_map.dtype == np.int64 and sample.label_map[0, 0] == 847 and sample.label_map[0, 7] == 1
    assert sample.label_map[7, 7] == 65535
    assert len(sample.class_names) == 848 and sample.class_names[:6] == [
        "others", "bag", "bag (handbag)", "bag (traveling bag)", "pot", "pot (flowerpot)"]
    _, synonyms = large_vocab_class_names(tmp_path, "ade847")
    assert synonyms["handbag"] == "bag (handbag)" and synonyms["crosswalk"] == "zebra crossing"


def test_large_vocab_errors(tmp_path):
    from text4seg.datasets import read_semantic

    with pytest.raises(FileNotFoundError, match="class_names.txt not found: pc459 needs its 459 class names"):
        list(read_semantic("pc459", tmp_path, "val"))
    make_ade847_layout(tmp_path)
    (tmp_path / "ADE20K_2021_17_01" / "class_names.txt").write_text("a\nb\n")
    with pytest.raises(ValueError, match="2 classes, ade847 has 847"):
        list(read_semantic("ade847", tmp_path, "val"))


class _Backend:
    def __init__(self, text):
        self.text = text

    def generate(self, image, prompts):
        return [GeneratedText(self.text, 4, 1, 0.0) for _ in prompts]


def test_eval_semantic_ade847_exact(tmp_path):
    from text4seg.evaluation import evaluate

    make_ade847_layout(tmp_path)
    # left column zebra crossing (id 847, right), top right "traveling bag" (id 3) where the truth is bag (id 1),
    # bottom right a synonym on ignored pixels
    answer = "<seg>zebra crossing| bag (traveling bag)\n crosswalk| handbag\n</seg>"
    seg = Segmenter(_Backend(answer), Text4SegConfig(grid=(2, 2), descriptor_form="plain"))
    scores = evaluate("semantic-seg", dataset="ADE-847", data_root=tmp_path, split="validation",
                      out=tmp_path / "run", segmenter=seg, progress=False)
    assert scores["dataset"] == "ade847"
    assert scores["coarse"]["miou"] == pytest.approx(1 / 3)  # zebra crossing 1, bag 0, bag (traveling bag) 0
    assert scores["coarse"]["pixel_accuracy"] == pytest.approx(32 / 48)
    assert scores["per_class_iou"]["coarse"]["zebra crossing"] == 1.0
    assert scores["repaired_samples"] == 0


class _ChunkBackend:
    """Answers each chunk prompt (found by its first class) with a known grid and known label scores."""

    def __init__(self, answers, scores):
        self.answers, self.scores, self.prompts = answers, scores, []

    def _first(self, prompt):
        return prompt.split(": ", 1)[1].split(", ")[0].rstrip(".")

    def generate(self, image, prompts):
        self.prompts.extend(prompts)
        return [GeneratedText(self.answers[self._first(p)], 4, 1, 0.0) for p in prompts]

    def label_scores(self, images, prompts, answers):
        return [self.scores[self._first(p)] for p in prompts]


def test_eval_semantic_ade847_class_chunks_exact(tmp_path):
    import json

    from text4seg.evaluation import evaluate

    make_ade847_layout(tmp_path)
    names = [f"class {k}" for k in range(847)]
    names[:6] = ["bag", "bag (handbag)", "bag (traveling bag)", "pot", "pot (flowerpot)", "class 5"]
    names[-1] = "zebra crossing"
    # chunks of 300: classes 1-300 (first "bag"), 301-600 ("class 300"), 601-847 ("class 600")
    answers = {"bag": "<seg>bag| bag (traveling bag)\n others| handbag\n</seg>",
               "class 300": "<seg>class 400| others\n others| others\n</seg>",
               "class 600": "<seg>zebra crossing| others\n crosswalk| others\n</seg>"}
    scores = {"bag": {"bag": -0.7, "bag (traveling bag)": -0.6, "handbag": -0.2, "others": -0.01},
              "class 300": {"class 400": -0.9, "others": -0.01},
              "class 600": {"zebra crossing": -0.5, "crosswalk": -0.1, "others": -0.01}}
    backend = _ChunkBackend(answers, scores)
    seg = Segmenter(backend, Text4SegConfig(grid=(2, 2), descriptor_form="plain"))
    scores_out = evaluate("semantic-seg", dataset="ADE-847", data_root=tmp_path, split="validation",
                          out=tmp_path / "run", segmenter=seg, progress=False, class_chunk=300)
    listed = [p.split(": ", 1)[1].rstrip(".").split(", ") for p in backend.prompts]
    assert [len(c) for c in listed] == [300, 300, 247] and sum(listed, []) == names
    # merged: top left zebra crossing (-0.5 beats bag -0.7 and class 400 -0.9), top right bag (traveling bag)
    # (the only class named there; truth: bag), bottom left "crosswalk" (a synonym: the segmenter's class list
    # does not know it, so it ranks as unknown, yet it is the only label there and the dataset map reads it as
    # zebra crossing), bottom right handbag on ignored pixels
    assert scores_out["coarse"]["miou"] == pytest.approx(1 / 3)
    assert scores_out["coarse"]["pixel_accuracy"] == pytest.approx(32 / 48)
    assert scores_out["per_class_iou"]["coarse"]["zebra crossing"] == 1.0
    assert scores_out["settings"]["class_chunk"] == 300 and scores_out["repaired_samples"] == 0
    (record,) = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert [c["classes"] for c in record["chunks"]] == [300, 300, 247]
    assert [c["text"] for c in record["chunks"]] == list(answers.values())
    assert record["text"] == "<seg>zebra crossing| bag (traveling bag)\n crosswalk| handbag\n</seg>"
    for changed in (200, 0):
        with pytest.raises(ValueError, match="class_chunk=300"):
            evaluate("semantic-seg", dataset="ADE-847", data_root=tmp_path, split="validation",
                     out=tmp_path / "run", segmenter=seg, progress=False, class_chunk=changed)
    with pytest.raises(ValueError, match="class_chunk -1"):
        evaluate("semantic-seg", dataset="ADE-847", data_root=tmp_path, out=tmp_path / "x", segmenter=seg,
                 class_chunk=-1)
    with pytest.raises(ValueError, match="applies to the class-list tasks"):
        evaluate("refer-seg", data_root=tmp_path, out=tmp_path / "y", segmenter=seg, class_chunk=10)


@pytest.mark.slow
def test_eval_ade847_class_chunks_on_the_tiny_model(tmp_path):
    import json

    from text4seg.datasets.large_vocab import large_vocab_class_names
    from text4seg.descriptors import decode_descriptor
    from text4seg.evaluation import evaluate
    from text4seg.modeling import build_tiny_model
    from text4seg.prompts import semantic_question

    make_ade847_layout(tmp_path / "data")
    names = large_vocab_class_names(tmp_path / "data", "ade847")[0][1:]
    model = build_tiny_model(tmp_path / "model", texts=[semantic_question(names[:100])], labels=names, grid=4,
                             patch_size=4, vision_hidden=32, vision_layers=1, text_hidden=64, text_layers=2, heads=2,
                             mlp_ratio=2, vocab_size=400, max_positions=4096, seed=0, descriptor_form="plain")
    seg = Segmenter.from_pretrained(model, decoding="fast", device="cpu")
    scores = evaluate("semantic-seg", dataset="ADE-847", data_root=tmp_path / "data", split="validation",
                      out=tmp_path / "run", segmenter=seg, progress=False, class_chunk=300)
    assert scores["settings"]["class_chunk"] == 300 and scores["samples"] == 1
    assert 0.0 <= scores["coarse"]["miou"] <= 1.0
    (record,) = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert [c["classes"] for c in record["chunks"]] == [300, 300, 247]
    for k, chunk in enumerate(record["chunks"]):
        labels = set(decode_descriptor(chunk["text"], 4, 4).labels.ravel())
        assert labels <= {*names[300 * k : 300 * (k + 1)], "others"}  # each chunk answers from its own list
    merged = set(decode_descriptor(record["text"], 4, 4).labels.ravel())
    assert merged <= {*names, "others"}
