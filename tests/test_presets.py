"""The tiny recipe: its sections, routing of overrides, and its synthetic set rebuilt from the command line."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from text4seg.presets import TINY_PRESET, TinyPreset
from text4seg.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def test_replace_routes_fields_to_their_section():
    changed = TINY_PRESET.replace(train_images=10, grid=8, minutes=2.0, device="cpu", eval_batch_size=3)
    assert (changed.data.train_images, changed.model.grid, changed.train.minutes) == (10, 8, 2.0)
    assert changed.train.load.device == "cpu" and changed.eval_batch_size == 3
    assert TINY_PRESET.data.train_images == 2000 and TINY_PRESET.train.minutes == 9.0  # unchanged
    with pytest.raises(ValueError, match="unknown preset fields"):
        TINY_PRESET.replace(colour="red")
    with pytest.raises(ValueError, match="lr"):
        TINY_PRESET.replace(lr=-1.0)


def test_train_section_differs_from_the_defaults_only_where_it_says_why():
    source = (ROOT / "text4seg" / "presets.py").read_text()
    body = source[source.index("def tiny_train_config"):source.index("@dataclass(frozen=True)\nclass TinyPreset")]
    defaults = TrainConfig()
    for name in TrainConfig.__dataclass_fields__:
        if getattr(TINY_PRESET.train, name) != getattr(defaults, name):
            line = next(line for line in body.splitlines() if line.strip().startswith(f"{name}="))
            assert "#" in line, f"{name}: changed without a reason"


def test_quickstart_set_equals_the_data_builders_command(tmp_path):
    from text4seg.quickstart import build_synthetic_json

    preset = TinyPreset().replace(train_images=12, image_pixels=32, grid=8)
    ours = tmp_path / "ours.json"
    assert build_synthetic_json(preset, tmp_path / "a", ours, seed=3) > 0
    command = preset.data.command(str(tmp_path / "b"), str(tmp_path / "theirs.json"), preset.model.grid,
                                  preset.model.descriptor_form, 3)
    argv = shlex.split(command)
    assert argv[:4] == ["python", "-m", "data_builders", "synthetic"]
    subprocess.run([sys.executable, *argv[1:], "--quiet"], check=True, cwd=ROOT, capture_output=True)
    assert ours.read_bytes() == (tmp_path / "theirs.json").read_bytes()
