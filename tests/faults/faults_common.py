"""Helpers of the fault tests: run the driver in a subprocess and SIGKILL it at a chosen moment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

DRIVER = Path(__file__).with_name("fault_driver.py")
REPO = Path(__file__).resolve().parents[2]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(REPO), e.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    e["WORLD_SIZE"] = "1"
    e.pop("LOCAL_RANK", None)
    e.pop("RANK", None)
    e["TQDM_DISABLE"] = "1"
    e["TOKENIZERS_PARALLELISM"] = "false"
    return e


def start(*args: str, module: str | None = None) -> subprocess.Popen:
    """Start the driver (or ``python -m module``) with ``args``; stdout is a pipe, stderr is captured too."""
    command = [sys.executable, "-m", module, *args] if module else [sys.executable, str(DRIVER), *args]
    return subprocess.Popen(command, env=env(), cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def run(*args: str, module: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", module, *args] if module else [sys.executable, str(DRIVER), *args]
    return subprocess.run(command, env=env(), cwd=str(REPO), capture_output=True, text=True, timeout=timeout)


def kill_when(proc: subprocess.Popen, condition: Callable[[], bool], delay: float = 0.0,
              timeout: float = 120.0) -> bool:
    """SIGKILL ``proc`` ``delay`` seconds after ``condition()`` holds. Returns False when the process ended first
    (nothing was killed)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            return False
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the condition to kill never came")
        time.sleep(0.002)
    if delay:
        time.sleep(delay)
    if proc.poll() is not None:
        return False
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    return True


def kill_at_line(proc: subprocess.Popen, prefix: str, timeout: float = 300.0) -> str:
    """SIGKILL ``proc`` as soon as it prints a line starting with ``prefix``; returns that line."""
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        if line.startswith(prefix):
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            proc.stdout.close()
            proc.stderr.close()
            return line.strip()
        if time.monotonic() > deadline:
            break
    proc.kill()
    err = proc.stderr.read()
    raise AssertionError(f"never printed {prefix!r}; stderr: {err[-3000:]}")


def line_count(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0
