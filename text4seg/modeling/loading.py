"""Loading any image-text-to-text model the Hugging Face way: ``AutoModelForImageTextToText`` +
``AutoProcessor`` from a hub id or a local directory, with a LoRA adapter, quantization and the model's
``text4seg_config.json``.

Nothing here assumes LLaVA: LLaVA-1.5 (``llava-hf/*``), Qwen2-VL and other image-text-to-text models load
through the same code. How a model is loaded is a :class:`text4seg.options.LoadOptions`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from text4seg._optional import MissingDependency, available, require
from text4seg.config import CONFIG_NAME, Text4SegConfig
from text4seg.modeling.modules import non_language_roots
from text4seg.options import LoadOptions

__all__ = [
    "LoadedModel",
    "load_model",
    "load_processor",
    "resolve_config",
    "resolve_dtype",
    "resolve_device",
    "adapter_base",
    "is_adapter_dir",
]

logger = logging.getLogger(__name__)

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"`` -> ``cuda`` when available, else ``mps``, else ``cpu``; anything else as given."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"device {device!r}: {err}") from None


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``None``/``"auto"`` -> bfloat16 on CUDA with bf16 support, float16 on other accelerators, float32 on CPU.

    Raises:
        ValueError: an unknown dtype name.
    """
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float16 if device.type == "mps" else torch.float32
    try:
        return _DTYPES[str(dtype).lower()]
    except KeyError:
        raise ValueError(f"dtype {dtype!r}: expected one of {sorted(_DTYPES)} or 'auto'") from None


def _check_attn(attn: str | None, device: torch.device) -> str | None:
    if attn == "flash_attention_2":
        if device.type != "cuda":
            raise ValueError(f"attn 'flash_attention_2' runs on CUDA only, not on device {device}; use sdpa")
        if not available("flash_attn"):  # checked without importing (it initialises CUDA kernels)
            raise MissingDependency("attn 'flash_attention_2' needs flash-attn: pip install 'text4seg[flash]'")
    return attn


def _quantization_config(model_id: str, options: LoadOptions, compute_dtype: torch.dtype):
    if not options.quantized:
        return None
    require("bitsandbytes", purpose="4-bit/8-bit loading")
    load_in_4bit, trust_remote_code = options.load_in_4bit, options.trust_remote_code
    from transformers import AutoConfig, AutoModelForImageTextToText, BitsAndBytesConfig

    # Quantize the language model only: the vision tower, the projector and lm_head stay in compute dtype
    # (the projector is trained fully; QLoRA recipes keep the vision side unquantized).
    hf_config = AutoConfig.from_pretrained(model_id, trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        skeleton = AutoModelForImageTextToText.from_config(hf_config, trust_remote_code=trust_remote_code)
    skip = [re.escape(root) for root in non_language_roots(skeleton)]
    del skeleton
    if load_in_4bit:
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
            llm_int8_skip_modules=skip,
        )
    return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)


def is_adapter_dir(path: str | os.PathLike) -> bool:
    """True for a local peft adapter directory (``adapter_config.json`` without a full ``config.json``)."""
    path = Path(path)
    return (path / "adapter_config.json").is_file() and not (path / "config.json").is_file()


def adapter_base(adapter: str | os.PathLike) -> str:
    """The base model (hub id or directory) recorded in an adapter's ``adapter_config.json``.

    Relative base paths are resolved against the adapter directory.

    Raises:
        FileNotFoundError: no ``adapter_config.json``.
        ValueError: the file names no base model.
    """
    path = Path(adapter) / "adapter_config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (is {adapter} a LoRA adapter directory?)")
    try:
        base = json.loads(path.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON: {err}") from None
    if not base:
        raise ValueError(f"{path}: base_model_name_or_path is empty; pass the base model explicitly")
    candidate = Path(adapter) / base
    if not Path(base).is_absolute() and candidate.exists():
        return str(candidate)
    return str(base)


def _hub_config(model_id: str) -> Text4SegConfig | None:
    """text4seg_config.json of a hub repo from the local cache only (never the network)."""
    try:
        from transformers.utils import cached_file

        path = cached_file(
            model_id, CONFIG_NAME, local_files_only=True, _raise_exceptions_for_missing_entries=False
        )
    except Exception:  # noqa: BLE001 - any cache miss means "no config"
        return None
    return Text4SegConfig.load(path) if path else None


def resolve_config(model: str | os.PathLike, adapter: str | os.PathLike | None = None) -> Text4SegConfig | None:
    """The ``text4seg_config.json`` that applies: the adapter's, else the model's; None when neither has one."""
    for source in (adapter, model):
        if source is None:
            continue
        if Path(source).is_dir():
            if Text4SegConfig.exists(source):
                return Text4SegConfig.load(source)
        elif source is model:
            found = _hub_config(str(source))
            if found is not None:
                return found
    return None


def load_processor(model: str | os.PathLike, adapter: str | os.PathLike | None = None, **kwargs: Any):
    """``AutoProcessor`` from the adapter directory when it holds processor files, else from the model."""
    from transformers import AutoProcessor

    if adapter is not None and any(
        (Path(adapter) / f).is_file() for f in ("processor_config.json", "preprocessor_config.json")
    ):
        return AutoProcessor.from_pretrained(str(adapter), **kwargs)
    return AutoProcessor.from_pretrained(str(model), **kwargs)


@dataclass
class LoadedModel:
    """A loaded backbone: ``model`` (eval mode unless loaded for training), ``processor``, ``config``."""

    model: Any
    processor: Any
    config: Text4SegConfig
    device: torch.device
    dtype: torch.dtype
    source: str
    adapter: str | None = None


def load_model(
    model: str | os.PathLike,
    adapter: str | os.PathLike | None = None,
    options: LoadOptions | None = None,
    *,
    trainable_adapter: bool = False,
    merge_adapter: bool = False,
    config: Text4SegConfig | None = None,
    **fields: Any,
) -> LoadedModel:
    """Load an image-text-to-text model (+ optional LoRA adapter) with its processor and Text4Seg config.

    Args:
        model: hub id or local directory of a full model; a local adapter directory is accepted too (its base
            model is read from ``adapter_config.json``).
        adapter: optional peft adapter directory.
        options: device, dtype, quantization, attention kernel, remote code (:class:`LoadOptions`).
        trainable_adapter: load the adapter with trainable weights (to continue training).
        merge_adapter: merge the adapter into the base weights after loading (not with 4/8-bit).
        config: overrides the ``text4seg_config.json`` found in the directories.
        **fields: single :class:`LoadOptions` fields (``device="cpu"``, ``load_in_4bit=True``, ...) changing
            ``options``.

    A model whose config has the ``reference`` profile (a converted official checkpoint) loaded in half
    precision keeps its vision tower in fp32, as the original code runs it
    (:func:`text4seg.modeling.precision.keep_vision_fp32`); ``LoadedModel.dtype`` is the language model's.

    Returns:
        :class:`LoadedModel`. Without any ``text4seg_config.json`` the defaults of :class:`Text4SegConfig` are
        used and a warning says so.

    Raises:
        ValueError / FileNotFoundError: bad options or missing directories.
        ImportError: a missing optional package (the message names the extra to install).
    """
    from transformers import AutoModelForImageTextToText

    options = options or LoadOptions()
    if fields:
        unknown = sorted(set(fields) - set(LoadOptions.__dataclass_fields__))
        if unknown:
            raise TypeError(f"load_model: unknown options {unknown}")
        options = dataclasses.replace(options, **fields)
    trust_remote_code = options.trust_remote_code

    model = str(model)
    if adapter is None and Path(model).is_dir() and is_adapter_dir(model):
        adapter, model = model, adapter_base(model)
    if adapter is not None and not Path(adapter).is_dir():
        raise FileNotFoundError(f"adapter {adapter}: no such directory")
    if not Path(model).exists() and (model.startswith((".", "/", "~")) or model.count("/") > 1):
        raise FileNotFoundError(f"model {model}: no such directory (nor a hub id of the form org/name)")
    dev = resolve_device(options.device)
    torch_dtype = resolve_dtype(options.dtype, dev)
    attn = _check_attn(options.attn, dev)
    if config is None:
        config = resolve_config(model, adapter)
        if config is None:
            config = Text4SegConfig()
            logger.warning(
                "%s has no %s: using defaults (grid %dx%d, %s descriptors); train with text4seg to write one",
                adapter or model,
                CONFIG_NAME,
                *config.grid,
                config.descriptor_form,
            )
    quant = _quantization_config(model, options, torch_dtype)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "trust_remote_code": trust_remote_code}
    if attn is not None:
        kwargs["attn_implementation"] = attn
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs["device_map"] = {"": dev.index if dev.type == "cuda" and dev.index is not None else str(dev)}
    try:
        hf_model = AutoModelForImageTextToText.from_pretrained(model, **kwargs)
    except OSError as err:
        raise FileNotFoundError(f"model {model}: {err}") from None
    except pickle.UnpicklingError as err:
        # transformers reads .bin weights with torch.load(weights_only=True): anything but tensors is refused
        lines = [line.strip() for line in str(err).splitlines() if "unsupported GLOBAL" in line or "Unsupported global" in line]
        first = lines[0].removeprefix("WeightsUnpickler error: ") if lines else type(err).__name__
        raise ValueError(f"model {model}: its .bin weights hold objects other than plain tensors, refused "
                         f"(torch.load(weights_only=True): {first}); use safetensors weights from a trusted "
                         "source") from None
    if config.profile == "reference" and torch_dtype != torch.float32:
        # the original runs CLIP in fp32 beside its fp16 language model (CHECKPOINTS.md)
        from text4seg.modeling.precision import keep_vision_fp32

        keep_vision_fp32(hf_model, model, torch_dtype)
    if quant is None:
        hf_model.to(dev)
    if adapter is not None:
        PeftModel = require("peft", purpose="loading a LoRA adapter").PeftModel

        hf_model = PeftModel.from_pretrained(hf_model, str(adapter), is_trainable=trainable_adapter)
        if merge_adapter:
            if quant is not None:
                raise ValueError("merge_adapter: cannot merge into a 4-bit/8-bit model; load it unquantized")
            hf_model = hf_model.merge_and_unload()
    if not trainable_adapter:
        hf_model.eval()
    processor = load_processor(model, adapter, trust_remote_code=trust_remote_code)
    from text4seg.modeling.inputs import check_prompt_contract

    check_prompt_contract(processor, config, source=str(adapter or model))
    return LoadedModel(hf_model, processor, config, dev, torch_dtype, model, None if adapter is None else str(adapter))
