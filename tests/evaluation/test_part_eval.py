"""``eval part-seg`` on the tiny PACO-LVIS / Pascal-Part layouts: per-image prompts (the parts of the image's
objects), per-image synonyms, mIoU over the part classes in ground truth or prediction with ``others`` left out,
exact on hand-made answers; the CLI; the real tiny model end to end."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from parts_fixtures import make_paco_layout, make_pascal_part_layout
from PIL import Image

from text4seg.config import Text4SegConfig
from text4seg.decoding import GeneratedText
from text4seg.descriptors import encode_descriptor, wrap_descriptor
from text4seg.evaluation import evaluate
from text4seg.evaluation.records import read_records
from text4seg.segmenter import Segmenter


class _Backend:
    """Answers each prompt from a table (every other prompt gets a text without descriptor); records prompts."""

    def __init__(self, answers: dict[str, list[list[str]]]):
        self.answers, self.prompts = answers, []

    def generate(self, image: Image.Image, prompts):
        self.prompts.extend(prompts)
        return [GeneratedText(wrap_descriptor(encode_descriptor(self.answers[p]), "Sure.") if p in self.answers
                              else "no idea", 1, 1, 0.0) for p in prompts]


def _segmenter(answers: dict[tuple[str, ...], list[list[str]]]) -> tuple[Segmenter, _Backend]:
    config = Text4SegConfig(grid=(4, 4))
    probe = Segmenter(None, config)
    backend = _Backend({probe.semantic_prompt(list(classes)): grid for classes, grid in answers.items()})
    return Segmenter(backend, config), backend


CAT_DOG = ("head of the cat", "tail of the cat", "torso of the cat", "head of the dog", "muzzle of the dog",
           "tail of the dog", "torso of the dog")
PLANT = ("plant of the potted plant", "pot of the potted plant")


def test_part_seg_pascal_part_exact_miou(tmp_path):
    make_pascal_part_layout(tmp_path / "data")
    # truth (4 x 4 cells of 4 x 4 px): image 1 cat head | dog head / cat torso | dog head / cat torso | dog torso
    # (two rows); image 2 plant (two rows) / pot (two rows)
    cat_dog = [["head of the cat", "cat head", "head of the dog", "others"],
               ["torso", "torso of the cat", "muzzle", "dog head"],  # "torso": cat or dog? unknown
               ["torso of the cat", "torso of the cat", "torso of the dog", "torso of the dog"],
               ["torso of the cat", "tail of the cat", "torso of the dog", "torso of the dog"]]
    plant = [["plant"] * 4, ["plant of the potted plant"] * 4, ["pot", "pot", "others", "others"], ["pot"] * 4]
    segmenter, backend = _segmenter({CAT_DOG: cat_dog, PLANT: plant})
    scores = evaluate("part-seg", dataset="pascal_part", data_root=tmp_path / "data", out=tmp_path / "run",
                      segmenter=segmenter, progress=False)
    assert backend.prompts == [segmenter.semantic_prompt(list(CAT_DOG)), segmenter.semantic_prompt(list(PLANT))]
    assert (scores["task"], scores["dataset"], scores["split"], scores["samples"]) == ("part-seg", "pascal_part",
                                                                                    "val", 2)
    per_class = scores["per_class_iou"]["coarse"]
    # cat head 2/2 cells, cat tail 0/1, cat torso 4/6 (the unknown "torso" cell stays in its union), dog head
    # 2/4, dog muzzle 0/1, dog torso 4/4, plant 8/8, pot 6/8; dog tail is nowhere: not in the mean
    expected = {"head of the cat": 1.0, "tail of the cat": 0.0, "torso of the cat": 4 / 6, "head of the dog": 0.5,
                "muzzle of the dog": 0.0, "tail of the dog": None, "torso of the dog": 1.0,
                "plant of the potted plant": 1.0, "pot of the potted plant": 0.75}
    assert {k: per_class[k] for k in expected} == pytest.approx(expected)
    assert Fraction(scores["coarse"]["miou"]).limit_denominator(1000) == Fraction(59, 96)
    assert scores["coarse"]["classes_in_mean"] == 8
    assert scores["coarse"]["pixel_accuracy"] == 26 / 32
    first = read_records(tmp_path / "run" / "samples.jsonl")[0]
    assert first["repairs"] == ["unknown class 'torso': id 255"]
    assert "| pascal_part val (part-seg) | samples | mIoU | pixel acc |" in (tmp_path / "run" / "scores.md").read_text()


def test_part_seg_paco_synonyms_and_dataset_check(tmp_path):
    make_paco_layout(tmp_path / "data")
    asked = ("lid of the trash_can", "body of the trash_can", "handle of the mug")
    # truth: lid row 0 (cells sample pixel rows 2, 6, 10, 14), body below it on the left, handle at row 2 right
    answer = [["trash_can lid", "lid", "others", "others"],
              ["body", "trash_can body", "others", "others"],
              ["body of the trash_can", "body of the trash_can", "others", "mug handle"],
              ["body of the trash_can", "body of the trash_can", "handle", "others"]]
    segmenter, _ = _segmenter({asked: answer})
    scores = evaluate("part-seg", data_root=tmp_path / "data", out=tmp_path / "run", segmenter=segmenter,
                      progress=False)
    assert scores["dataset"] == "paco_lvis" and scores["repairs"] == 0
    per_class = scores["per_class_iou"]["coarse"]
    # pixels: the lid is 8 x 3 (its cell row is 4 px high), the body 8 x 13, the handle one cell of two predicted
    assert per_class == {"others": pytest.approx(96 / 112), "lid of the trash_can": 24 / 32,
                         "body of the trash_can": 96 / 104, "handle of the mug": 0.5, "base of the glass": None}
    assert scores["coarse"]["miou"] == pytest.approx((24 / 32 + 96 / 104 + 0.5) / 3)
    with pytest.raises(ValueError, match="task part-seg evaluates paco_lvis, pascal_part, not 'ade20k'"):
        evaluate("part-seg", dataset="ade20k", data_root=tmp_path / "data", segmenter=segmenter)


def test_cli_part_seg(tmp_path, capsys):
    from text4seg.cli import main

    make_pascal_part_layout(tmp_path / "data")
    argv = ["eval", "part-seg", "--dataset", "pascal_part", "--data-root", str(tmp_path / "data"), "--out",
            str(tmp_path / "run")]
    assert main(argv) == 1  # no --model
    assert "--model is required" in capsys.readouterr().err


@pytest.mark.slow
def test_part_seg_with_the_real_tiny_model(tmp_path, tiny_model_dir, capsys):
    from text4seg.cli import main

    make_pascal_part_layout(tmp_path / "data")
    out = tmp_path / "run"
    argv = ["eval", "part-seg", "--model", str(tiny_model_dir), "--dataset", "pascal_part", "--data-root",
            str(tmp_path / "data"), "--out", str(out), "--batch-size", "2", "--max-new-tokens", "64"]
    assert main(argv) == 0
    assert "| pascal_part val (part-seg) | samples | mIoU | pixel acc |" in capsys.readouterr().out
    scores = json.loads((out / "scores.json").read_text())
    assert scores["samples"] == 2 and scores["images"] == 2
    records = read_records(out / "samples.jsonl")
    assert [r["id"] for r in records] == ["pascal_part_val_1", "pascal_part_val_2"]
    miou = scores["coarse"]["miou"]
    assert miou is None or 0.0 <= miou <= 1.0


def test_part_seg_class_chunks_split_each_images_own_classes(tmp_path):
    """With ``class_chunk`` every image's own part list is cut in order (not the dataset's whole list)."""
    make_pascal_part_layout(tmp_path / "data")
    segmenter, backend = _segmenter({CAT_DOG[:3]: [["head of the cat"] * 4] * 4})
    scores = evaluate("part-seg", dataset="pascal_part", data_root=tmp_path / "data", out=tmp_path / "run",
                      segmenter=segmenter, progress=False, class_chunk=3)
    assert backend.prompts == [segmenter.semantic_prompt(list(c)) for c in (CAT_DOG[:3], CAT_DOG[3:6],
                                                                             CAT_DOG[6:], PLANT)]
    records = read_records(tmp_path / "run" / "samples.jsonl")
    assert [c["classes"] for c in records[0]["chunks"]] == [3, 3, 1]
    assert [c["classes"] for c in records[1]["chunks"]] == [2]
    assert scores["settings"]["class_chunk"] == 3
