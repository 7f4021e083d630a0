"""Synthetic videos: deterministic, in the MeViS layout, read back by the synthetic-video reader."""

from __future__ import annotations

import json

import numpy as np
import pytest

from text4seg.datasets import count_video, read_video
from text4seg.datasets.synthetic import COLOURS
from text4seg.datasets.synthetic_video import MOTIONS, write_synthetic_videos
from text4seg.images import load_image


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic_video")
    write_synthetic_videos(root, "train", 6, num_frames=8, size=64, seed=3)
    return root


def test_layout_and_determinism(synthetic_root, tmp_path):
    split = synthetic_root / "synthetic-video" / "train"
    files = _files(split)
    assert sorted({name.split("/")[0] for name in files}) == ["JPEGImages", "mask_dict.json",
                                                              "meta_expressions.json"]
    assert sorted(n for n in files if n.startswith("JPEGImages/v0000/")) == [
        f"JPEGImages/v0000/{t:05d}.jpg" for t in range(8)]
    again = write_synthetic_videos(tmp_path, "train", 6, num_frames=8, size=64, seed=3)
    assert _files(again) == files
    other = write_synthetic_videos(tmp_path / "b", "train", 6, num_frames=8, size=64, seed=4)
    assert _files(other)["meta_expressions.json"] != files["meta_expressions.json"]
    valid = write_synthetic_videos(tmp_path / "c", "valid_u", 6, num_frames=8, size=64, seed=3)
    assert _files(valid)["meta_expressions.json"] != files["meta_expressions.json"]  # splits differ


def test_refuses_existing_output_and_bad_arguments(synthetic_root):
    with pytest.raises(FileExistsError, match="already exists"):
        write_synthetic_videos(synthetic_root, "train", 1)
    with pytest.raises(ValueError, match="synthetic-video has no split 'valid'"):
        write_synthetic_videos(synthetic_root, "valid", 1)
    with pytest.raises(ValueError, match="at least 16x16"):
        write_synthetic_videos(synthetic_root, "valid_u", 1, size=8)
    assert not (synthetic_root / "synthetic-video" / "valid_u").exists()


def test_read_back_expressions_and_masks(synthetic_root):
    samples = list(read_video("synthetic-video", synthetic_root, "train", check_masks=True))
    assert len(samples) == count_video("synthetic-video", synthetic_root, "train")
    meta = json.loads((synthetic_root / "synthetic-video" / "train" / "meta_expressions.json").read_text())
    by_video: dict[str, list] = {}
    for s in samples:
        by_video.setdefault(s.video_id, []).append(s)
    assert sorted(by_video) == [f"v{v:04d}" for v in range(6)]
    motions_seen = set()
    for vid, group in by_video.items():
        objects = len(meta["videos"][vid]["expressions"]) - 2
        assert objects % 2 == 0 and objects // 2 in (2, 3)
        n = objects // 2
        appearance, motion, pair, none = group[:n], group[n:2 * n], group[2 * n], group[2 * n + 1]
        assert [s.object_ids for s in appearance] == [[k] for k in range(n)]
        assert all(s.expression.startswith("the ") for s in group)
        for s in motion:
            phrase = next(p for p in MOTIONS.values() if s.expression.endswith(p))
            motions_seen.add(phrase)
        assert none.no_target and none.object_ids == [] and not none.masks().any()
        assert len(pair.object_ids) == 2 and " and the " in pair.expression
        masks = [s.masks() for s in appearance]
        # visible pixels: shapes never share a pixel (the one on top owns it)
        assert (np.sum(np.stack(masks), axis=0) <= 1).all()
        np.testing.assert_array_equal(pair.masks(), masks[pair.object_ids[0]] | masks[pair.object_ids[1]])
        # each mask covers pixels of its shape's colour (JPEG tolerance)
        for s, m in zip(appearance, masks):
            colour = np.array(COLOURS[s.expression.split()[1]], dtype=float)
            for t in range(s.num_frames):
                if m[t].sum() >= 9:
                    frame = np.asarray(load_image(synthetic_root / s.frame_paths[t]), dtype=float)
                    assert np.abs(frame[m[t]].mean(axis=0) - colour).max() < 40
    assert len(motions_seen) >= 4


def test_motions_move_as_named(tmp_path):
    write_synthetic_videos(tmp_path, "valid_u", 12, num_frames=8, size=(48, 64), seed=0)
    samples = list(read_video("synthetic-video", tmp_path, "valid_u"))
    assert (samples[0].height, samples[0].width) == (48, 64)
    checked = set()
    for s in samples:
        if s.no_target or len(s.object_ids) != 1:
            continue
        masks = s.masks()
        visible = [t for t in range(s.num_frames) if masks[t].any()]
        if s.expression.endswith("leaving the frame"):
            assert not masks[-1].any() and masks[0].any()
            checked.add("leaves")
        elif s.expression.endswith("that appears later"):
            assert not masks[0].any() and masks[-1].any()
            checked.add("appears")
        elif s.expression.endswith("moving right") and len(visible) >= 2:
            cols = [np.nonzero(masks[t])[1].min() for t in visible]  # left edge never clipped by moving right
            assert cols[-1] > cols[0]
            checked.add("right")
    assert {"leaves", "appears"} <= checked
