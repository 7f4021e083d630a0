"""A tiny GranD-f layout on disk (the released JSON formats): the four training sets and a val split of the GCG
evaluation ground truth, with 8 px images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from text4seg.datasets.coco_masks import encode_rle


def box(h: int, w: int, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    """(h, w) bool mask, True on rows[0]:rows[1] x cols[0]:cols[1]."""
    mask = np.zeros((h, w), dtype=bool)
    mask[rows[0]:rows[1], cols[0]:cols[1]] = True
    return mask


def _image(path: Path, h: int, w: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 128, dtype=np.uint8)).save(path)


def _json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


# masks of the training sets (8 x 8 images; RefCOCOg 8 x 10)
MAN = box(8, 8, (0, 8), (0, 4))
RACKET = box(8, 8, (2, 4), (2, 6))
DOG_A, DOG_B, BALL = box(8, 8, (0, 4), (0, 4)), box(8, 8, (4, 8), (0, 2)), box(8, 8, (6, 7), (6, 7))
WOMAN, UMBRELLA = box(8, 10, (2, 8), (0, 5)), box(8, 10, (0, 2), (0, 10))

# evaluation ground truth: two images
GT_MASKS = {"sa_a": [box(8, 8, (0, 8), (0, 4)), box(8, 8, (0, 4), (4, 8))],
            "sa_b": [box(8, 8, (4, 8), (0, 4)), box(8, 8, (4, 8), (4, 8))]}
GT_CAPTIONS = {"sa_a": ("A man holds a racket.", ["A man", "a racket"]),
               "sa_b": ("A dog on the grass.", ["A dog", "the grass"])}


def _polygon(mask: np.ndarray) -> list[float]:
    rows, cols = np.nonzero(mask)
    y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    return [float(v) for v in (x0, y0, x1, y0, x1, y1, x0, y1)]


def make_grandf_layout(root: Path) -> dict:
    """Write the layout under ``root``; returns ``{"root": root}``."""
    ann = root / "GranDf" / "annotations"
    _json(ann / "train" / "GranDf_HA_GCG_train.json", [
        {"file_name": "sa_1.jpg", "caption": '"A man holds a red racket." ', "groundings": {
            "A man": {"token_positives": [1, 6], "rle_masks": [encode_rle(box(8, 8, (0, 4), (0, 4))),
                                                               encode_rle(box(8, 8, (4, 8), (0, 4)))]},
            "a red racket": {"token_positives": [13, 25], "rle_masks": [encode_rle(RACKET)]}}},
        {"file_name": "sa_2.jpg", "caption": "Nothing grounded.", "groundings": {}},
        {"file_name": "sa_3.jpg", "caption": "A cat.", "groundings": {"A cat": {"token_positives": [0, 40],
                                                                                "rle_masks": [encode_rle(MAN)]}}},
    ])
    _json(ann / "train" / "OpenPsgGCG_val.json", [
        {"file_name": "000000000042.jpg", "caption": "a dog on a sofa", "groundings": {
            "a sofa": {"token_positives": [9, 15], "rle_masks": [encode_rle(MAN)]},
            "a dog": {"token_positives": [0, 5], "rle_masks": [encode_rle(RACKET)]},
            "dog": {"token_positives": [2, 5], "rle_masks": [encode_rle(RACKET)]}}},
    ])
    caption = "Two dogs play with a ball ."
    _json(ann / "train" / "flickr_mergedGT_GCG_train.json", {
        "images": [{"id": 7, "file_name": "1000.jpg", "caption": caption, "height": 8, "width": 8}],
        "annotations": [
            {"id": 1, "image_id": 7, "tokens_positive": [[0, 8]], "sam_mask": encode_rle(DOG_A), "bbox": [0, 0, 4, 4]},
            {"id": 2, "image_id": 7, "tokens_positive": [[19, 25]], "sam_mask": encode_rle(BALL),
             "bbox": [6, 6, 1, 1]},
            {"id": 3, "image_id": 7, "tokens_positive": [[0, 8]], "sam_mask": encode_rle(DOG_B), "bbox": [0, 4, 2, 4]},
            {"id": 4, "image_id": 7, "tokens_positive": [[9, 13]], "sam_mask": encode_rle(MAN), "ignore": 1},
        ],
        "categories": [{"id": 1, "name": "object"}],
    })
    _json(ann / "train" / "RefCOCOg_GCG_val.json", [
        {"COCO_train2014_000000000042_1": {
            "img_file_name": "COCO_train2014_000000000042.jpg",
            "caption": "The woman in red holding an umbrella.",
            "refs": [{"sentence": "the woman in red holding an umbrella", "segmentation": [_polygon(WOMAN)]},
                     {"sentence": "An umbrella", "segmentation": [_polygon(UMBRELLA)]},
                     {"sentence": "a cat", "segmentation": [_polygon(WOMAN)]}]}},
    ])
    _image(root / "coco_2014" / "train2014" / "COCO_train2014_000000000042.jpg", 8, 10)
    images = [{"id": k, "file_name": f"{k}.jpg", "height": 8, "width": 8} for k in GT_MASKS]
    _json(ann / "val_test" / "val_gcg_coco_caption_gt.json", {
        "images": images,
        "annotations": [{"id": n, "image_id": k, "caption": c, "labels": labels}
                        for n, (k, (c, labels)) in enumerate(GT_CAPTIONS.items(), start=1)],
    })
    anns = []
    for k, masks in GT_MASKS.items():
        for mask in masks:
            rows, cols = np.nonzero(mask)
            anns.append({"id": len(anns) + 1, "image_id": k, "category_id": 1, "segmentation": encode_rle(mask),
                         "area": int(mask.sum()), "bbox": [int(cols.min()), int(rows.min()), int(np.ptp(cols) + 1),
                                                           int(np.ptp(rows) + 1)], "iscrowd": 0})
    _json(ann / "val_test" / "val_gcg_coco_mask_gt.json",
          {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "object"}]})
    for k in GT_MASKS:
        _image(root / "GranDf" / "GranDf_HA_images" / "val_test" / f"{k}.jpg", 8, 8)
    return {"root": root}
