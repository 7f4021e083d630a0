"""``text4seg segment IMAGE "QUERY"``: segment one image from the command line.

Prints the answer and a summary per query (grid, repairs, foreground share, time), writes the mask PNG (0/255;
one file per query when there are several: ``mask_0.png``, ``mask_1.png``, ...) and an overlay; ``--json``
prints a machine-readable result instead, with each mask as COCO RLE.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["segment_image", "coco_rle", "configure", "run"]


def coco_rle(mask: np.ndarray) -> dict:
    """COCO RLE of an (H, W) bool mask: ``{"size": [H, W], "counts": str}`` (pycocotools, column-major)."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    counts = rle["counts"]
    return {"size": [int(v) for v in rle["size"]], "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def _numbered(path: Path, k: int, n: int) -> Path:
    return path if n == 1 else path.with_name(f"{path.stem}_{k}{path.suffix}")


def segment_image(
    image: str | os.PathLike,
    queries: Sequence[str] = (),
    *,
    model: str,
    adapter: str | None = None,
    instruction: str | None = None,
    classes: Sequence[str] | None = None,
    out: str | os.PathLike = "mask.png",
    overlay: str | os.PathLike | None = "overlay.png",
    json_output: bool = False,
    device: str | None = None,
    dtype: str | None = None,
    load_in_4bit: bool = False,
    load_in_8bit: bool = False,
    attn: str | None = None,
    decoding: str = "fast",
    max_new_tokens: int | None = None,
    question_template: str | None = None,
    upsample: str = "nearest",
    stream: Any = None,
) -> dict:
    """Segment ``image`` for each query (or one instruction / class list), write PNGs, print a report.

    Args:
        image: image file.
        queries: referring expressions (one mask each).
        model, adapter: model directory or hub id, optional LoRA adapter.
        instruction: free-form request sent as is (instead of queries).
        classes: class names for a semantic prompt (instead of queries); the mask PNG holds class indices.
        out: mask PNG path (0/255 for referring masks); numbered ``stem_k`` when there are several queries.
        overlay: overlay PNG path (numbered likewise), or None.
        json_output: print one JSON object instead of text.
        device, dtype, load_in_4bit, load_in_8bit, attn, decoding, max_new_tokens, question_template: model
            loading and generation options (see :meth:`text4seg.Segmenter.from_pretrained`).
        upsample: ``"nearest"`` or ``"smooth"``.
        stream: where to print (default stdout).

    Returns:
        The JSON-able report (also printed with ``json_output``).
    """
    from text4seg.images import load_image, overlay_mask, save_mask_png
    from text4seg.segmenter import Segmenter

    stream = stream or sys.stdout
    queries = list(queries)
    if sum(bool(x) for x in (queries, instruction, classes)) != 1:
        raise ValueError("segment: give query text(s), or --instruction, or --classes (exactly one kind)")
    picture = load_image(image)  # fails early, naming the file
    t0 = time.perf_counter()
    segmenter = Segmenter.from_pretrained(
        model,
        adapter,
        device=device,
        dtype=dtype,
        load_in_4bit=load_in_4bit,
        load_in_8bit=load_in_8bit,
        attn=attn,
        decoding=decoding,
        max_new_tokens=max_new_tokens,
        question_template=question_template,
    )
    load_seconds = time.perf_counter() - t0
    if queries:
        results = segmenter.segment(picture, queries, upsample=upsample)
    else:
        results = [segmenter.segment(picture, instruction=instruction, classes=classes, upsample=upsample)]
    out = Path(out)
    overlay = None if overlay is None else Path(overlay)
    report: dict[str, Any] = {
        "image": str(image),
        "size": [picture.height, picture.width],
        "model": str(model),
        "adapter": None if adapter is None else str(adapter),
        "grid": list(segmenter.config.grid),
        "descriptor_form": segmenter.config.descriptor_form,
        "load_seconds": round(load_seconds, 3),
        "results": [],
    }
    for k, res in enumerate(results):
        mask_path = _numbered(out, k, len(results))
        mask_path.parent.mkdir(parents=True, exist_ok=True)
        save_mask_png(res.mask, mask_path)
        overlay_path = None
        if overlay is not None:
            overlay_path = _numbered(overlay, k, len(results))
            overlay_path.parent.mkdir(parents=True, exist_ok=True)
            overlay_mask(picture, res.mask).save(overlay_path)
        entry: dict[str, Any] = {
            "query": res.query,
            "prompt": res.prompt,
            "text": res.text,
            "form": res.form,
            "repairs": res.repairs,
            "foreground_share": round(res.foreground_share, 6),
            "seconds": round(res.seconds, 4),
            "tokens": res.tokens,
            "mask_png": str(mask_path),
            "overlay_png": None if overlay_path is None else str(overlay_path),
        }
        if res.mask.dtype == bool:
            entry["rle"] = coco_rle(res.mask)
        else:
            entry["class_ids"] = [int(v) for v in np.unique(res.mask)]
            entry["rle"] = {str(int(v)): coco_rle(res.mask == v) for v in np.unique(res.mask)}
        report["results"].append(entry)
    if json_output:
        json.dump(report, stream, ensure_ascii=False)
        stream.write("\n")
        return report
    height, width = segmenter.config.grid
    for entry in report["results"]:
        print(f"query: {entry['query']}", file=stream)
        print(entry["text"].rstrip("\n"), file=stream)
        repairs = "; ".join(entry["repairs"]) if entry["repairs"] else "none"
        print(
            f"grid {height}x{width} ({entry['form']}), repairs: {repairs}, foreground "
            f"{100 * entry['foreground_share']:.1f}%, {entry['seconds']:.2f} s, {entry['tokens']} tokens",
            file=stream,
        )
        files = f"mask: {entry['mask_png']}"
        if entry["overlay_png"]:
            files += f"  overlay: {entry['overlay_png']}"
        print(files, file=stream)
    return report


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of ``text4seg segment`` (defaults None: :func:`segment_image` owns them)."""
    parser.add_argument("image", help="image file")
    parser.add_argument("queries", nargs="*", metavar="QUERY", help="referring expression(s)")
    parser.add_argument("--query", action="append", dest="extra_queries", metavar="QUERY", help="(repeatable)")
    parser.add_argument("--instruction", help="free-form request sent as is (reasoning segmentation)")
    parser.add_argument("--classes", help="comma-separated class names (semantic prompt)")
    parser.add_argument("--model", required=True, help="model directory or hub id (or an adapter directory)")
    parser.add_argument("--adapter", help="LoRA adapter directory")
    parser.add_argument("--out", help="mask PNG (default: mask.png; numbered mask_K.png for several queries)")
    parser.add_argument("--overlay", help="overlay PNG (default: overlay.png)")
    parser.add_argument("--json", action="store_const", const=True, dest="json_output", help="print JSON")
    parser.add_argument("--device")
    parser.add_argument("--dtype")
    parser.add_argument("--load-in-4bit", action="store_const", const=True)
    parser.add_argument("--load-in-8bit", action="store_const", const=True)
    parser.add_argument("--attn", choices=["flash_attention_2", "sdpa", "eager"])
    parser.add_argument("--decoding", choices=["plain", "constrained", "fast"])
    parser.add_argument("--max-new-tokens", type=int)
    parser.add_argument("--question-template", help="override the model's referring question ({expression})")
    parser.add_argument("--upsample", choices=["nearest", "smooth"])


def run(args: argparse.Namespace) -> int:
    """Run ``text4seg segment``."""
    kwargs = {k: v for k, v in vars(args).items() if v is not None and k != "command"}
    queries = list(kwargs.pop("queries", [])) + list(kwargs.pop("extra_queries", []))
    if "classes" in kwargs:
        kwargs["classes"] = [c.strip() for c in kwargs["classes"].split(",") if c.strip()]
    segment_image(kwargs.pop("image"), queries, **kwargs)
    return 0
