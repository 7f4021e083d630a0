"""``text4seg train`` under SIGKILL: during a checkpoint save and during a step; ``--resume`` takes the last
complete checkpoint and the resumed run ends with exactly the weights of an uninterrupted run (CPU, fp32,
fixed seed)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from faults_common import kill_at_line, kill_when, run, start


def train_args(model: Path, data, out: Path, *extra: str) -> list[str]:
    return ["--model", str(model), "--data", str(data.json_path), "--data-root", str(data.root), "--out", str(out),
            "--full", "--max-steps", "8", "--batch-size", "2", "--lr", "1e-3", "--save-steps", "2",
            "--logging-steps", "1", "--precision", "fp32", "--seed", "3", "--curriculum-grid", "none", *extra]


def weights(out: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(out / "model.safetensors"))


def complete(path: Path) -> bool:
    state = path / "trainer_state.json"
    try:
        return json.loads(state.read_text())["global_step"] == int(path.name.split("-")[1])
    except (OSError, ValueError, KeyError):
        return False


@pytest.mark.slow
def test_train_killed_while_saving_and_during_a_step_resumes_exactly(tmp_path, tiny_model_dir, tiny_data):
    import torch

    from text4seg.cli import main
    from text4seg.training.recipe import checkpoint_complete, last_complete_checkpoint

    # the uninterrupted run, in this process (the same command; saves a process start)
    assert main(["train", *train_args(tiny_model_dir, tiny_data, tmp_path / "straight")]) == 0

    out = tmp_path / "cut"
    # 1. killed while checkpoint-4 is half written (weights on disk, optimizer and trainer state not yet)
    proc = start("train-slow-save", "4", *train_args(tiny_model_dir, tiny_data, out))
    assert kill_at_line(proc, "SAVING").endswith("checkpoint-4")
    half = out / "checkpoint-4"
    assert half.is_dir() and (half / "model.safetensors").is_file() and not (half / "trainer_state.json").exists()
    assert not checkpoint_complete(half) and checkpoint_complete(out / "checkpoint-2")
    assert last_complete_checkpoint(out) == out / "checkpoint-2"  # transformers' get_last_checkpoint: checkpoint-4

    # 2. resumed from checkpoint-2, killed at a random moment of the steps after checkpoint-4 is complete again
    delay = random.Random(16).uniform(0.0, 0.5)
    proc = start("train", *train_args(tiny_model_dir, tiny_data, out, "--resume"))
    killed = kill_when(proc, lambda: complete(out / "checkpoint-4"), delay, timeout=300)
    if not killed:
        assert proc.wait() == 0
    # 3. resumed again: from checkpoint-4 (or -6), to the end
    resumed = run("train", *train_args(tiny_model_dir, tiny_data, out, "--resume"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = weights(tmp_path / "straight"), weights(out)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_names_a_half_written_checkpoint(tmp_path):
    from text4seg.training.recipe import _resume_checkpoint, last_complete_checkpoint

    (tmp_path / "checkpoint-2").mkdir()
    (tmp_path / "checkpoint-2" / "model.safetensors").write_bytes(b"x")
    (tmp_path / "checkpoint-2" / "trainer_state.json").write_text('{"global_step": 2}')
    (tmp_path / "checkpoint-4").mkdir()
    (tmp_path / "checkpoint-4" / "model.safetensors").write_bytes(b"x")
    (tmp_path / "checkpoint-4" / "trainer_state.json").write_text('{"global_st')  # cut off mid-write
    (tmp_path / "checkpoint-6").mkdir()  # only the folder
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-2"
    assert _resume_checkpoint(True, tmp_path) == str(tmp_path / "checkpoint-2")
    with pytest.raises(ValueError, match=r"checkpoint-4: not a complete checkpoint \(no valid trainer_state.json"):
        _resume_checkpoint(str(tmp_path / "checkpoint-4"), tmp_path)
