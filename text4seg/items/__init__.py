"""Training-JSON items from dataset samples (no torch): referring and semantic conversations, the streaming
atomic writer and the build summary. ``python -m data_builders`` and ``text4seg quickstart`` both build with it.
"""

from text4seg.items.output import BuildSummary, write_items
from text4seg.items.referring import (
    DOWNSAMPLE_MODES,
    EXPRESSION_CHOICES,
    referring_items,
    safe_text,
    write_referring,
)
from text4seg.items.semantic import semantic_items

__all__ = [
    "BuildSummary",
    "write_items",
    "referring_items",
    "write_referring",
    "semantic_items",
    "safe_text",
    "DOWNSAMPLE_MODES",
    "EXPRESSION_CHOICES",
]
