"""text4seg: text-as-mask segmentation with multimodal LLMs.

``import text4seg`` stays light: torch-backed names (``Segmenter``, ``train``, ...) are imported on first use.
"""

from __future__ import annotations

from text4seg._lazy import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it; resolved lazily so that data building and metrics need no torch.
_LAZY = {
    "encode_descriptor": "text4seg.descriptors",
    "decode_descriptor": "text4seg.descriptors",
    "DecodedGrid": "text4seg.descriptors",
    "mask_to_grid": "text4seg.descriptors",
    "grid_to_mask": "text4seg.descriptors",
    "referring_mask": "text4seg.descriptors",
    "LabelMap": "text4seg.descriptors",
    "Instance": "text4seg.descriptors",
    "instances_from_grid": "text4seg.descriptors",
    "GroundedAnswer": "text4seg.grounded",
    "GroundedPhrase": "text4seg.grounded",
    "decode_grounded": "text4seg.grounded",
    "PanopticMeter": "text4seg.panoptic_metrics",
    "ReferSegMeter": "text4seg.metrics",
    "SemanticSegMeter": "text4seg.metrics",
    "RECMeter": "text4seg.metrics",
    "GroupedMeter": "text4seg.metrics",
    "JFMeter": "text4seg.metrics",
    "jf_score": "text4seg.metrics",
    "load_image": "text4seg.images",
    "SamRefiner": "text4seg.refine",
    "Segmenter": "text4seg.segmenter",
    "SegmentationResult": "text4seg.segmenter",
    "Text4SegConfig": "text4seg.config",
    "LoadOptions": "text4seg.options",
    "DecodingOptions": "text4seg.options",
    "TrainConfig": "text4seg.training.config",
    "train": "text4seg.training.recipe",
    "evaluate": "text4seg.evaluation.runner",
    "TINY_PRESET": "text4seg.presets",
}

__getattr__, __dir__, _exported = lazy_exports(__name__, _LAZY)
__all__ = [*_exported, "__version__"]
