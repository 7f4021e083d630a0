"""Grounded conversation generation (GCG) with a :class:`text4seg.Segmenter`: ask for a grounded caption, decode
the answer (:func:`text4seg.grounded.decode_grounded`) into phrases with masks at the image size, and score each
phrase by its label tokens (:meth:`text4seg.Segmenter.ground`, :meth:`text4seg.Segmenter.ground_many`).

The request goes through the backend like any prompt; backends that take ``grounded=`` (the HF backend) are told
so, which gives custom instructions the caption grammar too (the questions of
:data:`text4seg.prompts.GCG_QUESTIONS` are recognised anyway).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from text4seg.grounded import GroundedAnswer, decode_grounded

if TYPE_CHECKING:
    from text4seg.segmenter import Segmenter

__all__ = ["ground_many", "score_phrases"]


def _takes(method: Any, name: str) -> bool:
    try:
        return name in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


def ground_many(segmenter: Segmenter, images: Sequence[Any], instruction: str | None = None, *,
                upsample: str = "nearest", score: bool = True) -> list[GroundedAnswer]:
    """Grounded captions of ``images`` (see :meth:`text4seg.Segmenter.ground_many`)."""
    from text4seg.images import load_image
    from text4seg.prompts import gcg_question

    if upsample not in ("nearest", "smooth"):
        raise ValueError(f"upsample {upsample!r}: expected 'nearest' or 'smooth'")
    if instruction is None:
        instruction = gcg_question()
    if not isinstance(instruction, str) or not instruction.strip():
        raise ValueError(f"instruction: expected a non-empty string, got {instruction!r}")
    if isinstance(images, (str, bytes)) or not isinstance(images, Sequence):
        raise ValueError("images: expected a list of images (use ground() for one)")
    loaded = [load_image(image) for image in images]
    if not loaded:
        return []
    prompts = [instruction] * len(loaded)
    backend = segmenter.backend
    batch = getattr(backend, "generate_batch", None)
    if batch is not None and _takes(batch, "grounded"):
        generated = batch(loaded, prompts, grounded=True)
    elif batch is not None:
        generated = batch(loaded, prompts)
    else:
        generated = [answer for image in loaded for answer in backend.generate(image, [instruction])]
    if len(generated) != len(prompts):
        raise ValueError(f"backend returned {len(generated)} answers for {len(prompts)} prompts")
    height, width = segmenter.config.grid
    answers = []
    for image, answer in zip(loaded, generated):
        decoded = decode_grounded(answer.text, height, width, out_hw=(image.height, image.width), mode=upsample,
                                  background=segmenter.config.background)
        decoded.prompt = instruction
        decoded.seconds, decoded.tokens, decoded.forward_passes = answer.seconds, answer.tokens, answer.forward_passes
        answers.append(decoded)
    if score and hasattr(backend, "label_scores"):
        score_phrases(backend, loaded, answers)
    return answers


def score_phrases(backend: Any, images: Sequence[Any], answers: Sequence[GroundedAnswer]) -> None:
    """Fill ``GroundedPhrase.score`` = exp(mean log-probability of its label's tokens in the descriptor), one
    teacher-forced pass per answer with a phrase that has cells (``backend.label_scores``); phrases without
    cells keep None."""
    pending = [(image, answer) for image, answer in zip(images, answers) if any(p.cells for p in answer.phrases)]
    if not pending:
        return
    scores = backend.label_scores([image for image, _ in pending], [a.prompt for _, a in pending],
                                  [a.text for _, a in pending])
    for (_, answer), by_label in zip(pending, scores):
        # the descriptor may spell a label in another case (plain decoding); decoding matches case-insensitively
        folded: dict[str, float] = {}
        for label, value in by_label.items():
            folded.setdefault(" ".join(label.split()).casefold(), value)
        for phrase in answer.phrases:
            value = folded.get(" ".join(phrase.label.split()).casefold()) if phrase.cells else None
            phrase.score = None if value is None else math.exp(value)
