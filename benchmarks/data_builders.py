"""Throughput of the data builders on generated data: the synthetic set and a RefCOCO-format set.

    python benchmarks/data_builders.py [--refs 2400] [--synthetic-images 300] [--keep DIR]

Prints items/s for each build, the share of reading/decoding masks, and what decoding every image would have
cost instead (the builders read image sizes from ``instances.json`` and never open the images). The last line is
a JSON object with all figures. Everything runs in one process on the same machine; no timing is asserted.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import pickle
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from text4seg.datasets.refer import read_refer

IMAGE_H, IMAGE_W = 480, 640
REFS_PER_IMAGE = 4


def _polygon(rng: random.Random) -> list[float]:
    """A random star-shaped polygon (12 vertices) somewhere in a 640 x 480 image, parts may stick out."""
    cx, cy = rng.uniform(0, IMAGE_W), rng.uniform(0, IMAGE_H)
    radius = rng.uniform(20, 200)
    points = []
    for k in range(12):
        angle = 2 * math.pi * k / 12
        r = radius * rng.uniform(0.5, 1.0)
        points += [cx + r * math.cos(angle), cy + r * math.sin(angle)]
    return points


def make_refcoco_like(root: Path, num_refs: int, seed: int = 0) -> dict:
    """Write ``refer_seg/refcoco/{refs(unc).p, instances.json}`` with ``num_refs`` train refs (640 x 480
    images, 1-3 polygon parts per object, every 10th object an RLE segmentation) and one real JPEG per 50
    images (the rest of the image files are not needed: builders never open images)."""
    from pycocotools import mask as mask_utils

    rng = random.Random(seed)
    num_images = math.ceil(num_refs / REFS_PER_IMAGE)
    images, annotations, refs = [], [], []
    for i in range(num_images):
        images.append({"id": i + 1, "file_name": f"COCO_train2014_{i + 1:012d}.jpg", "height": IMAGE_H,
                       "width": IMAGE_W})  # fmt: skip
    for r in range(num_refs):
        image_id = r // REFS_PER_IMAGE + 1
        ann_id = 1000 + r
        if r % 10 == 9:
            box = np.zeros((IMAGE_H, IMAGE_W), dtype=np.uint8)
            x0, y0 = rng.randrange(0, IMAGE_W - 100), rng.randrange(0, IMAGE_H - 100)
            box[y0 : y0 + rng.randrange(20, 100), x0 : x0 + rng.randrange(20, 100)] = 1
            rle = mask_utils.encode(np.asfortranarray(box))
            segmentation = {"size": [IMAGE_H, IMAGE_W], "counts": rle["counts"].decode("ascii")}
        else:
            segmentation = [_polygon(rng) for _ in range(rng.randint(1, 3))]
        annotations.append({"id": ann_id, "image_id": image_id, "category_id": 1, "segmentation": segmentation,
                            "iscrowd": int(r % 10 == 9)})  # fmt: skip
        sentences = [{"sent": f"object {r} number {k}", "raw": f"object {r} number {k}", "tokens": [],
                      "sent_id": 3 * r + k} for k in range(rng.randint(1, 3))]  # fmt: skip
        refs.append({"ref_id": r, "ann_id": ann_id, "image_id": image_id, "split": "train",
                     "sentences": sentences, "category_id": 1})  # fmt: skip
    data_dir = root / "refer_seg" / "refcoco"
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / "refs(unc).p", "wb") as handle:
        pickle.dump(refs, handle, protocol=2)
    (data_dir / "instances.json").write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "object"}]}),
        encoding="utf-8",
    )
    image_dir = root / "refer_seg" / "images" / "coco_2014" / "train2014"
    image_dir.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(seed).integers(0, 256, size=(IMAGE_H, IMAGE_W, 3), dtype=np.uint8)
    for image in images[::50]:
        Image.fromarray(noise).save(image_dir / image["file_name"], quality=90)
    return {"images": num_images, "refs": num_refs, "sample_jpegs": sorted(image_dir.glob("*.jpg"))}


def _decode_seconds(paths: list[Path]) -> float:
    """Mean seconds to decode one 640 x 480 JPEG (what a builder that opened every image would pay)."""
    start = time.perf_counter()
    for path in paths:
        with Image.open(path) as image:
            image.convert("RGB").load()
    return (time.perf_counter() - start) / len(paths)


def _builders():
    """Import data_builders.refcoco/.synthetic; this script's own name would shadow the package."""
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    return importlib.import_module("data_builders.refcoco"), importlib.import_module("data_builders.synthetic")


def main(argv: list[str] | None = None) -> dict:
    refcoco, synthetic = _builders()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refs", type=int, default=2400, help="refs of the RefCOCO-format set (>= 2000)")
    parser.add_argument("--synthetic-images", type=int, default=300)
    parser.add_argument("--keep", default=None, help="work in this folder and keep it (default: a temp dir)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        figures: dict = {}

        # synthetic: drawing images + building the JSON (fresh folder, so the images are really drawn)
        start = time.perf_counter()
        summary = synthetic.build(str(work / "syn"), str(work / "synthetic.json"),
                                  num_images=args.synthetic_images, quiet=True)  # fmt: skip
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        again = synthetic.build(str(work / "syn"), str(work / "synthetic2.json"),
                                num_images=args.synthetic_images, quiet=True)  # fmt: skip
        json_only = time.perf_counter() - start
        figures["synthetic"] = {
            "images": args.synthetic_images,
            "items": summary.items,
            "seconds_with_drawing": round(seconds, 3),
            "images_per_s": round(args.synthetic_images / seconds, 1),
            "items_per_s_json_only": round(again.items / json_only, 1),
        }
        print(f"synthetic: {args.synthetic_images} images drawn + {summary.items} items in {seconds:.2f} s "
              f"({args.synthetic_images / seconds:.0f} images/s); rebuild from the index "
              f"{again.items / json_only:.0f} items/s")  # fmt: skip

        # RefCOCO format: reference recipe (each ref twice, two rounds, 16 x 16)
        start = time.perf_counter()
        made = make_refcoco_like(work / "refdata", args.refs)
        setup = time.perf_counter() - start
        start = time.perf_counter()
        read = sum(1 for _ in read_refer(work / "refdata", "train"))
        read_seconds = time.perf_counter() - start
        start = time.perf_counter()
        summary = refcoco.build(str(work / "refdata"), str(work / "refcoco.json"), quiet=True)
        seconds = time.perf_counter() - start
        decode = _decode_seconds(made["sample_jpegs"])
        decode_all = decode * made["images"]
        figures["refcoco"] = {
            "refs": made["refs"],
            "images": made["images"],
            "items": summary.items,
            "rounds": summary.rounds,
            "seconds": round(seconds, 3),
            "items_per_s": round(summary.items / seconds, 1),
            "refs_per_s": round(made["refs"] / seconds, 1),
            "reader_refs_per_s": round(read / read_seconds, 1),
            "reader_share": round(read_seconds / seconds, 3),
            "jpeg_decode_ms": round(decode * 1000, 2),
            "decode_every_image_would_add_s": round(decode_all, 3),
            "decode_to_build_ratio": round(decode_all / seconds, 3),
            "output_mb": round((work / "refcoco.json").stat().st_size / 1e6, 2),
        }
        print(f"refcoco: {made['refs']} refs on {made['images']} images (set written in {setup:.1f} s) -> "
              f"{summary.items} items / {summary.rounds} rounds in {seconds:.2f} s = "
              f"{summary.items / seconds:.0f} items/s ({made['refs'] / seconds:.0f} refs/s)")  # fmt: skip
        print(f"refcoco: reading + decoding masks {read / read_seconds:.0f} refs/s "
              f"({100 * read_seconds / seconds:.0f}% of the build); images never opened - decoding each "
              f"640x480 JPEG once ({decode * 1000:.1f} ms) would add {decode_all:.2f} s "
              f"(x{decode_all / seconds:.2f} of the build)")  # fmt: skip
        if args.refs < 2000:
            print("note: fewer than 2000 refs requested", file=sys.stderr)
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
