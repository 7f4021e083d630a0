"""Training-data builders: dataset readers (:mod:`text4seg.datasets`) → Text4Seg conversation JSON.

One command, one builder per dataset family::

    python -m data_builders NAME --data-root playground/data --out FILE.json [--split train] [--grid N] [--seed 0] ...

Every builder module exposes ``build(...) -> BuildSummary`` (the library function that owns all defaults) and
``configure(parser)`` (its command-line options, all defaulting to None). Nothing here imports torch; the
dependency runs one way: ``data_builders`` imports ``text4seg``, never the reverse.
"""

from __future__ import annotations

# builder name -> (module, fixed keyword arguments of its build())
BUILDERS: dict[str, tuple[str, dict]] = {
    "refcoco": ("data_builders.refcoco", {}),
    "grefcoco": ("data_builders.grefcoco", {}),
    "cocostuff": ("data_builders.semantic", {"dataset": "cocostuff"}),
    "ade20k": ("data_builders.semantic", {"dataset": "ade20k"}),
    "pascal_context": ("data_builders.semantic", {"dataset": "pascal_context"}),
    "pascal_voc": ("data_builders.semantic", {"dataset": "pascal_voc"}),
    "coco_panoptic": ("data_builders.coco_panoptic", {}),
    "paco_lvis": ("data_builders.paco_lvis", {}),
    "pascal_part": ("data_builders.pascal_part", {}),
    "gcg": ("data_builders.gcg", {}),
    "reasonseg": ("data_builders.reasonseg", {}),
    "synthetic": ("data_builders.synthetic", {}),
    "mix": ("data_builders.mix", {}),
    "ref_youtube_vos": ("data_builders.video", {"dataset": "ref-youtube-vos"}),
    "ref_davis17": ("data_builders.video", {"dataset": "ref-davis17"}),
    "mevis": ("data_builders.video", {"dataset": "mevis"}),
    "revos": ("data_builders.video", {"dataset": "revos"}),
    "synthetic_video": ("data_builders.video", {"dataset": "synthetic-video"}),
}

__all__ = ["BUILDERS"]
