"""Constrained decoding through transformers' own ``generate``: a logits processor that masks every token the
descriptor grammar does not allow, plus the shared input preparation of the decoding modes."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image

from text4seg.config import Text4SegConfig
from text4seg.decoding.vocab import Allowed, TokenConstraint

__all__ = [
    "MaskBank",
    "DescriptorLogitsProcessor",
    "encode_inputs",
    "eos_token_ids",
    "pad_token_id",
    "trim_at_eos",
    "generate_plain",
    "generate_constrained",
]


class MaskBank:
    """Boolean masks ``(V,)`` of allowed sets on one device (one vocabulary), cached per constraint spec and
    state key (``constraint.spec``; the object's ``id`` only for constraints without one).

    The least recently used masks are dropped beyond ``max_masks``: label sets that change with every answer
    (sentence labels, grounded captions' phrases) would otherwise fill the device a few hundred masks at a time.
    """

    def __init__(self, vocab_size: int, device: torch.device, max_masks: int = 2048) -> None:
        self.vocab_size = vocab_size
        self.device = device
        self.max_masks = max_masks
        self.everything = torch.ones(vocab_size, dtype=torch.bool, device=device)
        self._masks: OrderedDict[tuple[Any, tuple], torch.Tensor] = OrderedDict()

    def get(self, constraint: TokenConstraint | None, allowed: Allowed | None) -> torch.Tensor:
        """The mask of ``allowed`` (all True for None or the unconstrained set)."""
        if allowed is None or allowed.everything:
            return self.everything
        spec = getattr(constraint, "spec", None)
        key = (id(constraint) if spec is None else spec, allowed.key)
        mask = self._masks.get(key)
        if mask is None:
            mask = torch.zeros(self.vocab_size, dtype=torch.bool)
            ids = [i for i in allowed.ids if i < self.vocab_size]
            mask[ids] = True
            mask = mask.to(self.device)
            self._masks[key] = mask
            while len(self._masks) > self.max_masks:
                self._masks.popitem(last=False)
        else:
            self._masks.move_to_end(key)
        return mask


def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """End-of-sequence ids of the model's generation config (else the tokenizer's)."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if eos is None:
        eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        return []
    return [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])]


def trim_at_eos(row: Sequence[int], eos: Sequence[int] | set[int]) -> list[int]:
    """The tokens of ``row`` up to and including the first end token (all of them when there is none)."""
    eos = set(eos)
    for k, token in enumerate(row):
        if token in eos:
            return list(row[: k + 1])
    return list(row)


def pad_token_id(tokenizer: Any, eos: Sequence[int]) -> int:
    """The tokenizer's pad id, else the first end id, else 0."""
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        pad = eos[0] if eos else 0
    return int(pad)


def encode_inputs(
    model: Any,
    processor: Any,
    config: Text4SegConfig,
    images: Sequence[Image.Image],
    prompts: Sequence[str],
    render: Callable[[str], str],
) -> dict[str, Any]:
    """Tokenize and preprocess a batch exactly as plain decoding does: rendered chat prompts, images prepared
    per the config, left padding, floating tensors in the model's dtype, everything on the model's device.

    An entry of ``images`` may be a list of images (context frames, then the target frame): its prompt is
    rendered with that many image placeholders (``render(prompt, n)``).
    """
    from text4seg.modeling.inputs import encode_prompt, prepare_image

    texts, prepared = [], []
    for prompt, image in zip(prompts, images):
        if isinstance(image, (list, tuple)):
            texts.append(render(prompt, len(image)) if len(image) > 1 else render(prompt))
            prepared.extend(prepare_image(frame, config, processor) for frame in image)
        else:
            texts.append(render(prompt))
            prepared.append(prepare_image(image, config, processor))
    inputs = encode_prompt(processor, texts, prepared, padding_side="left")
    device = model.device
    dtype = getattr(model, "dtype", None)
    batch = {}
    for key, value in inputs.items():
        if torch.is_tensor(value):
            value = value.to(device)
            if value.is_floating_point() and dtype is not None and dtype.is_floating_point:
                value = value.to(dtype)
        batch[key] = value
    return batch


class DescriptorLogitsProcessor:
    """A transformers logits processor that keeps every row a valid prefix of its constraint.

    Args:
        constraints: one :class:`TokenConstraint` per batch row.
        prompt_length: padded prompt length (generated tokens start there).
        bank: mask cache on the logits' device.
    """

    def __init__(self, constraints: Sequence[TokenConstraint], prompt_length: int, bank: MaskBank) -> None:
        self.constraints = list(constraints)
        self.states = [c.initial() for c in self.constraints]
        self.prompt_length = prompt_length
        self.seen = prompt_length
        self.bank = bank

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """Advance each row by its new tokens, then set the scores of disallowed tokens to -inf."""
        if input_ids.shape[1] > self.seen:
            new = input_ids[:, self.seen :].tolist()
            for i, tokens in enumerate(new):
                for token in tokens:
                    nxt = self.constraints[i].advance(self.states[i], token)
                    # None only for padding after a finished row: keep the row finished
                    self.states[i] = nxt if nxt is not None else ("X",)
            self.seen = input_ids.shape[1]
        masks = torch.stack(
            [self.bank.get(c, c.allowed(s)) for c, s in zip(self.constraints, self.states)]
        ).to(scores.device)
        if masks.shape[1] < scores.shape[1]:
            masks = torch.nn.functional.pad(masks, (0, scores.shape[1] - masks.shape[1]), value=False)
        return scores.masked_fill(~masks[:, : scores.shape[1]], float("-inf"))


@torch.inference_mode()
def generate_constrained(
    model: Any,
    processor: Any,
    config: Text4SegConfig,
    images: Sequence[Image.Image],
    prompts: Sequence[str],
    constraints: Sequence[TokenConstraint],
    render: Callable[[str], str],
    bank: MaskBank,
    max_new_tokens: int | None = None,
) -> list[tuple[list[int], int]]:
    """Greedy ``model.generate`` with :class:`DescriptorLogitsProcessor`: one token per forward pass.

    ``max_new_tokens`` defaults to the longest answer any of the constraints accepts.

    Returns:
        Per prompt ``(token ids, forward passes)``: the new tokens up to and including the end token, and the
        passes of the batch (shared by its rows, as in plain decoding).
    """
    from transformers import LogitsProcessorList

    tokenizer = getattr(processor, "tokenizer", processor)
    batch = encode_inputs(model, processor, config, images, prompts, render)
    eos = eos_token_ids(model, tokenizer)
    prompt_length = batch["input_ids"].shape[1]
    processor_ = DescriptorLogitsProcessor(constraints, prompt_length, bank)
    generated = model.generate(
        **batch,
        max_new_tokens=max_new_tokens or max(c.max_tokens() for c in constraints),
        do_sample=False,
        num_beams=1,
        pad_token_id=pad_token_id(tokenizer, eos),
        logits_processor=LogitsProcessorList([processor_]),
    )
    new = generated[:, prompt_length:]
    return [(trim_at_eos(row, eos), new.shape[1]) for row in new.tolist()]


@torch.inference_mode()
def generate_plain(
    model: Any,
    processor: Any,
    config: Text4SegConfig,
    images: Sequence[Image.Image],
    prompts: Sequence[str],
    render: Callable[[str], str],
    max_new_tokens: int,
) -> list[tuple[list[int], int]]:
    """Transformers' greedy ``model.generate`` (no constraint): the tokens the model itself prefers.

    Returns:
        Per prompt ``(token ids, forward passes)`` as :func:`generate_constrained`.
    """
    tokenizer = getattr(processor, "tokenizer", processor)
    batch = encode_inputs(model, processor, config, images, prompts, render)
    eos = eos_token_ids(model, tokenizer)
    generated = model.generate(
        **batch,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        pad_token_id=pad_token_id(tokenizer, eos),
    )
    new = generated[:, batch["input_ids"].shape[1] :]
    return [(trim_at_eos(row, eos), new.shape[1]) for row in new.tolist()]
