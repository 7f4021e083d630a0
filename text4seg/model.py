"""Backbones: load any image-text-to-text model the Hugging Face way, build tiny models, attach LoRA.

The generic path is ``AutoModelForImageTextToText`` + ``AutoProcessor`` (hub id or local directory) with the
model's own chat template, so LLaVA-1.5 (``llava-hf/*``), Qwen2-VL and other image-text-to-text models load
through the same code; nothing here assumes LLaVA except :func:`build_tiny_model`, which builds a tiny LLaVA
(CLIP-style vision tower + Llama) for tests and the quickstart.

Prompt rendering and image preprocessing live here too, so training and inference share them exactly.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from text4seg.config import CONFIG_NAME, Text4SegConfig

__all__ = [
    "LoadedModel",
    "load_model",
    "load_processor",
    "resolve_config",
    "resolve_dtype",
    "resolve_device",
    "adapter_base",
    "is_adapter_dir",
    "build_tiny_model",
    "lora_target_regex",
    "language_model_prefix",
    "projector_names",
    "vision_tower_names",
    "non_language_roots",
    "user_content",
    "render_chat",
    "prepare_image",
    "processor_image_size",
    "encode_prompt",
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
ATTN_CHOICES = ("flash_attention_2", "sdpa", "eager")
# Names of the vision-language connector in common architectures (LLaVA, LLaVA-NeXT, Qwen2-VL, Idefics/SmolVLM).
_PROJECTOR_SUFFIXES = ("multi_modal_projector", "mm_projector", "visual.merger", "connector")


# --------------------------------------------------------------------------------------------------------------
# device, dtype, attention, quantization


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
    if attn is None:
        return None
    if attn not in ATTN_CHOICES:
        raise ValueError(f"attn {attn!r}: expected one of {ATTN_CHOICES}")
    if attn == "flash_attention_2":
        if importlib.util.find_spec("flash_attn") is None:
            raise ValueError(
                "attn 'flash_attention_2' needs the flash-attn package: pip install 'text4seg[flash]' "
                "(CUDA only); use --attn sdpa otherwise"
            )
        if device.type != "cuda":
            raise ValueError(f"attn 'flash_attention_2' runs on CUDA only, not on device {device}; use sdpa")
    return attn


def _quantization_config(
    model_id: str, load_in_4bit: bool, load_in_8bit: bool, compute_dtype: torch.dtype, trust_remote_code: bool
):
    if not (load_in_4bit or load_in_8bit):
        return None
    if load_in_4bit and load_in_8bit:
        raise ValueError("load_in_4bit and load_in_8bit: choose one")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ValueError("4-bit/8-bit loading needs bitsandbytes: pip install 'text4seg[train]'")
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


# --------------------------------------------------------------------------------------------------------------
# module discovery (generic over architectures)


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
        if any(name == s or name.endswith("." + s) for s in _PROJECTOR_SUFFIXES) and "modules_to_save" not in name
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


# --------------------------------------------------------------------------------------------------------------
# directories and configs


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
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    load_in_4bit: bool = False,
    load_in_8bit: bool = False,
    attn: str | None = None,
    trainable_adapter: bool = False,
    merge_adapter: bool = False,
    trust_remote_code: bool = False,
    config: Text4SegConfig | None = None,
) -> LoadedModel:
    """Load an image-text-to-text model (+ optional LoRA adapter) with its processor and Text4Seg config.

    Args:
        model: hub id or local directory of a full model; a local adapter directory is accepted too (its base
            model is read from ``adapter_config.json``).
        adapter: optional peft adapter directory.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or None/``"auto"``.
        dtype: ``"float32"``, ``"bfloat16"``, ``"float16"`` (short forms accepted) or None/``"auto"``.
        load_in_4bit, load_in_8bit: bitsandbytes quantization of the language model (QLoRA).
        attn: ``"flash_attention_2"`` (flash-attn + CUDA), ``"sdpa"``, ``"eager"`` or None (model default).
        trainable_adapter: load the adapter with trainable weights (to continue training).
        merge_adapter: merge the adapter into the base weights after loading (not with 4/8-bit).
        trust_remote_code: passed to transformers.
        config: overrides the ``text4seg_config.json`` found in the directories.

    Returns:
        :class:`LoadedModel`. Without any ``text4seg_config.json`` the defaults of :class:`Text4SegConfig` are
        used and a warning says so.

    Raises:
        ValueError / FileNotFoundError: bad options, missing optional packages (naming the extra), missing dirs.
    """
    from transformers import AutoModelForImageTextToText

    model = str(model)
    if adapter is None and Path(model).is_dir() and is_adapter_dir(model):
        adapter, model = model, adapter_base(model)
    if adapter is not None and not Path(adapter).is_dir():
        raise FileNotFoundError(f"adapter {adapter}: no such directory")
    if not Path(model).exists() and (model.startswith((".", "/", "~")) or model.count("/") > 1):
        raise FileNotFoundError(f"model {model}: no such directory (nor a hub id of the form org/name)")
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    attn = _check_attn(attn, dev)
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
    quant = _quantization_config(model, load_in_4bit, load_in_8bit, torch_dtype, trust_remote_code)
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
    if quant is None:
        hf_model.to(dev)
    if adapter is not None:
        if importlib.util.find_spec("peft") is None:
            raise ValueError("loading a LoRA adapter needs peft: pip install 'text4seg[train]'")
        from peft import PeftModel

        hf_model = PeftModel.from_pretrained(hf_model, str(adapter), is_trainable=trainable_adapter)
        if merge_adapter:
            if quant is not None:
                raise ValueError("merge_adapter: cannot merge into a 4-bit/8-bit model; load it unquantized")
            hf_model = hf_model.merge_and_unload()
    if not trainable_adapter:
        hf_model.eval()
    processor = load_processor(model, adapter, trust_remote_code=trust_remote_code)
    return LoadedModel(hf_model, processor, config, dev, torch_dtype, model, None if adapter is None else str(adapter))


# --------------------------------------------------------------------------------------------------------------
# prompts and images (shared by training and inference)


def user_content(text: str, image_position: str = "before", with_image: bool = True) -> list[dict]:
    """Content list of a user turn: ``[{"type": "image"}, {"type": "text", "text": text}]`` (image first for
    ``"before"``, last for ``"after"``); text only when ``with_image`` is False."""
    parts: list[dict] = [{"type": "text", "text": text}]
    if with_image:
        image = {"type": "image"}
        parts = [image, *parts] if image_position == "before" else [*parts, image]
    return parts


def _chat_template_owner(processor):
    if getattr(processor, "chat_template", None):
        return processor
    tokenizer = getattr(processor, "tokenizer", processor)
    if getattr(tokenizer, "chat_template", None):
        return tokenizer
    raise ValueError(
        f"{type(processor).__name__}: the processor and its tokenizer have no chat template; "
        "this model cannot be prompted as a chat model"
    )


def render_chat(processor, messages: Sequence[dict], add_generation_prompt: bool = False) -> str:
    """Render messages (content lists) with the model's chat template, untokenized."""
    owner = _chat_template_owner(processor)
    if owner is processor and hasattr(processor, "image_processor"):
        return processor.apply_chat_template(
            list(messages), add_generation_prompt=add_generation_prompt, tokenize=False
        )
    # A bare tokenizer template expects string contents; the image placeholder is the processor's image token.
    image_token = getattr(processor, "image_token", "<image>")
    flat = []
    for message in messages:
        content = message["content"]
        if not isinstance(content, str):
            content = "".join(image_token if p["type"] == "image" else p.get("text", "") for p in content)
        flat.append({"role": message["role"], "content": content})
    return owner.apply_chat_template(flat, add_generation_prompt=add_generation_prompt, tokenize=False)


def processor_image_size(processor) -> tuple[int, int] | None:
    """The (H, W) the processor's image processor outputs for a fixed-size vision tower, or None when dynamic."""
    ip = getattr(processor, "image_processor", None)
    if ip is None:
        return None

    def as_hw(size) -> tuple[int, int] | None:
        if size is None:
            return None
        if isinstance(size, int):
            return (size, size)
        size = dict(size) if not isinstance(size, dict) else size
        if size.get("height") and size.get("width"):
            return (int(size["height"]), int(size["width"]))
        if size.get("shortest_edge") and not size.get("longest_edge"):
            return (int(size["shortest_edge"]),) * 2
        return None

    if getattr(ip, "do_center_crop", False):
        found = as_hw(getattr(ip, "crop_size", None))
        if found:
            return found
    return as_hw(getattr(ip, "size", None))


def prepare_image(image: Image.Image, config: Text4SegConfig, processor=None) -> Image.Image:
    """Apply the config's resize policy: ``"stretch"`` resizes to ``config.image_size`` (or the processor's fixed
    size) with bicubic resampling, aspect ratio not kept, so the descriptor grid covers the whole image.

    Args:
        image: RGB PIL image of any size.

    Returns:
        RGB PIL image (the input itself when nothing needs to change).
    """
    if image.mode != "RGB":
        image = image.convert("RGB")
    if config.resize != "stretch":
        return image
    size = config.image_size or (processor_image_size(processor) if processor is not None else None)
    if size is None:
        return image
    height, width = size
    if image.size == (width, height):
        return image
    return image.resize((width, height), Image.Resampling.BICUBIC)


def _adds_special_tokens(tokenizer) -> bool:
    try:
        return len(tokenizer("", add_special_tokens=True)["input_ids"]) > 0
    except Exception:  # noqa: BLE001 - exotic tokenizers: assume the usual
        return True


def encode_prompt(
    processor,
    texts: Sequence[str],
    images: Sequence[Image.Image] | None,
    padding_side: str | None = None,
    image_size: tuple[int, int] | None = None,
) -> dict:
    """Tokenize rendered prompt texts (one image each) through the processor, as tensors.

    Does not add a second BOS when the chat template already wrote one. ``image_size`` (H, W) overrides the
    image processor's resize and crop size (the low-resolution stage of a training curriculum); the number of
    image tokens follows from it.

    Returns:
        The processor's BatchFeature (``input_ids`` (B, L) int64, ``attention_mask``, ``pixel_values``, ...),
        padded on ``padding_side`` (default: the tokenizer's) when there are several texts.
    """
    tokenizer = getattr(processor, "tokenizer", processor)
    bos = getattr(tokenizer, "bos_token", None)
    add_special = not (bos and all(t.startswith(bos) for t in texts)) and _adds_special_tokens(tokenizer)
    kwargs: dict[str, Any] = {"text": list(texts), "return_tensors": "pt", "add_special_tokens": add_special}
    if images:
        kwargs["images"] = list(images)
        if image_size is not None:
            height, width = image_size
            kwargs["size"] = kwargs["crop_size"] = {"height": int(height), "width": int(width)}
    if len(texts) > 1:
        kwargs["padding"] = True
        if padding_side is not None:
            kwargs["padding_side"] = padding_side
    return processor(**kwargs)


# --------------------------------------------------------------------------------------------------------------
# tiny models


def build_tiny_model(
    out_dir: str | os.PathLike,
    *,
    texts: Sequence[str],
    labels: Sequence[str],
    grid: int | str | tuple[int, int] = (16, 16),
    image_size: int | None = None,
    patch_size: int = 4,
    vision_hidden: int = 64,
    vision_layers: int = 2,
    text_hidden: int = 128,
    text_layers: int = 4,
    heads: int = 4,
    mlp_ratio: int = 2,
    vocab_size: int = 1024,
    max_positions: int = 2048,
    seed: int = 0,
    descriptor_form: str = "plain",
    image_position: str = "after",
    question_template: str | None = None,
    fg_label: str = "target",
) -> Path:
    """Build and save a tiny LLaVA (CLIP-style vision tower + Llama) whose patch grid equals the descriptor grid.

    The tokenizer is a byte-level BPE trained on ``texts`` with one token per descriptor cell of every label
    (:mod:`text4seg.tokenizer`), so a plain descriptor of an H x W grid is exactly H*W tokens. The image
    processor stretches images to ``image_size`` (no center crop), as at training.

    Args:
        out_dir: directory to write (created); holds config.json, model.safetensors, tokenizer, processor,
            chat template and text4seg_config.json.
        texts: text for the BPE (questions, answers, expressions).
        labels: descriptor labels to give cell tokens (background ``"others"`` is always included).
        grid: descriptor grid; must be square (CLIP position embeddings are square).
        image_size: vision input side in pixels; None = ``grid * patch_size``; must equal it when given.
        patch_size: vision patch side in pixels.
        vision_hidden, vision_layers: CLIP width and depth.
        text_hidden, text_layers, heads: Llama width, depth and attention heads (also the vision heads).
        mlp_ratio: MLP width as a multiple of the hidden size.
        vocab_size: BPE vocabulary size before the added cell tokens.
        max_positions: Llama maximum sequence length.
        seed: weight initialisation seed.
        descriptor_form, image_position, question_template, fg_label: written to text4seg_config.json.

    Returns:
        ``Path(out_dir)``.
    """
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    from text4seg.tokenizer import build_tiny_tokenizer

    gh, gw = Text4SegConfig(grid=grid).grid
    if gh != gw:
        raise ValueError(f"grid {gh}x{gw}: tiny models need a square grid")
    expected = gh * patch_size
    if image_size is None:
        image_size = expected
    if image_size != expected:
        raise ValueError(f"image_size {image_size}: must equal grid x patch_size = {gh} x {patch_size} = {expected}")
    config_kwargs: dict[str, Any] = {
        "grid": (gh, gw),
        "descriptor_form": descriptor_form,
        "image_size": (image_size, image_size),
        "resize": "stretch",
        "image_position": image_position,
        "fg_label": fg_label,
    }
    if question_template is not None:
        config_kwargs["question_template"] = question_template
    t4s_config = Text4SegConfig(**config_kwargs)
    labels = list(labels)
    if fg_label != "sentence" and fg_label not in labels:
        labels.append(fg_label)

    tokenizer = build_tiny_tokenizer(
        [t4s_config.question_template, *texts], labels, vocab_size=vocab_size, model_max_length=max_positions
    )
    image_processor = CLIPImageProcessor(
        size={"height": image_size, "width": image_size},
        crop_size={"height": image_size, "width": image_size},
        do_center_crop=False,
        do_resize=True,
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="default",  # drop CLS: image tokens == patches == grid cells
        num_additional_image_tokens=1,
        chat_template=tokenizer.chat_template,
    )
    vision = CLIPVisionConfig(
        image_size=image_size,
        patch_size=patch_size,
        hidden_size=vision_hidden,
        intermediate_size=vision_hidden * mlp_ratio,
        num_hidden_layers=vision_layers,
        num_attention_heads=heads,
        projection_dim=vision_hidden,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=text_hidden,
        intermediate_size=text_hidden * mlp_ratio,
        num_hidden_layers=text_layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    llava_config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = LlavaForConditionalGeneration(llava_config)
    finally:
        torch.random.set_rng_state(generator_state)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    t4s_config.save(out_dir)
    return out_dir
