"""Tests for data_builders: exact training items from tiny datasets in their real on-disk formats."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures_data import (
    make_ade20k_layout,
    make_coco_panoptic_layout,
    make_cocostuff_layout,
    make_grefcoco_layout,
    make_pascal_context_layout,
    make_pascal_voc_layout,
    make_reasonseg_layout,
    make_refcoco_layout,
)
from parts_fixtures import make_paco_layout, make_pascal_part_layout

import text4seg.items.semantic as semantic_builder
from data_builders import BUILDERS, grefcoco, mix, reasonseg, refcoco, semantic, synthetic
from data_builders.__main__ import main
from data_builders.video import VIDEO_BUILDERS
from text4seg.datasets import ReferringSample
from text4seg.datasets.coco_masks import AnnotationError
from text4seg.datasets.synthetic import count_synthetic
from text4seg.descriptors import extract_descriptor
from text4seg.items.output import BuildSummary
from text4seg.items.referring import referring_items, safe_text
from text4seg.prompts import (
    ALL_CLASSES_QUESTIONS,
    ANSWER_SENTENCES,
    CONDITION_QUESTIONS,
    PARTIAL_CLASSES_QUESTIONS,
    REFERRING_QUESTIONS,
)

Q0, A0 = REFERRING_QUESTIONS[0], ANSWER_SENTENCES[0]
FIXED = {"question_index": 0, "answer_index": 0, "quiet": True}


def _load(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))


def _turns(item: dict) -> list[tuple[str, str]]:
    conv = item["conversations"]
    assert [t["from"] for t in conv] == ["human", "gpt"] * (len(conv) // 2)
    return [(conv[i]["value"], conv[i + 1]["value"]) for i in range(0, len(conv), 2)]


def _expression(question: str) -> str:
    prefix, suffix = Q0.split("{expression}")
    assert question.startswith(prefix) and question.endswith(suffix), question
    return question[len(prefix) : len(question) - len(suffix)]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    make_refcoco_layout(root)
    make_grefcoco_layout(root)
    make_reasonseg_layout(root)
    make_ade20k_layout(root)
    make_pascal_context_layout(root)
    make_pascal_voc_layout(root)
    make_cocostuff_layout(root)
    make_coco_panoptic_layout(root)
    make_paco_layout(root, "train")
    make_pascal_part_layout(root, "train")
    return root


# ----------------------------------------------------------------------------------------------------------------
# referring builders


def test_refcoco_exact_items(data_root, tmp_path):
    out = tmp_path / "refcoco.json"
    summary = refcoco.build(str(data_root), str(out), grid=4, rounds=1, repeat=1, **FIXED)
    items = _load(out)
    assert [item["id"] for item in items] == [
        "refcoco_unc_train_1",
        "refcoco_unc_train_2",
        "refcoco_unc_train_3",
    ]
    assert items[0]["image"] == "refer_seg/images/coco_2014/train2014/COCO_train2014_000000000009.jpg"
    assert (items[0]["height"], items[0]["width"], items[2]["height"], items[2]["width"]) == (32, 48, 16, 16)
    assert set(items[0]) == {"id", "image", "height", "width", "conversations"}

    (q1, a1), = _turns(items[0])  # fmt: skip
    e1 = q1[len("<image>\n") :].split("Please segment ")[1].split(" in this image.")[0]
    assert e1 in ("man on left", "left guy") and q1 == "<image>\n" + Q0.format(expression=e1)
    assert a1 == f"{A0}\n<seg>{e1} *2| others *2\n {e1} *2| others *2\n others *4\n others *4\n</seg>"

    (q2, a2), = _turns(items[1])  # fmt: skip
    e2 = "the / rightxone thing"  # "the | right*one\nthing", made safe in the question and the label alike
    assert q2 == f"<image>\nPlease segment {e2} in this image."
    assert a2 == f"{A0}\n<seg>others *4\n others *4\n others *2| {e2} *2\n others *2| {e2} *2\n</seg>"

    (q3, a3), = _turns(items[2])  # fmt: skip
    assert q3 == "<image>\nPlease segment the left half in this image."
    assert a3 == f"{A0}\n<seg>" + "the left half *2| others *2\n " * 3 + "the left half *2| others *2\n</seg>"

    assert (summary.items, summary.rounds, summary.empty_targets, summary.sanitized) == (3, 3, 0, 1)
    assert summary.skips.total == 0 and summary.out == str(out)
    assert re.fullmatch(
        r"refcoco: 3 items, 3 rounds, 0 empty targets, 1 sanitized, skipped 0 -> .*refcoco\.json "
        r"\(\d+\.\d s, \d+ items/s\)",
        summary.line(),
    )


def test_refcoco_reference_recipe(data_root, tmp_path):
    out = tmp_path / "recipe.json"
    summary = refcoco.build(str(data_root), str(out), quiet=True)
    items = _load(out)
    assert [item["id"] for item in items] == [
        "refcoco_unc_train_1_r0", "refcoco_unc_train_2_r0", "refcoco_unc_train_1_r1", "refcoco_unc_train_2_r1",
        "refcoco_unc_train_3_r0", "refcoco_unc_train_3_r1",
    ]  # fmt: skip
    same_image = {"man on left", "left guy", "the / rightxone thing"}
    for item in items:
        (q1, a1), (q2, a2) = _turns(item)
        assert q1.startswith("<image>\n") and "<image>" not in q2
        for answer in (a1, a2):
            descriptor = extract_descriptor(answer)
            assert descriptor.count("\n") == 16 and answer.split("\n<seg>")[0] in ANSWER_SENTENCES
        if item["image"].endswith("000000000009.jpg"):
            labels = {
                run.split(" *")[0] for row in extract_descriptor(a2).split("\n ") for run in row.split("| ")
            }
            assert labels - {"others"} <= same_image  # round 2 asks about a ref of the same image
    assert (summary.items, summary.rounds) == (6, 12)


def test_refcoco_is_deterministic_by_seed(data_root, tmp_path):
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    refcoco.build(str(data_root), str(a), seed=5, quiet=True)
    refcoco.build(str(data_root), str(b), seed=5, quiet=True)
    refcoco.build(str(data_root), str(c), seed=6, quiet=True)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()


def test_refcoco_grid_forms_fg_label_and_limit(data_root, tmp_path):
    out = tmp_path / "x.json"
    refcoco.build(str(data_root), str(out), grid=4, rounds=1, repeat=1, rle=False, **FIXED)
    a3 = _turns(_load(out)[2])[0][1]
    row = "the left half| the left half| others| others"
    assert a3 == f"{A0}\n<seg>{row}\n {row}\n {row}\n {row}\n</seg>"

    refcoco.build(str(data_root), str(out), grid="2x4", rounds=1, repeat=1, fg_label="target", **FIXED)
    items = _load(out)
    q1, a1 = _turns(items[0])[0]
    assert _expression(q1[len("<image>\n") :]) in ("man on left", "left guy")
    assert a1 == f"{A0}\n<seg>target *2| others *2\n others *4\n</seg>"
    assert _turns(items[1])[0][1] == f"{A0}\n<seg>others *4\n others *2| target *2\n</seg>"

    summary = refcoco.build(str(data_root), str(out), limit=1, rounds=1, repeat=1, quiet=True)
    assert [item["id"] for item in _load(out)] == ["refcoco_unc_train_1", "refcoco_unc_train_2"]
    assert summary.items == 2

    with pytest.raises(ValueError, match="fg_label"):
        refcoco.build(str(data_root), str(out), fg_label="   ", quiet=True)


def test_area_downsample_keeps_thin_targets():
    mask = np.zeros((16, 16), dtype=bool)
    mask[3, 0:4] = True  # a quarter of cell (0, 0); nearest samples row 2 and misses it
    sample = ReferringSample("s", "img.png", 16, 16, ["thin line"], mask)

    def answer(mode: str) -> str:
        summary = BuildSummary("t")
        items = list(referring_items([sample], summary, grid=4, downsample=mode, rounds=1, repeat=1,
                                     question_index=0, answer_index=0))  # fmt: skip
        return extract_descriptor(_turns(items[0])[0][1])

    assert answer("nearest") == "others *4\n others *4\n others *4\n others *4\n"
    assert answer("area") == "thin line *1| others *3\n others *4\n others *4\n others *4\n"
    with pytest.raises(ValueError, match="downsample"):
        list(referring_items([sample], BuildSummary("t"), downsample="bilinear"))


def test_safe_text_and_empty_expressions():
    assert safe_text("the <image> cat | dog*2\n<seg>x</seg>") == "the cat / dogx2 x"
    summary = BuildSummary("t")
    blank = ReferringSample("blank", "i.png", 4, 4, ["  \n "], np.ones((4, 4), dtype=bool))
    assert list(referring_items([blank], summary, grid=2)) == []
    assert summary.skips.counts == {"no usable expression": 1}


def test_refcoco_strict_and_atomic_output(data_root, tmp_path):
    out = tmp_path / "keep.json"
    out.write_text("old", encoding="utf-8")
    with pytest.raises(AnnotationError, match="refcoco_unc_test_5"):
        refcoco.build(str(data_root), str(out), split="test", strict=True, quiet=True)
    assert out.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.json"]  # no temp file left behind
    summary = refcoco.build(str(data_root), str(out), split="test", quiet=True)
    assert summary.items == 2 and summary.skips.total == 1  # ref 6 twice; ref 5 skipped and counted
    assert "skipped 1 (bad segmentation" in summary.line()


def test_grefcoco_exact_items(data_root, tmp_path):
    out = tmp_path / "g.json"
    summary = grefcoco.build(str(data_root), str(out), split="val", grid=4, rounds=1, repeat=1, **FIXED)
    items = _load(out)
    assert [item["id"] for item in items] == [
        "grefcoco_unc_val_10",
        "grefcoco_unc_val_11",
        "grefcoco_unc_val_12",
    ]
    answers = [_turns(item)[0][1] for item in items]
    assert (
        answers[0]
        == f"{A0}\n<seg>top left block *2| others *2\n top left block *2| others *2\n others *4\n others *4\n</seg>"
    )
    both = "both blocks"
    assert answers[1] == (
        f"{A0}\n<seg>{both} *2| others *2\n {both} *2| others *2\n others *2| {both} *2\n others *2| {both} *2\n</seg>"
    )
    assert answers[2] == f"{A0}\n<seg>others *4\n others *4\n others *4\n others *4\n</seg>"
    assert _turns(items[2])[0][0] == "<image>\nPlease segment the purple elephant in this image."
    assert (summary.items, summary.empty_targets) == (3, 1)
    grefcoco.build(str(data_root), str(out), split="val", quiet=True)
    assert extract_descriptor(_turns(_load(out)[0])[0][1]).count("\n") == 24  # 24 x 24 by default


def test_reasonseg_exact_items(data_root, tmp_path):
    out = tmp_path / "r.json"
    summary = reasonseg.build(str(data_root), str(out), grid=4, **FIXED)
    items = _load(out)
    assert [item["id"] for item in items] == ["reasonseg_train_a", "reasonseg_train_b"]
    (qa, aa), = _turns(items[0])  # fmt: skip
    assert _expression(qa[len("<image>\n") :]) in (
        "What part of the picture would you sit on if you were tired?", "the seat")  # fmt: skip
    # Cell (0, 0) samples pixel (4, 4), inside the ignore polygon: others.
    assert (
        aa
        == f"{A0}\n<seg>others *1| target *1| others *2\n target *2| others *2\n target *2| others *2\n target *2| others *2\n</seg>"
    )
    (qb, ab), = _turns(items[1])  # fmt: skip
    assert qb == "<image>\nPlease segment the / handle in this image."
    assert ab == f"{A0}\n<seg>" + "others *2| target *2\n " * 3 + "others *2| target *2\n</seg>"
    assert (items[1]["height"], items[1]["width"]) == (16, 32)
    assert (summary.items, summary.sanitized, summary.skips.total) == (2, 1, 1)


def test_synthetic_builder_fixed_templates(tmp_path):
    root, out = tmp_path / "data", tmp_path / "syn.json"
    summary = synthetic.build(str(root), str(out), num_images=6, image_size=64, quiet=True)
    items = _load(out)
    assert len(items) == count_synthetic(root, "train") == summary.items
    for item in items:
        assert (root / item["image"]).is_file() and (item["height"], item["width"]) == (64, 64)
        (question, answer), = _turns(item)  # fmt: skip
        expression = _expression(question[len("<image>\n") :])
        assert answer.startswith(f"{A0}\n<seg>") and answer.endswith("</seg>")
        labels = {
            run.split(" *")[0] for row in extract_descriptor(answer).split("\n ") for run in row.split("| ")
        }
        assert labels <= {"others", expression.strip()}
    again = tmp_path / "again.json"
    synthetic.build(str(root), str(again), num_images=6, image_size=64, quiet=True)
    assert again.read_bytes() == out.read_bytes()


# ----------------------------------------------------------------------------------------------------------------
# semantic builders


def _listed_classes(question: str) -> list[str]:
    """The class list of a semantic question, recovered through the template it was made from."""
    question = question.removeprefix("<image>\n")
    for template in ALL_CLASSES_QUESTIONS + PARTIAL_CLASSES_QUESTIONS + CONDITION_QUESTIONS:
        head, tail = template.split("{classes}")
        if question.startswith(head) and question.endswith(tail):
            return question[len(head) : len(question) - len(tail)].split(", ")
    raise AssertionError(f"no template matches {question!r}")


def _answer_and_listed(item: dict) -> list[tuple[str, list[str]]]:
    return [(extract_descriptor(answer), _listed_classes(question)) for question, answer in _turns(item)]


@pytest.mark.parametrize(
    ("dataset", "split", "per_class", "extra"),
    [
        (
            "ade20k",
            "training",
            {
                "wall": "others *2| wall *2\n others *2| wall *2\n others *4\n others *4\n",
                "sky": "others *4\n others *4\n sky *2| others *2\n sky *2| others *2\n",
                "flag": "others *4\n others *4\n others *2| flag *2\n others *2| flag *2\n",
            },
            {"crop": False},
        ),
        (
            "pascal_context",
            "val",
            {
                "aeroplane": "others *2| aeroplane *2\n others *2| aeroplane *2\n others *4\n others *4\n",
                "wood": "others *4\n others *4\n wood *2| others *2\n wood *2| others *2\n",
                "person": "others *4\n others *4\n others *2| person *2\n others *2| person *2\n",
            },
            {},
        ),
        (
            "cocostuff",
            "train2017",
            {
                "person": "others *2| person *2\n others *2| person *2\n others *4\n others *4\n",
                "bus": "others *4\n others *4\n bus *2| others *2\n bus *2| others *2\n",
                "wood": "others *4\n others *4\n others *2| wood *2\n others *2| wood *2\n",
            },
            {},
        ),
    ],
)
def test_semantic_single_class_questions_exact(data_root, tmp_path, dataset, split, per_class, extra):
    out = tmp_path / f"{dataset}.json"
    summary = semantic.build(str(data_root), str(out), dataset, split=split, grid=4, rounds=3, repeat=4,
                             max_classes=1, quiet=True, **extra)  # fmt: skip
    items = _load(out)
    assert len(items) == 4 and summary.items == 4 and summary.rounds == 12
    seen = set()
    for item in items:
        for descriptor, listed in _answer_and_listed(item):
            assert len(listed) == 1, item  # max_classes=1: one class, no distractor
            assert descriptor == per_class[listed[0]]
            seen.add(listed[0])
    assert seen == set(per_class)  # the seeded choices cover every class
    if dataset == "cocostuff":
        assert items[0]["crop_size"] == [0, 0, 32, 32]  # no crop size fits: the short side
        assert summary.notes == {"crops without classes": 4}  # the all-255 image
    if dataset == "ade20k":
        assert "crop_size" not in items[0]


def test_pascal_voc_exact_and_255_boundary_is_others(data_root, tmp_path):
    out = tmp_path / "voc.json"
    semantic.build(str(data_root), str(out), "pascal_voc", grid=4, rounds=2, repeat=3, quiet=True)
    items = _load(out)
    assert [item["id"] for item in items] == [f"pascal_voc_train_2007_000032_r{r}" for r in range(3)]
    assert all("crop_size" not in item for item in items)
    for item in items:
        for question, answer in _turns(item):
            assert "aeroplane" in question
            assert (
                extract_descriptor(answer) == "aeroplane *2| others *2\n" + " aeroplane *2| others *2\n" * 3
            )
    semantic.build(str(data_root), str(out), "pascal_voc", grid=16, rounds=1, quiet=True, answer_index=1)
    answer = _turns(_load(out)[0])[0][1]
    assert answer.startswith(ANSWER_SENTENCES[1] + "\n<seg>")
    assert extract_descriptor(answer).startswith("aeroplane *8| others *8\n")  # column 8 (255) -> others


def test_semantic_question_families_respect_max_classes(data_root, tmp_path, monkeypatch):
    seen = []
    original = semantic_builder.semantic_question

    def spy(class_names, family="all", rng=None, template=None):
        seen.append((family, list(class_names)))
        return original(class_names, family, rng=rng, template=template)

    monkeypatch.setattr(semantic_builder, "semantic_question", spy)
    out = tmp_path / "s.json"
    semantic.build(str(data_root), str(out), "pascal_voc", split="val", grid=4, rounds=2, repeat=60,
                   max_classes=25, seed=1, quiet=True)  # fmt: skip
    families = {family for family, _ in seen}
    assert families == {"all", "partial", "condition"}
    for family, names in seen:
        assert len(names) == len(set(names)) <= 25
        if family == "all":
            assert len(names) == 20
        if family == "partial":
            assert set(names) <= {"person", "tv monitor"}
    items = _load(out)
    assert all(sum(f == "all" for f, _ in seen[2 * i : 2 * i + 2]) <= 1 for i in range(len(items)))
    seen.clear()
    semantic.build(str(data_root), str(out), "pascal_voc", split="val", grid=4, repeat=20, max_classes=10,
                   quiet=True)  # fmt: skip
    assert "all" not in {family for family, _ in seen} and max(len(n) for _, n in seen) <= 10


def test_semantic_crops_fit_the_image(tmp_path):
    root = tmp_path / "big"
    big = np.zeros((300, 500), dtype=np.uint8)
    big[100:200, 100:400] = 7
    ann = root / "cocostuff" / "annotations" / "000000000001_labelTrainIds.png"
    ann.parent.mkdir(parents=True)
    from PIL import Image

    Image.fromarray(big).save(ann)
    (root / "coco" / "train2017").mkdir(parents=True)
    Image.new("RGB", (500, 300)).save(root / "coco" / "train2017" / "000000000001.jpg")
    out = tmp_path / "c.json"
    summary = semantic.build(str(root), str(out), "cocostuff", repeat=12, seed=3, quiet=True)
    sides = set()
    for item in _load(out):
        left, top, right, bottom = item["crop_size"]
        assert right - left == bottom - top and 0 <= left and right <= 500 and 0 <= top and bottom <= 300
        sides.add(right - left)
        assert (item["height"], item["width"]) == (300, 500)
    assert sides <= {256} and summary.items + summary.notes["crops without classes"] == 12


# ----------------------------------------------------------------------------------------------------------------
# mix and the command line


def _write(path: Path, n: int, tag: str) -> None:
    items = [{"id": f"{tag}{i}", "image": "x.jpg", "conversations": [{"from": "human", "value": "<image>\nq"},
              {"from": "gpt", "value": "a"}]} for i in range(n)]  # fmt: skip
    path.write_text(json.dumps(items), encoding="utf-8")


def test_mix_ratios_and_shuffle(tmp_path):
    _write(tmp_path / "a.json", 4, "a")
    _write(tmp_path / "b.json", 6, "b")
    out = tmp_path / "m.json"
    summary = mix.build([f"{tmp_path}/a.json:2", f"{tmp_path}/b.json:0.5"], str(out), seed=0)
    ids = [item["id"] for item in _load(out)]
    assert len(ids) == 11 == summary.items == summary.rounds
    assert sorted(i for i in ids if i.startswith("a")) == sorted([f"a{i}" for i in range(4)] * 2)
    assert len({i for i in ids if i.startswith("b")}) == 3
    assert ids != sorted(ids)
    mix.build([f"{tmp_path}/a.json:2", f"{tmp_path}/b.json:0.5"], str(tmp_path / "m2.json"), seed=0)
    assert (tmp_path / "m2.json").read_bytes() == out.read_bytes()
    assert mix.parse_spec("x.json") == (Path("x.json"), 1.0)
    for bad in ("a.json:0", "a.json:-1", "a.json:abc"):
        with pytest.raises(ValueError, match="ratio"):
            mix.parse_spec(bad)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        mix.build([str(tmp_path / "nope.json")], str(out))


def test_cli_runs_every_builder_on_its_fixture(data_root, tmp_path, capsys):
    runs = {
        "refcoco": ["--grid", "16", "--downsample", "area", "--no-rle", "--rounds", "1", "--repeat", "1"],
        "grefcoco": ["--split", "val", "--grid", "24x12", "--fg-label", "target", "--seed", "3"],
        "cocostuff": ["--max-classes", "5", "--no-crop"],
        "ade20k": ["--split", "validation", "--repeat", "2"],
        "pascal_context": ["--split", "val"],
        "pascal_voc": ["--limit", "1"],
        "reasonseg": ["--question-index", "random", "--answer-template", "2"],
        "synthetic": ["--num-images", "3", "--image-size", "48", "--split", "val"],
        "coco_panoptic": ["--split", "val", "--grid", "4"],
        "paco_lvis": ["--grid", "4"],
        "pascal_part": ["--grid", "4", "--rounds", "3"],
    }
    # video builders: tests/video; gcg (its GranD-f layout): test_gcg_builder.py
    assert set(runs) | {"mix", "gcg"} == set(BUILDERS) - set(VIDEO_BUILDERS)
    outputs = []
    for name, extra in runs.items():
        out = tmp_path / f"{name}.json"
        assert main([name, "--data-root", str(data_root if name != "synthetic" else tmp_path), "--out", str(out),
                     "--quiet", *extra]) == 0, name  # fmt: skip
        line = capsys.readouterr().out.strip().splitlines()[-1]
        assert line.startswith(f"{name}: ") and " items, " in line and str(out) in line
        assert _load(out)
        outputs.append(f"{out}:1")
    assert main(["mix", *outputs, "--out", str(tmp_path / "all.json")]) == 0
    assert "mix: " in capsys.readouterr().out


def test_cli_errors(data_root, tmp_path, capsys):
    assert main(["refcoco", "--data-root", str(tmp_path / "missing"), "--out", str(tmp_path / "o.json")]) == 1
    err = capsys.readouterr().err
    assert "data_builders refcoco: error:" in err and "refs(unc).p" in err and "RefCOCO layout" in err
    assert main(["refcoco", "--data-root", str(data_root), "--out", str(tmp_path / "o.json"), "--split", "testA",
                 "--strict", "--quiet"]) == 1  # fmt: skip
    assert "refcoco_unc_testA_5" in capsys.readouterr().err
    assert not (tmp_path / "o.json").exists()
    with pytest.raises(SystemExit):
        main(["refcoco", "--data-root", "x", "--out", "y", "--question-index", "often"])
    assert main([]) == 2


def test_module_help_lists_builders_and_options():
    out = subprocess.run([sys.executable, "-m", "data_builders", "--help"], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2]).stdout  # fmt: skip
    for name in BUILDERS:
        assert f"  {name}: " in out
    assert "--fg-label" in out and "--max-classes" in out and "--downsample" in out and "--rle" in out
