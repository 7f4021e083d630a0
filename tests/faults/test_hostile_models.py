"""Broken model directories: each refused with one message naming the directory or file, nothing executed."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from text4seg.modeling import load_model


class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def edit_config(path, **changes):
    config = json.loads((path / "text4seg_config.json").read_text())
    config.update(changes)
    (path / "text4seg_config.json").write_text(json.dumps(config))


@pytest.fixture
def model_dir(copy_model_dir):
    return copy_model_dir()


def test_dir_without_weights(model_dir):
    (model_dir / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=rf"^model {model_dir}: Error no file named model.safetensors, or "
                       rf"pytorch_model.bin, found in directory {model_dir}\.$"):
        load_model(model_dir, device="cpu")


@pytest.mark.parametrize("changes,message", [
    ({"grid": "big"}, "grid 'big': grid size 'big': expected N, 'N', 'HxW' or (H, W) with positive integers"),
    ({"descriptor_form": "zip"}, "descriptor_form 'zip': expected one of ('rle', 'plain')"),
])
def test_text4seg_config_with_wrong_values(model_dir, changes, message):
    edit_config(model_dir, **changes)
    path = model_dir / "text4seg_config.json"
    with pytest.raises(ValueError) as info:
        load_model(model_dir, device="cpu")
    assert str(info.value) == f"{path}: text4seg_config.json: {message}"


def test_text4seg_config_not_json(model_dir):
    (model_dir / "text4seg_config.json").write_text("{")
    with pytest.raises(ValueError, match=r"text4seg_config.json: invalid JSON: Expecting property name"):
        load_model(model_dir, device="cpu")


def test_bin_weights_with_code_are_refused_and_nothing_runs(model_dir, tmp_path, monkeypatch):
    import torch
    from safetensors.torch import load_file

    monkeypatch.chdir(tmp_path)
    weights = load_file(str(model_dir / "model.safetensors"))
    (model_dir / "model.safetensors").unlink()
    torch.save({**weights, "x": Evil()}, model_dir / "pytorch_model.bin")
    with pytest.raises(ValueError) as info:
        load_model(model_dir, device="cpu")
    assert str(info.value) == (f"model {model_dir}: its .bin weights hold objects other than plain tensors, refused "
                               "(torch.load(weights_only=True): Trying to load unsupported GLOBAL posix.system whose "
                               "module posix is blocked.); use safetensors weights from a trusted source")
    assert not (tmp_path / "pwned").exists()
    shutil.rmtree(model_dir)
