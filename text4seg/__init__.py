"""text4seg: text-as-mask segmentation with multimodal LLMs.

``import text4seg`` stays light: torch-backed names (``Segmenter``, ``train``, ...) are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

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
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'text4seg' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
