"""Tests for text4seg.descriptors: descriptor grammar, robust decoding, mask <-> grid geometry, label maps."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from text4seg.descriptors import (
    BACKGROUND,
    DecodedGrid,
    LabelMap,
    binary_grid_labels,
    decode_descriptor,
    encode_descriptor,
    extract_descriptor,
    grid_to_mask,
    ids_to_labels,
    mask_to_grid,
    parse_grid_size,
    referring_mask,
    sanitize_label,
    wrap_descriptor,
)


def fast(max_examples: int) -> settings:
    """Deterministic hypothesis settings (same examples on every run, no example database)."""
    return settings(
        max_examples=max_examples, derandomize=True, database=None, deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


def grid(rows: list[str]) -> np.ndarray:
    """Grid from rows written as 'a,b,c' (labels without commas)."""
    return np.array([r.split(",") for r in rows], dtype=object)


def spec_rle(rows: list[list[str]]) -> str:
    """The R-RLE grammar of DESIGN.md, written independently of the encoder."""
    return "\n ".join("| ".join(f"{k} *{len(list(g))}" for k, g in itertools.groupby(r)) for r in rows) + "\n"


# ----------------------------------------------------------------------------------------------------------
# encoding: exact strings


@pytest.mark.parametrize(
    ("rows", "rle", "plain"),
    [
        # one row
        ([["dog", "dog", "others"]], "dog *2| others *1\n", "dog| dog| others\n"),
        # one cell
        ([["x"]], "x *1\n", "x\n"),
        # mixed runs: the DESIGN.md example
        (
            [["others", "others", "white horse", "white horse"], ["others"] * 4],
            "others *2| white horse *2\n others *4\n",
            "others| others| white horse| white horse\n others| others| others| others\n",
        ),
        # full target
        ([["the cat"] * 3] * 2, "the cat *3\n the cat *3\n", "the cat| the cat| the cat\n the cat| the cat| the cat\n"),
        # empty target
        ([["others"] * 2] * 2, "others *2\n others *2\n", "others| others\n others| others\n"),
        # multi-class, labels with spaces and commas, non-square
        (
            [
                ["sky", "sky", "sky", "tree"],
                ["sky", "man, standing", "man, standing", "tree"],
                ["grass", "grass", "grass", "grass"],
            ],
            "sky *3| tree *1\n sky *1| man, standing *2| tree *1\n grass *4\n",
            "sky| sky| sky| tree\n sky| man, standing| man, standing| tree\n grass| grass| grass| grass\n",
        ),
        # runs never cross rows; a label repeated after a break starts a new run
        ([["a", "b", "a"], ["a", "a", "a"]], "a *1| b *1| a *1\n a *3\n", "a| b| a\n a| a| a\n"),
    ],
)
def test_encode_exact(rows, rle, plain):
    assert encode_descriptor(rows) == rle
    assert encode_descriptor(np.array(rows, dtype=object), rle=True) == rle
    assert encode_descriptor(rows, rle=False) == plain
    assert rle == spec_rle(rows)


def test_encode_matches_grammar_at_reference_sizes():
    rng = np.random.default_rng(0)
    for h, w in [(16, 16), (24, 24), (32, 32), (16, 32), (5, 3)]:
        ids = (rng.random((h, w)) < 0.3).astype(int)
        rows = [["the dog" if v else "others" for v in r] for r in ids]
        text = encode_descriptor(rows)
        assert text == spec_rle(rows)
        assert text.count("\n") == h and text.endswith("\n") and not text.endswith(" \n")


@pytest.mark.parametrize("label", ["", "   ", "a|b", "a*b", "a\nb", "a\rb", " lead", "trail ", "<seg>", "x</seg>"])
def test_encode_refuses_bad_label(label):
    with pytest.raises(ValueError) as err:
        encode_descriptor([["others", label]])
    assert repr(label) in str(err.value)
    assert "row 0, column 1" in str(err.value)


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ([["a", "b"], ["a"]], "row 1"),
        ([], "at least one"),
        ([[]], "at least one"),
        (np.array(["a", "b"]), "2-D"),
        (["ab", "cd"], "row 0"),
        ([["a", 3]], "not a str"),
        ("a", "one str"),
    ],
)
def test_encode_refuses_bad_grid(bad, needle):
    with pytest.raises(ValueError, match=needle):
        encode_descriptor(bad)


def test_wrap_and_extract():
    assert wrap_descriptor("a *1\n", "Sure.") == "Sure.\n<seg>a *1\n</seg>"
    assert wrap_descriptor("a *1\n") == "<seg>a *1\n</seg>"
    assert extract_descriptor("Sure.\n<seg>a *1\n</seg> bye") == "a *1\n"
    assert extract_descriptor("<seg>a *1\n") == "a *1\n"
    assert extract_descriptor("no tags") is None


def test_sanitize_label():
    assert sanitize_label("  the  dog |left*\n\tside ") == "the dog /leftx side"
    assert sanitize_label("a <seg>b</seg>") == "a b"
    assert sanitize_label("<se<seg>g>x") == "x"
    assert sanitize_label(" \n ") == ""
    assert sanitize_label("man, standing") == "man, standing"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [(16, (16, 16)), ("16", (16, 16)), ("24x32", (24, 32)), (" 24 X 32 ", (24, 32)), ((24, 32), (24, 32)),
     ([8, 4], (8, 4)), (np.int64(7), (7, 7))],
)
def test_parse_grid_size(spec, expected):
    assert parse_grid_size(spec) == expected


@pytest.mark.parametrize("spec", [0, -3, "p16", "16x", "x", "", (16,), (0, 4), True, 2.5, "16x16x16"])
def test_parse_grid_size_refuses(spec):
    with pytest.raises(ValueError, match="grid size"):
        parse_grid_size(spec)


# ----------------------------------------------------------------------------------------------------------
# decoding: exact inverse and exact repairs

LABEL = st.text(
    alphabet=st.characters(blacklist_characters="|*\n\r", blacklist_categories=("Cs",)), min_size=1, max_size=12
).filter(lambda s: s == s.strip() and s and "<seg>" not in s and "</seg>" not in s)


@st.composite
def label_grids(draw, max_side: int = 32) -> np.ndarray:
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    names = draw(st.lists(LABEL, min_size=1, max_size=5, unique=True))
    # Few runs or many: blocky grids (like real masks) and noisy ones.
    blocky = draw(st.booleans())
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if blocky:
        ids = np.zeros((h, w), dtype=int)
        for k in range(1, len(names)):
            y, x = rng.integers(0, h), rng.integers(0, w)
            ids[y : y + rng.integers(1, h + 1), x : x + rng.integers(1, w + 1)] = k
    else:
        ids = rng.integers(0, len(names), (h, w))
    return np.array(names, dtype=object)[ids]


@fast(400)
@given(g=label_grids(), rle=st.booleans(), sentence=st.sampled_from(["", "Sure, here it is.", "x|y *3\nmore"]))
def test_roundtrip(g, rle, sentence):
    text = encode_descriptor(g, rle=rle)
    for source in (text, wrap_descriptor(text, sentence) + " trailing words"):
        decoded = decode_descriptor(source, *g.shape)
        assert decoded.repairs == []
        assert decoded.ok
        assert decoded.form == ("rle" if rle else "plain")
        assert decoded.labels.shape == g.shape and decoded.labels.dtype == object
        assert (decoded.labels == g).all()


def test_roundtrip_without_tags_after_answer_text():
    g = grid(["others,dog,dog", "others,others,dog"])
    for rle in (True, False):
        text = "Sure, here is the mask.\n" + encode_descriptor(g, rle=rle)
        decoded = decode_descriptor(text, 2, 3)
        assert decoded.ok and (decoded.labels == g).all()


def test_decode_whitespace_variants_are_not_repairs():
    decoded = decode_descriptor("<seg>\n  others*2 |dog *2  \r\n  others *4\r\n\n</seg>", 2, 4)
    assert decoded.ok and decoded.form == "rle"
    assert decoded.labels.tolist() == [["others", "others", "dog", "dog"], ["others"] * 4]


def test_decode_keeps_inner_spaces_and_commas():
    decoded = decode_descriptor("big  white, horse *2| others *1\n", 1, 3)
    assert decoded.labels.tolist() == [["big  white, horse", "big  white, horse", "others"]]


def test_decode_plain_cell_named_like_background():
    # "others" as a plain cell is one cell, in either form; nothing is ambiguous.
    assert decode_descriptor("others| dog\n", 1, 2).labels.tolist() == [["others", "dog"]]
    assert decode_descriptor("others *1| dog *1\n", 1, 2).labels.tolist() == [["others", "dog"]]


def _rows(decoded: DecodedGrid) -> list[str]:
    return [",".join(r) for r in decoded.labels.tolist()]


O4 = "others *4"


@pytest.mark.parametrize(
    ("text", "rows", "repairs", "form"),
    [
        # row too short: padded with its own last label
        (f"others *2| dog *1\n {O4}\n {O4}\n",
         ["others,others,dog,dog", "others,others,others,others", "others,others,others,others"],
         ["row 0: 3 cells, padded with 'dog'"], "rle"),
        # row too long: cut
        (f"{O4}\n others *3| dog *2\n {O4}\n",
         ["others,others,others,others", "others,others,others,dog", "others,others,others,others"],
         ["row 1: 5 cells, cut to 4"], "rle"),
        # missing rows repeat the last one
        ("dog *1| others *3\n",
         ["dog,others,others,others"] * 3,
         ["rows 1-2 missing, repeated row 0"], "rle"),
        (f"{O4}\n dog *4\n",
         ["others,others,others,others", "dog,dog,dog,dog", "dog,dog,dog,dog"],
         ["row 2 missing, repeated row 1"], "rle"),
        # extra rows dropped
        (f"{O4}\n {O4}\n {O4}\n dog *4\n cat *4\n",
         ["others,others,others,others"] * 3,
         ["2 extra rows dropped"], "rle"),
        # missing / absurd counts count 1, per token; the row is then padded
        (f"dog *| cat *x| a *0| b *99\n {O4}\n {O4}\n",
         ["dog,cat,a,b", "others,others,others,others", "others,others,others,others"],
         ["row 0: run 'dog *' has no valid count (1..4), counted as 1",
          "row 0: run 'cat *x' has no valid count (1..4), counted as 1",
          "row 0: run 'a *0' has no valid count (1..4), counted as 1",
          "row 0: run 'b *99' has no valid count (1..4), counted as 1"], "rle"),
        (f"dog *99999999999999999999999| cat *3\n {O4}\n {O4}\n",
         ["dog,cat,cat,cat", "others,others,others,others", "others,others,others,others"],
         ["row 0: run 'dog *99999999999999999999999' has no valid count (1..4), counted as 1"], "rle"),
        # a token without a count in an R-RLE descriptor counts 1
        (f"others *3| dog\n {O4}\n {O4}\n",
         ["others,others,others,dog", "others,others,others,others", "others,others,others,others"],
         ["row 0: token 'dog' has no count, counted as 1"], "rle"),
        # a run inside a plain descriptor is expanded
        ("others| dog *2| others\n others| others| others| others\n dog| dog| dog| dog\n",
         ["others,dog,dog,others", "others,others,others,others", "dog,dog,dog,dog"],
         ["row 0: run 'dog *2' in a plain descriptor, expanded to 2 cells"], "plain"),
        # junk tokens dropped (empty, nothing before '*')
        (f"others *2| | *3| dog *2|\n {O4}\n {O4}\n",
         ["others,others,dog,dog", "others,others,others,others", "others,others,others,others"],
         ["row 0: junk token '' dropped", "row 0: junk token '*3' dropped", "row 0: junk token '' dropped"], "rle"),
        # a row of pure junk copies the row above and does not shift the rows below
        (f"dog *4\n *2| ***\n {O4}\n",
         ["dog,dog,dog,dog", "dog,dog,dog,dog", "others,others,others,others"],
         ["row 1: junk token '*2' dropped", "row 1: junk token '***' dropped", "row 1: no cells, copied row 0"],
         "rle"),
        (f"*2\n dog *4\n {O4}\n",
         ["others,others,others,others", "dog,dog,dog,dog", "others,others,others,others"],
         ["row 0: junk token '*2' dropped", "row 0: no cells, filled with 'others'"], "rle"),
        # a blank line between rows is an empty row, not a lost separator
        (f"dog *4\n\n {O4}\n",
         ["dog,dog,dog,dog", "dog,dog,dog,dog", "others,others,others,others"],
         ["row 1: no cells, copied row 0"], "rle"),
        # nothing to decode
        ("", ["others,others,others,others"] * 3, ["no descriptor found: all cells 'others'"], "empty"),
        ("<seg></seg>", ["others,others,others,others"] * 3, ["no descriptor found: all cells 'others'"], "empty"),
        ("Sorry, I cannot find it.", ["others,others,others,others"] * 3,
         ["no descriptor found: all cells 'others'"], "empty"),
        ("<seg>| |\n</seg>", ["others,others,others,others"] * 3, ["no descriptor found: all cells 'others'"], "empty"),
        # truncated answer (generation stopped early)
        ("Sure.\n<seg>dog *4\n others *2| d",
         ["dog,dog,dog,dog", "others,others,d,d", "others,others,d,d"],
         ["no </seg> after <seg>: read to the end of the text", "row 1: token 'd' has no count, counted as 1",
          "row 1: 3 cells, padded with 'd'",
          "row 2 missing, repeated row 1"], "rle"),
        ("dog *4\n</seg>",
         ["dog,dog,dog,dog"] * 3,
         ["</seg> without <seg>: read the text before it", "rows 1-2 missing, repeated row 0"], "rle"),
        ("<seg>dog *4\n<seg> cat *4\n cat *4\n</seg>",
         ["dog,dog,dog,dog", "cat,cat,cat,cat", "cat,cat,cat,cat"],
         ["stray <seg> tags removed"], "rle"),
    ],
)
def test_decode_repairs_exact(text, rows, repairs, form):
    decoded = decode_descriptor(text, 3, 4)
    assert _rows(decoded) == rows
    assert decoded.repairs == repairs
    assert decoded.form == form
    assert decoded.ok is (not repairs)


def test_decode_only_reads_the_first_seg_block():
    text = "<seg>dog *2\n</seg> and also <seg>cat *2\n</seg>"
    decoded = decode_descriptor(text, 1, 2)
    assert decoded.ok and decoded.labels.tolist() == [["dog", "dog"]]


def test_decode_width_one_plain_and_custom_background():
    assert decode_descriptor("a\n b\n", 2, 1).labels.tolist() == [["a"], ["b"]]
    decoded = decode_descriptor("", 2, 2, background="bg")
    assert decoded.labels.tolist() == [["bg", "bg"], ["bg", "bg"]] and decoded.form == "empty"


def test_decode_refuses_bad_size_only():
    with pytest.raises(ValueError, match="grid size"):
        decode_descriptor("a *1\n", 0, 4)
    assert decode_descriptor(None, 1, 1).form == "empty"


# ----------------------------------------------------------------------------------------------------------
# decoding: fuzz (never raises, always H x W, labels always re-encodable)

SEP_HEAVY = st.text(alphabet=st.sampled_from(list("ab o|* \n\r\t0123456789<>/seg,")), max_size=200)


def _check_decoded(decoded: DecodedGrid, h: int, w: int) -> None:
    assert isinstance(decoded, DecodedGrid)
    assert decoded.labels.shape == (h, w) and decoded.labels.dtype == object
    assert decoded.form in ("rle", "plain", "empty")
    assert all(isinstance(r, str) for r in decoded.repairs)
    assert decoded.ok is (not decoded.repairs)
    # Whatever was decoded is a valid label grid: it encodes, and decodes back unchanged.
    again = decode_descriptor(encode_descriptor(decoded.labels), h, w)
    assert again.ok and (again.labels == decoded.labels).all()


@fast(800)
@given(text=st.one_of(st.text(max_size=300), SEP_HEAVY), h=st.integers(1, 32), w=st.integers(1, 32))
def test_fuzz_random_text(text, h, w):
    _check_decoded(decode_descriptor(text, h, w), h, w)


@st.composite
def mutated_descriptors(draw):
    g = draw(label_grids(max_side=16))
    text = encode_descriptor(g, rle=draw(st.booleans()))
    if draw(st.booleans()):
        text = wrap_descriptor(text, "Sure.")
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "insert", "duplicate_line", "drop_line", "truncate", "swap"]))
        n = len(text)
        i = draw(st.integers(0, n))
        j = draw(st.integers(i, min(n, i + 20)))
        if op == "delete":
            text = text[:i] + text[j:]
        elif op == "insert":
            piece = draw(st.sampled_from(["|", "*", " *", "\n ", "\n", "*0", "*999", "<seg>", "</seg>", "x", " "]))
            text = text[:i] + piece + text[i:]
        elif op == "truncate":
            text = text[:i]
        else:
            lines = text.split("\n")
            k = draw(st.integers(0, len(lines) - 1))
            if op == "duplicate_line":
                lines.insert(k, lines[k])
            elif op == "drop_line":
                del lines[k]
            else:
                m = draw(st.integers(0, len(lines) - 1))
                lines[k], lines[m] = lines[m], lines[k]
            text = "\n".join(lines)
    h = draw(st.sampled_from([g.shape[0], max(1, g.shape[0] - 1), g.shape[0] + 2]))
    w = draw(st.sampled_from([g.shape[1], max(1, g.shape[1] - 2), g.shape[1] + 1]))
    return text, h, w


@fast(1200)
@given(case=mutated_descriptors())
def test_fuzz_mutated_descriptors(case):
    text, h, w = case
    _check_decoded(decode_descriptor(text, h, w), h, w)


@fast(200)
@given(g=label_grids(max_side=12), rle=st.booleans(), data=st.data())
def test_one_bad_row_never_shifts_the_others(g, rle, data):
    lines = encode_descriptor(g, rle=rle).split("\n ")
    k = data.draw(st.integers(0, len(lines) - 1))
    junk = data.draw(st.text(alphabet=st.sampled_from(list("xy |*0123456789")), min_size=1, max_size=40))
    junk = junk if junk.strip() else "x"
    lines[k] = junk + ("\n" if k == len(lines) - 1 else "")
    decoded = decode_descriptor(wrap_descriptor("\n ".join(lines)), *g.shape)
    for i in range(g.shape[0]):
        if i != k:
            assert (decoded.labels[i] == g[i]).all()


# ----------------------------------------------------------------------------------------------------------
# mask -> grid


def test_mask_to_grid_nearest_exact_non_square():
    mask = np.arange(24).reshape(4, 6)
    # PIL NEAREST picks source pixel floor((i + 0.5) * in / out): rows 1, 3; columns 1, 3, 5.
    assert mask_to_grid(mask, 2, 3).tolist() == [[7, 9, 11], [19, 21, 23]]
    assert mask_to_grid(mask, 2, 3).dtype == np.int64


def test_mask_to_grid_nearest_matches_pil():
    rng = np.random.default_rng(1)
    for _ in range(60):
        h0, w0 = (int(v) for v in rng.integers(1, 90, 2))
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        m = rng.integers(0, 256, (h0, w0)).astype(np.uint8)
        ref = np.asarray(Image.fromarray(m).resize((w, h), Image.Resampling.NEAREST))
        assert (mask_to_grid(m, h, w) == ref).all()
        big = rng.integers(0, 70000, (h0, w0)).astype(np.int32)  # label map > 255: PIL mode "I"
        ref = np.asarray(Image.fromarray(big).resize((w, h), Image.Resampling.NEAREST))
        assert (mask_to_grid(big.astype(np.int64), h, w) == ref).all()


def test_mask_to_grid_bool_and_small_masks():
    mask = np.array([[True, False], [False, True]])
    assert mask_to_grid(mask, 4, 4).tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
    assert mask_to_grid(mask, 4, 4, mode="area").tolist() == mask_to_grid(mask, 4, 4).tolist()
    assert mask_to_grid(np.array([[5]]), 2, 3, mode="area").tolist() == [[5, 5, 5], [5, 5, 5]]


def test_mask_to_grid_area_thin_object_survives():
    mask = np.zeros((8, 8), dtype=bool)
    mask[:, 2] = True  # one pixel wide: half of every cell in grid column 1
    assert mask_to_grid(mask, 4, 4).tolist() == [[0, 0, 0, 0]] * 4  # nearest samples columns 1, 3, 5, 7
    assert mask_to_grid(mask, 4, 4, mode="area").tolist() == [[0, 1, 0, 0]] * 4
    assert mask_to_grid(mask, 4, 4, mode="area", min_fraction=0.6).tolist() == [[0, 0, 0, 0]] * 4


def test_mask_to_grid_area_min_fraction_boundary():
    mask = np.zeros((4, 4), dtype=np.uint8)
    mask[0, 0] = 1  # exactly a quarter of cell (0, 0)
    assert mask_to_grid(mask, 2, 2, mode="area").tolist() == [[1, 0], [0, 0]]
    assert mask_to_grid(mask, 2, 2, mode="area", min_fraction=0.26).tolist() == [[0, 0], [0, 0]]


def test_mask_to_grid_area_fractional_cells():
    # 3 pixel rows into 2 cells: each cell spans 1.5 rows. Cell 0 = row 0 + half of row 1.
    mask = np.array([[1, 0], [0, 0], [0, 0]])
    assert mask_to_grid(mask, 2, 2, mode="area", min_fraction=0.9).tolist() == [[1, 0], [0, 0]]  # 2/3: largest
    # one grid column over both pixel columns: cell 0 has 1 of 3 pixels foreground
    assert mask_to_grid(mask, 2, 1, mode="area", min_fraction=0.33).tolist() == [[1], [0]]
    assert mask_to_grid(mask, 2, 1, mode="area", min_fraction=0.34).tolist() == [[0], [0]]
    mask = np.array([[0, 0], [1, 0], [0, 0]])  # row 1 is split half/half between the cells: 1/3 each
    assert mask_to_grid(mask, 2, 2, mode="area").tolist() == [[1, 0], [1, 0]]
    assert mask_to_grid(mask, 2, 2, mode="area", min_fraction=0.34).tolist() == [[0, 0], [0, 0]]


def test_mask_to_grid_area_multi_class():
    m = np.zeros((10, 10), dtype=np.int64)
    m.flat[50:80] = 3
    m.flat[80:100] = 5  # one cell: 50% id 0, 30% id 3, 20% id 5
    assert mask_to_grid(m, 1, 1, mode="area").tolist() == [[3]]  # largest foreground >= 0.25 beats background
    assert mask_to_grid(m, 1, 1, mode="area", min_fraction=0.35).tolist() == [[0]]  # largest share wins
    assert mask_to_grid(m, 1, 1, mode="area", background_id=3).tolist() == [[0]]  # id 0 is now foreground
    m.flat[:50] = 7  # no background at all: largest share wins
    assert mask_to_grid(m, 1, 1, mode="area", min_fraction=0.9).tolist() == [[7]]


def test_mask_to_grid_area_any_id_range():
    m = np.array([[-5, -5, 70000, 70000], [-5, -5, 70000, 9]], dtype=np.int64)
    assert mask_to_grid(m, 1, 2, mode="area").tolist() == [[-5, 70000]]
    assert mask_to_grid(m, 1, 2, mode="area", background_id=70000).tolist() == [[-5, 9]]
    assert mask_to_grid(m.astype(np.int32), 2, 4, mode="area").tolist() == m.tolist()


@pytest.mark.parametrize(
    ("mask", "kwargs", "needle"),
    [
        (np.zeros((2, 2), dtype=float), {}, "dtype"),
        (np.zeros((2, 2, 3), dtype=np.uint8), {}, "2-D"),
        (np.zeros((0, 3), dtype=np.uint8), {}, "2-D"),
        (np.zeros((2, 2), dtype=np.uint8), {"mode": "bicubic"}, "mode"),
        (np.zeros((2, 2), dtype=np.uint8), {"mode": "area", "min_fraction": 0.0}, "min_fraction"),
    ],
)
def test_mask_to_grid_refuses(mask, kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        mask_to_grid(mask, 2, 2, **kwargs)


# ----------------------------------------------------------------------------------------------------------
# grid -> mask


def test_grid_to_mask_nearest_exact():
    g = grid(["a,b", "c,d"])
    ids = {"a": 1, "b": 2, "c": 3, "d": 4}
    # rows: floor((y + .5) * 2 / 3) = 0, 1, 1; columns: floor((x + .5) * 2 / 5) = 0, 0, 1, 1, 1
    out = grid_to_mask(g, ids, (3, 5))
    assert out.dtype == np.int64
    assert out.tolist() == [[1, 1, 2, 2, 2], [3, 3, 4, 4, 4], [3, 3, 4, 4, 4]]


def test_grid_to_mask_nearest_matches_pil():
    rng = np.random.default_rng(2)
    names = np.array(["others", "a", "b", "c"], dtype=object)
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(1, 33, 2))
        h0, w0 = (int(v) for v in rng.integers(1, 120, 2))
        ids = rng.integers(0, 4, (h, w))
        ref = np.asarray(Image.fromarray(ids.astype(np.uint8)).resize((w0, h0), Image.Resampling.NEAREST))
        out = grid_to_mask(names[ids], {n: i for i, n in enumerate(names)}, (h0, w0))
        assert (out == ref).all()


def test_grid_to_mask_smooth_exact():
    g = grid(["a,others", "others,others"])
    # 2 -> 4 bilinear weights of source 0 per output: 1, .75, .25, 0; 'a' wins where the product > 0.5
    out = grid_to_mask(g, {"others": 0, "a": 1}, (4, 4), mode="smooth")
    assert out.tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    # 2 -> 3: weights 1, .5, 0. At (0, 1) 'a' and 'others' tie at 0.5: the smaller id wins.
    out = grid_to_mask(g, {"others": 0, "a": 1}, (3, 3), mode="smooth")
    assert out.tolist() == [[1, 0, 0], [0, 0, 0], [0, 0, 0]]
    out = grid_to_mask(g, {"others": 2, "a": 1}, (3, 3), mode="smooth")
    assert out.tolist() == [[1, 1, 2], [1, 2, 2], [2, 2, 2]]


def test_grid_to_mask_smooth_matches_pil_bilinear():
    rng = np.random.default_rng(3)
    names = np.array(["others", "a", "b"], dtype=object)
    for _ in range(30):
        h, w = (int(v) for v in rng.integers(1, 10, 2))
        h0, w0 = h * int(rng.integers(1, 5)) + int(rng.integers(0, 3)), w * int(rng.integers(1, 5))
        ids = rng.integers(0, 3, (h, w))
        scores = np.stack([
            np.asarray(Image.fromarray((ids == k).astype(np.float32), mode="F").resize((w0, h0), Image.BILINEAR))
            for k in range(3)
        ])
        top2 = np.sort(scores, axis=0)[-2:]
        clear = top2[1] - top2[0] > 1e-4  # compare away from float ties
        out = grid_to_mask(names[ids], {n: i for i, n in enumerate(names)}, (h0, w0), mode="smooth")
        assert (out[clear] == scores.argmax(axis=0)[clear]).all()


def test_grid_to_mask_fallback_and_labelmap():
    g = grid(["Dog,cat", "others,zebra"])
    assert grid_to_mask(g, {"cat": 2, "others": 0}, (2, 2), fallback_id=9).tolist() == [[9, 2], [0, 9]]
    lm = LabelMap(["others", "dog", "cat"], fallback_id=255)
    assert grid_to_mask(g, lm, (2, 2)).tolist() == [[1, 2], [0, 255]]
    with pytest.raises(ValueError, match="mode"):
        grid_to_mask(g, lm, (2, 2), mode="cubic")


def test_referring_mask_full_empty_and_non_square():
    full = np.full((16, 16), "the whole picture", dtype=object)
    assert referring_mask(full, (30, 50)).all()
    assert referring_mask(full, (30, 50), mode="smooth").all()
    empty = np.full((16, 16), BACKGROUND, dtype=object)
    out = referring_mask(empty, (30, 50))
    assert out.shape == (30, 50) and out.dtype == bool and not out.any()
    g = grid(["others,dog", "others,others"])
    assert referring_mask(g, (2, 6)).tolist() == [[False] * 3 + [True] * 3, [False] * 6]
    # the reference decodes a full target as empty when "others" is absent; the decoded text must not
    decoded = decode_descriptor(encode_descriptor(full), 16, 16)
    assert referring_mask(decoded.labels, (7, 9)).all()


def test_pipeline_mask_to_text_to_mask():
    mask = np.zeros((48, 64), dtype=bool)
    mask[10:30, 20:50] = True
    ids = mask_to_grid(mask, 16, 16)
    text = wrap_descriptor(encode_descriptor(binary_grid_labels(ids, "the red box")), "Sure.")
    decoded = decode_descriptor(text, 16, 16)
    assert decoded.ok
    restored = referring_mask(decoded.labels, mask.shape)
    expected = np.asarray(Image.fromarray(ids.astype(np.uint8)).resize((64, 48), Image.Resampling.NEAREST)) > 0
    assert (restored == expected).all()
    iou = (restored & mask).sum() / (restored | mask).sum()
    assert iou > 0.8


# ----------------------------------------------------------------------------------------------------------
# labels


def test_binary_grid_labels_and_ids_to_labels():
    ids = np.array([[0, 1], [2, 255]])
    assert binary_grid_labels(ids, "dog").tolist() == [["others", "dog"], ["dog", "dog"]]
    assert binary_grid_labels(ids, "dog", background="bg").tolist() == [["bg", "dog"], ["dog", "dog"]]
    assert ids_to_labels(ids, ["wall", "sky", "tree"]).tolist() == [["wall", "sky"], ["tree", "others"]]
    assert ids_to_labels(ids, {1: "sky", 255: "void"}).tolist() == [["others", "sky"], ["others", "void"]]


def test_labelmap_normalises_and_reports_unknown():
    lm = LabelMap(["background", "dining table", "person"], synonyms={"table": "Dining Table"},
                  background_id=0)
    labels = grid(["  Dining   TABLE ,table,others", "person,zebra,Aardvark", "zebra,background,PERSON"])
    ids, unknown = lm.ids(labels)
    assert ids.dtype == np.int64
    assert ids.tolist() == [[1, 1, 0], [2, 255, 255], [255, 0, 2]]
    assert unknown == ["Aardvark", "zebra"]
    assert lm.lookup("dining\ttable") == 1 and lm.lookup("nothing") is None
    assert lm.background_id == 0


def test_labelmap_background_without_class():
    lm = LabelMap({0: "wall", 5: "sky"}, fallback_id=255)
    ids, unknown = lm.ids(grid(["others,Sky", "wall,cloud"]))
    assert ids.tolist() == [[255, 5], [0, 255]]
    assert unknown == ["cloud"]  # background is known, just unlabeled
    lm = LabelMap(["others", "sky"])
    assert lm.ids(grid(["others,sky"]))[0].tolist() == [[0, 1]]


def test_labelmap_refuses_bad_definitions():
    with pytest.raises(ValueError, match="duplicates"):
        LabelMap(["sky", "Sky "])
    with pytest.raises(ValueError, match="'unicorn'"):
        LabelMap(["sky"], synonyms={"horse": "unicorn"})


def test_light_import():
    import subprocess
    import sys

    code = "import sys, text4seg.descriptors; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
