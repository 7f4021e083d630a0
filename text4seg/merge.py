"""``text4seg merge``: fold a LoRA adapter into its base model and save a standalone model directory."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

__all__ = ["merge", "configure", "run"]

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
    dtype: str | None = None,
    device: str = "cpu",
    trust_remote_code: bool = False,
) -> Path:
    """Merge a LoRA adapter (and its fully trained projector) into the base weights.

    Args:
        adapter: adapter directory written by ``text4seg train``.
        out: output directory: config.json + safetensors weights, the processor, text4seg_config.json.
        model: base model (hub id or directory); default: the one recorded in the adapter.
        dtype: dtype of the merged weights (default: the base model's own, float32 when unknown).
        device: where to merge (``"cpu"`` needs RAM for the whole model).
        trust_remote_code: passed to transformers.

    Returns:
        ``Path(out)``.

    Raises:
        FileNotFoundError: no adapter directory.
        ValueError: ``out`` is the adapter directory itself.
    """
    from text4seg.model import adapter_base, load_model

    adapter = Path(adapter)
    if not (adapter / "adapter_config.json").is_file():
        raise FileNotFoundError(f"--adapter {adapter}: no adapter_config.json (not a LoRA adapter directory)")
    out = Path(out)
    if out.resolve() == adapter.resolve():
        raise ValueError(f"--out {out}: must differ from the adapter directory")
    base = str(model) if model is not None else adapter_base(adapter)
    loaded = load_model(
        base,
        adapter,
        device=device,
        dtype=dtype or _base_dtype(base),
        merge_adapter=True,
        trust_remote_code=trust_remote_code,
    )
    out.mkdir(parents=True, exist_ok=True)
    loaded.model.save_pretrained(out)
    loaded.processor.save_pretrained(out)
    loaded.config.save(out)
    logger.info("merged %s into %s -> %s", adapter, base, out)
    return out


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of ``text4seg merge`` (defaults None: :func:`merge` owns them)."""
    parser.add_argument("--adapter", required=True, help="LoRA adapter directory")
    parser.add_argument("--out", required=True, help="output directory of the merged model")
    parser.add_argument("--model", help="base model (default: recorded in the adapter)")
    parser.add_argument("--dtype", help="float32, bfloat16 or float16 (default: the base model's)")
    parser.add_argument("--device", help="device to merge on (default: cpu)")
    parser.add_argument("--trust-remote-code", action="store_const", const=True)


def run(args: argparse.Namespace) -> int:
    """Run ``text4seg merge``; prints the output directory."""
    kwargs = {k: v for k, v in vars(args).items() if v is not None and k != "command"}
    out = merge(kwargs.pop("adapter"), kwargs.pop("out"), **kwargs)
    print(f"merged model: {out}")
    return 0
