"""Batching: right-padding of tokenized items, images concatenated in item order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["CROSS_ENTROPY_IGNORE_INDEX", "Text4SegCollator"]

# Label of tokens that carry no loss (prompt, padding): PyTorch's cross-entropy ignore_index. Not to be confused
# with text4seg.datasets.semantic.IGNORE_ID (255), the pixel value semantic scoring ignores.
CROSS_ENTROPY_IGNORE_INDEX = -100


class Text4SegCollator:
    """Right-pads a list of dataset items into a batch.

    Returns:
        ``input_ids`` (B, L) int64 (pad id), ``attention_mask`` (B, L) int64, ``labels`` (B, L) int64 (-100 on
        padding), optional ``loss_weights`` (B, L) float32 (0 on padding), per-token extras padded with 0, and
        image tensors concatenated along dim 0 in item order (items without an image contribute none).
    """

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = int(pad_token_id)

    def __call__(self, features: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        length = max(len(f["input_ids"]) for f in features)
        batch: dict[str, Any] = {}

        def pad(key: str, value: float | int, dtype: torch.dtype) -> torch.Tensor:
            out = torch.full((len(features), length), value, dtype=dtype)
            for row, f in enumerate(features):
                out[row, : len(f[key])] = f[key]
            return out

        batch["input_ids"] = pad("input_ids", self.pad_token_id, torch.long)
        batch["attention_mask"] = torch.zeros((len(features), length), dtype=torch.long)
        for row, f in enumerate(features):
            batch["attention_mask"][row, : len(f["input_ids"])] = 1
        batch["labels"] = pad("labels", CROSS_ENTROPY_IGNORE_INDEX, torch.long)
        keys = sorted({k for f in features for k in f} - {"input_ids", "labels"})
        for key in keys:
            present = [f[key] for f in features if key in f]
            if present[0].dim() == 1 and len(present) == len(features):
                batch[key] = pad(key, 0, present[0].dtype)  # per-token values (loss_weights, token types)
            else:
                batch[key] = torch.cat(present, dim=0)  # image tensors, in item order
        return batch
