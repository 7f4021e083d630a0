"""gRefCOCO (generalized referring expressions: one, several or no target per expression).

Layout under the data root::

    refer_seg/grefcoco/grefs(unc).json    list of refs: ref_id, image_id, ann_id (list; [-1] = no target),
                                          split, sentences[...], no_target
    refer_seg/grefcoco/instances.json     COCO-style images (with height/width), annotations
    refer_seg/images/coco_2014/train2014/ images

Multi-target refs give the union of their annotations' masks (polygons and RLE alike); no-target refs give an
all-False mask with ``no_target=True``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from text4seg.datasets.coco_masks import SkipLog, read_json, skip_or_raise, union_masks
from text4seg.datasets.refer import load_instances, ref_sentences
from text4seg.datasets.samples import ReferringSample

__all__ = ["read_grefcoco", "count_grefcoco", "grefs_path"]

_LAYOUT = "gRefCOCO layout: <root>/refer_seg/grefcoco/{grefs(<split_by>).json, instances.json}"
_IMAGE_DIR = "refer_seg/images/coco_2014/train2014"


def grefs_path(root: str | os.PathLike, split_by: str = "unc") -> Path:
    """``<root>/refer_seg/grefcoco/grefs(<split_by>).json``."""
    return Path(root) / "refer_seg" / "grefcoco" / f"grefs({split_by}).json"


def _load_grefs(path: Path) -> list[dict]:
    refs = read_json(path, "grefs", _LAYOUT, list)
    if not all(isinstance(r, dict) for r in refs):
        raise ValueError(f"{path}: expected a list of ref objects")
    return refs


def _ann_ids(ref: dict) -> list:
    ann_id = ref.get("ann_id")
    if ann_id is None:
        return []
    return list(ann_id) if isinstance(ann_id, (list, tuple)) else [ann_id]


def read_grefcoco(
    root: str | os.PathLike,
    split: str,
    split_by: str = "unc",
    strict: bool = False,
    skips: SkipLog | None = None,
    instances: bool = False,
) -> Iterator[ReferringSample]:
    """Iterate the refs of a gRefCOCO split lazily, grouped by image.

    Args:
        root: data root holding ``refer_seg/``.
        split: ``"train"``, ``"val"``, ``"testA"`` or ``"testB"``.
        split_by: only ``"unc"`` is published.
        strict: raise on a malformed ref/annotation instead of skipping it.
        skips: where skipped refs are counted by reason.
        instances: also decode each target on its own into ``instance_masks`` (instance-labelled answers).

    Yields:
        One :class:`ReferringSample` per ref; ``mask`` is the ``(height, width)`` bool union of its targets,
        all False with ``no_target=True`` for no-target refs. ``extra`` holds ``ref_id``, ``ann_ids``,
        ``image_id``.
    """
    root = Path(root)
    refs_file = grefs_path(root, split_by)
    refs = []
    for i, ref in enumerate(_load_grefs(refs_file)):
        for key in ("ref_id", "image_id", "split"):
            if key not in ref:
                raise ValueError(f"{refs_file}: ref #{i} has no {key!r} field")
        if ref["split"] == split:
            refs.append(ref)
    refs.sort(key=lambda r: (r["image_id"], r["ref_id"]))
    coco = load_instances(root / "refer_seg" / "grefcoco" / "instances.json", _LAYOUT)
    images = {img["id"]: img for img in coco["images"] if isinstance(img, dict) and "id" in img}
    anns = {ann["id"]: ann for ann in coco["annotations"] if isinstance(ann, dict) and "id" in ann}
    del coco
    for ref in refs:
        sample_id = f"grefcoco_{split_by}_{split}_{ref['ref_id']}"
        image = images.get(ref["image_id"])
        sentences = ref_sentences(ref)
        ann_ids = [a for a in _ann_ids(ref) if a != -1]
        no_target = bool(ref.get("no_target")) or not ann_ids
        problem = None
        if image is None:
            problem = "image id missing from instances.json"
        elif not sentences:
            problem = "ref without sentences"
        elif not all(isinstance(image.get(k), int) and image.get(k) > 0 for k in ("height", "width")):
            problem = "image without a valid height/width"
        elif "file_name" not in image:
            problem = "image without file_name"
        elif not no_target and any(a not in anns for a in ann_ids):
            problem = "annotation id missing from instances.json"
        mask = None
        parts = None
        if problem is None:
            height, width = int(image["height"]), int(image["width"])
            if no_target:
                mask = np.zeros((height, width), dtype=bool)
            else:
                try:
                    mask = union_masks([anns[a].get("segmentation") for a in ann_ids], height, width)
                    if instances:
                        parts = [union_masks([anns[a].get("segmentation")], height, width) for a in ann_ids]
                except ValueError as err:
                    problem = f"bad segmentation ({err})"
        if problem is not None:
            skip_or_raise(problem, f"{sample_id} (ref_id {ref['ref_id']})", str(refs_file), strict, skips)
            continue
        yield ReferringSample(
            id=sample_id,
            image=f"{_IMAGE_DIR}/{image['file_name']}",
            height=height,
            width=width,
            expressions=sentences,
            mask=mask,
            no_target=no_target,
            extra={"ref_id": ref["ref_id"], "ann_ids": ann_ids, "image_id": ref["image_id"]},
            instance_masks=parts if instances else None,
        )


def count_grefcoco(root: str | os.PathLike, split: str, split_by: str = "unc", **_: object) -> int:
    """Number of refs of a split (skipped refs are not subtracted)."""
    return sum(1 for ref in _load_grefs(grefs_path(root, split_by)) if ref.get("split") == split)
