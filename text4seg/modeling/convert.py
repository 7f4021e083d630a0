"""Official Text4Seg checkpoints -> self-describing transformers directories.

- :func:`convert_text4seg_llava`: a checkpoint of the Text4Seg LLaVA codebase (``model_type: llava_llama``, merged,
  or its LoRA form: a peft adapter + ``non_lora_trainables.bin`` on a vicuna base) -> a
  ``LlavaForConditionalGeneration`` directory with processor, ``tokenizer.json`` and ``text4seg_config.json``
  whose ``reference`` profile reproduces the original inference (see ``CHECKPOINTS.md``): the modified vicuna_v1
  system prompt, ``USER: <image>\\n{question} ASSISTANT:``, the 336 x 336 PIL bilinear stretch, the "▁" piece after
  the image, 576 image tokens, CLIP in fp32 beside an fp16 language model, padded vocabulary rows never generated.
- :func:`convert_ms_swift_llava`: a LoRA adapter ms-swift trained on ``llava-hf/llava-1.5-*-hf`` -> an adapter
  directory with the ``ms-swift`` profile (no system prompt, ``USER: <image>\\n{q}\\nASSISTANT:``, 336 bicubic
  stretch) and keys in the transformers 5 layout.

Pickled weights load only with ``torch.load(weights_only=True)``; every output directory is written atomically.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import torch

from text4seg.config import Text4SegConfig

__all__ = [
    "REFERENCE_SYSTEM_PROMPT",
    "REFERENCE_TEMPLATE",
    "REFERENCE_QUESTION",
    "MS_SWIFT_TEMPLATE",
    "grid_from_name",
    "load_state_dict",
    "convert_text4seg_llava",
    "convert_ms_swift_llava",
]

logger = logging.getLogger(__name__)

# Text4Seg's modified vicuna_v1 system prompt (the comma before "The" is in the original)
REFERENCE_SYSTEM_PROMPT = (
    "A chat between a curious user and an artificial intelligence assistant. You are able to understand the "
    "visual content that the user provides, The assistant gives helpful, detailed, and polite answers to the "
    "user's questions."
)
# "{system} USER: <image>\n{question} ASSISTANT:" (separators " " and "</s>"); newlines as Jinja expressions
REFERENCE_TEMPLATE = (
    "{{ '" + REFERENCE_SYSTEM_PROMPT.replace("'", "\\'") + " ' }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: "
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>{{ '\\n' }}"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %} "
    "{% else %}ASSISTANT: {% for item in message['content'] %}{{ item['text'] }}{% endfor %}</s>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
# ms-swift's llava1_5_hf template: no system prompt, "USER: <image>\n{q}\nASSISTANT:"
MS_SWIFT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: "
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>{{ '\\n' }}"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{{ '\\n' }}"
    "{% else %}ASSISTANT: {% for item in message['content'] %}{{ item['text'] }}{% endfor %}</s>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
# the first of the original's six referring templates (its eval picks one at random, unseeded)
REFERENCE_QUESTION = "Please segment only the {expression} in the image."
_GRID_IN_NAME = re.compile(r"(?:^|[^a-z0-9])p(16|24|32)(?:[^0-9]|$)", re.IGNORECASE)


def grid_from_name(name: str) -> int | None:
    """The grid a released checkpoint's name states (``...-p24`` -> 24; p16/p24/p32), None when it states none."""
    found = _GRID_IN_NAME.findall(str(name))
    return int(found[-1]) if found else None


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of one weights file: safetensors, or a pickle read with ``torch.load(weights_only=True)``.

    Raises:
        ValueError: a pickle holding anything but tensors and plain containers (refused, naming the file).
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    import pickle

    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError) as err:
        raise ValueError(f"{path}: refused: not a plain tensor pickle loadable with weights_only=True "
                         f"({type(err).__name__}: {str(err).splitlines()[0][:200]})") from None
    if not isinstance(data, dict) or not all(torch.is_tensor(v) for v in data.values()):
        raise ValueError(f"{path}: expected a dict of tensors")
    return data


def _weights(directory: Path) -> dict[str, torch.Tensor]:
    files = sorted(directory.glob("*.safetensors")) or sorted(
        p for p in directory.glob("*.bin") if p.name != "training_args.bin" and "non_lora" not in p.name)
    files = [p for p in files if not p.name.startswith("adapter_model")]
    if not files:
        raise FileNotFoundError(f"{directory}: no *.safetensors or *.bin weights")
    out: dict[str, torch.Tensor] = {}
    for path in files:
        out.update(load_state_dict(path))
    return out


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON: {err}") from None


def _local(source: str | os.PathLike) -> Path:
    """A local directory, or a hub id's snapshot (downloaded by huggingface_hub when not cached)."""
    path = Path(source)
    if path.is_dir():
        return path
    if path.exists() or str(source).startswith((".", "/", "~")) or str(source).count("/") != 1:
        raise FileNotFoundError(f"{source}: no such directory (nor a hub id of the form org/name)")
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(str(source)))


def _merge_lora(src: Path, base: Path) -> dict[str, torch.Tensor]:
    """The base's weights with the adapter merged (W += alpha/r * B @ A) and the projector of
    ``non_lora_trainables.bin``, in the merged checkpoint's key names."""
    adapter_config = _read_json(src / "adapter_config.json")
    scale = float(adapter_config.get("lora_alpha", 16)) / float(adapter_config.get("r", 8))
    weights = _weights(base)
    adapter_files = sorted(src.glob("adapter_model.*"))
    if not adapter_files:
        raise FileNotFoundError(f"{src}: no adapter_model.safetensors or adapter_model.bin")
    adapter = load_state_dict(adapter_files[0])
    merged = 0
    for key, a in adapter.items():
        if ".lora_A." not in key:
            continue
        b = adapter[key.replace(".lora_A.", ".lora_B.")]
        target = key.replace("base_model.model.", "", 1).replace(".lora_A.weight", ".weight").replace(
            ".lora_A.default.weight", ".weight")
        if target not in weights:
            raise ValueError(f"{adapter_files[0]}: {key} targets {target}, which the base {base} lacks")
        w = weights[target]
        weights[target] = (w.float() + scale * (b.float() @ a.float())).to(w.dtype)
        merged += 1
    extra = src / "non_lora_trainables.bin"
    if not extra.is_file():
        raise FileNotFoundError(f"{extra}: not found (the projector of a LoRA-form Text4Seg checkpoint)")
    for key, value in load_state_dict(extra).items():
        weights[key.replace("base_model.model.", "", 1)] = value
    logger.info("merged %d LoRA pairs (scale %.3g) into %s", merged, scale, base)
    return weights


def _vision_tower(weights: dict[str, torch.Tensor], tower: str | os.PathLike | None, mm_tower: str | None):
    """(CLIPVisionConfig, vision_model.* weights in fp32, source)."""
    from transformers import CLIPConfig, CLIPVisionConfig

    for candidate in (tower, mm_tower):
        if candidate is None:
            continue
        try:
            path = _local(candidate) if tower is not None or Path(str(candidate)).is_dir() else None
        except FileNotFoundError:
            if candidate is tower:
                raise
            path = None
        if path is None:
            continue
        raw = _read_json(path / "config.json")
        config = CLIPConfig(**raw).vision_config if raw.get("model_type") == "clip" else CLIPVisionConfig(**raw)
        state = {k[len("vision_model."):]: v.float() for k, v in _weights(path).items()
                 if k.startswith("vision_model.")}
        return config, state, str(path)
    prefix = "model.vision_tower.vision_tower.vision_model."
    state = {k[len(prefix):]: v.float() for k, v in weights.items() if k.startswith(prefix)}
    if not state:
        raise FileNotFoundError(
            f"vision tower: mm_vision_tower {mm_tower!r} does not exist and the checkpoint holds no copy of CLIP; "
            "pass --vision-tower DIR (openai/clip-vit-large-patch14-336)")
    logger.warning("vision tower: mm_vision_tower %r not found; using the CLIP copy inside the checkpoint (the "
                   "original loads CLIP again in fp32: answers may differ; pass --vision-tower for identity)",
                   mm_tower)
    hidden = state["embeddings.patch_embedding.weight"].shape[0]
    patch = state["embeddings.patch_embedding.weight"].shape[-1]
    positions = state["embeddings.position_embedding.weight"].shape[0]
    layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.layers."))
    config = CLIPVisionConfig(hidden_size=hidden, patch_size=patch, image_size=patch * round((positions - 1) ** 0.5),
                              num_hidden_layers=layers, intermediate_size=state["encoder.layers.0.mlp.fc1.weight"].shape[0],
                              num_attention_heads=max(1, hidden // 64))
    return config, state, "checkpoint copy"


def _tokenizer(src: Path, template: str):
    """The checkpoint's sentencepiece tokenizer as a fast tokenizer that reproduces the original ids: every text
    segment between special tokens starts with "▁" (as each piece around ``<image>`` did)."""
    from text4seg._optional import require

    require("sentencepiece", extra="convert", purpose="reading tokenizer.model")
    require("google.protobuf", extra="convert", purpose="reading tokenizer.model")
    from tokenizers import pre_tokenizers
    from transformers import AutoTokenizer

    if not (src / "tokenizer.model").is_file() and not (src / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{src}: no tokenizer.model (nor tokenizer.json)")
    tokenizer = AutoTokenizer.from_pretrained(str(src), use_fast=True, legacy=True)
    backend = tokenizer.backend_tokenizer
    backend.normalizer = None
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    tokenizer.chat_template = template
    return tokenizer


def _text4seg_config(grid: int, src_name: str, image: int, resample: str, profile: str) -> Text4SegConfig:
    return Text4SegConfig(grid=grid, descriptor_form="rle", background="others", image_size=(image, image),
                          resize="stretch", resample=resample, question_template=REFERENCE_QUESTION,
                          image_position="before", fg_label="sentence", profile=profile)


def _grid(grid: int | None, name: str) -> int:
    if grid is not None:
        logger.info("grid %d (from --grid)", grid)
        return int(grid)
    found = grid_from_name(name)
    if found is None:
        raise ValueError(f"{name}: the name states no grid (p16/p24/p32); pass --grid N")
    logger.info("grid %d (from 'p%d' in the name %s)", found, found, name)
    return found


def convert_text4seg_llava(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    grid: int | None = None,
    vision_tower: str | os.PathLike | None = None,
    base: str | os.PathLike | None = None,
    force: bool = False,
) -> Path:
    """Convert a Text4Seg LLaVA-codebase checkpoint into a ``LlavaForConditionalGeneration`` directory.

    Args:
        src: checkpoint directory or hub id (merged model, or LoRA form with ``base``).
        out: output directory (refused when it exists, unless ``force``).
        grid: descriptor grid side; None = from ``p16``/``p24``/``p32`` in the name.
        vision_tower: CLIP directory or hub id when the checkpoint's ``mm_vision_tower`` does not exist.
        base: the vicuna base of a LoRA-form checkpoint.

    Returns:
        ``Path(out)``, holding weights (language model and projector in the checkpoint's dtype, CLIP in fp32),
        processor, ``tokenizer.json``, ``generation_config.json`` (greedy, padded ids suppressed) and
        ``text4seg_config.json`` (profile ``reference``).
    """
    from transformers import (
        CLIPImageProcessor,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    from text4seg.io import atomic_directory

    src_path = _local(src)
    cell = _grid(grid, str(src).rstrip("/"))
    raw = _read_json(src_path / "config.json")
    lora = (src_path / "adapter_config.json").is_file()
    if raw.get("model_type") not in ("llava_llama", "llava") and not lora:
        raise ValueError(f"{src_path / 'config.json'}: model_type {raw.get('model_type')!r}; expected "
                         "'llava_llama' (a Text4Seg LLaVA-codebase checkpoint)")
    if lora:
        if base is None:
            raise ValueError(f"{src_path}: a LoRA-form checkpoint (adapter + non_lora_trainables.bin); pass --base "
                             "DIR (its vicuna base)")
        weights = _merge_lora(src_path, _local(base))
    else:
        weights = _weights(src_path)
    dtype = weights["model.embed_tokens.weight"].dtype
    text_fields = set(LlamaConfig().to_dict()) - {"architectures", "model_type", "transformers_version"}
    text_config = LlamaConfig(**{k: v for k, v in raw.items() if k in text_fields})
    vision_config, clip, clip_source = _vision_tower(weights, vision_tower, raw.get("mm_vision_tower"))
    logger.info("vision tower: %s", clip_source)
    if raw.get("mm_projector_type", "mlp2x_gelu") != "mlp2x_gelu":
        raise ValueError(f"{src_path / 'config.json'}: mm_projector_type {raw.get('mm_projector_type')!r}; only "
                         "'mlp2x_gelu' is supported")

    tokenizer = _tokenizer(src_path if not lora or (src_path / "tokenizer.model").is_file() else _local(base),
                           REFERENCE_TEMPLATE)
    vocab = len(tokenizer)
    tokenizer.add_special_tokens({"pad_token": "<pad>"} if tokenizer.pad_token is None else {},
                                 replace_extra_special_tokens=False)
    tokenizer.add_tokens(["<image>"], special_tokens=True)
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    padded = ((len(tokenizer) + 63) // 64) * 64
    text_config.vocab_size = padded
    text_config.pad_token_id = tokenizer.pad_token_id
    side = vision_config.image_size
    image_processor = CLIPImageProcessor(
        size={"height": side, "width": side}, crop_size={"height": side, "width": side}, do_center_crop=False,
        do_resize=False,  # prepare_image already stretched with PIL bilinear (config.resample)
        image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711])
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer,
                               patch_size=vision_config.patch_size, vision_feature_select_strategy="default",
                               num_additional_image_tokens=1, chat_template=REFERENCE_TEMPLATE,
                               image_token="<image>")
    config = LlavaConfig(text_config=text_config, vision_config=vision_config, image_token_id=image_id,
                         vision_feature_layer=int(raw.get("mm_vision_select_layer", -2)),
                         vision_feature_select_strategy="default", projector_hidden_act="gelu")
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(config)
    state = {}
    for key, value in weights.items():
        if key.startswith("model.vision_tower."):
            continue
        if key.startswith("model.mm_projector."):
            index = key.split(".")[2]
            state[f"model.multi_modal_projector.linear_{1 if index == '0' else 2}.{key.split('.')[-1]}"] = value
        elif key.startswith("model."):
            state["model.language_model." + key[len("model."):]] = value
        elif key.startswith("lm_head."):
            state[key] = value
    for name in ("model.language_model.embed_tokens.weight", "lm_head.weight"):
        rows = state[name]
        extra = rows.new_zeros(padded - rows.shape[0], rows.shape[1])
        if name.endswith("embed_tokens.weight"):  # new rows: the mean embedding (never generated anyway)
            extra += rows.float().mean(0).to(rows.dtype)
        state[name] = torch.cat([rows, extra])
    for key, value in clip.items():
        state["model.vision_tower." + key] = value  # CLIP is flat in transformers 5
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(f"{src_path}: weights do not fit LLaVA: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.load_state_dict(state, assign=True, strict=True)
    model.to(dtype)
    model.model.vision_tower.to(torch.float32)  # CLIP stays fp32, as the original loads it
    gen = model.generation_config
    gen.do_sample, gen.temperature, gen.top_p, gen.num_beams = False, None, None, 1
    gen.eos_token_id, gen.bos_token_id = tokenizer.eos_token_id, tokenizer.bos_token_id
    gen.pad_token_id = tokenizer.pad_token_id
    gen.suppress_tokens = list(range(vocab, padded))  # image, pad and padding rows are never generated
    t4s = _text4seg_config(cell, str(src), side, "bilinear", "reference")
    with atomic_directory(out, overwrite=force) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        t4s.save(tmp)
    logger.info("converted %s -> %s (grid %d, vocab %d padded to %d)", src, out, cell, vocab, padded)
    return Path(out)


def convert_ms_swift_llava(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    base: str | os.PathLike,
    grid: int | None = None,
    force: bool = False,
) -> Path:
    """An ms-swift LoRA adapter on ``llava-hf/llava-1.5-*-hf`` -> an adapter directory with the ``ms-swift``
    profile: keys renamed to the transformers 5 layout, ``base`` recorded, processor with ms-swift's template and
    a 336 bicubic stretch, ``text4seg_config.json``.

    Returns:
        ``Path(out)``, loadable with ``load_model(out)`` / ``Segmenter.from_pretrained(out)``.
    """
    from transformers import AutoProcessor

    from text4seg.io import atomic_directory, write_json_atomic

    src_path, base_path = _local(src), _local(base)
    cell = _grid(grid, str(src).rstrip("/"))
    adapter_config = _read_json(src_path / "adapter_config.json")
    files = sorted(src_path.glob("adapter_model.*"))
    if not files:
        raise FileNotFoundError(f"{src_path}: no adapter_model.safetensors or adapter_model.bin")
    renamed = {}
    for key, value in load_state_dict(files[0]).items():
        inner = key.replace("base_model.model.", "", 1)
        inner = re.sub(r"^language_model\.model\.", "model.language_model.", inner)
        inner = re.sub(r"^language_model\.lm_head\.", "lm_head.", inner)
        inner = re.sub(r"^(multi_modal_projector|vision_tower)\.", r"model.\1.", inner)
        renamed["base_model.model." + inner] = value
    leaves = sorted({k.split(".lora_")[0].rsplit(".", 1)[-1] for k in renamed if ".lora_" in k})
    adapter_config["target_modules"] = rf"^model\.language_model\.(?:.*\.)?(?:{'|'.join(leaves)})$"
    adapter_config["base_model_name_or_path"] = str(base_path.resolve()) if Path(base).is_dir() else str(base)
    processor = AutoProcessor.from_pretrained(str(base_path))
    processor.chat_template = MS_SWIFT_TEMPLATE
    processor.tokenizer.chat_template = MS_SWIFT_TEMPLATE
    # the stretch goes to the base's vision tower input (336 for llava-1.5), not to a guess
    from transformers import AutoConfig

    side = int(AutoConfig.from_pretrained(str(base_path)).vision_config.image_size)
    ip = processor.image_processor
    ip.do_center_crop, ip.do_resize = False, False  # prepare_image stretches (bicubic) to the tower's size
    from safetensors.torch import save_file

    with atomic_directory(out, overwrite=force) as tmp:
        save_file({k: v.contiguous() for k, v in renamed.items()}, str(tmp / "adapter_model.safetensors"))
        write_json_atomic(tmp / "adapter_config.json", adapter_config)
        processor.save_pretrained(tmp)
        _text4seg_config(cell, str(src), side, "bicubic", "ms-swift").save(tmp)
    return Path(out)
