"""``python -m data_builders`` and ``text4seg merge`` killed mid-write: the output path holds the previous
complete file or folder (or nothing), never a partial one; the next run sweeps the killed writer's temp file."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from faults_common import kill_at_line, kill_when, run, start


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_data_builder_killed_mid_write_keeps_the_previous_json(tmp_path):
    root, out = tmp_path / "data", tmp_path / "train.json"
    args = ["synthetic", "--data-root", str(root), "--out", str(out), "--num-images", "150", "--image-size", "32",
            "--quiet"]
    first = run(*args, module="data_builders")
    assert first.returncode == 0, first.stderr
    previous = out.read_bytes()
    rng = random.Random(16)
    kills = 0

    def writing() -> bool:  # the builder has opened its temp sibling of the output: it is mid-write
        return any(p.name.startswith(f".{out.name}.") for p in tmp_path.iterdir())

    for _ in range(5):
        proc = start(*args, "--seed", "1", "--repeat", "60", module="data_builders")
        if kill_when(proc, writing, rng.uniform(0.0, 0.05)):
            kills += 1
            assert out.read_bytes() == previous  # the earlier complete file, byte for byte
        else:
            proc.communicate()
            break
    assert kills >= 1
    done = run(*args, "--seed", "1", "--repeat", "60", module="data_builders")
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() != previous and out.read_bytes().endswith(b"]\n")
    assert hidden(tmp_path) == []  # the killed writers' temp files are gone


@pytest.mark.slow
def test_merge_killed_mid_save_keeps_the_previous_model(tmp_path, tiny_model_dir, tiny_data):
    from text4seg.training import train

    adapter = train(model=str(tiny_model_dir), data=[str(tiny_data.json_path)], out=tmp_path / "adapter",
                    data_root=tiny_data.root, max_steps=1, batch_size=2, lr=1e-2, save_steps=100, precision="fp32",
                    progress=False).output_dir
    out = tmp_path / "merged"
    from text4seg.cli import main

    assert main(["merge", "--adapter", str(adapter), "--out", str(out)]) == 0
    complete = snapshot(out)
    assert "model.safetensors" in complete and "text4seg_config.json" in complete
    proc = start("merge-slow-save", "--adapter", str(adapter), "--out", str(out))
    kill_at_line(proc, "SAVING")  # the new weights are written in the hidden sibling, the rest is not
    assert snapshot(out) == complete
    assert len(hidden(tmp_path)) == 1  # the killed writer's hidden folder, never read as a model
    assert main(["merge", "--adapter", str(adapter), "--out", str(out)]) == 0
    assert snapshot(out) == complete and hidden(tmp_path) == []
