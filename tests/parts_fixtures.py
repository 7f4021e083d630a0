"""Tiny PACO-LVIS and Pascal-Part layouts (COCO-format JSONs with polygons, compressed and uncompressed RLEs, and
small JPEGs) with the exact maps they encode. Every image is 16 x 16, so a 4 x 4 grid samples pixel rows and
columns 2, 6, 10, 14 (PIL nearest)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from fixtures_data import _box_mask, _rect, _rle, _uncompressed_rle, write_image

__all__ = ["PACO_CATEGORIES", "PASCAL_CATEGORIES", "make_paco_layout", "make_pascal_part_layout"]

PACO_CATEGORIES = [
    {"id": 1, "name": "trash_can"},
    {"id": 2, "name": "trash_can:lid"},
    {"id": 3, "name": "trash_can:body"},
    {"id": 4, "name": "mug"},
    {"id": 5, "name": "mug:handle"},
    {"id": 6, "name": "glass_(drink_container)"},
    {"id": 7, "name": "glass_(drink_container):base"},
]
# VLPart's ids for these Pascal-Part categories
PASCAL_CATEGORIES = [
    {"id": 31, "name": "cat:head"},
    {"id": 38, "name": "cat:tail"},
    {"id": 39, "name": "cat:torso"},
    {"id": 49, "name": "dog:head"},
    {"id": 56, "name": "dog:muzzle"},
    {"id": 57, "name": "dog:tail"},
    {"id": 58, "name": "dog:torso"},
    {"id": 83, "name": "potted plant:plant"},
    {"id": 84, "name": "potted plant:pot"},
]


def _write(path: Path, images: list[dict], annotations: list[dict], categories: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))


def _box(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    return _box_mask(16, 16, (x0, y0, x1, y1))


def make_paco_layout(root: Path, split: str = "val") -> dict:
    """``vlpart/paco_lvis/annotations/paco_lvis_v1_<split>.json`` + ``coco/train2017/`` images.

    Image 1 (``train2017/000000000001.jpg``), annotations in this order: trash can object [0, 8) x [0, 16)
    (polygon, x ranges first), its lid [0, 8) x [0, 4) (RLE), its body [0, 8) x [3, 16) (RLE, over the lid),
    the mug's handle [12, 16) x [8, 12) (uncompressed RLE), then the mug object [8, 16) x [8, 16) (polygon, over
    the handle in the category map only). Image 7 has an annotation of an unknown category (skipped: the image
    has no valid annotation left); image 9 an unsafe ``file_name`` (skipped); image 11 no annotation.

    Returns:
        ``{"root", "image", "category_map", "label_map"}`` of image 1.
    """
    images = [
        {"id": 11, "file_name": "train2017/000000000011.jpg", "height": 16, "width": 16},
        {"id": 1, "file_name": "train2017/000000000001.jpg", "height": 16, "width": 16},
        {"id": 7, "file_name": "train2017/000000000007.jpg", "height": 16, "width": 16},
        {"id": 9, "file_name": "../../etc/passwd", "height": 16, "width": 16},
    ]
    annotations = [
        {"id": 100, "image_id": 1, "category_id": 1, "obj_ann_id": 100, "segmentation": [_rect(0, 0, 8, 16)]},
        {"id": 101, "image_id": 1, "category_id": 2, "obj_ann_id": 100, "segmentation": _rle(_box(0, 0, 8, 4))},
        {"id": 102, "image_id": 1, "category_id": 3, "obj_ann_id": 100, "segmentation": _rle(_box(0, 3, 8, 16))},
        {"id": 103, "image_id": 1, "category_id": 5, "obj_ann_id": 104,
         "segmentation": _uncompressed_rle(_box(12, 8, 16, 12))},
        {"id": 104, "image_id": 1, "category_id": 4, "obj_ann_id": 104, "segmentation": [_rect(8, 8, 16, 16)]},
        {"id": 105, "image_id": 7, "category_id": 99, "segmentation": [_rect(0, 0, 4, 4)]},
        {"id": 106, "image_id": 9, "category_id": 4, "segmentation": [_rect(0, 0, 4, 4)]},
    ]
    _write(root / "vlpart" / "paco_lvis" / "annotations" / f"paco_lvis_v1_{split}.json", images, annotations,
           PACO_CATEGORIES)
    for image in images[:3]:
        write_image(root / "coco" / image["file_name"], 16, 16)
    category_map = np.full((16, 16), -1)
    label_map = np.zeros((16, 16), dtype=np.int64)
    category_map[:, :8] = 1
    category_map[:4, :8], label_map[:4, :8] = 2, 1
    category_map[3:, :8], label_map[3:, :8] = 3, 2
    label_map[8:12, 12:] = 3
    category_map[8:, 8:] = 4
    return {"root": root, "image": "coco/train2017/000000000001.jpg", "category_map": category_map,
            "label_map": label_map}


def make_pascal_part_layout(root: Path, split: str = "val") -> dict:
    """VLPart's ``vlpart/pascal_part/<split>.json`` + ``VOCdevkit/VOC2010/JPEGImages``.

    Image 1 (``2008_000001.jpg``): a cat on the left, head [0, 8) x [0, 4) (polygon), torso [0, 8) x [4, 16)
    (RLE); a dog on the right, head [8, 16) x [0, 8) (uncompressed RLE), torso [8, 16) x [8, 16) (polygon).
    Image 2 (``2008_000002.jpg``): a potted plant, plant [0, 16) x [0, 8), pot [0, 16) x [8, 16).

    Part class ids (category-id order): 1 cat head, 2 cat tail, 3 cat torso, 4 dog head, 5 dog muzzle, 6 dog
    tail, 7 dog torso, 8 plant, 9 pot.

    Returns:
        ``{"root", "label_maps": {image_id: (16, 16) part class ids}}``.
    """
    images = [
        {"id": 2, "file_name": "2008_000002.jpg", "height": 16, "width": 16},
        {"id": 1, "file_name": "2008_000001.jpg", "height": 16, "width": 16},
    ]
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 31, "segmentation": [_rect(0, 0, 8, 4)]},
        {"id": 2, "image_id": 1, "category_id": 39, "segmentation": _rle(_box(0, 4, 8, 16))},
        {"id": 3, "image_id": 1, "category_id": 49, "segmentation": _uncompressed_rle(_box(8, 0, 16, 8))},
        {"id": 4, "image_id": 1, "category_id": 58, "segmentation": [_rect(8, 8, 16, 16)]},
        {"id": 5, "image_id": 2, "category_id": 83, "segmentation": [_rect(0, 0, 16, 8)]},
        {"id": 6, "image_id": 2, "category_id": 84, "segmentation": [_rect(0, 8, 16, 16)]},
    ]
    _write(root / "vlpart" / "pascal_part" / f"{split}.json", images, annotations, PASCAL_CATEGORIES)
    for image in images:
        write_image(root / "vlpart/pascal_part/VOCdevkit/VOC2010/JPEGImages" / image["file_name"], 16, 16)
    one = np.zeros((16, 16), dtype=np.int64)
    one[:4, :8], one[4:, :8], one[:8, 8:], one[8:, 8:] = 1, 3, 4, 7
    two = np.zeros((16, 16), dtype=np.int64)
    two[:8], two[8:] = 8, 9
    return {"root": root, "label_maps": {1: one, 2: two}}
