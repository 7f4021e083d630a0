"""Segment one image for one or more queries and write the masks (``text4seg segment``).

Prints the answer and a summary per query (grid, repairs, foreground share, time), writes the mask PNG (0/255;
one file per query when there are several: ``mask_0.png``, ``mask_1.png``, ...) and an overlay beside it;
``json_output`` prints a machine-readable result instead, with each mask as COCO RLE.

``text4seg segment IMAGE --grounded`` (:func:`ground_image`) asks for a grounded caption instead: it prints the
caption and a legend of its phrases, writes one mask PNG per phrase (``mask_0.png``, ...) and one overlay with a
colour per phrase.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from text4seg.datasets.coco_masks import encode_rle
from text4seg.options import DecodingOptions, LoadOptions

__all__ = ["segment_image", "ground_image", "overlay_path_for", "report_header", "result_record", "mask_rle",
           "grounded_record"]


def overlay_path_for(mask_path: str | os.PathLike) -> Path:
    """Where the overlay of a mask goes by default: beside it, ``<stem>_overlay.png``."""
    mask_path = Path(mask_path)
    return mask_path.with_name(f"{mask_path.stem}_overlay.png")


def mask_rle(mask: np.ndarray) -> dict[str, Any]:
    """A mask as the JSON of ``text4seg segment --json``.

    Args:
        mask: HxW bool (a referring mask) or an HxW integer label map (a semantic prompt's class ids).

    Returns:
        ``{"rle": COCO RLE}`` for a bool mask; ``{"class_ids": [...], "rle": {"ID": COCO RLE, ...}}`` (one RLE per
        id present) for a label map.
    """
    if mask.dtype == bool:
        return {"rle": encode_rle(mask)}
    ids = [int(v) for v in np.unique(mask)]
    return {"class_ids": ids, "rle": {str(v): encode_rle(mask == v) for v in ids}}


def result_record(res: Any, *, mask: np.ndarray | None = None, mask_png: str | None = None,
                  overlay_png: str | None = None, **extra: Any) -> dict[str, Any]:
    """One answered query as a record of ``text4seg segment --json`` (its ``results`` list).

    Args:
        res: a :class:`text4seg.segmenter.SegmentationResult`.
        mask: the mask to encode instead of ``res.mask`` (e.g. after SAM refinement); same shape.
        mask_png, overlay_png: where its files were written (None: not written).
        **extra: further fields, placed before the masks (e.g. ``refined=True``).
    """
    mask = res.mask if mask is None else np.asarray(mask)
    record: dict[str, Any] = {
        "query": res.query,
        "prompt": res.prompt,
        "text": res.text,
        "form": res.form,
        "repairs": list(res.repairs),
        "foreground_share": round(float(np.count_nonzero(mask)) / max(1, mask.size), 6),
        "seconds": round(res.seconds, 4),
        "tokens": res.tokens,
        "forward_passes": res.forward_passes,
        "mask_png": mask_png,
        "overlay_png": overlay_png,
        **extra,
    }
    record.update(mask_rle(mask))
    return record


def report_header(image: str, picture: Any, model: str | os.PathLike, adapter: str | os.PathLike | None,
                  config: Any, load_seconds: float) -> dict[str, Any]:
    """The top of a ``text4seg segment --json`` report, with an empty ``results`` list to fill.

    Args:
        image: how the image is named in the report (its path, or an upload's file name).
        picture: the loaded PIL image (its size is reported as ``[height, width]``).
        model, adapter: what was loaded.
        config: the model's :class:`text4seg.config.Text4SegConfig` (grid, descriptor form).
        load_seconds: model loading time.
    """
    return {
        "image": image,
        "size": [picture.height, picture.width],
        "model": str(model),
        "adapter": None if adapter is None else str(adapter),
        "grid": list(config.grid),
        "descriptor_form": config.descriptor_form,
        "load_seconds": round(load_seconds, 3),
        "results": [],
    }


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
    class_chunk: int | None = None,
    out: str | os.PathLike = "mask.png",
    overlay: str | os.PathLike | bool = True,
    json_output: bool = False,
    load: LoadOptions | None = None,
    decoding: DecodingOptions | str | None = None,
    question_template: str | None = None,
    question_index: int | None = None,
    upsample: str = "nearest",
    stream: Any = None,
) -> dict:
    """Segment ``image`` for each query (or one instruction / class list), write PNGs, print a report.

    Args:
        image: image file.
        queries: referring expressions (one mask each).
        model, adapter: model directory or hub id, optional LoRA adapter.
        instruction: free-form request sent as is (instead of queries).
        classes: class names for a semantic prompt (instead of queries); the mask PNG holds class indices
            (16-bit past 255 classes).
        class_chunk: with ``classes``: ask several prompts of at most this many classes each and merge them
            (:mod:`text4seg.chunking`); None or 0: one prompt.
        out: mask PNG path (0/255 for referring masks); numbered ``stem_k`` when there are several queries.
        overlay: overlay PNG path (numbered likewise); True (default): beside the mask, ``<stem>_overlay.png``;
            False: none.
        json_output: print one JSON object instead of text.
        load, decoding: loading and generation options (:class:`LoadOptions`, :class:`DecodingOptions`).
        question_template: the referring question (a text with ``{expression}``); default: the model's.
        question_index: ask template K of :data:`text4seg.prompts.REFERRING_QUESTIONS` instead.
        upsample: ``"nearest"`` or ``"smooth"``.
        stream: where to print (default stdout).

    Returns:
        The JSON-able report (also printed with ``json_output``).
    """
    from text4seg.datasets.semantic import ignore_id
    from text4seg.images import load_image, overlay_mask, save_mask_png
    from text4seg.segmenter import Segmenter

    stream = stream or sys.stdout
    queries = list(queries)
    if sum(bool(x) for x in (queries, instruction, classes)) != 1:
        raise ValueError("segment: give query text(s), or --instruction, or --classes (exactly one kind)")
    if class_chunk is not None and (isinstance(class_chunk, bool) or not isinstance(class_chunk, int)
                                    or class_chunk < 0):
        raise ValueError(f"--class-chunk {class_chunk!r}: expected an int >= 1 (classes per prompt), or 0 for one")
    if class_chunk and not classes:
        raise ValueError("--class-chunk cuts a class list: give --classes or --classes-file")
    picture = load_image(image)  # fails early, naming the file
    t0 = time.perf_counter()
    question_template = resolve_question(question_template, question_index)
    segmenter = Segmenter.from_pretrained(model, adapter, load=load, decoding=decoding,
                                          question_template=question_template)
    load_seconds = time.perf_counter() - t0
    if queries:
        results = segmenter.segment(picture, queries, upsample=upsample)
    else:
        results = [segmenter.segment(picture, instruction=instruction, classes=classes, upsample=upsample,
                                     chunk_size=class_chunk or None)]
    out = Path(out)
    ignored = ignore_id(len(classes)) if classes else 255
    if overlay is True:
        overlay = overlay_path_for(out)
    overlay = None if overlay is False or overlay is None else Path(overlay)
    report = report_header(str(image), picture, model, adapter, segmenter.config, load_seconds)
    for k, res in enumerate(results):
        mask_path = _numbered(out, k, len(results))
        mask_path.parent.mkdir(parents=True, exist_ok=True)
        save_mask_png(res.mask, mask_path, sixteen_bit=ignored > 255)
        overlay_path = None
        if overlay is not None:
            overlay_path = _numbered(overlay, k, len(results))
            overlay_path.parent.mkdir(parents=True, exist_ok=True)
            overlay_mask(picture, res.mask, ignore_index=ignored).save(overlay_path)
        chunks = {"chunks": [len(c["classes"]) for c in res.extra["chunks"]]} if "chunks" in res.extra else {}
        report["results"].append(result_record(res, mask_png=str(mask_path),
                                                overlay_png=None if overlay_path is None else str(overlay_path),
                                                **chunks))
    if json_output:
        json.dump(report, stream, ensure_ascii=False)
        stream.write("\n")
        return report
    height, width = segmenter.config.grid
    for entry in report["results"]:
        print(f"query: {entry['query']}", file=stream)
        print(entry["text"].rstrip("\n"), file=stream)
        repairs = "; ".join(entry["repairs"]) if entry["repairs"] else "none"
        if "chunks" in entry:
            print(f"{len(entry['chunks'])} prompts of {', '.join(map(str, entry['chunks']))} classes, merged",
                  file=stream)
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


def grounded_record(answer: Any, *, mask_pngs: Sequence[str | None] | None = None,
                    overlay_png: str | None = None) -> dict[str, Any]:
    """A grounded caption as a record of ``text4seg segment --grounded --json`` (its ``results`` list).

    Args:
        answer: a :class:`text4seg.grounded.GroundedAnswer` decoded with masks (``out_hw``).
        mask_pngs: per phrase, where its mask was written (None: not written).
        overlay_png: where the overlay was written.

    Returns:
        The answer's caption, text, repairs and timings, and per phrase its text, label, span, cells, score,
        overlay colour (phrase k: :func:`text4seg.images.label_color` of k + 1), mask PNG and COCO RLE.
    """
    from text4seg.images import label_color

    mask_pngs = list(mask_pngs) if mask_pngs is not None else [None] * len(answer.phrases)
    phrases = []
    for k, (phrase, png) in enumerate(zip(answer.phrases, mask_pngs)):
        entry = {"text": phrase.text, "label": phrase.label, "start": phrase.start, "end": phrase.end,
                 "cells": phrase.cells, "score": None if phrase.score is None else round(phrase.score, 6),
                 "color": list(label_color(k + 1)), "mask_png": png}
        if phrase.mask is not None:
            entry.update(mask_rle(phrase.mask))
        phrases.append(entry)
    return {
        "prompt": answer.prompt,
        "text": answer.text,
        "caption": answer.caption,
        "marked_caption": answer.marked_caption,
        "form": answer.form,
        "repairs": list(answer.repairs),
        "seconds": round(answer.seconds, 4),
        "tokens": answer.tokens,
        "forward_passes": answer.forward_passes,
        "overlay_png": overlay_png,
        "phrases": phrases,
    }


def ground_image(
    image: str | os.PathLike,
    *,
    model: str,
    adapter: str | None = None,
    instruction: str | None = None,
    out: str | os.PathLike = "mask.png",
    overlay: str | os.PathLike | bool = True,
    json_output: bool = False,
    load: LoadOptions | None = None,
    decoding: DecodingOptions | str | None = None,
    upsample: str = "nearest",
    stream: Any = None,
) -> dict:
    """A grounded caption of ``image`` (GCG): print the caption and its phrases, write a mask PNG per phrase
    and an overlay (one colour per phrase).

    Args:
        image: image file.
        model, adapter: model directory or hub id, optional LoRA adapter.
        instruction: the request; default :func:`text4seg.prompts.gcg_question`.
        out: mask PNG path; phrase k's mask goes to ``<stem>_<k><suffix>`` (0/255).
        overlay: overlay PNG path; True (default): ``<stem>_overlay.png`` beside the masks; False: none.
        json_output: print one JSON object (:func:`report_header` + :func:`grounded_record`) instead of text.
        load, decoding: loading and generation options.
        upsample: ``"nearest"`` or ``"smooth"``.
        stream: where to print (default stdout).

    Returns:
        The JSON-able report (also printed with ``json_output``).
    """
    from text4seg.images import label_color, load_image, overlay_mask, save_mask_png
    from text4seg.segmenter import Segmenter

    stream = stream or sys.stdout
    picture = load_image(image)
    t0 = time.perf_counter()
    segmenter = Segmenter.from_pretrained(model, adapter, load=load, decoding=decoding)
    load_seconds = time.perf_counter() - t0
    answer = segmenter.ground(picture, instruction, upsample=upsample)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pngs = []
    ids = np.zeros((picture.height, picture.width), dtype=np.int64)
    for k, phrase in enumerate(answer.phrases):
        path = out.with_name(f"{out.stem}_{k}{out.suffix}")
        save_mask_png(phrase.mask, path)
        pngs.append(str(path))
        ids[phrase.mask] = k + 1
    overlay_path = overlay_path_for(out) if overlay is True else None if overlay is False else Path(overlay)
    if overlay_path is not None:
        overlay_path.parent.mkdir(parents=True, exist_ok=True)
        from text4seg.io import atomic_write

        with atomic_write(overlay_path, binary=True) as handle:
            overlay_mask(picture, ids).save(handle, format="PNG")
    report = report_header(str(image), picture, model, adapter, segmenter.config, load_seconds)
    record = grounded_record(answer, mask_pngs=pngs, overlay_png=None if overlay_path is None else str(overlay_path))
    report["results"].append(record)
    if json_output:
        json.dump(report, stream, ensure_ascii=False)
        stream.write("\n")
        return report
    height, width = segmenter.config.grid
    print(f"caption: {answer.marked_caption}", file=stream)
    repairs = "; ".join(answer.repairs) if answer.repairs else "none"
    print(f"grid {height}x{width} ({answer.form}), repairs: {repairs}, {answer.seconds:.2f} s, {answer.tokens} "
          f"tokens, {len(answer.phrases)} phrases", file=stream)
    for k, entry in enumerate(record["phrases"]):
        color = "#{:02x}{:02x}{:02x}".format(*label_color(k + 1))
        score = "-" if entry["score"] is None else f"{entry['score']:.3f}"
        print(f"  [{k}] {color} {entry['text']!r} (label {entry['label']!r}): {entry['cells']} cells, score "
              f"{score}, mask: {entry['mask_png']}", file=stream)
    if overlay_path is not None:
        print(f"overlay: {overlay_path}", file=stream)
    return report


def resolve_question(question_template: str | None, question_index: int | str | None) -> str | None:
    """The literal referring question from ``--question-template`` or ``--question-index K`` (not both)."""
    if question_index is None:
        return question_template
    if question_template is not None:
        raise ValueError("give --question-template or --question-index, not both")
    from text4seg.prompts import REFERRING_QUESTIONS

    if question_index == "random":
        raise ValueError("--question-index random: a random question is for building training data; "
                         "inference asks one question, give an index K")
    if not 0 <= int(question_index) < len(REFERRING_QUESTIONS):
        raise ValueError(f"--question-index {question_index}: REFERRING_QUESTIONS has templates "
                         f"0..{len(REFERRING_QUESTIONS) - 1}")
    return REFERRING_QUESTIONS[int(question_index)]
