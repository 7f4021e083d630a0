"""Fold a LoRA adapter into its base model and save a standalone model directory (``text4seg merge``)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path

from text4seg.io import atomic_directory
from text4seg.options import LoadOptions

__all__ = ["merge"]

logger = logging.getLogger(__name__)


def _base_dtype(base: str) -> str:
    """The dtype recorded in the base model's config.json (float32 when unknown)."""
    path = Path(base) / "config.json"
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return "float32"
        for key in ("dtype", "torch_dtype"):
            if isinstance(data.get(key), str):
                return data[key]
        text = data.get("text_config") or {}
        for key in ("dtype", "torch_dtype"):
            if isinstance(text.get(key), str):
                return text[key]
    return "float32"


def merge(
    adapter: str | os.PathLike,
    out: str | os.PathLike,
    *,
    model: str | os.PathLike | None = None,
    load: LoadOptions | None = None,
) -> Path:
    """Merge a LoRA adapter (and its fully trained projector) into the base weights.

    Args:
        adapter: adapter directory written by ``text4seg train``.
        out: output directory: config.json + safetensors weights, the processor, text4seg_config.json.
        model: base model (hub id or directory); default: the one recorded in the adapter.
        load: where and how to load (:class:`~text4seg.options.LoadOptions`): ``dtype`` of the merged weights
            (default: the base model's own, float32 when unknown), ``device`` (default ``"cpu"``, which needs
            RAM for the whole model), ``trust_remote_code``. Quantized loading cannot be merged.

    Returns:
        ``Path(out)``.

    Raises:
        FileNotFoundError: no adapter directory.
        ValueError: ``out`` is the adapter directory itself or an existing folder that is not a model (a
            model folder is replaced only once the new one is complete), or 4/8-bit loading was asked for.
    """
    from text4seg.modeling.loading import adapter_base, load_model

    load = load or LoadOptions()
    if load.quantized:
        raise ValueError("merge: a 4-bit/8-bit model cannot be merged and saved; load it in float precision")

    adapter = Path(adapter)
    if not (adapter / "adapter_config.json").is_file():
        raise FileNotFoundError(f"--adapter {adapter}: no adapter_config.json (not a LoRA adapter directory)")
    out = Path(out)
    if out.resolve() == adapter.resolve():
        raise ValueError(f"--out {out}: must differ from the adapter directory")
    if out.is_file() or out.is_dir() and any(out.iterdir()) and not (out / "config.json").is_file():
        # ``out`` is replaced as a whole: never a folder that holds something else than a model
        raise ValueError(f"--out {out}: exists and is not a model directory; choose a new or a model folder")
    base = str(model) if model is not None else adapter_base(adapter)
    load = dataclasses.replace(load, device=load.device or "cpu", dtype=load.dtype or _base_dtype(base))
    loaded = load_model(base, adapter, load, merge_adapter=True)
    # built in a hidden sibling and renamed into place when complete: a kill or a full disk mid-save leaves
    # the previous ``out`` (or none), never a half-written model
    with atomic_directory(out, overwrite=True) as tmp:
        loaded.model.save_pretrained(tmp)
        loaded.processor.save_pretrained(tmp)
        loaded.config.save(tmp)
    logger.info("merged %s into %s -> %s", adapter, base, out)
    return out

