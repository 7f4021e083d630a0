"""The ``gcg`` builder on GranD-f sets in their released formats: exact items, painting order, vanished phrases."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gcg_fixtures import make_grandf_layout

from text4seg.grounded import decode_grounded
from text4seg.prompts import GCG_QUESTIONS


@pytest.fixture()
def grandf(tmp_path):
    return make_grandf_layout(tmp_path / "data")["root"]


def _build(root, out, *args):
    from data_builders.__main__ import main

    return main(["gcg", "--data-root", str(root), "--out", str(out), "--grid", "4", "--quiet", *args])


def test_gcg_builder_exact_items(grandf, tmp_path, capsys):
    out = tmp_path / "ha.json"
    assert _build(grandf, out, "--dataset", "grandf-ha", "--question-index", "2") == 0
    (item,) = json.loads(out.read_text())
    assert item == {"id": "gcg_grandf-ha_train_0", "image": "GranDf/GranDf_HA_images/train/sa_1.jpg", "height": 8,
                    "width": 8, "conversations": [
                        {"from": "human", "value": "<image>\n" + GCG_QUESTIONS[2]},
                        # the racket (8 px) is painted over the man (32 px): smaller phrases stay visible
                        {"from": "gpt", "value": "<p>A man</p> holds <p>a red racket</p>.\n<seg>A man *2| others *2\n"
                         " A man *1| a red racket *2| others *1\n A man *2| others *2\n A man *2| others *2\n</seg>"}]}
    answer = decode_grounded(item["conversations"][1]["value"], 4, 4)
    assert answer.repairs == [] and [(p.text, p.cells) for p in answer.phrases] == [("A man", 7), ("a red racket", 2)]
    line = capsys.readouterr().out
    assert "gcg: 1 items, 1 rounds" in line and "no grounded phrase: 1" in line


def test_gcg_builder_leaves_vanished_phrases_unmarked(grandf, tmp_path, capsys):
    out = tmp_path / "flickr.json"
    assert _build(grandf, out, "--dataset", "flickr30k", "--question-index", "0", "--no-rle") == 0
    (item,) = json.loads(out.read_text())
    assert item["conversations"][1]["value"] == (  # the 1-pixel ball falls between the grid's sample points
        "<p>Two dogs</p> play with a ball .\n<seg>Two dogs| Two dogs| others| others\n Two dogs| Two dogs| others| "
        "others\n Two dogs| others| others| others\n Two dogs| others| others| others\n</seg>")
    assert "1 unmarked phrases (no cell on the grid)" in capsys.readouterr().out
    assert _build(grandf, out, "--dataset", "flickr30k", "--downsample", "area", "--question-index", "0") == 0
    (item,) = json.loads(out.read_text())
    assert item["conversations"][1]["value"].startswith("<p>Two dogs</p> play with <p>a ball</p> .\n")


def test_gcg_builder_all_sets_seeded_and_deterministic(grandf, tmp_path, capsys):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    assert _build(grandf, first, "--split", "val", "--seed", "3") == 0
    assert "1 sets without annotations (flickr30k)" in capsys.readouterr().out
    assert _build(grandf, second, "--split", "val", "--seed", "3") == 0
    items = json.loads(first.read_text())
    assert first.read_bytes() == second.read_bytes()
    assert [i["id"] for i in items] == ["gcg_psg_val_0", "gcg_refcocog_val_0"]
    assert all(i["conversations"][0]["value"].removeprefix("<image>\n") in GCG_QUESTIONS for i in items)
    refcocog = decode_grounded(items[1]["conversations"][1]["value"], 4, 4, out_hw=(8, 10))
    assert refcocog.marked_caption == "<p>The woman in red holding</p> <p>an umbrella</p>."
    assert np.array_equal(refcocog.phrases[1].mask[:, 0], [True] * 2 + [False] * 6)


def test_gcg_builder_errors(grandf, tmp_path, capsys):
    out = tmp_path / "x.json"
    assert _build(grandf, out, "--dataset", "psg", "--split", "train") == 1
    assert "OpenPsgGCG_train.json not found" in capsys.readouterr().err and not out.exists()
    assert _build(grandf, out, "--dataset", "grandf-ha", "--strict") == 1
    assert "no grounded phrase" in capsys.readouterr().err and not out.exists()
