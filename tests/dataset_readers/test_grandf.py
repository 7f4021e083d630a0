"""GranD-f readers on the released JSON formats (text4seg.datasets.grandf): exact samples, skips and errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gcg_fixtures import BALL, DOG_A, DOG_B, GT_MASKS, MAN, RACKET, UMBRELLA, WOMAN, make_grandf_layout

from text4seg.datasets.coco_masks import AnnotationError, SkipLog
from text4seg.datasets.grandf import read_gcg_ground_truth, read_grandf


@pytest.fixture()
def grandf(tmp_path):
    return make_grandf_layout(tmp_path / "data")["root"]


def _rows(samples):
    return [(s.id, s.image, s.height, s.width, s.caption, [(p.text, p.start, p.end) for p in s.phrases])
            for s in samples]


def test_grandf_ha_reader_strips_quotes_and_unites_rles(grandf):
    skips = SkipLog()
    samples = list(read_grandf(grandf, "grandf-ha", "train", skips=skips))
    assert _rows(samples) == [("gcg_grandf-ha_train_0", "GranDf/GranDf_HA_images/train/sa_1.jpg", 8, 8,
                               "A man holds a red racket.", [("A man", 0, 5), ("a red racket", 12, 24)])]
    man, racket = samples[0].masks()
    assert np.array_equal(man, MAN) and np.array_equal(racket, RACKET)  # the two RLEs of "A man" united
    assert skips.counts == {"no grounded phrase": 1,
                            "grounding 'A cat': 'token_positives' [0, 40] is empty or outside the caption": 1}
    with pytest.raises(AnnotationError, match="gcg_grandf-ha_train_1 .*no grounded phrase"):
        list(read_grandf(grandf, "grandf-ha", "train", strict=True))


def test_grandf_ha_images_beside_granddf_folder(grandf):
    (grandf / "GranDf_HA_images" / "train").mkdir(parents=True)  # the layout GLaMM's docs draw
    (sample,) = read_grandf(grandf, "grandf-ha", "train")
    assert sample.image == "GranDf_HA_images/train/sa_1.jpg"


def test_psg_reader_drops_an_overlapping_phrase(grandf):
    skips = SkipLog()
    (sample,) = read_grandf(grandf, "psg", "val", skips=skips)
    assert _rows([sample]) == [("gcg_psg_val_0", "coco_2017/train2017/000000000042.jpg", 8, 8, "a dog on a sofa",
                                [("a dog", 0, 5), ("a sofa", 9, 15)])]  # caption order, "dog" inside "a dog" dropped
    assert [int(m.sum()) for m in sample.masks()] == [int(RACKET.sum()), int(MAN.sum())]
    assert skips.counts == {"phrase span overlaps an earlier phrase": 1}


def test_flickr30k_reader_merges_equal_spans_and_skips_ignored(grandf):
    (sample,) = read_grandf(grandf, "flickr30k", "train")
    assert _rows([sample]) == [("gcg_flickr30k_train_0", "flikcr_30k/train/1000.jpg", 8, 8,
                                "Two dogs play with a ball .", [("Two dogs", 0, 8), ("a ball", 19, 25)])]
    dogs, ball = sample.masks()
    assert np.array_equal(dogs, DOG_A | DOG_B) and np.array_equal(ball, BALL)


def test_refcocog_reader_finds_and_trims_spans(grandf):
    (sample,) = read_grandf(grandf, "refcocog", "val")
    # "an umbrella" lies inside the woman's sentence: the earlier phrase ends where it starts; "a cat" is absent
    assert _rows([sample]) == [("gcg_refcocog_val_0", "coco_2014/train2014/COCO_train2014_000000000042.jpg", 8, 10,
                                "The woman in red holding an umbrella.",
                                [("The woman in red holding", 0, 24), ("an umbrella", 25, 36)])]
    woman, umbrella = sample.masks()
    assert np.array_equal(woman, WOMAN) and np.array_equal(umbrella, UMBRELLA)
    (grandf / "coco_2014" / "train2014" / "COCO_train2014_000000000042.jpg").unlink()
    skips = SkipLog()
    assert list(read_grandf(grandf, "refcocog", "val", skips=skips)) == []
    assert "not found or unreadable" in next(iter(skips.counts))


def test_reader_errors_name_file_and_field(grandf, tmp_path):
    with pytest.raises(FileNotFoundError, match="OpenPsgGCG_train.json not found .*GranD-f layout"):
        list(read_grandf(grandf, "psg", "train"))
    with pytest.raises(ValueError, match="has splits train, not 'val'"):
        list(read_grandf(grandf, "grandf-ha", "val"))
    with pytest.raises(ValueError, match="unknown GCG dataset 'coco'"):
        list(read_grandf(grandf, "coco", "train"))
    path = grandf / "GranDf/annotations/train/GranDf_HA_GCG_train.json"
    data = json.loads(path.read_text())
    data[0]["file_name"] = "../../escape.jpg"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="GranDf_HA_GCG_train.json: file_name '../../escape.jpg'"):
        list(read_grandf(grandf, "grandf-ha", "train"))
    path.write_text("{not json")
    with pytest.raises(ValueError, match="GranDf_HA_GCG_train.json: not valid JSON"):
        list(read_grandf(grandf, "grandf-ha", "train"))


def test_gcg_ground_truth(grandf):
    gts = read_gcg_ground_truth(grandf, "val")
    assert [(g.image_id, g.image, g.height, g.width, g.caption, g.labels) for g in gts] == [
        ("sa_a", "GranDf/GranDf_HA_images/val_test/sa_a.jpg", 8, 8, "A man holds a racket.", ["A man", "a racket"]),
        ("sa_b", "GranDf/GranDf_HA_images/val_test/sa_b.jpg", 8, 8, "A dog on the grass.", ["A dog", "the grass"])]
    assert all(np.array_equal(m, e) for g in gts for m, e in zip(g.masks(), GT_MASKS[g.image_id]))
    assert [g.references for g in gts] == [["A man holds a racket."], ["A dog on the grass."]]
    path = grandf / "GranDf/annotations/val_test/val_gcg_coco_caption_gt.json"
    data = json.loads(path.read_text())
    data["annotations"].append({"id": 9, "image_id": "sa_a", "caption": "A person with a racket.", "labels": []})
    path.write_text(json.dumps(data))
    first = read_gcg_ground_truth(grandf, "val")[0]  # every caption is a reference; the first one's labels count
    assert first.references == ["A man holds a racket.", "A person with a racket."] and len(first.labels) == 2
    with pytest.raises(FileNotFoundError, match="test_gcg_coco_caption_gt.json not found"):
        read_gcg_ground_truth(grandf, "test")
    with pytest.raises(ValueError, match="expected one of val, test"):
        read_gcg_ground_truth(grandf, "train")
    path = grandf / "GranDf/annotations/val_test/val_gcg_coco_mask_gt.json"
    data = json.loads(path.read_text())
    data["annotations"] = data["annotations"][:-1]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="image 'sa_b' has 1 masks for 2 labels"):
        read_gcg_ground_truth(grandf, "val")
