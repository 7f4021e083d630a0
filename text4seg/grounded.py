"""Grounded captions (GCG): a caption whose phrases are marked, followed by one descriptor labelled by them.

The answer format::

    A <p>man</p> holds a <p>tennis racket</p>.
    <seg>others *6| man *2| others *8
     ...
    </seg>

- the **caption** is the text before ``<seg>``; each grounded phrase is wrapped in ``<p>`` and ``</p>`` (no
  nesting, no empty phrase); the caption ends with one newline, as every descriptor answer's sentence does;
- the **descriptor** is an ordinary one (:func:`text4seg.descriptors.encode_descriptor`) whose labels are the
  phrases' *labels*: the phrase text through :func:`~text4seg.descriptors.sanitize_label`, and, for a phrase
  whose label is already taken (the same words twice, or the background word), ``"{label} 2"``, ``"{label} 3"``
  ... (the smallest free number): :func:`phrase_labels`. The k-th phrase's mask is the set of cells labelled
  with its label; a phrase may have no cell (too small for the grid).

GLaMM writes ``<p> phrase </p> [SEG]`` and answers the k-th ``[SEG]`` with a mask embedding; here the one
descriptor carries every phrase's mask, so the masks of one answer never overlap.

:func:`decode_grounded` never fails on model output: a ``<p>`` inside an open phrase closes it first, a stray
``</p>`` is dropped, an unclosed phrase ends at the end of the caption, an empty phrase is dropped, a missing
descriptor gives empty masks, and descriptor labels that name no phrase are ignored; each fix is listed in
``repairs``. No torch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from text4seg.descriptors import (
    BACKGROUND,
    SEG_END,
    SEG_START,
    _norm_name,
    _upsample_ids,
    decode_descriptor,
    encode_descriptor,
    sanitize_label,
)

__all__ = [
    "PHRASE_OPEN",
    "PHRASE_CLOSE",
    "GroundedPhrase",
    "GroundedAnswer",
    "phrase_labels",
    "mark_caption",
    "parse_caption",
    "grounded_answer",
    "decode_grounded",
]

PHRASE_OPEN = "<p>"
PHRASE_CLOSE = "</p>"
_MARKER = re.compile(r"<\s*(/?)\s*p\s*>", re.IGNORECASE)


@dataclass
class GroundedPhrase:
    """One grounded phrase of a caption.

    Attributes:
        text: the phrase as written (markers removed, surrounding whitespace stripped).
        label: its descriptor label (:func:`phrase_labels`).
        start, end: its span in the plain caption (``caption[start:end] == text``).
        mask: (H0, W0) bool at the output size once decoded with ``out_hw``; else None.
        cells: grid cells labelled with it (0: the phrase has no mask).
        score: confidence in (0, 1] from its label tokens' log-probabilities, None when not scored.
    """

    text: str
    label: str
    start: int
    end: int
    mask: np.ndarray | None = None
    cells: int = 0
    score: float | None = None


@dataclass
class GroundedAnswer:
    """A decoded grounded caption.

    Attributes:
        caption: the caption without markers (stripped).
        phrases: the grounded phrases in caption order.
        grid: (H, W) object array of the descriptor's labels as decoded (all background without a descriptor).
        repairs: fixes applied to the caption and the descriptor (empty for a well-formed answer).
        form: descriptor form found (``"rle"``, ``"plain"`` or ``"empty"``).
        text: the model's full answer.
        prompt, seconds, tokens, forward_passes: as in :class:`text4seg.SegmentationResult` (filled by
            :meth:`text4seg.Segmenter.ground`).
    """

    caption: str
    phrases: list[GroundedPhrase]
    grid: np.ndarray
    repairs: list[str] = field(default_factory=list)
    form: str = "empty"
    text: str = ""
    prompt: str = ""
    seconds: float = 0.0
    tokens: int = 0
    forward_passes: int = 0

    @property
    def marked_caption(self) -> str:
        """The caption with its phrases marked again (``"A <p>man</p> ..."``)."""
        return mark_caption(self.caption, [(p.start, p.end) for p in self.phrases])

    @property
    def labels(self) -> list[str]:
        """The phrases' descriptor labels, in caption order."""
        return [p.label for p in self.phrases]


def phrase_labels(phrases: Sequence[str], background: str = BACKGROUND) -> list[str]:
    """The descriptor label of each phrase: sanitized text, numbered when already taken (module docstring).

    Raises:
        ValueError: a phrase with no label text (empty once sanitized).
    """
    taken = {_norm_name(background)}
    out = []
    for k, phrase in enumerate(phrases):
        base = sanitize_label(phrase)
        if not base:
            raise ValueError(f"phrase {k} ({phrase!r}) is empty")
        label, n = base, 2
        while _norm_name(label) in taken:
            label, n = f"{base} {n}", n + 1
        taken.add(_norm_name(label))
        out.append(label)
    return out


def mark_caption(caption: str, spans: Sequence[tuple[int, int]]) -> str:
    """``caption`` with ``<p>``/``</p>`` around each ``(start, end)`` span (character offsets).

    Raises:
        ValueError: a span out of range, empty, overlapping another, or a caption that already holds a marker.
    """
    if _MARKER.search(caption) or SEG_START in caption or SEG_END in caption:
        raise ValueError(f"caption {caption[:80]!r} already holds a <p>/</p> marker or a <seg> tag")
    out, last = [], 0
    for start, end in sorted((int(s), int(e)) for s, e in spans):
        if not 0 <= start < end <= len(caption):
            raise ValueError(f"phrase span ({start}, {end}) is empty or outside the caption (length {len(caption)})")
        if start < last:
            raise ValueError(f"phrase span ({start}, {end}) overlaps the previous phrase (ending at {last})")
        out += [caption[last:start], PHRASE_OPEN, caption[start:end], PHRASE_CLOSE]
        last = end
    out.append(caption[last:])
    return "".join(out)


def parse_caption(marked: str, background: str = BACKGROUND) -> tuple[str, list[GroundedPhrase], list[str]]:
    """Split a marked caption into ``(plain caption, phrases, repairs)``; never raises on any text."""
    repairs: list[str] = []
    pieces: list[str] = []
    spans: list[tuple[int, int]] = []
    length = 0
    opened: int | None = None
    last = 0
    for match in _MARKER.finditer(marked):
        pieces.append(marked[last:match.start()])
        length += match.start() - last
        last = match.end()
        closing = bool(match.group(1))
        if not closing:
            if opened is not None:
                repairs.append(f"caption: <p> at character {match.start()} inside an open phrase; closed it first")
                spans.append((opened, length))
            opened = length
        elif opened is None:
            repairs.append(f"caption: stray </p> at character {match.start()} dropped")
        else:
            spans.append((opened, length))
            opened = None
    pieces.append(marked[last:])
    length += len(marked) - last
    if opened is not None:
        repairs.append("caption: unclosed <p>; the phrase ends at the end of the caption")
        spans.append((opened, length))
    plain = "".join(pieces)
    lead = len(plain) - len(plain.lstrip())
    caption = plain.strip()
    kept: list[tuple[int, int, str]] = []
    for start, end in spans:
        text = plain[start:end]
        start += len(text) - len(text.lstrip())
        end -= len(text) - len(text.rstrip())
        if end <= start or not sanitize_label(plain[start:end]):
            repairs.append(f"caption: empty phrase at character {start} dropped")
            continue
        kept.append((start - lead, end - lead, plain[start:end]))
    labels = phrase_labels([text for _, _, text in kept], background)
    phrases = [GroundedPhrase(text, label, max(start, 0), min(end, len(caption)))
               for (start, end, text), label in zip(kept, labels)]
    return caption, phrases, repairs


def grounded_answer(caption: str, spans: Sequence[tuple[int, int]], grid: np.ndarray | Sequence[Sequence[str]],
                    rle: bool = True) -> str:
    """The answer text: marked caption, newline, ``<seg>`` descriptor ``</seg>``.

    Args:
        caption: the plain caption.
        spans: the grounded phrases' ``(start, end)`` offsets in ``caption``.
        grid: (H, W) labels: each phrase's label (:func:`phrase_labels` of the phrases in span order) or the
            background.
        rle: the R-RLE form (else plain).

    Raises:
        ValueError: bad spans (:func:`mark_caption`) or a grid label that is neither a phrase label nor the
            background.
    """
    ordered = sorted((int(s), int(e)) for s, e in spans)
    labels = set(phrase_labels([caption[s:e] for s, e in ordered]))
    values = {str(v) for v in np.unique(np.asarray(grid, dtype=object).astype(str))}
    stray = sorted(values - labels - {BACKGROUND})
    if stray:
        raise ValueError(f"grid labels {stray[:5]} are neither phrase labels nor {BACKGROUND!r}")
    return f"{mark_caption(caption.strip(), ordered)}\n{SEG_START}{encode_descriptor(grid, rle=rle)}{SEG_END}"


def decode_grounded(text: str, height: int, width: int, out_hw: tuple[int, int] | None = None,
                    mode: str = "nearest", background: str = BACKGROUND) -> GroundedAnswer:
    """Decode a grounded-caption answer (model output: never raises on any text).

    Args:
        text: the answer.
        height, width: the descriptor grid size.
        out_hw: (H0, W0): also upsample each phrase's mask to this size (``GroundedPhrase.mask``).
        mode: ``"nearest"`` or ``"smooth"`` upsampling (:func:`text4seg.descriptors.grid_to_mask`).
        background: the background label.
    """
    text = "" if text is None else str(text)
    start = text.find(SEG_START)
    head = text if start < 0 else text[:start]
    caption, phrases, repairs = parse_caption(head, background)
    if start < 0:
        repairs.append("no <seg> descriptor: every phrase has an empty mask")
    decoded = decode_descriptor(text if start >= 0 else "", height, width, background)
    if start >= 0:
        repairs += decoded.repairs
    grid = decoded.labels
    index = {_norm_name(p.label): n for n, p in enumerate(phrases, start=1)}
    ids = np.zeros(grid.shape, dtype=np.int64)
    stray: set[str] = set()
    for value in np.unique(grid.astype(str)):
        key = _norm_name(value)
        if key == _norm_name(background):
            continue
        if key in index:
            ids[grid == value] = index[key]
        else:
            stray.add(str(value))
    repairs += [f"descriptor label {label!r} names no phrase of the caption; ignored" for label in sorted(stray)]
    cells = np.bincount(ids.ravel(), minlength=len(phrases) + 1)
    full = _upsample_ids(ids, tuple(out_hw), mode) if out_hw is not None and phrases else None
    for n, phrase in enumerate(phrases, start=1):
        phrase.cells = int(cells[n])
        if out_hw is not None:
            phrase.mask = full == n if full is not None else np.zeros(tuple(out_hw), dtype=bool)
    return GroundedAnswer(caption, phrases, grid, repairs, decoded.form if start >= 0 else "empty", text)
