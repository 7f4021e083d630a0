"""What every generation backend returns, and the protocol a backend follows (no model code here)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from PIL import Image

__all__ = ["GeneratedText", "GenerationBackend"]


@dataclass
class GeneratedText:
    """One generated answer.

    Attributes:
        text: decoded new text (special tokens removed).
        tokens: new tokens generated for this prompt (including the end token when one was produced).
        forward_passes: decoder forward passes of the batch that produced it (shared by batched prompts).
        seconds: wall time of the batch divided by the number of prompts in it.
        ids: the new token ids (empty when the backend does not give them); an earlier answer to pass as
            ``previous=`` for temporal drafts.
    """

    text: str
    tokens: int
    forward_passes: int
    seconds: float
    ids: tuple[int, ...] = ()


@runtime_checkable
class GenerationBackend(Protocol):
    """Anything that answers prompts about one image with text."""

    def generate(self, image: Image.Image, prompts: Sequence[str]) -> list[GeneratedText]:
        """Answer every prompt (a user-turn text) about ``image`` (RGB, original size); one result per prompt."""
        ...
