"""Byte-level automaton of one descriptor answer body: ``<seg>`` + H rows of exactly W cells + ``</seg>``.

The automaton reads UTF-8 bytes; a state is a small hashable tuple ``(phase, row, used, prev, x)``:

- ``row``: current grid row (0-based); ``used``: cells already completed in that row;
- ``prev``: label id of the previous run of the row (R-RLE forbids two adjacent runs with the same label, as
  the encoder merges them) or -1;
- ``x``: phase detail: the node of the label trie, the digits read so far, or the bytes of a literal matched.

Closed label sets (the query's label(s) plus the background) are read through a trie of ``label + " *"``
(R-RLE) or ``label`` (plain; a cell ends at ``"|"`` or a newline). Labels hold neither ``'|'``, ``'*'`` nor a
newline, so both tries are deterministic. Open label sets (free-form instructions, whose answer label cannot be
known) accept any clean label of at most ``max_label_bytes`` bytes. Counts are decimal without leading zeros,
and each keeps the row's remaining cells reachable exactly. Row 0 may start with one optional space (legacy
SentencePiece tokenizers write ``"<seg>▁others"``); :func:`text4seg.descriptors.decode_descriptor` strips it.

This module needs no torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from text4seg.descriptors import BACKGROUND, SEG_END, SEG_START, sanitize_label

__all__ = ["DescriptorGrammar", "utf8_lead", "utf8_next", "SEG_OPEN", "LEAD", "LABEL", "COUNT", "BAR", "ROWSEP", "CLOSE", "DONE"]

# phases
SEG_OPEN, LEAD, LABEL, COUNT, BAR, ROWSEP, CLOSE, DONE = range(8)

_SPACE, _BAR, _NL, _STAR = 0x20, 0x7C, 0x0A, 0x2A
_DIGITS = frozenset(range(0x30, 0x3A))
_OPEN_FORBIDDEN = frozenset([_BAR, _STAR, _NL, 0x0D, ord("<"), 0x7F, *range(0x20)])
_SEG_OPEN_BYTES = SEG_START.encode()
_SEG_END_BYTES = SEG_END.encode()


# UTF-8 as Python decodes it (no overlong forms, no surrogates, nothing above U+10FFFF): the state after a lead
# byte is a code 1..7 of what must follow; code -> (allowed range of the next byte, code after it, bytes left)
_UTF8_NEXT = {1: (0x80, 0xBF, 0), 2: (0x80, 0xBF, 1), 3: (0x80, 0xBF, 2), 4: (0xA0, 0xBF, 1),
              5: (0x80, 0x9F, 1), 6: (0x90, 0xBF, 2), 7: (0x80, 0x8F, 2)}
_UTF8_LEFT = {0: 0, 1: 1, 2: 2, 3: 3, 4: 2, 5: 2, 6: 3, 7: 3}


def utf8_lead(byte: int) -> int | None:
    """The UTF-8 state after ``byte`` starts a character (0 for ASCII), or None when ``byte`` cannot start one
    (a continuation byte, an overlong lead 0xC0/0xC1, or 0xF5 and above)."""
    if byte < 0x80:
        return 0
    if 0xC2 <= byte <= 0xDF:
        return 1
    if byte == 0xE0:
        return 4
    if byte == 0xED:
        return 5
    if 0xE1 <= byte <= 0xEF:
        return 2
    if byte == 0xF0:
        return 6
    if 0xF1 <= byte <= 0xF3:
        return 3
    if byte == 0xF4:
        return 7
    return None


def utf8_next(state: int, byte: int) -> int | None:
    """The UTF-8 state after continuation ``byte`` in ``state`` (1..7), or None when it is not allowed there."""
    low, high, after = _UTF8_NEXT[state]
    return after if low <= byte <= high else None


def utf8_left(state: int) -> int:
    """Continuation bytes still needed in UTF-8 ``state``."""
    return _UTF8_LEFT[state]


class _LabelTrie:
    """Deterministic byte trie of label strings; ``mask[node]``: bitmask of label ids below ``node``."""

    def __init__(self, strings: Sequence[bytes]) -> None:
        self.children: list[dict[int, int]] = [{}]
        self.terminal: list[int] = [-1]
        self.mask: list[int] = [0]
        for label_id, text in enumerate(strings):
            node = 0
            self.mask[0] |= 1 << label_id
            for byte in text:
                nxt = self.children[node].get(byte)
                if nxt is None:
                    nxt = len(self.children)
                    self.children[node][byte] = nxt
                    self.children.append({})
                    self.terminal.append(-1)
                    self.mask.append(0)
                node = nxt
                self.mask[node] |= 1 << label_id
            self.terminal[node] = label_id


class DescriptorGrammar:
    """Valid prefixes of ``<seg>`` + one H x W descriptor + ``</seg>``, as a byte automaton.

    Args:
        height: grid rows H >= 1.
        width: grid columns W >= 1.
        labels: allowed labels (sanitized, deduplicated, order kept; the background is added), or None for any
            clean label (open set).
        form: ``"rle"`` (runs ``"label *count"``) or ``"plain"`` (one label per cell).
        background: background label, always allowed.
        max_label_bytes: longest label of an open set, in UTF-8 bytes.

    Raises:
        ValueError: for a bad size or form, or when no label is left after sanitizing.
    """

    def __init__(
        self,
        height: int,
        width: int,
        labels: Iterable[str] | None = None,
        form: str = "rle",
        background: str = BACKGROUND,
        max_label_bytes: int = 128,
    ) -> None:
        if height < 1 or width < 1:
            raise ValueError(f"grid {height}x{width}: height and width must be >= 1")
        if form not in ("rle", "plain"):
            raise ValueError(f"form {form!r}: expected 'rle' or 'plain'")
        if max_label_bytes < 1:
            raise ValueError(f"max_label_bytes {max_label_bytes}: expected >= 1")
        self.height, self.width, self.form = int(height), int(width), form
        self.rle = form == "rle"
        self.max_label_bytes = int(max_label_bytes)
        self.open = labels is None
        if self.open:
            self.labels: tuple[str, ...] = ()
            self._trie = None
        else:
            clean: list[str] = []
            for label in [*labels, background]:
                label = sanitize_label(label)
                if label and label not in clean:
                    clean.append(label)
            if not clean:
                raise ValueError("labels: nothing left after sanitizing")
            self.labels = tuple(clean)
            suffix = b" *" if self.rle else b""
            self._trie = _LabelTrie([label.encode() + suffix for label in clean])
        # After a run, R-RLE needs a next label that differs from the previous one.
        self._can_bar = self.open or not self.rle or len(self.labels) >= 2
        self._remaining_digits = {w: str(w) for w in range(width + 1)}

    # ---- identity
    @property
    def spec(self) -> tuple:
        """Hashable description (grids with equal specs accept the same text)."""
        return (
            self.height,
            self.width,
            self.form,
            self.labels if not self.open else None,
            self.max_label_bytes,
        )

    def start(self, with_seg_tag: bool = False) -> tuple:
        """The state right after ``<seg>`` (or before it when ``with_seg_tag``)."""
        return (SEG_OPEN, 0, 0, -1, 0) if with_seg_tag else (LEAD, 0, 0, -1, 0)

    @staticmethod
    def is_done(state: tuple) -> bool:
        """True once ``</seg>`` is complete."""
        return state[0] == DONE

    # ---- transitions
    def _end_cell(self, row: int, used: int) -> tuple | None:
        """State after a newline that completes row ``row`` (``used`` == W)."""
        if row == self.height - 1:
            return (CLOSE, row, used, -1, 0)
        return (ROWSEP, row + 1, 0, -1, 0)

    def _count_viable(self, value: int, remaining: int) -> bool:
        if value == remaining:
            return True
        if value > remaining:
            return False
        return self._can_bar or self._remaining_digits[remaining].startswith(str(value))

    def step(self, state: tuple, byte: int) -> tuple | None:
        """The state after reading ``byte`` (0-255), or None when no valid descriptor has that prefix."""
        phase, row, used, prev, x = state
        if phase == LABEL:
            return self._step_label(row, used, prev, x, byte)
        if phase == COUNT:
            remaining = self.width - used
            if byte in _DIGITS:
                digit = byte - 0x30
                if x == 0 and digit == 0:
                    return None
                value = x * 10 + digit
                if not self._count_viable(value, remaining):
                    return None
                return (COUNT, row, used, prev, value)
            if x == 0:
                return None
            if byte == _BAR:
                if used + x < self.width and self._can_bar:
                    return (BAR, row, used + x, prev, 0)
                return None
            if byte == _NL and used + x == self.width:
                return self._end_cell(row, self.width)
            return None
        if phase == BAR or phase == ROWSEP:
            return (LABEL, row, used, prev if phase == BAR else -1, 0) if byte == _SPACE else None
        if phase == LEAD:
            if byte == _SPACE:
                return (LABEL, 0, 0, -1, 0)
            return self._step_label(0, 0, -1, 0, byte)
        if phase == CLOSE:
            if byte != _SEG_END_BYTES[x]:
                return None
            if x + 1 == len(_SEG_END_BYTES):
                return (DONE, row, used, -1, 0)
            return (CLOSE, row, used, -1, x + 1)
        if phase == SEG_OPEN:
            if byte != _SEG_OPEN_BYTES[x]:
                return None
            if x + 1 == len(_SEG_OPEN_BYTES):
                return (LEAD, 0, 0, -1, 0)
            return (SEG_OPEN, 0, 0, -1, x + 1)
        return None  # DONE accepts nothing more

    def _step_label(self, row: int, used: int, prev: int, x: int, byte: int) -> tuple | None:
        if self._trie is not None:
            trie = self._trie
            child = trie.children[x].get(byte)
            if child is not None:
                allowed = trie.mask[child] & ~(1 << prev) if (self.rle and prev >= 0) else trie.mask[child]
                if not allowed:
                    return None
                if self.rle and trie.terminal[child] >= 0:
                    return (COUNT, row, used, trie.terminal[child], 0)
                return (LABEL, row, used, prev, child)
            if not self.rle and trie.terminal[x] >= 0:
                return self._plain_cell_end(row, used, trie.terminal[x], byte)
            return None
        # open label: x = (bytes << 4) | (UTF-8 state << 1) | pending_space
        length, pending, space = x >> 4, (x >> 1) & 7, x & 1
        if pending:  # inside a multi-byte character: only its continuation bytes
            after = utf8_next(pending, byte)
            if after is None:
                return None
            return (LABEL, row, used, prev, ((length + 1) << 4) | (after << 1))
        if byte == _SPACE:
            if space or length == 0 or (not self.rle and length + 2 > self.max_label_bytes):
                return None  # (plain: a space must be followed by one more label byte)
            return (LABEL, row, used, prev, x | 1)
        if byte == _STAR:
            return (COUNT, row, used, -1, 0) if (self.rle and space and length) else None
        if byte == _BAR or byte == _NL:
            if self.rle or space or not length:
                return None
            return self._plain_cell_end(row, used, -1, byte)
        if byte in _OPEN_FORBIDDEN or (length == 0 and byte > 0x7E):
            return None  # an ASCII first byte: never a label that strips to nothing
        follow = utf8_lead(byte)
        if follow is None:
            return None  # not the first byte of a UTF-8 character: labels stay valid UTF-8
        length += 2 if space else 1
        # keep room for the separator and the rest of the character: the longest label is max_label_bytes
        if length + utf8_left(follow) > self.max_label_bytes:
            return None
        return (LABEL, row, used, prev, (length << 4) | (follow << 1))

    def _plain_cell_end(self, row: int, used: int, label: int, byte: int) -> tuple | None:
        if byte == _BAR:
            return (BAR, row, used + 1, label, 0) if used + 1 < self.width else None
        if byte == _NL:
            return self._end_cell(row, self.width) if used + 1 == self.width else None
        return None

    def walk(self, state: tuple | None, data: bytes) -> tuple | None:
        """The state after reading every byte of ``data`` (None as soon as the prefix becomes invalid)."""
        for byte in data:
            if state is None:
                return None
            state = self.step(state, byte)
        return state

    def next_bytes(self, state: tuple) -> list[int]:
        """Every byte accepted in ``state`` (sorted)."""
        phase, _, _, _, x = state
        if phase == LABEL and self._trie is not None:
            candidates: Iterable[int] = list(self._trie.children[x]) + [_BAR, _NL]
        elif phase == LEAD and self._trie is not None:
            candidates = [_SPACE, *self._trie.children[0]]
        elif phase in (COUNT,):
            candidates = [*_DIGITS, _BAR, _NL]
        elif phase in (BAR, ROWSEP):
            candidates = [_SPACE]
        elif phase == CLOSE:
            candidates = [_SEG_END_BYTES[x]]
        elif phase == SEG_OPEN:
            candidates = [_SEG_OPEN_BYTES[x]]
        elif phase == DONE:
            return []
        else:
            candidates = range(256)
        return sorted({b for b in candidates if self.step(state, b) is not None})

    def forced_bytes(self, state: tuple, limit: int = 64) -> bytes:
        """The longest byte string that every valid continuation of ``state`` starts with (at most ``limit``)."""
        out = bytearray()
        while len(out) < limit:
            options = self.next_bytes(state)
            if len(options) != 1:
                break
            out.append(options[0])
            state = self.step(state, options[0])
        return bytes(out)

    # ---- keys
    def cache_key(self, state: tuple, horizon: int) -> tuple:
        """A key equal for states that accept the same strings of at most ``horizon`` bytes.

        Only the distance to the last row matters, and (plain form) the distance to the row end; both are
        clipped at ``horizon`` because every row and cell takes at least one byte. R-RLE keeps the exact
        remaining cells (counts are compared with it).
        """
        phase, row, used, prev, x = state
        rows_left = min(self.height - 1 - row, horizon)
        remaining = self.width - used
        if not self.rle:
            remaining = min(remaining, horizon)
            prev = -1
        if self.open and phase == LABEL and x >> 4:
            # an open label's length only matters near the length cap
            length = x >> 4
            if length < self.max_label_bytes - horizon:
                x = (1 << 4) | (x & 0b1111)
        return (phase, rows_left, remaining, prev, x)

    @staticmethod
    def position_key(state: tuple) -> tuple:
        """Where in a row ``state`` is, ignoring the row: ``(phase, used, x)`` (row start of row 0 == others)."""
        phase, _, used, _, x = state
        if phase == LEAD:
            return (LABEL, 0, 0)
        return (phase, used, x)

    def max_bytes(self) -> int:
        """Upper bound on the bytes of ``<seg>`` + any valid descriptor + ``</seg>``."""
        label = self.max_label_bytes if self.open else max(len(label.encode()) for label in self.labels)
        cell = label + (2 + len(str(self.width)) if self.rle else 0)
        row = self.width * cell + 2 * (self.width - 1) + 2
        return len(_SEG_OPEN_BYTES) + 1 + self.height * row + len(_SEG_END_BYTES)
