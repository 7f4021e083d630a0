"""Text4SegConfig: how a model speaks descriptors, stored as ``text4seg_config.json`` beside its weights.

Every model, adapter and checkpoint directory written by text4seg carries this file; training writes it and
inference reads it, so the grid size, descriptor form, image preprocessing and prompt wording used at inference
are exactly those the model was trained with (never guessed from a folder name).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from text4seg.descriptors import BACKGROUND, parse_grid_size, sanitize_label
from text4seg.prompts import REFERRING_QUESTIONS

__all__ = ["CONFIG_NAME", "Text4SegConfig", "DESCRIPTOR_FORMS", "RESIZE_POLICIES", "IMAGE_POSITIONS", "RESAMPLES"]

logger = logging.getLogger(__name__)

CONFIG_NAME = "text4seg_config.json"
DESCRIPTOR_FORMS = ("rle", "plain")
# "stretch": the image is resized to ``image_size`` ignoring its aspect ratio (reference behaviour), so the
# descriptor grid covers the whole image. "none": handed to the processor unchanged (dynamic-resolution models
# whose processor keeps the whole image, e.g. Qwen2-VL).
RESIZE_POLICIES = ("stretch", "none")
IMAGE_POSITIONS = ("before", "after")
# PIL resampling filter of the stretch: bicubic (LLaVA-1.5 / ms-swift), bilinear (the Text4Seg LLaVA codebase)
RESAMPLES = ("bicubic", "bilinear")


@dataclass
class Text4SegConfig:
    """Descriptor grammar, image preprocessing and prompt format of one model.

    Attributes:
        grid: descriptor grid ``(H, W)`` (rows, columns), each >= 1. Accepts ``16``, ``"24x32"`` or a pair.
        descriptor_form: ``"rle"`` (row-wise run-length encoding, the reference format) or ``"plain"``
            (one label per cell).
        background: label of background cells (``"others"``).
        image_size: vision tower input ``(H, W)`` in pixels; None = the processor's own size.
        resize: how images reach ``image_size``: ``"stretch"`` (aspect ratio not kept, the reference) or
            ``"none"`` (the processor decides).
        question_template: referring question; contains ``"{expression}"`` exactly once.
        image_position: ``"before"`` (image first in the user turn) or ``"after"`` (question text first).
        fg_label: foreground label of referring answers: ``"sentence"`` = the expression itself (reference), or
            a fixed word such as ``"target"``.
        semantic_template: question for semantic prompts, containing ``"{classes}"``; None = the evaluation
            template of :mod:`text4seg.prompts`.
        resample: PIL filter of the stretch, ``"bicubic"`` or ``"bilinear"``.
        profile: name of the inference profile a converted checkpoint reproduces (``"reference"``: the
            Text4Seg LLaVA code; ``"ms-swift"``), None for models trained here. ``"reference"`` also removes
            commas from referring expressions and keeps the vision tower in fp32 when loaded in half precision.
    """

    grid: tuple[int, int] = (16, 16)
    descriptor_form: str = "rle"
    background: str = BACKGROUND
    image_size: tuple[int, int] | None = None
    resize: str = "stretch"
    question_template: str = REFERRING_QUESTIONS[0]
    image_position: str = "before"
    fg_label: str = "sentence"
    semantic_template: str | None = None
    resample: str = "bicubic"
    profile: str | None = None

    def __post_init__(self) -> None:
        try:
            self.grid = parse_grid_size(self.grid)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{CONFIG_NAME}: grid {self.grid!r}: {err}") from None
        if self.image_size is not None:
            try:
                self.image_size = parse_grid_size(self.image_size)
            except (ValueError, TypeError) as err:
                raise ValueError(f"{CONFIG_NAME}: image_size {self.image_size!r}: {err}") from None
        if self.descriptor_form not in DESCRIPTOR_FORMS:
            raise ValueError(
                f"{CONFIG_NAME}: descriptor_form {self.descriptor_form!r}: expected one of {DESCRIPTOR_FORMS}"
            )
        if self.resize not in RESIZE_POLICIES:
            raise ValueError(f"{CONFIG_NAME}: resize {self.resize!r}: expected one of {RESIZE_POLICIES}")
        if self.resample not in RESAMPLES:
            raise ValueError(f"{CONFIG_NAME}: resample {self.resample!r}: expected one of {RESAMPLES}")
        if self.image_position not in IMAGE_POSITIONS:
            raise ValueError(
                f"{CONFIG_NAME}: image_position {self.image_position!r}: expected one of {IMAGE_POSITIONS}"
            )
        for name in ("background", "fg_label"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or sanitize_label(value) != value:
                raise ValueError(
                    f"{CONFIG_NAME}: {name} {value!r}: expected a non-empty label without '|', '*', newlines "
                    "or surrounding spaces"
                )
        if self.fg_label == self.background:
            raise ValueError(f"{CONFIG_NAME}: fg_label {self.fg_label!r} equals the background label")
        _check_template("question_template", self.question_template, "{expression}")
        if self.semantic_template is not None:
            _check_template("semantic_template", self.semantic_template, "{classes}")

    @property
    def height(self) -> int:
        """Grid rows H."""
        return self.grid[0]

    @property
    def width(self) -> int:
        """Grid columns W."""
        return self.grid[1]

    def to_dict(self) -> dict:
        """JSON-able dict (tuples as lists)."""
        out = asdict(self)
        out["grid"] = list(self.grid)
        out["image_size"] = None if self.image_size is None else list(self.image_size)
        return out

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``directory/text4seg_config.json`` atomically (temp file + rename); creates ``directory``.

        Returns:
            The path written.
        """
        from text4seg.io import write_json_atomic

        return write_json_atomic(Path(directory) / CONFIG_NAME, self.to_dict())

    @classmethod
    def from_dict(cls, data: dict, source: str = CONFIG_NAME) -> Text4SegConfig:
        """Build from a dict; unknown keys are ignored with a warning (files from newer versions)."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            logger.warning("%s: ignoring unknown keys %s", source, unknown)
        kwargs = {k: v for k, v in data.items() if k in known}
        for key in ("grid", "image_size"):
            if isinstance(kwargs.get(key), list):
                kwargs[key] = tuple(kwargs[key])
        try:
            return cls(**kwargs)
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Text4SegConfig:
        """Read ``directory/text4seg_config.json`` (or the file itself when given a file path).

        Raises:
            FileNotFoundError: no such file.
            ValueError: invalid JSON or field values (naming the file).
        """
        path = Path(directory)
        if path.is_dir():
            path = path / CONFIG_NAME
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no {CONFIG_NAME} (not a text4seg model, adapter or checkpoint dir)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: invalid JSON: {err}") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def exists(cls, directory: str | os.PathLike) -> bool:
        """True when ``directory`` holds a ``text4seg_config.json``."""
        return (Path(directory) / CONFIG_NAME).is_file()


def _check_template(name: str, template: object, field_name: str) -> None:
    if not isinstance(template, str) or template.count(field_name) != 1:
        raise ValueError(f"{CONFIG_NAME}: {name} {template!r}: must contain {field_name} exactly once")
    try:
        template.format(**{field_name.strip("{}"): "x"})
    except (KeyError, IndexError, ValueError) as err:
        raise ValueError(
            f"{CONFIG_NAME}: {name} {template!r}: not a format string with only {field_name} ({err})"
        ) from None
