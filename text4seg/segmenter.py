"""Image + query -> descriptor text -> mask: the inference API.

``Segmenter`` owns the prompt wording (from the model's ``text4seg_config.json``) and the decoding of the answer;
a :class:`GenerationBackend` owns text generation, so tests can plug in a stub and decoding strategies can be
added without touching the rest. :class:`HFGenerationBackend` wraps a transformers model + processor; all of its
generation goes through :meth:`HFGenerationBackend.generate_batch`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image

from text4seg.config import Text4SegConfig
from text4seg.descriptors import (
    LabelMap,
    decode_descriptor,
    grid_to_mask,
    referring_mask,
    sanitize_label,
)

__all__ = [
    "DECODING_MODES",
    "GeneratedText",
    "GenerationBackend",
    "HFGenerationBackend",
    "SegmentationResult",
    "Segmenter",
]

logger = logging.getLogger(__name__)

# "plain": greedy decoding with transformers' generate. "constrained" (grammar-constrained descriptor decoding)
# and "fast" (constrained + shared prefix + verified drafts, same tokens) live in text4seg.decoding and plug in
# at HFGenerationBackend.generate_batch.
DECODING_MODES = ("plain", "constrained", "fast")
_ImageLike = str | os.PathLike | Image.Image | np.ndarray


@dataclass
class GeneratedText:
    """One generated answer.

    Attributes:
        text: decoded new text (special tokens removed).
        tokens: new tokens generated for this prompt (including the end token when one was produced).
        forward_passes: decoder forward passes of the batch that produced it (shared by batched prompts).
        seconds: wall time of the batch divided by the number of prompts in it.
    """

    text: str
    tokens: int
    forward_passes: int
    seconds: float


@runtime_checkable
class GenerationBackend(Protocol):
    """Anything that answers prompts about one image with text."""

    def generate(self, image: Image.Image, prompts: Sequence[str]) -> list[GeneratedText]:
        """Answer every prompt (a user-turn text) about ``image`` (RGB, original size); one result per prompt."""
        ...


@dataclass
class SegmentationResult:
    """One answered query.

    Attributes:
        query: the expression, instruction or comma-joined class list asked.
        text: the model's full answer.
        grid: (H, W) object array of str labels decoded from the answer.
        repairs: fixes applied while decoding (empty for a well-formed answer), plus unknown class names for
            semantic prompts.
        mask: (H0, W0) bool at the original image size; int64 class ids (255 = unknown label) for semantic
            prompts.
        seconds: generation wall time (batched prompts share theirs equally).
        tokens: generated tokens.
        forward_passes: decoder forward passes of its generation batch.
        prompt: the user-turn text sent to the model.
        form: descriptor form found (``"rle"``, ``"plain"`` or ``"empty"``).
    """

    query: str
    text: str
    grid: np.ndarray
    repairs: list[str]
    mask: np.ndarray
    seconds: float
    tokens: int
    forward_passes: int
    prompt: str = ""
    form: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def foreground_share(self) -> float:
        """Share of pixels in [0, 1] that are foreground (bool mask) or not background id 0 (label map)."""
        if self.mask.size == 0:
            return 0.0
        return float(np.count_nonzero(self.mask)) / float(self.mask.size)


class HFGenerationBackend:
    """Greedy generation with a transformers image-text-to-text model.

    Args:
        model: a loaded model (optionally a peft model), in eval mode.
        processor: its processor (chat template, tokenizer, image processor).
        config: the model's :class:`Text4SegConfig` (image preprocessing, image position, grid).
        decoding: one of :data:`DECODING_MODES` (see :mod:`text4seg.decoding`).
        max_new_tokens: fixed generation budget; None = derived from the grid, form and labels ("plain"), or
            the grammar's bound ("constrained"/"fast" complete every descriptor unless a fixed budget cuts it).
        batch_size: prompts per generate call.
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        config: Text4SegConfig,
        *,
        decoding: str = "fast",
        max_new_tokens: int | None = None,
        batch_size: int = 16,
    ) -> None:
        if decoding not in DECODING_MODES:
            raise ValueError(f"decoding {decoding!r}: expected one of {DECODING_MODES}")
        if max_new_tokens is not None and max_new_tokens < 1:
            raise ValueError(f"max_new_tokens {max_new_tokens}: expected >= 1")
        if batch_size < 1:
            raise ValueError(f"batch_size {batch_size}: expected >= 1")
        self.model = model
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.config = config
        self.decoding = decoding
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self._token_cost: dict[str, int] = {}

    # ---- prompts
    def render(self, prompt: str) -> str:
        """The full prompt text for one user turn (chat template, image placeholder, generation prompt)."""
        from text4seg.model import render_chat, user_content

        messages = [{"role": "user", "content": user_content(prompt, self.config.image_position)}]
        return render_chat(self.processor, messages, add_generation_prompt=True)

    def _cost(self, text: str) -> int:
        if text not in self._token_cost:
            self._token_cost[text] = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return self._token_cost[text]

    def budget(self, prompts: Sequence[str]) -> int:
        """``max_new_tokens`` for a batch: enough for a complete answer of the config's grid and form.

        plain: H*W cells, each costing the tokens of ``"label| "`` for the longest plausible label (background,
        the fixed fg label, or the prompt itself when labels are sentences), + 64 for the sentence and tags.
        rle: at most min(W, 6) runs ``"label *W| "`` per row, + 64.
        """
        if self.max_new_tokens is not None:
            return self.max_new_tokens
        height, width = self.config.grid
        labels = [self.config.background]
        if self.config.fg_label != "sentence":
            labels.append(self.config.fg_label)
        else:
            labels.extend(sanitize_label(p)[:200] or "x" for p in prompts)
        if self.config.descriptor_form == "plain":
            cell = max(self._cost(f"{label}| ") for label in labels)
            return height * width * cell + 64
        run = max(self._cost(f"{label} *{width}| ") for label in labels)
        return height * min(width, 6) * run + 64

    # ---- generation
    def generate(self, image: Image.Image, prompts: Sequence[str]) -> list[GeneratedText]:
        """Answer several prompts about one image (batched, left-padded)."""
        return self.generate_batch([image] * len(prompts), prompts)

    def generate_batch(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[GeneratedText]:
        """Answer ``prompts[i]`` about ``images[i]``; the single entry point of every decoding mode.

        Args:
            images: RGB PIL images at their original size (preprocessed here per the config).
            prompts: user-turn texts, one per image.

        Returns:
            One :class:`GeneratedText` per prompt, in order.
        """
        if len(images) != len(prompts):
            raise ValueError(f"generate_batch: {len(images)} images for {len(prompts)} prompts")
        out: list[GeneratedText] = []
        for start in range(0, len(prompts), self.batch_size):
            chunk_images = images[start : start + self.batch_size]
            chunk_prompts = prompts[start : start + self.batch_size]
            # --- decoding modes (text4seg.decoding): "constrained" and "fast" dispatch there
            if self.decoding != "plain":
                from text4seg.decoding import generate_batch as generate_descriptors

                out.extend(generate_descriptors(self, chunk_images, chunk_prompts))
                continue
            # --- end of decoding modes
            out.extend(self._generate_plain(chunk_images, chunk_prompts))
        return out

    @torch.inference_mode()
    def _generate_plain(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[GeneratedText]:
        from text4seg.decoding.hf import encode_inputs

        start = time.perf_counter()
        batch = encode_inputs(self.model, self.processor, self.config, images, prompts, self.render)
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            pad_id = self.tokenizer.eos_token_id
        generated = self.model.generate(
            **batch,
            max_new_tokens=self.budget(prompts),
            do_sample=False,
            num_beams=1,
            pad_token_id=pad_id,
        )
        new = generated[:, batch["input_ids"].shape[1] :]
        seconds = (time.perf_counter() - start) / max(len(prompts), 1)
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        results = []
        for row in new.tolist():
            count = len(row)
            for k, token in enumerate(row):
                if token in eos_ids:
                    count = k + 1
                    break
            text = self.tokenizer.decode(row[:count], skip_special_tokens=True)
            results.append(GeneratedText(text=text, tokens=count, forward_passes=new.shape[1], seconds=seconds))
        return results


class Segmenter:
    """Segments images from referring expressions, free-form instructions or class lists.

    Args:
        backend: generates answers (see :class:`GenerationBackend`).
        config: the model's :class:`Text4SegConfig` (prompt wording, grid, background label).
    """

    def __init__(self, backend: GenerationBackend, config: Text4SegConfig) -> None:
        self.backend = backend
        self.config = config

    @classmethod
    def from_pretrained(
        cls,
        model: str | os.PathLike,
        adapter: str | os.PathLike | None = None,
        *,
        device: str | None = None,
        dtype: str | None = None,
        load_in_4bit: bool = False,
        load_in_8bit: bool = False,
        attn: str | None = None,
        decoding: str = "fast",
        max_new_tokens: int | None = None,
        batch_size: int = 16,
        question_template: str | None = None,
        trust_remote_code: bool = False,
    ) -> Segmenter:
        """Load a model (+ adapter) and its ``text4seg_config.json``.

        Args:
            model: hub id or directory of a model, or an adapter directory (its base is found automatically).
            adapter: LoRA adapter directory.
            device, dtype, load_in_4bit, load_in_8bit, attn: see :func:`text4seg.model.load_model`.
            decoding: ``"plain"`` greedy, ``"constrained"`` (grammar-masked greedy, never malformed) or
                ``"fast"`` (the tokens of ``"constrained"`` in far fewer forward passes); see
                :mod:`text4seg.decoding`.
            max_new_tokens: fixed generation budget (default: derived from the grid).
            batch_size: prompts per generate call.
            question_template: override the stored referring question (must contain ``{expression}``), e.g. to
                match the wording a model was trained with.
            trust_remote_code: passed to transformers.
        """
        from text4seg.model import load_model

        loaded = load_model(
            model,
            adapter,
            device=device,
            dtype=dtype,
            load_in_4bit=load_in_4bit,
            load_in_8bit=load_in_8bit,
            attn=attn,
            trust_remote_code=trust_remote_code,
        )
        config = loaded.config
        if question_template is not None:
            config = Text4SegConfig.from_dict({**config.to_dict(), "question_template": question_template})
        backend = HFGenerationBackend(
            loaded.model,
            loaded.processor,
            config,
            decoding=decoding,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
        )
        return cls(backend, config)

    # ---- prompts
    def referring_prompt(self, expression: str) -> str:
        """The config's question template filled with ``expression``."""
        if not isinstance(expression, str) or not expression.strip():
            raise ValueError(f"query: expected a non-empty expression, got {expression!r}")
        return self.config.question_template.format(expression=expression)

    def semantic_prompt(self, class_names: Sequence[str]) -> str:
        """A question listing ``class_names`` (the config's semantic template, else the evaluation template)."""
        if isinstance(class_names, str) or not class_names:
            raise ValueError(f"classes: expected a non-empty list of class names, got {class_names!r}")
        if self.config.semantic_template is not None:
            return self.config.semantic_template.format(classes=", ".join(class_names))
        from text4seg.prompts import semantic_question

        return semantic_question(list(class_names), family="all", template=0)

    # ---- decoding
    def _result(
        self,
        query: str,
        prompt: str,
        generated: GeneratedText,
        out_hw: tuple[int, int],
        classes: Sequence[str] | None,
        upsample: str,
    ) -> SegmentationResult:
        height, width = self.config.grid
        decoded = decode_descriptor(generated.text, height, width, background=self.config.background)
        repairs = list(decoded.repairs)  # an answer without descriptor says so here ("no descriptor found...")
        if classes is None:
            mask = referring_mask(decoded.labels, out_hw, mode=upsample, background=self.config.background)
        else:
            label_map = LabelMap(list(classes), background=self.config.background)
            _, unknown = label_map.ids(decoded.labels)
            repairs.extend(f"unknown class {name!r}: id {label_map.fallback_id}" for name in unknown)
            mask = grid_to_mask(decoded.labels, label_map, out_hw, mode=upsample)
        return SegmentationResult(
            query=query,
            text=generated.text,
            grid=decoded.labels,
            repairs=repairs,
            mask=mask,
            seconds=generated.seconds,
            tokens=generated.tokens,
            forward_passes=generated.forward_passes,
            prompt=prompt,
            form=decoded.form,
        )

    def _requests(
        self, query: str | Sequence[str] | None, instruction: str | None, classes: Sequence[str] | None
    ) -> tuple[list[tuple[str, str]], bool]:
        given = sum(x is not None for x in (query, instruction, classes))
        if given != 1:
            raise ValueError("segment: give exactly one of query, instruction= or classes=")
        if instruction is not None:
            if not isinstance(instruction, str) or not instruction.strip():
                raise ValueError(f"instruction: expected a non-empty string, got {instruction!r}")
            return [(instruction, instruction)], True
        if classes is not None:
            classes = list(classes)
            return [(", ".join(classes), self.semantic_prompt(classes))], True
        if isinstance(query, str):
            return [(query, self.referring_prompt(query))], True
        queries = list(query)
        if not queries:
            raise ValueError("query: expected at least one expression")
        return [(q, self.referring_prompt(q)) for q in queries], False

    def segment(
        self,
        image: _ImageLike,
        query: str | Sequence[str] | None = None,
        *,
        instruction: str | None = None,
        classes: Sequence[str] | None = None,
        upsample: str = "nearest",
    ) -> SegmentationResult | list[SegmentationResult]:
        """Segment one image.

        Args:
            image: path, PIL image or HxWx3 uint8 array (EXIF orientation applied, any mode converted).
            query: a referring expression (-> one result) or a list of them (-> a list, generated as a batch).
            instruction: free-form text sent to the model as is (reasoning segmentation).
            classes: class names for a semantic prompt; the result's mask is an int64 label map with the index
                of each class in ``classes`` (255 for labels that match none; background -> 255 unless
                ``"others"`` is listed).
            upsample: grid -> pixel upsampling, ``"nearest"`` or ``"smooth"``.

        Returns:
            :class:`SegmentationResult` (a list for a list of queries); masks at the image's original size.
        """
        single = query is None or isinstance(query, str)
        results = self.segment_many([(image, query)], instruction=instruction, classes=classes, upsample=upsample)
        return results[0][0] if single else results[0]

    def segment_many(
        self,
        items: Sequence[tuple[_ImageLike, str | Sequence[str] | None]],
        *,
        instruction: str | None = None,
        classes: Sequence[str] | None = None,
        upsample: str = "nearest",
    ) -> list[list[SegmentationResult]]:
        """Segment several images, each with its expressions; prompts of all images are generated in batches
        when the backend offers ``generate_batch``.

        Args:
            items: ``(image, queries)`` pairs (queries: one expression or a list). With ``instruction=`` or
                ``classes=`` the queries must be None and that request is asked of every image.
            upsample: ``"nearest"`` or ``"smooth"``.

        Returns:
            Per item, its results in query order.
        """
        from text4seg.images import load_image

        if upsample not in ("nearest", "smooth"):
            raise ValueError(f"upsample {upsample!r}: expected 'nearest' or 'smooth'")
        images: list[Image.Image] = []
        requests: list[list[tuple[str, str]]] = []
        for image, query in items:
            loaded = load_image(image)
            reqs, _ = self._requests(query, instruction, classes)
            images.append(loaded)
            requests.append(reqs)
        flat_images = [images[i] for i, reqs in enumerate(requests) for _ in reqs]
        flat_prompts = [prompt for reqs in requests for _, prompt in reqs]
        if hasattr(self.backend, "generate_batch"):
            generated = self.backend.generate_batch(flat_images, flat_prompts)
        else:
            generated = []
            for image, reqs in zip(images, requests):
                generated.extend(self.backend.generate(image, [prompt for _, prompt in reqs]))
        if len(generated) != len(flat_prompts):
            raise ValueError(f"backend returned {len(generated)} answers for {len(flat_prompts)} prompts")
        out: list[list[SegmentationResult]] = []
        k = 0
        for image, reqs in zip(images, requests):
            out_hw = (image.height, image.width)
            results = []
            for query, prompt in reqs:
                results.append(self._result(query, prompt, generated[k], out_hw, classes, upsample))
                k += 1
            out.append(results)
        return out

    def with_config(self, **changes: Any) -> Segmenter:
        """A segmenter sharing this backend with some config fields changed (validated)."""
        config = replace(self.config, **changes)
        if isinstance(self.backend, HFGenerationBackend):
            backend = HFGenerationBackend(
                self.backend.model,
                self.backend.processor,
                config,
                decoding=self.backend.decoding,
                max_new_tokens=self.backend.max_new_tokens,
                batch_size=self.backend.batch_size,
            )
        else:
            backend = self.backend
        return Segmenter(backend, config)
