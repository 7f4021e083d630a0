"""Tiny models for tests, benchmarks and the quickstart: a CLIP-style vision tower + a tiny Llama (a LLaVA)
whose vision patch grid equals the descriptor grid, with a byte-level BPE that spends one token per descriptor
cell (:mod:`text4seg.modeling.tokenizer`). Built from configs, saved with ``save_pretrained``; nothing is
downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from text4seg.config import Text4SegConfig

__all__ = ["build_tiny_model"]


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

    from text4seg.modeling.tokenizer import build_tiny_tokenizer

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
