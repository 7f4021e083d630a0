"""Fast greedy decoding with the same tokens as plain ``generate``: one vision pass per image, a shared prompt
prefix, batched rows with left padding, and draft verification (row copy, forced tokens, n-gram lookup, and the previous frame's answer).

How a batch runs:

1. Prompts are grouped by image (the same PIL object). Each image goes through the vision tower once; its
   features replace the image tokens of every prompt about it (``inputs_embeds``), so an image placed after the
   question is still encoded only once.
2. Prefix sharing: within a group, the longest common token prefix (the image, when it comes before the
   question) is run once, in one left-padded pass over all groups; its KV cache is then repeated to the rows of
   the group and each row runs only its own suffix.
3. Decoding: each step feeds every row its pending token plus its draft; the model scores all of them in one
   pass, and a row keeps the longest draft prefix that greedy decoding (masked by the grammar when enforced)
   would have produced, plus the next greedy token. Rejected positions stay in the cache as masked holes (rows
   accept different lengths); trailing holes are cropped, and the cache is compacted when holes dominate.
   Positions are explicit, so holes and padding never shift a row.

Supported backbones (:data:`FAST_MODEL_TYPES`): models whose image features are scattered at image tokens and
whose language model is a :class:`transformers.DynamicCache` of full-attention layers: LLaVA and InternVL (one 1-D
rotary position per token), and Qwen2-VL / Qwen2.5-VL, whose 3-D rotary positions (temporal, height, width) come
from the model's own ``get_rope_index`` for the prompt; every later token sits at its 1-D index plus the row's
rope delta on all three axes, as in ``generate``. The caller falls back to ``generate`` for others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from text4seg.config import Text4SegConfig
from text4seg.decoding.drafts import Drafter
from text4seg.decoding.hf import MaskBank, eos_token_ids, pad_token_id
from text4seg.decoding.vocab import TokenConstraint

__all__ = ["FAST_MODEL_TYPES", "MROPE_MODEL_TYPES", "fast_unsupported", "generate_fast"]

logger = logging.getLogger(__name__)

# generation_config fields whose processors plain generate would apply and the fast loop does not
_PROCESSOR_FIELDS = {
    "repetition_penalty": (None, 1.0),
    "no_repeat_ngram_size": (None, 0),
    "encoder_no_repeat_ngram_size": (None, 0),
    "bad_words_ids": (None,),
    "begin_suppress_tokens": (None,),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "sequence_bias": (None,),
    "min_length": (None, 0),
    "min_new_tokens": (None, 0),
}


# model types the fast loop reproduces token for token; those with 3-D (multimodal) rotary positions
MROPE_MODEL_TYPES = ("qwen2_vl", "qwen2_5_vl")
FAST_MODEL_TYPES = ("llava", "internvl", *MROPE_MODEL_TYPES)


def _base_model(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def fast_unsupported(model: Any) -> str | None:
    """Why the fast loop cannot reproduce ``generate`` for ``model``, or None when it can."""
    base = _base_model(model)
    model_type = getattr(getattr(base, "config", None), "model_type", None)
    if model_type not in FAST_MODEL_TYPES:
        return f"model type {model_type!r} (the fast loop supports {', '.join(map(repr, FAST_MODEL_TYPES))})"
    text_config = base.config.get_text_config(decoder=True)
    if (
        getattr(text_config, "sliding_window", None)
        or getattr(text_config, "layer_types", None)
        and any(t != "full_attention" for t in text_config.layer_types)
    ):
        return "sliding-window attention layers"
    generation_config = getattr(model, "generation_config", None)
    for name, neutral in _PROCESSOR_FIELDS.items():
        value = getattr(generation_config, name, None)
        if value not in neutral:
            return f"generation_config.{name} = {value!r}"
    return None


@dataclass
class _Row:
    index: int
    drafter: Drafter
    budget: int
    generated: list[int]
    passes: int = 0
    done: bool = False


class _Cache:
    """A DynamicCache plus the (rows, slots) attention mask of its slots and each row's next position."""

    def __init__(self, cache: Any, mask: torch.Tensor) -> None:
        self.cache = cache
        self.mask = mask
        self.next_pos = mask.sum(-1)

    def keep_rows(self, keep: torch.Tensor) -> None:
        self.cache.batch_select_indices(keep)
        self.mask = self.mask[keep]
        self.next_pos = self.next_pos[keep]

    def tidy(self) -> None:
        """Drop slots masked for every row at the end, and compact when more than half are holes."""
        used = self.mask.any(0)
        if not bool(used.any()):
            return
        last = int(torch.nonzero(used)[-1]) + 1
        trailing = self.mask.shape[1] - last
        if trailing:
            self.cache.crop(-trailing)
            self.mask = self.mask[:, :last]
        length = self.mask.shape[1]
        if length < 64 or float(self.mask.float().mean()) > 0.5:
            return
        counts = self.mask.sum(-1)
        new_length = int(counts.max())
        # left-aligned padding: each row's valid slots, in order, at the end of the new cache
        order = torch.argsort(self.mask.to(torch.int8), dim=-1, stable=True)[:, length - new_length :]
        for layer in self.cache.layers:
            index = order[:, None, :, None].expand(-1, layer.keys.shape[1], -1, layer.keys.shape[-1])
            layer.keys = layer.keys.gather(2, index.to(layer.keys.device))
            index = order[:, None, :, None].expand(-1, layer.values.shape[1], -1, layer.values.shape[-1])
            layer.values = layer.values.gather(2, index.to(layer.values.device))
        self.mask = torch.gather(self.mask, 1, order)


class _Positions:
    """Rotary positions of the slots of each row: 1-D indices, or for 3-D (mrope) models the model's own prompt
    positions (3, n) and, past the prompt, index + the row's delta on all three axes."""

    def __init__(self) -> None:
        self.tables: list[torch.Tensor] = []  # per row: (3, prompt length)
        self.deltas: list[int] = []

    @property
    def mrope(self) -> bool:
        return bool(self.tables)

    def add(self, table: torch.Tensor) -> None:
        self.tables.append(table)
        self.deltas.append(int(table.max()) + 1 - table.shape[1])

    def __call__(self, positions: torch.Tensor, rows: Sequence[int]) -> torch.Tensor:
        """``positions`` (B, L) 1-D slot indices of rows ``rows`` -> (B, L), or (3, B, L) for mrope models."""
        if not self.mrope:
            return positions
        out = positions[None].repeat(3, 1, 1)
        for b, i in enumerate(rows):
            table = self.tables[i].to(positions.device)
            inside = positions[b] < table.shape[1]
            out[:, b] = torch.where(inside[None], table[:, positions[b].clamp(max=table.shape[1] - 1)],
                                    positions[b][None] + self.deltas[i])
        return out


def _image_inputs(enc: Any, images: int) -> dict[str, torch.Tensor]:
    """The vision inputs of the first of ``images`` identical images of a processor batch."""
    pixel_values = enc["pixel_values"]
    per_image = pixel_values.shape[0] // images  # patches (Qwen2-VL) or tiles (InternVL) or 1 (LLaVA)
    out = {"pixel_values": pixel_values[:per_image]}
    if "image_grid_thw" in enc:
        out["image_grid_thw"] = enc["image_grid_thw"][:1]
    if "image_sizes" in enc:
        out["image_sizes"] = enc["image_sizes"][:1]
    return out


def _forward(
    model: Any, embeds: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any, keep: int
):
    out = model(
        inputs_embeds=embeds,
        attention_mask=mask,
        position_ids=positions,
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=keep,
    )
    return out.logits


def _choose(logits: torch.Tensor, masks: torch.Tensor | None, suppress: torch.Tensor | None = None) -> list[list[int]]:
    """Greedy ids (rows, positions) of ``logits`` (rows, positions, V) restricted to ``masks`` (same shape), never
    one of ``suppress`` (ids; ``generation_config.suppress_tokens``, as ``generate`` applies them)."""
    if suppress is not None:
        logits = logits.index_fill(-1, suppress.to(logits.device), float("-inf"))
    if masks is not None:
        vocab = min(logits.shape[-1], masks.shape[-1])
        logits = logits[..., :vocab].masked_fill(~masks[..., :vocab], float("-inf"))
    return logits.argmax(-1).tolist()


@torch.inference_mode()
def generate_fast(
    model: Any,
    processor: Any,
    config: Text4SegConfig,
    images: Sequence[Image.Image],
    prompts: Sequence[str],
    *,
    render: Callable[[str], str],
    constraints: Sequence[TokenConstraint | None],
    enforce: bool,
    budgets: Sequence[int],
    bank: MaskBank,
    speculate: bool = True,
    share_prefix: bool = True,
    max_draft: int = 24,
    min_shared: int = 64,
    previous: Sequence[Sequence[int] | None] | None = None,
    max_temporal_draft: int | None = None,
) -> list[tuple[list[int], int]]:
    """Greedy answers to ``prompts[i]`` about ``images[i]``, token for token what ``generate`` (with the grammar
    mask when ``enforce``) gives, in fewer forward passes.

    Args:
        model, processor, config: a LLaVA-style model (see :func:`fast_unsupported`), its processor and config.
        images, prompts: one image (RGB PIL, original size) per user-turn prompt; prompts about the same image
            object share its vision pass and prompt prefix.
        render: user-turn text -> full prompt text (chat template).
        constraints: per prompt, the grammar to enforce or follow for drafts (None: no grammar).
        enforce: restrict tokens to the grammar (constrained decoding) or only use it for drafts.
        budgets: per prompt, the most new tokens.
        bank: mask cache.
        speculate: propose and verify drafts (False: one token per pass).
        share_prefix: run the common prefix of prompts about one image once (in a pass of its own, when that
            saves at least ``min_shared`` prompt tokens).
        max_draft: most draft tokens per row and pass.
        previous: per prompt, token ids of an earlier answer to the same question (the previous video frame's)
            to draft from, or None (temporal drafts; see :class:`text4seg.decoding.drafts.Drafter`).
        max_temporal_draft: most draft tokens of a pass whose draft starts with the previous answer (None:
            ``max_draft``).

    Returns:
        Per prompt ``(token ids, forward passes)``: the new tokens up to and including the end token, and the
        passes the row took part in (a shared prefix pass included).
    """
    from text4seg.modeling.inputs import encode_prompt, prepare_image

    if previous is not None and len(previous) != len(prompts):
        raise ValueError(f"previous: {len(previous)} entries for {len(prompts)} prompts")
    tokenizer = getattr(processor, "tokenizer", processor)
    base = _base_model(model)
    device = model.device
    dtype = getattr(model, "dtype", torch.float32)
    embed = model.get_input_embeddings()
    image_token = getattr(base.config, "image_token_id", None)
    if image_token is None:
        image_token = getattr(base.config, "image_token_index", None)
    eos = eos_token_ids(model, tokenizer)
    eos_set = set(eos)
    pad = pad_token_id(tokenizer, eos)

    suppressed = getattr(getattr(model, "generation_config", None), "suppress_tokens", None)
    suppress = torch.tensor(sorted(set(suppressed)), dtype=torch.long) if suppressed else None
    mrope = getattr(base.config, "model_type", None) in MROPE_MODEL_TYPES
    place = _Positions()
    tables: dict[int, torch.Tensor] = {}

    # 1. tokens per row and one vision pass per image
    groups: dict[int, list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault(id(image), []).append(i)
    row_ids: list[list[int]] = [[] for _ in prompts]
    row_group: list[int] = [0] * len(prompts)
    features: list[torch.Tensor | None] = []
    for g, members in enumerate(groups.values()):
        prepared = prepare_image(images[members[0]], config, processor)
        texts = [render(prompts[i]) for i in members]
        enc = encode_prompt(processor, texts, [prepared] * len(members), padding_side="left")
        ids, attention = enc["input_ids"], enc["attention_mask"]
        for r, i in enumerate(members):
            row_ids[i] = ids[r][attention[r].bool()].tolist()
            row_group[i] = g
        vision = _image_inputs(enc, len(members)) if "pixel_values" in enc else None
        if mrope:
            for r, i in enumerate(members):
                keep = attention[r].bool()
                table, _ = base.model.get_rope_index(
                    ids[r][keep][None], mm_token_type_ids=enc["mm_token_type_ids"][r][keep][None],
                    image_grid_thw=None if vision is None else vision["image_grid_thw"],
                )
                tables[i] = table[:, 0]  # (3, prompt length)
        feats = None
        if vision is not None and image_token is not None and image_token in row_ids[members[0]]:
            vision = {k: v.to(device=device, dtype=dtype) if v.is_floating_point() else v.to(device)
                      for k, v in vision.items()}
            out = model.get_image_features(**vision)
            pooled = getattr(out, "pooler_output", out)
            feats = pooled[0] if isinstance(pooled, (list, tuple)) else pooled.reshape(-1, pooled.shape[-1])
        features.append(feats)
    for i in sorted(tables):
        place.add(tables[i])

    def embed_span(i: int, a: int, b: int) -> torch.Tensor:
        ids = torch.tensor(row_ids[i][a:b], dtype=torch.long, device=device)
        out = embed(ids)
        if image_token is not None and features[row_group[i]] is not None:
            where = ids == image_token
            if bool(where.any()):
                first = row_ids[i][:a].count(image_token)
                feats = features[row_group[i]]
                out = out.clone()
                out[where] = feats[first : first + int(where.sum())].to(out.dtype)
        return out

    def stack_left(parts: list[torch.Tensor], width: int) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = parts[0].shape[-1]
        embeds = torch.zeros((len(parts), width, hidden), dtype=parts[0].dtype, device=device)
        mask = torch.zeros((len(parts), width), dtype=torch.long, device=device)
        for r, part in enumerate(parts):
            if len(part):
                embeds[r, width - len(part) :] = part
                mask[r, width - len(part) :] = 1
        return embeds, mask

    rows = [
        _Row(
            i,
            Drafter(constraints[i], enforce, row_ids[i], max_draft if speculate else 0,
                    previous=None if previous is None else previous[i],
                    max_temporal_draft=max_temporal_draft if speculate else 0),
            int(budgets[i]),
            [],
        )
        for i in range(len(prompts))
    ]

    # 2. prefill: shared prefixes (one pass over all groups), then each row's suffix
    from transformers import DynamicCache

    cache = DynamicCache(config=base.config)
    n_groups = len(groups)
    sizes = [len(m) for m in groups.values()]
    if share_prefix and max(sizes) > 1:
        prefix_len = []
        for members in groups.values():
            first = row_ids[members[0]]
            common = min(len(row_ids[i]) for i in members) - 1  # every row keeps >= 1 suffix token
            for i in members[1:]:
                other = row_ids[i]
                k = 0
                while k < common and first[k] == other[k]:
                    k += 1
                common = k
            prefix_len.append(max(common, 0))
        group_first = [members[0] for members in groups.values()]
        parts = [embed_span(group_first[g], 0, prefix_len[g]) for g in range(n_groups)]
        width = max(prefix_len)
        # a separate prefix pass pays off only when it saves enough prompt tokens (the image, when it comes
        # first); a group without a prefix would be an all-padding row
        saved = sum((size - 1) * p for size, p in zip(sizes, prefix_len))
        if saved >= min_shared and min(prefix_len) > 0:
            embeds, mask = stack_left(parts, width)
            positions = place((mask.cumsum(-1) - 1).clamp(min=0), group_first)
            _forward(model, embeds, mask, positions, cache, 1)
            cache.batch_select_indices(torch.tensor(row_group, device=device))
            prefix_mask = mask[torch.tensor(row_group, device=device)]
            for row in rows:
                row.passes += 1
            starts = [prefix_len[row_group[i]] for i in range(len(rows))]
        else:
            prefix_mask = torch.zeros((len(rows), 0), dtype=torch.long, device=device)
            starts = [0] * len(rows)
    else:
        prefix_mask = torch.zeros((len(rows), 0), dtype=torch.long, device=device)
        starts = [0] * len(rows)
    parts = [embed_span(i, starts[i], len(row_ids[i])) for i in range(len(rows))]
    embeds, suffix_mask = stack_left(parts, max(len(p) for p in parts))
    mask = torch.cat([prefix_mask, suffix_mask], dim=1)
    positions = place((mask.cumsum(-1) - 1).clamp(min=0)[:, prefix_mask.shape[1] :], range(len(rows)))
    logits = _forward(model, embeds, mask, positions, cache, 1)
    state = _Cache(cache, mask)
    for row in rows:
        row.passes += 1
    masks = None
    if enforce:
        masks = torch.stack([bank.get(r.drafter.constraint, r.drafter.allowed()) for r in rows])[:, None]
    first = _choose(logits, masks, suppress)
    active: list[_Row] = []
    pending: list[int] = []
    for row, chosen in zip(rows, first):
        token = chosen[0]
        row.drafter.push(token)
        row.generated.append(token)
        if token in eos_set or len(row.generated) >= row.budget:
            row.done = True
        else:
            active.append(row)
            pending.append(token)
    if len(active) < len(rows):
        state.keep_rows(torch.tensor([r.index for r in rows if not r.done], device=device, dtype=torch.long))

    # 3. decoding: pending token + draft per row, verified in one pass
    while active:
        drafts, draft_states = [], []
        for row in active:
            room = row.budget - len(row.generated) - 1
            tokens, states = row.drafter.draft() if room > 0 else ([], [row.drafter.state])
            drafts.append(tokens[:room])
            draft_states.append(states[: room + 1])
        width = 1 + max(len(d) for d in drafts)
        inputs = torch.full((len(active), width), pad, dtype=torch.long)
        step_mask = torch.zeros((len(active), width), dtype=torch.long)
        for r, (token, draft) in enumerate(zip(pending, drafts)):
            inputs[r, : 1 + len(draft)] = torch.tensor([token, *draft])
            step_mask[r, : 1 + len(draft)] = 1
        inputs, step_mask = inputs.to(device), step_mask.to(device)
        full_mask = torch.cat([state.mask, step_mask], dim=1)
        positions = place(state.next_pos[:, None] + torch.arange(width, device=device)[None, :],
                          [row.index for row in active])
        logits = _forward(model, embed(inputs), full_mask, positions, state.cache, width)
        masks = None
        if enforce:
            masks = torch.stack(
                [
                    bank.get(row.drafter.constraint, row.drafter.allowed(states[j]))
                    if j < len(states) and states[j] is not None
                    else bank.everything
                    for row, states in zip(active, draft_states)
                    for j in range(width)
                ]
            ).view(len(active), width, -1)
        chosen = _choose(logits, masks, suppress)
        still: list[_Row] = []
        next_pending: list[int] = []
        keep: list[int] = []
        for r, (row, draft, preds) in enumerate(zip(active, drafts, chosen)):
            row.passes += 1
            m = 0
            while m < len(draft) and preds[m] == draft[m]:
                m += 1
            step_mask[r, m + 1 :] = 0
            for token in [*draft[:m], preds[m]]:
                row.drafter.push(token)
                row.generated.append(token)
                if token in eos_set or len(row.generated) >= row.budget:
                    row.done = True
                    break
            if not row.done:
                still.append(row)
                next_pending.append(preds[m])
                keep.append(r)
        state.mask = torch.cat([state.mask, step_mask], dim=1)
        state.next_pos = state.mask.sum(-1)
        if len(keep) < len(active):
            if not keep:
                break
            state.keep_rows(torch.tensor(keep, device=device, dtype=torch.long))
        state.tidy()
        active, pending = still, next_pending

    return [(row.generated, row.passes) for row in rows]
