"""PACO-LVIS and Pascal-Part readers on their COCO-format JSONs: exact part label maps and category maps (annotation
order, later over earlier), class names, prompt classes and synonyms, skips and strict errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from parts_fixtures import PACO_CATEGORIES, make_paco_layout, make_pascal_part_layout

from text4seg.datasets import count_semantic, read_semantic
from text4seg.datasets.coco_masks import AnnotationError, SkipLog
from text4seg.datasets.parts import part_categories


def test_paco_reader_maps_names_and_skips(tmp_path):
    info = make_paco_layout(tmp_path)
    skips = SkipLog()
    (sample,) = read_semantic("paco_lvis", tmp_path, "val", skips=skips)
    assert sample.id == "paco_lvis_val_1" and sample.image == info["image"]
    assert (sample.height, sample.width) == (16, 16)
    assert sample.class_names == ["others", "lid of the trash_can", "body of the trash_can", "handle of the mug",
                                  "base of the glass"]
    assert sample.label_map.dtype == np.int64
    np.testing.assert_array_equal(sample.label_map, info["label_map"])  # the handle stays: objects not painted
    np.testing.assert_array_equal(sample.category_map(), info["category_map"])  # the mug covers its handle
    assert sample.objects == ["mug", "trash_can"]
    assert sample.prompt_classes == ["lid of the trash_can", "body of the trash_can", "handle of the mug"]
    assert sample.synonyms["trash_can lid"] == "lid of the trash_can"
    assert sample.synonyms["glass base"] == "base of the glass"
    assert sample.synonyms["handle"] == "handle of the mug" and "base" not in sample.synonyms  # no glass here
    # image 7: its one annotation has an unknown category; image 9: unsafe file name; image 11: no annotation
    assert skips.counts == {"unknown category_id 99": 1,
                            "images[].file_name '../../etc/passwd' has a '..' path component": 1}
    assert count_semantic("paco_lvis", tmp_path, "val") == 3


def test_paco_strict_names_the_file_and_field(tmp_path):
    make_paco_layout(tmp_path)
    path = tmp_path / "vlpart/paco_lvis/annotations/paco_lvis_v1_val.json"
    with pytest.raises(AnnotationError, match=r"paco_lvis_v1_val\.json: annotation paco_lvis_val_7 "
                                              r"\(annotations\[5\]\): unknown category_id 99"):
        list(read_semantic("paco_lvis", tmp_path, "val", strict=True))
    data = json.loads(path.read_text())
    data["annotations"][1]["segmentation"] = [[1.0, 2.0, 3.0]]
    data["annotations"] = data["annotations"][:5]
    path.write_text(json.dumps(data))
    with pytest.raises(AnnotationError, match=r"annotations\[1\]\): bad segmentation \(polygon needs an even"):
        list(read_semantic("paco_lvis", tmp_path, "val", strict=True))
    skips = SkipLog()
    (sample,) = read_semantic("paco_lvis", tmp_path, "val", skips=skips)
    # the lid is skipped (its pixels above the body are others), as is image 9; image 7 has no annotation left
    assert (sample.label_map[0, 0], sample.label_map[3, 0]) == (0, 2) and skips.total == 2


def test_lisa_paco_folder_and_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"paco_lvis annotations .*paco_lvis_v1_val\.json not found "
                                                r"\(layout: vlpart/paco_lvis/annotations/"):
        list(read_semantic("paco_lvis", tmp_path, "val"))
    make_paco_layout(tmp_path)
    (tmp_path / "vlpart/paco_lvis").rename(tmp_path / "vlpart/paco")
    assert [s.id for s in read_semantic("paco_lvis", tmp_path, "val")] == ["paco_lvis_val_1"]
    with pytest.raises(FileNotFoundError, match=r"pascal_part annotations .*pascal_part/val\.json not found"):
        list(read_semantic("pascal_part", tmp_path, "val"))
    path = tmp_path / "vlpart/pascal_part/val.json"
    path.parent.mkdir(parents=True)
    path.write_text("{")
    with pytest.raises(ValueError, match=r"val\.json: not valid JSON"):
        list(read_semantic("pascal_part", tmp_path, "val"))
    path.write_text(json.dumps({"images": [], "annotations": {}}))
    with pytest.raises(ValueError, match=r"val\.json: no 'annotations' list"):
        list(read_semantic("pascal_part", tmp_path, "val"))


def test_pascal_part_reader(tmp_path):
    info = make_pascal_part_layout(tmp_path)
    samples = list(read_semantic("pascal_part", tmp_path, "val"))
    assert [s.id for s in samples] == ["pascal_part_val_1", "pascal_part_val_2"]  # image-id order
    one, two = samples
    assert one.image == "vlpart/pascal_part/VOCdevkit/VOC2010/JPEGImages/2008_000001.jpg"
    assert one.class_names == ["others", "head of the cat", "tail of the cat", "torso of the cat", "head of the dog",
                               "muzzle of the dog", "tail of the dog", "torso of the dog",
                               "plant of the potted plant", "pot of the potted plant"]
    np.testing.assert_array_equal(one.label_map, info["label_maps"][1])
    np.testing.assert_array_equal(two.label_map, info["label_maps"][2])
    assert one.objects == ["cat", "dog"] and two.objects == ["potted plant"]
    assert one.prompt_classes == one.class_names[1:8] and two.prompt_classes == one.class_names[8:]
    # bare part names decode only where one object of the image has that part
    assert one.synonyms["muzzle"] == "muzzle of the dog" and "head" not in one.synonyms
    assert two.synonyms["pot"] == "pot of the potted plant" and "muzzle" not in two.synonyms
    np.testing.assert_array_equal(one.category_map()[:, 0], [31] * 4 + [39] * 12)


def test_category_names():
    cats = part_categories({"categories": PACO_CATEGORIES}, "x.json")
    assert (cats[7].object, cats[7].part, cats[7].label) == ("glass", "base", "base of the glass")
    assert (cats[6].object, cats[6].part, cats[6].label) == ("glass", None, "glass")
    # two categories that end with one name keep their full names; separators are made safe
    clash = part_categories({"categories": [{"id": 1, "name": "bat_(animal):wing"},
                                            {"id": 2, "name": "bat_(stick):wing"},
                                            {"id": 3, "name": "pot|pan:lid*"}]}, "x.json")
    assert [c.label for c in clash.values()] == ["wing of the bat_(animal)", "wing of the bat_(stick)",
                                                 "lidx of the pot/pan"]
    for bad, message in (({"categories": [{"id": 1, "name": "a:b:c"}]}, r"categories\[0\] name 'a:b:c'"),
                         ({"categories": [{"id": 1, "name": "mug"}]}, "no 'object:part' category"),
                         ({"categories": [{"name": "mug:handle"}]}, r"categories\[0\] needs an int 'id'"),
                         ({}, "no 'categories' list")):
        with pytest.raises(ValueError, match=message):
            part_categories(bad, "x.json")
