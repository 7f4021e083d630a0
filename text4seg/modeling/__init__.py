"""Backbones: loading, module discovery, the prompt/inputs contract, tiny models.

- :mod:`~text4seg.modeling.loading`: :func:`load_model` (any image-text-to-text model, hub id or directory,
  LoRA adapter, 4/8-bit), :func:`resolve_config`, adapter directories.
- :mod:`~text4seg.modeling.modules`: the language model, projector and vision tower of a model; LoRA targets.
- :mod:`~text4seg.modeling.inputs`: chat rendering, image preparation and input encoding shared by training
  and inference.
- :mod:`~text4seg.modeling.tiny` and :mod:`~text4seg.modeling.tokenizer`: tiny models built from configs.

Names are imported on first use (``import text4seg.modeling`` does not import torch).
"""

from __future__ import annotations

from text4seg._lazy import lazy_exports

_LAZY = {
    "LoadedModel": "loading",
    "load_model": "loading",
    "load_processor": "loading",
    "resolve_config": "loading",
    "resolve_device": "loading",
    "resolve_dtype": "loading",
    "adapter_base": "loading",
    "is_adapter_dir": "loading",
    "language_model_prefix": "modules",
    "non_language_roots": "modules",
    "lora_target_regex": "modules",
    "projector_names": "modules",
    "vision_tower_names": "modules",
    "user_content": "inputs",
    "render_chat": "inputs",
    "render_user_prompt": "inputs",
    "prepare_image": "inputs",
    "processor_image_size": "inputs",
    "encode_prompt": "inputs",
    "check_prompt_contract": "inputs",
    "build_tiny_model": "tiny",
    "build_tiny_tokenizer": "tokenizer",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _LAZY)
