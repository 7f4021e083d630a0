"""The one atomic writer: every file and directory text4seg writes goes through here (no torch).

A write goes to a temporary sibling (same folder, so the final rename never crosses a file system), is flushed
and fsynced, then renamed over the destination with :func:`os.replace`; the folder is fsynced too, so the rename
itself survives a power cut. Whatever happens before the rename — an exception, ``KeyboardInterrupt``, a full
disk (``ENOSPC``), ``kill -9`` — the destination keeps its previous content (or stays absent); a failed write
removes its temporary file, and a killed one leaves only a hidden ``.NAME.<pid>.*.tmp`` sibling that no reader
opens and that the next write of the same destination removes (its writer's pid is gone).

Directories (a merged model, a converted checkpoint) are built the same way with :func:`atomic_directory`: in a
hidden temporary sibling, renamed into place only when complete.

Example::

    from text4seg.io import atomic_write, write_json_atomic

    write_json_atomic("runs/x/scores.json", {"ciou": 0.7})
    with atomic_write("runs/x/mask.png", binary=True) as handle:
        image.save(handle, format="PNG")
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_write",
    "atomic_directory",
    "write_text_atomic",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_jsonl_atomic",
    "fsync_directory",
    "with_filename",
    "remove_stale_temps",
]


def fsync_directory(path: str | os.PathLike) -> None:
    """fsync a directory so that a rename inside it is durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def with_filename(err: OSError, path: str | os.PathLike) -> OSError:
    """A copy of ``err`` (same class and errno) that names ``path``: ``[Errno 28] No space left on device: 'x'``."""
    named = type(err)(err.errno, err.strerror or os.strerror(err.errno), str(path))
    return named


def _temp_name(path: Path, suffix: str) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{suffix}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, someone else's
        return True
    return True


def remove_stale_temps(path: str | os.PathLike) -> int:
    """Remove the temporary siblings of ``path`` left by writers that were killed (their pid is gone).

    Returns the number removed. A live writer's temporary file is left alone.
    """
    path = Path(path)
    removed = 0
    try:
        candidates = list(path.parent.glob(f".{_glob_escape(path.name)}.*.*.*"))
    except OSError:
        return 0
    for candidate in candidates:
        pid, _, rest = candidate.name[len(path.name) + 2:].partition(".")
        token, _, suffix = rest.partition(".")
        if not pid.isdigit() or suffix not in ("tmp", "old") or len(token) != 8 or _pid_alive(int(pid)):
            continue
        if candidate.is_dir() and not candidate.is_symlink():
            shutil.rmtree(candidate, ignore_errors=True)
        else:
            candidate.unlink(missing_ok=True)
        removed += 1
    return removed


def _glob_escape(name: str) -> str:
    """``name`` with glob metacharacters escaped."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new temporary sibling of ``path``, opened for writing with ordinary permissions (0o666 minus the
    umask, as the final file would get; ``mkstemp`` would leave it 0600)."""
    while True:
        tmp = _temp_name(path, ".tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, *, binary: bool = False, encoding: str = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; on a clean exit it replaces ``path`` atomically.

    Args:
        path: destination file; its folder is created.
        binary: yield a binary handle (``"wb"``) instead of a text one.
        encoding: text encoding (text mode only).

    Yields:
        The open handle. On an exception inside the block the temporary file is removed, ``path`` is untouched
        and the exception propagates.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": encoding})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.filename is None and err.errno is not None:
            # a failed write (ENOSPC, EIO, ...) names no file: name the destination, not the hidden temp file
            raise with_filename(err, path) from err
        raise
    fsync_directory(path.parent)


def write_text_atomic(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically. Returns ``Path(path)``."""
    with atomic_write(path, encoding=encoding) as handle:
        handle.write(text)
    return Path(path)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically. Returns ``Path(path)``."""
    with atomic_write(path, binary=True) as handle:
        handle.write(data)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, payload: object, *, indent: int | None = 2) -> Path:
    """Write ``payload`` as JSON (UTF-8, non-ASCII kept, trailing newline) atomically. Returns ``Path(path)``."""
    return write_text_atomic(path, json.dumps(payload, indent=indent, ensure_ascii=False) + "\n")


def write_jsonl_atomic(path: str | os.PathLike, records: Iterable[dict]) -> Path:
    """Write ``records`` as JSON lines (compact separators) atomically. Returns ``Path(path)``."""
    with atomic_write(path) as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
    return Path(path)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Build a directory in a temporary sibling and move it to ``path`` only when the block completes.

    Args:
        path: destination directory.
        overwrite: replace an existing ``path`` (it is kept until the new one is complete, then removed);
            without it an existing ``path`` is refused.

    Yields:
        The temporary directory to fill.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False (nothing is written).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists (choose another output or allow overwriting)")
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = _temp_name(path, ".tmp")
    os.mkdir(tmp, 0o777)  # ordinary permissions (mode minus the umask), unlike mkdtemp's 0700
    try:
        yield tmp
        for root, _, files in os.walk(tmp):
            for name in files:
                with open(os.path.join(root, name), "rb") as handle:
                    os.fsync(handle.fileno())
        old = None
        if path.exists():
            old = _temp_name(path, ".old")
            os.replace(path, old)
        os.replace(tmp, path)
        fsync_directory(path.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError) and err.filename is None and err.errno is not None:
            raise with_filename(err, path) from err
        raise
