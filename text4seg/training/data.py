"""Training data: Text4Seg JSON files mixed by ratio, one tokenized item per conversation, loss masks.

A JSON list of items ``{"id", "image", "height", "width", "conversations": [{"from": "human", "value":
"<image>\\n..."}, {"from": "gpt", "value": "...\\n<seg>...</seg>"}, ...], ["crop_size": [l, t, r, b]]}``. The
reference project's files load unchanged: several rounds, ``crop_size`` (a crop applied before preprocessing),
items without ``<seg>`` or without an image (plain conversation). Each conversation is rendered with the
model's chat template; only assistant tokens (the answer and the template's end-of-turn) carry labels.
Answers whose descriptors use another grid or form than the model are re-encoded on load
(:func:`text4seg.descriptors.reencode_answer`).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from text4seg.config import Text4SegConfig
from text4seg.descriptors import (
    SEG_START,
    decode_descriptor,
    descriptor_form,
    descriptor_shape,
    extract_descriptor,
    foreground_spans,
    reencode_answer,
)
from text4seg.modeling.inputs import encode_prompt, prepare_image, render_chat, user_content
from text4seg.training.collator import CROSS_ENTROPY_IGNORE_INDEX
from text4seg.training.config import DataSource, parse_data_spec
from text4seg.training.curriculum import stage_config

__all__ = ["DataFiles", "Text4SegDataset", "DataProbe", "probe_data", "cell_token_table"]

logger = logging.getLogger(__name__)

_IMAGE_TAG = re.compile(r"\s*<image>\s*")


class DataFiles:
    """Parsed training JSON files, each read once: the tiny-model probe and the dataset of one run share it.

    Raises (from :meth:`load`):
        FileNotFoundError: a missing file. ValueError: a file that is not valid JSON.
    """

    def __init__(self, max_mb: float | None = None) -> None:
        self._parsed: dict[Path, Any] = {}
        self.max_bytes = None if max_mb is None else int(max_mb * 1e6)

    def load(self, path: str | os.PathLike) -> Any:
        path = Path(path)
        key = path.resolve()
        if key not in self._parsed:
            if not path.is_file():
                raise FileNotFoundError(f"--data {path}: no such file")
            size = path.stat().st_size
            if self.max_bytes is not None and size > self.max_bytes:
                # parsed whole, a JSON list takes several times its size in memory: refuse before reading it
                raise ValueError(f"{path}: {size / 1e6:.1f} MB is larger than --max-data-mb "
                                 f"{self.max_bytes / 1e6:g}; split the file or raise --max-data-mb")
            try:
                self._parsed[key] = json.loads(path.read_text(encoding="utf-8"))
            except UnicodeDecodeError as err:
                raise ValueError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason}); training JSON must "
                                 "be UTF-8") from None
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: not a valid JSON file: {err}") from None
        return self._parsed[key]

    def clear(self) -> None:
        """Forget the parsed files (the dataset keeps only what it needs)."""
        self._parsed.clear()


_CELL_SEPARATORS = ("| ", "\n ", "\n")


def cell_token_table(tokenizer: Any) -> tuple[dict[int, tuple[str, int]], dict[tuple[str, int], int]]:
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



class _DescriptorConverter:
    """Re-encodes answer descriptors into one config's grid and form."""

    def __init__(self, config: Text4SegConfig) -> None:
        self.config = config

    def needs(self, descriptor: str) -> tuple[bool, str]:
        height, width = descriptor_shape(descriptor)
        form = descriptor_form(descriptor)
        if (height, width) == (0, 0):
            return False, "no cells"
        same = (height, width) == self.config.grid and form == self.config.descriptor_form
        return (not same), f"{form} {height}x{width}"

    def convert(self, answer: str) -> str:
        return reencode_answer(answer, self.config.grid, self.config.descriptor_form, self.config.background)


# --------------------------------------------------------------------------------------------------------------
# dataset


def _image_count(item: _Item) -> int:
    return 0 if item.image is None else len(item.image) if isinstance(item.image, tuple) else 1


@dataclass
class _Item:
    source: int
    index: int
    id: str
    image: Path | tuple[Path, ...] | None  # a tuple: context frames, then the target frame
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
        files: parsed files to reuse (see :class:`DataFiles`); default: read them here.

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
        files: DataFiles | None = None,
        allow_outside_root: bool = False,
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
        self.allow_outside_root = bool(allow_outside_root)
        self.fg_weight = float(fg_weight)
        if not 0.0 <= cell_noise < 1.0:
            raise ValueError(f"cell_noise {cell_noise}: expected a probability in [0, 1)")
        self.cell_noise = float(cell_noise)
        self._cells, self._cell_of = cell_token_table(self.tokenizer) if cell_noise > 0 else ({}, {})
        if cell_noise > 0 and not self._cells:
            logger.warning("cell_noise: the tokenizer has no one-token descriptor cells; no noise is applied")
        self.converter = _DescriptorConverter(config)
        self.stage: Text4SegConfig | None = None
        self._stage_converter: _DescriptorConverter | None = None
        self.skipped: list[str] = []
        self.items: list[_Item] = []
        files = files if files is not None else DataFiles()
        self.order: list[int] = []
        for k, source in enumerate(self.sources):
            loaded = self._load_file(k, source, check_images, files)
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

    def _load_file(self, k: int, source: DataSource, check_images: bool, files: DataFiles) -> list[_Item]:
        path = source.path
        if not path.is_file():
            raise FileNotFoundError(f"--data {path}: no such file")
        data = files.load(path)
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
        image_path: Path | tuple[Path, ...] | None = None
        if isinstance(image, list):  # several images (context frames, then the target frame)
            if not image or not all(isinstance(v, str) and v for v in image):
                return self._bad(f"{where}: 'image' must be a path string or a non-empty list of them")
            image_path = tuple(Path(v) if Path(v).is_absolute() else root / v for v in image)
            outside = [v for v, p in zip(image, image_path) if not self.allow_outside_root and not _inside(p, root)]
            if outside:
                return self._bad(f"{where}: image {outside[0]!r} is outside the data root {root} (an absolute path "
                                 "or '..'); pass --allow-outside-root if the file is trusted")
            missing = [p for p in image_path if check_images and not p.is_file()]
            if missing:
                return self._bad(f"{where}: image {missing[0]} not found", FileNotFoundError)
            tags = rounds[0][0].count("<image>")
            if tags not in (0, len(image_path)) or any("<image>" in q for q, _ in rounds[1:]):
                return self._bad(f"{where}: {len(image_path)} images but {tags} '<image>' tags in the first "
                                 "question (one per image, in order, all in the first turn)")
            if len(image_path) == 1:
                image_path = image_path[0]
        elif image is not None:
            if not isinstance(image, str) or not image:
                return self._bad(f"{where}: 'image' must be a path string")
            image_path = Path(image) if Path(image).is_absolute() else root / image
            if not self.allow_outside_root and not _inside(image_path, root):
                return self._bad(f"{where}: image {image!r} is outside the data root {root} (an absolute path or "
                                 "'..'); pass --allow-outside-root if the file is trusted")
            if check_images and not image_path.is_file():
                return self._bad(f"{where}: image {image_path} not found", FileNotFoundError)
        elif any("<image>" in q for q, _ in rounds):
            return self._bad(f"{where}: has '<image>' in its text but no 'image' field")
        marks = sum(q.count("<image>") + a.count("<image>") for q, a in rounds)
        if isinstance(image_path, tuple):
            pass  # one '<image>' per image, checked above
        elif marks > 1 or marks == 1 and "<image>" not in rounds[0][0]:
            return self._bad(f"{where}: '<image>' must appear once, in the first human turn (found {marks})")
        crop = raw.get("crop_size")
        if crop is not None:
            valid = (
                isinstance(crop, (list, tuple))
                and len(crop) == 4
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in crop)
                and crop[0] < crop[2]
                and crop[1] < crop[3]
            )
            if isinstance(image_path, tuple):
                return self._bad(f"{where}: 'crop_size' applies to items with one image, not {len(image_path)}")
            if not valid or image_path is None:
                return self._bad(f"{where}: 'crop_size' must be [left, top, right, bottom] with an image")
            crop = tuple(int(round(v)) for v in crop)
        for k, (_, answer) in enumerate(rounds):
            # a training target is learnt as written: one that needs repairs (ragged rows, bad counts) is no grid
            descriptor = extract_descriptor(answer)
            if descriptor is None:
                continue
            height, width = descriptor_shape(descriptor)
            repairs = (decode_descriptor(descriptor, height, width, background=self.config.background).repairs
                       if height and width else [])
            if repairs:
                return self._bad(f"{where}: round {k}: the descriptor is not a clean {height}x{width} grid "
                                 f"({repairs[0]})")
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
        """Cheap length estimate per position (characters / 3, +1000 per image) for length grouping."""
        return [self.items[i].chars // 3 + 1000 * _image_count(self.items[i]) for i in self.order]

    def messages(self, item: _Item) -> list[dict]:
        """Chat messages of an item (content lists), answers converted to the model's grid/form."""
        messages = []
        for k, (question, answer) in enumerate(item.rounds):
            with_image = k == 0 and item.image is not None
            text = _IMAGE_TAG.sub(" ", question).strip() if "<image>" in question else question
            content = user_content(text, self.config.image_position, with_image, num_images=_image_count(item))
            messages.append({"role": "user", "content": content})
            answer = (self._stage_converter or self.converter).convert(answer)
            messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
        return messages

    def _images(self, item: _Item) -> list:
        """The item's prepared images in order (none, one, or context frames then the target frame)."""
        if item.image is None:
            return []
        if isinstance(item.image, tuple):
            from text4seg.images import load_image

            return [prepare_image(load_image(p), self.stage or self.config, self.processor) for p in item.image]
        return [self._image(item)]

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
        images = self._images(item)
        first = encode_prompt(
            self.processor,
            [pieces[0][0]],
            images or None,
            image_size=self.stage.image_size if self.stage is not None else None,
        )
        ids = first["input_ids"][0].tolist()
        extras = {key: value for key, value in first.items() if key not in ("input_ids", "attention_mask")}
        per_token = {k for k, v in extras.items() if torch.is_tensor(v) and v.dim() == 2 and v.shape == (1, len(ids))}
        prompt_len = len(ids)
        labels = [CROSS_ENTROPY_IGNORE_INDEX] * len(ids)
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
                    fg = foreground_spans(text, self.config.background)
                    weights.extend(
                        self.fg_weight if fg[s:e].any() else 1.0 for s, e in enc["offset_mapping"]
                    )
                else:
                    weights.extend([1.0] * len(piece_ids))
            else:
                labels.extend([CROSS_ENTROPY_IGNORE_INDEX] * len(piece_ids))
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
        present = {self._cells[t][0] for t, lab in zip(ids, labels) if lab != CROSS_ENTROPY_IGNORE_INDEX and t in self._cells}
        present.add(self.config.background)
        if self.config.fg_label != "sentence":
            present.add(self.config.fg_label)
        out = list(ids)
        for k, (token, label) in enumerate(zip(ids, labels)):
            if label == CROSS_ENTROPY_IGNORE_INDEX or token not in self._cells or random.random() >= self.cell_noise:
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



@dataclass
class DataProbe:
    """What a tiny model needs to know about the data: its texts (tokenizer training), label counts (cell
    tokens), and the grid and form of its first descriptor."""

    texts: list[str]
    labels: Counter
    grid: tuple[int, int] | None
    form: str


def _inside(path: Path, root: Path) -> bool:
    """True when ``path`` (symlinks resolved) lies under ``root``."""
    try:
        return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))
    except OSError:
        return False


def probe_data(sources: Sequence[DataSource], files: DataFiles, limit: int = 20000) -> DataProbe:
    """Texts, label counts, first descriptor grid and form of the first ``limit`` items of each file."""
    texts: list[str] = []
    labels: Counter = Counter()
    grid, form = None, "plain"
    for source in sources:
        data = files.load(source.path)
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
                    grid, form = shape, descriptor_form(descriptor)
                labels.update(decode_descriptor(descriptor, *shape).labels.ravel().tolist())
    return DataProbe(texts, labels, grid, form)
