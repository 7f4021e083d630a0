"""Evaluation: every task end to end on the real on-disk formats with a stub generator, scores checked against
masks computed by hand; resume after a crash; sharding merge; CLI; the real tiny model on the synthetic split."""

from __future__ import annotations

import hashlib
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from fixtures_data import (
    make_ade20k_layout,
    make_grefcoco_layout,
    make_pascal_voc_layout,
    make_reasonseg_layout,
    make_refcoco_layout,
)
from PIL import Image

from text4seg.config import Text4SegConfig
from text4seg.decoding import GeneratedText
from text4seg.descriptors import encode_descriptor, sanitize_label, wrap_descriptor
from text4seg.evaluation import evaluate, merge_shards
from text4seg.evaluation.records import SampleLog, read_records
from text4seg.evaluation.scoring import markdown_table
from text4seg.refine import RefineOptions, SamRefiner
from text4seg.segmenter import Segmenter

SENTENCE = "Sure, here is the segmentation."


# ------------------------------------------------------------------------------------------------ helpers


class StubBackend:
    """Answers each prompt with a fixed text; records every generate call (one per image)."""

    def __init__(self, answers, default: str = "I cannot see it."):
        self.answers, self.default, self.calls = answers, default, []

    def answer(self, image: Image.Image, prompt: str) -> str:
        if callable(self.answers):
            return self.answers(image, prompt)
        return self.answers.get(prompt, self.default)

    def generate(self, image: Image.Image, prompts):
        self.calls.append((image.size, list(prompts)))
        return [GeneratedText(self.answer(image, p), tokens=1, forward_passes=1, seconds=0.0) for p in prompts]


def grid_answer(rows: list[str], label: str) -> str:
    """Descriptor answer for a grid drawn as strings: ``X`` = ``label``, ``.`` = others."""
    grid = [[label if c == "X" else "others" for c in row] for row in rows]
    return wrap_descriptor(encode_descriptor(grid), SENTENCE)


def stub_segmenter(answers_by_expression: dict[str, str], grid=(4, 4)) -> Segmenter:
    config = Text4SegConfig(grid=grid)
    backend = StubBackend({config.question_template.format(expression=e): a for e, a in answers_by_expression.items()})
    return Segmenter(backend, config)


def run(task: str, root: Path, out: Path, segmenter: Segmenter, **kwargs) -> dict:
    kwargs.setdefault("progress", False)
    return evaluate(task, data_root=root, out=out, segmenter=segmenter, **kwargs)


def assert_close(value, expected) -> None:
    assert value == pytest.approx(float(expected), abs=1e-12)


class BoxPredictor:
    """Fake SAM predictor: answers the box prompt with the filled box; counts image encodings."""

    def __init__(self):
        self.images = 0

    def set_image(self, image):
        self.images += 1
        self.shape = image.shape[:2]

    def predict(self, point_coords, point_labels, box, mask_input, multimask_output):
        mask = np.zeros(self.shape, dtype=bool)
        x0, y0, x1, y1 = (int(v) for v in box)
        mask[y0:y1, x0:x1] = True
        return mask[None], np.array([0.9]), np.zeros((1, 256, 256), np.float32)


def box_refiner() -> SamRefiner:
    return SamRefiner(predictor=BoxPredictor(), options=RefineOptions(use_box=True, rounds=0))


# ----------------------------------------------------------------------------------- refer-seg and rec

# RefCOCO fixture, split "train": image 9 (32 x 48, 4 x 4 grid cells of 8 x 12 px) holds ref 1 ("man on left",
# "left guy"; top-left 2 x 2 cells) and ref 2 (bottom-right 2 x 2 cells); image 25 (16 x 16, cells of 4 x 4 px)
# holds ref 3 (left half).
REF2 = "the | right*one\nthing"
REFCOCO_ANSWERS = {
    "man on left": grid_answer(["XX..", "XX..", "....", "...."], "man on left"),  # exact
    "left guy": "I cannot find it.",  # no descriptor: repaired, empty mask
    # row 0 has 3 cells (repaired: padded); foreground cells (2,2), (3,2), (3,3): an L shape
    REF2: f"{SENTENCE}\n<seg>others *3\n others *4\n others *2| {sanitize_label(REF2)} *1| others *1\n "
          f"others *2| {sanitize_label(REF2)} *2\n</seg>",
    "the left half": grid_answer(["XXX."] * 4, "the left half"),  # 3 of 4 columns
}
# (intersection, union) per sample
REFCOCO_COUNTS = [(384, 384), (0, 384), (288, 384), (128, 192)]
REFCOCO_REFINED = [(384, 384), (0, 384), (384, 384), (128, 192)]  # box fill completes the L shape of ref 2


def expected_referring(counts):
    ciou = Fraction(sum(i for i, _ in counts), sum(u for _, u in counts))
    giou = sum((Fraction(i, u) for i, u in counts), Fraction(0)) / len(counts)
    return ciou, giou


def test_refer_seg_scores_records_and_refiner(tmp_path):
    layout = make_refcoco_layout(tmp_path / "data")
    segmenter = stub_segmenter(REFCOCO_ANSWERS)
    refiner = box_refiner()
    out = tmp_path / "out"
    scores = run("refer-seg", layout["root"], out, segmenter, dataset="refcoco", split="train", refiner=refiner,
                 save_vis=2)
    # all expressions of an image in one generate call; SAM encodes each image once
    assert [len(prompts) for _, prompts in segmenter.backend.calls] == [3, 1]
    assert refiner.predictor.images == 2
    ciou, giou = expected_referring(REFCOCO_COUNTS)
    assert_close(scores["coarse"]["ciou"], ciou)
    assert_close(scores["coarse"]["giou"], giou)
    assert scores["coarse"]["acc@0.5"] == 0.75  # empty prediction misses; 2/3-overlap box hits
    ciou, giou = expected_referring(REFCOCO_REFINED)
    assert_close(scores["refined"]["ciou"], ciou)
    assert_close(scores["refined"]["giou"], giou)
    assert scores["refined"]["acc@0.5"] == 0.75
    assert (scores["samples"], scores["images"], scores["repaired_samples"]) == (4, 2, 2)

    records = read_records(out / "samples.jsonl")
    assert [r["index"] for r in records] == [0, 1, 2, 3]
    assert [r["expression"] for r in records] == ["man on left", "left guy", REF2, "the left half"]
    assert [(r["intersection"], r["union"]) for r in records] == REFCOCO_COUNTS
    assert [r["iou"] for r in records] == [1.0, 0.0, 0.75, 128 / 192]
    assert [r["iou_refined"] for r in records] == [1.0, 0.0, 1.0, 128 / 192]
    assert records[0]["image"] == layout["images"][0] and records[3]["image"] == layout["images"][1]
    assert records[0]["id"] == "refcoco_unc_train_1" and records[1]["expression_index"] == 1
    assert records[1]["text"] == "I cannot find it." and records[1]["repairs"]
    assert records[2]["repairs"] and not records[0]["repairs"]
    assert records[3]["box"] == [0, 0, 12, 16] and records[3]["gt_box"] == [0.0, 0.0, 8.0, 16.0]
    assert all(r["seconds"] >= 0 for r in records)

    assert json.loads((out / "scores.json").read_text()) == scores
    table = (out / "scores.md").read_text()
    assert table.startswith("| refcoco train (refer-seg) | samples | cIoU | gIoU | Acc@0.5 |")
    assert f"| coarse | 4 | {100 * 800 / 1344:.2f} |" in table and "| refined | 4 |" in table
    assert "repaired samples: 2 of 4" in table
    vis = sorted(p.name for p in (out / "vis").iterdir())
    assert vis == ["000000.png", "000001.png"]
    strip = Image.open(out / "vis" / "000000.png")
    assert strip.width == 4 * 48  # image, coarse, refined, ground truth


def test_rec_table_leads_with_box_accuracy(tmp_path):
    layout = make_refcoco_layout(tmp_path / "data")
    scores = run("rec", layout["root"], tmp_path / "out", stub_segmenter(REFCOCO_ANSWERS), dataset="refcoco",
                 split="train")
    assert scores["coarse"]["acc@0.5"] == 0.75 and "refined" not in scores
    assert markdown_table(scores).startswith("| refcoco train (rec) | samples | Acc@0.5 | cIoU | gIoU |\n")


def test_template_k_and_batched_images(tmp_path):
    from text4seg.prompts import REFERRING_QUESTIONS

    layout = make_refcoco_layout(tmp_path / "data")
    answers = {REFERRING_QUESTIONS[2].format(expression=e): a for e, a in REFCOCO_ANSWERS.items()}
    backend = StubBackend(answers)
    scores = run("refer-seg", layout["root"], tmp_path / "out", Segmenter(backend, Text4SegConfig(grid=(4, 4))),
                 dataset="refcoco", split="train", question_index=2, batch_size=2)
    assert backend.calls[0][1][0] == REFERRING_QUESTIONS[2].format(expression="man on left")
    assert [len(prompts) for _, prompts in backend.calls] == [3, 1]  # still one call per image
    ciou, giou = expected_referring(REFCOCO_COUNTS)
    assert_close(scores["coarse"]["ciou"], ciou)
    assert_close(scores["coarse"]["giou"], giou)
    assert scores["settings"]["question_index"] == 2
    with pytest.raises(ValueError, match="question-index 99"):
        run("refer-seg", layout["root"], tmp_path / "out2", stub_segmenter({}), dataset="refcoco", split="train",
            question_index=99)
    with pytest.raises(ValueError, match="not both"):
        run("refer-seg", layout["root"], tmp_path / "out3", stub_segmenter({}), dataset="refcoco", split="train",
            question_index=1, question_template="Find {expression}.")


def test_literal_question_and_first_expressions(tmp_path):
    layout = make_refcoco_layout(tmp_path / "data")
    answers = {f"Find {e}.": a for e, a in REFCOCO_ANSWERS.items()}
    backend = StubBackend(answers)
    scores = run("refer-seg", layout["root"], tmp_path / "out", Segmenter(backend, Text4SegConfig(grid=(4, 4))),
                 dataset="refcoco", split="train", question_template="Find {expression}.", expressions="first")
    asked = [prompt for _, prompts in backend.calls for prompt in prompts]
    assert asked and all(p.startswith("Find ") and p.endswith(".") for p in asked)
    assert scores["settings"]["question_template"] == "Find {expression}."
    assert scores["settings"]["expressions"] == "first"
    all_scores = run("refer-seg", layout["root"], tmp_path / "all", Segmenter(StubBackend(answers),
                     Text4SegConfig(grid=(4, 4))), dataset="refcoco", split="train",
                     question_template="Find {expression}.")
    assert scores["samples"] < all_scores["samples"]


# ------------------------------------------------------------------------------------------- grefer-seg


def test_grefer_seg_no_target_scores(tmp_path):
    layout = make_grefcoco_layout(tmp_path / "data")  # image 32 x 32: cells of 8 x 8 px
    answers = {
        "top left block": grid_answer(["XX..", "XX..", "....", "...."], "top left block"),  # exact
        "both blocks": grid_answer(["XX..", "XX..", "....", "...."], "both blocks"),  # half of the target
        "the purple elephant": grid_answer(["...."] * 4, "x"),  # no target, predicted empty
    }
    scores = run("grefer-seg", layout["root"], tmp_path / "out", stub_segmenter(answers), split="val")
    assert_close(scores["coarse"]["ciou"], Fraction(256 + 256, 256 + 512))
    assert_close(scores["coarse"]["giou"], Fraction(1 + Fraction(1, 2) + 1, 3))
    assert (scores["coarse"]["n_acc"], scores["coarse"]["t_acc"]) == (1.0, 1.0)
    records = read_records(tmp_path / "out" / "samples.jsonl")
    assert [r.get("no_target", False) for r in records] == [False, False, True]
    assert "| N-acc | T-acc |" in markdown_table(scores)


# ------------------------------------------------------------------------------------------- reason-seg


def test_reason_seg_ignore_and_query_subsets(tmp_path):
    layout = make_reasonseg_layout(tmp_path / "data")
    long_query, short_of_a = "What part of the picture would you sit on if you were tired?", "the seat"
    answers = {
        # image a (32 x 32): left half predicted; the 4 x 4 ignore square inside is excluded -> exact
        long_query: grid_answer(["XX.."] * 4, "seat"),
        short_of_a: grid_answer(["...."] * 4, "seat"),  # empty: IoU 0
        # image b (16 x 32, cells of 4 x 8 px): right half, exact
        "the | handle": grid_answer(["..XX"] * 4, "handle"),
    }
    scores = run("reason-seg", layout["root"], tmp_path / "out", stub_segmenter(answers), split="train")
    target_a = 512 - 16
    assert_close(scores["coarse"]["ciou"], Fraction(target_a + 256, 2 * target_a + 256))
    assert_close(scores["coarse"]["giou"], Fraction(2, 3))
    long_, short = scores["subsets"]["long"]["coarse"], scores["subsets"]["short"]["coarse"]
    assert (long_["samples"], short["samples"]) == (2, 1)
    assert (long_["giou"], long_["ciou"]) == (0.5, 0.5)
    assert (short["giou"], short["ciou"]) == (1.0, 1.0)
    records = read_records(tmp_path / "out" / "samples.jsonl")
    assert [(r["intersection"], r["union"], r["is_sentence"]) for r in records] == [
        (target_a, target_a, True), (0, target_a, True), (256, 256, False)]
    table = markdown_table(scores)
    assert "| coarse · long | 2 | 50.00 | 50.00 |" in table and "| coarse · short | 1 | 100.00 | 100.00 |" in table


# ----------------------------------------------------------------------------------------- semantic-seg


def test_semantic_seg_ade20k_prompt_and_miou(tmp_path):
    layout = make_ade20k_layout(tmp_path / "data")  # validation: one 16 x 32 image, all "person" (13)
    from text4seg.datasets.class_names import class_names

    names = class_names("ade20k")
    config = Text4SegConfig(grid=(4, 4))
    grid = [["person", "person", "wall", "wall"]] * 4  # right half predicted as wall (1)
    backend = StubBackend({}, default=wrap_descriptor(encode_descriptor(grid), SENTENCE))
    segmenter = Segmenter(backend, config)
    scores = run("semantic-seg", layout["root"], tmp_path / "out", segmenter, dataset="ADE-150",
                 split="validation")
    (prompt,) = backend.calls[0][1]
    assert prompt == segmenter.semantic_prompt(names[1:])  # the 150 class names, no "others"
    assert scores["dataset"] == "ade20k"
    assert scores["coarse"]["miou"] == 0.25  # person 256/512, wall 0/256; absent classes skipped
    assert scores["coarse"]["pixel_accuracy"] == 0.5
    per_class = scores["per_class_iou"]["coarse"]
    assert (per_class["person"], per_class["wall"], per_class["sky"]) == (0.5, 0.0, None)
    record = read_records(tmp_path / "out" / "samples.jsonl")[0]
    assert record["confusion"] == [[13, 1, 256], [13, 13, 256]] and record["iou"] == 0.25
    assert "| person | 50.00 |" in (tmp_path / "out" / "scores.md").read_text()


def test_semantic_seg_voc_ignores_255_and_counts_unknown_labels(tmp_path):
    # val 2007_000033 (16 x 16): quadrants others, person (15), tv monitor (20), ignore (255)
    layout = make_pascal_voc_layout(tmp_path / "data")
    from text4seg.datasets.class_names import class_names

    names = class_names("pascal_voc")
    grid = [["others", "others", names[15], names[15]],
            ["others", "others", names[15], names[15]],
            ["unicorn", names[20], names[20], "others"],
            ["unicorn", names[20], names[20], "others"]]  # fmt: skip
    backend = StubBackend({}, default=wrap_descriptor(encode_descriptor(grid), SENTENCE))
    refiner = box_refiner()  # boxes of rectangles: refined == coarse
    scores = run("semantic-seg", layout["root"], tmp_path / "out", Segmenter(backend, Text4SegConfig(grid=(4, 4))),
                 dataset="VOC-20", split="val", refiner=refiner)
    assert refiner.predictor.images == 1
    assert scores["refined"] == scores["coarse"]
    # cells are 4 x 4 px; the bottom-left quadrant (tv monitor) is half "unicorn", half right; the
    # bottom-right quadrant is ignored whatever is predicted there
    per_class = scores["per_class_iou"]["coarse"]
    assert per_class[names[15]] == 1.0
    assert per_class[names[20]] == 32 / 64  # half of its quadrant predicted "unicorn" (invalid id)
    assert per_class["others"] == 1.0  # scored, but out of the mean
    assert scores["coarse"]["miou"] == (1.0 + 0.5) / 2
    assert scores["coarse"]["pixel_accuracy"] == (64 + 64 + 32) / 192  # 255 quadrant ignored
    record = read_records(tmp_path / "out" / "samples.jsonl")[0]
    assert record["repairs"] == ["unknown class 'unicorn': id 255"] and scores["repaired_samples"] == 1


# --------------------------------------------------------------------------------------------- synthetic


def synthetic_split(root: Path, num_images: int = 6):
    from text4seg.datasets.synthetic import generate_synthetic

    return generate_synthetic(root, "val", num_images=num_images, image_size=64, seed=3)


def image_key(image) -> bytes:
    return hashlib.sha256(np.asarray(image).tobytes()).digest()


def test_synthetic_scores_match_hand_masks(tmp_path):
    from text4seg.descriptors import mask_to_grid, referring_mask
    from text4seg.images import load_image

    samples = synthetic_split(tmp_path / "data")
    config = Text4SegConfig(grid=(8, 8))
    answers, counts = {}, []
    for sample in samples:
        key = image_key(load_image(tmp_path / "data" / sample.image))
        for expression in sample.expressions:
            cells = mask_to_grid(sample.mask, 8, 8) != 0
            rows = ["".join("X" if c else "." for c in row) for row in cells]
            answers[key, config.question_template.format(expression=expression)] = grid_answer(rows, expression)
            pred = referring_mask(np.where(cells, expression, "others"), sample.mask.shape)
            counts.append((int((pred & sample.mask).sum()), int((pred | sample.mask).sum())))
    backend = StubBackend(lambda image, prompt: answers[image_key(image), prompt])
    scores = run("synthetic", tmp_path / "data", tmp_path / "out", Segmenter(backend, config), split="val")
    ciou, giou = expected_referring(counts)
    assert scores["samples"] == len(counts) and scores["images"] == 6
    assert_close(scores["coarse"]["ciou"], ciou)
    assert_close(scores["coarse"]["giou"], giou)
    assert len(backend.calls) == 6  # one call per image


# ------------------------------------------------------------------------------------ resume and shards


def scores_without_timing(scores: dict) -> dict:
    return {k: v for k, v in scores.items() if k not in ("seconds", "settings")}


def test_resume_after_crash_mid_line(tmp_path):
    layout = make_refcoco_layout(tmp_path / "data")
    out = tmp_path / "out"
    full = run("refer-seg", layout["root"], out, stub_segmenter(REFCOCO_ANSWERS), dataset="refcoco", split="train")
    path = out / "samples.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    # crash while writing the third record: two complete lines and half of the third remain
    path.write_bytes(lines[0] + lines[1] + lines[2][: len(lines[2]) // 2])
    (out / "scores.json").unlink()
    segmenter = stub_segmenter(REFCOCO_ANSWERS)
    resumed = run("refer-seg", layout["root"], out, segmenter, dataset="refcoco", split="train")
    # only the lost samples are predicted again (the rest of image 9, then image 25)
    assert [prompts for _, prompts in segmenter.backend.calls] == [
        [segmenter.referring_prompt(REF2)], [segmenter.referring_prompt("the left half")]]
    records = read_records(path)
    assert [r["index"] for r in records] == [0, 1, 2, 3]
    assert scores_without_timing(resumed) == scores_without_timing(full)
    # a finished run reruns without predicting anything
    segmenter = stub_segmenter(REFCOCO_ANSWERS)
    again = run("refer-seg", layout["root"], out, segmenter, dataset="refcoco", split="train")
    assert segmenter.backend.calls == [] and scores_without_timing(again) == scores_without_timing(full)


def test_sample_log_truncates_partial_line_and_appends(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"index": 0}\n{"index": 1, "te')
    with SampleLog(path) as log:
        assert log.records == [{"index": 0}]
        log.append({"index": 1, "text": "ä"})
    assert read_records(path) == [{"index": 0}, {"index": 1, "text": "ä"}]
    path.write_bytes(b'{"index": 0}\nnot json\n')
    with pytest.raises(ValueError, match=r"s\.jsonl:2"):
        read_records(path)


def test_limit_and_other_settings_in_the_same_folder(tmp_path):
    layout = make_refcoco_layout(tmp_path / "data")
    out = tmp_path / "out"
    first = run("refer-seg", layout["root"], out, stub_segmenter(REFCOCO_ANSWERS), dataset="refcoco",
                split="train", limit=2)
    assert first["samples"] == 2
    assert_close(first["coarse"]["giou"], Fraction(1, 2))
    more = run("refer-seg", layout["root"], out, stub_segmenter(REFCOCO_ANSWERS), dataset="refcoco",
               split="train")
    assert more["samples"] == 4
    with pytest.raises(ValueError, match="split='train'"):
        run("refer-seg", layout["root"], out, stub_segmenter(REFCOCO_ANSWERS), dataset="refcoco", split="val")


def test_shards_merge_equals_single_run(tmp_path):
    samples = synthetic_split(tmp_path / "data", num_images=5)
    answers = {e: grid_answer(["XX.."] * 2 + ["...."] * 2, e) for s in samples for e in s.expressions}
    single = run("synthetic", tmp_path / "data", tmp_path / "single", stub_segmenter(answers), split="val")
    out = tmp_path / "sharded"
    seen = []
    for rank in (1, 0):
        segmenter = stub_segmenter(answers)
        assert run("synthetic", tmp_path / "data", out, segmenter, split="val", rank=rank, world_size=2) is None
        seen.append(len(segmenter.backend.calls))
        assert (out / f"samples.rank{rank}.jsonl").is_file()
    assert seen == [2, 3]  # images 1, 3 on rank 1; 0, 2, 4 on rank 0
    merged = merge_shards(out, 2)
    assert scores_without_timing(merged) == scores_without_timing(single)
    assert sorted(p.name for p in out.glob("samples*.jsonl")) == ["samples.jsonl"]
    single_records = read_records(tmp_path / "single" / "samples.jsonl")
    merged_records = read_records(out / "samples.jsonl")
    drop = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in merged_records] == \
        [{k: v for k, v in r.items() if k not in drop} for r in single_records]


def test_merge_refuses_unfinished_shards(tmp_path):
    synthetic_split(tmp_path / "data", num_images=2)
    out = tmp_path / "out"
    run("synthetic", tmp_path / "data", out, stub_segmenter({}), split="val", rank=0, world_size=2)
    with pytest.raises(ValueError, match="shard 1 of 2 is not finished"):
        merge_shards(out, 2)


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_configure_defaults_are_none():
    import argparse

    from text4seg.cli.eval import configure

    parser = argparse.ArgumentParser()
    configure(parser)
    args = parser.parse_args(["refer-seg"])
    assert {k for k, v in vars(args).items() if v is not None} == {"task"}


@pytest.mark.slow
def test_cli_with_the_real_tiny_model(tmp_path, tiny_model_dir, tiny_data, capsys):
    from text4seg.cli import main

    out = tmp_path / "out"
    argv = ["eval", "synthetic", "--model", str(tiny_model_dir), "--data-root", str(tiny_data.root), "--split",
            "train", "--limit", "5", "--out", str(out), "--save-vis", "1", "--batch-size", "2"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| synthetic train (synthetic) | samples | cIoU | gIoU |" in printed
    scores = json.loads((out / "scores.json").read_text())
    assert scores["samples"] == 5 and scores["settings"]["model"] == str(tiny_model_dir)
    records = read_records(out / "samples.jsonl")
    assert [r["index"] for r in records] == [0, 1, 2, 3, 4]
    assert all(isinstance(r["text"], str) and 0.0 <= r["iou"] <= 1.0 for r in records)
    assert sum(bool(r["repairs"]) for r in records) == scores["repaired_samples"]
    assert [p.name for p in (out / "vis").iterdir()] == ["000000.png"]
    # rerunning the finished command predicts nothing and prints the same table
    assert main(argv) == 0
    assert capsys.readouterr().out.split("\n")[:3] == printed.split("\n")[:3]


def test_panel_strip_leaves_the_datasets_ignore_id_uncoloured():
    """Past 255 classes id 255 is a class (coloured) and 65535 the ignore id (not)."""
    from PIL import Image

    from text4seg.evaluation.visualize import panel_strip

    image = Image.new("RGB", (3, 1), (10, 20, 30))
    labels = np.array([[255, 65535, 0]], dtype=np.int64)
    wide = np.asarray(panel_strip(image, [("p", labels)], with_image=False, ignore_index=65535))
    row = wide[14]  # the tile starts under the title
    assert tuple(row[0]) != (10, 20, 30) and tuple(row[1]) == (10, 20, 30) and tuple(row[2]) == (10, 20, 30)
    narrow = np.asarray(panel_strip(image, [("p", labels)], with_image=False))
    assert tuple(narrow[14][0]) == (10, 20, 30)
