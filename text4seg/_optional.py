"""Optional dependencies: import them on use, or fail with one line naming the extra to install.

``require("peft", extra="train")`` returns the module or raises :class:`MissingDependency` (an ``ImportError``)
whose message is the whole story: ``"text4seg train needs peft: pip install 'text4seg[train]'"``. The command
layer prints that line and exits 1; library callers get a plain ``ImportError`` to catch.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

__all__ = ["MissingDependency", "require", "available", "EXTRAS"]

# import name -> (pip distribution, extra that installs it)
EXTRAS: dict[str, tuple[str, str]] = {
    "peft": ("peft", "train"),
    "accelerate": ("accelerate", "train"),
    "bitsandbytes": ("bitsandbytes", "train"),
    "segment_anything": ("segment-anything", "sam"),
    "torchvision": ("torchvision", "sam"),
    "flash_attn": ("flash-attn", "flash"),
    "scipy": ("scipy", "video"),
    "av": ("av", "video"),
    "gradio": ("gradio", "demo"),
    "sentencepiece": ("sentencepiece", "convert"),
    "google.protobuf": ("protobuf", "convert"),
}


class MissingDependency(ImportError):
    """An optional package is not installed; the message names the pip command that installs it."""


def available(module: str) -> bool:
    """True when ``module`` can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, *, extra: str | None = None, purpose: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependency` naming ``pip install 'text4seg[EXTRA]'``.

    Args:
        module: import name, e.g. ``"peft"`` or ``"segment_anything"``.
        extra: the text4seg extra that installs it (default: from :data:`EXTRAS`).
        purpose: what needs it, for the message (e.g. ``"text4seg train"``); default ``"this feature"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        # a package that is installed but fails on import of its own dependency: report the real cause
        if available(module):
            raise
        dist, default_extra = EXTRAS.get(module, (module, None))
        extra = extra or default_extra
        how = f"pip install 'text4seg[{extra}]'" if extra else f"pip install {dist}"
        raise MissingDependency(f"{purpose or 'this feature'} needs {dist}: {how}") from err
