"""Finding the parts of a multimodal model without assuming its architecture: the language model, the
vision-language projector, the vision tower, and the LoRA target regex derived from them.

For LLaVA: language model ``model.language_model``, projector ``model.multi_modal_projector``, vision tower
``model.vision_tower``; for Qwen2-VL the projector ``model.visual.merger`` sits inside the vision tower.
"""

from __future__ import annotations

import re

import torch

__all__ = [
    "PROJECTOR_SUFFIXES",
    "language_model_prefix",
    "non_language_roots",
    "lora_target_regex",
    "projector_names",
    "vision_tower_names",
]

# Names of the vision-language connector in common architectures (LLaVA, LLaVA-NeXT, Qwen2-VL, Idefics/SmolVLM).
PROJECTOR_SUFFIXES = ("multi_modal_projector", "mm_projector", "visual.merger", "connector")


def _linear_names(model: torch.nn.Module) -> list[str]:
    return [name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)]


def language_model_prefix(model: torch.nn.Module) -> str:
    """Qualified module name of the language model (decoder stack), e.g. ``"model.language_model"`` for LLaVA.

    Raises:
        ValueError: when the model exposes no language model module.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else None
    if decoder is not None and decoder is not base:
        for name, module in base.named_modules():
            if module is decoder:
                return name
    for name, _ in base.named_modules():
        if name.split(".")[-1] in ("language_model", "text_model"):
            return name
    raise ValueError(f"{type(base).__name__}: cannot find its language model module (get_decoder)")


def non_language_roots(model: torch.nn.Module) -> list[str]:
    """Top-level components holding linear layers outside the language model.

    For LLaVA: ``["lm_head", "model.multi_modal_projector", "model.vision_tower"]``.
    """
    prefix = language_model_prefix(model)
    parent = prefix.rpartition(".")[0]
    roots = set()
    for name in _linear_names(model):
        if name == prefix or name.startswith(prefix + "."):
            continue
        if parent and name.startswith(parent + "."):
            roots.add(parent + "." + name[len(parent) + 1 :].split(".")[0])
        else:
            roots.add(name.split(".")[0])
    return sorted(roots)


def lora_target_regex(model: torch.nn.Module) -> str:
    """Regex (peft ``target_modules``) matching every linear layer of the language model, not ``lm_head``.

    E.g. ``^model\\.language_model\\.(?:.*\\.)?(?:down_proj|gate_proj|k_proj|o_proj|q_proj|up_proj|v_proj)$``.
    """
    prefix = language_model_prefix(model)
    leaves = sorted({n.rsplit(".", 1)[-1] for n in _linear_names(model) if n.startswith(prefix + ".")})
    if not leaves:
        raise ValueError(f"{type(model).__name__}: no linear layers under {prefix!r} for LoRA")
    return rf"^{re.escape(prefix)}\.(?:.*\.)?(?:{'|'.join(map(re.escape, leaves))})$"


def projector_names(model: torch.nn.Module) -> list[str]:
    """Qualified names of the vision-language projector module(s) (trained fully next to LoRA)."""
    names = [
        name
        for name, _ in model.named_modules()
        if any(name == s or name.endswith("." + s) for s in PROJECTOR_SUFFIXES) and "modules_to_save" not in name
    ]
    # keep outermost matches only
    return [n for n in names if not any(n != m and n.startswith(m + ".") for m in names)]


def vision_tower_names(model: torch.nn.Module) -> list[str]:
    """Qualified names of the vision side: non-language components other than the projector and lm_head.

    A projector nested inside one of them (Qwen2-VL's ``model.visual.merger``) is listed by
    :func:`projector_names`; callers freeze the vision side except the projector.
    """
    projectors = projector_names(model)
    out_emb = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return [
        root
        for root in non_language_roots(model)
        if root not in projectors and model.get_submodule(root) is not out_emb
    ]
