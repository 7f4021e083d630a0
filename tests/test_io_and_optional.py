"""The one atomic writer (text4seg.io) and optional-dependency messages (text4seg._optional)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest

from text4seg._optional import MissingDependency, available, require
from text4seg.io import (
    atomic_directory,
    atomic_write,
    write_bytes_atomic,
    write_json_atomic,
    write_jsonl_atomic,
    write_text_atomic,
)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_writes_text_bytes_json_and_jsonl(tmp_path):
    write_text_atomic(tmp_path / "a.txt", "héllo\n")
    write_bytes_atomic(tmp_path / "b.bin", b"\x00\xff")
    write_json_atomic(tmp_path / "sub" / "c.json", {"x": "é", "n": [1, 2]})
    write_jsonl_atomic(tmp_path / "d.jsonl", [{"a": 1}, {"b": 2}])
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo\n"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\xff"
    assert (tmp_path / "sub" / "c.json").read_text(encoding="utf-8") == '{\n  "x": "é",\n  "n": [\n    1,\n    2\n  ]\n}\n'
    assert (tmp_path / "d.jsonl").read_text() == '{"a":1}\n{"b":2}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin", "d.jsonl", "sub"]
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_failure_keeps_the_previous_file_and_leaves_no_temp(tmp_path):
    dest = tmp_path / "scores.json"
    write_json_atomic(dest, {"v": 1})
    with pytest.raises(RuntimeError, match="boom"), atomic_write(dest) as handle:
        handle.write('{"v": 2')
        raise RuntimeError("boom")
    assert json.loads(dest.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["scores.json"]


def test_disk_full_during_fsync_keeps_the_previous_file(tmp_path, monkeypatch):
    dest = tmp_path / "out.txt"
    write_text_atomic(dest, "old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as info:
        write_text_atomic(dest, "new")
    assert info.value.errno == errno.ENOSPC
    assert dest.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_directory_refuses_existing_unless_overwrite(tmp_path):
    dest = tmp_path / "model"
    with atomic_directory(dest) as tmp:
        (tmp / "weights").write_text("1")
        assert not dest.exists()  # nothing at the destination until the block is done
    assert (dest / "weights").read_text() == "1"
    assert dest.stat().st_mode & 0o777 == 0o777 & ~_umask()
    with pytest.raises(FileExistsError, match="already exists"), atomic_directory(dest):
        pass
    with atomic_directory(dest, overwrite=True) as tmp:
        (tmp / "weights").write_text("2")
    assert (dest / "weights").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_atomic_directory_failure_keeps_the_old_directory(tmp_path):
    dest = tmp_path / "model"
    with atomic_directory(dest) as tmp:
        (tmp / "weights").write_text("1")
    with pytest.raises(ValueError), atomic_directory(dest, overwrite=True) as tmp:
        (tmp / "weights").write_text("half")
        raise ValueError("conversion failed")
    assert (dest / "weights").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_require_names_the_extra():
    with pytest.raises(MissingDependency, match=r"text4seg train needs peft_missing_pkg: pip install 'text4seg\[train\]'"):
        require("peft_missing_pkg", extra="train", purpose="text4seg train")
    with pytest.raises(ImportError, match=r"this feature needs gradio: pip install 'text4seg\[demo\]'"):
        if available("gradio"):
            raise ImportError("this feature needs gradio: pip install 'text4seg[demo]'")
        require("gradio")
    assert require("json") is json


def test_io_imports_no_torch():
    code = "import sys, text4seg.io, text4seg._optional; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
