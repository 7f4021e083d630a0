"""Crash-safe per-sample records: one JSON line per finished sample, appended and fsynced.

A run killed at any moment (``kill -9``) leaves at most one partial trailing line in its file. Opening the file
for appending again truncates that partial line, so a rerun continues after the last completed sample and never
duplicates or corrupts a line. Files written by other processes are read without modification (their partial
trailing line, if any, is ignored).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from text4seg.io import with_filename

__all__ = ["SampleLog", "read_records"]


def _complete_prefix(data: bytes) -> bytes:
    """The bytes up to and including the last newline (a trailing partial line is dropped)."""
    end = data.rfind(b"\n")
    return data[: end + 1] if end >= 0 else b""


def read_records(path: str | os.PathLike) -> list[dict]:
    """Parse the complete lines of a JSONL record file.

    Args:
        path: a ``samples*.jsonl`` file; a missing file reads as empty.

    Returns:
        One dict per complete line, in file order; a partial trailing line (a crash mid-write) is ignored.

    Raises:
        ValueError: a complete line is not a JSON object (names the file and line number).
    """
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for lineno, line in enumerate(_complete_prefix(path.read_bytes()).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as err:
            raise ValueError(f"{path}:{lineno}: not a JSON line ({err}); the file is corrupt") from err
        if not isinstance(record, dict):
            raise ValueError(f"{path}:{lineno}: expected a JSON object per line")
        records.append(record)
    return records


class SampleLog:
    """Append-only JSONL file owned by one process; each :meth:`append` is durable when it returns.

    Args:
        path: the file; created if missing. A partial trailing line left by a crash is truncated on open.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_file():
            size = self.path.stat().st_size
            keep = len(_complete_prefix(self.path.read_bytes()))
            if keep != size:
                os.truncate(self.path, keep)
        self.records = read_records(self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, record: dict) -> None:
        """Write ``record`` as one line and fsync it, so that it survives a crash right after the call."""
        data = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)
        except OSError as err:
            # a partial line left here (disk full) is truncated by the next SampleLog on this file
            raise with_filename(err, self.path) from err

    def close(self) -> None:
        """Close the file descriptor (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> SampleLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
