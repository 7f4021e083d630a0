"""``DescriptorDecoder``: constrained and fast descriptor generation for one model (its vocabulary, grammar
constraints and token masks are cached across calls)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from text4seg.decoding.caption import MAX_CAPTION_TOKENS, GroundedConstraint, grounded_constraint
from text4seg.decoding.generation import GeneratedText
from text4seg.decoding.labels import allowed_labels, grounded_prompt
from text4seg.decoding.vocab import TokenConstraint, token_constraint, token_vocab

__all__ = ["DECODER_MODES", "DescriptorDecoder"]

logger = logging.getLogger(__name__)

# the modes of text4seg.options.DECODING_MODES that run here ("plain" is transformers' generate)
DECODER_MODES = ("constrained", "fast", "fast-unconstrained")


class DescriptorDecoder:
    """Constrained and fast generation for one model (caches its vocabulary, constraints and masks).

    Args:
        model: a transformers image-text-to-text model (optionally peft-wrapped), in eval mode.
        processor: its processor.
        config: the model's :class:`text4seg.config.Text4SegConfig`.
        render: user-turn text -> full prompt text; default: :func:`text4seg.modeling.inputs.render_user_prompt`
            (the model's chat template, the image placed per ``config.image_position``).
        max_preamble_tokens: free tokens allowed before ``<seg>`` under the grammar (then ``<seg>`` is forced).
        max_label_bytes: longest label (UTF-8 bytes) when any label is allowed (free-form instructions), and
            longest phrase of a grounded caption.
        max_caption_tokens: caption tokens of a grounded answer before ``\n<seg>`` is forced (the phrase
            being written is closed first).
        max_draft: most draft tokens per row and pass; None = grid width + 8.
        max_temporal_draft: most draft tokens of a pass whose draft starts with the previous answer
            (``previous=``); None = 4 x ``max_draft`` (a previous frame's answer is often right for rows on end).
        share_prefix: share the prompt prefix of queries about one image.
        speculate: verify drafts (False: one token per pass).
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        config: Any,
        *,
        render: Any = None,
        max_preamble_tokens: int = 64,
        max_label_bytes: int = 128,
        max_caption_tokens: int = MAX_CAPTION_TOKENS,
        max_draft: int | None = None,
        max_temporal_draft: int | None = None,
        share_prefix: bool = True,
        speculate: bool = True,
    ) -> None:
        from text4seg.decoding.fast import fast_unsupported
        from text4seg.decoding.hf import MaskBank, eos_token_ids

        self.model = model
        self.processor = processor
        self.config = config
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.render = render or self._render
        self.max_preamble_tokens = max_preamble_tokens
        self.max_label_bytes = max_label_bytes
        self.max_caption_tokens = max_caption_tokens
        self.max_draft = config.width + 8 if max_draft is None else max_draft
        self.max_temporal_draft = 4 * self.max_draft if max_temporal_draft is None else max_temporal_draft
        self.share_prefix = share_prefix
        self.speculate = speculate
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        if head is not None and getattr(head, "weight", None) is not None:
            size = int(head.weight.shape[0])
        else:
            text_config = model.config.get_text_config(decoder=True)
            size = int(getattr(text_config, "vocab_size", 0) or len(self.tokenizer))
        self.vocab = token_vocab(self.tokenizer, size, eos_token_ids(model, self.tokenizer))
        self.bank = MaskBank(size, model.device)
        self.unsupported = fast_unsupported(model)

    def _render(self, prompt: str) -> str:
        from text4seg.modeling.inputs import render_user_prompt

        return render_user_prompt(self.processor, self.config, prompt)

    def constraint(self, prompt: str, labels: Sequence[str] | None = None, grounded: bool | None = None
                   ) -> TokenConstraint | GroundedConstraint:
        """The constraint of one answer: the config's grid and form, ``labels`` or those of the prompt; a
        grounded caption (``grounded=True``, or None and a :func:`~text4seg.decoding.labels.grounded_prompt`
        without ``labels``) gets the caption grammar, its descriptor labelled by the caption's phrases."""
        if grounded is None:
            grounded = labels is None and grounded_prompt(prompt)
        if grounded:
            if labels is not None:
                raise ValueError("labels: a grounded caption's labels are its phrases; give no labels")
            return grounded_constraint(self.vocab, self.config.height, self.config.width,
                                       self.config.descriptor_form, self.config.background,
                                       self.max_caption_tokens, self.max_label_bytes)
        if labels is None:
            labels = allowed_labels(prompt, self.config)
        return token_constraint(
            self.vocab,
            self.config.height,
            self.config.width,
            labels,
            self.config.descriptor_form,
            self.config.background,
            self.max_preamble_tokens,
            self.max_label_bytes,
        )

    def generate(
        self,
        images: Sequence[Any],
        prompts: Sequence[str],
        *,
        mode: str = "fast",
        labels: Sequence[Sequence[str] | None] | None = None,
        max_new_tokens: int | Sequence[int] | None = None,
        previous: Sequence[str | Sequence[int] | None] | None = None,
        grounded: bool | Sequence[bool | None] | None = None,
    ) -> list:
        """Answer ``prompts[i]`` about ``images[i]`` (RGB PIL images; prompts about one image object share work).

        Args:
            mode: ``"constrained"`` (generate + grammar mask), ``"fast"`` (grammar + shared prefix + drafts) or
                ``"fast-unconstrained"`` (shared prefix + drafts, no grammar: the tokens of plain greedy).
            labels: per prompt, allowed labels (background added), or None to read them from the prompt.
            max_new_tokens: most new tokens, one for all or one per prompt; required for
                ``"fast-unconstrained"``. The grammar modes run until the descriptor is complete (the grammar
                bounds its length) unless this cuts them earlier.
            previous: per prompt, an earlier answer to the same question (token ids or text; e.g. the previous
                video frame's) drafted from in the fast modes (temporal drafts), or None. The tokens are those
                of decoding without it, usually in fewer passes; the other modes ignore it.
            grounded: grounded-caption answers (:mod:`text4seg.grounded`), one flag for all or one per prompt;
                None: recognised from the prompt (:func:`~text4seg.decoding.labels.grounded_prompt`).

        Returns:
            One :class:`GeneratedText` per prompt (``seconds``: the batch's wall time divided by its prompts).
        """
        start = time.perf_counter()
        answers = self.generate_ids(images, prompts, mode=mode, labels=labels, max_new_tokens=max_new_tokens,
                                    previous=previous, grounded=grounded)
        seconds = (time.perf_counter() - start) / max(len(prompts), 1)
        return [
            GeneratedText(
                text=self.tokenizer.decode(ids, skip_special_tokens=True),
                tokens=len(ids),
                forward_passes=passes,
                seconds=seconds,
                ids=tuple(ids),
            )
            for ids, passes in answers
        ]

    def generate_ids(
        self,
        images: Sequence[Any],
        prompts: Sequence[str],
        *,
        mode: str = "fast",
        labels: Sequence[Sequence[str] | None] | None = None,
        max_new_tokens: int | Sequence[int] | None = None,
        previous: Sequence[str | Sequence[int] | None] | None = None,
        grounded: bool | Sequence[bool | None] | None = None,
    ) -> list[tuple[list[int], int]]:
        """Like :meth:`generate`, returning per prompt ``(new token ids incl. the end token, forward passes)``."""
        from text4seg.decoding.fast import generate_fast
        from text4seg.decoding.hf import generate_constrained

        if mode not in DECODER_MODES:
            raise ValueError(f"mode {mode!r}: expected one of {DECODER_MODES}")
        if len(images) != len(prompts):
            raise ValueError(f"generate: {len(images)} images for {len(prompts)} prompts")
        if not prompts:
            return []
        labels = list(labels) if labels is not None else [None] * len(prompts)
        if len(labels) != len(prompts):
            raise ValueError(f"labels: {len(labels)} entries for {len(prompts)} prompts")
        drafts = self.previous_ids(previous, len(prompts))
        enforce = mode != "fast-unconstrained"
        flags = per_prompt_flags(grounded, len(prompts))
        constraints = [self.constraint(p, lab, flag) for p, lab, flag in zip(prompts, labels, flags)]
        if max_new_tokens is None:
            if not enforce:
                raise ValueError("max_new_tokens: required for mode 'fast-unconstrained'")
            caps = [None] * len(prompts)
        elif isinstance(max_new_tokens, int):
            caps = [int(max_new_tokens)] * len(prompts)
        else:
            caps = [int(b) for b in max_new_tokens]
        if any(cap is not None and cap < 1 for cap in caps) or len(caps) != len(prompts):
            raise ValueError(f"max_new_tokens {max_new_tokens!r}: expected >= 1, one or one per prompt")
        # the grammar bounds every complete answer; an explicit cap may cut it (the answer is then repaired)
        budgets = [
            c.max_tokens() if cap is None else (min(cap, c.max_tokens()) if enforce else cap)
            for c, cap in zip(constraints, caps)
        ]
        if mode == "constrained" or (self.unsupported and enforce):
            if mode != "constrained":
                logger.info("fast decoding unavailable (%s): using constrained generate", self.unsupported)
            return generate_constrained(
                self.model,
                self.processor,
                self.config,
                images,
                prompts,
                constraints,
                self.render,
                self.bank,
                max(budgets),
            )
        if self.unsupported:
            raise ValueError(f"fast decoding unavailable for this model: {self.unsupported}")
        return generate_fast(
            self.model,
            self.processor,
            self.config,
            images,
            prompts,
            render=self.render,
            constraints=constraints,
            enforce=enforce,
            budgets=budgets,
            bank=self.bank,
            speculate=self.speculate,
            share_prefix=self.share_prefix,
            max_draft=self.max_draft,
            previous=drafts,
            max_temporal_draft=self.max_temporal_draft,
        )

    def previous_ids(self, previous: Sequence[str | Sequence[int] | None] | None, count: int
                     ) -> list[list[int] | None] | None:
        """``previous=`` entries as token ids (text tokenized without special tokens; ids outside the vocabulary
        dropped: they could never be accepted).

        Raises:
            ValueError: not one entry per prompt, or an entry that is neither text, ids nor None.
        """
        if previous is None:
            return None
        if isinstance(previous, str) or len(previous) != count:
            raise ValueError(f"previous: expected a list of {count} entries (one per prompt), got {previous!r:.80}")
        out: list[list[int] | None] = []
        for k, entry in enumerate(previous):
            if entry is None:
                out.append(None)
            elif isinstance(entry, str):
                out.append(list(self.tokenizer(entry, add_special_tokens=False)["input_ids"]))
            elif all(isinstance(t, int) and not isinstance(t, bool) for t in entry):
                out.append([int(t) for t in entry if 0 <= t < self.vocab.size])
            else:
                raise ValueError(f"previous[{k}]: expected text, token ids or None, got {entry!r:.80}")
        return out


def per_prompt_flags(grounded: bool | Sequence[bool | None] | None, count: int) -> list[bool | None]:
    """``grounded=`` as one entry per prompt (None: recognised from the prompt).

    Raises:
        ValueError: a list that is not one entry per prompt.
    """
    if grounded is None or isinstance(grounded, bool):
        return [grounded] * count
    flags = list(grounded)
    if len(flags) != count or any(f is not None and not isinstance(f, bool) for f in flags):
        raise ValueError(f"grounded: expected a bool, None or one of them per prompt ({count}), got {grounded!r:.80}")
    return flags
