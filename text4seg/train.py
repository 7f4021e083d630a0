"""Supervised fine-tuning on Text4Seg JSON: data mixing, loss-masked collation, LoRA/QLoRA/full training.

``text4seg train --model ID|DIR|tiny --data FILE.json[:ratio] ... --output-dir DIR`` (or :func:`train`). The
Hugging Face ``Trainer`` drives the loop (cosine schedule, warmup, checkpoints, resume, bf16/fp16, gradient
checkpointing, length-grouped batching, tqdm progress with the loss) and runs unchanged under
``accelerate launch`` (DDP, DeepSpeed ZeRO-2; see ``scripts/``).

Data: a JSON list of items ``{"id", "image", "height", "width", "conversations": [{"from": "human", "value":
"<image>\\n..."}, {"from": "gpt", "value": "...\\n<seg>...</seg>"}, ...], ["crop_size": [l, t, r, b]]}``. The
reference project's files load unchanged: several rounds, ``crop_size`` (a crop applied before preprocessing),
items without ``<seg>`` or without an image (plain conversation). Each conversation is rendered with the
model's chat template; only assistant tokens (the answer and the template's end-of-turn) carry labels.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import re
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from text4seg.config import Text4SegConfig
from text4seg.descriptors import (
    SEG_END,
    SEG_START,
    decode_descriptor,
    encode_descriptor,
    extract_descriptor,
    ids_to_labels,
    mask_to_grid,
    parse_grid_size,
)
from text4seg.model import (
    adapter_base,
    encode_prompt,
    is_adapter_dir,
    load_model,
    lora_target_regex,
    prepare_image,
    projector_names,
    render_chat,
    resolve_config,
    resolve_device,
    user_content,
    vision_tower_names,
)

__all__ = [
    "DataSource",
    "parse_data_spec",
    "descriptor_shape",
    "Text4SegDataset",
    "Text4SegCollator",
    "stage_config",
    "time_limit_callback",
    "TrainResult",
    "train",
    "configure",
    "run",
]

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
_IMAGE_TAG = re.compile(r"\s*<image>\s*")
_RUN_COUNT = re.compile(r"\*\s*(\d+)\s*$")


# --------------------------------------------------------------------------------------------------------------
# data sources and descriptors


@dataclass(frozen=True)
class DataSource:
    """One training JSON file and its mixing ratio.

    ``ratio`` r >= 0 gives ``floor(r)`` full passes over the file plus a seeded random ``frac(r)`` share of its
    items per epoch: ``a.json:3`` repeats a.json three times, ``b.json:0.5`` takes half of b.json.
    """

    path: Path
    ratio: float = 1.0


def parse_data_spec(spec: str | os.PathLike | tuple[str, float] | DataSource) -> DataSource:
    """``"file.json"`` or ``"file.json:RATIO"`` (or a (path, ratio) pair) -> :class:`DataSource`.

    Raises:
        ValueError: a negative or non-finite ratio.
    """
    if isinstance(spec, DataSource):
        return spec
    if isinstance(spec, tuple):
        path, ratio = spec
    else:
        text = str(spec)
        path, ratio = text, 1.0
        head, sep, tail = text.rpartition(":")
        if sep and head:
            try:
                path, ratio = head, float(tail)
            except ValueError:
                path, ratio = text, 1.0
    ratio = float(ratio)
    if not math.isfinite(ratio) or ratio < 0:
        raise ValueError(f"--data {spec}: ratio must be a finite number >= 0")
    return DataSource(Path(path), ratio)


def descriptor_shape(descriptor: str) -> tuple[int, int]:
    """Grid (H, W) a well-formed descriptor was written with: its row count and the cell count of its first row
    (run counts summed in R-RLE).

    Returns:
        ``(0, 0)`` for a descriptor without cells.
    """
    rows = [row for row in descriptor.split("\n") if row.strip()]
    if not rows:
        return (0, 0)
    width = 0
    for token in rows[0].split("|"):
        token = token.strip()
        if not token:
            continue
        count = _RUN_COUNT.search(token)
        width += int(count.group(1)) if count and "*" in token else 1
    return (len(rows), width)


def _foreground_spans(text: str, background: str) -> np.ndarray:
    """(len(text),) bool: characters of descriptor cells/runs whose label is not ``background``."""
    marks = np.zeros(len(text), dtype=bool)
    start = text.find(SEG_START)
    if start < 0:
        return marks
    start += len(SEG_START)
    end = text.find(SEG_END, start)
    end = len(text) if end < 0 else end
    # A cell/run is its text between separators without surrounding spaces: the space after a row break
    # belongs to the previous cell's token ("others\n "), not to this one.
    for match in re.finditer(r"[^|\s](?:[^|\n]*[^|\s])?", text[start:end]):
        label = match.group(0).partition("*")[0].strip()
        if label and label != background:
            marks[start + match.start() : start + match.end()] = True
    return marks


_CELL_SEPARATORS = ("| ", "\n ", "\n")


def _cell_token_table(tokenizer: Any) -> tuple[dict[int, tuple[str, int]], dict[tuple[str, int], int]]:
    """One-token descriptor cells of a tokenizer (tiny tokenizers add ``"L| "``, ``"L\\n "``, ``"L\\n"``).

    Returns:
        ``(token id -> (label, separator index), (label, separator index) -> token id)``; empty for ordinary
        tokenizers.
    """
    by_id: dict[int, tuple[str, int]] = {}
    try:
        added = tokenizer.get_added_vocab()
    except Exception:  # noqa: BLE001 - tokenizers without added-vocab support have no cell tokens
        return {}, {}
    for token, token_id in added.items():
        for k, sep in enumerate(_CELL_SEPARATORS):
            label = token[: -len(sep)]
            if token.endswith(sep) and label and label.strip() == label and "\n" not in label and "|" not in label:
                by_id[int(token_id)] = (label, k)
                break
    return by_id, {value: key for key, value in by_id.items()}


_JSON_CACHE: dict[Path, Any] = {}


def _read_json(path: Path) -> Any:
    """Parse a data file once per :func:`train` call (the probe and the dataset share it)."""
    key = path.resolve()
    if key not in _JSON_CACHE:
        try:
            _JSON_CACHE[key] = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path}: not a valid JSON file: {err}") from None
    return _JSON_CACHE[key]


class _DescriptorConverter:
    """Re-encodes answer descriptors into the model's grid and form (nearest resampling of the label grid)."""

    def __init__(self, config: Text4SegConfig) -> None:
        self.config = config

    def needs(self, descriptor: str) -> tuple[bool, str]:
        height, width = descriptor_shape(descriptor)
        form = "rle" if re.search(r"\*\s*\d", descriptor) else "plain"
        if (height, width) == (0, 0):
            return False, "no cells"
        same = (height, width) == self.config.grid and form == self.config.descriptor_form
        return (not same), f"{form} {height}x{width}"

    def convert(self, answer: str) -> str:
        descriptor = extract_descriptor(answer)
        if descriptor is None:
            return answer
        needed, _ = self.needs(descriptor)
        if not needed:
            return answer
        height, width = descriptor_shape(descriptor)
        decoded = decode_descriptor(descriptor, height, width, background=self.config.background)
        labels = decoded.labels
        names = [self.config.background] + sorted(set(labels.ravel().tolist()) - {self.config.background})
        lookup = {name: k for k, name in enumerate(names)}
        ids = np.vectorize(lookup.__getitem__, otypes=[np.int64])(labels)
        grid = ids_to_labels(mask_to_grid(ids, *self.config.grid, mode="nearest"), names, self.config.background)
        new = encode_descriptor(grid, rle=self.config.descriptor_form == "rle")
        start = answer.find(SEG_START) + len(SEG_START)
        return answer[:start] + new + answer[start + len(descriptor) :]


def stage_config(config: Text4SegConfig, grid: int | str | tuple[int, int]) -> Text4SegConfig:
    """The config of a low-resolution curriculum stage: a coarser ``grid`` and the image size scaled with it
    (so the vision tower sees proportionally fewer patches and the answer has fewer cells).

    Raises:
        ValueError: ``config`` has no fixed image size or does not stretch images, ``grid`` is not coarser than
            ``config.grid`` in both directions, or the scaled image size is not a whole number of pixels.
    """
    low = parse_grid_size(grid)
    if config.image_size is None or config.resize != "stretch":
        raise ValueError(
            "curriculum: needs a model whose text4seg_config.json has a fixed image_size and resize 'stretch'"
        )
    if low[0] >= config.grid[0] or low[1] >= config.grid[1]:
        raise ValueError(
            f"curriculum grid {low[0]}x{low[1]}: must be coarser than the model's grid {config.grid[0]}x{config.grid[1]}"
        )
    (height, width), (rows, cols) = config.image_size, config.grid
    if (height * low[0]) % rows or (width * low[1]) % cols:
        raise ValueError(
            f"curriculum grid {low[0]}x{low[1]}: the image size {height}x{width} does not scale to it in whole "
            f"pixels (grid {rows}x{cols})"
        )
    return replace(config, grid=low, image_size=(height * low[0] // rows, width * low[1] // cols))


# --------------------------------------------------------------------------------------------------------------
# dataset


@dataclass
class _Item:
    source: int
    index: int
    id: str
    image: Path | None
    crop: tuple[int, int, int, int] | None
    rounds: list[tuple[str, str]]
    chars: int


class Text4SegDataset(torch.utils.data.Dataset):
    """Training items from one or more Text4Seg JSON files, mixed by ratio, tokenized on access.

    Args:
        sources: data files with ratios (see :func:`parse_data_spec`).
        processor: the model's processor (chat template, tokenizer, image processor).
        config: the model's :class:`Text4SegConfig` (grid/form answers are converted to, image preprocessing,
            image position in the user turn).
        image_root: directory image paths are relative to; None = each JSON file's own directory.
        seed: seed of the ratio sampling.
        max_length: longest token sequence; longer items are cut at the end (an item whose prompt with the image
            alone is longer is bad).
        skip_bad: skip malformed items and missing images (counted in ``skipped``) instead of failing.
        fg_weight: loss weight of descriptor tokens of non-background cells (1 = plain cross-entropy); when not
            1 every item carries ``loss_weights``.
        cell_noise: probability in [0, 1) that an *input* descriptor cell token is swapped for the cell token
            of another label (same separator) while its target stays the true one, so the model cannot lean on
            copying neighbouring cells and must read the image. Needs one-token cells (tiny tokenizers);
            ignored with a warning otherwise.
        check_images: check at load time that every image file exists.

    Each item is a dict: ``input_ids`` (L,) int64, ``labels`` (L,) int64 (``-100`` outside assistant turns),
    optional ``loss_weights`` (L,) float32, and the processor's image tensors (``pixel_values`` (1, 3, H, W) for
    LLaVA, ...).

    Raises:
        FileNotFoundError: a missing data file, or (without ``skip_bad``) a missing image, naming the item id.
        ValueError: malformed JSON or items (naming file and item id) without ``skip_bad``.
    """

    def __init__(
        self,
        sources: Sequence[DataSource | str],
        processor: Any,
        config: Text4SegConfig,
        *,
        image_root: str | os.PathLike | None = None,
        seed: int = 0,
        max_length: int = 3072,
        skip_bad: bool = False,
        fg_weight: float = 1.0,
        cell_noise: float = 0.0,
        check_images: bool = True,
    ) -> None:
        self.sources = [parse_data_spec(s) for s in sources]
        if not self.sources:
            raise ValueError("--data: give at least one training JSON file")
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.config = config
        self.image_root = None if image_root is None else Path(image_root)
        self.max_length = int(max_length)
        self.skip_bad = skip_bad
        self.fg_weight = float(fg_weight)
        if not 0.0 <= cell_noise < 1.0:
            raise ValueError(f"cell_noise {cell_noise}: expected a probability in [0, 1)")
        self.cell_noise = float(cell_noise)
        self._cells, self._cell_of = _cell_token_table(self.tokenizer) if cell_noise > 0 else ({}, {})
        if cell_noise > 0 and not self._cells:
            logger.warning("cell_noise: the tokenizer has no one-token descriptor cells; no noise is applied")
        self.converter = _DescriptorConverter(config)
        self.stage: Text4SegConfig | None = None
        self._stage_converter: _DescriptorConverter | None = None
        self.skipped: list[str] = []
        self.items: list[_Item] = []
        self.order: list[int] = []
        for k, source in enumerate(self.sources):
            loaded = self._load_file(k, source, check_images)
            offset = len(self.items)
            self.items.extend(loaded)
            rng = random.Random(f"{seed}:{k}:{source.path.name}")
            whole, frac = int(source.ratio), source.ratio - int(source.ratio)
            picks = list(range(len(loaded))) * whole + sorted(rng.sample(range(len(loaded)), round(frac * len(loaded))))
            self.order.extend(offset + i for i in picks)
        if self.skipped:
            logger.warning("skipped %d bad items; first: %s", len(self.skipped), self.skipped[0])
        if not self.order:
            raise ValueError("--data: no training items left (empty files, ratios 0 or all items skipped)")

    # ---- loading
    def _bad(self, message: str, error: type[Exception] = ValueError) -> None:
        if not self.skip_bad:
            raise error(message + " (use --skip-bad to skip such items)")
        self.skipped.append(message)

    def _load_file(self, k: int, source: DataSource, check_images: bool) -> list[_Item]:
        path = source.path
        if not path.is_file():
            raise FileNotFoundError(f"--data {path}: no such file")
        data = _read_json(path)
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of items, got {type(data).__name__}")
        root = self.image_root if self.image_root is not None else path.parent
        items: list[_Item] = []
        logged = False
        for index, raw in enumerate(data):
            item = self._parse_item(raw, index, path, root, check_images)
            if item is None:
                continue
            item.source = k
            items.append(item)
            if not logged:
                for _, answer in item.rounds:
                    descriptor = extract_descriptor(answer)
                    if descriptor is None:
                        continue
                    needed, found = self.converter.needs(descriptor)
                    if needed:
                        logger.warning(
                            "%s: descriptors are %s, the model uses %s %dx%d: re-encoding answers on load",
                            path,
                            found,
                            self.config.descriptor_form,
                            *self.config.grid,
                        )
                    logged = True
                    break
        return items

    def _parse_item(self, raw: Any, index: int, path: Path, root: Path, check_images: bool) -> _Item | None:
        item_id = str(raw.get("id", index)) if isinstance(raw, dict) else str(index)
        where = f"{path}: item {item_id!r} (index {index})"
        if not isinstance(raw, dict):
            return self._bad(f"{where}: expected an object, got {type(raw).__name__}")
        conversations = raw.get("conversations")
        if not isinstance(conversations, list) or not conversations:
            return self._bad(f"{where}: 'conversations' must be a non-empty list")
        rounds: list[tuple[str, str]] = []
        if len(conversations) % 2:
            return self._bad(f"{where}: 'conversations' must alternate human/gpt turns and end with gpt")
        for t in range(0, len(conversations), 2):
            human, gpt = conversations[t], conversations[t + 1]
            ok = (
                isinstance(human, dict)
                and isinstance(gpt, dict)
                and human.get("from") == "human"
                and gpt.get("from") == "gpt"
                and isinstance(human.get("value"), str)
                and isinstance(gpt.get("value"), str)
            )
            if not ok:
                return self._bad(
                    f"{where}: turns {t}/{t + 1} must be {{'from': 'human', 'value': str}} then "
                    "{'from': 'gpt', 'value': str}"
                )
            rounds.append((human["value"], gpt["value"]))
        image = raw.get("image")
        image_path = None
        if image is not None:
            if not isinstance(image, str) or not image:
                return self._bad(f"{where}: 'image' must be a path string")
            image_path = Path(image) if Path(image).is_absolute() else root / image
            if check_images and not image_path.is_file():
                return self._bad(f"{where}: image {image_path} not found", FileNotFoundError)
        elif any("<image>" in q for q, _ in rounds):
            return self._bad(f"{where}: has '<image>' in its text but no 'image' field")
        crop = raw.get("crop_size")
        if crop is not None:
            valid = (
                isinstance(crop, (list, tuple))
                and len(crop) == 4
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in crop)
                and crop[0] < crop[2]
                and crop[1] < crop[3]
            )
            if not valid or image_path is None:
                return self._bad(f"{where}: 'crop_size' must be [left, top, right, bottom] with an image")
            crop = tuple(int(round(v)) for v in crop)
        chars = sum(len(q) + len(a) for q, a in rounds)
        return _Item(-1, index, item_id, image_path, crop, rounds, chars)

    # ---- curriculum
    def set_stage(self, grid: int | str | tuple[int, int] | None) -> None:
        """Serve items on a coarser descriptor grid with proportionally smaller images (the low-resolution
        stage of a curriculum), or, with None, on the model's own grid and image size.

        Raises:
            ValueError: the config has no fixed image size (or does not stretch), the grid is not coarser than
                the model's, or the image size does not scale to it in whole pixels.
        """
        if grid is None:
            self.stage, self._stage_converter = None, None
            return
        self.stage = stage_config(self.config, grid)
        self._stage_converter = _DescriptorConverter(self.stage)

    # ---- access
    def __len__(self) -> int:
        return len(self.order)

    def lengths(self) -> list[int]:
        """Cheap length estimate per position (characters / 3, +1000 with an image) for length grouping."""
        return [self.items[i].chars // 3 + (1000 if self.items[i].image is not None else 0) for i in self.order]

    def messages(self, item: _Item) -> list[dict]:
        """Chat messages of an item (content lists), answers converted to the model's grid/form."""
        messages = []
        for k, (question, answer) in enumerate(item.rounds):
            with_image = k == 0 and item.image is not None
            text = _IMAGE_TAG.sub(" ", question).strip() if "<image>" in question else question
            messages.append({"role": "user", "content": user_content(text, self.config.image_position, with_image)})
            answer = (self._stage_converter or self.converter).convert(answer)
            messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
        return messages

    def _image(self, item: _Item):
        from text4seg.images import load_image

        image = load_image(item.image)
        if item.crop is not None:
            left, top, right, bottom = item.crop
            width, height = image.size
            left, top = max(0, left), max(0, top)
            right, bottom = min(width, right), min(height, bottom)
            if right <= left or bottom <= top:
                raise ValueError(f"item {item.id!r}: crop_size {list(item.crop)} is outside image {item.image}")
            image = image.crop((left, top, right, bottom))
        return prepare_image(image, self.stage or self.config, self.processor)

    def encode(self, item: _Item) -> dict[str, torch.Tensor]:
        """Tokenize one item: chat template, image tokens, labels only on assistant turns."""
        messages = self.messages(item)
        pieces: list[tuple[str, bool]] = []  # (text, is_assistant)
        done = ""
        for k in range(0, len(messages), 2):
            prompt = render_chat(self.processor, messages[: k + 1], add_generation_prompt=True)
            full = render_chat(self.processor, messages[: k + 2])
            if not (prompt.startswith(done) and full.startswith(prompt)):
                raise ValueError(
                    f"item {item.id!r}: the chat template does not render turns incrementally "
                    "(prompt + generation prompt is not a prefix of the conversation); cannot mask the loss"
                )
            pieces.append((prompt[len(done) :], False))
            pieces.append((full[len(prompt) :], True))
            done = full
        image = self._image(item) if item.image is not None else None
        first = encode_prompt(
            self.processor,
            [pieces[0][0]],
            [image] if image is not None else None,
            image_size=self.stage.image_size if self.stage is not None else None,
        )
        ids = first["input_ids"][0].tolist()
        extras = {key: value for key, value in first.items() if key not in ("input_ids", "attention_mask")}
        per_token = {k for k, v in extras.items() if torch.is_tensor(v) and v.dim() == 2 and v.shape == (1, len(ids))}
        prompt_len = len(ids)
        labels = [IGNORE_INDEX] * len(ids)
        weights = [0.0] * len(ids)
        for text, is_answer in pieces[1:]:
            if not text:
                continue
            enc = self.tokenizer(
                text, add_special_tokens=False, return_offsets_mapping=is_answer and self.fg_weight != 1.0
            )
            piece_ids = enc["input_ids"]
            ids.extend(piece_ids)
            if is_answer:
                labels.extend(piece_ids)
                if self.fg_weight != 1.0:
                    fg = _foreground_spans(text, self.config.background)
                    weights.extend(
                        self.fg_weight if fg[s:e].any() else 1.0 for s, e in enc["offset_mapping"]
                    )
                else:
                    weights.extend([1.0] * len(piece_ids))
            else:
                labels.extend([IGNORE_INDEX] * len(piece_ids))
                weights.extend([0.0] * len(piece_ids))
        if len(ids) > self.max_length:
            if prompt_len > self.max_length:
                raise ValueError(
                    f"item {item.id!r}: its first prompt with the image is {prompt_len} tokens, more than "
                    f"max_length {self.max_length}"
                )
            ids, labels, weights = ids[: self.max_length], labels[: self.max_length], weights[: self.max_length]
        inputs = self._noisy_cells(ids, labels) if self._cells else ids
        out: dict[str, torch.Tensor] = {
            "input_ids": torch.tensor(inputs, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
        }
        if self.fg_weight != 1.0:
            out["loss_weights"] = torch.tensor(weights, dtype=torch.float32)
        for key, value in extras.items():
            if key in per_token:
                value = torch.cat([value[0], value.new_zeros(len(ids) - prompt_len)])[: len(ids)]
            out[key] = value
        return out

    def _noisy_cells(self, ids: list[int], labels: list[int]) -> list[int]:
        """Copy of ``ids`` with answer cell tokens swapped at rate ``cell_noise`` (labels untouched)."""
        present = {self._cells[t][0] for t, lab in zip(ids, labels) if lab != IGNORE_INDEX and t in self._cells}
        present.add(self.config.background)
        if self.config.fg_label != "sentence":
            present.add(self.config.fg_label)
        out = list(ids)
        for k, (token, label) in enumerate(zip(ids, labels)):
            if label == IGNORE_INDEX or token not in self._cells or random.random() >= self.cell_noise:
                continue
            own, sep = self._cells[token]
            choices = [self._cell_of[(other, sep)] for other in sorted(present) if other != own
                       and (other, sep) in self._cell_of]
            if choices:
                out[k] = random.choice(choices)
        return out

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        for attempt in range(len(self) if self.skip_bad else 1):
            item = self.items[self.order[(position + attempt) % len(self)]]
            try:
                return self.encode(item)
            except (OSError, ValueError) as err:
                message = f"{self.sources[item.source].path}: item {item.id!r}: {err}"
                if not self.skip_bad:
                    raise (FileNotFoundError if isinstance(err, FileNotFoundError) else ValueError)(message) from err
                # Deterministic substitute: the next position (wrapping).
                logger.warning("skipping bad item: %s", message)
        raise ValueError("every training item failed to load")


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
        batch["labels"] = pad("labels", IGNORE_INDEX, torch.long)
        keys = sorted({k for f in features for k in f} - {"input_ids", "labels"})
        for key in keys:
            present = [f[key] for f in features if key in f]
            if present[0].dim() == 1 and len(present) == len(features):
                batch[key] = pad(key, 0, present[0].dtype)  # per-token values (loss_weights, token types)
            else:
                batch[key] = torch.cat(present, dim=0)  # image tensors, in item order
        return batch


# --------------------------------------------------------------------------------------------------------------
# trainer pieces


class _TimeSchedule:
    """LR factor from the share of a wall-clock budget spent: linear warmup, then cosine/linear decay to 0
    when the budget ends (the budget, not a step count, ends training)."""

    def __init__(self, seconds: float, warmup_ratio: float, kind: str) -> None:
        if kind not in ("cosine", "linear", "constant", "constant_with_warmup"):
            raise ValueError(f"lr_scheduler {kind!r}: a time schedule supports cosine, linear, constant")
        self.seconds, self.warmup, self.kind = float(seconds), float(warmup_ratio), kind
        self.start: float | None = None

    def __call__(self, step: int) -> float:
        now = time.monotonic()
        if self.start is None:
            self.start = now
        progress = min(1.0, (now - self.start) / self.seconds)
        if self.warmup > 0 and progress < self.warmup:
            return max(progress / self.warmup, 1e-3)
        if self.kind.startswith("constant"):
            return 1.0
        rest = (progress - self.warmup) / max(1.0 - self.warmup, 1e-9)
        if self.kind == "linear":
            return max(0.0, 1.0 - rest)
        return 0.5 * (1.0 + math.cos(math.pi * rest))


class PositionInterpolation:
    """Makes a vision tower accept images smaller (or larger) than its native size by interpolating its
    position embeddings: a forward pre-hook that sets ``interpolate_pos_encoding=True`` on every module whose
    ``forward`` takes that argument (the embeddings of CLIP, SigLIP and similar towers).

    Needed because multimodal ``forward`` methods do not pass the flag down to the vision tower.

    Raises:
        ValueError: the model has no such module.
    """

    def __init__(self, model: Any) -> None:
        import inspect

        self.modules = []
        for module in model.modules():
            try:
                params = inspect.signature(module.forward).parameters
            except (TypeError, ValueError):
                continue
            if "interpolate_pos_encoding" in params and callable(getattr(module, "interpolate_pos_encoding", None)):
                self.modules.append(module)
        if not self.modules:
            raise ValueError(
                f"curriculum: the vision tower of {type(model).__name__} cannot interpolate its position "
                "embeddings (no module with an interpolate_pos_encoding option), so it cannot take smaller images"
            )
        self.handles: list[Any] = []

    @staticmethod
    def _hook(module, args, kwargs):
        kwargs["interpolate_pos_encoding"] = True
        return args, kwargs

    def enable(self) -> None:
        if not self.handles:
            self.handles = [m.register_forward_pre_hook(self._hook, with_kwargs=True) for m in self.modules]

    def disable(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []


def _is_peft(model: Any) -> bool:
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def _quiet_optional_kernels() -> None:
    """bitsandbytes (imported with transformers' training modules when installed) warns at import that its
    optional CPU kernel hub is missing; nothing here needs it."""
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)


_CALLBACKS: dict[str, type] = {}


def _callback_classes() -> dict[str, type]:
    """The TrainerCallback subclasses, defined on first use (importing transformers' trainer code is heavy)."""
    if _CALLBACKS:
        return _CALLBACKS
    _quiet_optional_kernels()
    from transformers.trainer_callback import TrainerCallback

    class TimeLimitCallback(TrainerCallback):
        """Stops training cleanly, with a checkpoint, once ``minutes`` of training time have passed.

        Attributes:
            triggered: True once the budget stopped training.
        """

        def __init__(self, minutes: float) -> None:
            self.seconds = float(minutes) * 60.0
            self.start: float | None = None
            self.triggered = False

        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.monotonic()

        def on_step_end(self, args, state, control, **kwargs):
            if self.start is not None and time.monotonic() - self.start >= self.seconds:
                self.triggered = True
                control.should_training_stop = True
                control.should_save = True
            return control


    class _TimeProgress(TrainerCallback):
        """Progress bar over a time budget (the step total of a time-bound run means nothing) with step and loss."""

        def __init__(self, minutes: float) -> None:
            self.seconds = float(minutes) * 60.0
            self.bar = None
            self.start = 0.0
            self.loss: float | None = None

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                from tqdm.auto import tqdm

                self.start = time.monotonic()
                self.bar = tqdm(
                    total=round(self.seconds),
                    desc="train",
                    dynamic_ncols=True,
                    bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} s [{elapsed}<{remaining}{postfix}]",
                )

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.n = min(round(time.monotonic() - self.start), self.bar.total)
                postfix = {"step": state.global_step}
                if self.loss is not None:
                    postfix["loss"] = f"{self.loss:.4f}"
                self.bar.set_postfix(postfix, refresh=True)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.loss = float(logs["loss"])

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.close()
                self.bar = None


    class _ConfigSaver(TrainerCallback):
        """Writes text4seg_config.json into every checkpoint directory."""

        def __init__(self, config: Text4SegConfig) -> None:
            self.config = config

        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                if ckpt.is_dir():
                    self.config.save(ckpt)
            return control


    class _Curriculum(TrainerCallback):
        """Low-resolution first stage: the dataset serves a coarser grid with smaller images (and the vision
        tower interpolates its position embeddings) until ``fraction`` of the training is done, by time with a
        time budget, else by steps; then the model's own grid and size. The step of the switch is logged in
        the trainer state, so a resumed run knows whether the first stage is over."""

        def __init__(self, dataset: Text4SegDataset, interpolation: PositionInterpolation,
                     grid: int | str | tuple[int, int], fraction: float, minutes: float | None) -> None:
            self.dataset, self.interpolation, self.grid = dataset, interpolation, grid
            self.fraction, self.seconds = float(fraction), None if minutes is None else float(minutes) * 60.0
            self.start = 0.0

        def _over(self, state) -> bool:
            if self.seconds is not None:
                return time.monotonic() - self.start >= self.fraction * self.seconds
            return state.global_step >= self.fraction * state.max_steps

        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.monotonic()
            if any("curriculum_end" in entry for entry in state.log_history) or self._over(state):
                return
            self.dataset.set_stage(self.grid)
            # Stays on to the end: a batch prefetched before the switch may still hold small images, and at the
            # native size the interpolation returns the position embeddings unchanged.
            self.interpolation.enable()
            logger.info("curriculum: training on a %dx%d grid with %dx%d images first", *self.dataset.stage.grid,
                        *self.dataset.stage.image_size)

        def on_step_end(self, args, state, control, **kwargs):
            if self.dataset.stage is not None and self._over(state):
                self.dataset.set_stage(None)
                state.log_history.append({"curriculum_end": state.global_step, "step": state.global_step})
                logger.info("curriculum: step %d, switching to the model's %dx%d grid", state.global_step,
                            *self.dataset.config.grid)
            return control

        def on_train_end(self, args, state, control, **kwargs):
            self.dataset.set_stage(None)
            self.interpolation.disable()

    _CALLBACKS.update(
        time_limit=TimeLimitCallback, time_progress=_TimeProgress, config_saver=_ConfigSaver, curriculum=_Curriculum
    )
    return _CALLBACKS


def time_limit_callback(minutes: float):
    """A ``TrainerCallback`` that stops training cleanly, with a checkpoint, after ``minutes`` of training time;
    its ``triggered`` attribute says whether it fired."""
    return _callback_classes()["time_limit"](minutes)


def _make_trainer_class():
    _quiet_optional_kernels()
    from transformers import Trainer
    from transformers.trainer_pt_utils import get_length_grouped_indices

    class _LengthGroupedSampler(torch.utils.data.Sampler):
        """Length-grouped order, reproducible from (seed, epoch) so that resuming replays it exactly."""

        def __init__(self, lengths: list[int], group: int, seed: int) -> None:
            self.lengths, self.group, self.seed, self.epoch = lengths, group, seed, 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = int(epoch)

        def __len__(self) -> int:
            return len(self.lengths)

        def __iter__(self):
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            return iter(get_length_grouped_indices(self.lengths, self.group, generator=generator))

    class Text4SegTrainer(Trainer):
        """Trainer with a separate projector learning rate, foreground-weighted loss and cheap length grouping."""

        def __init__(
            self,
            *args,
            projector_lr: float | None = None,
            projector_params: Sequence[str] = (),
            time_schedule: _TimeSchedule | None = None,
            **kwargs,
        ):
            super().__init__(*args, **kwargs)
            self.projector_lr = projector_lr
            self.projector_params = set(projector_params)
            self.time_schedule = time_schedule

        def create_scheduler(self, num_training_steps, optimizer=None):
            if self.time_schedule is None or self.lr_scheduler is not None:
                return super().create_scheduler(num_training_steps, optimizer)
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer or self.optimizer, self.time_schedule)
            return self.lr_scheduler

        def _get_train_sampler(self, train_dataset=None):
            dataset = train_dataset if train_dataset is not None else self.train_dataset
            if self.args.train_sampling_strategy == "group_by_length" and hasattr(dataset, "lengths"):
                group = self.args.train_batch_size * self.args.gradient_accumulation_steps
                return _LengthGroupedSampler(dataset.lengths(), group, self.args.seed)
            return super()._get_train_sampler(train_dataset)

        def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
            # transformers saves multimodal models with legacy key names (e.g. "language_model.model.*") but
            # Trainer reloads a full checkpoint with a raw, non-strict load_state_dict: every key misses and
            # training would silently restart from the initial weights. from_pretrained applies the key
            # conversion; the strict load then proves every weight arrived.
            target = self.model if model is None else model
            ckpt = Path(resume_from_checkpoint)
            full_weights = (ckpt / "model.safetensors").is_file() or (ckpt / "model.safetensors.index.json").is_file()
            if full_weights and not _is_peft(target) and not self.is_fsdp_enabled and hasattr(target, "config"):
                reloaded = type(target).from_pretrained(str(ckpt), dtype=target.dtype, device_map={"": "cpu"})
                target.load_state_dict(reloaded.state_dict(), strict=True)
                del reloaded
                return
            super()._load_from_checkpoint(resume_from_checkpoint, model)

        def create_optimizer(self, model=None):
            opt_model = self.model if model is None else model
            if self.optimizer is not None or self.projector_lr is None:
                return super().create_optimizer(model)
            decay = set(self.get_decay_parameter_names(opt_model))
            groups: dict[tuple[bool, bool], list] = {}
            for name, param in opt_model.named_parameters():
                if not param.requires_grad:
                    continue
                is_projector = name in self.projector_params
                groups.setdefault((name in decay, is_projector), []).append(param)
            param_groups = []
            for (has_decay, is_projector), params in sorted(groups.items()):
                group = {"params": params, "weight_decay": self.args.weight_decay if has_decay else 0.0}
                if is_projector:
                    group["lr"] = self.projector_lr
                param_groups.append(group)
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
            self.optimizer = optimizer_cls(param_groups, **optimizer_kwargs)
            return self.optimizer

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            weights = inputs.pop("loss_weights", None)
            if weights is None:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            logits = outputs.logits[:, :-1, :].float()
            target = labels[:, 1:].to(logits.device)
            weight = weights[:, 1:].to(logits.device) * (target != IGNORE_INDEX)
            token_loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=IGNORE_INDEX, reduction="none"
            )
            total = (token_loss * weight.reshape(-1)).sum()
            if num_items_in_batch is not None:
                loss = total / num_items_in_batch
                self.loss_is_scaled_for_ga = True
                if self.args.average_tokens_across_devices:
                    loss = loss * self.accelerator.num_processes
            else:
                loss = total / (target != IGNORE_INDEX).sum().clamp(min=1)
                self.loss_is_scaled_for_ga = False
            return (loss, outputs) if return_outputs else loss

    return Text4SegTrainer


# --------------------------------------------------------------------------------------------------------------
# the train command


@dataclass
class TrainResult:
    """Outcome of :func:`train`.

    Attributes:
        output_dir: final model or adapter directory (with text4seg_config.json and the processor).
        global_step: optimizer steps done (counting steps before a resume).
        stopped_by_time: True when ``minutes`` ran out before the planned steps.
        seconds: wall time of the training loop.
        log_history: the Trainer's log entries (``loss``, ``learning_rate``, ``step``, ...).
        skipped: bad items skipped at load time (with ``skip_bad``).
        adapter: True when ``output_dir`` holds a LoRA adapter, False for a full model.
    """

    output_dir: Path
    global_step: int
    stopped_by_time: bool
    seconds: float
    log_history: list[dict] = field(default_factory=list)
    skipped: int = 0
    adapter: bool = True


def _precision(precision: str, device: torch.device) -> tuple[torch.dtype, bool, bool]:
    """-> (load dtype, bf16 amp flag, fp16 amp flag)."""
    if precision == "auto":
        if device.type == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "fp32"
    if precision in ("fp32", "float32"):
        return torch.float32, False, False
    if precision in ("bf16", "bfloat16"):
        return torch.bfloat16, True, False
    if precision in ("fp16", "float16"):
        return torch.float32, False, True  # fp32 master weights, fp16 autocast (GradScaler needs fp32 params)
    raise ValueError(f"precision {precision!r}: expected auto, fp32, bf16 or fp16")


def _data_probe(sources: Sequence[DataSource], limit: int = 20000) -> tuple[list[str], Counter, tuple | None, str]:
    """Texts, label counts, first descriptor grid and form of the data (for building a tiny model)."""
    texts: list[str] = []
    labels: Counter = Counter()
    grid, form = None, "plain"
    for source in sources:
        if not source.path.is_file():
            raise FileNotFoundError(f"--data {source.path}: no such file")
        data = _read_json(source.path)
        for raw in data[:limit] if isinstance(data, list) else []:
            for turn in raw.get("conversations", []) if isinstance(raw, dict) else []:
                value = turn.get("value") if isinstance(turn, dict) else None
                if not isinstance(value, str):
                    continue
                descriptor = extract_descriptor(value)
                if descriptor is None:
                    texts.append(_IMAGE_TAG.sub(" ", value))
                    continue
                texts.append(value[: value.find(SEG_START)])
                shape = descriptor_shape(descriptor)
                if shape == (0, 0):
                    continue
                if grid is None:
                    grid = shape
                    form = "rle" if re.search(r"\*\s*\d", descriptor) else "plain"
                decoded = decode_descriptor(descriptor, *shape)
                labels.update(decoded.labels.ravel().tolist())
    return texts, labels, grid, form


def _build_tiny_base(
    out_dir: Path,
    sources: Sequence[DataSource],
    overrides: dict[str, Any],
    tiny: dict[str, Any] | None,
    seed: int,
    max_label_tokens: int = 512,
) -> Path:
    from text4seg.model import build_tiny_model
    from text4seg.quickstart import TINY_PRESET

    texts, label_counts, data_grid, _ = _data_probe(sources)
    background = overrides.get("background") or Text4SegConfig().background
    label_counts.pop(background, None)
    labels = [name for name, _ in label_counts.most_common(max_label_tokens)]
    if len(label_counts) > max_label_tokens:
        logger.warning("tiny tokenizer: %d labels in the data, cell tokens for the %d most frequent",
                       len(label_counts), max_label_tokens)
    dims = dict(TINY_PRESET.model_kwargs())
    preset_grid = dims.pop("grid")
    dims.update(tiny or {})
    # explicit option > explicit tiny dims > the data's own grid > the preset
    grid = overrides.get("grid") or dims.pop("grid", None) or data_grid or preset_grid
    fg_label = overrides.get("fg_label") or (labels[0] if len(labels) == 1 else "sentence")
    kwargs = dict(dims)
    kwargs.update(
        grid=grid,
        seed=seed,
        descriptor_form=overrides.get("descriptor_form") or dims.get("descriptor_form", "plain"),
        image_position=overrides.get("image_position") or dims.get("image_position", "after"),
        # the question wording is the data's business: the library default unless given explicitly
        question_template=overrides.get("question_template") or (tiny or {}).get("question_template"),
        fg_label=fg_label,
    )
    kwargs.pop("image_size", None)
    logger.info("building a tiny model (grid %s, %d cell labels) in %s", grid, len(labels) + 1, out_dir)
    return build_tiny_model(out_dir, texts=texts, labels=labels, **kwargs)


def _resolve_train_config(
    base: Text4SegConfig | None, overrides: dict[str, Any], sources: Sequence[DataSource]
) -> Text4SegConfig:
    values = base.to_dict() if base is not None else {}
    if base is None and "grid" not in overrides and "descriptor_form" not in overrides:
        # A model without text4seg_config.json learns the data's own grammar (no silent re-encoding).
        _, _, grid, form = _data_probe(sources, limit=50)
        if grid is not None:
            values.update(grid=list(grid), descriptor_form=form)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Text4SegConfig.from_dict(values, source="training options")


def train(
    model: str = "tiny",
    data: Sequence[str | tuple[str, float] | DataSource] = (),
    output_dir: str | os.PathLike = "runs/train",
    *,
    image_root: str | os.PathLike | None = None,
    epochs: float = 1.0,
    max_steps: int | None = None,
    minutes: float | None = None,
    full: bool = False,
    train_vision: bool = False,
    lora_r: int = 64,
    lora_alpha: int = 128,
    lora_dropout: float = 0.05,
    lr: float = 2e-4,
    projector_lr: float | None = None,
    batch_size: int = 4,
    grad_accum: int = 1,
    warmup_ratio: float = 0.03,
    weight_decay: float = 0.0,
    lr_scheduler: str = "cosine",
    max_length: int = 3072,
    save_steps: int = 500,
    save_total_limit: int | None = None,
    logging_steps: int = 10,
    seed: int = 0,
    resume: bool | str = False,
    skip_bad: bool = False,
    fg_weight: float = 1.0,
    cell_noise: float = 0.0,
    precision: str = "auto",
    gradient_checkpointing: bool = False,
    group_by_length: bool = False,
    load_in_4bit: bool = False,
    load_in_8bit: bool = False,
    attn: str | None = None,
    device: str | None = None,
    workers: int = 0,
    grid: int | str | tuple[int, int] | None = None,
    descriptor_form: str | None = None,
    question_template: str | None = None,
    image_position: str | None = None,
    fg_label: str | None = None,
    image_size: int | str | tuple[int, int] | None = None,
    tiny: dict[str, Any] | None = None,
    time_schedule: bool = False,
    curriculum_grid: int | str | tuple[int, int] | None = None,
    curriculum_fraction: float = 0.25,
    callbacks: Sequence[Any] = (),
    progress: bool = True,
    trust_remote_code: bool = False,
) -> TrainResult:
    """Fine-tune an image-text-to-text model on Text4Seg JSON files (LoRA by default).

    Args:
        model: hub id or directory of the base model, an adapter directory (training continues it), or
            ``"tiny"``: a fresh tiny LLaVA whose tokenizer is trained on the data's text and label set.
        data: JSON files, each ``"path"`` or ``"path:ratio"`` (see :class:`DataSource`).
        output_dir: where checkpoints (``checkpoint-N``) and the final model/adapter go.
        image_root: directory image paths are relative to (default: each JSON file's directory).
        epochs: passes over the mixed data (ignored when ``max_steps`` is set).
        max_steps: optimizer steps to run.
        minutes: training-time budget; training stops cleanly, saving, when it is spent.
        full: full fine-tuning of language model + projector instead of LoRA.
        train_vision: with ``full``, train the vision tower too (it is frozen otherwise). Needed for models whose
            vision tower is not pretrained, such as ``--model tiny``.
        lora_r, lora_alpha, lora_dropout: LoRA on every language-model linear layer except ``lm_head``.
        lr: learning rate (LoRA or full weights).
        projector_lr: learning rate of the projector (trained fully); None = ``lr``.
        batch_size: items per device and step; ``grad_accum``: steps accumulated per optimizer step.
        warmup_ratio: linear warmup share of all steps; ``lr_scheduler``: transformers scheduler name.
        weight_decay: AdamW weight decay (not on biases and norms).
        max_length: longest token sequence.
        save_steps, save_total_limit: checkpoint every N steps, keep at most this many.
        logging_steps: loss/lr log interval (shown on the progress bar).
        seed: seed of everything random (init of LoRA, data order, ratio sampling).
        resume: continue from the last checkpoint in ``output_dir`` (True) or from a given checkpoint dir.
        skip_bad: skip (and count) malformed items and missing images instead of failing on the first one.
        fg_weight: loss weight of descriptor tokens of non-background cells.
        cell_noise: rate of input cell-token swaps (see :class:`Text4SegDataset`; one-token-cell tokenizers).
        precision: ``auto`` (bf16 on capable GPUs, fp16 on other GPUs, fp32 on CPU), ``fp32``, ``bf16``, ``fp16``.
        gradient_checkpointing: trade compute for memory.
        group_by_length: batch items of similar length together.
        load_in_4bit, load_in_8bit: QLoRA: quantize the base language model with bitsandbytes.
        attn: attention implementation (``flash_attention_2``, ``sdpa``, ``eager``).
        device: device to load on (default: this process's GPU, else CPU).
        workers: DataLoader worker processes.
        grid, descriptor_form, question_template, image_position, fg_label, image_size: override the model's
            ``text4seg_config.json`` (answers in the data are re-encoded to the resulting grid/form).
        tiny: tiny-model dimensions overriding the preset (keys of :func:`text4seg.model.build_tiny_model`).
        time_schedule: with ``minutes``: warmup and decay follow the share of the time budget spent instead of
            the step count, so the schedule ends when the budget does whatever the machine's speed (not
            reproducible step for step; resuming restarts the clock).
        curriculum_grid: a coarser grid (e.g. 8 for a 16x16 model) to train on first, with the images scaled
            down by the same factor and the vision tower's position embeddings interpolated: far shorter
            sequences, on which a from-scratch model learns to ground the query much sooner; what it learns
            carries over to the full resolution. None: no curriculum.
        curriculum_fraction: share of the training spent on ``curriculum_grid``: of the time budget with
            ``minutes``, else of the steps.
        callbacks: extra ``transformers.TrainerCallback`` objects.
        progress: show the tqdm progress bar.
        trust_remote_code: passed to transformers.

    Returns:
        :class:`TrainResult`.
    """
    _quiet_optional_kernels()
    from transformers import TrainingArguments, set_seed

    if time_schedule and minutes is None:
        raise ValueError("time_schedule needs a time budget (minutes)")
    sources = [parse_data_spec(s) for s in data]
    if not sources:
        raise ValueError("data: give at least one training JSON file (--data FILE.json[:ratio])")
    for source in sources:
        if not source.path.is_file():
            raise FileNotFoundError(f"--data {source.path}: no such file")
    if full and (load_in_4bit or load_in_8bit):
        raise ValueError("--full cannot train a 4-bit/8-bit model; drop --load-in-4bit/--load-in-8bit")
    if train_vision and not full:
        raise ValueError("--train-vision needs --full (a LoRA adapter does not carry vision-tower weights)")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps {max_steps}: expected >= 1")
    if minutes is not None and minutes <= 0:
        raise ValueError(f"minutes {minutes}: expected > 0")
    if curriculum_grid is not None:
        if not 0.0 < curriculum_fraction < 1.0:
            raise ValueError(f"curriculum_fraction {curriculum_fraction}: expected a share in (0, 1)")
        if workers:
            raise ValueError("--curriculum-grid needs --workers 0 (worker processes would not see the switch)")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    set_seed(seed)
    _JSON_CACHE.clear()
    overrides = {
        "grid": grid,
        "descriptor_form": descriptor_form,
        "question_template": question_template,
        "image_position": image_position,
        "fg_label": fg_label,
        "image_size": image_size,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    dev = resolve_device(device)
    load_dtype, bf16, fp16 = _precision(precision, dev)

    tmp_base = None
    adapter = None
    if model == "tiny":
        if full:
            tmp_base = tempfile.TemporaryDirectory(prefix="text4seg-tiny-")
            base_dir = Path(tmp_base.name)
        else:
            base_dir = output_dir / "base"
        model = str(_build_tiny_base(base_dir, sources, overrides, tiny, seed))
    elif Path(model).is_dir() and is_adapter_dir(model):
        adapter, model = model, adapter_base(model)
    config = _resolve_train_config(resolve_config(model, adapter), overrides, sources)
    loaded = load_model(
        model,
        adapter,
        device=dev,
        dtype=load_dtype,
        load_in_4bit=load_in_4bit,
        load_in_8bit=load_in_8bit,
        attn=attn,
        trainable_adapter=True,
        trust_remote_code=trust_remote_code,
        config=config,
    )
    hf_model, processor = loaded.model, loaded.processor
    interpolation = None
    if curriculum_grid is not None:
        stage_config(config, curriculum_grid)  # fail before training when the sizes do not work out
        interpolation = PositionInterpolation(hf_model)
    tokenizer = getattr(processor, "tokenizer", processor)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token

    is_peft = adapter is not None
    if is_peft:
        hf_model.train()
    inner = hf_model.get_base_model() if is_peft else hf_model
    projectors = projector_names(inner)
    vision = vision_tower_names(inner)
    if not full and not is_peft:
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        if load_in_4bit or load_in_8bit:
            hf_model = prepare_model_for_kbit_training(
                hf_model,
                use_gradient_checkpointing=gradient_checkpointing,
                gradient_checkpointing_kwargs={"use_reentrant": False},
            )
        lora = LoraConfig(
            r=lora_r,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            target_modules=lora_target_regex(inner),
            modules_to_save=[p.rsplit(".", 1)[-1] if "." in p else p for p in projectors] or None,
            task_type="CAUSAL_LM",
        )
        hf_model = get_peft_model(hf_model, lora)
        is_peft = True
    elif full:
        for name, param in hf_model.named_parameters():
            frozen = (
                not train_vision
                and any(name == v or name.startswith(v + ".") for v in vision)
                and not any(name.startswith(p + ".") for p in projectors)
            )
            param.requires_grad_(not frozen)
    if is_peft:
        # peft marks only LoRA + modules_to_save trainable; make sure the vision side stays frozen.
        for name, param in hf_model.named_parameters():
            if "lora_" not in name and "modules_to_save" not in name:
                param.requires_grad_(False)
    projector_params = [
        name
        for name, param in hf_model.named_parameters()
        if param.requires_grad and any(p.rsplit(".", 1)[-1] in name.split(".") for p in projectors)
    ]
    trainable = sum(p.numel() for p in hf_model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in hf_model.parameters())
    logger.info("trainable parameters: %d of %d (%.2f%%)", trainable, total, 100.0 * trainable / max(total, 1))

    try:
        dataset = Text4SegDataset(
            sources,
            processor,
            config,
            image_root=image_root,
            seed=seed,
            max_length=max_length,
            skip_bad=skip_bad,
            fg_weight=fg_weight,
            cell_noise=cell_noise,
        )
    finally:
        _JSON_CACHE.clear()
    args = TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=float(epochs),
        max_steps=max_steps if max_steps is not None else -1,
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=grad_accum,
        learning_rate=lr,
        weight_decay=weight_decay,
        lr_scheduler_type=lr_scheduler,
        warmup_steps=float(warmup_ratio) if 0 < warmup_ratio < 1 else int(warmup_ratio),
        logging_steps=logging_steps,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=save_total_limit,
        seed=seed,
        data_seed=seed,
        bf16=bf16,
        fp16=fp16,
        activation_checkpointing=gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if gradient_checkpointing else None,
        train_sampling_strategy="group_by_length" if group_by_length else "random",
        dataloader_num_workers=workers,
        remove_unused_columns=False,
        report_to="none",
        disable_tqdm=not progress,
        optim="adamw_torch",
        use_cpu=dev.type == "cpu",
    )
    classes = _callback_classes()
    time_limit = time_limit_callback(minutes) if minutes is not None else None
    trainer_cls = _make_trainer_class()
    trainer = trainer_cls(
        model=hf_model,
        args=args,
        train_dataset=dataset,
        data_collator=Text4SegCollator(tokenizer.pad_token_id),
        processing_class=processor,
        callbacks=[
            classes["config_saver"](config),
            *([time_limit] if time_limit else []),
            *([classes["curriculum"](dataset, interpolation, curriculum_grid, curriculum_fraction, minutes)]
              if interpolation else []),
            *callbacks,
        ],
        projector_lr=projector_lr,
        projector_params=projector_params,
        time_schedule=_TimeSchedule(minutes * 60.0, warmup_ratio, lr_scheduler) if time_schedule else None,
    )
    if minutes is not None and progress:
        from transformers.trainer_callback import ProgressCallback

        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(classes["time_progress"](minutes))
    resume_from = None
    if resume:
        resume_from = _last_checkpoint(output_dir) if resume is True or resume == "True" else str(resume)
        if resume_from is None:
            logger.warning("--resume: no checkpoint in %s, starting from scratch", output_dir)
    start = time.monotonic()
    trainer.train(resume_from_checkpoint=resume_from)
    seconds = time.monotonic() - start
    if trainer.is_world_process_zero():
        trainer.save_model(str(output_dir))
        processor.save_pretrained(str(output_dir))
        config.save(output_dir)
        if is_peft:
            _record_base(output_dir, loaded.source)
    if tmp_base is not None:
        tmp_base.cleanup()
    return TrainResult(
        output_dir=output_dir,
        global_step=trainer.state.global_step,
        stopped_by_time=bool(time_limit is not None and time_limit.triggered),
        seconds=seconds,
        log_history=list(trainer.state.log_history),
        skipped=len(dataset.skipped),
        adapter=is_peft,
    )


def _record_base(adapter_dir: Path, base: str) -> None:
    """Store the base model's absolute path (local dirs) in adapter_config.json so the adapter reloads alone."""
    path = adapter_dir / "adapter_config.json"
    if not path.is_file():
        return
    data = json.loads(path.read_text(encoding="utf-8"))
    if Path(base).is_dir():
        base = str(Path(base).resolve())
    data["base_model_name_or_path"] = base
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _last_checkpoint(output_dir: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None


# --------------------------------------------------------------------------------------------------------------
# CLI


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of ``text4seg train`` (defaults None: :func:`train` owns the defaults)."""
    p = parser
    p.add_argument("--model", help="hub id, model/adapter dir, or 'tiny' (default: tiny)")
    p.add_argument("--data", action="append", metavar="FILE[:RATIO]", help="training JSON (repeatable)")
    p.add_argument("--image-root", help="directory image paths are relative to (default: the JSON's dir)")
    p.add_argument("--output-dir", help="checkpoints and final model/adapter (default: runs/train)")
    p.add_argument("--epochs", type=float)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--minutes", type=float, help="stop cleanly (saving) after this much training time")
    p.add_argument("--full", action="store_const", const=True, help="full fine-tuning instead of LoRA")
    p.add_argument("--train-vision", dest="train_vision", action="store_const", const=True,
                   help="with --full, train the vision tower too (needed for an untrained tower, e.g. --model tiny)")
    p.add_argument("--lora-r", type=int)
    p.add_argument("--lora-alpha", type=int)
    p.add_argument("--lora-dropout", type=float)
    p.add_argument("--lr", type=float)
    p.add_argument("--projector-lr", type=float)
    p.add_argument("--batch-size", type=int, help="per device")
    p.add_argument("--grad-accum", type=int)
    p.add_argument("--warmup-ratio", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--lr-scheduler", help="cosine (default), linear, constant, ... (transformers names)")
    p.add_argument("--time-schedule", action="store_const", const=True,
                   help="with --minutes: warmup/decay follow the time budget instead of the step count")
    p.add_argument("--curriculum-grid", metavar="GRID",
                   help="train on this coarser grid first, images scaled down to match, e.g. 8 for a 16x16 model")
    p.add_argument("--curriculum-fraction", type=float,
                   help="share of the training (of --minutes, else of the steps) on --curriculum-grid (0.25)")
    p.add_argument("--max-length", type=int)
    p.add_argument("--save-steps", type=int)
    p.add_argument("--save-total-limit", type=int)
    p.add_argument("--logging-steps", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--resume", nargs="?", const=True, metavar="CHECKPOINT",
                   help="continue from the last checkpoint in --output-dir (or the one given)")
    p.add_argument("--skip-bad", action="store_const", const=True, help="skip and count malformed items")
    p.add_argument("--fg-weight", type=float, help="loss weight of foreground descriptor tokens")
    p.add_argument("--cell-noise", type=float,
                   help="rate of input descriptor-cell swaps (targets kept; tiny one-token-cell tokenizers)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--gradient-checkpointing", action="store_const", const=True)
    p.add_argument("--group-by-length", action="store_const", const=True)
    p.add_argument("--load-in-4bit", action="store_const", const=True, help="QLoRA (bitsandbytes)")
    p.add_argument("--load-in-8bit", action="store_const", const=True)
    p.add_argument("--attn", choices=["flash_attention_2", "sdpa", "eager"])
    p.add_argument("--device")
    p.add_argument("--workers", type=int, help="DataLoader workers")
    p.add_argument("--grid", help="descriptor grid, e.g. 16 or 24x24 (overrides the model's config)")
    p.add_argument("--descriptor-form", choices=["rle", "plain"])
    p.add_argument("--question-template", help="referring question containing {expression}")
    p.add_argument("--image-position", choices=["before", "after"])
    p.add_argument("--fg-label", help="'sentence' or a fixed foreground word")
    p.add_argument("--image-size", help="vision input size, e.g. 336 or 336x336")
    p.add_argument("--trust-remote-code", action="store_const", const=True)


def run(args: argparse.Namespace) -> int:
    """Run ``text4seg train``; prints the output directory."""
    kwargs = {k: v for k, v in vars(args).items() if v is not None and k != "command"}
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    result = train(**kwargs)
    kind = "adapter" if result.adapter else "model"
    how = " (time budget reached)" if result.stopped_by_time else ""
    print(f"trained {result.global_step} steps in {result.seconds:.0f}s{how}; {kind}: {result.output_dir}")
    if result.skipped:
        print(f"skipped {result.skipped} bad items")
    return 0

