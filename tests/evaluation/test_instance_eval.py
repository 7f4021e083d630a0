"""COCO panoptic / instances on disk: reader, the coco_panoptic builder, ``eval panoptic`` (PQ) and
``eval instance`` (COCOeval mask AP) end to end with exact scores."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from fixtures_data import PANOPTIC_IDS, make_coco_panoptic_layout

from text4seg.config import Text4SegConfig
from text4seg.decoding import GeneratedText
from text4seg.segmenter import Segmenter

PANOPTIC_ANSWER = ("Sure.\n<seg>sky *4\n person 1 *2| person 2 *1| others *1\n person 1 *2| person 2 *1| car 1 *1\n"
                   " grass *2| sky *2\n</seg>")
INSTANCE_ANSWER = ("Sure.\n<seg>others *4\n person 1 *2| person 2 *1| others *1\n person 1 *2| person 2 *1| car 1 *1\n"
                   " person 3 *1| others *3\n</seg>")


class _Backend:
    def __init__(self, text, scores):
        self.text, self.scores, self.prompts = text, scores, []

    def generate(self, image, prompts):
        self.prompts.extend(prompts)
        return [GeneratedText(self.text, 10, 1, 0.01) for _ in prompts]

    def label_scores(self, images, prompts, answers):
        return [{k: math.log(v) for k, v in self.scores.items()} for _ in answers]


@pytest.fixture()
def coco(tmp_path):
    return make_coco_panoptic_layout(tmp_path / "data")


def test_panoptic_reader(coco):
    from text4seg.datasets.coco_panoptic import read_coco_instances, read_coco_panoptic

    (sample,) = read_coco_panoptic(coco["root"], "val")
    assert (sample.id, sample.image, sample.height, sample.width) == (
        "coco_panoptic_val_42", "coco/val2017/000000000042.jpg", 16, 16)
    assert np.array_equal(sample.id_map(), coco["id_map"])
    assert [c.label for c in sample.categories.values()] == ["person", "car", "sky", "grass"]
    assert [(s.id, s.category_id, s.iscrowd, s.area) for s in sample.segments][:3] == [
        (1, 1, False, 64), (2, 1, False, 32), (3, 2, True, 16)]
    (inst,) = read_coco_instances(coco["root"], "val")
    masks = inst.masks()
    assert [int(m.sum()) for m in masks] == [64, 32, 16]
    assert np.array_equal(masks[0], coco["id_map"] == PANOPTIC_IDS["person 1"])


def test_panoptic_reader_errors(tmp_path, coco):
    from text4seg.datasets.coco_masks import SkipLog
    from text4seg.datasets.coco_panoptic import read_coco_panoptic

    with pytest.raises(FileNotFoundError, match="panoptic_val2017.json not found"):
        list(read_coco_panoptic(tmp_path / "nothing", "val"))
    (coco["root"] / "coco/panoptic_val2017/000000000042.png").unlink()
    skips = SkipLog()
    assert list(read_coco_panoptic(coco["root"], "val", skips=skips)) == []
    assert skips.total == 1 and "not found" in next(iter(skips.counts))


def test_coco_panoptic_builder_exact(coco, tmp_path):
    from data_builders.__main__ import main
    from text4seg.datasets.coco_panoptic import read_coco_panoptic
    from text4seg.descriptors import mask_to_grid
    from text4seg.items.panoptic import panoptic_grid_labels

    out = tmp_path / "p.json"
    assert main(["coco_panoptic", "--data-root", str(coco["root"]), "--out", str(out), "--split", "val",
                 "--grid", "4", "--max-classes", "4", "--seed", "1", "--answer-index", "0", "--quiet"]) == 0
    (item,) = json.loads(out.read_text())
    assert item["image"] == "coco/val2017/000000000042.jpg" and (item["height"], item["width"]) == (16, 16)
    assert [t["value"] for t in item["conversations"]] == [
        "<image>\nIf any of car, person are visible, please segment them.",
        "Sure, here is the segmentation mask.\n<seg>others *4\n person 1 *2| person 2 *1| others *1\n"
        " person 1 *2| person 2 *1| car *1\n others *4\n</seg>"]  # the unlisted sky and grass are others
    (sample,) = read_coco_panoptic(coco["root"], "val")
    labels = panoptic_grid_labels(sample, mask_to_grid(sample.id_map(), 4, 4))
    # things numbered, the crowd and stuff by class name
    assert labels.tolist() == [["sky"] * 4, ["person 1", "person 1", "person 2", "others"],
                               ["person 1", "person 1", "person 2", "car"], ["grass"] * 4]
    assert panoptic_grid_labels(sample, mask_to_grid(sample.id_map(), 4, 4), max_instances=1)[1, 2] == "person"


def test_eval_panoptic_exact(coco, tmp_path):
    from text4seg.evaluation import evaluate

    backend = _Backend(PANOPTIC_ANSWER, {})
    seg = Segmenter(backend, Text4SegConfig(grid=(4, 4)))
    scores = evaluate("panoptic", data_root=coco["root"], split="val", out=tmp_path / "run", segmenter=seg,
                      progress=False)
    assert backend.prompts == ["Segment whichever of these classes appear in the image: person, car, sky, grass."]
    c = scores["coarse"]
    # person: 2 TP of IoU 1; sky: TP 2/3; grass: IoU 0.5 -> FN + FP; the car on its crowd region is ignored
    assert c["pq"] == pytest.approx(5 / 9) and c["sq"] == pytest.approx(5 / 9) and c["rq"] == pytest.approx(2 / 3)
    assert (c["pq_th"], c["sq_th"], c["rq_th"], c["classes_th"]) == (1.0, 1.0, 1.0, 1)
    assert c["pq_st"] == pytest.approx(1 / 3) and c["rq_st"] == 0.5 and c["classes_st"] == 2
    assert scores["per_class"]["car"] is None and scores["per_class"]["grass"]["fp"] == 1
    table = (tmp_path / "run" / "scores.md").read_text()
    assert "| PQ | SQ | RQ | PQth |" in table and "55.56" in table
    again = evaluate("panoptic", data_root=coco["root"], split="val", out=tmp_path / "run",
                     segmenter=Segmenter(_Backend("<seg>junk</seg>", {}), Text4SegConfig(grid=(4, 4))),
                     progress=False)
    assert again["coarse"] == scores["coarse"]  # resumed from samples.jsonl, nothing re-asked


def test_eval_instance_ap_exact(coco, tmp_path):
    from text4seg.evaluation import evaluate

    backend = _Backend(INSTANCE_ANSWER, {"person 1": 0.9, "person 3": 0.8, "person 2": 0.5, "car 1": 0.7})
    seg = Segmenter(backend, Text4SegConfig(grid=(4, 4)))
    scores = evaluate("instance", data_root=coco["root"], split="val", out=tmp_path / "run", segmenter=seg,
                      progress=False)
    assert backend.prompts == ["Segment whichever of these classes appear in the image: person, car."]
    c = scores["coarse"]
    # person ranked 0.9 TP, 0.8 FP, 0.5 TP: interpolated precision 1 up to recall 0.5 (51 of COCO's 101 recall
    # points), 2/3 above (50 points); every IoU is 1, so all ten thresholds agree. The car on the crowd is ignored
    # and car has no other ground truth, so it is left out of the mean.
    assert c["ap"] == pytest.approx(253 / 303) and c["ap50"] == pytest.approx(253 / 303)
    assert c["ap75"] == pytest.approx(253 / 303) and c["ap_small"] == pytest.approx(253 / 303)
    assert c["ap_large"] is None and (c["detections"], c["unscored"]) == (4, 0)
    record = json.loads((tmp_path / "run" / "samples.jsonl").read_text().splitlines()[0])
    assert [d["score"] for d in record["detections"]] == pytest.approx([0.9, 0.5, 0.8, 0.7])


def test_eval_panoptic_cli_refuses_refiner(coco, tmp_path):
    from text4seg.evaluation import evaluate

    with pytest.raises(ValueError, match="--refiner is not supported"):
        evaluate("panoptic", data_root=coco["root"], out=tmp_path / "r", refiner="sam",
                 segmenter=Segmenter(_Backend("", {}), Text4SegConfig(grid=(4, 4))))
