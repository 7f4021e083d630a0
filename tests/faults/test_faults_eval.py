"""``text4seg eval`` under real faults: SIGKILL at seeded random moments then rerun, two processes on one folder,
a full disk. The model side is a stub generator (fault_driver.py); everything else is the real command."""

from __future__ import annotations

import errno
import json
import os
import random
from pathlib import Path

import pytest
from faults_common import kill_when, line_count, run, start

IMAGES = 12  # synthetic val images; each has one or more expressions (samples)
DELAY = "0.02"  # seconds per generate call in the stub


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    from text4seg.datasets.synthetic import generate_synthetic

    root = tmp_path_factory.mktemp("faults_data")
    generate_synthetic(root, "val", num_images=IMAGES, image_size=32, seed=5)
    return root


def eval_args(root: Path, out: Path, delay: str = DELAY) -> list[str]:
    return ["eval", delay, "synthetic", "--model", "stub", "--data-root", str(root), "--split", "val",
            "--out", str(out)]


@pytest.fixture(scope="module")
def reference(synthetic_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("faults_ref") / "eval"
    done = run(*eval_args(synthetic_root, out, "0"))
    assert done.returncode == 0, done.stderr
    return out


def test_eval_killed_at_random_moments_resumes_to_identical_scores(synthetic_root, reference, tmp_path):
    expected = [json.loads(line)["index"] for line in (reference / "samples.jsonl").read_text().splitlines()]
    total = len(expected)
    assert total >= IMAGES and expected == list(range(total))
    out = tmp_path / "eval"
    rng = random.Random(16)
    kills = 0
    attempts = 0
    while kills < 12 and attempts < 40:
        attempts += 1
        # a kill moment: after K finished records (K random, up to the merge at the end), plus a random fraction
        # of one sample's time; K = total lands in the merge / scores writing
        k = rng.randint(0, total)
        delay = rng.uniform(0.0, 0.03)
        proc = start(*eval_args(synthetic_root, out))
        if kill_when(proc, lambda k=k: line_count(out / "samples.jsonl") >= k, delay):
            kills += 1
            # what a kill leaves: complete lines (at most one partial trailing line), never a wrong one
            data = (out / "samples.jsonl").read_bytes() if (out / "samples.jsonl").exists() else b""
            lines = data.split(b"\n")
            for line in lines[:-1]:
                assert json.loads(line)["index"] < total
            if (out / "scores.json").exists():
                assert (out / "scores.json").read_bytes() == (reference / "scores.json").read_bytes()
        else:
            proc.communicate()
            (out / "scores.json").unlink(missing_ok=True)  # finished before the kill: start over for a new kill
            (out / "samples.jsonl").unlink(missing_ok=True)
    assert kills >= 10
    final = run(*eval_args(synthetic_root, out))
    assert final.returncode == 0, final.stderr
    indices = [json.loads(line)["index"] for line in (out / "samples.jsonl").read_text().splitlines()]
    assert indices == list(range(total))  # every sample exactly once, in order
    assert (out / "scores.json").read_bytes() == (reference / "scores.json").read_bytes()
    assert (out / "scores.md").read_bytes() == (reference / "scores.md").read_bytes()
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


def test_second_eval_on_the_same_out_refuses_and_leaves_the_first_intact(synthetic_root, reference, tmp_path):
    out = tmp_path / "eval"
    gate = tmp_path / "gate"
    first = start(*eval_args(synthetic_root, out, f"gate:{gate}"))  # holds after its first image until the gate
    while line_count(out / "samples.jsonl") < 1:
        assert first.poll() is None, first.stderr.read()
    second = run(*eval_args(synthetic_root, out, "0"))
    assert second.returncode == 1
    lines = second.stderr.strip().splitlines()
    assert lines == [f"text4seg eval: error: {out}: another evaluation (pid {first.pid}, rank 0) is running in "
                     "this folder; wait for it to finish or use another --out"]
    gate.touch()
    stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    assert (out / "scores.json").read_bytes() == (reference / "scores.json").read_bytes()
    # a finished (or killed) run leaves no lock behind
    again = run(*eval_args(synthetic_root, out, "0"))
    assert again.returncode == 0, again.stderr


def test_sharded_ranks_take_their_own_locks(synthetic_root, reference, tmp_path):
    from text4seg.evaluation.lock import RunLock

    out = tmp_path / "eval"
    out.mkdir()
    with RunLock(out, 0), RunLock(out, 1):  # two ranks of one run
        with pytest.raises(ValueError, match=r"another evaluation \(pid \d+, rank 1\) is running"):
            RunLock(out, 1).acquire()
    with RunLock(out, 1):  # released on exit
        pass


def test_disk_full_keeps_previous_outputs_and_prints_one_line(synthetic_root, reference, tmp_path, monkeypatch,
                                                              capsys):
    import shutil

    import text4seg.evaluation.records as records
    import text4seg.io as io
    from text4seg.cli import main

    out = tmp_path / "eval"
    shutil.copytree(reference, out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    # a new run in the same folder (more expressions are not asked: rerun with the scores file gone)
    (out / "scores.json").unlink()
    lines = (out / "samples.jsonl").read_bytes().splitlines(keepends=True)
    (out / "samples.jsonl").write_bytes(b"".join(lines[:3]))

    def full(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(records.os, "write", full)
    import fault_driver

    fault_driver._stub_eval(0.0, monkeypatch.setattr)
    status = main(["eval", *eval_args(synthetic_root, out, "0")[2:]])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1
    assert [line for line in err if "error" in line or "Traceback" in line] == err[-1:]
    assert err[-1:] == [f"text4seg eval: error: [Errno 28] No space left on device: '{out / 'samples.jsonl'}' "
                   "(disk full: free some space and rerun; finished outputs were kept)"]
    assert (out / "samples.jsonl").read_bytes() == b"".join(lines[:3])
    monkeypatch.setattr(records.os, "write", os.write)

    # the scores write fails: the previous scores.json stays byte-identical, no temp file is left
    (out / "scores.json").write_bytes(before["scores.json"])
    (out / "samples.jsonl").write_bytes(before["samples.jsonl"])
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.handle.__exit__(*exc)

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self.handle, name)

    monkeypatch.setattr(io.os, "fdopen", lambda *a, **k: Full(real_fdopen(*a, **k)))
    fault_driver._stub_eval(0.0, monkeypatch.setattr)
    status = main(["eval", *eval_args(synthetic_root, out, "0")[2:]])
    err = capsys.readouterr().err.strip().splitlines()[-1:]
    assert status == 1
    assert len(err) == 1 and err[0].startswith("text4seg eval: error: [Errno 28] No space left on device: ")
    assert err[0].endswith("(disk full: free some space and rerun; finished outputs were kept)")
    assert (out / "scores.json").read_bytes() == before["scores.json"]
    assert (out / "samples.jsonl").read_bytes() == before["samples.jsonl"]
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
