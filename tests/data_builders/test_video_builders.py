"""Video builders: per-frame referring items in the Text4Seg JSON format, from each benchmark's layout."""

from __future__ import annotations

import json
import random

import pytest
from video_fixtures import RV_VID, make_davis, make_mevis, make_revos, make_ytvos, write_json

from data_builders import BUILDERS
from data_builders.__main__ import main
from data_builders.video import VIDEO_BUILDERS, build, sample_frames
from text4seg.prompts import ANSWER_SENTENCES, REFERRING_QUESTIONS

Q0, A0 = REFERRING_QUESTIONS[0], ANSWER_SENTENCES[0]
FIXED = {"question_index": 0, "answer_index": 0, "quiet": True}


def _load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def _qa(item):
    conv = item["conversations"]
    assert [t["from"] for t in conv] == ["human", "gpt"]
    return conv[0]["value"], conv[1]["value"]


def test_registered_builders():
    assert {name: BUILDERS[name] for name in VIDEO_BUILDERS} == {
        name: ("data_builders.video", {"dataset": dataset}) for name, dataset in VIDEO_BUILDERS.items()}


def test_sample_frames_uniform_distinct_sorted():
    rng = random.Random(0)
    assert sample_frames(3, 4, rng) == [0, 1, 2]
    picks = [tuple(sample_frames(10, 4, rng)) for _ in range(400)]
    assert all(len(set(p)) == 4 and list(p) == sorted(p) for p in picks)
    counts = [sum(f in p for p in picks) for f in range(10)]
    assert min(counts) > 100 and max(counts) < 220  # each frame expected 160 times


def test_mevis_exact_items(tmp_path):
    make_mevis(tmp_path)
    out = tmp_path / "mevis.json"
    summary = build("mevis", str(tmp_path), str(out), grid="6x8", frames_per_expression=2, **FIXED)
    items = _load(out)
    rng = random.Random(0)  # templates are fixed: the frame draws are the only random choices
    expected_frames = [sorted(rng.sample(range(3), 2)) for _ in range(3)]
    assert [item["id"] for item in items] == [
        f"mevis_train_v0_{e}_f0000{f}" for e in range(3) for f in expected_frames[e]]
    assert all(item["image"] == f"mevis/train/JPEGImages/v0/{item['id'][-5:]}.jpg" for item in items)
    assert all((item["height"], item["width"]) == (6, 8) for item in items)
    by_id = {item["id"]: _qa(item) for item in items}
    label = "the shape moving right"
    grids = {
        0: "others *8\n " * 6,
        1: "others *8\n " * 3 + f"others *4| {label} *4\n " * 3,
        2: "others *8\n " * 5 + f"others *7| {label} *1\n ",
    }
    for f in expected_frames[1]:
        question, answer = by_id[f"mevis_train_v0_1_f0000{f}"]
        assert question == "<image>\n" + Q0.format(expression=label)
        assert answer == f"{A0}\n<seg>{grids[f][:-2]}\n</seg>"
    # the no-target expression: every cell is others
    for f in expected_frames[2]:
        assert by_id[f"mevis_train_v0_2_f0000{f}"][1] == f"{A0}\n<seg>" + "others *8\n " * 5 + "others *8\n</seg>"
    empty = sum(1 for f in expected_frames[1] if f == 0) + 2
    assert (summary.items, summary.rounds, summary.empty_targets, summary.skips.total) == (6, 6, empty, 0)


def test_union_target_and_fixed_label(tmp_path):
    make_mevis(tmp_path)
    out = tmp_path / "m.json"
    build("mevis", str(tmp_path), str(out), grid="6x8", frames_per_expression=3, fg_label="target", limit=1,
          **FIXED)  # fmt: skip
    items = _load(out)
    assert [item["id"] for item in items] == [f"mevis_train_v0_0_f0000{f}" for f in range(3)]
    # frame 1: anno 10 rows 0-1 cols 1-2, anno 11 rows 3-5 cols 4-7
    assert _qa(items[1])[1] == (f"{A0}\n<seg>" + "others *1| target *2| others *5\n " * 2 + "others *8\n "
                                + "others *4| target *4\n " * 2 + "others *4| target *4\n</seg>")


def test_revos_reasoning_as_instruction_with_target_label(tmp_path):
    make_revos(tmp_path)
    out = tmp_path / "revos.json"
    summary = build("revos", str(tmp_path), str(out), split="valid", grid="6x8", frames_per_expression=1, **FIXED)
    rng = random.Random(0)
    frames = [rng.sample(range(2), 1)[0] for _ in range(3)]
    items = [_qa(item) for item in _load(out)]
    assert [item["id"] for item in _load(out)] == [
        f"revos_valid_{RV_VID}_{e}_f{'ab'[f]}" for e, f in enumerate(frames)]
    empty = f"{A0}\n<seg>" + "others *8\n " * 5 + "others *8\n</seg>"
    # referring: the expression is the label; frame a holds rows 1-3, cols 1-3, frame b nothing
    dog = (f"{A0}\n<seg>others *8\n " + "others *1| the dog *3| others *4\n " * 3 + "others *8\n others *8\n</seg>")
    assert items[0] == ("<image>\n" + Q0.format(expression="the dog"), dog if frames[0] == 0 else empty)
    # reasoning: the question carries the instruction, the grid says "target"
    question, answer = items[1]
    assert question == "<image>\n" + Q0.format(expression="what can the child ride?")
    if frames[1] == 1:  # anno 4 only: rows 0-1, cols 5-7
        assert answer == f"{A0}\n<seg>" + "others *5| target *3\n " * 2 + "others *8\n " * 3 + "others *8\n</seg>"
    else:
        assert "| target *" in answer and "what can" not in answer
    assert items[2] == ("<image>\n" + Q0.format(expression="the elephant"), empty)
    assert (summary.items, summary.skips.total) == (3, 0)


def test_bad_masks_are_skipped_or_fail_when_strict(tmp_path):
    make_mevis(tmp_path)
    mask_dict = tmp_path / "mevis" / "train" / "mask_dict.json"
    masks = json.loads(mask_dict.read_text())
    masks["10"] = [{"size": [6, 8], "counts": "zzzz"}] * 3
    write_json(mask_dict, masks)
    out = tmp_path / "o.json"
    summary = build("mevis", str(tmp_path), str(out), grid=4, **FIXED)
    assert [item["id"].rsplit("_f", 1)[0] for item in _load(out)] == ["mevis_train_v0_1"] * 3 + ["mevis_train_v0_2"] * 3
    assert dict(summary.skips.counts) == {"bad mask": 1}
    with pytest.raises(ValueError, match="video 'v0', expression '0': anno_id 10, frame '00000': "):
        build("mevis", str(tmp_path), str(tmp_path / "strict.json"), strict=True, **FIXED)
    assert not (tmp_path / "strict.json").exists()


def test_cli_runs_every_video_builder(tmp_path, capsys):
    make_ytvos(tmp_path)
    make_davis(tmp_path)
    make_mevis(tmp_path)
    make_revos(tmp_path)
    runs = {
        "ref_youtube_vos": ["--frames-per-expression", "1", "--grid", "4"],
        "ref_davis17": ["--split", "valid", "--no-rle", "--seed", "2"],
        "mevis": ["--split", "valid_u", "--fg-label", "target", "--repeat", "2"],
        "revos": ["--split", "valid", "--reasoning-fg-label", "sentence", "--rounds", "2"],
        "synthetic_video": ["--data-root", str(tmp_path / "syn"), "--num-videos", "2", "--num-frames", "4",
                            "--frame-size", "32", "--split", "valid_u"],
    }
    assert set(runs) == set(VIDEO_BUILDERS)
    for name, extra in runs.items():
        out = tmp_path / f"{name}.json"
        root = [] if name == "synthetic_video" else ["--data-root", str(tmp_path)]
        assert main([name, *root, "--out", str(out), "--quiet", *extra]) == 0, name
        line = capsys.readouterr().out.strip().splitlines()[-1]
        assert line.startswith(f"{name}: ") and str(out) in line
        assert _load(out)
    revos_items = _load(tmp_path / "revos.json")
    assert all(len(item["conversations"]) == 4 for item in revos_items)
    assert len(_load(tmp_path / "mevis.json")) == 3 * 3 * 2  # 3 expressions x 3 frames x 2 repeats
    synthetic = _load(tmp_path / "synthetic_video.json")
    assert all((tmp_path / "syn" / item["image"]).is_file() for item in synthetic)
    again = tmp_path / "again.json"
    assert main(["synthetic_video", "--data-root", str(tmp_path / "syn"), "--out", str(again), "--quiet",
                 *runs["synthetic_video"][2:]]) == 0  # fmt: skip
    assert again.read_bytes() == (tmp_path / "synthetic_video.json").read_bytes()


def test_cli_errors_and_splits_without_masks(tmp_path, capsys):
    make_ytvos(tmp_path)
    assert main(["ref_youtube_vos", "--data-root", str(tmp_path), "--out", str(tmp_path / "v.json"), "--split",
                 "valid", "--quiet"]) == 1  # fmt: skip
    assert "has no ground-truth masks" in capsys.readouterr().err
    assert main(["mevis", "--data-root", str(tmp_path), "--out", str(tmp_path / "m.json")]) == 1
    assert "meta_expressions.json not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["mevis", "--data-root", "x", "--out", "y", "--reasoning-fg-label", "target"])
