"""``pascal_part``: Pascal-Part (VLPart's ``vlpart/pascal_part/<split>.json`` + VOC2010 images) → training JSON
with the reference's three question kinds: an object's parts, objects as wholes, named parts of one object.

The recipe is :func:`text4seg.items.parts.pascal_part_items`; the reader :func:`text4seg.datasets.parts.read_parts`.
"""

from __future__ import annotations

from data_builders.paco_lvis import build_parts, configure
from text4seg.items.output import BuildSummary

__all__ = ["build", "configure"]

HELP = "Pascal-Part (VLPart's pascal_part/<split>.json + VOC2010 images) -> JSON with part labels, three kinds"


def build(root: str, out: str, **options: object) -> BuildSummary:
    """Build a Pascal-Part training JSON (see :func:`text4seg.items.parts.pascal_part_items` for the recipe)."""
    return build_parts("pascal_part", root, out, **options)
