"""Lazy package exports: ``import text4seg.training`` must not import torch, yet ``from text4seg.training import
train`` should work. A package lists ``name -> module`` and gets a module ``__getattr__`` (PEP 562) that imports
the defining module on first use and caches the value."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, names: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package`` exporting ``names`` (name -> module; a module name
    without a dot is a submodule of ``package``)."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module if "." in module else f"{package}.{module}"), name)
        namespace[name] = value
        return value

    exported = sorted(names)

    def __dir__() -> list[str]:
        return list(exported)

    return __getattr__, __dir__, exported
