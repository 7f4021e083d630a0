"""``HFGenerationBackend``: a transformers image-text-to-text model answering prompts about images, in any of
the decoding modes (:data:`text4seg.options.DECODING_MODES`)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

from PIL import Image

from text4seg.config import Text4SegConfig
from text4seg.decoding.generation import GeneratedText
from text4seg.decoding.labels import grounded_prompt
from text4seg.descriptors import sanitize_label
from text4seg.options import DecodingOptions

__all__ = ["HFGenerationBackend"]


class HFGenerationBackend:
    """Greedy generation with a transformers image-text-to-text model.

    Args:
        model: a loaded model (optionally a peft model), in eval mode.
        processor: its processor (chat template, tokenizer, image processor).
        config: the model's :class:`Text4SegConfig` (image preprocessing, image position, grid).
        options: decoding mode and token budgets (:class:`text4seg.options.DecodingOptions`). A budget of None
            means: derived from the grid, form and labels (``plain``, ``fast-unconstrained``), or the grammar's
            bound (``constrained``/``fast`` complete every descriptor unless a fixed budget cuts them).
        batch_size: prompts per generation call.
        decoding, max_new_tokens: change single fields of ``options``.

    The backend owns one :class:`text4seg.decoding.decoder.DescriptorDecoder` (built on first use of a grammar
    mode), which caches the vocabulary and grammar states of this model across calls.
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        config: Text4SegConfig,
        options: DecodingOptions | None = None,
        *,
        batch_size: int = 16,
        decoding: str | None = None,
        max_new_tokens: int | None = None,
    ) -> None:
        options = options or DecodingOptions()
        if decoding is not None or max_new_tokens is not None:
            options = dataclasses.replace(options, **({"decoding": decoding} if decoding is not None else {}),
                                          **({"max_new_tokens": max_new_tokens} if max_new_tokens is not None
                                             else {}))
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size {batch_size!r}: expected an integer >= 1")
        self.model = model
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.config = config
        self.options = options
        self.batch_size = batch_size
        self._token_cost: dict[str, int] = {}
        self._decoder: Any = None

    @property
    def decoding(self) -> str:
        """The decoding mode."""
        return self.options.decoding

    @property
    def max_new_tokens(self) -> int | None:
        """The fixed token budget, or None (derived per batch)."""
        return self.options.max_new_tokens

    @property
    def decoder(self) -> Any:
        """The :class:`~text4seg.decoding.decoder.DescriptorDecoder` of this model (built once)."""
        if self._decoder is None:
            from text4seg.decoding.decoder import DescriptorDecoder

            self._decoder = DescriptorDecoder(self.model, self.processor, self.config, render=self.render,
                                              max_caption_tokens=self.options.max_caption_tokens)
        return self._decoder

    def with_config(self, config: Text4SegConfig) -> HFGenerationBackend:
        """A backend on the same model and options speaking another config (its own decoder)."""
        return HFGenerationBackend(self.model, self.processor, config, self.options, batch_size=self.batch_size)

    # ---- prompts
    def render(self, prompt: str, num_images: int = 1) -> str:
        """The full prompt text for one user turn (chat template, image placeholders, generation prompt)."""
        from text4seg.modeling.inputs import render_user_prompt

        return render_user_prompt(self.processor, self.config, prompt, num_images)

    def _cost(self, text: str) -> int:
        if text not in self._token_cost:
            self._token_cost[text] = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return self._token_cost[text]

    def budget(self, prompts: Sequence[str], grounded: bool = False) -> int:
        """``max_new_tokens`` for a batch: enough for a complete answer of the config's grid and form.

        plain: H*W cells, each costing the tokens of ``"label| "`` for the longest plausible label (background,
        the fixed fg label, or the prompt itself when labels are sentences), + 64 for the sentence and tags.
        rle: at most min(W, 6) runs ``"label *W| "`` per row, + 64. ``grounded`` (captions, GCG): labels are
        phrases of a few words, and the caption's budget (``options.max_caption_tokens``) is added.
        """
        if self.max_new_tokens is not None:
            return self.max_new_tokens
        height, width = self.config.grid
        labels = [self.config.background]
        if grounded:
            labels.append("a man in a white shirt 2")
        elif self.config.fg_label != "sentence":
            labels.append(self.config.fg_label)
        else:
            labels.extend(sanitize_label(p)[:200] or "x" for p in prompts)
        extra = 64 + (self.options.max_caption_tokens if grounded else 0)
        if self.config.descriptor_form == "plain":
            cell = max(self._cost(f"{label}| ") for label in labels)
            return height * width * cell + extra
        run = max(self._cost(f"{label} *{width}| ") for label in labels)
        return height * min(width, 6) * run + extra

    def confidence(self, images: Sequence[Image.Image], prompts: Sequence[str], answers: Sequence[str]
                   ) -> list[float | None]:
        """Mean log-probability of each answer's descriptor tokens (:mod:`text4seg.decoding.confidence`)."""
        from text4seg.decoding.confidence import descriptor_logprob

        return descriptor_logprob(self.model, self.processor, self.config, self.render, images, prompts, answers)

    def label_scores(self, images: Sequence[Image.Image], prompts: Sequence[str], answers: Sequence[str]
                     ) -> list[dict[str, float]]:
        """Per answer, label -> mean log-probability of its label tokens (:func:`~text4seg.decoding.confidence.
        label_logprobs`)."""
        from text4seg.decoding.confidence import label_logprobs

        return label_logprobs(self.model, self.processor, self.config, self.render, images, prompts, answers)

    # ---- generation
    def generate(self, image: Image.Image, prompts: Sequence[str]) -> list[GeneratedText]:
        """Answer several prompts about one image (batched, left-padded)."""
        return self.generate_batch([image] * len(prompts), prompts)

    def generate_batch(self, images: Sequence[Image.Image], prompts: Sequence[str],
                       previous: Sequence[str | Sequence[int] | None] | None = None,
                       grounded: bool | None = None) -> list[GeneratedText]:
        """Answer ``prompts[i]`` about ``images[i]``; the single entry point of every decoding mode.

        Args:
            images: RGB PIL images at their original size (preprocessed per the config); prompts about the same
                image object share its vision pass in the fast modes. An entry may be a list of images
                (context frames, then the frame the answer is about).
            prompts: user-turn texts, one per image.
            previous: per prompt, an earlier answer to the same prompt (token ids or text; the previous video
                frame's) that the fast modes draft from (temporal drafts: same tokens, fewer passes), or None.
            grounded: the answers are grounded captions (:mod:`text4seg.grounded`; the grammar modes constrain
                the caption and label the descriptor with its phrases); None: recognised from each prompt
                (:func:`~text4seg.decoding.labels.grounded_prompt`).

        Returns:
            One :class:`GeneratedText` per prompt, in order.
        """
        if len(images) != len(prompts):
            raise ValueError(f"generate_batch: {len(images)} images for {len(prompts)} prompts")
        if previous is not None and (isinstance(previous, str) or len(previous) != len(prompts)):
            raise ValueError(f"previous: expected one entry per prompt ({len(prompts)}), got {previous!r:.80}")
        out: list[GeneratedText] = []
        for start in range(0, len(prompts), self.batch_size):
            chunk_images = list(images[start : start + self.batch_size])
            chunk_prompts = list(prompts[start : start + self.batch_size])
            chunk_previous = None if previous is None else list(previous[start : start + self.batch_size])
            began = time.perf_counter()
            # prompts with several images (context frames): the fast loop shares one image's prefix across
            # prompts, so they run as "constrained" (same tokens as "fast") or "plain" ("fast-unconstrained")
            multi = any(isinstance(image, (list, tuple)) for image in chunk_images)
            mode = {"fast": "constrained", "fast-unconstrained": "plain"}.get(self.decoding, self.decoding) \
                if multi else self.decoding
            captions = bool(grounded) or (grounded is None and any(grounded_prompt(p) for p in chunk_prompts))
            if mode == "plain":
                from text4seg.decoding.hf import generate_plain

                answers = generate_plain(self.model, self.processor, self.config, chunk_images, chunk_prompts,
                                         self.render, self.budget(chunk_prompts, captions))
            else:
                budget = self.budget(chunk_prompts, captions) if mode == "fast-unconstrained" else self.max_new_tokens
                answers = self.decoder.generate_ids(chunk_images, chunk_prompts, mode=mode, max_new_tokens=budget,
                                                    previous=chunk_previous, grounded=grounded)
            seconds = (time.perf_counter() - began) / max(len(chunk_prompts), 1)
            out.extend(
                GeneratedText(text=self.tokenizer.decode(ids, skip_special_tokens=True), tokens=len(ids),
                              forward_passes=passes, seconds=seconds, ids=tuple(ids))
                for ids, passes in answers
            )
        return out
