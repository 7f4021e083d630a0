"""Tiny datasets in their real on-disk formats, built in a temp dir, with the exact masks they encode.

Shared by the dataset/builder tests and the evaluation tests::

    from fixtures_data import make_refcoco_layout    # pytest puts tests/ on sys.path
    info = make_refcoco_layout(tmp_path)          # writes <tmp_path>/refer_seg/...
    info["masks"][ref_id]                         # expected (H, W) bool mask of each valid ref

Every ``make_*_layout(root)`` returns a dict with at least ``root`` (Path), ``images`` (relative image paths it
wrote) and the expected masks / label maps in the readers' conventions. Images are small solid-colour JPEGs
(they exist so that evaluation can open them; readers never decode them). Geometry is chosen so that a 4 x 4
grid gives descriptors that can be written by hand.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = [
    "PANOPTIC_CELLS",
    "PANOPTIC_IDS",
    "make_coco_panoptic_layout",
    "write_image",
    "write_refs_pickle",
    "make_refcoco_layout",
    "make_grefcoco_layout",
    "make_reasonseg_layout",
    "make_ade20k_layout",
    "make_pascal_context_layout",
    "make_pascal_voc_layout",
    "make_cocostuff_layout",
    "voc_palette",
]


def write_image(path: Path, height: int, width: int, color: tuple[int, int, int] = (90, 120, 150)) -> None:
    """Write a solid-colour RGB JPEG of ``height`` x ``width``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), color).save(path, format="JPEG", quality=90)


def write_refs_pickle(path: Path, refs: list[dict]) -> None:
    """Write refs the way the original ``refs(*).p`` files are written (protocol 2)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump(refs, handle, protocol=2)


def _rect(x0: int, y0: int, x1: int, y1: int) -> list[float]:
    """Polygon of the pixel rectangle [x0, x1) x [y0, y1) as pycocotools fills it."""
    return [float(x0), float(y0), float(x1), float(y0), float(x1), float(y1), float(x0), float(y1)]


def _box_mask(height: int, width: int, *boxes: tuple[int, int, int, int]) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        mask[max(y0, 0) : min(y1, height), max(x0, 0) : min(x1, width)] = True
    return mask


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _uncompressed_rle(mask: np.ndarray) -> dict:
    flat = mask.astype(np.uint8).flatten(order="F")
    counts, current, run = [], 0, 0
    for value in flat:
        if value == current:
            run += 1
        else:
            counts.append(run)
            current, run = int(value), 1
    counts.append(run)
    return {"size": list(mask.shape), "counts": counts}


def _sentence(text: str, sent_id: int) -> dict:
    return {"tokens": text.split(), "raw": text, "sent_id": sent_id, "sent": text}


def make_refcoco_layout(root: Path, dataset: str = "refcoco", split_by: str = "unc") -> dict:
    """RefCOCO-format dataset: ``refer_seg/<dataset>/{refs(<split_by>).p, instances.json}`` + images.

    Two images (32 x 48 and 16 x 16, height x width). Refs (ref_id: split, segmentation):

    - 1 (train, image 1): polygon [0, 24) x [0, 16) -> top-left 2 x 2 cells of a 4 x 4 grid; sentences
      ``"man on left"`` and ``"left guy"``.
    - 2 (train, image 1): two overlapping polygons [24, 48) x [16, 32) and [30, 60) x [20, 40) (the second
      sticks out of the image: clipped); sentence with separators ``"the | right*one\\nthing"``.
    - 3 (train, image 2): compressed RLE of [0, 8) x [0, 16) (left half); sentence ``"the left half"``.
    - 4 (val, image 2): uncompressed RLE (iscrowd) of [8, 16) x [0, 16) (right half); ``"right side"``.
    - 5 (testA, image 2): malformed polygon with 4 values -> skipped (counted), strict mode raises.
    - 6 (testB, image 1): whole image ``"everything"``.

    Returns:
        ``{"root", "dataset", "split_by", "image_dir", "images", "refs", "masks": {ref_id: mask},
        "splits": {split: [ref_id, ...]}, "bad_ref_ids": [5]}``.
    """
    root = Path(root)
    image_dir = (
        "refer_seg/images/saiapr_tc-12" if dataset == "refclef" else "refer_seg/images/coco_2014/train2014"
    )
    img1 = {"id": 9, "file_name": "COCO_train2014_000000000009.jpg", "height": 32, "width": 48}
    img2 = {"id": 25, "file_name": "COCO_train2014_000000000025.jpg", "height": 16, "width": 16}
    for img in (img1, img2):
        write_image(root / image_dir / img["file_name"], img["height"], img["width"])
    left_half = _box_mask(16, 16, (0, 0, 8, 16))
    right_half = _box_mask(16, 16, (8, 0, 16, 16))
    annotations = [
        {"id": 101, "image_id": 9, "category_id": 1, "iscrowd": 0, "segmentation": [_rect(0, 0, 24, 16)]},
        {
            "id": 102,
            "image_id": 9,
            "category_id": 2,
            "iscrowd": 0,
            "segmentation": [_rect(24, 16, 48, 32), _rect(30, 20, 60, 40)],
        },
        {"id": 103, "image_id": 25, "category_id": 3, "iscrowd": 0, "segmentation": _rle(left_half)},
        {
            "id": 104,
            "image_id": 25,
            "category_id": 3,
            "iscrowd": 1,
            "segmentation": _uncompressed_rle(right_half),
        },
        {"id": 105, "image_id": 25, "category_id": 3, "iscrowd": 0, "segmentation": [[1.0, 1.0, 5.0, 5.0]]},
        {"id": 106, "image_id": 9, "category_id": 1, "iscrowd": 0, "segmentation": [_rect(0, 0, 48, 32)]},
    ]
    instances = {
        "images": [img1, img2],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "thing"}, {"id": 3, "name": "half"}],
    }
    sentences = {
        1: ["man on left", "left guy"],
        2: ["the | right*one\nthing"],
        3: ["the left half"],
        4: ["right side"],
        5: ["broken"],
        6: ["everything"],
    }
    placement = {1: (9, 101, "train"), 2: (9, 102, "train"), 3: (25, 103, "train"), 4: (25, 104, "val"),
                 5: (25, 105, "testA"), 6: (9, 106, "testB")}  # fmt: skip
    refs, sent_id = [], 0
    for ref_id, (image_id, ann_id, split) in placement.items():
        sents = []
        for text in sentences[ref_id]:
            sents.append(_sentence(text, sent_id))
            sent_id += 1
        file_name = f"COCO_train2014_{image_id:012d}_{ann_id}.jpg"
        refs.append({"ref_id": ref_id, "ann_id": ann_id, "image_id": image_id, "split": split,
                     "sentences": sents, "sent_ids": [s["sent_id"] for s in sents],
                     "category_id": 1, "file_name": file_name})  # fmt: skip
    data_dir = root / "refer_seg" / dataset
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "instances.json").write_text(json.dumps(instances), encoding="utf-8")
    write_refs_pickle(data_dir / f"refs({split_by}).p", refs)
    masks = {
        1: _box_mask(32, 48, (0, 0, 24, 16)),
        2: _box_mask(32, 48, (24, 16, 48, 32), (30, 20, 60, 40)),
        3: left_half,
        4: right_half,
        6: np.ones((32, 48), dtype=bool),
    }
    splits: dict[str, list[int]] = {}
    for ref_id, (_, _, split) in placement.items():
        splits.setdefault(split, []).append(ref_id)
    return {
        "root": root,
        "dataset": dataset,
        "split_by": split_by,
        "image_dir": image_dir,
        "images": [f"{image_dir}/{img['file_name']}" for img in (img1, img2)],
        "refs": refs,
        "masks": masks,
        "splits": splits,
        "bad_ref_ids": [5],
    }


def make_grefcoco_layout(root: Path) -> dict:
    """gRefCOCO-format dataset: ``refer_seg/grefcoco/{grefs(unc).json, instances.json}`` + one 32 x 32 image.

    Refs (all split ``"val"``, image 7):

    - 10: one polygon target [0, 16) x [0, 16) (top-left quadrant), ``"top left block"``.
    - 11: two targets, polygon [0, 16) x [0, 16) and a compressed RLE of [16, 32) x [16, 32) (bottom-right
      quadrant), ``"both blocks"``.
    - 12: no target (``ann_id: [-1]``, ``no_target: true``), ``"the purple elephant"``.
    - 13 (split ``"train"``): polygon [16, 32) x [0, 16), ``"top right block"``.

    Returns:
        ``{"root", "images", "masks": {ref_id: mask}, "no_target": [12], "splits"}``.
    """
    root = Path(root)
    image = {"id": 7, "file_name": "COCO_train2014_000000000007.jpg", "height": 32, "width": 32}
    image_rel = f"refer_seg/images/coco_2014/train2014/{image['file_name']}"
    write_image(root / image_rel, 32, 32)
    bottom_right = _box_mask(32, 32, (16, 16, 32, 32))
    annotations = [
        {"id": 201, "image_id": 7, "category_id": 1, "iscrowd": 0, "segmentation": [_rect(0, 0, 16, 16)]},
        {"id": 202, "image_id": 7, "category_id": 1, "iscrowd": 1, "segmentation": _rle(bottom_right)},
        {"id": 203, "image_id": 7, "category_id": 1, "iscrowd": 0, "segmentation": [_rect(16, 0, 32, 16)]},
    ]
    grefs = [
        {"ref_id": 10, "image_id": 7, "ann_id": [201], "split": "val", "no_target": False, "category_id": [1],
         "sentences": [_sentence("top left block", 0)]},
        {"ref_id": 11, "image_id": 7, "ann_id": [201, 202], "split": "val", "no_target": False,
         "category_id": [1, 1], "sentences": [_sentence("both blocks", 1)]},
        {"ref_id": 12, "image_id": 7, "ann_id": [-1], "split": "val", "no_target": True, "category_id": [-1],
         "sentences": [_sentence("the purple elephant", 2)]},
        {"ref_id": 13, "image_id": 7, "ann_id": [203], "split": "train", "no_target": False, "category_id": [1],
         "sentences": [_sentence("top right block", 3)]},
    ]  # fmt: skip
    data_dir = root / "refer_seg" / "grefcoco"
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "grefs(unc).json").write_text(json.dumps(grefs), encoding="utf-8")
    (data_dir / "instances.json").write_text(
        json.dumps(
            {"images": [image], "annotations": annotations, "categories": [{"id": 1, "name": "block"}]}
        ),
        encoding="utf-8",
    )
    top_left = _box_mask(32, 32, (0, 0, 16, 16))
    return {
        "root": root,
        "images": [image_rel],
        "masks": {
            10: top_left,
            11: top_left | bottom_right,
            12: np.zeros((32, 32), dtype=bool),
            13: _box_mask(32, 32, (16, 0, 32, 16)),
        },
        "no_target": [12],
        "splits": {"val": [10, 11, 12], "train": [13]},
    }


def make_reasonseg_layout(root: Path) -> dict:
    """ReasonSeg-format split ``reason_seg/ReasonSeg/train``: three images with LabelMe-style JSONs.

    - ``a`` (32 x 32, size only in the image header): target polygon [0, 16) x [0, 32) (left half, truncated
      from float vertices), an ``ignore`` polygon [4, 8) x [4, 8) inside it, and a ``flag`` polygon (dropped);
      ``text`` has a long query and ``is_sentence`` is true.
    - ``b`` (16 x 32, ``imageHeight``/``imageWidth`` in the JSON): target [16, 32) x [0, 16) (right half);
      short query ``"the | handle"`` with a separator.
    - ``c``: a JSON without ``text`` -> skipped and counted.

    Returns:
        ``{"root", "split", "images", "masks": {stem: mask}, "ignore": {stem: mask}, "is_sentence"}``.
    """
    root = Path(root)
    split_dir = root / "reason_seg" / "ReasonSeg" / "train"
    write_image(split_dir / "a.jpg", 32, 32)
    write_image(split_dir / "b.jpg", 16, 32)
    write_image(split_dir / "c.jpg", 8, 8)

    def poly(label: str, x0: float, y0: float, x1: float, y1: float) -> dict:
        return {"label": label, "points": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]], "shape_type": "polygon"}

    anno_a = {
        "text": ["What part of the picture would you sit on if you were tired?", "the seat"],
        "is_sentence": True,
        # PIL fills a polygon including its outline: vertices at 15.7 -> 15 cover columns 0..15.
        "shapes": [
            poly("target", 0.2, 0.4, 15.7, 31.9),
            poly("ignore", 4, 4, 7, 7),
            poly("flag", 20, 20, 30, 30),
        ],
    }
    anno_b = {
        "text": ["the | handle"],
        "is_sentence": False,
        "imageHeight": 16,
        "imageWidth": 32,
        "shapes": [poly("target", 16, 0, 31, 15)],
    }
    anno_c = {"is_sentence": False, "shapes": [poly("target", 0, 0, 4, 4)]}
    for stem, anno in (("a", anno_a), ("b", anno_b), ("c", anno_c)):
        (split_dir / f"{stem}.json").write_text(json.dumps(anno), encoding="utf-8")
    mask_a = _box_mask(32, 32, (0, 0, 16, 32))
    ignore_a = _box_mask(32, 32, (4, 4, 8, 8))
    mask_a &= ~ignore_a
    return {
        "root": root,
        "split": "train",
        "images": [f"reason_seg/ReasonSeg/train/{s}.jpg" for s in ("a", "b", "c")],
        "masks": {"a": mask_a, "b": _box_mask(16, 32, (16, 0, 32, 16))},
        "ignore": {"a": ignore_a, "b": np.zeros((16, 32), dtype=bool)},
        "is_sentence": {"a": True, "b": False},
        "bad": ["c"],
    }


def _write_label_png(path: Path, values: np.ndarray, palette: list[int] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(values.astype(np.uint8), mode="L")
    if palette is not None:
        image = image.convert("P")
        image.putpalette(palette)
        # convert("P") from "L" keeps the indices only with a greyscale palette; set them again explicitly.
        image.frombytes(values.astype(np.uint8).tobytes())
    image.save(path, format="PNG")


def voc_palette() -> list[int]:
    """The PASCAL VOC colour map (768 values) used by ``SegmentationClass`` palette PNGs."""
    palette = []
    for label in range(256):
        r = g = b = 0
        c = label
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette.extend([r, g, b])
    return palette


def _quadrants(height: int, width: int, values: tuple[int, int, int, int]) -> np.ndarray:
    """(H, W) map with top-left, top-right, bottom-left, bottom-right quadrants set to ``values``."""
    out = np.zeros((height, width), dtype=np.int64)
    h, w = height // 2, width // 2
    out[:h, :w], out[:h, w:], out[h:, :w], out[h:, w:] = values
    return out


def make_ade20k_layout(root: Path) -> dict:
    """``ADEChallengeData2016/{images,annotations}/{training,validation}``: one 16 x 32 image per split.

    training ``ADE_train_00000001``: quadrants raw (0, 1, 3, 150) -> ids (0, 1, 3, 150) = others, wall, sky,
    flag. validation ``ADE_val_00000001``: all 13 (person).

    Returns:
        ``{"root", "images", "label_maps": {split: expected int64 ids}}``.
    """
    root = Path(root)
    base = root / "ADEChallengeData2016"
    train = _quadrants(16, 32, (0, 1, 3, 150))
    val = np.full((16, 32), 13, dtype=np.int64)
    for folder, stem, values in (
        ("training", "ADE_train_00000001", train),
        ("validation", "ADE_val_00000001", val),
    ):
        write_image(base / "images" / folder / f"{stem}.jpg", 16, 32)
        _write_label_png(base / "annotations" / folder / f"{stem}.png", values)
    return {
        "root": root,
        "images": [
            "ADEChallengeData2016/images/training/ADE_train_00000001.jpg",
            "ADEChallengeData2016/images/validation/ADE_val_00000001.jpg",
        ],
        "label_maps": {"training": train, "validation": val},
    }


def make_pascal_context_layout(root: Path) -> dict:
    """``PC59/{JPEGImages, SegmentationClassContext, pascalcontext_val.txt, pascalcontext_train.txt}``.

    ``2008_000002`` (val, 16 x 16): quadrants (0, 1, 59, 37) -> others, aeroplane, wood, person.
    ``2008_000003`` (train, 16 x 16): all 47 (sky).
    """
    root = Path(root)
    base = root / "PC59"
    val = _quadrants(16, 16, (0, 1, 59, 37))
    train = np.full((16, 16), 47, dtype=np.int64)
    for stem, values in (("2008_000002", val), ("2008_000003", train)):
        write_image(base / "JPEGImages" / f"{stem}.jpg", 16, 16)
        _write_label_png(base / "SegmentationClassContext" / f"{stem}.png", values)
    (base / "pascalcontext_val.txt").write_text("2008_000002\n", encoding="utf-8")
    (base / "pascalcontext_train.txt").write_text("2008_000003\n", encoding="utf-8")
    return {
        "root": root,
        "images": ["PC59/JPEGImages/2008_000002.jpg", "PC59/JPEGImages/2008_000003.jpg"],
        "label_maps": {"val": val, "train": train},
    }


def make_pascal_voc_layout(root: Path) -> dict:
    """``PAS20/{JPEGImages, SegmentationClass, train.txt, val.txt}`` with palette PNGs holding 255 boundaries.

    ``2007_000032`` (train, 16 x 16): left half 1 (aeroplane), right half 0 (background), a one-pixel 255
    boundary at column 8. ``2007_000033`` (val): quadrants (0, 15, 20, 255) -> others, person, tv monitor,
    ignore.
    """
    root = Path(root)
    base = root / "PAS20"
    train = np.zeros((16, 16), dtype=np.int64)
    train[:, :8] = 1
    train[:, 8] = 255
    val = _quadrants(16, 16, (0, 15, 20, 255))
    for stem, values in (("2007_000032", train), ("2007_000033", val)):
        write_image(base / "JPEGImages" / f"{stem}.jpg", 16, 16)
        _write_label_png(base / "SegmentationClass" / f"{stem}.png", values, palette=voc_palette())
    (base / "train.txt").write_text("2007_000032\n", encoding="utf-8")
    (base / "val.txt").write_text("2007_000033\n", encoding="utf-8")
    return {
        "root": root,
        "images": ["PAS20/JPEGImages/2007_000032.jpg", "PAS20/JPEGImages/2007_000033.jpg"],
        "label_maps": {"train": train, "val": val},
    }


def make_cocostuff_layout(root: Path) -> dict:
    """``cocostuff/annotations/*_labelTrainIds.png`` + ``coco/train2017/*.jpg`` (flat, as the reference).

    ``000000000009`` (32 x 32): quadrants raw (255, 0, 5, 170) -> ids (0, 1, 6, 171) = others, person,
    bus, wood. ``000000000025`` (16 x 16): all 255 -> all others.
    """
    root = Path(root)
    first = _quadrants(32, 32, (255, 0, 5, 170))
    second = np.full((16, 16), 255, dtype=np.int64)
    for stem, values in (("000000000009", first), ("000000000025", second)):
        size = values.shape
        write_image(root / "coco" / "train2017" / f"{stem}.jpg", size[0], size[1])
        _write_label_png(root / "cocostuff" / "annotations" / f"{stem}_labelTrainIds.png", values)
    lut = {255: 0, 0: 1, 5: 6, 170: 171}
    return {
        "root": root,
        "images": ["coco/train2017/000000000009.jpg", "coco/train2017/000000000025.jpg"],
        "raw": {"000000000009": first, "000000000025": second},
        "label_maps": {
            "000000000009": np.vectorize(lut.get)(first).astype(np.int64),
            "000000000025": np.zeros((16, 16), dtype=np.int64),
        },
    }


# ------------------------------------------------------------------------------------------ COCO panoptic

# 4 x 4 cells of 4 x 4 pixels on a 16 x 16 image (see make_coco_panoptic_layout)
PANOPTIC_IDS = {"person 1": 1, "person 2": 2, "car crowd": 3, "grass": 256 * 3 + 7, "sky": 65536 * 2 + 5}
PANOPTIC_CELLS = [
    ["sky", "sky", "sky", "sky"],
    ["person 1", "person 1", "person 2", None],
    ["person 1", "person 1", "person 2", "car crowd"],
    ["grass", "grass", "grass", "grass"],
]


def make_coco_panoptic_layout(root: Path) -> dict:
    """COCO panoptic + instances (val2017) with one 16 x 16 image, id 42.

    Categories: 1 person (thing), 2 car (thing), 3 ``sky-other-merged`` (stuff, label ``sky``), 4 ``grass-merged``
    (stuff, label ``grass``). Segments per 4 x 4-pixel cell as :data:`PANOPTIC_CELLS` (None = void); segment ids
    :data:`PANOPTIC_IDS` use all three PNG channels; the car is a crowd region. ``instances_val2017.json`` holds
    person 1 (polygon), person 2 (RLE) and the car crowd (RLE, iscrowd 1).

    Returns:
        ``{"root", "image", "id_map"}``.
    """
    root = Path(root)
    coco = root / "coco"
    image_rel = "coco/val2017/000000000042.jpg"
    write_image(root / image_rel, 16, 16)
    id_map = np.zeros((16, 16), dtype=np.int64)
    for i, row in enumerate(PANOPTIC_CELLS):
        for j, name in enumerate(row):
            if name is not None:
                id_map[4 * i : 4 * i + 4, 4 * j : 4 * j + 4] = PANOPTIC_IDS[name]
    rgb = np.stack([id_map % 256, id_map // 256 % 256, id_map // 65536], axis=-1).astype(np.uint8)
    (coco / "panoptic_val2017").mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb, "RGB").save(coco / "panoptic_val2017" / "000000000042.png")
    categories = [
        {"id": 1, "name": "person", "supercategory": "person", "isthing": 1, "color": [220, 20, 60]},
        {"id": 2, "name": "car", "supercategory": "vehicle", "isthing": 1, "color": [0, 0, 142]},
        {"id": 3, "name": "sky-other-merged", "supercategory": "sky", "isthing": 0, "color": [70, 130, 180]},
        {"id": 4, "name": "grass-merged", "supercategory": "plant", "isthing": 0, "color": [0, 128, 0]},
    ]
    cats = {"person 1": 1, "person 2": 1, "car crowd": 2, "sky": 3, "grass": 4}
    segments = [{"id": PANOPTIC_IDS[n], "category_id": cats[n], "area": int((id_map == PANOPTIC_IDS[n]).sum()),
                 "bbox": [0, 0, 1, 1], "iscrowd": int(n == "car crowd")} for n in cats]
    image = {"id": 42, "file_name": "000000000042.jpg", "height": 16, "width": 16}
    (coco / "annotations").mkdir(parents=True, exist_ok=True)
    (coco / "annotations" / "panoptic_val2017.json").write_text(json.dumps({
        "images": [image], "categories": categories,
        "annotations": [{"image_id": 42, "file_name": "000000000042.png", "segments_info": segments}]}))
    instances = [
        {"id": 1, "image_id": 42, "category_id": 1, "iscrowd": 0, "area": 64.0, "bbox": [0, 4, 8, 8],
         "segmentation": [_rect(0, 4, 8, 12)]},
        {"id": 2, "image_id": 42, "category_id": 1, "iscrowd": 0, "area": 32.0, "bbox": [8, 4, 4, 8],
         "segmentation": _rle(id_map == PANOPTIC_IDS["person 2"])},
        {"id": 3, "image_id": 42, "category_id": 2, "iscrowd": 1, "area": 16.0, "bbox": [12, 8, 4, 4],
         "segmentation": _uncompressed_rle(id_map == PANOPTIC_IDS["car crowd"])},
    ]
    (coco / "annotations" / "instances_val2017.json").write_text(json.dumps({
        "images": [image], "annotations": instances,
        "categories": [{"id": 1, "name": "person", "supercategory": "person"},
                       {"id": 2, "name": "car", "supercategory": "vehicle"}]}))
    return {"root": root, "image": image_rel, "id_map": id_map}
