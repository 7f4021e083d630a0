"""Sample records produced by every dataset reader: one referring target or one semantic label map."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ReferringSample", "SemanticSample"]


@dataclass
class ReferringSample:
    """One referring target (a ref): an image, the sentences that describe it, and its mask.

    Attributes:
        id: unique within the split, e.g. ``"refcoco_unc_val_<ref_id>"``.
        image: image path relative to the data root, e.g.
            ``"refer_seg/images/coco_2014/train2014/COCO_train2014_000000000009.jpg"``.
        height, width: image size in pixels (from the annotations; the image is not decoded).
        expressions: the sentences of this ref (at least one).
        mask: ``(height, width)`` bool, True on the target; all False for no-target refs.
        no_target: True for gRefCOCO refs that describe nothing in the image.
        ignore: ``(height, width)`` bool pixels excluded from scoring (ReasonSeg), or None.
        is_sentence: ReasonSeg long-sentence query flag, None elsewhere.
        extra: dataset-specific fields (ref ids, annotation ids, shape attributes, ...), JSON-able.
        instance_masks: one ``(height, width)`` bool mask per target, in annotation order, when the reader
            was asked for them (gRefCOCO ``instances=True``); None otherwise.
    """

    id: str
    image: str
    height: int
    width: int
    expressions: list[str]
    mask: np.ndarray
    no_target: bool = False
    ignore: np.ndarray | None = None
    is_sentence: bool | None = None
    extra: dict = field(default_factory=dict)
    instance_masks: list[np.ndarray] | None = None


@dataclass
class SemanticSample:
    """One image with a dense class map.

    Attributes:
        id: unique within the split.
        image: image path relative to the data root.
        height, width: image size in pixels.
        label_map: ``(height, width)`` int64 class ids in ``[0, len(class_names))``; 255 = ignore.
        class_names: class name per id (index == class id; id 0 is ``"others"`` where the dataset has a
            background/unlabelled class folded into it).
        crop_box: ``(left, top, right, bottom)`` crop in pixels when the sample is a crop, else None.
    """

    id: str
    image: str
    height: int
    width: int
    label_map: np.ndarray
    class_names: list[str]
    crop_box: tuple[int, int, int, int] | None = None
