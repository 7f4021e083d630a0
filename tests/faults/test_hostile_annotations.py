"""Broken annotations: a truncated refs pickle, instances.json without its annotations, an RLE of another size,
a polygon of fewer than 3 points — a clear error naming the file and annotation, or skipped and counted."""

from __future__ import annotations

import json

import pytest
from fixtures_data import make_refcoco_layout

from text4seg.datasets.coco_masks import AnnotationError, SkipLog
from text4seg.datasets.refer import read_refer


@pytest.fixture
def refcoco(tmp_path):
    make_refcoco_layout(tmp_path)
    folder = tmp_path / "refer_seg" / "refcoco"
    return tmp_path, folder, json.loads((folder / "instances.json").read_text())


def _read(root, strict=False):
    skips = SkipLog()
    samples = list(read_refer(root, "train", dataset="refcoco", split_by="unc", strict=strict, skips=skips))
    return samples, skips


def test_truncated_refs_pickle(refcoco):
    root, folder, _ = refcoco
    pickle_path = folder / "refs(unc).p"
    data = pickle_path.read_bytes()
    pickle_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError) as err:
        _read(root)
    assert str(err.value) == f"{pickle_path}: refused or unreadable pickle (pickle data was truncated)"


def test_instances_without_annotations(refcoco):
    root, folder, instances = refcoco
    instances.pop("annotations")
    (folder / "instances.json").write_text(json.dumps(instances))
    with pytest.raises(ValueError) as err:
        _read(root)
    assert str(err.value) == f"{folder / 'instances.json'}: expected a COCO instances object with an 'annotations' list"


@pytest.mark.parametrize("segmentation, reason", [
    ({"size": [10, 10], "counts": "PPYo0"}, "RLE size [10, 10] does not match the image size [32, 48]"),
    ([[1.0, 1.0, 5.0, 5.0]], "polygon needs an even number (>= 6) of coordinates, got 4 values"),
])
def test_bad_segmentations_are_skipped_or_named(refcoco, segmentation, reason):
    root, folder, instances = refcoco
    good, _ = _read(root)
    instances["annotations"][0]["segmentation"] = segmentation
    (folder / "instances.json").write_text(json.dumps(instances))
    samples, skips = _read(root)
    assert len(samples) == len(good) - 1
    assert skips.summary() == f"1 (bad segmentation ({reason}): 1)"
    with pytest.raises(AnnotationError) as err:
        _read(root, strict=True)
    assert str(err.value) == (f"{folder / 'refs(unc).p'}: annotation refcoco_unc_train_1 (ref_id 1): "
                              f"bad segmentation ({reason})")
