"""Tests for text4seg.datasets: readers on tiny datasets in their real on-disk formats, and the synthetic set."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures_data import (
    make_ade20k_layout,
    make_cocostuff_layout,
    make_grefcoco_layout,
    make_pascal_context_layout,
    make_pascal_voc_layout,
    make_reasonseg_layout,
    make_refcoco_layout,
    write_refs_pickle,
)
from PIL import Image

from text4seg.datasets import (
    REFERRING_READERS,
    SEMANTIC_READERS,
    ReferringSample,
    count_referring,
    count_semantic,
    read_referring,
    read_semantic,
)
from text4seg.datasets.class_names import CLASS_DEFINITIONS, class_names, class_synonyms
from text4seg.datasets.coco_masks import AnnotationError, SkipLog, segmentation_to_mask, union_masks
from text4seg.datasets.refer import load_refs_pickle
from text4seg.datasets.synthetic import COLOURS, SHAPES, count_synthetic, generate_synthetic, read_synthetic
from text4seg.descriptors import LabelMap

# ----------------------------------------------------------------------------------------------------------------
# synthetic


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    generate_synthetic(root, "train", num_images=60, image_size=96, seed=3)
    return root


def _refers_to(expression: str, shape: ReferringSample, shapes: list[ReferringSample]) -> bool:
    """Independent check of an expression's meaning: it must single out ``shape`` among ``shapes``."""
    words = expression.split()
    assert words[0] == "the"
    colour = words[1] if words[1] in COLOURS else None
    kind = words[2] if colour else words[1]
    if kind == "shape":
        kind = None
    matching = [s for s in shapes if (colour is None or s.extra["colour"] == colour)
                and (kind is None or s.extra["kind"] == kind)]  # fmt: skip
    rest = " ".join(words[3:] if colour else words[2:])
    if not rest:
        return matching == [shape]
    assert shape in matching

    def centre(s):
        x0, y0, x1, y1 = s.extra["box"]
        return (x0 + x1) / 2, (y0 + y1) / 2

    axis = {
        "left": (0, -1),
        "right": (0, 1),
        "top": (1, -1),
        "bottom": (1, 1),
        "above": (1, -1),
        "below": (1, 1),
    }
    if rest.startswith(("on the", "at the")):
        dim, sign = axis[rest.split()[-1]]
        others = [s for s in matching if s is not shape]
        return all(sign * (centre(shape)[dim] - centre(o)[dim]) > 0 for o in others)
    relation, anchor_text = rest.split(" the ", 1)
    dim, sign = axis[relation.replace(" of", "")]
    anchors = [s for s in shapes if _refers_to("the " + anchor_text, s, shapes)]
    assert len(anchors) == 1
    anchor = anchors[0]
    on_side = [s for s in matching if s is not anchor and sign * (centre(s)[dim] - centre(anchor)[dim]) > 0]
    return on_side == [shape]


def test_synthetic_expressions_are_unique_and_refer_to_one_shape(synthetic_root):
    samples = list(read_synthetic(synthetic_root, "train"))
    assert len(samples) == count_synthetic(synthetic_root, "train")
    by_image: dict[str, list[ReferringSample]] = {}
    for sample in samples:
        by_image.setdefault(sample.image, []).append(sample)
    assert len(by_image) == 60
    relations = 0
    for shapes in by_image.values():
        assert 1 <= len(shapes) <= 4
        expressions = [e for s in shapes for e in s.expressions]
        assert len(expressions) == len(set(expressions))
        for shape in shapes:
            assert shape.expressions
            for expression in shape.expressions:
                assert _refers_to(expression, shape, shapes), expression
                relations += " of " in expression or " above " in expression or " below " in expression
    assert relations > 0  # attribute twins occur and are told apart by relations


def test_synthetic_masks_are_exact_pixels_and_disjoint(synthetic_root):
    samples = list(read_synthetic(synthetic_root, "train"))
    by_image: dict[str, list[ReferringSample]] = {}
    for sample in samples:
        by_image.setdefault(sample.image, []).append(sample)
    for image_rel, shapes in list(by_image.items())[:20]:
        pixels = np.asarray(Image.open(synthetic_root / image_rel).convert("RGB"))
        assert pixels.shape == (96, 96, 3)
        assert sum(s.mask.astype(int) for s in shapes).max() == 1
        for shape in shapes:
            assert shape.mask.dtype == bool and shape.mask.shape == (96, 96)
            colour = np.array(COLOURS[shape.extra["colour"]], dtype=np.uint8)
            assert (pixels[shape.mask] == colour).all()
            x0, y0, x1, y1 = shape.extra["box"]
            side = x1 - x0
            assert y1 - y0 == side and 0.15 * 96 - 1 <= side <= 0.45 * 96 + 1
            ys, xs = np.nonzero(shape.mask)
            assert xs.min() >= x0 and xs.max() < x1 and ys.min() >= y0 and ys.max() < y1
            assert shape.extra["kind"] in SHAPES
        background = ~np.any([s.mask for s in shapes], axis=0)
        assert pixels[background].max() < 90  # dark background, far from every palette colour


def test_synthetic_is_deterministic_idempotent_and_splits_differ(tmp_path):
    first = generate_synthetic(tmp_path / "a", "val", num_images=8, image_size=64, seed=1)
    second = generate_synthetic(tmp_path / "b", "val", num_images=8, image_size=64, seed=1)
    assert [s.expressions for s in first] == [s.expressions for s in second]
    assert all((a.mask == b.mask).all() for a, b in zip(first, second))
    png = tmp_path / "a" / "synthetic" / "val" / "000000.png"
    assert png.read_bytes() == (tmp_path / "b" / "synthetic" / "val" / "000000.png").read_bytes()
    stamp = png.stat().st_mtime_ns
    again = generate_synthetic(tmp_path / "a", "val", num_images=8, image_size=64, seed=1)
    assert png.stat().st_mtime_ns == stamp and len(again) == len(first)
    test_split = generate_synthetic(tmp_path / "a", "test", num_images=8, image_size=64, seed=1)
    assert [s.expressions for s in test_split] != [s.expressions for s in first]
    index = json.loads((tmp_path / "a" / "synthetic" / "val.json").read_text())
    assert index["seed"] == 1 and len(index["images"]) == 8
    assert list(read_referring("synthetic", tmp_path / "a", "val"))[0].id == "synthetic_val_000000_0"


def test_synthetic_difficulty_knobs(tmp_path):
    single = generate_synthetic(tmp_path, "train", num_images=12, image_size=64, seed=2, max_shapes=1)
    assert len({s.image for s in single}) == len(single) == 12  # one shape per image
    # A different difficulty is a different set: the index is rebuilt, not reused.
    default = generate_synthetic(tmp_path, "train", num_images=12, image_size=64, seed=2)
    assert len(default) > 12
    index = json.loads((tmp_path / "synthetic" / "train.json").read_text())
    assert "max_shapes" not in index  # defaults keep the version-1 index format
    twins = generate_synthetic(tmp_path / "t", "train", num_images=20, image_size=64, seed=2, twin_rate=1.0)
    per_image: dict[str, set] = {}
    for s in twins:
        per_image.setdefault(s.image, set()).add((s.extra["kind"], s.extra["colour"]))
    assert len(twins) > 20
    assert all(len(v) == 1 for v in per_image.values())  # every further shape copies the first one
    distinct = generate_synthetic(tmp_path / "d", "train", num_images=40, image_size=64, seed=2, max_shapes=6,
                                  twin_rate=0.0, distinct_colours=True)
    for s in distinct:
        assert s.expressions[0].split()[1] == s.extra["colour"]  # colour + kind comes first
    colours = _colours_per_image(distinct)
    assert all(len(v) == len(set(v)) for v in colours.values()) and max(len(v) for v in colours.values()) > 3
    index = json.loads((tmp_path / "d" / "synthetic" / "train.json").read_text())
    assert index["distinct_colours"] is True
    mixed = generate_synthetic(tmp_path / "d", "train", num_images=40, image_size=64, seed=2, max_shapes=6,
                               twin_rate=0.0)
    assert any(len(set(c)) < len(c) for c in _colours_per_image(mixed).values())  # rebuilt, colours repeat
    big = generate_synthetic(tmp_path / "b", "train", num_images=30, image_size=64, seed=2, shape_size=(0.3, 0.4))
    sides = [s.extra["box"][2] - s.extra["box"][0] for s in big]
    assert min(sides) >= round(0.3 * 64) and max(sides) <= round(0.4 * 64)
    assert json.loads((tmp_path / "b" / "synthetic" / "train.json").read_text())["shape_size"] == [0.3, 0.4]


def _colours_per_image(samples) -> dict[str, list]:
    out: dict[str, list] = {}
    for s in samples:
        out.setdefault(s.image, []).append(s.extra["colour"])
    return out


def test_synthetic_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="max_shapes"):
        generate_synthetic(tmp_path, max_shapes=0)
    with pytest.raises(ValueError, match="twin_rate"):
        generate_synthetic(tmp_path, twin_rate=1.5)
    with pytest.raises(ValueError, match="shape_size"):
        generate_synthetic(tmp_path, shape_size=(0.5, 0.2))
    with pytest.raises(ValueError, match="distinct_colours"):
        generate_synthetic(tmp_path, max_shapes=7, distinct_colours=True)
    with pytest.raises(ValueError, match="num_images"):
        generate_synthetic(tmp_path, num_images=0)
    with pytest.raises(ValueError, match="split"):
        generate_synthetic(tmp_path, split="../x")
    with pytest.raises(FileNotFoundError, match="synthetic"):
        list(read_synthetic(tmp_path, "nope"))


# ----------------------------------------------------------------------------------------------------------------
# COCO segmentations


def test_polygon_parts_union_is_clipped_and_never_wraps():
    square = [0.0, 0.0, 4.0, 0.0, 4.0, 4.0, 0.0, 4.0]
    # 256 identical parts: a uint8 sum would wrap to 0 exactly there.
    mask = segmentation_to_mask([square] * 256, 6, 6)
    expected = np.zeros((6, 6), dtype=bool)
    expected[:4, :4] = True
    assert (mask == expected).all()
    outside = [3.0, 3.0, 20.0, 3.0, 20.0, 20.0, 3.0, 20.0]
    clipped = segmentation_to_mask([outside], 6, 6)
    assert clipped.shape == (6, 6) and clipped[3:, 3:].all() and clipped.sum() == 9


def test_bad_segmentations_raise_value_errors():
    for bad, match in [
        ([[1.0, 2.0, 3.0, 4.0]], "even number"),
        ([[1.0, 2.0, 3.0, 4.0, 5.0]], "even number"),
        ([], "empty"),
        ({"size": [4, 4], "counts": [1, 2]}, "sum to 16"),
        ({"size": [5, 5], "counts": "abc"}, "does not match"),
        ("nope", "list or an RLE"),
    ]:
        with pytest.raises(ValueError, match=match):
            segmentation_to_mask(bad, 4, 4)
    assert not union_masks([], 3, 2).any()


# ----------------------------------------------------------------------------------------------------------------
# RefCOCO family


@pytest.fixture(scope="module")
def refcoco(tmp_path_factory) -> dict:
    return make_refcoco_layout(tmp_path_factory.mktemp("refcoco"))


def test_refcoco_reader_masks_sizes_and_paths(refcoco):
    samples = list(read_referring("refcoco", refcoco["root"], "train"))
    assert [s.id for s in samples] == ["refcoco_unc_train_1", "refcoco_unc_train_2", "refcoco_unc_train_3"]
    first = samples[0]
    assert first.image == "refer_seg/images/coco_2014/train2014/COCO_train2014_000000000009.jpg"
    assert (first.height, first.width) == (32, 48)
    assert first.expressions == ["man on left", "left guy"]
    assert first.extra == {"ref_id": 1, "ann_id": 101, "image_id": 9, "category_id": 1}
    for sample in samples:
        assert (sample.mask == refcoco["masks"][sample.extra["ref_id"]]).all(), sample.id
        assert not sample.no_target and sample.ignore is None
    assert samples[1].expressions == ["the | right*one\nthing"]  # readers keep text; builders sanitize
    assert [s.extra["ref_id"] for s in read_referring("refcoco", refcoco["root"], "val")] == [4]
    assert (next(iter(read_referring("refcoco", refcoco["root"], "val"))).mask == refcoco["masks"][4]).all()
    assert count_referring("refcoco", refcoco["root"], "train") == 3
    assert [s.id for s in read_referring("refcoco", refcoco["root"], "test")] == ["refcoco_unc_test_6"]


def test_refcoco_reader_never_decodes_images(refcoco, tmp_path):
    root = tmp_path / "copy"
    info = make_refcoco_layout(root)
    for rel in info["images"]:
        (root / rel).write_bytes(b"not an image")  # readers must not care
    assert len(list(read_referring("refcoco", root, "train"))) == 3


def test_refcoco_malformed_annotation_is_skipped_or_raises_in_strict_mode(refcoco):
    skips = SkipLog()
    assert list(read_referring("refcoco", refcoco["root"], "testA", skips=skips)) == []
    assert skips.total == 1 and "refcoco_unc_testA_5" in skips.examples[next(iter(skips.examples))][0]
    with pytest.raises(AnnotationError, match="refcoco_unc_testA_5.*even number"):
        list(read_referring("refcoco", refcoco["root"], "testA", strict=True))


def test_refclef_and_split_by(tmp_path):
    info = make_refcoco_layout(tmp_path, dataset="refclef", split_by="unc")
    sample = next(iter(read_referring("refclef", tmp_path, "val")))
    assert sample.image.startswith("refer_seg/images/saiapr_tc-12/") and sample.id == "refclef_unc_val_4"
    assert (sample.mask == info["masks"][4]).all()
    make_refcoco_layout(tmp_path, dataset="refcocog", split_by="umd")
    assert [s.id for s in read_referring("refcocog", tmp_path, "val")] == ["refcocog_umd_val_4"]
    with pytest.raises(FileNotFoundError, match=r"refs\(google\)\.p.*RefCOCO layout"):
        list(read_referring("refcocog", tmp_path, "val", split_by="google"))


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def test_restricted_unpickler_refuses_callables(tmp_path):
    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps([{"ref_id": 1, "payload": _Evil()}], protocol=2))
    with pytest.raises(ValueError, match=r"forbidden global (posix|os|nt)\.system"):
        load_refs_pickle(path)
    assert not (tmp_path / "pwned.txt").exists() and not Path("pwned.txt").exists()
    # A class instance (needs copyreg/_reconstructor or a class lookup) is refused too.
    path.write_bytes(pickle.dumps([{"x": SkipLog()}], protocol=2))
    with pytest.raises(ValueError, match="forbidden global"):
        load_refs_pickle(path)


def test_restricted_unpickler_accepts_plain_containers(tmp_path):
    refs = [
        {
            "ref_id": 1,
            "sentences": [{"sent": "a", "tokens": ["a"]}],
            "box": (1.0, 2),
            "tags": {"x"},
            "n": None,
        }
    ]
    path = tmp_path / "refs.p"
    write_refs_pickle(path, refs)
    assert load_refs_pickle(path) == refs
    path.write_bytes(pickle.dumps({"not": "a list"}, protocol=2))
    with pytest.raises(ValueError, match="list of ref dicts"):
        load_refs_pickle(path)
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="refs.p"):
        load_refs_pickle(path)


# ----------------------------------------------------------------------------------------------------------------
# gRefCOCO, ReasonSeg


def test_grefcoco_no_target_multi_target_and_rle(tmp_path):
    info = make_grefcoco_layout(tmp_path)
    samples = list(read_referring("grefcoco", tmp_path, "val"))
    assert [s.extra["ref_id"] for s in samples] == [10, 11, 12]
    for sample in samples:
        assert (sample.mask == info["masks"][sample.extra["ref_id"]]).all()
    assert [s.no_target for s in samples] == [False, False, True]
    assert samples[1].extra["ann_ids"] == [201, 202] and samples[1].mask.sum() == 512
    assert samples[2].expressions == ["the purple elephant"] and not samples[2].mask.any()
    assert count_referring("grefcoco", tmp_path, "val") == 3
    assert [s.id for s in read_referring("grefcoco", tmp_path, "train")] == ["grefcoco_unc_train_13"]


def test_reasonseg_target_ignore_flag_and_sizes(tmp_path):
    info = make_reasonseg_layout(tmp_path)
    skips = SkipLog()
    samples = list(read_referring("reasonseg", tmp_path, "train", skips=skips))
    assert [s.id for s in samples] == ["reasonseg_train_a", "reasonseg_train_b"]
    a, b = samples
    assert (a.height, a.width, b.height, b.width) == (32, 32, 16, 32)
    assert (a.mask == info["masks"]["a"]).all() and (a.ignore == info["ignore"]["a"]).all()
    assert (b.mask == info["masks"]["b"]).all() and not b.ignore.any()
    assert a.is_sentence is True and b.is_sentence is False
    assert a.expressions[1] == "the seat" and a.image == "reason_seg/ReasonSeg/train/a.jpg"
    assert skips.total == 1 and skips.examples[next(iter(skips.examples))] == ["reasonseg_train_c"]
    with pytest.raises(AnnotationError, match="reasonseg_train_c"):
        list(read_referring("reasonseg", tmp_path, "train", strict=True))
    assert count_referring("reasonseg", tmp_path, "train") == 3


def test_reasonseg_unreadable_image_fails_with_its_path(tmp_path):
    make_reasonseg_layout(tmp_path)
    bad = tmp_path / "reason_seg" / "ReasonSeg" / "train" / "a.jpg"
    bad.write_bytes(b"broken")
    with pytest.raises(ValueError, match="a.jpg"):
        list(read_referring("reasonseg", tmp_path, "train"))
    with pytest.raises(FileNotFoundError, match="ReasonSeg layout"):
        list(read_referring("reasonseg", tmp_path, "val"))


# ----------------------------------------------------------------------------------------------------------------
# semantic datasets


@pytest.mark.parametrize(
    ("dataset", "maker", "splits"),
    [
        (
            "ade20k",
            make_ade20k_layout,
            {"training": "training", "validation": "validation", "train": "training"},
        ),
        ("pascal_context", make_pascal_context_layout, {"val": "val", "train": "train"}),
        ("pascal_voc", make_pascal_voc_layout, {"train": "train", "val": "val"}),
    ],
)
def test_semantic_readers_label_maps(tmp_path, dataset, maker, splits):
    info = maker(tmp_path)
    for split, key in splits.items():
        samples = list(read_semantic(dataset, tmp_path, split))
        assert len(samples) == 1 == count_semantic(dataset, tmp_path, split)
        sample = samples[0]
        assert sample.label_map.dtype == np.int64
        assert (sample.label_map == info["label_maps"][key]).all()
        assert sample.class_names == class_names(dataset)
        assert (sample.height, sample.width) == sample.label_map.shape
        assert sample.image in info["images"] and sample.crop_box is None


def test_voc_palette_png_keeps_indices_and_255(tmp_path):
    make_pascal_voc_layout(tmp_path)
    png = tmp_path / "PAS20" / "SegmentationClass" / "2007_000032.png"
    assert Image.open(png).mode == "P"
    sample = next(iter(read_semantic("pascal_voc", tmp_path, "train")))
    assert sorted(np.unique(sample.label_map).tolist()) == [0, 1, 255]
    assert (sample.label_map[:, 8] == 255).all() and sample.class_names[1] == "aeroplane"


def test_cocostuff_train_ids_shift_and_255_is_others(tmp_path):
    info = make_cocostuff_layout(tmp_path)
    samples = list(read_semantic("cocostuff", tmp_path, "train"))
    assert [s.id for s in samples] == ["cocostuff_train_000000000009", "cocostuff_train_000000000025"]
    for sample in samples:
        stem = sample.id.rsplit("_", 1)[1]
        assert (sample.label_map == info["label_maps"][stem]).all()
    names = samples[0].class_names
    assert (names[0], names[1], names[6], names[171]) == ("others", "person", "bus", "wood")
    assert samples[0].image == "coco/train2017/000000000009.jpg"


def test_semantic_layout_errors_name_the_expected_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="ADEChallengeData2016"):
        list(read_semantic("ade20k", tmp_path, "training"))
    with pytest.raises(FileNotFoundError, match="PC59"):
        list(read_semantic("pascal_context", tmp_path, "val"))
    make_pascal_voc_layout(tmp_path)
    with pytest.raises(FileNotFoundError, match="trainval.txt"):
        list(read_semantic("pascal_voc", tmp_path, "trainval"))
    (tmp_path / "PAS20" / "JPEGImages" / "2007_000032.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="2007_000032.jpg"):
        list(read_semantic("pascal_voc", tmp_path, "train"))
    make_ade20k_layout(tmp_path)
    rgb = tmp_path / "ADEChallengeData2016" / "annotations" / "training" / "ADE_train_00000001.png"
    Image.new("RGB", (4, 4)).save(rgb)
    skips = SkipLog()
    assert list(read_semantic("ade20k", tmp_path, "training", skips=skips)) == []
    assert skips.total == 1 and "mode 'RGB'" in next(iter(skips.counts))


def test_class_lists_sizes_and_synonyms():
    sizes = {"ade20k": 151, "pascal_context": 60, "pascal_voc": 21, "cocostuff": 172}
    for dataset, size in sizes.items():
        names = class_names(dataset)
        assert len(names) == size == len(set(names)) and names[0] == "others"
        synonyms = class_synonyms(dataset)
        aliases = [a for entry in CLASS_DEFINITIONS[dataset] for a in entry[1:]]
        assert len(aliases) == len(set(aliases)) and not set(aliases) & set(names)
        label_map = LabelMap(names, synonyms)
        ids, unknown = label_map.ids(np.array([[names[5], "others"]], dtype=object))
        assert ids.tolist() == [[5, 0]] and unknown == []
    assert class_names("ade20k")[1:4] == ["wall", "building", "sky"] and class_names("ade20k")[150] == "flag"
    assert (
        class_names("pascal_voc")[20] == "tv monitor"
        and class_synonyms("pascal_voc")["tvmonitor"] == "tv monitor"
    )
    assert class_names("cocostuff")[80] == "toothbrush" and class_names("cocostuff")[81] == "banner"
    assert class_synonyms("cocostuff")["wall-brick"] == "brick wall"
    assert class_names("pascal_context")[59] == "wood"


def test_registry_and_unknown_names(tmp_path):
    assert set(REFERRING_READERS) == {"refcoco", "refcoco+", "refcocog", "refclef", "grefcoco", "reasonseg",
                                      "synthetic"}  # fmt: skip
    assert set(SEMANTIC_READERS) == {"ade20k", "pascal_context", "pascal_voc", "cocostuff", "ade847", "pc459",
                                     "paco_lvis", "pascal_part"}
    with pytest.raises(ValueError, match="unknown referring dataset 'coco'"):
        read_referring("coco", tmp_path, "train")
    with pytest.raises(ValueError, match="unknown semantic dataset"):
        read_semantic("voc", tmp_path, "train")


def test_dataset_modules_do_not_import_torch():
    code = (
        "import sys\n"
        "import text4seg.datasets, text4seg.datasets.refer, text4seg.datasets.grefer, text4seg.datasets.reasonseg\n"
        "import text4seg.datasets.semantic, text4seg.datasets.synthetic, text4seg.datasets.class_names\n"
        "import data_builders.__main__, data_builders.semantic, data_builders.refcoco, data_builders.mix\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
