"""Tests for text4seg.prompts: template families, seeded choice, conversation items."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from text4seg import prompts
from text4seg.descriptors import decode_descriptor, encode_descriptor
from text4seg.prompts import (
    ALL_CLASSES_QUESTIONS,
    ANSWER_SENTENCES,
    CONDITION_QUESTIONS,
    PART_QUESTIONS,
    PARTIAL_CLASSES_QUESTIONS,
    REFERRING_QUESTIONS,
    answer_text,
    conversation_item,
    part_question,
    referring_question,
    semantic_question,
)

EXPRESSION_FAMILIES = (REFERRING_QUESTIONS, PART_QUESTIONS)
CLASS_FAMILIES = (ALL_CLASSES_QUESTIONS, PARTIAL_CLASSES_QUESTIONS, CONDITION_QUESTIONS)


def test_families_are_well_formed():
    for family in EXPRESSION_FAMILIES + CLASS_FAMILIES + (ANSWER_SENTENCES,):
        assert isinstance(family, tuple) and len(family) >= 3
        assert len(set(family)) == len(family)
        for sentence in family:
            assert sentence == sentence.strip() and "\n" not in sentence
            assert "<image>" not in sentence and "<seg>" not in sentence
    for family in EXPRESSION_FAMILIES:
        for sentence in family:
            assert sentence.count("{expression}") == 1
            assert sentence.format(expression="X").count("{") == 0
    for family in CLASS_FAMILIES:
        for sentence in family:
            assert sentence.count("{classes}") == 1
            assert sentence.format(classes="X").count("{") == 0
    for sentence in ANSWER_SENTENCES:
        assert "{" not in sentence


def test_template_zero_is_the_default():
    assert referring_question("the red dog") == REFERRING_QUESTIONS[0].format(expression="the red dog")
    assert referring_question("the red dog") == "Please segment the red dog in this image."
    assert part_question("handle of the mug") == PART_QUESTIONS[0].format(expression="handle of the mug")
    assert semantic_question(["sky", "tree"]) == "Please segment the image into these classes: sky, tree."
    assert semantic_question(["sky"], family="partial") == PARTIAL_CLASSES_QUESTIONS[0].format(classes="sky")
    assert semantic_question(["a", "b"], family="condition") == CONDITION_QUESTIONS[0].format(classes="a, b")
    assert answer_text("others *2\n") == "Sure, here is the segmentation mask.\n<seg>others *2\n</seg>"


def test_fixed_template_overrides_rng():
    rng = random.Random(0)
    assert referring_question("x", rng=rng, template=3) == REFERRING_QUESTIONS[3].format(expression="x")
    assert answer_text("a *1\n", rng=rng, template=1) == f"{ANSWER_SENTENCES[1]}\n<seg>a *1\n</seg>"
    assert rng.random() == random.Random(0).random()  # a fixed template draws nothing


@pytest.mark.parametrize("template", [-1, len(REFERRING_QUESTIONS), "1", 1.0])
def test_bad_template_index(template):
    with pytest.raises(ValueError, match="REFERRING_QUESTIONS"):
        referring_question("x", template=template)


def test_seeded_choice_is_deterministic_and_varied():
    def draw(seed: int) -> list[str]:
        rng = random.Random(seed)
        out = []
        for k in range(40):
            out.append(referring_question(f"object {k}", rng))
            out.append(semantic_question(["cat", "dog"], family=("all", "partial", "condition")[k % 3], rng=rng))
            out.append(part_question("wheel", rng))
            out.append(answer_text("a *1\n", rng))
        return out

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)
    # every template of a family gets used over enough draws
    rng = random.Random(1)
    seen = {referring_question("x", rng) for _ in range(300)}
    assert seen == {t.format(expression="x") for t in REFERRING_QUESTIONS}


def test_seeded_choice_exact_values():
    # One rng.randrange(len(family)) per choice: a data file built with the same seed stays byte-identical.
    rng = random.Random(1234)
    picks = [REFERRING_QUESTIONS.index(referring_question("{expression}", rng)) for _ in range(8)]
    rng2 = random.Random(1234)
    assert picks == [rng2.randrange(len(REFERRING_QUESTIONS)) for _ in range(8)]


def test_expression_inserted_verbatim():
    q = referring_question("the {weird} one, left | right", template=0)
    assert q == "Please segment the {weird} one, left | right in this image."


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: referring_question(""), "expression"),
        (lambda: referring_question("   "), "expression"),
        (lambda: semantic_question([]), "class_names"),
        (lambda: semantic_question("sky"), "class_names"),
        (lambda: semantic_question(["sky", ""]), "class_names"),
        (lambda: semantic_question(["sky"], family="some"), "family"),
    ],
)
def test_bad_arguments(call, needle):
    with pytest.raises(ValueError, match=needle):
        call()


def test_conversation_item_exact():
    descriptor = encode_descriptor([["others", "the dog"], ["others", "others"]])
    q0 = referring_question("the dog")
    a0 = answer_text(descriptor)
    item = conversation_item("refcoco_1", "refer_seg/images/a.jpg", 480, 640,
                             [(q0, a0), ("And the cat?", "Sure.\n<seg>others *2\n others *2\n</seg>")])
    assert item == {
        "id": "refcoco_1",
        "image": "refer_seg/images/a.jpg",
        "height": 480,
        "width": 640,
        "conversations": [
            {"from": "human", "value": "<image>\nPlease segment the dog in this image."},
            {"from": "gpt", "value": "Sure, here is the segmentation mask.\n"
                                     "<seg>others *1| the dog *1\n others *2\n</seg>"},
            {"from": "human", "value": "And the cat?"},
            {"from": "gpt", "value": "Sure.\n<seg>others *2\n others *2\n</seg>"},
        ],
    }
    assert list(item) == ["id", "image", "height", "width", "conversations"]
    assert json.loads(json.dumps(item)) == item
    decoded = decode_descriptor(item["conversations"][1]["value"], 2, 2)
    assert decoded.ok and decoded.labels.tolist() == [["others", "the dog"], ["others", "others"]]


def test_conversation_item_crop_size_and_numpy_ints():
    item = conversation_item("x", "a.png", np.int64(10), np.int32(20), [("q", "a")], crop_size=(0, np.int64(2), 8, 9))
    assert item["crop_size"] == [0, 2, 8, 9]
    assert type(item["height"]) is int and all(type(v) is int for v in item["crop_size"])
    assert list(item) == ["id", "image", "height", "width", "crop_size", "conversations"]
    assert json.dumps(item)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"rounds": []}, "rounds"),
        ({"rounds": [("q",)]}, r"rounds\[0\]"),
        ({"rounds": [("<image>\nq", "a")]}, "<image>"),
        ({"rounds": [("q", "a"), ("q2", "")]}, r"rounds\[1\] answer"),
        ({"height": 0}, "height"),
        ({"width": 2.0}, "width"),
        ({"crop_size": [1, 2, 3]}, "crop_size"),
        ({"item_id": ""}, "item_id"),
    ],
)
def test_conversation_item_refuses(kwargs, needle):
    args = {"item_id": "x", "image": "a.png", "height": 4, "width": 4, "rounds": [("q", "a")]}
    args.update(kwargs)
    with pytest.raises(ValueError, match=needle):
        conversation_item(**args)


def test_same_seed_same_file(tmp_path):
    def build(path) -> bytes:
        rng = random.Random(42)
        items = []
        for k in range(20):
            expression = f"object number {k}"
            grid = [["others", expression]] if k % 2 else [[expression, expression]]
            rounds = [(referring_question(expression, rng), answer_text(encode_descriptor(grid), rng))]
            items.append(conversation_item(f"id{k}", f"img{k}.png", 32, 32, rounds))
        path.write_text(json.dumps(items, indent=1))
        return path.read_bytes()

    assert build(tmp_path / "a.json") == build(tmp_path / "b.json")


def test_light_import():
    import subprocess
    import sys

    code = "import sys, text4seg.prompts; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert set(prompts.__all__) <= set(dir(prompts))


def test_part_families():
    from text4seg.prompts import (
        OBJECT_PART_QUESTIONS,
        OBJECT_PARTS_QUESTIONS,
        object_part_question,
        object_parts_question,
    )

    for family, fields in ((OBJECT_PARTS_QUESTIONS, ("objects",)), (OBJECT_PART_QUESTIONS, ("parts", "object"))):
        assert len(set(family)) == len(family) >= 3
        for sentence in family:
            assert all(sentence.count("{" + f + "}") == 1 for f in fields) and "<" not in sentence
    assert object_parts_question(["dog", "cat"]) == "Please segment the dog, cat into parts and label each part."
    assert object_part_question("dog", ["head", "tail"]) == "Please segment the head, tail of the dog in this image."
    assert object_part_question("dog", ["ear"], rng=random.Random(0)) in {
        s.format(parts="ear", object="dog") for s in OBJECT_PART_QUESTIONS}
    for call in (lambda: object_parts_question([]), lambda: object_parts_question("dog"),
                 lambda: object_part_question("dog", []), lambda: object_part_question(" ", ["ear"]),
                 lambda: object_part_question("dog", [""])):
        with pytest.raises(ValueError):
            call()
