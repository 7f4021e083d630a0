"""Shared fixtures: a tiny LLaVA model directory and a tiny synthetic referring set, each built once per session.

``tiny_model_dir``: an untrained tiny LLaVA saved with ``save_pretrained`` (8 x 8 descriptor grid = 8 x 8 vision
patches on 32 x 32 px, plain descriptors, fg label ``"target"``, question ``"Segment {expression}."`` with the
image after the text). Treat it as read-only; copy it (``copy_model_dir``) before writing into it.

``tiny_data``: 6 synthetic 32 px images under a data root plus a training JSON in the tiny model's format.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

TINY_GRID = 8
TINY_QUESTION = "Segment {expression}."
TINY_ANSWER = "Here is the mask."
TINY_TEXTS = (
    "Segment the red circle.",
    "Segment the blue square left of the green triangle.",
    "Segment the yellow star on the right.",
    "Here is the mask.",
    "Please segment the white diamond in this image.",
)
# Small enough that a training step takes well under a second on one core.
TINY_DIMS = dict(
    grid=TINY_GRID,
    patch_size=4,
    vision_hidden=32,
    vision_layers=1,
    text_hidden=64,
    text_layers=2,
    heads=2,
    mlp_ratio=2,
    vocab_size=400,
    max_positions=512,
)


@dataclass
class TinyData:
    root: Path  # data root (image paths in the JSON are relative to it)
    json_path: Path  # training JSON (one item per expression)
    samples: list  # ReferringSample objects of the split
    items: int


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from text4seg.modeling import build_tiny_model

    out = tmp_path_factory.mktemp("tiny_model")
    return build_tiny_model(
        out,
        texts=list(TINY_TEXTS),
        labels=["target"],
        descriptor_form="plain",
        image_position="after",
        question_template=TINY_QUESTION,
        fg_label="target",
        seed=0,
        **TINY_DIMS,
    )


@pytest.fixture(scope="session")
def tiny_gcg(tiny_model_dir):
    """The conftest tiny model in float64, its output head given a bias towards '<' and 'p' so that greedy
    answers open phrases (a random model alone rarely writes one)."""
    import torch

    from text4seg.modeling import load_model

    loaded = load_model(tiny_model_dir, dtype="float32", device="cpu")
    model = loaded.model.to(torch.float64)
    head = model.get_output_embeddings()
    biased = torch.nn.Linear(head.in_features, head.out_features, bias=True, dtype=torch.float64)
    tok = loaded.processor.tokenizer
    with torch.no_grad():
        biased.weight.copy_(head.weight)
        biased.bias.zero_()
        biased.bias[tok.convert_tokens_to_ids("<")] = 0.6
        biased.bias[tok.convert_tokens_to_ids("p")] = 0.4
    model.lm_head = biased
    return loaded


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> TinyData:
    from text4seg.datasets.synthetic import generate_synthetic
    from text4seg.items import BuildSummary, referring_items, write_items

    root = tmp_path_factory.mktemp("tiny_data")
    samples = generate_synthetic(root, "train", num_images=6, image_size=32, seed=0)
    json_path = root / "train.json"
    summary = BuildSummary(name="tiny")
    items = referring_items(samples, summary, grid=TINY_GRID, rle=False, fg_label="target", rounds=1, repeat=1,
                            question_template=TINY_QUESTION, answer_sentence=TINY_ANSWER, expressions="first",
                            shuffle=True)
    n = write_items(json_path, items, summary)
    return TinyData(root=root, json_path=json_path, samples=samples, items=n)


@pytest.fixture
def copy_model_dir(tmp_path, tiny_model_dir):
    """Returns a function giving a private copy of the tiny model directory."""

    def copy(name: str = "model") -> Path:
        dst = tmp_path / name
        shutil.copytree(tiny_model_dir, dst)
        return dst

    return copy


# ---- tiny video benchmarks in their real layouts (built by video_fixtures)


@pytest.fixture
def ytvos_root(tmp_path) -> Path:
    from video_fixtures import make_ytvos

    make_ytvos(tmp_path)
    return tmp_path


@pytest.fixture
def mevis_root(tmp_path) -> Path:
    from video_fixtures import make_mevis

    make_mevis(tmp_path)
    return tmp_path


@pytest.fixture
def revos_root(tmp_path) -> Path:
    from video_fixtures import make_revos

    make_revos(tmp_path)
    return tmp_path
