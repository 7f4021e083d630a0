"""Tiny models for tests, benchmarks and the quickstart, one per supported backbone family, built from configs
and saved with ``save_pretrained`` (nothing is downloaded):

- ``"llava"``: a CLIP-style vision tower + a tiny Llama (``LlavaForConditionalGeneration``);
- ``"qwen2-vl"`` / ``"qwen2.5-vl"``: ``Qwen2VLForConditionalGeneration`` / ``Qwen2_5_VLForConditionalGeneration``
  (3-D rotary positions, a patch merger of 2 x 2 patches);
- ``"internvl"``: transformers-native ``InternVLForConditionalGeneration`` (InternViT + pixel shuffle + Qwen2).

In every family the image token grid equals the descriptor grid (one image token per cell), and the tokenizer
is a byte-level BPE that spends one token per descriptor cell (:mod:`text4seg.modeling.tokenizer`) with the
family's chat template and special tokens.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from text4seg.config import Text4SegConfig

__all__ = ["TINY_ARCHS", "tiny_image_side", "build_tiny_model"]

# family -> pixels per descriptor cell in units of patch_size (Qwen2-VL merges 2x2 patches, InternVL's pixel
# shuffle halves each side)
_CELL_PATCHES = {"llava": 1, "qwen2-vl": 2, "qwen2.5-vl": 2, "internvl": 2}
TINY_ARCHS = tuple(_CELL_PATCHES)


def tiny_image_side(arch: str, grid: int, patch_size: int) -> int:
    """Image side in pixels of a tiny ``arch`` model whose image token grid is ``grid`` x ``grid``."""
    if arch not in _CELL_PATCHES:
        raise ValueError(f"arch {arch!r}: expected one of {', '.join(TINY_ARCHS)}")
    return grid * patch_size * _CELL_PATCHES[arch]


def build_tiny_model(
    out_dir: str | os.PathLike,
    *,
    texts: Sequence[str],
    labels: Sequence[str],
    arch: str = "llava",
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
    """Build and save a tiny ``arch`` model whose image token grid equals the descriptor grid.

    The tokenizer is a byte-level BPE trained on ``texts`` with one token per descriptor cell of every label
    (:mod:`text4seg.modeling.tokenizer`), so a plain descriptor of an H x W grid is exactly H*W tokens. Images are
    stretched to a fixed ``image_size`` (stored in text4seg_config.json), so Qwen2-VL's dynamic resolution always
    sees the same patch grid.

    Args:
        out_dir: directory to write (created); holds config.json, model.safetensors, tokenizer, processor,
            chat template and text4seg_config.json.
        texts: text for the BPE (questions, answers, expressions).
        labels: descriptor labels to give cell tokens (background ``"others"`` is always included).
        arch: ``"llava"``, ``"qwen2-vl"``, ``"qwen2.5-vl"`` or ``"internvl"``.
        grid: descriptor grid; must be square.
        image_size: vision input side in pixels; None = :func:`tiny_image_side`; must equal it when given.
        patch_size: vision patch side in pixels.
        vision_hidden, vision_layers: vision tower width and depth.
        text_hidden, text_layers, heads: language model width, depth and attention heads (also the vision heads).
        mlp_ratio: MLP width as a multiple of the hidden size.
        vocab_size: BPE vocabulary size before the added cell tokens.
        max_positions: maximum sequence length.
        seed: weight initialisation seed.
        descriptor_form, image_position, question_template, fg_label: written to text4seg_config.json.

    Returns:
        ``Path(out_dir)``.
    """
    from text4seg.modeling.tokenizer import build_tiny_tokenizer

    gh, gw = Text4SegConfig(grid=grid).grid
    if gh != gw:
        raise ValueError(f"grid {gh}x{gw}: tiny models need a square grid")
    expected = tiny_image_side(arch, gh, patch_size)
    if image_size is None:
        image_size = expected
    if image_size != expected:
        raise ValueError(
            f"image_size {image_size}: a tiny {arch} model with grid {gh} and patch_size {patch_size} needs "
            f"{expected}"
        )
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
        [t4s_config.question_template, *texts], labels, vocab_size=vocab_size, model_max_length=max_positions,
        style=arch,
    )
    dims = _Dims(image_size, patch_size, vision_hidden, vision_layers, text_hidden, text_layers, heads, mlp_ratio,
                 max_positions, gh * gw)
    builder = {"llava": _llava, "qwen2-vl": _qwen2_vl, "qwen2.5-vl": _qwen2_vl, "internvl": _internvl}[arch]
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model, processor = builder(tokenizer, dims, arch)
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


class _Dims:
    def __init__(self, image_size: int, patch_size: int, vision_hidden: int, vision_layers: int, text_hidden: int,
                 text_layers: int, heads: int, mlp_ratio: int, max_positions: int, cells: int) -> None:
        self.image_size, self.patch_size = image_size, patch_size
        self.vision_hidden, self.vision_layers = vision_hidden, vision_layers
        self.text_hidden, self.text_layers, self.heads = text_hidden, text_layers, heads
        self.mlp_ratio, self.max_positions, self.cells = mlp_ratio, max_positions, cells

    def text_kwargs(self, tokenizer) -> dict[str, Any]:
        return dict(
            vocab_size=len(tokenizer),
            hidden_size=self.text_hidden,
            intermediate_size=self.text_hidden * self.mlp_ratio,
            num_hidden_layers=self.text_layers,
            num_attention_heads=self.heads,
            num_key_value_heads=self.heads,
            max_position_embeddings=self.max_positions,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=False,
        )


def _llava(tokenizer, d: _Dims, arch: str):
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    side = {"height": d.image_size, "width": d.image_size}
    image_processor = CLIPImageProcessor(size=side, crop_size=side, do_center_crop=False, do_resize=True)
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=d.patch_size,
        vision_feature_select_strategy="default",  # drop CLS: image tokens == patches == grid cells
        num_additional_image_tokens=1,
        chat_template=tokenizer.chat_template,
    )
    vision = CLIPVisionConfig(
        image_size=d.image_size,
        patch_size=d.patch_size,
        hidden_size=d.vision_hidden,
        intermediate_size=d.vision_hidden * d.mlp_ratio,
        num_hidden_layers=d.vision_layers,
        num_attention_heads=d.heads,
        projection_dim=d.vision_hidden,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=LlamaConfig(**d.text_kwargs(tokenizer)),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    return LlavaForConditionalGeneration(config), processor


def _mrope_section(head_dim: int) -> list[int]:
    """Temporal/height/width split of the rotary half-dimension (Qwen2-VL's 128-dim heads: [16, 24, 24])."""
    half = head_dim // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


def _qwen2_vl(tokenizer, d: _Dims, arch: str):
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    pixels = d.image_size * d.image_size
    # min_pixels = max_pixels = the fixed image area: the dynamic resolution keeps the stretched image as is
    image_processor = Qwen2VLImageProcessor(
        patch_size=d.patch_size, merge_size=2, temporal_patch_size=2, min_pixels=pixels, max_pixels=pixels
    )
    video_processor = Qwen2VLVideoProcessor(patch_size=d.patch_size, merge_size=2, temporal_patch_size=2)
    processor = Qwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                 video_processor=video_processor, chat_template=tokenizer.chat_template)
    text = dict(d.text_kwargs(tokenizer), rope_parameters={
        "rope_type": "default", "rope_theta": 10000.0, "mrope_section": _mrope_section(d.text_hidden // d.heads)})
    ids = {
        "image_token_id": tokenizer.convert_tokens_to_ids("<|image_pad|>"),
        "video_token_id": tokenizer.convert_tokens_to_ids("<|video_pad|>"),
        "vision_start_token_id": tokenizer.convert_tokens_to_ids("<|vision_start|>"),
        "vision_end_token_id": tokenizer.convert_tokens_to_ids("<|vision_end|>"),
    }
    if arch == "qwen2-vl":
        from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

        vision = dict(depth=d.vision_layers, embed_dim=d.vision_hidden, hidden_size=d.text_hidden,
                      mlp_ratio=d.mlp_ratio, num_heads=d.heads, patch_size=d.patch_size, spatial_merge_size=2,
                      temporal_patch_size=2)
        config = Qwen2VLConfig(text_config=text, vision_config=vision, **ids)
        return Qwen2VLForConditionalGeneration(config), processor
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    vision = dict(depth=d.vision_layers, hidden_size=d.vision_hidden, out_hidden_size=d.text_hidden,
                  intermediate_size=d.vision_hidden * d.mlp_ratio, num_heads=d.heads, patch_size=d.patch_size,
                  spatial_merge_size=2, temporal_patch_size=2, window_size=d.patch_size * 2 * 4,
                  fullatt_block_indexes=[d.vision_layers - 1])
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, **ids)
    return Qwen2_5_VLForConditionalGeneration(config), processor


def _internvl(tokenizer, d: _Dims, arch: str):
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVideoProcessor,
        Qwen2Config,
    )

    side = {"height": d.image_size, "width": d.image_size}
    # one tile per image (no dynamic tiling), stretched to the fixed size: the token grid is fixed
    image_processor = GotOcr2ImageProcessor(size=side, crop_to_patches=False, do_resize=True)
    processor = InternVLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                  video_processor=InternVLVideoProcessor(size=side), image_seq_length=d.cells,
                                  chat_template=tokenizer.chat_template)
    vision = dict(hidden_size=d.vision_hidden, num_hidden_layers=d.vision_layers, num_attention_heads=d.heads,
                  intermediate_size=d.vision_hidden * d.mlp_ratio, image_size=[d.image_size, d.image_size],
                  patch_size=[d.patch_size, d.patch_size])
    text = Qwen2Config(**d.text_kwargs(tokenizer))
    config = InternVLConfig(vision_config=vision, text_config=text, image_seq_length=d.cells,
                            image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"), downsample_ratio=0.5,
                            tie_word_embeddings=False)
    return InternVLForConditionalGeneration(config), processor
