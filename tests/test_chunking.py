"""Class-list chunking: the ordered split, the cell-by-cell merge (exact on hand-made grids and scores, and a
property test against a brute-force rule), and ``Segmenter.segment(classes=..., chunk_size=N)`` with stub
backends (prompts, merged map, ids past 255, the unknown id, per-chunk records)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from text4seg.chunking import class_chunks, label_key, merge_chunk_grids
from text4seg.config import Text4SegConfig
from text4seg.decoding import GeneratedText
from text4seg.descriptors import LabelMap, decode_descriptor, encode_descriptor, wrap_descriptor
from text4seg.segmenter import Segmenter


def grid(rows: list[str]) -> np.ndarray:
    return np.array([r.split(",") for r in rows], dtype=object)


LABELS = LabelMap(["sky", "road", "car", "tree"])


def test_class_chunks_split_in_order():
    assert class_chunks(["a", "b", "c", "d", "e"], 2) == [["a", "b"], ["c", "d"], ["e"]]
    assert class_chunks(["a", "b"], 5) == [["a", "b"]]
    assert class_chunks(("a", "b", "c"), 1) == [["a"], ["b"], ["c"]]
    for bad in (0, -1, True, 2.0, None):
        with pytest.raises(ValueError, match="chunk_size"):
            class_chunks(["a"], bad)
    with pytest.raises(ValueError, match="classes"):
        class_chunks([], 2)
    with pytest.raises(ValueError, match="classes"):
        class_chunks("ab", 2)


@given(n=st.integers(1, 60), size=st.integers(1, 70))
@settings(max_examples=60, derandomize=True, database=None, deadline=None)
def test_class_chunks_property(n, size):
    names = [f"c{k}" for k in range(n)]
    chunks = class_chunks(names, size)
    assert [name for chunk in chunks for name in chunk] == names
    assert len(chunks) == math.ceil(n / size) and all(1 <= len(c) <= size for c in chunks)


def test_merge_picks_the_best_scored_class_label():
    grids = [grid(["sky,sky,others", "others,others,others"]),
             grid(["road,others,others", "road,car,others"])]
    scores = [{"sky": -0.2, "others": -0.01}, {"road": -0.5, "car": -0.1, "others": -0.01}]
    merged = merge_chunk_grids(grids, scores, LABELS)
    assert merged.labels.tolist() == [["sky", "sky", "others"], ["road", "car", "others"]]
    assert merged.chunk.tolist() == [[0, 0, -1], [1, 1, -1]]
    scores[1]["road"] = -0.1  # now road beats sky at (0, 0)
    merged = merge_chunk_grids(grids, scores, LABELS)
    assert merged.labels[0, 0] == "road" and merged.chunk[0, 0] == 1


def test_merge_ties_and_missing_scores_go_to_the_earlier_chunk():
    grids = [grid(["others,sky"]), grid(["road,road"]), grid(["car,car"])]
    # without scores: the first chunk naming a class
    merged = merge_chunk_grids(grids, [None, None, None], LABELS)
    assert merged.labels.tolist() == [["road", "sky"]] and merged.chunk.tolist() == [[1, 0]]
    # equal scores: earlier chunk; a label missing from its dict (or NaN) scores -inf
    merged = merge_chunk_grids(grids, [{"sky": -1.0}, {"road": -1.0}, {"car": -1.0}], LABELS)
    assert merged.labels.tolist() == [["road", "sky"]]
    merged = merge_chunk_grids(grids, [{"sky": float("nan")}, {}, {"car": -3.0}], LABELS)
    assert merged.labels.tolist() == [["car", "car"]] and merged.chunk.tolist() == [[2, 2]]


def test_merge_ranks_class_over_unknown_over_background():
    grids = [grid(["wall,others,Others"]), grid(["tree,wall,  others "])]
    scores = [{"wall": -0.01}, {"tree": -5.0, "wall": -0.1}]
    merged = merge_chunk_grids(grids, scores, LABELS)
    # a listed class beats a better-scored unknown label; an unknown label beats background; background
    # (any case or spacing) in every chunk stays background
    assert merged.labels.tolist() == [["tree", "wall", "others"]]
    assert merged.chunk.tolist() == [[1, 1, -1]]
    # case/space variants of a class name count as that class (LabelMap lookup) and keep their spelling
    merged = merge_chunk_grids([grid(["Sky ,others"])], [None], LABELS)
    assert merged.labels.tolist() == [["Sky ", "others"]]


def test_merge_errors():
    with pytest.raises(ValueError, match="no chunk grids"):
        merge_chunk_grids([], [], LABELS)
    with pytest.raises(ValueError, match="2 grids but 1 score"):
        merge_chunk_grids([grid(["sky"]), grid(["sky"])], [None], LABELS)
    with pytest.raises(ValueError, match="chunk 1 has a"):
        merge_chunk_grids([grid(["sky"]), grid(["sky,sky"])], [None, None], LABELS)
    assert label_key("  person   2 ") == "person 2"


_CHOICES = ["sky", "road", "car", "tree", "others", "wall", "Sky"]


@st.composite
def chunk_cases(draw):
    h, w, n = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    grids = [np.array(draw(st.lists(st.lists(st.sampled_from(_CHOICES), min_size=w, max_size=w),
                                    min_size=h, max_size=h)), dtype=object) for _ in range(n)]
    scores = []
    for _ in range(n):
        if draw(st.booleans()):
            scores.append(None)
        else:
            keys = draw(st.lists(st.sampled_from(_CHOICES), unique=True))
            scores.append({k: draw(st.sampled_from([-3.0, -1.0, -0.5, 0.0])) for k in keys})
    return grids, scores


@given(case=chunk_cases())
@settings(max_examples=150, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
def test_merge_matches_a_brute_force_rule(case):
    grids, scores = case
    merged = merge_chunk_grids(grids, scores, LABELS)
    h, w = grids[0].shape
    for i in range(h):
        for j in range(w):
            best, best_key = -1, None
            for k, (g, s) in enumerate(zip(grids, scores)):
                label = g[i, j]
                if label.casefold() == "others":
                    continue
                rank = 2 if LABELS.lookup(label) is not None else 1
                key = (rank, (s or {}).get(label, -math.inf))
                if best_key is None or key > best_key:
                    best, best_key = k, key
            assert merged.chunk[i, j] == best
            assert merged.labels[i, j] == ("others" if best < 0 else grids[best][i, j])


# ---------------------------------------------------------------------------------------- Segmenter


CONFIG = Text4SegConfig(grid=(2, 2), descriptor_form="plain")


class _ChunkBackend:
    """Answers each prompt with the descriptor given for its first listed class; optional label scores."""

    def __init__(self, answers: dict[str, list[str]], scores: dict[str, dict] | None = None):
        self.answers, self.scores, self.prompts, self.scored = answers, scores, [], []

    def _answer(self, prompt):
        first = prompt.split(": ", 1)[1].split(", ")[0].rstrip(".")
        rows = self.answers[first]
        return first, wrap_descriptor(encode_descriptor(np.array([r.split(",") for r in rows], dtype=object),
                                                       rle=False))

    def generate(self, image, prompts):
        self.prompts.extend(prompts)
        return [GeneratedText(self._answer(p)[1], 5, 2, 0.25) for p in prompts]


class _ScoredChunkBackend(_ChunkBackend):
    def label_scores(self, images, prompts, answers):
        self.scored.extend(prompts)
        return [self.scores[self._answer(p)[0]] for p in prompts]


def _classes(n):
    return [f"class {k}" for k in range(n)]


def test_segment_chunked_prompts_merge_and_records():
    classes = ["sky", "road", "car", "tree", "person"]
    answers = {"sky": ["sky,others", "road,others"], "car": ["car,car", "others,others"],
               "person": ["person,others", "others,tree"]}
    scores = {"sky": {"sky": -0.3, "road": -0.2, "others": 0.0}, "car": {"car": -0.1, "others": 0.0},
              "person": {"person": -0.5, "tree": -9.0}}
    backend = _ScoredChunkBackend(answers, scores)
    res = Segmenter(backend, CONFIG).segment(np.zeros((4, 6, 3), np.uint8), classes=classes, chunk_size=2)
    assert backend.prompts == ["Please segment the image into these classes: sky, road.",
                               "Please segment the image into these classes: car, tree.",
                               "Please segment the image into these classes: person."]
    assert backend.scored == backend.prompts
    # (0,0): car -0.1 > sky -0.3 > person -0.5; (0,1): car; (1,0): road (only); (1,1): tree, a listed class
    # named by the chunk that does not list it
    assert res.grid.tolist() == [["car", "car"], ["road", "tree"]]
    assert res.extra["cell_chunk"].tolist() == [[1, 1], [0, 2]]
    assert res.mask.dtype == np.int64 and res.mask.shape == (4, 6)
    assert res.mask[:2].tolist() == [[2] * 6] * 2 and res.mask[2:].tolist() == [[1, 1, 1, 3, 3, 3]] * 2
    assert res.query == "sky, road, car, tree, person" and res.repairs == []
    assert res.prompt == "\n".join(backend.prompts)
    assert (res.tokens, res.forward_passes, res.seconds, res.form) == (15, 6, 0.75, "plain")
    assert decode_descriptor(res.text, 2, 2).labels.tolist() == res.grid.tolist()
    chunks = res.extra["chunks"]
    assert [c["classes"] for c in chunks] == [["sky", "road"], ["car", "tree"], ["person"]]
    assert [c["prompt"] for c in chunks] == backend.prompts
    assert chunks[1]["label_scores"] == {"car": -0.1, "others": 0.0} and chunks[2]["form"] == "plain"
    # a segment_many call: the chunks of every image in one go, one result per image
    backend = _ScoredChunkBackend(answers, scores)
    out = Segmenter(backend, CONFIG).segment_many([(np.zeros((2, 2, 3), np.uint8), None)] * 2, classes=classes,
                                                  chunk_size=2)
    assert [len(r) for r in out] == [1, 1] and len(backend.prompts) == 6
    assert out[1][0].grid.tolist() == [["car", "car"], ["road", "tree"]]


def test_segment_chunked_without_scores_takes_the_first_naming_chunk():
    answers = {"sky": ["sky,others", "others,others"], "car": ["car,car", "others,wall"]}
    res = Segmenter(_ChunkBackend(answers), CONFIG).segment(np.zeros((2, 2, 3), np.uint8),
                                                            classes=["sky", "road", "car"], chunk_size=2)
    assert res.grid.tolist() == [["sky", "car"], ["others", "wall"]]
    assert res.extra["chunks"][0]["label_scores"] is None
    # background is not listed: 255, like an unknown label (the single-prompt rule)
    assert res.mask.tolist() == [[0, 2], [255, 255]]
    assert res.repairs == ["unknown class 'wall': id 255"]


def test_segment_chunked_ids_past_255():
    classes = _classes(300)
    answers = {f"class {k}": ["others,others", "others,others"] for k in range(0, 300, 100)}
    answers["class 200"] = ["class 299,class 256", "bogus,others"]
    res = Segmenter(_ChunkBackend(answers), CONFIG).segment(np.zeros((2, 2, 3), np.uint8), classes=classes,
                                                            chunk_size=100)
    assert len(res.extra["chunks"]) == 3 and all(len(c["classes"]) <= 100 for c in res.extra["chunks"])
    # unknown labels and the unlisted background take 65535 past 255 classes (class 255 is a class)
    assert res.mask.dtype == np.int64 and res.mask.tolist() == [[299, 256], [65535, 65535]]
    assert res.repairs == ["unknown class 'bogus': id 65535"]
    single = Segmenter(_ChunkBackend(answers), CONFIG).segment(np.zeros((2, 2, 3), np.uint8),
                                                               classes=["class 200", *classes[1:200]])
    assert single.mask.tolist() == [[255, 255], [255, 255]]  # <= 255 classes: still 255


def test_segment_chunk_size_errors():
    seg = Segmenter(_ChunkBackend({}), CONFIG)
    image = np.zeros((2, 2, 3), np.uint8)
    with pytest.raises(ValueError, match="chunk_size= applies to classes"):
        seg.segment(image, "a dog", chunk_size=2)
    with pytest.raises(ValueError, match="chunk_size= applies to classes"):
        seg.segment(image, classes=["a"], instances=True, chunk_size=2)
    with pytest.raises(ValueError, match="chunk_size 0"):
        seg.segment(image, classes=["a"], chunk_size=0)
    with pytest.raises(ValueError, match="previous= drafts"):
        seg.segment_many([(image, None)], classes=["a"], chunk_size=1, previous=[None])


# ------------------------------------------------------------------------------------------- tiny model


@pytest.fixture(scope="module")
def tiny_vocab_model(tmp_path_factory):
    """A tiny LLaVA (random weights) with one cell token per class name of a 40-class list."""
    from text4seg.modeling import build_tiny_model
    from text4seg.prompts import semantic_question

    names = [f"{a} {b}" for a in ("red", "blue", "green", "dark", "tall") for b in ("box", "cup", "tree", "rock",
                                                                                     "door", "lamp", "road", "bird")]
    out = build_tiny_model(tmp_path_factory.mktemp("tiny_vocab"), texts=[semantic_question(names)], labels=names,
                           grid=4, patch_size=4, vision_hidden=32, vision_layers=1, text_hidden=64, text_layers=2,
                           heads=2, mlp_ratio=2, vocab_size=400, max_positions=1024, seed=0, descriptor_form="plain")
    return out, names


@pytest.mark.slow
def test_chunks_on_the_tiny_model_use_their_own_class_lists(tiny_vocab_model):
    from text4seg.decoding.labels import allowed_labels

    model_dir, names = tiny_vocab_model
    image = np.random.default_rng(0).integers(0, 255, (16, 24, 3), dtype=np.uint8)
    texts = {}
    for mode in ("constrained", "fast"):
        seg = Segmenter.from_pretrained(model_dir, decoding=mode, device="cpu")
        res = seg.segment(image, classes=names, chunk_size=15)
        chunks = res.extra["chunks"]
        assert [c["classes"] for c in chunks] == [names[:15], names[15:30], names[30:]]
        grids = []
        for c in chunks:
            # the grammar reads each chunk's labels from its own prompt: only its classes and the background
            assert allowed_labels(c["prompt"], seg.config) == [*c["classes"], "others"]
            decoded = decode_descriptor(c["text"], 4, 4)
            assert decoded.repairs == [] and set(decoded.labels.ravel()) <= {*c["classes"], "others"}
            # every label of the answer has a score, under the key the merge looks up
            assert {label_key(v) for v in decoded.labels.ravel()} == set(c["label_scores"])
            assert all(v <= 0 for v in c["label_scores"].values())
            grids.append(decoded.labels)
        merged = merge_chunk_grids(grids, [c["label_scores"] for c in chunks], LabelMap(names))
        assert res.grid.tolist() == merged.labels.tolist()
        assert res.extra["cell_chunk"].tolist() == merged.chunk.tolist()
        expected = np.array([[names.index(v) if v in names else 255 for v in row] for row in merged.labels])
        assert res.mask.shape == (16, 24) and np.array_equal(res.mask[::4, ::6], expected)
        texts[mode] = [c["text"] for c in chunks]
    assert texts["fast"] == texts["constrained"]  # fast: the tokens of constrained decoding


@pytest.mark.slow
def test_segment_command_with_a_class_file_in_chunks(tiny_model_dir, tiny_data, tmp_path, capsys, monkeypatch):
    """``text4seg segment --classes-file F --class-chunk N``: the prompts of the answer list at most N classes
    each, in file order; the mask PNG holds indices into the file's list (16-bit past 255 classes)."""
    import json

    from PIL import Image

    from text4seg.cli import main

    monkeypatch.chdir(tmp_path)
    names = [f"class {k}" for k in range(300)]
    (tmp_path / "classes.txt").write_text("\n".join(names[:150]) + "\n\n  " + "\n".join(names[150:]) + "\n")
    image = str(tiny_data.root / tiny_data.samples[0].image)
    args = ["segment", image, "--classes-file", "classes.txt", "--class-chunk", "128", "--model", str(tiny_model_dir),
            "--device", "cpu", "--out", "m.png"]
    assert main([*args, "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)["results"]
    assert entry["chunks"] == [128, 128, 44]
    mask = np.asarray(Image.open("m.png"))
    assert mask.dtype == np.uint16 and mask.shape == (tiny_data.samples[0].height, tiny_data.samples[0].width)
    assert main(args) == 0
    assert "3 prompts of 128, 128, 44 classes, merged" in capsys.readouterr().out
    for bad, message in (([*args, "--classes", "a,b"], "give --classes or --classes-file, not both"),
                         (["segment", image, "x", "--class-chunk", "4", "--model", "m"], "--class-chunk cuts a class"),
                         ([*args[:2], "--classes-file", "none.txt", *args[4:]], "none.txt")):
        assert main(bad) == 1
        assert message in capsys.readouterr().err
    (tmp_path / "empty.txt").write_text("\n \n")
    assert main([*args[:2], "--classes-file", "empty.txt", *args[4:]]) == 1
    assert "empty.txt: no class name" in capsys.readouterr().err
