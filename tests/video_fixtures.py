"""Builders of tiny video benchmarks in their real on-disk layouts (palette PNGs, RLE mask_dict.json, meta files).

Every frame is ``H x W = 6 x 8`` (non-square on purpose). Masks are given as small boolean arrays so tests can
compare decoded masks exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

H, W = 6, 8


def box(top: int, left: int, bottom: int, right: int, shape: tuple[int, int] = (H, W)) -> np.ndarray:
    """Bool mask with rows ``top:bottom`` and columns ``left:right`` set."""
    mask = np.zeros(shape, dtype=bool)
    mask[top:bottom, left:right] = True
    return mask


EMPTY = np.zeros((H, W), dtype=bool)


def write_json(path: Path, payload: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload), encoding="utf-8")


def write_frames(folder: Path, names: list[str], shape: tuple[int, int] = (H, W)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.new("RGB", (shape[1], shape[0]), (10 * i, 20, 30)).save(folder / f"{name}.jpg", quality=95)


def write_palette(path: Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(labels.astype(np.uint8), "P")
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 12))
    image.save(path)


def rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode("ascii")}


# ------------------------------------------------------------------------------------ Ref-YouTube-VOS layout

YT_FRAMES = ["00000", "00005", "00010"]
# object 1 (penguin) in frames 0 and 1; object 2 (cat) in frame 0 only
YT_OBJ1 = [box(1, 1, 3, 3), box(2, 2, 4, 4), EMPTY]
YT_OBJ2 = [box(4, 5, 6, 8), EMPTY, EMPTY]


def make_ytvos(root: Path, folder: str = "ref-youtube-vos", valid_has_gt: bool = False) -> Path:
    base = root / folder
    write_frames(base / "train" / "JPEGImages" / "vidA", YT_FRAMES)
    for i, name in enumerate(YT_FRAMES):
        labels = YT_OBJ1[i].astype(np.uint8) + 2 * YT_OBJ2[i].astype(np.uint8)
        write_palette(base / "train" / "Annotations" / "vidA" / f"{name}.png", labels)
    write_json(base / "train" / "meta.json", {"videos": {"vidA": {"objects": {
        "1": {"category": "penguin", "frames": ["00000", "00005"]},
        "2": {"category": "cat", "frames": ["00000"]}}}}})
    write_json(base / "meta_expressions" / "train" / "meta_expressions.json", {"videos": {"vidA": {
        "expressions": {"0": {"exp": "a penguin on the left", "obj_id": "1"},
                        "1": {"exp": "a cat", "obj_id": "2"}},
        "frames": YT_FRAMES}}})
    # valid file = valid + test videos
    write_frames(base / "valid" / "JPEGImages" / "vidV", ["00000", "00005"])
    write_frames(base / "valid" / "JPEGImages" / "vidT", ["00000"])
    write_json(base / "meta_expressions" / "valid" / "meta_expressions.json", {"videos": {
        "vidV": {"expressions": {"0": {"exp": "a dog"}, "1": {"exp": "a ball"}}, "frames": ["00000", "00005"]},
        "vidT": {"expressions": {"0": {"exp": "a bird"}}, "frames": ["00000"]}}})
    write_json(base / "meta_expressions" / "test" / "meta_expressions.json", {"videos": {
        "vidT": {"expressions": {"0": {"exp": "a bird"}}, "frames": ["00000"]}}})
    return base


def make_davis(root: Path) -> Path:
    base = make_ytvos(root, folder="ref-davis")
    # DAVIS valid has ground truth: copy the train video as a valid one
    write_frames(base / "valid" / "JPEGImages" / "bike", YT_FRAMES)
    for i, name in enumerate(YT_FRAMES):
        write_palette(base / "valid" / "Annotations" / "bike" / f"{name}.png", YT_OBJ1[i].astype(np.uint8))
    write_json(base / "valid" / "meta.json", {"videos": {"bike": {"objects": {
        "1": {"category": "bike", "frames": ["00000", "00005"]}}}}})
    write_json(base / "meta_expressions" / "valid" / "meta_expressions.json", {"videos": {"bike": {
        "expressions": {str(k): {"exp": f"a bike {k}", "obj_id": "1"} for k in range(4)},
        "frames": YT_FRAMES}}})
    return base


# ----------------------------------------------------------------------------------------------- MeViS layout

MV_FRAMES = ["00000", "00001", "00002"]
MV_ANNO = {
    10: [box(0, 0, 2, 2), box(0, 1, 2, 3), None],
    11: [None, box(3, 4, 6, 8), box(5, 7, 6, 8)],
}


def mevis_mask(anno_ids: list[int], index: int) -> np.ndarray:
    out = EMPTY.copy()
    for a in anno_ids:
        if MV_ANNO[a][index] is not None:
            out |= MV_ANNO[a][index]
    return out


def make_mevis(root: Path, folder: str = "mevis") -> Path:
    base = root / folder
    for split in ("train", "valid_u"):
        write_frames(base / split / "JPEGImages" / "v0", MV_FRAMES)
        write_json(base / split / "meta_expressions.json", {"videos": {"v0": {
            "expressions": {"0": {"exp": "2 shapes moving", "obj_id": [0, 1], "anno_id": [10, 11]},
                            "1": {"exp": "the shape moving right", "obj_id": [1], "anno_id": [11]},
                            "2": {"exp": "the purple star", "obj_id": [], "anno_id": []}},
            "frames": MV_FRAMES, "vid_id": 7}}})
        write_json(base / split / "mask_dict.json",
                   {str(a): [None if m is None else rle(m) for m in masks] for a, masks in MV_ANNO.items()})
    write_frames(base / "valid" / "JPEGImages" / "w0", ["00000", "00001"])
    write_json(base / "valid" / "meta_expressions.json", {"videos": {"w0": {
        "expressions": {"0": {"exp": "the cat jumping"}}, "frames": ["00000", "00001"], "vid_id": 1}}})
    return base


# ----------------------------------------------------------------------------------------------- ReVOS layout

RV_VID = "UVO/all/-fbscFfkh4M"
RV_FRAMES = ["a", "b"]
RV_ANNO = {3: [box(1, 1, 4, 4), None], 4: [box(0, 6, 2, 8), box(0, 5, 2, 8)]}
RV_FOREGROUND = [box(1, 1, 4, 4) | box(0, 6, 2, 8), box(0, 5, 2, 8)]


def make_revos(root: Path) -> Path:
    base = root / "ReVOS"
    write_frames(base / "JPEGImages" / RV_VID, RV_FRAMES)
    write_frames(base / "JPEGImages" / "vidB", ["00000"])
    write_json(base / "meta_expressions_valid_.json", {"videos": {RV_VID: {
        "frames": RV_FRAMES, "height": H, "width": W,
        "expressions": {"0": {"exp": "the dog", "obj_id": [0], "anno_id": [3], "type_id": 0},
                        "1": {"exp": "what can the child ride?", "obj_id": [0, 1], "anno_id": [3, 4],
                              "type_id": 1},
                        "2": {"exp": "the elephant", "obj_id": [], "anno_id": [], "type_id": 2}}}}})
    write_json(base / "meta_expressions_train_.json", {"videos": {"vidB": {
        "frames": ["00000"], "height": H, "width": W,
        "expressions": {"0": {"exp": "the cat", "obj_id": [0], "anno_id": [5], "type_id": 0}}}}})
    masks = {str(a): [None if m is None else rle(m) for m in ms] for a, ms in RV_ANNO.items()}
    masks["5"] = [rle(box(0, 0, 1, 1))]
    write_json(base / "mask_dict.json", masks)
    write_json(base / "mask_dict_foreground.json", {
        RV_VID: {"masks_rle": [rle(m) for m in RV_FOREGROUND], "foreground_ratio": [0.3, 0.1]},
        "vidB": {"masks_rle": [rle(box(0, 0, 1, 1))], "foreground_ratio": [0.02]}})
    return base
