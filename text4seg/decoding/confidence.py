"""How sure the model is of an answer: the mean log-probability of its descriptor tokens, teacher-forced.

Text-as-mask gives this for free: the mask *is* the token sequence, so its likelihood under the model is a
confidence of the whole mask (used to pick the keyframe of a video). One forward pass per answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image

from text4seg.config import Text4SegConfig
from text4seg.descriptors import SEG_END, SEG_START

__all__ = ["descriptor_logprob", "label_logprobs"]


def _token_logprobs(model: Any, processor: Any, config: Text4SegConfig, render: Callable[[str], str],
                    image: Image.Image, prompt: str, answer: str) -> tuple[list[tuple[int, int]], torch.Tensor]:
    """The answer's token character offsets and the (T,) log-probability of each token, teacher-forced."""
    from text4seg.decoding.hf import encode_inputs

    tokenizer = getattr(processor, "tokenizer", processor)
    inputs = encode_inputs(model, processor, config, [image], [prompt], render)
    encoded = tokenizer(answer, add_special_tokens=False, return_offsets_mapping=True)
    ids = torch.tensor([encoded["input_ids"]], device=model.device)  # (1, T)
    prompt_len = inputs["input_ids"].shape[1]
    inputs["input_ids"] = torch.cat([inputs["input_ids"], ids], dim=1)
    inputs["attention_mask"] = torch.cat([inputs["attention_mask"], torch.ones_like(ids)], dim=1)
    logits = model(**inputs).logits[0, prompt_len - 1 : -1].float()  # (T, V)
    logprobs = torch.log_softmax(logits, dim=-1).gather(1, ids[0].unsqueeze(1)).squeeze(1)  # (T,)
    return [tuple(o) for o in encoded["offset_mapping"]], logprobs


@torch.inference_mode()
def descriptor_logprob(
    model: Any,
    processor: Any,
    config: Text4SegConfig,
    render: Callable[[str], str],
    images: Sequence[Image.Image],
    prompts: Sequence[str],
    answers: Sequence[str],
) -> list[float | None]:
    """Per answer, the mean log-probability of the tokens that overlap its ``<seg>...</seg>`` body given the
    image and prompt (None for an answer without a descriptor).

    Raises:
        ValueError: the three sequences differ in length.
    """
    if not len(images) == len(prompts) == len(answers):
        raise ValueError(f"descriptor_logprob: {len(images)} images, {len(prompts)} prompts, {len(answers)} answers")
    tokenizer = getattr(processor, "tokenizer", processor)
    out: list[float | None] = []
    for image, prompt, answer in zip(images, prompts, answers):
        start = answer.find(SEG_START)
        if start < 0:
            out.append(None)
            continue
        end = answer.find(SEG_END, start)
        body = (start + len(SEG_START), len(answer) if end < 0 else end)
        offsets = tokenizer(answer, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        if not any(a < body[1] and b > body[0] for a, b in offsets):
            out.append(None)
            continue
        offsets, logprobs = _token_logprobs(model, processor, config, render, image, prompt, answer)
        picked = [k for k, (a, b) in enumerate(offsets) if a < body[1] and b > body[0]]
        out.append(float(logprobs[picked].mean()))
    return out


@torch.inference_mode()
def label_logprobs(
    model: Any,
    processor: Any,
    config: Text4SegConfig,
    render: Callable[[str], str],
    images: Sequence[Image.Image],
    prompts: Sequence[str],
    answers: Sequence[str],
) -> list[dict[str, float]]:
    """Per answer, label -> the mean log-probability (<= 0) of the tokens that overlap that label's text in
    the descriptor's runs/cells (counts and separators excluded), teacher-forced: a score per label, e.g. per
    instance (``"person 2"``) for ranking in AP. An answer without a descriptor gives ``{}``.

    Raises:
        ValueError: the three sequences differ in length.
    """
    from text4seg.descriptors import label_spans

    if not len(images) == len(prompts) == len(answers):
        raise ValueError(f"label_logprobs: {len(images)} images, {len(prompts)} prompts, {len(answers)} answers")
    out: list[dict[str, float]] = []
    for image, prompt, answer in zip(images, prompts, answers):
        spans = label_spans(answer)
        if not spans:
            out.append({})
            continue
        offsets, logprobs = _token_logprobs(model, processor, config, render, image, prompt, answer)
        picked: dict[str, set[int]] = {}
        for label, a0, b0 in spans:
            tokens = picked.setdefault(" ".join(label.split()), set())
            tokens.update(k for k, (a, b) in enumerate(offsets) if a < b0 and b > a0)
        out.append({label: float(logprobs[sorted(k)].mean()) for label, k in picked.items() if k})
    return out
