"""One process per shard of an evaluation folder: an ``fcntl.flock`` held for the whole run (no torch).

Each process of a run locks ``OUT/.lock.rank<R>`` (rank 0 of a single-process run included), so a second
``text4seg eval`` started on the same ``--out`` with the same rank refuses at once instead of appending to the
same record file, while the ranks of one sharded run (``accelerate launch``/``torchrun``) each take their own
lock and run together. The kernel drops a ``flock`` when its process dies, even by ``kill -9``, so a lock file
left behind never blocks a rerun. The file holds the owner's pid for the message; it is a lock, not data, so
it is written in place (a rename would give the next process a different inode to lock).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

__all__ = ["RunLock", "lock_file"]


def lock_file(out: Path, rank: int) -> Path:
    """The lock file of shard ``rank`` under ``out``."""
    return out / f".lock.rank{rank}"


class RunLock:
    """Exclusive, non-blocking lock on ``lock_file(out, rank)``; a context manager.

    Raises (on enter):
        ValueError: another live process holds the lock (the message names the folder and its pid).
    """

    def __init__(self, out: str | os.PathLike, rank: int = 0) -> None:
        self.path = lock_file(Path(out), int(rank))
        self.rank = int(rank)
        self._fd = -1

    def acquire(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock (the records stay crash-safe, only concurrency is unguarded)
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise ValueError(f"{self.path.parent}: another evaluation (pid {owner}, rank {self.rank}) is "
                                 "running in this folder; wait for it to finish or use another --out") from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Drop the lock (idempotent); the file stays, unlocked."""
        if self._fd >= 0:
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = -1

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
