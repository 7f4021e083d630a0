"""Mask refinement with SAM (extra ``sam``): numpy prompt geometry (:mod:`.prompts`) and the SAM wrapper
(:mod:`.sam`). Names are imported on first use, so ``import text4seg.refine`` needs neither torch nor
segment-anything.

Example::

    from text4seg.refine import SamRefiner, RefineOptions

    refiner = SamRefiner.from_checkpoint("sam_vit_h_4b8939.pth", "vit_h")
    refiner.set_image("photo.jpg")
    fine = refiner.refine(coarse_mask)      # HxW bool -> RefinedMask(mask, score, points, ...)
"""

from __future__ import annotations

from text4seg._lazy import lazy_exports

_LAZY = {
    "RefineOptions": "prompts",
    "as_coarse_mask": "prompts",
    "connected_components": "prompts",
    "mask_box": "prompts",
    "mask_prompt_logits": "prompts",
    "point_prompts": "prompts",
    "preprocess_shape": "prompts",
    "squared_distance_transform": "prompts",
    "RefinedLabels": "sam",
    "RefinedMask": "sam",
    "SamRefiner": "sam",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _LAZY)
