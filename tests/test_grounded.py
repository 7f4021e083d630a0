"""Grounded-caption answers: format, labels, robust parsing (text4seg.grounded)."""

import random

import numpy as np
import pytest

from text4seg.descriptors import decode_descriptor
from text4seg.grounded import (
    decode_grounded,
    grounded_answer,
    mark_caption,
    parse_caption,
    phrase_labels,
)


def _grid(rows):
    return np.array([r.split(",") for r in rows], dtype=object)


def test_answer_round_trip_exact_text():
    caption = "A man holds a tennis racket."
    spans = [(2, 5), (14, 27)]
    grid = _grid(["others,man,man,others", "others,man,tennis racket,tennis racket"])
    text = grounded_answer(caption, spans, grid)
    assert text == ("A <p>man</p> holds a <p>tennis racket</p>.\n"
                    "<seg>others *1| man *2| others *1\n others *1| man *1| tennis racket *2\n</seg>")
    got = decode_grounded(text, 2, 4, out_hw=(4, 8))
    assert got.repairs == []
    assert got.caption == caption
    assert [(p.text, p.label, p.start, p.end, p.cells) for p in got.phrases] == [
        ("man", "man", 2, 5, 3), ("tennis racket", "tennis racket", 14, 27, 2)]
    assert got.marked_caption == "A <p>man</p> holds a <p>tennis racket</p>."
    man = got.phrases[0].mask
    assert man.shape == (4, 8) and man.sum() == 3 * 4
    assert not (got.phrases[0].mask & got.phrases[1].mask).any()
    assert got.form == "rle"


def test_repeated_phrases_and_background_word_are_numbered():
    assert phrase_labels(["dog", "a dog", "Dog", "others", "dog 2"]) == ["dog", "a dog", "Dog 2", "others 2",
                                                                            "dog 2 2"]
    caption, phrases, repairs = parse_caption("A <p>dog</p> chases a <p>dog</p>.")
    assert caption == "A dog chases a dog." and repairs == []
    assert [(p.label, p.start, p.end) for p in phrases] == [("dog", 2, 5), ("dog 2", 15, 18)]
    with pytest.raises(ValueError, match="phrase 0"):
        phrase_labels(["  "])


def test_mark_caption_validates_spans():
    assert mark_caption("a b c", [(4, 5), (0, 1)]) == "<p>a</p> b <p>c</p>"
    with pytest.raises(ValueError, match="overlaps"):
        mark_caption("abcdef", [(0, 3), (2, 4)])
    with pytest.raises(ValueError, match="outside"):
        mark_caption("abc", [(1, 9)])
    with pytest.raises(ValueError, match="already holds"):
        mark_caption("a <p>b</p>", [(0, 1)])


def test_grounded_answer_refuses_stray_grid_labels():
    with pytest.raises(ValueError, match="neither phrase labels"):
        grounded_answer("a cat", [(2, 5)], _grid(["cat,dog"]))


@pytest.mark.parametrize("marked, caption, phrases, repair", [
    ("A <p>man <p>dog</p>.", "A man dog.", [("man", 2, 5), ("dog", 6, 9)], "inside an open phrase"),
    ("A man</p> runs.", "A man runs.", [], "stray </p>"),
    ("A <p>tall man", "A tall man", [("tall man", 2, 10)], "unclosed <p>"),
    ("A <p> </p> cat.", "A   cat.", [], "empty phrase"),
    ("  < P >Sky</ p > is blue.\n", "Sky is blue.", [("Sky", 0, 3)], None),
])
def test_parse_caption_repairs(marked, caption, phrases, repair):
    got_caption, got, repairs = parse_caption(marked)
    assert got_caption == caption
    assert [(p.text, p.start, p.end) for p in got] == phrases
    assert all(got_caption[p.start:p.end] == p.text for p in got)
    if repair is None:
        assert repairs == []
    else:
        assert len(repairs) == 1 and repair in repairs[0]


def test_decode_without_descriptor_and_with_stray_labels():
    got = decode_grounded("A <p>cat</p> sleeps.", 2, 2, out_hw=(2, 2))
    assert got.caption == "A cat sleeps." and got.form == "empty"
    assert got.phrases[0].cells == 0 and not got.phrases[0].mask.any()
    assert any("no <seg>" in r for r in got.repairs)
    got = decode_grounded("A <p>cat</p>.\n<seg>cat *1| dog *1\n others *2\n</seg>", 2, 2)
    assert got.phrases[0].cells == 1 and got.phrases[0].mask is None
    assert got.repairs == ["descriptor label 'dog' names no phrase of the caption; ignored"]
    assert got.grid.tolist() == [["cat", "dog"], ["others", "others"]]


def test_labels_match_case_and_spacing_insensitively():
    got = decode_grounded("The <p>Red  Car</p>\n<seg>red car *2\n others *2\n</seg>", 2, 2)
    assert got.phrases[0].label == "Red Car" and got.phrases[0].cells == 2


def test_decode_never_raises_on_mangled_answers():
    rng = random.Random(0)
    pieces = ["<p>", "</p>", "< p>", "<seg>", "</seg>", "man", " *", "3", "|", "\n", " ", "others", "<", ">",
              "é", "\x00", "p", "*999999999999"]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(40)))
        got = decode_grounded(text, 3, 4, out_hw=(5, 7))
        assert got.grid.shape == (3, 4)
        for p in got.phrases:
            assert p.mask.shape == (5, 7) and got.caption[p.start:p.end] == p.text and p.label
        labels = [p.label.casefold() for p in got.phrases]
        assert len(set(labels)) == len(labels)
        total = sum(p.cells for p in got.phrases)
        assert total <= 12


def test_descriptor_body_is_an_ordinary_descriptor():
    text = grounded_answer("two cats", [(4, 8)], _grid(["cats,others"]), rle=False)
    assert text.endswith("<seg>cats| others\n</seg>")
    assert decode_descriptor(text, 1, 2).labels.tolist() == [["cats", "others"]]
