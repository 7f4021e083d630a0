"""``paco_lvis`` and ``pascal_part`` builders: exact items on the tiny COCO-format layouts, labels fixed per
category, the three Pascal-Part question kinds, absent parts, determinism, and sorted draws (no set sampling)."""

from __future__ import annotations

import json
import random
import re

import pytest
from parts_fixtures import make_paco_layout, make_pascal_part_layout

from data_builders import paco_lvis, pascal_part
from data_builders.__main__ import main
from text4seg.datasets.parts import part_categories, read_parts
from text4seg.descriptors import decode_descriptor, extract_descriptor
from text4seg.items.output import BuildSummary
from text4seg.items.parts import paco_labels, pascal_part_items
from text4seg.prompts import OBJECT_PART_QUESTIONS, OBJECT_PARTS_QUESTIONS, PARTIAL_CLASSES_QUESTIONS


@pytest.fixture()
def root(tmp_path):
    make_paco_layout(tmp_path, "train")
    make_pascal_part_layout(tmp_path, "train")
    return tmp_path


def _load(path):
    return json.loads(path.read_text())


def _grid(answer: str, size: int = 4) -> list[list[str]]:
    return decode_descriptor(extract_descriptor(answer), size, size).labels.tolist()


def test_paco_exact_items(root, tmp_path):
    out = tmp_path / "paco.json"
    summary = paco_lvis.build(str(root), str(out), grid=4, quiet=True)
    assert (summary.items, summary.rounds) == (1, 2) and summary.skips.total == 2
    (item,) = _load(out)
    assert {k: item[k] for k in ("id", "image", "height", "width")} == {
        "id": "paco_lvis_train_1", "image": "coco/train2017/000000000001.jpg", "height": 16, "width": 16}
    human = [turn["value"] for turn in item["conversations"][0::2]]
    gpt = [turn["value"] for turn in item["conversations"][1::2]]
    assert human == ["<image>\n" + PARTIAL_CLASSES_QUESTIONS[2].format(classes="body of the trash_can"),
                     PARTIAL_CLASSES_QUESTIONS[4].format(classes="lid of the trash_can")]
    body, lid, o = "body of the trash_can", "lid of the trash_can", "others"
    # the grid samples rows/columns 2, 6, 10, 14: the lid's top rows, the body below, the mug over its handle
    assert _grid(gpt[0]) == [[o] * 4, [body, body, o, o], [body, body, o, o], [body, body, o, o]]
    assert _grid(gpt[1]) == [[lid, lid, o, o], [o] * 4, [o] * 4, [o] * 4]
    assert gpt[1] == ("Here is the mask.\n<seg>lid of the trash_can *2| others *2\n others *4\n others *4\n"
                      " others *4\n</seg>")


def test_paco_labels_fixed_per_category_with_both_forms():
    cats = part_categories({"categories": [{"id": k, "name": f"obj{k // 10}:part{k}"} for k in range(1, 1001)]
                            + [{"id": 5000, "name": "obj1 part10"}]}, "x.json")
    labels = paco_labels(cats, random.Random(0))
    assert labels == paco_labels(cats, random.Random(0))
    short = [cid for cid in range(1, 1001) if labels[cid] == f"obj{cid // 10} part{cid}"]
    assert 250 < len(short) < 350  # "{obj} {part}" with probability 0.3
    assert all(labels[c] == f"part{c} of the obj{c // 10}" for c in range(1, 1001) if c not in short)
    assert labels[10] == "part10 of the obj1" and labels[5000] == "obj1 part10"  # no clash with an object name


def test_pascal_part_exact_items(root, tmp_path):
    out = tmp_path / "pascal.json"
    summary = pascal_part.build(str(root), str(out), grid=4, rounds=3, quiet=True)
    assert (summary.items, summary.rounds) == (2, 6)
    assert dict(summary.notes) == {"object-part rounds": 4, "object-parts rounds": 2}
    one, two = _load(out)
    assert one["image"] == "vlpart/pascal_part/VOCdevkit/VOC2010/JPEGImages/2008_000001.jpg"
    human = [turn["value"] for turn in one["conversations"][0::2]]
    assert human == ["<image>\n" + OBJECT_PART_QUESTIONS[2].format(parts="torso", object="dog"),
                     OBJECT_PARTS_QUESTIONS[2].format(objects="cat"),
                     OBJECT_PART_QUESTIONS[4].format(parts="torso, tail", object="dog")]  # tail is absent
    o = "others"
    grids = [_grid(turn["value"]) for turn in one["conversations"][1::2]]
    dog_torso = [[o] * 4, [o] * 4, [o, o, "torso", "torso"], [o, o, "torso", "torso"]]
    assert grids == [dog_torso, [["head", "head", o, o]] + [["torso", "torso", o, o]] * 3, dog_torso]
    assert [turn["value"] for turn in two["conversations"][0::2]] == [
        "<image>\n" + OBJECT_PARTS_QUESTIONS[4].format(objects="potted plant"),
        OBJECT_PART_QUESTIONS[3].format(parts="plant", object="potted plant"),
        OBJECT_PART_QUESTIONS[2].format(parts="pot", object="potted plant")]
    assert _grid(two["conversations"][1]["value"]) == [["plant"] * 4] * 2 + [["pot"] * 4] * 2


def _kind(question: str) -> tuple[str, list[str]]:
    """The question kind and the names it lists, matched against the template families."""
    families = (("object part", OBJECT_PART_QUESTIONS), ("object parts", OBJECT_PARTS_QUESTIONS),
                ("objects", PARTIAL_CLASSES_QUESTIONS))
    for kind, family in families:
        for template in family:
            pattern = re.escape(template)
            for field in ("parts", "object", "objects", "classes"):
                pattern = pattern.replace(re.escape("{" + field + "}"), "(.+)")
            match = re.fullmatch(pattern, question.removeprefix("<image>\n"))
            if match:
                return kind, [name for group in match.groups() for name in group.split(", ")]
    raise AssertionError(f"no template matches {question!r}")


def test_pascal_part_kinds_over_seeds_and_determinism(root, tmp_path):
    """Every kind and absent parts occur; answers label only what the question names; an object-parts round
    comes at most once per item; one seed, one file."""
    samples = list(read_parts(root, "train", "pascal_part"))
    parts = {"cat": {"head", "tail", "torso"}, "dog": {"head", "muzzle", "tail", "torso"},
             "potted plant": {"plant", "pot"}}
    kinds, absent_asked = set(), 0
    for seed in range(60):
        for item in pascal_part_items(samples, BuildSummary("t"), grid=4, rounds=3, seed=seed):
            turns = item["conversations"]
            seen = []
            for question, answer in zip(turns[0::2], turns[1::2]):
                labels = {c for row in _grid(answer["value"]) for c in row} - {"others"}
                kind, names = _kind(question["value"])
                seen.append(kind)
                if kind == "object part":
                    *asked, obj = names
                    assert labels <= set(asked) and set(asked) <= parts[obj]
                    absent_asked += bool(set(asked) & {"tail", "muzzle"})
                elif kind == "object parts":
                    assert labels and labels <= set().union(*(parts[o] for o in names))
                else:
                    assert labels == set(names)
            assert seen.count("object parts") <= 1  # after one, the next rounds are objects or object part
            kinds.update(seen)
    assert kinds == {"object part", "object parts", "objects"} and absent_asked > 0
    a, b, c = (tmp_path / f"{n}.json" for n in "abc")
    for path, seed in ((a, 5), (b, 5), (c, 6)):
        assert main(["pascal_part", "--data-root", str(root), "--out", str(path), "--seed", str(seed), "--quiet"]) == 0
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()


def test_part_builders_options_and_errors(root, tmp_path, capsys):
    with pytest.raises(ValueError, match="repeat 2: paco_lvis builds one item per image"):
        paco_lvis.build(str(root), str(tmp_path / "x.json"), repeat=2)
    with pytest.raises(ValueError, match="rounds must be an int >= 1"):
        pascal_part.build(str(root), str(tmp_path / "x.json"), rounds=0)
    assert main(["paco_lvis", "--data-root", str(root), "--out", str(tmp_path / "x.json"), "--strict",
                 "--quiet"]) == 1
    assert "paco_lvis_train_7 (annotations[5]): unknown category_id 99" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()  # nothing half written
    assert main(["paco_lvis", "--data-root", str(root), "--out", str(tmp_path / "x.json"), "--no-rle", "--grid", "2",
                 "--downsample", "area", "--rounds", "1", "--answer-index", "0", "--quiet"]) == 0
    (item,) = _load(tmp_path / "x.json")
    assert item["conversations"][1]["value"].startswith("Sure, here is the segmentation mask.\n<seg>")
