"""Video readers (Ref-YouTube-VOS, Ref-DAVIS17, MeViS, ReVOS) on tiny copies of their real on-disk layouts."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from video_fixtures import (
    EMPTY,
    MV_FRAMES,
    RV_FOREGROUND,
    RV_VID,
    YT_FRAMES,
    YT_OBJ1,
    YT_OBJ2,
    H,
    W,
    box,
    make_davis,
    mevis_mask,
    rle,
    write_frames,
    write_json,
    write_palette,
)

from text4seg.datasets import VIDEO_READERS, count_video, read_video
from text4seg.datasets.coco_masks import SkipLog


def test_registry_names():
    assert sorted(VIDEO_READERS) == ["mevis", "ref-davis17", "ref-youtube-vos", "revos", "synthetic-video"]
    with pytest.raises(ValueError, match="unknown video dataset 'davis'"):
        read_video("davis", ".", "train")


# ------------------------------------------------------------------------------------------- Ref-YouTube-VOS


def test_ytvos_train_samples_and_masks(ytvos_root):
    samples = list(read_video("ref-youtube-vos", ytvos_root, "train"))
    assert [(s.video_id, s.expression_id, s.expression, s.object_ids) for s in samples] == [
        ("vidA", "0", "a penguin on the left", ["1"]),
        ("vidA", "1", "a cat", ["2"]),
    ]
    first = samples[0]
    assert first.id == "ref-youtube-vos_train_vidA_0"
    assert first.key == "vidA/0"
    assert first.frame_names == YT_FRAMES
    assert first.frame_paths == [f"ref-youtube-vos/train/JPEGImages/vidA/{n}.jpg" for n in YT_FRAMES]
    assert (first.height, first.width) == (H, W)
    assert first.extra == {"category": "penguin"}
    assert first.type_id is None and first.no_target is False and first.has_masks
    masks = first.masks()
    assert masks.shape == (3, H, W) and masks.dtype == bool
    np.testing.assert_array_equal(masks, np.stack(YT_OBJ1))
    np.testing.assert_array_equal(samples[1].masks(), np.stack(YT_OBJ2))
    np.testing.assert_array_equal(samples[1].mask(-3), YT_OBJ2[0])
    with pytest.raises(IndexError):
        first.mask(3)
    assert count_video("ref-youtube-vos", ytvos_root, "train") == 2


def test_ytvos_masks_are_lazy(ytvos_root):
    samples = list(read_video("ref-youtube-vos", ytvos_root, "train"))
    shutil.rmtree(ytvos_root / "ref-youtube-vos" / "train" / "Annotations")  # listing needed no annotation
    png = ytvos_root / "ref-youtube-vos" / "train" / "Annotations" / "vidA" / "00000.png"
    with pytest.raises(FileNotFoundError) as info:
        samples[0].masks()
    assert str(info.value) == f"{png}: video 'vidA', expression '0': annotation PNG not found"


def test_ytvos_valid_is_valid_minus_test_and_has_no_masks(ytvos_root):
    samples = list(read_video("ref-youtube-vos", ytvos_root, "valid"))
    assert [s.key for s in samples] == ["vidV/0", "vidV/1"]
    assert [s.expression for s in samples] == ["a dog", "a ball"]
    assert samples[0].object_ids == [] and not samples[0].has_masks
    assert count_video("ref-youtube-vos", ytvos_root, "valid") == 2
    with pytest.raises(ValueError, match="ref-youtube-vos split 'valid' has no ground-truth masks"):
        samples[0].masks()
    test = list(read_video("ref-youtube-vos", ytvos_root, "test"))
    assert [s.key for s in test] == ["vidT/0"]
    assert test[0].frame_paths == ["ref-youtube-vos/valid/JPEGImages/vidT/00000.jpg"]


def test_ytvos_valid_needs_the_test_meta(ytvos_root):
    (ytvos_root / "ref-youtube-vos" / "meta_expressions" / "test" / "meta_expressions.json").unlink()
    with pytest.raises(FileNotFoundError, match="test meta_expressions.json"):
        read_video("ref-youtube-vos", ytvos_root, "valid")


def test_ytvos_palette_without_the_object_id(ytvos_root):
    png = ytvos_root / "ref-youtube-vos" / "train" / "Annotations" / "vidA" / "00005.png"
    write_palette(png, np.zeros((H, W), np.uint8))  # meta.json lists object 1 in 00005
    sample = next(iter(read_video("ref-youtube-vos", ytvos_root, "train")))
    np.testing.assert_array_equal(sample.mask(0), YT_OBJ1[0])
    with pytest.raises(ValueError) as info:
        sample.mask(1)
    assert str(info.value).startswith(f"{png}: video 'vidA', expression '0': meta.json lists object 1")
    # caught while reading with check_masks, skipped and counted with skip_bad
    skips = SkipLog()
    kept = list(read_video("ref-youtube-vos", ytvos_root, "train", check_masks=True, skip_bad=True, skips=skips))
    assert [s.key for s in kept] == ["vidA/1"]
    assert dict(skips.counts) == {"object id absent": 1}
    assert skips.examples == {"object id absent": ["ref-youtube-vos_train_vidA_0"]}


def test_ytvos_annotation_of_another_size(ytvos_root):
    png = ytvos_root / "ref-youtube-vos" / "train" / "Annotations" / "vidA" / "00010.png"
    write_palette(png, np.zeros((H + 1, W), np.uint8))
    sample = next(iter(read_video("ref-youtube-vos", ytvos_root, "train")))
    with pytest.raises(ValueError, match=r"00010.png: video 'vidA', expression '0': annotation is 8x7, the frame is 8x6"):
        sample.masks()


def test_ytvos_object_not_in_meta(ytvos_root):
    path = ytvos_root / "ref-youtube-vos" / "meta_expressions" / "train" / "meta_expressions.json"
    meta = json.loads(path.read_text())
    meta["videos"]["vidA"]["expressions"]["1"]["obj_id"] = "3"
    write_json(path, meta)
    objects = ytvos_root / "ref-youtube-vos" / "train" / "meta.json"
    with pytest.raises(ValueError) as info:
        list(read_video("ref-youtube-vos", ytvos_root, "train"))
    assert str(info.value) == (f"{objects}: video 'vidA', expression '1': object '3' is not listed for this "
                               f"video in meta.json")


def test_missing_frame_fails_or_skips_the_whole_video(ytvos_root):
    frame = ytvos_root / "ref-youtube-vos" / "train" / "JPEGImages" / "vidA" / "00005.jpg"
    frame.unlink()
    with pytest.raises(FileNotFoundError) as info:
        list(read_video("ref-youtube-vos", ytvos_root, "train"))
    assert str(info.value) == f"{frame}: video 'vidA', expression '0': frame file not found"
    skips = SkipLog()
    assert list(read_video("ref-youtube-vos", ytvos_root, "train", skip_bad=True, skips=skips)) == []
    assert dict(skips.counts) == {"missing frame": 2}
    assert skips.summary() == "2 (missing frame: 2)"


@pytest.mark.parametrize(
    "vid, message",
    [("../escape", "video id '../escape' has a '..' path component"),
     ("/abs", "video id '/abs' is an absolute path")],
)
def test_unsafe_video_ids_are_refused(ytvos_root, vid, message):
    path = ytvos_root / "ref-youtube-vos" / "meta_expressions" / "train" / "meta_expressions.json"
    meta = json.loads(path.read_text())
    meta["videos"][vid] = meta["videos"].pop("vidA")
    write_json(path, meta)
    with pytest.raises(ValueError) as info:
        list(read_video("ref-youtube-vos", ytvos_root, "train"))
    assert str(info.value) == f"{path}: video {vid!r}, expression '0': {message}"


def test_unsafe_expression_id_and_frame_name(ytvos_root):
    path = ytvos_root / "ref-youtube-vos" / "meta_expressions" / "train" / "meta_expressions.json"
    meta = json.loads(path.read_text())
    meta["videos"]["vidA"]["expressions"]["a\\b"] = meta["videos"]["vidA"]["expressions"].pop("1")
    write_json(path, meta)
    with pytest.raises(ValueError, match=r"video 'vidA', expression 'a\\\\b': expression id 'a\\\\b' contains a backslash"):
        list(read_video("ref-youtube-vos", ytvos_root, "train"))
    meta["videos"]["vidA"]["frames"] = ["00000", "..", "00010"]
    write_json(path, meta)
    with pytest.raises(ValueError, match="frame name '..' has a '..' path component"):
        list(read_video("ref-youtube-vos", ytvos_root, "train"))


@pytest.mark.parametrize(
    "payload, message",
    [("{not json", "not valid JSON"), ("[]", "expected an object with a 'videos' object")],
)
def test_malformed_meta_file(ytvos_root, payload, message):
    path = ytvos_root / "ref-youtube-vos" / "meta_expressions" / "train" / "meta_expressions.json"
    path.write_text(payload)
    with pytest.raises(ValueError, match=f"^{path}: {message}"):
        read_video("ref-youtube-vos", ytvos_root, "train")


def test_malformed_expression_fields(ytvos_root):
    path = ytvos_root / "ref-youtube-vos" / "meta_expressions" / "train" / "meta_expressions.json"
    meta = json.loads(path.read_text())
    meta["videos"]["vidA"]["expressions"]["0"]["obj_id"] = 1  # an int, not the string the layout uses
    meta["videos"]["vidA"]["expressions"]["1"]["exp"] = ""
    write_json(path, meta)
    with pytest.raises(ValueError, match="expression '0': 'obj_id' must be a string object id in 1..255, got 1"):
        list(read_video("ref-youtube-vos", ytvos_root, "train"))
    skips = SkipLog()
    assert list(read_video("ref-youtube-vos", ytvos_root, "train", skip_bad=True, skips=skips)) == []
    assert dict(skips.counts) == {"malformed expression": 2}


def test_unknown_split(ytvos_root):
    with pytest.raises(ValueError, match="ref-youtube-vos has no split 'val'; splits: train, valid, test"):
        read_video("ref-youtube-vos", ytvos_root, "val")


def test_ref_davis17_valid_has_ground_truth(tmp_path):
    make_davis(tmp_path)
    samples = list(read_video("ref-davis17", tmp_path, "valid"))
    assert [s.key for s in samples] == ["bike/0", "bike/1", "bike/2", "bike/3"]
    assert samples[0].frame_paths[0] == "ref-davis/valid/JPEGImages/bike/00000.jpg"
    np.testing.assert_array_equal(samples[3].masks(), np.stack(YT_OBJ1))
    assert count_video("ref-davis17", tmp_path, "valid") == 4
    assert count_video("ref-davis17", tmp_path, "train") == 2


# ------------------------------------------------------------------------------------------------------ MeViS


def test_mevis_union_of_objects_null_frames_and_no_target(mevis_root):
    samples = list(read_video("mevis", mevis_root, "train"))
    assert [(s.key, s.object_ids, s.extra["anno_id"], s.no_target) for s in samples] == [
        ("v0/0", [0, 1], [10, 11], False),
        ("v0/1", [1], [11], False),
        ("v0/2", [], [], True),
    ]
    assert samples[0].frame_names == MV_FRAMES
    assert samples[0].frame_paths[2] == "mevis/train/JPEGImages/v0/00002.jpg"
    for sample in samples:
        expected = np.stack([mevis_mask(sample.extra["anno_id"], i) for i in range(3)])
        np.testing.assert_array_equal(sample.masks(), expected)
    # frame 0: anno 10 only (anno 11 is null there); frame 2: anno 11 only
    np.testing.assert_array_equal(samples[0].mask(0), box(0, 0, 2, 2))
    np.testing.assert_array_equal(samples[0].mask(2), box(5, 7, 6, 8))
    np.testing.assert_array_equal(samples[2].masks(), np.zeros((3, H, W), bool))
    assert count_video("mevis", mevis_root, "valid_u") == 3


def test_mevis_valid_has_no_masks(mevis_root):
    samples = list(read_video("mevis", mevis_root, "valid"))
    assert [(s.key, s.expression, s.frame_names) for s in samples] == [
        ("w0/0", "the cat jumping", ["00000", "00001"])]
    with pytest.raises(ValueError, match="mevis split 'valid' has no ground-truth masks"):
        samples[0].mask(0)


def test_mevis_anno_id_absent_from_mask_dict(mevis_root):
    meta_path = mevis_root / "mevis" / "train" / "meta_expressions.json"
    meta = json.loads(meta_path.read_text())
    meta["videos"]["v0"]["expressions"]["1"]["anno_id"] = [99]
    write_json(meta_path, meta)
    mask_dict = mevis_root / "mevis" / "train" / "mask_dict.json"
    with pytest.raises(ValueError) as info:
        list(read_video("mevis", mevis_root, "train"))
    assert str(info.value) == f"{mask_dict}: video 'v0', expression '1': anno_id 99 is not in mask_dict.json"
    skips = SkipLog()
    kept = list(read_video("mevis", mevis_root, "train", skip_bad=True, skips=skips))
    assert [s.key for s in kept] == ["v0/0", "v0/2"]
    assert dict(skips.counts) == {"anno_id absent": 1}


def test_mevis_rle_size_disagrees_with_frame(mevis_root):
    mask_dict = mevis_root / "mevis" / "train" / "mask_dict.json"
    masks = json.loads(mask_dict.read_text())
    masks["11"][1] = rle(np.zeros((W, H), bool))
    write_json(mask_dict, masks)
    with pytest.raises(ValueError) as info:
        list(read_video("mevis", mevis_root, "train"))
    assert str(info.value) == (f"{mask_dict}: video 'v0', expression '0': anno_id 11, frame '00001': RLE size "
                               f"[8, 6] does not match the frame size [6, 8]")
    skips = SkipLog()
    kept = list(read_video("mevis", mevis_root, "train", skip_bad=True, skips=skips))
    assert [s.key for s in kept] == ["v0/2"]
    assert dict(skips.counts) == {"rle size": 2}


def test_mevis_mask_list_of_the_wrong_length_and_bad_fields(mevis_root):
    mask_dict = mevis_root / "mevis" / "train" / "mask_dict.json"
    masks = json.loads(mask_dict.read_text())
    masks["10"] = masks["10"][:2]
    write_json(mask_dict, masks)
    with pytest.raises(ValueError, match="anno_id 10: expected a list of 3 RLEs or nulls .one per frame., got 2"):
        list(read_video("mevis", mevis_root, "train"))
    meta_path = mevis_root / "mevis" / "train" / "meta_expressions.json"
    meta = json.loads(meta_path.read_text())
    meta["videos"]["v0"]["expressions"]["2"]["anno_id"] = "5"
    write_json(meta_path, meta)
    skips = SkipLog()
    assert [s.key for s in read_video("mevis", mevis_root, "train", skip_bad=True, skips=skips)] == ["v0/1"]
    assert dict(skips.counts) == {"malformed expression": 1, "malformed masks": 1}


def test_mevis_corrupt_rle_counts_fail_on_decode(mevis_root):
    mask_dict = mevis_root / "mevis" / "train" / "mask_dict.json"
    masks = json.loads(mask_dict.read_text())
    masks["10"][0] = {"size": [H, W], "counts": "zzzzzz"}
    write_json(mask_dict, masks)
    sample = next(iter(read_video("mevis", mevis_root, "train")))
    with pytest.raises(ValueError, match=r"mask_dict.json: video 'v0', expression '0': anno_id 10, frame '00000': corrupt RLE"):
        sample.mask(0)


def test_missing_mask_dict(mevis_root):
    (mevis_root / "mevis" / "valid_u" / "mask_dict.json").unlink()
    with pytest.raises(FileNotFoundError, match="mask_dict.json .per-annotation RLE masks. not found"):
        read_video("mevis", mevis_root, "valid_u")


# ------------------------------------------------------------------------------------------------------ ReVOS


def test_revos_types_nested_ids_and_foreground(revos_root):
    samples = list(read_video("revos", revos_root, "valid"))
    assert [(s.key, s.type_id, s.type_name, s.no_target) for s in samples] == [
        (f"{RV_VID}/0", 0, "referring", False),
        (f"{RV_VID}/1", 1, "reasoning", False),
        (f"{RV_VID}/2", 2, "no_target", True),
    ]
    assert samples[0].frame_paths == [f"ReVOS/JPEGImages/{RV_VID}/a.jpg", f"ReVOS/JPEGImages/{RV_VID}/b.jpg"]
    np.testing.assert_array_equal(samples[0].masks(), np.stack([box(1, 1, 4, 4), EMPTY]))
    np.testing.assert_array_equal(samples[1].masks(),
                                  np.stack([box(1, 1, 4, 4) | box(0, 6, 2, 8), box(0, 5, 2, 8)]))
    np.testing.assert_array_equal(samples[2].masks(), np.zeros((2, H, W), bool))
    np.testing.assert_array_equal(samples[2].foregrounds(), np.stack(RV_FOREGROUND))
    train = list(read_video("revos", revos_root, "train"))
    assert [s.key for s in train] == ["vidB/0"]
    assert count_video("revos", revos_root, "valid") == 3


def test_revos_bad_type_id(revos_root):
    path = revos_root / "ReVOS" / "meta_expressions_valid_.json"
    meta = json.loads(path.read_text())
    meta["videos"][RV_VID]["expressions"]["0"]["type_id"] = 3
    write_json(path, meta)
    with pytest.raises(ValueError, match=f"video '{RV_VID}', expression '0': 'type_id' must be 0, 1 or 2, got 3"):
        list(read_video("revos", revos_root, "valid"))


def test_foreground_only_for_revos(mevis_root):
    sample = next(iter(read_video("mevis", mevis_root, "train")))
    with pytest.raises(ValueError, match="has no foreground masks"):
        sample.foreground(0)


def test_frames_of_another_size_than_the_first(tmp_path):
    # the frame size comes from the first frame; a mask of that size decodes
    write_frames(tmp_path / "mevis" / "train" / "JPEGImages" / "v", ["0"], shape=(3, 5))
    write_json(tmp_path / "mevis" / "train" / "meta_expressions.json", {"videos": {"v": {
        "expressions": {"0": {"exp": "x", "obj_id": [0], "anno_id": [1]}}, "frames": ["0"]}}})
    write_json(tmp_path / "mevis" / "train" / "mask_dict.json", {"1": [rle(box(0, 0, 1, 5, (3, 5)))]})
    sample = next(iter(read_video("mevis", tmp_path, "train")))
    assert (sample.height, sample.width) == (3, 5)
    np.testing.assert_array_equal(sample.mask(0), box(0, 0, 1, 5, (3, 5)))
