"""Video evaluation (rvos, reasonvos): each benchmark end to end on its real on-disk layout with a stub generator
answering known descriptors; J/F/A/R checked against values computed here independently (brute-force DAVIS
boundary F, exact fractions); frame stride; resume; shards; submissions for splits without ground truth."""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from video_fixtures import (
    EMPTY,
    MV_FRAMES,
    RV_FOREGROUND,
    RV_VID,
    YT_OBJ1,
    YT_OBJ2,
    H,
    W,
    box,
    make_davis,
    mevis_mask,
)

from text4seg.config import Text4SegConfig
from text4seg.decoding import GeneratedText
from text4seg.descriptors import encode_descriptor, wrap_descriptor
from text4seg.evaluation import evaluate, merge_shards
from text4seg.evaluation.records import read_records
from text4seg.evaluation.scoring import markdown_table
from text4seg.evaluation.video import nearest_segmented, segmented_frames
from text4seg.images import load_image
from text4seg.segmenter import Segmenter

# ------------------------------------------------------------------------------------------------ helpers


def image_key(image: Image.Image) -> str:
    return hashlib.sha256(np.asarray(image.convert("RGB")).tobytes()).hexdigest()


def answer_for(mask: np.ndarray) -> str:
    """A plain descriptor whose grid (one cell per pixel) is ``mask``."""
    grid = np.where(mask, "target", "others").tolist()
    return wrap_descriptor(encode_descriptor(grid, rle=False), "Sure.")


class FrameStub:
    """Answers (frame, expression) with the descriptor of a known mask; records each generate call."""

    def __init__(self, masks: dict[tuple[str, str], np.ndarray], question: str):
        self.masks, self.question, self.calls = masks, question, []

    def generate(self, image, prompts):
        key = image_key(image)
        self.calls.append((key, list(prompts)))
        out = []
        for prompt in prompts:
            expression = prompt[len("Segment "):-1]
            out.append(GeneratedText(answer_for(self.masks[key, expression]), tokens=1, forward_passes=1,
                                     seconds=0.0))
        return out


def stub(masks: dict, grid: tuple[int, int] = (H, W)) -> Segmenter:
    config = Text4SegConfig(grid=grid, question_template="Segment {expression}.", descriptor_form="plain")
    return Segmenter(FrameStub(masks, config.question_template), config)


def frame_keys(root: Path, folder: str, names: list[str]) -> list[str]:
    return [image_key(load_image(root / folder / f"{n}.jpg")) for n in names]


def run(task: str, root: Path, out: Path, segmenter: Segmenter, **kwargs) -> dict:
    kwargs.setdefault("progress", False)
    return evaluate(task, data_root=root, out=out, segmenter=segmenter, **kwargs)


# ---- independent references: J, the DAVIS boundary F (seg2bmap + disk dilation by brute force), A and R


def ref_j(pred: np.ndarray, gt: np.ndarray) -> Fraction:
    union = int((pred | gt).sum())
    return Fraction(1) if union == 0 else Fraction(int((pred & gt).sum()), union)


def ref_boundary(seg: np.ndarray) -> np.ndarray:
    h, w = seg.shape
    b = np.zeros((h, w), dtype=bool)
    for y in range(h):
        for x in range(w):
            east = seg[y, x + 1] if x + 1 < w else False
            south = seg[y + 1, x] if y + 1 < h else False
            se = seg[y + 1, x + 1] if x + 1 < w and y + 1 < h else False
            if y == h - 1 and x == w - 1:
                b[y, x] = False
            elif y == h - 1:
                b[y, x] = seg[y, x] != east
            elif x == w - 1:
                b[y, x] = seg[y, x] != south
            else:
                b[y, x] = seg[y, x] != east or seg[y, x] != south or seg[y, x] != se
    return b


def ref_dilate(b: np.ndarray, r: int) -> np.ndarray:
    h, w = b.shape
    out = np.zeros_like(b)
    for y, x in zip(*np.nonzero(b)):
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                if dx * dx + dy * dy <= r * r and 0 <= y + dy < h and 0 <= x + dx < w:
                    out[y + dy, x + dx] = True
    return out


def ref_f(pred: np.ndarray, gt: np.ndarray) -> Fraction:
    r = math.ceil(0.008 * math.hypot(*pred.shape))
    bp, bg = ref_boundary(pred), ref_boundary(gt)
    n_p, n_g = int(bp.sum()), int(bg.sum())
    if n_p == 0 and n_g == 0:
        precision = recall = Fraction(1)
    elif n_p == 0:
        precision, recall = Fraction(1), Fraction(0)
    elif n_g == 0:
        precision, recall = Fraction(0), Fraction(1)
    else:
        precision = Fraction(int((bp & ref_dilate(bg, r)).sum()), n_p)
        recall = Fraction(int((bg & ref_dilate(bp, r)).sum()), n_g)
    return Fraction(0) if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def ref_a(pred: np.ndarray, gt: np.ndarray) -> Fraction:
    return Fraction(int((pred == gt).sum()), pred.size)


def ref_r(pred: np.ndarray, gt: np.ndarray, fg: np.ndarray) -> float:
    return max(1 - int((pred & ~gt).sum()) / (int(fg.sum()) + 1e-6), 0.0)


def mean(values) -> Fraction:
    values = list(values)
    return sum(values, Fraction(0)) / len(values)


def close(value, expected) -> None:
    assert value == pytest.approx(float(expected), abs=1e-12)


def expected_expression(preds, gts) -> tuple[Fraction, Fraction]:
    return mean(ref_j(p, g) for p, g in zip(preds, gts)), mean(ref_f(p, g) for p, g in zip(preds, gts))


def scores_without_timing(scores: dict) -> dict:
    return {k: v for k, v in scores.items() if k not in ("seconds", "settings")}


def records_without_timing(path: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in read_records(path)]


def test_nearest_segmented_frame():
    assert segmented_frames(8, 3) == [0, 3, 6]
    assert [nearest_segmented(i, 3, 8) for i in range(8)] == [0, 0, 3, 3, 3, 6, 6, 6]
    assert [nearest_segmented(i, 2, 5) for i in range(5)] == [0, 0, 2, 2, 4]  # ties go to the earlier frame
    assert [nearest_segmented(i, 1, 3) for i in range(3)] == [0, 1, 2]
    assert [nearest_segmented(i, 10, 4) for i in range(4)] == [0, 0, 0, 0]


# ------------------------------------------------------------------------------------------------ MeViS

# predictions per expression and frame (MeViS fixture: 3 frames of 6 x 8)
MV_EXPRESSIONS = ["2 shapes moving", "the shape moving right", "the purple star"]
MV_PRED = {
    "2 shapes moving": [box(0, 0, 2, 3), mevis_mask([10, 11], 1), EMPTY],
    "the shape moving right": [EMPTY, box(3, 4, 6, 6), box(4, 6, 6, 8)],
    "the purple star": [EMPTY, box(0, 0, 1, 1), EMPTY],
}
MV_GT = {
    "2 shapes moving": [mevis_mask([10, 11], i) for i in range(3)],
    "the shape moving right": [mevis_mask([11], i) for i in range(3)],
    "the purple star": [EMPTY] * 3,
}


def mevis_stub(root: Path, split: str = "valid_u") -> Segmenter:
    keys = frame_keys(root, f"mevis/{split}/JPEGImages/v0", MV_FRAMES)
    assert len(set(keys)) == 3
    return stub({(keys[i], e): MV_PRED[e][i] for e in MV_EXPRESSIONS for i in range(3)})


def test_rvos_mevis_scores_records_and_one_call_per_frame(mevis_root, tmp_path, capsys):
    segmenter = mevis_stub(mevis_root)
    out = tmp_path / "out"
    scores = run("rvos", mevis_root, out, segmenter, dataset="mevis", save_vis=1)
    # one generate call per frame holding every expression of the video
    assert [len(prompts) for _, prompts in segmenter.backend.calls] == [3, 3, 3]
    assert len({key for key, _ in segmenter.backend.calls}) == 3
    expected = {e: expected_expression(MV_PRED[e], MV_GT[e]) for e in MV_EXPRESSIONS}
    assert expected["the purple star"] == (Fraction(2, 3), Fraction(2, 3))  # false positive: J = F = 0
    records = read_records(out / "samples.jsonl")
    assert [(r["index"], r["video"], r["exp_id"], r["expression"]) for r in records] == [
        (0, "v0", "0", MV_EXPRESSIONS[0]), (1, "v0", "1", MV_EXPRESSIONS[1]), (2, "v0", "2", MV_EXPRESSIONS[2])]
    for r in records:
        j, f = expected[r["expression"]]
        close(r["j"], j)
        close(r["f"], f)
        assert (r["frames"], r["segmented"], r["repairs"]) == (3, 3, 0)
        assert "a" not in r and "type" not in r
    assert records[2]["no_target"] is True and "no_target" not in records[0]
    close(scores["j"], mean(j for j, _ in expected.values()))
    close(scores["f"], mean(f for _, f in expected.values()))
    close(scores["jf"], (mean(j for j, _ in expected.values()) + mean(f for _, f in expected.values())) / 2)
    assert (scores["expressions"], scores["videos"], scores["video_frames"], scores["frames"]) == (3, 1, 3, 9)
    assert scores["split"] == "valid_u" and scores["ground_truth"] is True
    assert "per expression" in scores["convention"]
    assert json.loads((out / "scores.json").read_text()) == scores
    table = markdown_table(scores)
    assert table.startswith("| mevis valid_u (rvos) | expressions | J&F | J | F |\n|---|---:|---:|---:|---:|\n")
    assert f"| all | 3 | {100 * scores['jf']:.2f} |" in table
    assert (out / "scores.md").read_text() == table + "\n"
    gif = Image.open(out / "vis" / "v0" / "0.gif")
    assert gif.n_frames == 3 and not (out / "vis" / "v0" / "1.gif").exists()
    assert not (out / "masks").exists()


def test_frame_stride_gives_the_nearest_segmented_mask(mevis_root, tmp_path):
    segmenter = mevis_stub(mevis_root)
    out = tmp_path / "out"
    scores = run("rvos", mevis_root, out, segmenter, dataset="mevis", frame_stride=2, save_masks=True)
    keys = frame_keys(mevis_root, "mevis/valid_u/JPEGImages/v0", MV_FRAMES)
    assert [key for key, _ in segmenter.backend.calls] == [keys[0], keys[2]]  # frames 0 and 2 only
    nearest = [0, 0, 2]  # frame 1: a tie between 0 and 2 goes to frame 0
    expected = {e: expected_expression([MV_PRED[e][k] for k in nearest], MV_GT[e]) for e in MV_EXPRESSIONS}
    records = read_records(out / "samples.jsonl")
    for r in records:
        close(r["j"], expected[r["expression"]][0])
        close(r["f"], expected[r["expression"]][1])
        assert (r["frames"], r["segmented"]) == (3, 2)
    close(scores["j"], mean(j for j, _ in expected.values()))
    assert scores["frame_stride"] == 2 and scores["segmented_frames"] == 6
    # the saved masks are the predictions of the nearest segmented frame, 0/255 at frame size
    for k, expression in enumerate(MV_EXPRESSIONS):
        for i, name in enumerate(MV_FRAMES):
            png = Image.open(out / "masks" / "v0" / str(k) / f"{name}.png")
            assert png.mode == "L" and png.size == (W, H)
            values = np.asarray(png)
            assert set(np.unique(values)) <= {0, 255}
            assert np.array_equal(values == 255, MV_PRED[expression][nearest[i]])
    with pytest.raises(ValueError, match="frame_stride, save_masks, the video strategy, sam2 and context_frames apply to the video tasks"):
        evaluate("synthetic", data_root=tmp_path, out=tmp_path / "x", segmenter=segmenter, frame_stride=2)
    with pytest.raises(ValueError, match="frame_stride must be >= 1"):
        run("rvos", mevis_root, tmp_path / "y", segmenter, dataset="mevis", frame_stride=0)
    with pytest.raises(ValueError, match="per-frame evaluation has no SAM refiner"):
        run("rvos", mevis_root, tmp_path / "z", segmenter, dataset="mevis", refiner="sam")


# ------------------------------------------------------------------------------------ Ref-YouTube-VOS / DAVIS

YT_NAMES = ["00000", "00005", "00010"]


def test_rvos_ref_youtube_vos_train_with_palette_annotations(ytvos_root, tmp_path):
    keys = frame_keys(ytvos_root, "ref-youtube-vos/train/JPEGImages/vidA", YT_NAMES)
    # expression 0 ("a penguin", object 1) predicted exactly; expression 1 ("a cat", object 2) gets object 1
    masks = {(keys[i], "a penguin on the left"): YT_OBJ1[i] for i in range(3)}
    masks.update({(keys[i], "a cat"): YT_OBJ1[i] for i in range(3)})
    scores = run("rvos", ytvos_root, tmp_path / "out", stub(masks), dataset="ref-youtube-vos", split="train")
    j1, f1 = expected_expression(YT_OBJ1, YT_OBJ2)
    assert (j1, f1) == (Fraction(1, 3), Fraction(1, 3))  # only the last frame (both empty) scores
    close(scores["j"], (1 + j1) / 2)
    close(scores["f"], (1 + f1) / 2)
    assert scores["dataset"] == "ref-youtube-vos" and scores["expressions"] == 2


def test_rvos_ref_davis17_states_convention_b(tmp_path):
    make_davis(tmp_path)
    keys = frame_keys(tmp_path, "ref-davis/valid/JPEGImages/bike", YT_NAMES)
    shifted = [box(1, 2, 3, 4), box(2, 2, 4, 5), EMPTY]
    masks = {(keys[i], f"a bike {k}"): (YT_OBJ1[i] if k % 2 == 0 else shifted[i]) for k in range(4) for i in range(3)}
    scores = run("rvos", tmp_path, tmp_path / "out", stub(masks), dataset="ref-davis17")
    assert scores["split"] == "valid"
    j, f = expected_expression(shifted, YT_OBJ1)
    close(scores["j"], (1 + j) / 2)
    close(scores["f"], (1 + f) / 2)
    assert "convention (B)" in scores["convention"]
    assert "convention (B)" in json.loads((tmp_path / "out" / "scores.json").read_text())["convention"]


# ------------------------------------------------------------------------------------------------ ReVOS

RV_EXPRESSIONS = {"0": "the dog", "1": "what can the child ride?", "2": "the elephant"}
RV_GT = {"0": [box(1, 1, 4, 4), EMPTY], "1": [box(1, 1, 4, 4) | box(0, 6, 2, 8), box(0, 5, 2, 8)],
         "2": [EMPTY, EMPTY]}
RV_PRED = {"0": [box(1, 1, 4, 3), box(5, 0, 6, 2)],  # partial, then a false positive on an empty target
           "1": [box(0, 6, 2, 8), box(0, 4, 3, 8)],
           "2": [EMPTY, box(4, 0, 6, 1)]}


def test_reasonvos_revos_types_a_r_and_nested_ids(revos_root, tmp_path):
    keys = frame_keys(revos_root, f"ReVOS/JPEGImages/{RV_VID}", ["a", "b"])
    masks = {(keys[i], RV_EXPRESSIONS[k]): RV_PRED[k][i] for k in RV_PRED for i in range(2)}
    out = tmp_path / "out"
    scores = run("reasonvos", revos_root, out, stub(masks), save_masks=True)
    assert scores["dataset"] == "revos" and scores["split"] == "valid"
    expected = {}
    for k in RV_PRED:
        preds, gts = RV_PRED[k], RV_GT[k]
        j, f = expected_expression(preds, gts)
        a = mean(ref_a(p, g) for p, g in zip(preds, gts))
        r = sum(ref_r(p, g, fg) for p, g, fg in zip(preds, gts, RV_FOREGROUND)) / 2
        expected[k] = {"j": j, "f": f, "a": a, "r": r}
    groups = {"referring": "0", "reasoning": "1", "no_target": "2"}
    for group, k in groups.items():
        for figure in ("j", "f", "a"):
            close(scores[group][figure], expected[k][figure])
        assert scores[group]["r"] == pytest.approx(expected[k]["r"], abs=1e-12)
        close(scores[group]["jf"], (expected[k]["j"] + expected[k]["f"]) / 2)
        assert scores[group]["expressions"] == 1
    for figure in ("j", "f", "a"):
        close(scores["overall"][figure], (expected["0"][figure] + expected["1"][figure]) / 2)
    assert scores["overall"]["expressions"] == 2
    assert "0/1 masks" in scores["convention"] and "(referring + reasoning) / 2" in scores["convention"]
    records = read_records(out / "samples.jsonl")
    assert [(r["video"], r["exp_id"], r["type"]) for r in records] == [
        (RV_VID, "0", "referring"), (RV_VID, "1", "reasoning"), (RV_VID, "2", "no_target")]
    assert all({"j", "f", "a", "r", "jf", "frames", "repairs", "seconds"} <= set(r) for r in records)
    # nested video ids are nested folders
    png = np.asarray(Image.open(out / "masks" / "UVO" / "all" / "-fbscFfkh4M" / "1" / "b.png"))
    assert np.array_equal(png == 255, RV_PRED["1"][1])
    table = markdown_table(scores)
    assert table.startswith("| revos valid (reasonvos) | expressions | J&F | J | F | A | R |")
    for group in ("referring", "reasoning", "overall", "no_target"):
        assert f"| {group} |" in table
    with pytest.raises(ValueError, match="task reasonvos evaluates revos, not 'mevis'"):
        run("reasonvos", revos_root, tmp_path / "x", stub(masks), dataset="mevis")
    with pytest.raises(ValueError, match="task rvos evaluates"):
        run("rvos", revos_root, tmp_path / "x", stub(masks), dataset="revos")


# ------------------------------------------------------------------------------- splits without ground truth


def submission_masks(path: Path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as zf:
        return {name: np.asarray(Image.open(io.BytesIO(zf.read(name)))) for name in zf.namelist()}


def test_no_ground_truth_splits_write_masks_and_submission(ytvos_root, mevis_root, tmp_path, capsys):
    # Ref-YouTube-VOS valid = valid meta minus test meta: vidV only
    keys = frame_keys(ytvos_root, "ref-youtube-vos/valid/JPEGImages/vidV", ["00000", "00005"])
    masks = {(keys[0], "a dog"): box(0, 0, 2, 2), (keys[1], "a dog"): EMPTY,
             (keys[0], "a ball"): EMPTY, (keys[1], "a ball"): box(3, 3, 6, 8)}
    out = tmp_path / "yt"
    scores = run("rvos", ytvos_root, out, stub(masks), dataset="ref-youtube-vos")
    assert scores["ground_truth"] is False and "j" not in scores
    assert scores["submission"] == {"path": "submission.zip", "layout": "ref-youtube-vos", "expressions": 2,
                                    "files": 4}
    zipped = submission_masks(out / "submission.zip")
    assert list(zipped) == ["Annotations/vidV/0/00000.png", "Annotations/vidV/0/00005.png",
                            "Annotations/vidV/1/00000.png", "Annotations/vidV/1/00005.png"]
    assert np.array_equal(zipped["Annotations/vidV/1/00005.png"] == 255, box(3, 3, 6, 8))
    assert set(np.unique(zipped["Annotations/vidV/0/00000.png"])) == {0, 255}
    assert (out / "masks" / "vidV" / "0" / "00000.png").is_file()
    assert "no ground truth: submission written" in markdown_table(scores)
    assert all("j" not in r for r in read_records(out / "samples.jsonl"))

    # MeViS valid: the video folders at the top of the zip
    keys = frame_keys(mevis_root, "mevis/valid/JPEGImages/w0", ["00000", "00001"])
    masks = {(k, "the cat jumping"): box(1, 1, 3, 3) for k in keys}
    scores = run("rvos", mevis_root, tmp_path / "mv", stub(masks), dataset="mevis", split="valid")
    assert list(submission_masks(tmp_path / "mv" / "submission.zip")) == ["w0/0/00000.png", "w0/0/00001.png"]
    assert scores["submission"]["layout"] == "mevis"


# ------------------------------------------------------------------------------------ synthetic, resume, shards


def synthetic_videos(root: Path, num_videos: int = 3, num_frames: int = 5):
    from text4seg.datasets import read_video
    from text4seg.datasets.synthetic_video import write_synthetic_videos

    write_synthetic_videos(root, "valid_u", num_videos, num_frames=num_frames, size=16, seed=4)
    return list(read_video("synthetic-video", root, "valid_u"))


def ground_truth_stub(root: Path, samples) -> Segmenter:
    """Predicts every frame's ground truth exactly (16 x 16 frames, one grid cell per pixel)."""
    masks = {}
    for s in samples:
        for i, path in enumerate(s.frame_paths):
            masks[image_key(load_image(root / path)), s.expression] = s.mask(i)
    return stub(masks, grid=(16, 16))


def test_synthetic_video_exact_and_strided(tmp_path):
    samples = synthetic_videos(tmp_path / "data", num_videos=2, num_frames=7)
    exact = run("rvos", tmp_path / "data", tmp_path / "exact", ground_truth_stub(tmp_path / "data", samples),
                dataset="synthetic-video")
    assert (exact["j"], exact["f"], exact["jf"]) == (1.0, 1.0, 1.0)
    segmenter = ground_truth_stub(tmp_path / "data", samples)
    strided = run("rvos", tmp_path / "data", tmp_path / "strided", segmenter, dataset="synthetic-video",
                  frame_stride=3)
    assert len(segmenter.backend.calls) == 2 * 3  # frames 0, 3, 6 of each video
    nearest = [nearest_segmented(i, 3, 7) for i in range(7)]
    expected = [expected_expression([s.mask(k) for k in nearest], list(s.masks())) for s in samples]
    close(strided["j"], mean(j for j, _ in expected))
    close(strided["f"], mean(f for _, f in expected))


def test_resume_after_a_crash_predicts_only_the_lost_video(tmp_path):
    root = tmp_path / "data"
    samples = synthetic_videos(root)
    out = tmp_path / "out"
    full = run("rvos", root, out, ground_truth_stub(root, samples), dataset="synthetic-video", frame_stride=2)
    path = out / "samples.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    first_video = sum(s.video_id == samples[0].video_id for s in samples)
    # killed while writing the second video's records: one complete record of it and half of the next remain
    path.write_bytes(b"".join(lines[:first_video + 1]) + lines[first_video + 1][:10])
    (out / "scores.json").unlink()
    segmenter = ground_truth_stub(root, samples)
    resumed = run("rvos", root, out, segmenter, dataset="synthetic-video", frame_stride=2)
    second = [s.expression for s in samples if s.video_id == samples[first_video].video_id]
    third = [s.expression for s in samples if s.video_id == samples[-1].video_id]
    asked = [[p[len("Segment "):-1] for p in prompts] for _, prompts in segmenter.backend.calls]
    assert asked == [second[1:]] * 3 + [third] * 3  # frames 0, 2, 4 of videos 2 and 3
    assert [r["index"] for r in read_records(path)] == list(range(len(samples)))
    assert scores_without_timing(resumed) == scores_without_timing(full)
    with pytest.raises(ValueError, match="frame_stride=2"):
        run("rvos", root, out, ground_truth_stub(root, samples), dataset="synthetic-video", frame_stride=1)


def test_sharded_run_equals_single_run(tmp_path):
    root = tmp_path / "data"
    samples = synthetic_videos(root, num_videos=3)
    # a prediction that is not the ground truth, so that the scores are not all ones
    masks = {(k, e): np.roll(m, 1, axis=1) for (k, e), m in ground_truth_stub(root, samples).backend.masks.items()}
    single = run("rvos", root, tmp_path / "single", stub(masks, grid=(16, 16)), dataset="synthetic-video")
    assert 0 < single["jf"] < 1
    out = tmp_path / "sharded"
    for rank in (1, 0):
        assert run("rvos", root, out, stub(masks, grid=(16, 16)), dataset="synthetic-video", rank=rank,
                   world_size=2) is None
    with pytest.raises(ValueError, match="shard 0 of 3 is not finished"):
        merge_shards(out, 3)
    merged = merge_shards(out, 2)
    assert scores_without_timing(merged) == scores_without_timing(single)
    assert records_without_timing(out / "samples.jsonl") == records_without_timing(tmp_path / "single" /
                                                                                   "samples.jsonl")


# ------------------------------------------------------------------------------------- the CLI, killed mid-run


@pytest.mark.slow
def test_cli_rvos_killed_with_sigkill_resumes_exactly(tmp_path, tiny_model_dir, capsys):
    import os
    import signal
    import subprocess
    import sys
    import time

    from text4seg.cli import main
    from text4seg.datasets.synthetic_video import write_synthetic_videos

    root = tmp_path / "data"
    write_synthetic_videos(root, "valid_u", 3, num_frames=4, size=32, seed=1)
    meta = json.loads((root / "synthetic-video" / "valid_u" / "meta_expressions.json").read_text())
    per_video = [len(v["expressions"]) for v in meta["videos"].values()]

    def argv(out: Path) -> list[str]:
        return ["eval", "rvos", "--model", str(tiny_model_dir), "--data-root", str(root), "--dataset",
                "synthetic-video", "--out", str(out), "--device", "cpu", "--decoding", "plain",
                "--max-new-tokens", "8"]

    killed = tmp_path / "killed"
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    process = subprocess.Popen([sys.executable, "-m", "text4seg.cli", *argv(killed)], cwd=repo, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        # wait for the first video's records (at least one line), then kill while the second is predicted
        while len(read_records(killed / "samples.jsonl")) < per_video[0]:
            assert process.poll() is None, "the evaluation ended before it could be killed"
            assert time.monotonic() < deadline, "no record written in time"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=60) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not (killed / "scores.json").exists()
    assert per_video[0] <= len(read_records(killed / "samples.jsonl")) < sum(per_video)

    assert main(argv(killed)) == 0
    resumed_table = capsys.readouterr().out
    assert main(argv(tmp_path / "uninterrupted")) == 0
    table = capsys.readouterr().out
    assert "| synthetic-video valid_u (rvos) | expressions | J&F | J | F |" in table
    indices = [r["index"] for r in read_records(killed / "samples.jsonl")]
    assert indices == list(range(sum(per_video)))  # every expression exactly once, in order
    resumed = json.loads((killed / "scores.json").read_text())
    uninterrupted = json.loads((tmp_path / "uninterrupted" / "scores.json").read_text())
    assert scores_without_timing(resumed) == scores_without_timing(uninterrupted)
    assert records_without_timing(killed / "samples.jsonl") == records_without_timing(
        tmp_path / "uninterrupted" / "samples.jsonl")
    assert resumed_table.split("\n")[:3] == table.split("\n")[:3]
