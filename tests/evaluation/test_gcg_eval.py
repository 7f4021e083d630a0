"""``eval gcg`` end to end on a GranD-f val split with a stub segmenter: exact METEOR/CIDEr, AP50, mIoU, recall,
GLaMM-format predictions, resume, and the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gcg_fixtures import make_grandf_layout

from text4seg.datasets.coco_masks import decode_rle
from text4seg.grounded import decode_grounded

ANSWERS = [
    "A <p>man</p> holds a <p>racket</p>.\n<seg>man *2| racket *2\n man *2| others *2\n man *2| others *2\n"
    " others *4\n</seg>",
    # "tree" gets no cell: an empty mask, a false positive for AP50
    "A <p>tree</p> shades a <p>cat</p> on the <p>lawn</p>.\n<seg>others *4\n others *4\n cat *2| lawn *2\n"
    " cat *2| lawn *2\n</seg>",
]


class StubSegmenter:
    """``ground_many`` answering fixed texts in order (a 4 x 4 grid upsampled to the image)."""

    def __init__(self, answers):
        self.answers, self.calls = list(answers), []

    def ground_many(self, images, instruction=None):
        self.calls.append((len(images), instruction))
        out = []
        for image in images:
            if not self.answers:
                raise AssertionError("asked more images than expected")
            out.append(decode_grounded(self.answers.pop(0), 4, 4, out_hw=(image.height, image.width)))
        return out


@pytest.fixture()
def grandf(tmp_path):
    return make_grandf_layout(tmp_path / "data")["root"]


@pytest.fixture()
def no_java(monkeypatch):
    import text4seg.gcg_metrics as metrics

    monkeypatch.setattr(metrics, "_java_missing", lambda: "java not found on the PATH (test)")


def test_eval_gcg_exact_scores_predictions_and_resume(grandf, tmp_path, no_java):
    from text4seg.evaluation import evaluate

    stub = StubSegmenter(ANSWERS)
    out = tmp_path / "run"
    scores = evaluate("gcg", data_root=grandf, split="val", out=out, segmenter=stub, batch_size=2, progress=False)
    assert stub.calls == [(2, None)]
    c = scores["coarse"]
    # sa_a: man IoU 24/32, racket 8/16 -> 0.625; sa_b: cat = dog and lawn = grass exactly -> 1
    assert c["miou"] == pytest.approx((0.625 + 1.0) / 2)
    # sa_a: both pairs pass (IoU >= 0.5, "A man"~"man" = 1/sqrt 2); sa_b: the best pair (dog, cat) has
    # similarity 0, which ends the image -> 2 of 4
    assert c["recall"] == 0.5
    # detections in order TP TP | FP TP TP (all score 1): precision 1 up to recall 0.5 (51 of 101 points),
    # then 4/5 (50 points)
    assert c["ap50"] == pytest.approx(91 / 101)
    # CIDEr over these two images as the metric computes it (hand-checked cases: tests/test_gcg_metrics.py)
    from text4seg.gcg_metrics import caption_scores

    expected = caption_scores({"0": ["A man holds a racket."], "1": ["A dog on the grass."]},
                              {"0": "A man holds a racket.", "1": "A tree shades a cat on the lawn."})
    assert c["cider"] == expected["cider"] and c["meteor"] is None
    g = scores["gcg"]
    assert (g["images"], g["gt_phrases"], g["pred_phrases"], g["true_positives"]) == (2, 4, 5, 2)
    assert g["similarity"] == "bag-of-words cosine (lower-cased \\w+ tokens)" and g["tokenizer"] == "simple"
    assert g["meteor_note"] == "skipped: java not found on the PATH (test)"
    pred = json.loads((out / "predictions" / "sa_b.json").read_text())
    assert (pred["image_id"], pred["caption"], pred["phrases"]) == (
        "sa_b", "A tree shades a cat on the lawn.", ["tree", "cat", "lawn"])
    masks = [decode_rle(r) for r in pred["pred_masks"]]
    assert [int(m.sum()) for m in masks] == [0, 16, 16] and masks[1][4:, :4].all()
    assert json.loads((out / "scores.json").read_text())["coarse"] == c
    table = (out / "scores.md").read_text()
    assert "| val (gcg) | samples | METEOR | CIDEr | AP50 | mIoU | Recall |" in table.replace("grandf ", "")
    assert "| coarse | 2 | - |" in table and "| 90.10 | 81.25 | 50.00 |" in table
    again = evaluate("gcg", data_root=grandf, split="val", out=out, segmenter=StubSegmenter([]), progress=False)
    assert again["coarse"] == c  # resumed from samples.jsonl: nothing asked


def test_eval_gcg_limit_and_question_index(grandf, tmp_path, no_java):
    from text4seg.evaluation import evaluate
    from text4seg.prompts import GCG_QUESTIONS

    stub = StubSegmenter(ANSWERS[:1])
    scores = evaluate("gcg", data_root=grandf, split="val", out=tmp_path / "one", segmenter=stub, limit=1,
                      question_index=1, progress=False)
    assert stub.calls == [(1, GCG_QUESTIONS[1])]
    assert scores["coarse"]["miou"] == 0.625 and scores["coarse"]["recall"] == 1.0
    assert scores["coarse"]["ap50"] == pytest.approx(1.0)


def test_eval_gcg_errors(grandf, tmp_path):
    from text4seg.evaluation import evaluate

    with pytest.raises(ValueError, match="--refiner is not supported"):
        evaluate("gcg", data_root=grandf, out=tmp_path / "r", refiner="sam", segmenter=StubSegmenter([]))
    with pytest.raises(ValueError, match="expected one of val, test"):
        evaluate("gcg", data_root=grandf, split="train", out=tmp_path / "r", segmenter=StubSegmenter([]))
    with pytest.raises(ValueError, match="--similarity-model applies to gcg"):
        evaluate("synthetic", similarity_model="bert", segmenter=StubSegmenter([]))
    with pytest.raises(FileNotFoundError, match="similarity model directory"):
        evaluate("gcg", data_root=grandf, out=tmp_path / "r", similarity_model=tmp_path / "none",
                 segmenter=StubSegmenter([]))

    class Small(StubSegmenter):
        def ground_many(self, images, instruction=None):
            return [decode_grounded(ANSWERS[0], 4, 4, out_hw=(4, 4)) for _ in images]

    with pytest.raises(ValueError, match=r"decodes to \(4, 4\) .*annotation \(8, 8\)"):
        evaluate("gcg", data_root=grandf, out=tmp_path / "s", segmenter=Small([]), progress=False)


def test_eval_gcg_cli(grandf, tmp_path, monkeypatch, capsys, no_java):
    import text4seg.evaluation.runner as runner
    from text4seg.cli import main

    seen = {}

    def build(model, adapter, load, decoding, device):
        seen["model"] = model
        return StubSegmenter(ANSWERS)

    monkeypatch.setattr(runner, "_build_segmenter", build)
    out = tmp_path / "cli"
    assert main(["eval", "gcg", "--model", "m", "--data-root", str(grandf), "--split", "val", "--out", str(out)]) == 0
    assert seen == {"model": "m"}
    printed = capsys.readouterr().out
    assert "| METEOR | CIDEr | AP50 | mIoU | Recall |" in printed and "81.25" in printed
    assert sorted(p.name for p in (out / "predictions").iterdir()) == ["sa_a.json", "sa_b.json"]
    assert main(["eval", "gcg", "--model", "m", "--data-root", str(grandf), "--out", str(tmp_path / "x"),
                 "--similarity-model", str(tmp_path / "nowhere")]) == 1
    assert "similarity model directory" in capsys.readouterr().err
    assert np.isclose(json.loads((out / "scores.json").read_text())["coarse"]["recall"], 0.5)
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    assert "--similarity-model DIR" in capsys.readouterr().out


@pytest.mark.slow
def test_eval_gcg_with_the_tiny_model(grandf, tmp_path, tiny_model_dir, no_java, capsys):
    """The real path: ``text4seg eval gcg`` loads the tiny model, ``Segmenter.ground_many`` answers under the
    grounded-caption grammar, and every answer parses without repair into GLaMM-format predictions."""
    from text4seg.cli import main
    from text4seg.evaluation.records import read_records

    out = tmp_path / "tiny"
    code = main(["eval", "gcg", "--model", str(tiny_model_dir), "--device", "cpu", "--data-root", str(grandf),
                 "--split", "val", "--out", str(out), "--decoding", "fast", "--max-caption-tokens", "8",
                 "--batch-size", "2"])
    assert code == 0, capsys.readouterr().err
    records = read_records(out / "samples.jsonl")
    assert len(records) == 2 and all(r["repairs"] == [] for r in records)
    for record in records:
        pred = json.loads((out / "predictions" / f"{record['image_id']}.json").read_text())
        assert len(pred["phrases"]) == len(pred["pred_masks"])
        assert decode_grounded(record["text"], 8, 8).caption == pred["caption"]
    scores = json.loads((out / "scores.json").read_text())
    assert scores["gcg"]["images"] == 2 and 0.0 <= scores["coarse"]["miou"] <= 1.0


def test_eval_gcg_refuses_options_it_does_not_use(grandf, tmp_path):
    from text4seg.evaluation import evaluate

    for option, value in (("save_vis", 2), ("expressions", "first"), ("frame_stride", 2), ("save_masks", True),
                          ("question_template", "Describe {expression}.")):
        flag = "--" + option.replace("_", "-")
        with pytest.raises(ValueError, match=f"task gcg: {flag} does not apply"):
            evaluate("gcg", data_root=grandf, out=tmp_path / "r", segmenter=StubSegmenter([]), **{option: value})
    with pytest.raises(ValueError, match="task panoptic: --batch-size does not apply"):
        evaluate("panoptic", data_root=grandf, out=tmp_path / "p", segmenter=StubSegmenter([]), batch_size=4)
