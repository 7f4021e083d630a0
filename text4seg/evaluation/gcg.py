"""Grounded conversation generation: ``eval gcg`` on GranD-f's val / test splits (GLaMM's protocol).

One sample is one image of ``GranDf/annotations/val_test/{split}_gcg_coco_caption_gt.json``
(:func:`text4seg.datasets.grandf.read_gcg_ground_truth`), asked GLaMM's GCG instruction (template 0 of
:data:`text4seg.prompts.GCG_QUESTIONS` unless the segmenter or ``question_index`` says otherwise) through
``segmenter.ground_many(images, instruction)`` -> :class:`text4seg.grounded.GroundedAnswer` (each phrase with a
full-size bool ``mask``). Records (``samples.jsonl``, resumable, one process per folder) hold the prediction in
GLaMM's format: ``caption`` (markers removed, whitespace collapsed), ``phrases`` and ``pred_masks`` (COCO RLE,
phrase i <-> mask i; a phrase the descriptor gave no cell has an empty mask and counts as a prediction, as
GLaMM's ``[SEG]`` always does). At the end ``OUT/predictions/<image_id>.json`` holds each image's prediction,
the folder GLaMM's ``eval/gcg/evaluate.py --prediction_dir_path`` reads, and ``scores.json`` / ``scores.md``
the metrics of :func:`text4seg.gcg_metrics.gcg_scores` (METEOR, CIDEr, AP50, mIoU, mask recall).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from text4seg.evaluation.lock import RunLock
from text4seg.evaluation.records import SampleLog, read_records
from text4seg.evaluation.shards import RUN_FILE, SAMPLES_FILE, check_settings, completed_records
from text4seg.evaluation.tasks import TaskSpec
from text4seg.io import write_json_atomic, write_text_atomic

__all__ = ["evaluate_gcg", "gcg_prediction"]

PREDICTIONS_DIR = "predictions"


def gcg_prediction(image_id: str, answer: Any, size: tuple[int, int], source: str = "") -> dict:
    """GLaMM's prediction of one image from a :class:`~text4seg.grounded.GroundedAnswer`.

    Args:
        image_id: the image id (file stem).
        answer: the answer; each phrase needs a (H, W) bool ``mask``.
        size: (H, W) of the ground truth.
        source: the image, for messages.

    Returns:
        ``{"image_id", "caption", "phrases", "pred_masks": [COCO RLE]}``.

    Raises:
        ValueError: a phrase without a mask, or a mask of another size.
    """
    import numpy as np

    from text4seg.datasets.coco_masks import encode_rle

    masks = []
    for phrase in answer.phrases:
        if phrase.mask is None:
            raise ValueError(f"{source}: phrase {phrase.text!r} has no mask (ground with a full-size upsample)")
        mask = np.asarray(phrase.mask, dtype=bool)
        if mask.shape != tuple(size):
            raise ValueError(f"{source}: the image decodes to {mask.shape} (height, width), its annotation {size}")
        masks.append(encode_rle(mask))
    return {"image_id": image_id, "caption": " ".join(str(answer.caption).split()),
            "phrases": [p.text for p in answer.phrases], "pred_masks": masks}


def evaluate_gcg(
    spec: TaskSpec,
    model: str | os.PathLike | None = None,
    adapter: str | os.PathLike | None = None,
    *,
    data_root: str | os.PathLike = "playground/data",
    split: str = "val",
    limit: int | None = None,
    out: str | os.PathLike | None = None,
    batch_size: int = 1,
    question_index: int | None = None,
    similarity_model: str | os.PathLike | None = None,
    meteor: bool = True,
    load: Any = None,
    decoding: Any = None,
    segmenter: Any = None,
    device: Any = None,
    progress: bool = True,
) -> dict:
    """Evaluate ``eval gcg`` on a GranD-f split (single process, resumable).

    Args:
        spec: the ``gcg`` task.
        model, adapter, load, decoding, device: the model (unused when ``segmenter`` is given).
        data_root: data root holding ``GranDf/`` (:mod:`text4seg.datasets.grandf`).
        split: ``val`` or ``test``.
        limit: only the first ``limit`` images of the split.
        out: output folder; default ``runs/eval/gcg_grandf_<split>``.
        batch_size: images per ``ground_many`` call.
        question_index: ask template K of :data:`text4seg.prompts.GCG_QUESTIONS` (default: the segmenter's own
            GCG instruction).
        similarity_model: a local transformers model directory (e.g. ``bert-base-uncased``) for the recall's
            phrase similarity (GLaMM's); default: the offline bag-of-words cosine.
        meteor: compute METEOR (Java).
        segmenter: an object with ``ground_many(images, instruction)`` (a :class:`text4seg.Segmenter`).

    Returns:
        The scores written to ``out/scores.json`` (``coarse``: ``meteor``, ``cider``, ``ap50``, ``miou``,
        ``recall`` as fractions; ``gcg``: counts, the similarity and tokenizer used, the METEOR note).
    """
    from tqdm.auto import tqdm

    from text4seg.datasets.grandf import read_gcg_ground_truth
    from text4seg.evaluation.runner import _build_segmenter
    from text4seg.evaluation.scoring import markdown_table
    from text4seg.gcg_metrics import gcg_scores, phrase_similarity
    from text4seg.images import load_image

    if limit is not None and int(limit) < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    instruction = None
    if question_index is not None:
        from text4seg.prompts import gcg_question

        if question_index == "random":
            raise ValueError("--question-index random: evaluation asks one question, give an index K")
        instruction = gcg_question(template=question_index)
    root = Path(data_root)
    out = Path(out) if out is not None else Path("runs") / "eval" / f"{spec.name}_{spec.default_dataset}_{split}"
    ground_truth = read_gcg_ground_truth(root, split)
    if limit is not None:
        ground_truth = ground_truth[: int(limit)]
    similarity = phrase_similarity(similarity_model)  # fails now, not after the predictions
    settings = {"task": spec.name, "dataset": spec.default_dataset, "split": split, "data_root": str(root),
                "model": None if model is None else str(model), "adapter": None if adapter is None else str(adapter),
                "decoding": None if segmenter is not None or decoding is None else decoding.decoding,
                "question_index": question_index, "limit": None if limit is None else int(limit),
                "batch_size": int(batch_size)}
    out.mkdir(parents=True, exist_ok=True)
    with RunLock(out, 0):
        check_settings(out, settings)
        write_json_atomic(out / RUN_FILE, settings)
        done = completed_records(out)
        pending = [(k, gt) for k, gt in enumerate(ground_truth) if k not in done]
        if pending and segmenter is None:
            from text4seg.options import DecodingOptions, LoadOptions

            segmenter = _build_segmenter(model, adapter, load or LoadOptions(), decoding or DecodingOptions(), device)
        log = SampleLog(out / SAMPLES_FILE)
        bar = tqdm(total=len(ground_truth), initial=len(ground_truth) - len(pending), desc=f"eval {spec.name}",
                   unit="image", disable=not progress)
        try:
            for first in range(0, len(pending), int(batch_size)):
                batch = pending[first:first + int(batch_size)]
                started = time.perf_counter()
                images = [load_image(root / gt.image) for _, gt in batch]
                answers = segmenter.ground_many(images, instruction)
                if len(answers) != len(batch):
                    raise ValueError(f"ground_many answered {len(answers)} images for {len(batch)}")
                seconds = (time.perf_counter() - started) / len(batch)
                for (index, gt), answer in zip(batch, answers):
                    record = {"index": index, "id": gt.image_id, "image": gt.image, "text": answer.text,
                              "repairs": list(answer.repairs),
                              **gcg_prediction(gt.image_id, answer, (gt.height, gt.width), gt.image),
                              "scores": [p.score for p in answer.phrases], "seconds": seconds}
                    log.append(record)
                    bar.update(1)
        finally:
            bar.close()
            log.close()
        records = {int(r["index"]): r for r in read_records(out / SAMPLES_FILE) if int(r["index"]) < len(ground_truth)}
        indices = sorted(records)
        for index in indices:
            record = records[index]
            write_json_atomic(out / PREDICTIONS_DIR / f"{record['image_id']}.json",
                              {k: record[k] for k in ("image_id", "caption", "phrases", "pred_masks")}, indent=None)
        metrics = gcg_scores([ground_truth[k] for k in indices], [records[k] for k in indices], similarity,
                             meteor=meteor)
        coarse = {k: metrics[k] for k in spec.columns}
        scores = {"task": spec.name, "dataset": spec.default_dataset, "split": split, "samples": len(indices),
                  "images": len(indices), "repaired_samples": sum(bool(records[k]["repairs"]) for k in indices),
                  "repairs": sum(len(records[k]["repairs"]) for k in indices),
                  "seconds": sum(float(records[k].get("seconds") or 0.0) for k in indices), "coarse": coarse,
                  "gcg": {k: v for k, v in metrics.items() if k not in coarse}, "settings": settings}
        write_json_atomic(out / "scores.json", scores)
        write_text_atomic(out / "scores.md", markdown_table(scores) + "\n")
    return scores
