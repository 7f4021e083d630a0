"""Instance-level evaluation: ``eval panoptic`` (PQ / SQ / RQ) and ``eval instance`` (mask AP, COCOeval).

One sample is one image, asked the instance-aware question with every category of the dataset
(:meth:`text4seg.Segmenter.instance_prompt`); its answer decodes to segments
(:func:`text4seg.descriptors.instances_from_grid`). Records (``samples.jsonl``, resumable like every run) hold:

- panoptic: the image's matching counts per category ``{category_id: [iou_sum, tp, fp, fn]}``
  (:func:`text4seg.panoptic_metrics.panoptic_image_stats`), replayed into a :class:`PanopticMeter`;
- instance: one detection per instance ``{"category_id", "score", "segmentation": RLE}``, scored at the end
  with pycocotools ``COCOeval`` (``segm``) against ``instances_<split>2017.json`` restricted to the images
  evaluated. The score is exp(mean log-probability of the instance's label tokens); an instance without one
  (a backend that cannot score) gets 1.0, counted in ``unscored``.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from text4seg.evaluation.records import SampleLog, read_records
from text4seg.evaluation.shards import RUN_FILE, SAMPLES_FILE, check_settings, completed_records
from text4seg.evaluation.tasks import TaskSpec
from text4seg.io import write_json_atomic, write_text_atomic

__all__ = ["evaluate_instances", "panoptic_scores", "instance_scores"]


def _samples(spec: TaskSpec, root: Path, split: str) -> tuple[Any, list[int], list[str], dict[int, bool]]:
    """Samples, category ids and prompt labels (class id = list index), isthing per category."""
    if spec.kind == "panoptic":
        from text4seg.datasets.coco_panoptic import read_coco_panoptic

        samples = read_coco_panoptic(root, split)
        first = next(samples, None)
        if first is None:
            raise ValueError(f"COCO panoptic split {split!r} under {root} has no images")
        cats = sorted(first.categories.values(), key=lambda c: c.id)
        import itertools

        return (itertools.chain([first], samples), [c.id for c in cats], [c.label for c in cats],
                {c.id: c.isthing for c in cats})
    from text4seg.datasets.coco_panoptic import read_coco_instances

    samples = list(read_coco_instances(root, split))
    if not samples:
        raise ValueError(f"COCO instances split {split!r} under {root} has no images")
    cats = sorted(samples[0].categories.items())
    return iter(samples), [c for c, _ in cats], [name for _, name in cats], {c: True for c, _ in cats}


def _panoptic_record(sample: Any, result: Any, category_ids: list[int]) -> dict:
    from text4seg.panoptic_metrics import panoptic_image_stats

    pred_map = np.zeros((sample.height, sample.width), dtype=np.int64)
    segments = []
    for inst in result.instances:
        if not inst.mask.any():
            continue  # a grid cell can vanish when the image is smaller than the grid
        segments.append({"id": len(segments) + 1, "category_id": category_ids[inst.class_id]})
        pred_map[inst.mask] = len(segments)
    gt_map = sample.id_map()
    if gt_map.shape != pred_map.shape:
        raise ValueError(f"{sample.png}: PNG is {gt_map.shape} (height, width), the image decodes to "
                         f"{pred_map.shape}")
    stats = panoptic_image_stats(pred_map, segments, gt_map, sample.segment_dicts())
    return {"pq": {str(c): v for c, v in sorted(stats.items())}, "segments": len(segments)}


def _instance_record(result: Any, category_ids: list[int]) -> dict:
    from text4seg.datasets.coco_masks import encode_rle

    detections = []
    for inst in result.instances:
        if not inst.mask.any():
            continue
        detections.append({"category_id": category_ids[inst.class_id], "score": inst.score,
                           "segmentation": encode_rle(inst.mask)})
    return {"detections": detections}


def panoptic_scores(records: list[dict], isthing: dict[int, bool], labels: dict[int, str]) -> dict[str, Any]:
    """``coarse`` (``pq``, ``sq``, ``rq`` and ``_th``/``_st`` for things/stuff, fractions) and ``per_class``."""
    from text4seg.panoptic_metrics import PanopticMeter

    meter = PanopticMeter(isthing)
    for record in records:
        meter.add_stats(record["pq"])
    out = meter.compute()
    coarse: dict[str, Any] = {}
    for group, suffix in (("all", ""), ("things", "_th"), ("stuff", "_st")):
        for key in ("pq", "sq", "rq"):
            coarse[key + suffix] = out[group][key]
        coarse["classes" + suffix] = out[group]["n"]
    return {"coarse": coarse, "per_class": {labels[c]: r for c, r in meter.per_class().items()}}


def instance_scores(records: list[dict], annotations: str | os.PathLike) -> dict[str, Any]:
    """Mask AP of the records' detections with pycocotools ``COCOeval`` over the records' images.

    Returns:
        ``{"coarse": {"ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large", "detections", "unscored"}}``
        (fractions; ``ap`` is -1 in COCOeval terms when nothing can be scored, reported as None).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    image_ids = sorted({int(r["image_id"]) for r in records})
    detections, unscored = [], 0
    for record in records:
        for det in record["detections"]:
            score = det["score"]
            unscored += score is None
            detections.append({"image_id": int(record["image_id"]), "category_id": int(det["category_id"]),
                               "segmentation": det["segmentation"], "score": 1.0 if score is None else float(score)})
    stats = [-1.0] * 6
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO(str(annotations))
        if detections:
            dt = gt.loadRes(detections)
            evaluator = COCOeval(gt, dt, "segm")
            evaluator.params.imgIds = image_ids
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
            stats = [float(v) for v in evaluator.stats[:6]]
    names = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large")
    coarse: dict[str, Any] = {k: (None if v < 0 else v) for k, v in zip(names, stats)}
    coarse.update(detections=len(detections), unscored=unscored)
    if not detections:
        coarse.update(ap=0.0, ap50=0.0, ap75=0.0)  # no detection: zero precision at every threshold
    return {"coarse": coarse}


def evaluate_instances(
    spec: TaskSpec,
    model: str | os.PathLike | None = None,
    adapter: str | os.PathLike | None = None,
    *,
    data_root: str | os.PathLike = "playground/data",
    split: str = "val",
    limit: int | None = None,
    out: str | os.PathLike | None = None,
    load: Any = None,
    decoding: Any = None,
    segmenter: Any = None,
    device: Any = None,
    progress: bool = True,
    score_instances: bool = True,
) -> dict:
    """Evaluate ``eval panoptic`` / ``eval instance`` on a COCO split (single process, resumable).

    Returns:
        The scores written to ``out/scores.json`` (``coarse`` metrics as fractions, ``samples``, ...).
    """
    from tqdm.auto import tqdm

    from text4seg.evaluation.runner import _build_segmenter
    from text4seg.evaluation.scoring import markdown_table
    from text4seg.images import load_image

    root = Path(data_root)
    out = Path(out) if out is not None else Path("runs") / "eval" / f"{spec.name}_{spec.default_dataset}_{split}"
    samples, category_ids, labels, isthing = _samples(spec, root, split)
    settings = {"task": spec.name, "dataset": spec.default_dataset, "split": split, "data_root": str(root),
                "model": None if model is None else str(model), "adapter": None if adapter is None else str(adapter),
                "decoding": None if segmenter is not None or decoding is None else decoding.decoding,
                "limit": None if limit is None else int(limit), "score_instances": score_instances}
    out.mkdir(parents=True, exist_ok=True)
    check_settings(out, settings)
    write_json_atomic(out / RUN_FILE, settings)
    done = completed_records(out)
    if segmenter is None:
        from text4seg.options import DecodingOptions, LoadOptions

        segmenter = _build_segmenter(model, adapter, load or LoadOptions(), decoding or DecodingOptions(), device)
    records: list[dict] = []
    log = SampleLog(out / SAMPLES_FILE)
    try:
        for index, sample in enumerate(tqdm(samples, desc=f"eval {spec.name}", unit="image", disable=not progress)):
            if limit is not None and index >= limit:
                break
            if index in done:
                records.append(done[index])
                continue
            started = time.perf_counter()
            image = load_image(root / sample.image)
            result = segmenter.segment(image, classes=labels, instances=True, score_instances=score_instances)
            if tuple(result.mask.shape) != (sample.height, sample.width):
                raise ValueError(f"{sample.image}: the image is {tuple(result.mask.shape)} (height, width), its "
                                 f"annotation {(sample.height, sample.width)}")
            record = {"index": index, "id": sample.id, "image": sample.image, "image_id": sample.image_id,
                      "text": result.text, "repairs": list(result.repairs)}
            if spec.kind == "panoptic":
                record.update(_panoptic_record(sample, result, category_ids))
            else:
                record.update(_instance_record(result, category_ids))
            record["seconds"] = time.perf_counter() - started
            log.append(record)
            records.append(record)
    finally:
        log.close()
    records = [r for r in read_records(out / SAMPLES_FILE) if limit is None or int(r["index"]) < limit]
    records = list({int(r["index"]): r for r in records}.values())
    records.sort(key=lambda r: int(r["index"]))
    if spec.kind == "panoptic":
        metrics = panoptic_scores(records, isthing, dict(zip(category_ids, labels)))
    else:
        from text4seg.datasets.coco_panoptic import instances_path

        metrics = instance_scores(records, instances_path(root, split))
    scores = {"task": spec.name, "dataset": spec.default_dataset, "split": split, "samples": len(records),
              "images": len(records), "repaired_samples": sum(bool(r["repairs"]) for r in records),
              "repairs": sum(len(r["repairs"]) for r in records),
              "seconds": sum(float(r.get("seconds") or 0.0) for r in records), **metrics, "settings": settings}
    write_json_atomic(out / "scores.json", scores)
    write_text_atomic(out / "scores.md", markdown_table(scores) + "\n")
    return scores
