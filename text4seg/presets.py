"""``TINY_PRESET``: the recipe that teaches a tiny model from scratch on CPU (no torch).

Three sections: the synthetic data (the ``python -m data_builders synthetic`` options that rebuild it), the
tiny model's dimensions (:func:`text4seg.modeling.build_tiny_model`) and its :class:`TrainConfig`; each value
that differs from the library default says why. ``text4seg quickstart`` uses all of it; ``text4seg train
--model tiny`` starts from ``TINY_PRESET.train`` (each value still overridable by its flag). Tuning the recipe
means editing this file.
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass, field
from typing import Any

from text4seg.training.config import TrainConfig

__all__ = ["SyntheticSet", "TinyModel", "TinyPreset", "TINY_PRESET", "tiny_train_config"]


@dataclass(frozen=True)
class SyntheticSet:
    """The synthetic referring set (:func:`text4seg.datasets.synthetic.generate_synthetic` + the items)."""

    train_images: int = 2000
    val_images: int = 40
    max_shapes: int = 3  # builder default 4: fewer distractors while the model learns to ground
    twin_rate: float = 0.0  # builder 0.25: twins need relations, beyond a 9-minute model
    distinct_colours: bool = True  # builder False: the colour alone names the shape
    shape_size: tuple[float, float] = (0.3, 0.5)  # builder (0.15, 0.45): shapes big enough for a 16x16 grid
    image_pixels: int = 64  # = grid 16 x patch 4: one patch per descriptor cell
    downsample: str = "nearest"
    fg_label: str = "target"  # builder 'sentence': one fixed label is one token to learn, not a phrase
    question_template: str = "Segment {expression}."  # short and fixed: every prompt the same but the query
    answer_sentence: str = "Here is the mask."  # fixed: every answer starts with the same prefix
    expressions: str = "first"  # one sentence per shape: the model sees each shape once per pass
    shuffle: bool = True  # mix images of different shape counts within a batch

    def builder_options(self, grid: int, descriptor_form: str) -> dict[str, Any]:
        """Keyword arguments of :func:`data_builders.synthetic.build` / :func:`text4seg.items.referring_items`
        (``root``, ``out``, ``split``, ``num_images`` and ``seed`` excluded)."""
        return {
            "image_size": self.image_pixels,
            "max_shapes": self.max_shapes,
            "twin_rate": self.twin_rate,
            "distinct_colours": self.distinct_colours,
            "shape_size": self.shape_size,
            "grid": grid,
            "downsample": self.downsample,
            "rle": descriptor_form == "rle",
            "fg_label": self.fg_label,
            "rounds": 1,
            "repeat": 1,
            "question_template": self.question_template,
            "answer_sentence": self.answer_sentence,
            "expressions": self.expressions,
            "shuffle": self.shuffle,
        }

    def command(self, root: str, out: str, grid: int, descriptor_form: str, seed: int) -> str:
        """The ``python -m data_builders synthetic ...`` line that writes the same training JSON."""
        o = self.builder_options(grid, descriptor_form)
        args = ["python", "-m", "data_builders", "synthetic", "--data-root", root, "--out", out,
                "--num-images", self.train_images, "--image-size", o["image_size"], "--max-shapes", o["max_shapes"],
                "--twin-rate", o["twin_rate"],
                "--distinct-colours" if o["distinct_colours"] else "--no-distinct-colours",
                "--shape-size", ",".join(f"{v:g}" for v in o["shape_size"]), "--grid", grid,
                "--downsample", o["downsample"], "--rle" if o["rle"] else "--no-rle", "--fg-label", o["fg_label"],
                "--rounds", 1, "--repeat", 1, "--question-template", o["question_template"],
                "--answer-sentence", o["answer_sentence"], "--expressions", o["expressions"], "--seed", seed]
        if o["shuffle"]:
            args.append("--shuffle")
        return " ".join(shlex.quote(str(a)) for a in args)


@dataclass(frozen=True)
class TinyModel:
    """Dimensions of the tiny LLaVA (:func:`text4seg.modeling.build_tiny_model`)."""

    grid: int = 16
    patch_size: int = 4
    vision_hidden: int = 64
    vision_layers: int = 2
    text_hidden: int = 128
    text_layers: int = 4
    heads: int = 4
    mlp_ratio: int = 4
    vocab_size: int = 512
    descriptor_form: str = "plain"  # one token per cell (tiny tokenizers): shorter to learn than R-RLE counts
    image_position: str = "after"  # the query comes first, so the image tokens are read knowing it

    def model_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`text4seg.modeling.build_tiny_model`."""
        out = dataclasses.asdict(self)
        out["grid"] = (self.grid, self.grid)
        return out


def tiny_train_config() -> TrainConfig:
    """The training values of the tiny recipe (model, data and output left at their defaults)."""
    return TrainConfig(
        minutes=9.0,  # the quickstart's budget on 2 CPU cores
        time_schedule=True,  # warmup/decay follow the budget: the schedule ends when the minutes do
        epochs=100.0,  # more than the budget allows: time ends training
        batch_size=8,  # default 4: steadier gradients for a from-scratch model
        lr=1e-3,  # default 2e-4 (LoRA on a pretrained model): a from-scratch model needs larger steps
        fg_weight=3.0,  # default 1: foreground cells are few; without weight the model answers all-background
        cell_noise=0.5,  # default 0: breaks the copy-the-cell-above shortcut, so the model reads the image
        curriculum_grid=8,  # default none: an 8x8 stage first grounds the query on 4x shorter sequences
        curriculum_fraction=0.35,  # of the budget on the 8x8 stage
        full=True,  # default LoRA: nothing is pretrained, every weight must learn
        train_vision=True,  # the tiny vision tower is random too
        precision="fp32",  # CPU
    )


@dataclass(frozen=True)
class TinyPreset:
    """The tiny-model recipe: data, model, training, evaluation."""

    data: SyntheticSet = field(default_factory=SyntheticSet)
    model: TinyModel = field(default_factory=TinyModel)
    train: TrainConfig = field(default_factory=tiny_train_config)
    eval_expressions: str = "first"  # the expression each shape was trained with
    eval_batch_size: int = 32

    def replace(self, **changes: Any) -> TinyPreset:
        """A copy with fields changed by name, in whichever section they live (``train_images``, ``grid``,
        ``minutes``, ``eval_batch_size``, ...).

        Raises:
            ValueError: a name no section has.
        """
        sections: dict[str, dict[str, Any]] = {"data": {}, "model": {}, "train": {}, "self": {}}
        train_names = {f.name for f in dataclasses.fields(TrainConfig)}
        load_names = {f.name for f in dataclasses.fields(type(self.train.load))}
        unknown = []
        for name, value in changes.items():
            if name in ("eval_expressions", "eval_batch_size"):
                sections["self"][name] = value
            elif name in {f.name for f in dataclasses.fields(SyntheticSet)}:
                sections["data"][name] = value
            elif name in {f.name for f in dataclasses.fields(TinyModel)}:
                sections["model"][name] = value
            elif name in train_names or name in load_names:
                sections["train"][name] = value
            else:
                unknown.append(name)
        if unknown:
            raise ValueError(f"unknown preset fields {sorted(unknown)}")
        return dataclasses.replace(
            self,
            data=dataclasses.replace(self.data, **sections["data"]),
            model=dataclasses.replace(self.model, **sections["model"]),
            train=self.train.replace(**sections["train"]) if sections["train"] else self.train,
            **sections["self"],
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values of every section (recorded beside the quickstart's scores)."""
        train = {f.name: getattr(self.train, f.name) for f in dataclasses.fields(TrainConfig)
                 if f.name not in ("load", "tiny")}
        return {"data": dataclasses.asdict(self.data), "model": dataclasses.asdict(self.model), "train": train,
                "eval_expressions": self.eval_expressions, "eval_batch_size": self.eval_batch_size}


TINY_PRESET = TinyPreset()
