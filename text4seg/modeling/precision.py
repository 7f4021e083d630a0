"""Mixed precision of the ``reference`` profile: the vision tower in fp32 beside a half-precision language model.

The Text4Seg LLaVA code loads CLIP in fp32 and the projector and language model in fp16: pixel values are cast
to fp16, CLIP runs on them in fp32, and its features are cast to fp16 at the projector (``CHECKPOINTS.md``).
Casting CLIP to fp16 changes greedy answers, so a ``reference`` model loaded in half precision keeps its vision
tower in fp32, with the weights read again in fp32 from the checkpoint files (not up-cast from fp16).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from text4seg.modeling.modules import projector_names, vision_tower_names

__all__ = ["keep_vision_fp32", "checkpoint_weight_files"]

logger = logging.getLogger(__name__)


def checkpoint_weight_files(model: str | os.PathLike) -> list[Path]:
    """The ``*.safetensors`` files of a local model directory, or of a hub id already in the local cache."""
    path = Path(model)
    if path.is_dir():
        index = path / "model.safetensors.index.json"
        if index.is_file():
            names = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
            return [path / name for name in names]
        return sorted(path.glob("*.safetensors"))
    from transformers.utils import cached_file

    kwargs = {"local_files_only": True, "_raise_exceptions_for_missing_entries": False}
    index = cached_file(str(model), "model.safetensors.index.json", **kwargs)
    if index:
        names = sorted(set(json.loads(Path(index).read_text(encoding="utf-8"))["weight_map"].values()))
        return [Path(cached_file(str(model), name, **kwargs)) for name in names]
    single = cached_file(str(model), "model.safetensors", **kwargs)
    return [Path(single)] if single else []


def _cast_floats(value: Any, dtype: torch.dtype, through: torch.dtype | None = None) -> Any:
    if torch.is_tensor(value) and value.is_floating_point():
        return (value.to(through) if through is not None else value).to(dtype)
    return value


def keep_vision_fp32(model: Any, source: str | os.PathLike, dtype: torch.dtype) -> list[str]:
    """Put the vision tower of ``model`` (loaded in ``dtype``) back in fp32 as the original runs it.

    - the vision tower's parameters become fp32, with their values read from ``source``'s safetensors files
      (exact fp32 weights; a warning when a file lacks them and the half-precision values are up-cast instead);
    - its floating inputs are rounded to ``dtype`` and run in fp32 (the original casts pixel values to fp16);
    - the projector's inputs are cast to the projector's dtype (fp32 features -> fp16, as the original).

    Args:
        model: a transformers model (not quantized on the vision side), in ``dtype``.
        source: the directory or hub id it was loaded from.
        dtype: the half dtype the language model runs in.

    Returns:
        The qualified names of the modules kept in fp32.
    """
    from safetensors import safe_open

    towers = vision_tower_names(model)
    if not towers:
        return []
    files = checkpoint_weight_files(source)
    wanted: dict[str, torch.nn.Parameter | torch.Tensor] = {}
    names: dict[str, list[str]] = {}  # qualified name -> the names a file may store it under
    for root in towers:
        module = model.get_submodule(root)
        module.to(torch.float32)
        parts = root.split(".")
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
            if tensor.is_floating_point():
                key = f"{root}.{name}"
                wanted[key] = tensor
                # save_pretrained may write the legacy layout ("vision_tower.X" for "model.vision_tower.X"),
                # older llava-hf checkpoints a non-flat CLIP ("vision_tower.vision_model.X")
                tails = [".".join(parts[k:]) for k in range(len(parts))]
                names[key] = [f"{t}{sub}.{name}" for t in tails for sub in ("", ".vision_model")]
    found = 0
    for path in files:
        with safe_open(str(path), framework="pt") as handle:
            stored = set(handle.keys())
            for key in list(wanted):
                hit = next((n for n in names[key] if n in stored), None)
                if hit is not None:
                    wanted.pop(key).data.copy_(handle.get_tensor(hit).to(torch.float32))
                    found += 1
    if wanted:
        logger.warning("%s: %d vision tower tensors (e.g. %s) not found in its safetensors files; their %s "
                       "values are up-cast to fp32, so answers may differ from the original", source,
                       len(wanted), next(iter(wanted)), dtype)

    def vision_inputs(_module, args, kwargs):
        return (tuple(_cast_floats(a, torch.float32, dtype) for a in args),
                {k: _cast_floats(v, torch.float32, dtype) for k, v in kwargs.items()})

    for root in towers:
        model.get_submodule(root).register_forward_pre_hook(vision_inputs, with_kwargs=True)
    for name in projector_names(model):
        projector = model.get_submodule(name)
        weight = next((p for p in projector.parameters() if p.is_floating_point()), None)
        if weight is None or any(name.startswith(root + ".") for root in towers):
            continue
        target = weight.dtype

        def projector_inputs(_module, args, kwargs, target=target):
            return (tuple(_cast_floats(a, target) for a in args),
                    {k: _cast_floats(v, target) for k, v in kwargs.items()})

        projector.register_forward_pre_hook(projector_inputs, with_kwargs=True)
    logger.info("vision tower %s kept in fp32 (%d tensors read from %s), language model in %s",
                ", ".join(towers), found, source, dtype)
    return towers
