"""Semantic descriptors: label grids <-> descriptor text, and pixel masks <-> label grids.

A *semantic descriptor* is one label per image patch, written row by row. The R-RLE form (the reference
Text4Seg format, byte-exact) writes each run of equal labels in a row as ``"{label} *{count}"``, joins the
runs of a row with ``"| "``, joins rows with ``"\\n "`` and ends with ``"\\n"``::

    others *2| white horse *2
     others *4

The plain form writes every cell: ``"others| others| white horse| white horse\\n others| ...\\n"``.
In a model answer the descriptor sits between ``<seg>`` and ``</seg>``.

Model output is untrusted: :func:`decode_descriptor` never raises on any text, always returns the requested
H x W grid, repairs each row on its own and lists every repair. This module needs only numpy and PIL.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

__all__ = [
    "BACKGROUND",
    "ROW_SEP",
    "RUN_SEP",
    "SEG_START",
    "SEG_END",
    "DecodedGrid",
    "Instance",
    "LabelMap",
    "MAX_INSTANCES",
    "descriptor_form",
    "descriptor_shape",
    "foreground_spans",
    "reencode_answer",
    "binary_grid_labels",
    "decode_descriptor",
    "encode_descriptor",
    "extract_descriptor",
    "grid_to_mask",
    "ids_to_labels",
    "instance_label",
    "instances_from_grid",
    "label_spans",
    "split_instance_label",
    "mask_to_grid",
    "parse_grid_size",
    "referring_mask",
    "sanitize_label",
    "wrap_descriptor",
]

BACKGROUND = "others"
SEG_START, SEG_END = "<seg>", "</seg>"

RUN_SEP = "| "  # between the runs (or cells) of a row
ROW_SEP = "\n "  # between rows; the descriptor ends with a bare "\n"
_FORBIDDEN = ("|", "*", "\n", "\r", SEG_START, SEG_END)
_MAX_COUNT_DIGITS = 9  # int() of a huge digit string is slow (and capped by Python); no grid is that wide
_ROW_HINT = re.compile(r"\||\*\s*[0-9]")


# --------------------------------------------------------------------------------------------------------------
# sizes and labels


def parse_grid_size(spec: int | str | Sequence[int]) -> tuple[int, int]:
    """Parse a grid size given as ``16``, ``"16"``, ``"24x32"`` or ``(24, 32)``.

    Args:
        spec: one int (square grid), a string ``"N"`` or ``"HxW"`` (``x``/``X``/``×``, spaces allowed), or a
            pair ``(H, W)``.

    Returns:
        ``(height, width)`` in grid cells, both >= 1.

    Raises:
        ValueError: naming ``spec`` when it is not a positive size.
    """
    try:
        if isinstance(spec, bool):
            raise TypeError
        if isinstance(spec, str):
            m = re.fullmatch(r"\s*([0-9]+)\s*(?:[xX×]\s*([0-9]+)\s*)?", spec)
            if m is None:
                raise TypeError
            h = int(m.group(1))
            w = int(m.group(2)) if m.group(2) is not None else h
        elif isinstance(spec, Sequence) or isinstance(spec, np.ndarray):
            if len(spec) != 2 or any(isinstance(v, bool) for v in spec):
                raise TypeError
            h, w = (operator.index(v) for v in spec)
        else:
            h = w = operator.index(spec)
    except (TypeError, ValueError):
        raise ValueError(f"grid size {spec!r}: expected N, 'N', 'HxW' or (H, W) with positive integers") from None
    if h < 1 or w < 1:
        raise ValueError(f"grid size {spec!r}: height and width must be >= 1")
    return int(h), int(w)


def sanitize_label(text: str) -> str:
    """Make free text (an expression, a class name) usable as a descriptor label.

    ``'|'`` becomes ``'/'``, ``'*'`` becomes ``'x'``, ``<seg>``/``</seg>`` are removed, every run of whitespace
    (newlines, tabs, ...) becomes one space, and the ends are stripped. The result can be empty (for
    example for ``"  "``); :func:`encode_descriptor` refuses empty labels, so callers must check.
    """
    text = str(text)
    while SEG_START in text or SEG_END in text:
        text = text.replace(SEG_START, "").replace(SEG_END, "")
    text = text.replace("|", "/").replace("*", "x")
    return re.sub(r"\s+", " ", text).strip()


def _check_label(label: object, where: str) -> None:
    if not isinstance(label, str):
        raise ValueError(f"label {label!r} at {where} is not a str")
    if not label.strip():
        raise ValueError(f"label {label!r} at {where} is empty")
    for bad in _FORBIDDEN:
        if bad in label:
            raise ValueError(f"label {label!r} at {where} contains {bad!r} (use sanitize_label)")
    if label != label.strip():
        raise ValueError(f"label {label!r} at {where} has leading or trailing whitespace (use sanitize_label)")


def _grid_rows(grid: np.ndarray | Sequence[Sequence[str]]) -> list[list[str]]:
    if isinstance(grid, np.ndarray):
        if grid.ndim != 2:
            raise ValueError(f"grid: expected a 2-D H x W array of labels, got shape {grid.shape}")
        rows = grid.tolist()
    else:
        if isinstance(grid, str):
            raise ValueError("grid: expected H x W labels, got one str")
        rows = []
        for i, row in enumerate(grid):
            if isinstance(row, str) or not isinstance(row, Sequence | np.ndarray):
                raise ValueError(f"grid row {i}: expected a sequence of labels, got {type(row).__name__}")
            rows.append(list(row))
    if not rows or not rows[0]:
        raise ValueError("grid: expected at least one row and one column")
    width = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"grid row {i}: {len(row)} labels, expected {width} like row 0")
    return rows


# --------------------------------------------------------------------------------------------------------------
# encoding


def encode_descriptor(grid: np.ndarray | Sequence[Sequence[str]], rle: bool = True) -> str:
    """Write a label grid as descriptor text.

    Args:
        grid: H x W labels (numpy array of str/object, or a list of rows), any H, W >= 1. Labels may hold
            spaces and commas; they must be non-empty, without leading/trailing whitespace, and must not
            contain ``'|'``, ``'*'``, a newline or a ``<seg>``/``</seg>`` tag.
        rle: True for the R-RLE form (byte-identical to the reference Text4Seg encoder), False for the plain
            form.

    Returns:
        The descriptor text, ending with ``"\\n"`` (not wrapped in ``<seg>`` tags; see :func:`wrap_descriptor`).

    Raises:
        ValueError: for a ragged or empty grid, or naming the first bad label and its position.
    """
    rows = _grid_rows(grid)
    checked: set[str] = set()
    out_rows = []
    for i, row in enumerate(rows):
        for j, label in enumerate(row):
            if label not in checked:
                _check_label(label, f"row {i}, column {j}")
                checked.add(label)
        if not rle:
            out_rows.append(RUN_SEP.join(row))
            continue
        runs = []
        start = 0
        for j in range(1, len(row) + 1):
            if j == len(row) or row[j] != row[start]:
                runs.append(f"{row[start]} *{j - start}")
                start = j
        out_rows.append(RUN_SEP.join(runs))
    return ROW_SEP.join(out_rows) + "\n"


def wrap_descriptor(descriptor: str, sentence: str = "") -> str:
    """Put a descriptor into answer form: ``f"{sentence}\\n<seg>{descriptor}</seg>"``.

    With ``sentence == ""`` the result is ``"<seg>{descriptor}</seg>"`` (no leading newline).
    """
    body = f"{SEG_START}{descriptor}{SEG_END}"
    return f"{sentence}\n{body}" if sentence else body


def extract_descriptor(text: str) -> str | None:
    """Return the text between the first ``<seg>`` and the next ``</seg>`` (or the end when ``</seg>`` is
    missing), or None when ``text`` has no ``<seg>``."""
    start = text.find(SEG_START)
    if start < 0:
        return None
    start += len(SEG_START)
    end = text.find(SEG_END, start)
    return text[start:] if end < 0 else text[start:end]


# --------------------------------------------------------------------------------------------------------------
# decoding


@dataclass
class DecodedGrid:
    """A descriptor decoded into a grid.

    Attributes:
        labels: (H, W) numpy array, dtype object, of str labels (stripped of surrounding whitespace).
        repairs: one human-readable entry per fix applied to malformed text (rows are 0-based), empty when the
            text was well formed.
        form: ``"rle"``, ``"plain"`` or ``"empty"`` (no descriptor cells found: all background).
    """

    labels: np.ndarray
    repairs: list[str] = field(default_factory=list)
    form: str = "rle"

    @property
    def ok(self) -> bool:
        """True when nothing had to be repaired."""
        return not self.repairs


@dataclass
class _Token:
    text: str
    label: str
    count: int
    is_run: bool
    bad_count: bool


def _parse_token(text: str, width: int) -> _Token | None:
    """Parse one ``|``-separated token; None for junk (nothing usable as a label)."""
    if "*" not in text:
        return _Token(text, text, 1, False, False) if text else None
    label, _, count = text.partition("*")
    label, count = label.strip(), count.strip()
    if not label:
        return None
    if count.isascii() and count.isdigit() and len(count) <= _MAX_COUNT_DIGITS and 1 <= int(count) <= width:
        return _Token(text, label, int(count), True, False)
    return _Token(text, label, 1, True, True)


def _descriptor_lines(text: str, width: int, repairs: list[str]) -> list[str]:
    """The descriptor lines of ``text``, each stripped, without leading and trailing blank lines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    start = text.find(SEG_START)
    if start < 0:
        end = text.find(SEG_END)
        if end >= 0:
            repairs.append("</seg> without <seg>: read the text before it")
            text = text[:end]
        lines = [line.strip() for line in text.split("\n")]
        # No <seg>: lines before the first one that looks like a descriptor row are answer text. Without any
        # separator only a one-column grid can be a bare plain descriptor; for wider grids such text
        # ("I cannot find it.") is no descriptor at all, never a grid full of one label.
        hinted = [k for k, line in enumerate(lines) if _ROW_HINT.search(line)]
        if hinted:
            lines = lines[hinted[0]:]
        elif width > 1:
            lines = []
    else:
        start += len(SEG_START)
        end = text.find(SEG_END, start)
        if end < 0:
            repairs.append("no </seg> after <seg>: read to the end of the text")
            body = text[start:]
        else:
            body = text[start:end]
        if SEG_START in body:
            repairs.append("stray <seg> tags removed")
            while SEG_START in body or SEG_END in body:
                body = body.replace(SEG_START, "").replace(SEG_END, "")
        lines = [line.strip() for line in body.split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def decode_descriptor(text: str, height: int, width: int, background: str = BACKGROUND) -> DecodedGrid:
    """Read a descriptor (R-RLE or plain, detected) from model output into an exactly H x W grid.

    Accepts the bare descriptor or a whole answer (text around ``<seg>...</seg>``). Without ``<seg>``, lines
    before the first line that looks like a descriptor row (has ``|`` or ``*N``) are answer text, and text
    with no such line counts as no descriptor unless ``width == 1``. For text written by
    :func:`encode_descriptor` this is its exact inverse with no repairs. It never raises on any str;
    malformed text is repaired row by row, so one bad row never shifts the others:

    - a token without ``*`` in an R-RLE descriptor, or with a count that is not an integer in
      ``[1, width]``, counts 1; a valid run inside a plain descriptor is expanded;
    - junk tokens (empty, or nothing before ``*``) are dropped;
    - a row with fewer than ``width`` cells is padded with its last label, a longer one is cut; a row with
      no cells copies the row above (background for row 0);
    - missing rows repeat the last row; extra rows are dropped (a blank line between rows is a row with no
      cells; blank lines before the first and after the last row are ignored);
    - no cells at all gives an all-``background`` grid with form ``"empty"``.

    The form is ``"rle"`` when at least half of the usable tokens carry a ``*`` count, else ``"plain"``.

    Args:
        text: model output or descriptor text.
        height: grid rows H >= 1.
        width: grid columns W >= 1.
        background: label used when there is nothing to decode.

    Returns:
        :class:`DecodedGrid` with ``labels`` of shape (H, W), dtype object.

    Raises:
        ValueError: only for a bad ``height``/``width`` (never for the text).
    """
    height, width = parse_grid_size((height, width))
    if text is None:
        text = ""
    elif not isinstance(text, str):
        raise ValueError(f"text: expected str, got {type(text).__name__}")
    repairs: list[str] = []
    labels = np.empty((height, width), dtype=object)
    lines = _descriptor_lines(text, width, repairs)

    rows: list[list[_Token]] = []
    junk: list[list[str]] = []
    n_run = n_cell = 0
    for line in lines[:height]:
        tokens, dropped = [], []
        for raw in line.split("|") if line else ():
            raw = raw.strip()
            tok = _parse_token(raw, width)
            if tok is None:
                dropped.append(raw)
                continue
            tokens.append(tok)
            if tok.is_run:
                n_run += 1
            else:
                n_cell += 1
        rows.append(tokens)
        junk.append(dropped)

    if n_run + n_cell == 0:
        labels[:] = background
        repairs.append(f"no descriptor found: all cells {background!r}")
        return DecodedGrid(labels, repairs, "empty")
    form = "rle" if n_run >= n_cell else "plain"

    for i, (tokens, dropped) in enumerate(zip(rows, junk)):
        for raw in dropped:
            repairs.append(f"row {i}: junk token {raw!r} dropped")
        cells: list[str] = []
        n = 0  # cells the row asks for; only the first `width` are kept (bounded memory on runaway rows)
        for tok in tokens:
            if tok.bad_count:
                repairs.append(f"row {i}: run {tok.text!r} has no valid count (1..{width}), counted as 1")
            elif form == "rle" and not tok.is_run:
                repairs.append(f"row {i}: token {tok.text!r} has no count, counted as 1")
            elif form == "plain" and tok.is_run:
                repairs.append(f"row {i}: run {tok.text!r} in a plain descriptor, expanded to {tok.count} cells")
            n += tok.count
            if len(cells) < width:
                cells.extend([tok.label] * min(tok.count, width - len(cells)))
        if n == 0:
            if i > 0:
                labels[i] = labels[i - 1]
                repairs.append(f"row {i}: no cells, copied row {i - 1}")
            else:
                labels[i] = background
                repairs.append(f"row {i}: no cells, filled with {background!r}")
            continue
        if n < width:
            repairs.append(f"row {i}: {n} cell{'s' if n > 1 else ''}, padded with {cells[-1]!r}")
            cells.extend([cells[-1]] * (width - n))
        elif n > width:
            repairs.append(f"row {i}: {n} cells, cut to {width}")
        labels[i, :] = cells

    got = len(rows)
    if got < height:
        labels[got:] = labels[got - 1]
        missing = f"row {got}" if got == height - 1 else f"rows {got}-{height - 1}"
        repairs.append(f"{missing} missing, repeated row {got - 1}")
    elif len(lines) > height:
        extra = len(lines) - height
        repairs.append(f"{extra} extra row{'s' if extra > 1 else ''} dropped")
    return DecodedGrid(labels, repairs, form)


# --------------------------------------------------------------------------------------------------------------
# masks <-> grids


def _check_mask(mask: np.ndarray, name: str = "mask") -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.shape[0] < 1 or mask.shape[1] < 1:
        raise ValueError(f"{name}: expected a non-empty 2-D H x W array, got shape {mask.shape}")
    if mask.dtype != bool and not np.issubdtype(mask.dtype, np.integer):
        raise ValueError(f"{name}: expected a bool mask or an integer label map, got dtype {mask.dtype}")
    return mask


def _present_values(ids: np.ndarray) -> np.ndarray:
    """Sorted distinct values of a bool/integer array (bincount when the range is small: no sort)."""
    if ids.dtype == bool:
        return np.flatnonzero(np.bincount(ids.ravel().view(np.uint8), minlength=2))
    lo, hi = int(ids.min()), int(ids.max())
    if hi - lo < 1 << 16:
        return np.flatnonzero(np.bincount((ids.ravel() - lo).astype(np.intp, copy=False))) + lo
    return np.unique(ids)


@functools.lru_cache(maxsize=256)
def _nearest_index(n_in: int, n_out: int) -> np.ndarray:
    """Source index of each output position under PIL NEAREST resizing along one axis.

    PIL's nearest resize is separable (an axis-aligned affine map), so resizing a one-row image of indices
    gives exactly the source column PIL would pick for every output column of any image of that width.
    """
    ramp = Image.fromarray(np.arange(n_in, dtype=np.int32)[None, :])
    return np.asarray(ramp.resize((n_out, 1), Image.Resampling.NEAREST), dtype=np.int64)[0]


@functools.lru_cache(maxsize=256)
def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float64 overlap of cell o with pixel p, in units of 1/n_out pixel (exact integers).

    Cell o spans pixels ``[o * n_in / n_out, (o + 1) * n_in / n_out)``; scaled by n_out both cell and pixel
    bounds are integers, so coverage sums are exact. Each row sums to n_in.
    """
    cell = np.arange(n_out, dtype=np.int64)[:, None]
    pix = np.arange(n_in, dtype=np.int64)[None, :]
    lo = np.maximum(cell * n_in, pix * n_out)
    hi = np.minimum((cell + 1) * n_in, (pix + 1) * n_out)
    return np.clip(hi - lo, 0, None).astype(np.float64)


@functools.lru_cache(maxsize=256)
def _bilinear_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float64 linear-interpolation matrix, half-pixel centres, edges clamped.

    Same as ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` and, when upsampling,
    as PIL ``BILINEAR``.
    """
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    src = np.clip(src, 0.0, n_in - 1)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    frac = src - i0
    weights = np.zeros((n_out, n_in), dtype=np.float64)
    rows = np.arange(n_out)
    np.add.at(weights, (rows, i0), 1.0 - frac)
    np.add.at(weights, (rows, i1), frac)
    return weights


def mask_to_grid(
    mask: np.ndarray,
    height: int,
    width: int,
    mode: str = "nearest",
    min_fraction: float = 0.25,
    background_id: int = 0,
) -> np.ndarray:
    """Reduce a mask or label map to a grid of ids, one per descriptor cell.

    Args:
        mask: (H0, W0) bool mask (True -> id 1) or integer label map (values kept as ids); any H0, W0 >= 1,
            also smaller than the grid.
        height: grid rows H >= 1.
        width: grid columns W >= 1.
        mode: ``"nearest"``: PIL NEAREST resize of the whole mask to (W, H), aspect ratio not kept, as the
            reference builds its training data. ``"area"``: every cell covers the exact fractional pixel
            area ``[i*H0/H, (i+1)*H0/H) x [j*W0/W, (j+1)*W0/W)``; it takes the label covering the largest
            share, except that a non-background label covering >= ``min_fraction`` of the cell beats
            background (the largest such label wins), so thin and small objects survive. Ties go to the
            smaller id.
        min_fraction: share of a cell in (0, 1] a foreground label needs to win over background (``"area"``).
        background_id: id of the background label (``"area"``).

    Returns:
        (H, W) int64 ids.

    Raises:
        ValueError: for a non-2-D or non-integer mask, a bad size, mode or ``min_fraction``.
    """
    mask = _check_mask(mask)
    height, width = parse_grid_size((height, width))
    h0, w0 = mask.shape
    if mode == "nearest":
        return mask.take(_nearest_index(h0, height), axis=0).take(_nearest_index(w0, width), axis=1).astype(np.int64)
    if mode != "area":
        raise ValueError(f"mode {mode!r}: expected 'nearest' or 'area'")
    if not 0.0 < min_fraction <= 1.0:
        raise ValueError(f"min_fraction {min_fraction!r}: expected a value in (0, 1]")
    values = _present_values(mask).astype(np.int64)
    if len(values) == 1:
        return np.full((height, width), values[0], dtype=np.int64)
    total = h0 * w0  # area of every cell in the integer units of _area_weights
    # Integer-valued products: float32 is exact while every sum stays below 2**24.
    dtype = np.float32 if total < 1 << 24 else np.float64
    wy, wx = _area_weights(h0, height).astype(dtype), _area_weights(w0, width).astype(dtype).T
    cover = np.empty((len(values), height, width), dtype=np.float64)
    # The coverage of one label follows from the others (they sum to the cell area): skip the background,
    # or the last label, which also leaves a binary mask with a single matrix product.
    skip = int(np.searchsorted(values, background_id)) if background_id in values else len(values) - 1
    cover[skip] = 0.0
    for k, value in enumerate(values):
        if k != skip:
            cover[k] = wy @ (mask == value).astype(dtype) @ wx
    cover[skip] = total - cover.sum(axis=0)
    best_all = values[np.argmax(cover, axis=0)]
    fg = values != background_id
    if not fg.any():
        return best_all
    fg_values, fg_cover = values[fg], cover[fg]
    best_fg = fg_values[np.argmax(fg_cover, axis=0)]
    wins = fg_cover.max(axis=0) >= min_fraction * float(total)
    return np.where(wins, best_fg, best_all).astype(np.int64)


def binary_grid_labels(grid_ids: np.ndarray, fg_label: str, background: str = BACKGROUND) -> np.ndarray:
    """Label a binary id grid: ids != 0 -> ``fg_label``, 0 -> ``background``.

    Returns:
        (H, W) object array of str.
    """
    grid_ids = np.asarray(grid_ids)
    out = np.full(grid_ids.shape, background, dtype=object)
    out[grid_ids != 0] = fg_label
    return out


def ids_to_labels(
    grid_ids: np.ndarray, names: Mapping[int, str] | Sequence[str], background: str = BACKGROUND
) -> np.ndarray:
    """Label a multi-class id grid with class names.

    Args:
        grid_ids: (H, W) integer ids.
        names: class names by id (a sequence indexed by id, or a mapping id -> name). Ids without a name
            (ignore 255, out of range) become ``background``.

    Returns:
        (H, W) object array of str.
    """
    grid_ids = np.asarray(grid_ids)
    table = dict(names) if isinstance(names, Mapping) else dict(enumerate(names))
    values, inverse = np.unique(grid_ids, return_inverse=True)
    mapped = np.array([table.get(int(v), background) for v in values], dtype=object)
    return mapped[inverse.reshape(grid_ids.shape)]


def _upsample_ids(grid_ids: np.ndarray, out_hw: tuple[int, int], mode: str) -> np.ndarray:
    """Upsample an (H, W) id grid to ``out_hw`` (see :func:`grid_to_mask`); keeps the dtype for "nearest"."""
    out_h, out_w = parse_grid_size(out_hw)
    h, w = grid_ids.shape
    if mode == "nearest":
        # two 1-D gathers: several times faster than one np.ix_ gather for large outputs
        return grid_ids.take(_nearest_index(h, out_h), axis=0).take(_nearest_index(w, out_w), axis=1)
    if mode != "smooth":
        raise ValueError(f"mode {mode!r}: expected 'nearest' or 'smooth'")
    values = _present_values(grid_ids)
    if len(values) == 1:
        return np.full((out_h, out_w), values[0], dtype=grid_ids.dtype)
    by, bx = _bilinear_weights(h, out_h), _bilinear_weights(w, out_w).T
    if len(values) == 2:
        # The two scores sum to 1: the larger id wins where its score is above one half (ties -> smaller id).
        score = by @ (grid_ids == values[1]).astype(np.float64) @ bx
        return np.where(score > 0.5, values[1], values[0]).astype(grid_ids.dtype)
    best = by @ (grid_ids == values[0]).astype(np.float64) @ bx
    best_k = np.zeros((out_h, out_w), dtype=np.intp)
    for k in range(1, len(values)):
        score = by @ (grid_ids == values[k]).astype(np.float64) @ bx
        better = score > best  # strict: on a tie the smaller id (earlier k) stays
        np.copyto(best, score, where=better)
        np.copyto(best_k, k, where=better)
    return values[best_k].astype(grid_ids.dtype)


def grid_to_mask(
    grid_labels: np.ndarray,
    label_to_id: Mapping[str, int] | LabelMap,
    out_hw: tuple[int, int],
    mode: str = "nearest",
    fallback_id: int = 0,
) -> np.ndarray:
    """Turn a label grid back into a pixel label map at the original image size.

    Args:
        grid_labels: (H, W) str labels (e.g. ``DecodedGrid.labels``).
        label_to_id: exact label -> id map (labels missing from it get ``fallback_id``), or a
            :class:`LabelMap` (case/space-insensitive, synonyms, its own fallback id).
        out_hw: (H0, W0) output size.
        mode: ``"nearest"``: PIL NEAREST upsampling of the id grid. ``"smooth"``: each class's one-hot grid is
            upsampled bilinearly (half-pixel centres, as PIL BILINEAR / torch ``align_corners=False``) and
            every pixel takes the class with the highest value (ties -> smaller id): smoother borders.
        fallback_id: id of labels missing from a plain mapping.

    Returns:
        (H0, W0) int64 label map.
    """
    grid_labels = np.asarray(grid_labels, dtype=object)
    if grid_labels.ndim != 2 or 0 in grid_labels.shape:
        raise ValueError(f"grid_labels: expected a non-empty 2-D H x W array, got shape {grid_labels.shape}")
    if isinstance(label_to_id, LabelMap):
        ids, _ = label_to_id.ids(grid_labels)
    else:
        values, inverse = np.unique(grid_labels.astype(str), return_inverse=True)
        lut = np.array([int(label_to_id.get(str(v), fallback_id)) for v in values], dtype=np.int64)
        ids = lut[inverse.reshape(grid_labels.shape)]
    return _upsample_ids(ids, out_hw, mode)


def referring_mask(
    grid_labels: np.ndarray, out_hw: tuple[int, int], mode: str = "nearest", background: str = BACKGROUND
) -> np.ndarray:
    """Binary mask of a referring answer: every label other than ``background`` is foreground.

    A grid whose cells all name the target decodes as a full mask.

    Args:
        grid_labels: (H, W) str labels.
        out_hw: (H0, W0) output size.
        mode: ``"nearest"`` or ``"smooth"`` as in :func:`grid_to_mask`.

    Returns:
        (H0, W0) bool mask.
    """
    grid_labels = np.asarray(grid_labels, dtype=object)
    if grid_labels.ndim != 2 or 0 in grid_labels.shape:
        raise ValueError(f"grid_labels: expected a non-empty 2-D H x W array, got shape {grid_labels.shape}")
    return _upsample_ids(grid_labels != background, out_hw, mode)


# --------------------------------------------------------------------------------------------------------------
# semantic label names


def _norm_name(name: str) -> str:
    return " ".join(str(name).split()).casefold()


class LabelMap:
    """Class name -> class id for semantic decoding; case- and whitespace-insensitive, with synonyms.

    Args:
        names: class names by id (sequence indexed by id, or mapping id -> name).
        synonyms: alias -> canonical name (the canonical name must be one of ``names``), e.g.
            ``{"tv": "tvmonitor"}``.
        background: the background label the model writes (``"others"``).
        background_id: id for ``background``; None: the id of a class with that name if there is one,
            else ``fallback_id`` (background is then not reported as unknown).
        fallback_id: id for names that are not known (reported by :meth:`ids`).

    Raises:
        ValueError: for two classes with the same normalised name, or a synonym of an unknown class.
    """

    def __init__(
        self,
        names: Sequence[str] | Mapping[int, str],
        synonyms: Mapping[str, str] | None = None,
        background: str = BACKGROUND,
        background_id: int | None = None,
        fallback_id: int = 255,
    ) -> None:
        items = names.items() if isinstance(names, Mapping) else enumerate(names)
        self.fallback_id = int(fallback_id)
        self.background = background
        self._ids: dict[str, int] = {}
        self._spelling: dict[int, str] = {}
        for class_id, name in items:
            self._spelling.setdefault(int(class_id), str(name))
            key = _norm_name(name)
            if key in self._ids and self._ids[key] != int(class_id):
                raise ValueError(f"names: {name!r} (id {class_id}) duplicates id {self._ids[key]}")
            self._ids[key] = int(class_id)
        for alias, target in (synonyms or {}).items():
            if _norm_name(target) not in self._ids:
                raise ValueError(f"synonyms: {alias!r} -> {target!r}, but {target!r} is not a class name")
            self._ids.setdefault(_norm_name(alias), self._ids[_norm_name(target)])
        bg_key = _norm_name(background)
        if background_id is not None:
            self._ids[bg_key] = int(background_id)
        elif bg_key not in self._ids:
            self._ids[bg_key] = self.fallback_id
        self.background_id = self._ids[bg_key]

    def lookup(self, name: str) -> int | None:
        """Id of ``name`` (normalised, synonyms applied), or None when unknown."""
        return self._ids.get(_norm_name(name))

    def name(self, name: str) -> str:
        """The listed spelling of a known ``name`` (the first class name of its id; ``name`` if unknown)."""
        class_id = self.lookup(name)
        return self._spelling.get(class_id, name) if class_id is not None else name

    def ids(self, grid_labels: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Map a label grid to ids.

        Args:
            grid_labels: (H, W) str labels.

        Returns:
            ``(ids, unknown)``: (H, W) int64 ids (unknown names -> ``fallback_id``) and the sorted unique
            unknown labels as written (stripped).
        """
        grid_labels = np.asarray(grid_labels, dtype=object)
        values, inverse = np.unique(grid_labels.astype(str), return_inverse=True)
        lut = np.empty(len(values), dtype=np.int64)
        unknown = set()
        for k, value in enumerate(values):
            found = self.lookup(value)
            if found is None:
                unknown.add(str(value).strip())
                found = self.fallback_id
            lut[k] = found
        return lut[inverse.reshape(grid_labels.shape)], sorted(unknown)


# ------------------------------------------------------------------------------------------ re-encoding

_RUN_COUNT = re.compile(r"\*\s*(\d+)\s*$")
_HAS_COUNT = re.compile(r"\*\s*\d")


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


def descriptor_form(descriptor: str) -> str:
    """``"rle"`` when the descriptor has run counts (``label *N``), else ``"plain"``."""
    return "rle" if _HAS_COUNT.search(descriptor) else "plain"


def foreground_spans(text: str, background: str = BACKGROUND) -> np.ndarray:
    """(len(text),) bool: characters of descriptor cells/runs (inside ``<seg>...</seg>``) whose label is not
    ``background``."""
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


def reencode_answer(answer: str, grid: int | str | Sequence[int], form: str = "rle",
                    background: str = BACKGROUND) -> str:
    """The answer with its descriptor re-encoded into another grid and form (nearest resampling of the labels);
    the text around ``<seg>...</seg>`` is kept. An answer without a descriptor, or already in that grid and
    form, is returned unchanged.

    Args:
        answer: a model answer or training target.
        grid: the target grid (``N``, ``"HxW"`` or a pair).
        form: ``"rle"`` or ``"plain"``.
        background: the background label.
    """
    descriptor = extract_descriptor(answer)
    if descriptor is None:
        return answer
    height, width = descriptor_shape(descriptor)
    target = parse_grid_size(grid)
    if (height, width) == (0, 0) or ((height, width) == target and descriptor_form(descriptor) == form):
        return answer
    labels = decode_descriptor(descriptor, height, width, background=background).labels
    names = [background] + sorted(set(labels.ravel().tolist()) - {background})
    lookup = {name: k for k, name in enumerate(names)}
    ids = np.vectorize(lookup.__getitem__, otypes=[np.int64])(labels)
    new = encode_descriptor(ids_to_labels(mask_to_grid(ids, *target, mode="nearest"), names, background),
                            rle=form == "rle")
    start = answer.find(SEG_START) + len(SEG_START)
    return answer[:start] + new + answer[start + len(descriptor) :]


# ------------------------------------------------------------------------------------------ instances


MAX_INSTANCES = 10  # most instances of one class an instance-aware answer labels ("person 1" .. "person 10")


def instance_label(class_name: str, k: int) -> str:
    """The descriptor label of instance ``k`` (1-based) of a class: ``"person 2"``."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"instance number {k!r}: expected an int >= 1")
    return f"{sanitize_label(class_name)} {k}"


def split_instance_label(label: str, classes: LabelMap | Sequence[str] | None = None,
                         max_instances: int | None = None) -> tuple[str, int | None] | None:
    """Read a label as ``(class, k)``: ``"person 2"`` -> ``("person", 2)``, a bare class name -> ``(name, None)``.

    Args:
        label: a descriptor label.
        classes: the known class names (or a :class:`LabelMap`): the class part must be one of them
            (case/space-insensitive; the returned name is the listed spelling); None: any text.
        max_instances: a larger ``k`` is not an instance number (the label is then read whole).

    Returns:
        ``(class name, k or None)``, or None when the label names no known class.
    """
    label = " ".join(str(label).split())
    table = classes if isinstance(classes, LabelMap) or classes is None else LabelMap(list(classes))
    head, _, tail = label.rpartition(" ")
    candidates: list[tuple[str, int | None]] = []
    if head and tail.isascii() and tail.isdigit() and len(tail) <= _MAX_COUNT_DIGITS and int(tail) >= 1 and (
            max_instances is None or int(tail) <= max_instances):
        candidates.append((head, int(tail)))
    candidates.append((label, None))  # a class whose name ends with a number ("t 2") reads whole
    for name, k in candidates:
        if table is None:
            return (name, k) if name else None
        if table.lookup(name) is not None and _norm_name(name) != _norm_name(table.background):
            return table.name(name), k
    return None


@dataclass
class Instance:
    """One segment of an instance-aware answer.

    Attributes:
        label: the label as the model wrote it (``"person 2"``, or ``"sky"`` for a class label).
        class_name: the listed class it names.
        class_id: index of that class in the listed classes.
        number: its instance number ``k``, None for a class label (stuff: one segment per class).
        mask: (H0, W0) bool at the output size.
        cells: grid cells it covers (>= 1).
        score: confidence in (0, 1] from the label tokens' log-probabilities, None when not scored.
    """

    label: str
    class_name: str
    class_id: int
    number: int | None
    mask: np.ndarray
    cells: int
    score: float | None = None


def instances_from_grid(
    grid_labels: np.ndarray,
    classes: Sequence[str],
    out_hw: tuple[int, int],
    mode: str = "nearest",
    background: str = BACKGROUND,
    max_instances: int | None = None,
) -> tuple[list[Instance], list[str]]:
    """Decode an instance-aware label grid into one mask per label.

    ``"{class} {k}"`` labels are instances of a listed class; a bare class name is one segment of its class
    (stuff in panoptic answers). Segments come in class order, then by number (class labels first). The
    masks never overlap (they come from one grid).

    Args:
        grid_labels: (H, W) str labels (``DecodedGrid.labels``).
        classes: the listed class names (class id = index).
        out_hw: (H0, W0) mask size.
        mode: ``"nearest"`` or ``"smooth"`` as in :func:`grid_to_mask`.
        background: the background label.
        max_instances: larger instance numbers are not read as numbers.

    Returns:
        ``(instances, unknown)``: the segments, and the sorted labels that name no listed class.
    """
    grid_labels = np.asarray(grid_labels, dtype=object)
    if grid_labels.ndim != 2 or 0 in grid_labels.shape:
        raise ValueError(f"grid_labels: expected a non-empty 2-D H x W array, got shape {grid_labels.shape}")
    table = LabelMap(list(classes), background=background, background_id=-1)
    values, inverse = np.unique(grid_labels.astype(str), return_inverse=True)
    inverse = inverse.reshape(grid_labels.shape)
    found: list[tuple[int, int, str, str, int | None]] = []
    unknown: list[str] = []
    for v, value in enumerate(values):
        value = str(value).strip()
        if _norm_name(value) == _norm_name(background):
            continue
        parsed = split_instance_label(value, table, max_instances)
        if parsed is None:
            unknown.append(value)
            continue
        name, k = parsed
        found.append((int(table.lookup(name)), 0 if k is None else k, value, name, v))
    found.sort()
    out: list[Instance] = []
    seen: dict[tuple[int, int], int] = {}
    ids = np.zeros(grid_labels.shape, dtype=np.int64)
    for class_id, k, value, name, v in found:
        key = (class_id, k)  # "Person 1" and "person 1" are one instance
        if key not in seen:
            seen[key] = len(out) + 1
            out.append(Instance(value, name, class_id, k or None, np.zeros(0, dtype=bool), 0))
        ids[inverse == v] = seen[key]
    if out:
        full = _upsample_ids(ids, out_hw, mode)
        cells = np.bincount(ids.ravel(), minlength=len(out) + 1)
        for n, inst in enumerate(out, start=1):
            inst.mask = full == n
            inst.cells = int(cells[n])
    return out, sorted(unknown)


def label_spans(text: str) -> list[tuple[str, int, int]]:
    """Character spans of the label text of every run/cell inside ``<seg>...</seg>`` (counts excluded).

    Returns:
        ``(label, start, end)`` per run in text order; ``text[start:end]`` is the label as written.
    """
    start = text.find(SEG_START)
    if start < 0:
        return []
    start += len(SEG_START)
    end = text.find(SEG_END, start)
    end = len(text) if end < 0 else end
    out = []
    for match in re.finditer(r"[^|\s*](?:[^|\n*]*[^|\s*])?", text[start:end]):
        token = match.group(0)
        if token.isdigit() and text[start + match.start() - 1 : start + match.start()] in ("*", " "):
            prefix = text[start:start + match.start()].rstrip()
            if prefix.endswith("*"):
                continue  # the count of a run
        out.append((token, start + match.start(), start + match.end()))
    return out
