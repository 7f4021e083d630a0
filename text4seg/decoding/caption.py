"""Grounded captions (GCG) under the grammar: a byte automaton of the marked caption and the token constraint of
a whole grounded answer, ``caption \\n<seg>descriptor</seg>`` (:mod:`text4seg.grounded`).

The caption automaton (:class:`CaptionGrammar`) accepts exactly the captions that
:func:`text4seg.grounded.parse_caption` reads without a repair:

- one line of text, valid UTF-8, no control character; ``<`` only as the start of a phrase marker;
- phrases ``<p>...</p>``, not nested: inside a phrase no ``|``, ``*``, ``<`` (except the ``</p>`` that closes
  it), at most ``max_phrase_bytes`` bytes, and at least one character that is not whitespace (``</p>`` is refused
  until there is one), so every phrase has a label;
- then ``\\n<seg>`` (a newline outside a phrase ends the caption).

A state is a small tuple ``(phase, x, utf8, nonempty, over, char)``: ``x`` the bytes of the open phrase (or of
``<seg>`` matched after the newline), ``utf8`` the UTF-8 state of a character being read (0: none; see
:func:`~text4seg.decoding.grammar.utf8_lead`), ``nonempty`` whether the open phrase has a non-space character,
``char`` the bytes of a phrase character being read (whitespace is known only once it is complete), and ``over``
whether the caption budget is spent: then only the shortest way out is open (finish the character and the marker,
one ASCII character into an empty phrase, ``</p>``, ``\\n<seg>``), so every answer stays bounded.

:class:`GroundedConstraint` walks the caption automaton until ``<seg>``; its descriptor grammar is then the one
whose labels are :func:`~text4seg.grounded.phrase_labels` of the phrases read (plus the background; only the
background without a phrase). It has the interface of :class:`text4seg.decoding.vocab.TokenConstraint`, so the
``constrained`` and ``fast`` modes both use it. No torch here.
"""

from __future__ import annotations

from collections import OrderedDict

from text4seg.decoding.grammar import SEG_OPEN, DescriptorGrammar, utf8_lead, utf8_left, utf8_next
from text4seg.decoding.vocab import (
    _ANY,
    SEG,
    STOP,
    Allowed,
    ByteConstraint,
    TokenVocab,
    descriptor_forced,
    descriptor_tokens,
)
from text4seg.descriptors import BACKGROUND, SEG_START
from text4seg.grounded import phrase_labels
from text4seg.options import MAX_CAPTION_TOKENS

__all__ = ["CaptionGrammar", "GroundedConstraint", "grounded_constraint", "CAPTION", "MAX_CAPTION_TOKENS"]

# caption phases: outside a phrase; "<" and "<p" read there; inside a phrase; "<", "</", "</p" read there;
# after the newline (x = bytes of "<seg>" read); "<seg>" complete
OUT, OUT_LT, OUT_LTP, IN, IN_LT, IN_LTS, IN_LTSP, NEWLINE, SEG_DONE = range(9)
CAPTION = "C"

_SEG = SEG_START.encode()
_NL, _LT, _GT, _SLASH, _P, _SPACE, _BAR, _STAR = 0x0A, 0x3C, 0x3E, 0x2F, 0x70, 0x20, 0x7C, 0x2A
# bytes after the budget is spent (each bounded): a character, a marker, a phrase char, "</p>", "\n<seg>"
_OVER_TOKENS = 3 + 3 + 4 + 4 + len(_SEG) + 1


def _control(byte: int) -> bool:
    return byte < 0x20 or byte == 0x7F


class CaptionGrammar:
    """Valid prefixes of a marked caption followed by ``\\n<seg>``, as a byte automaton (module docstring).

    Args:
        max_phrase_bytes: most UTF-8 bytes between ``<p>`` and ``</p>`` (>= 1).
    """

    def __init__(self, max_phrase_bytes: int = 128) -> None:
        if isinstance(max_phrase_bytes, bool) or not isinstance(max_phrase_bytes, int) or max_phrase_bytes < 1:
            raise ValueError(f"max_phrase_bytes {max_phrase_bytes!r}: expected an int >= 1")
        self.max_phrase_bytes = max_phrase_bytes

    @staticmethod
    def start(over: bool = False) -> tuple:
        """The state before the caption's first byte."""
        return (OUT, 0, 0, False, over, b"")

    @staticmethod
    def spend(state: tuple) -> tuple:
        """``state`` with the budget spent (only the shortest way to ``<seg>`` stays open)."""
        return state[:4] + (True,) + state[5:]

    @staticmethod
    def is_done(state: tuple) -> bool:
        """True once ``<seg>`` is complete."""
        return state[0] == SEG_DONE

    def step(self, state: tuple, byte: int) -> tuple | None:
        """The state after ``byte`` (0-255), or None when no valid caption has that prefix."""
        phase, x, utf8, nonempty, over, char = state
        if phase == OUT:
            if utf8:
                after = utf8_next(utf8, byte)
                return None if after is None else (OUT, 0, after, False, over, b"")
            if byte == _NL:
                return (NEWLINE, 0, 0, False, over, b"")
            if over:
                return None
            if byte == _LT:
                return (OUT_LT, 0, 0, False, over, b"")
            if _control(byte):
                return None
            follow = utf8_lead(byte)
            return None if follow is None else (OUT, 0, follow, False, over, b"")
        if phase == IN:
            return self._step_phrase(x, utf8, nonempty, over, char, byte)
        if phase == NEWLINE:
            if byte != _SEG[x]:
                return None
            return (SEG_DONE if x + 1 == len(_SEG) else NEWLINE, x + 1, 0, False, over, b"")
        if phase == OUT_LT:
            return (OUT_LTP, 0, 0, False, over, b"") if byte == _P else None
        if phase == OUT_LTP:
            return (IN, 0, 0, False, over, b"") if byte == _GT else None
        if phase == IN_LT:
            return (IN_LTS, x, 0, True, over, b"") if byte == _SLASH else None
        if phase == IN_LTS:
            return (IN_LTSP, x, 0, True, over, b"") if byte == _P else None
        if phase == IN_LTSP:
            return (OUT, 0, 0, False, over, b"") if byte == _GT else None
        return None  # SEG_DONE: the descriptor's grammar reads on

    @staticmethod
    def room(state: tuple, byte: int) -> int:
        """The phrase length reading ``byte`` in phrase state ``state`` needs (<= ``max_phrase_bytes``), 0 when it
        needs none: the byte itself, the rest of a character it starts, and while the phrase is empty one byte
        for a non-space character (so an empty phrase can always get one)."""
        phase, x, utf8, nonempty, over, _ = state
        if phase != IN or utf8 or over or byte in (_LT, _BAR, _STAR) or _control(byte):
            return 0
        if byte < 0x80:
            return x + 1 + (0 if nonempty or byte != _SPACE else 1)
        follow = utf8_lead(byte)
        return 0 if follow is None else x + 1 + utf8_left(follow) + (0 if nonempty else 1)

    def _step_phrase(self, x: int, utf8: int, nonempty: bool, over: bool, char: bytes, byte: int) -> tuple | None:
        if utf8:
            after = utf8_next(utf8, byte)
            if after is None:
                return None
            char += bytes([byte])
            if after:
                return (IN, x + 1, after, nonempty, over, char)
            return (IN, x + 1, 0, nonempty or not char.decode("utf-8").isspace(), over, b"")
        if byte == _LT:
            return (IN_LT, x, 0, True, over, b"") if nonempty else None
        if byte in (_BAR, _STAR) or _control(byte):
            return None
        if over:  # nonempty: only "</p>"; empty: one ASCII character that is not a space
            return (IN, x + 1, 0, True, over, b"") if not nonempty and 0x20 < byte < 0x7F else None
        if self.room((IN, x, 0, nonempty, over, b""), byte) > self.max_phrase_bytes:
            return None
        if byte < 0x80:
            return (IN, x + 1, 0, nonempty or byte != _SPACE, over, b"")
        follow = utf8_lead(byte)
        return None if follow is None else (IN, x + 1, follow, nonempty, over, bytes([byte]))

    def walk(self, state: tuple | None, data: bytes) -> tuple | None:
        """The state after every byte of ``data`` (None once invalid; nothing may follow a complete ``<seg>``)."""
        for byte in data:
            if state is None or state[0] == SEG_DONE:
                return None
            state = self.step(state, byte)
        return state

    def next_bytes(self, state: tuple) -> list[int]:
        """Every byte accepted in ``state`` (sorted)."""
        return [b for b in range(256) if self.step(state, b) is not None]

    def forced_bytes(self, state: tuple, limit: int = 64) -> bytes:
        """The longest byte string every valid continuation of ``state`` starts with, up to ``<seg>``'s end."""
        out = bytearray()
        while len(out) < limit and state[0] != SEG_DONE:
            options = self.next_bytes(state)
            if len(options) != 1:
                break
            out.append(options[0])
            state = self.step(state, options[0])
        return bytes(out)


class GroundedConstraint(ByteConstraint):
    """Which token ids keep an answer a valid prefix of ``caption \\n<seg> descriptor </seg> <eos>``, the
    descriptor labelled by the caption's phrases (module docstring).

    States: ``("C", caption state, caption tokens, closed phrases, open phrase bytes)``, then
    ``("S", descriptor state, labels)``, ``("E",)`` after ``</seg>``, ``("X",)`` finished. A token may end at
    the ``>`` of ``<seg>`` but not run past it, so the allowed sets of the caption do not depend on its phrases
    and are cached per caption state (canonical tokens end there: ``<seg>`` is an added token of text4seg
    tokenizers, and pre-tokenizers split ``>`` from a following word; only a label starting with punctuation
    may lose a merged token). Inside a phrase the set at length x is the set at length 0 cut to the tokens that
    fit the room left.

    Args:
        vocab: the tokenizer's :class:`TokenVocab`.
        height, width: the descriptor grid.
        form: ``"rle"`` or ``"plain"``.
        background: the background label.
        max_caption_tokens: caption tokens before only the shortest way to ``<seg>`` is open.
        max_phrase_bytes: most bytes of one phrase.
    """

    def __init__(self, vocab: TokenVocab, height: int, width: int, form: str = "rle", background: str = BACKGROUND,
                 max_caption_tokens: int = MAX_CAPTION_TOKENS, max_phrase_bytes: int = 128) -> None:
        if isinstance(max_caption_tokens, bool) or not isinstance(max_caption_tokens, int) or max_caption_tokens < 0:
            raise ValueError(f"max_caption_tokens {max_caption_tokens!r}: expected an int >= 0")
        self.vocab = vocab
        self.caption = CaptionGrammar(max_phrase_bytes)
        self.height, self.width, self.form, self.background = int(height), int(width), form, background
        self.max_caption_tokens = max_caption_tokens
        self.eos = frozenset(vocab.eos_ids)
        # the grammar of any label set: its bounds and argument checks
        self._open = DescriptorGrammar(height, width, None, form, background, max_phrase_bytes + 8)
        self._grammars: OrderedDict[tuple, DescriptorGrammar] = OrderedDict()
        self._allowed: dict[tuple, Allowed] = {}
        self._forced: dict[tuple, tuple[int, ...]] = {}
        self._advanced: dict[tuple, tuple | None] = {}
        self._by_first: dict[int, list[int]] = {}
        self._plain: set[int] = set()  # printable ASCII without '<': valid anywhere outside a phrase
        self._plain_phrase: set[int] = set()  # ... and without '|', '*': phrase text
        # per phrase state read from length 0: token -> the phrase length it needs (CaptionGrammar.room)
        self._needs: dict[tuple, dict[int, int]] = {}
        for token_id in vocab.text_ids:
            if token_id in self.eos:
                continue
            data = vocab.token_bytes[token_id]
            self._by_first.setdefault(data[0], []).append(token_id)
            if all(0x20 <= b < 0x7F and b != _LT for b in data):
                self._plain.add(token_id)
                if _BAR not in data and _STAR not in data:
                    self._plain_phrase.add(token_id)

    @property
    def spec(self) -> tuple:
        """Hashable description (constraints with equal specs accept the same answers)."""
        return ("grounded", self.height, self.width, self.form, self.background, self.max_caption_tokens,
                self.caption.max_phrase_bytes)

    def grammar(self, labels: tuple[str, ...]) -> DescriptorGrammar:
        """The (cached) descriptor grammar of phrase labels ``labels`` (the background is added)."""
        found = self._grammars.get(labels)
        if found is None:
            found = DescriptorGrammar(self.height, self.width, labels, self.form, self.background,
                                      self.caption.max_phrase_bytes + 8)
            self._grammars[labels] = found
            while len(self._grammars) > 512:
                self._grammars.popitem(last=False)
        else:
            self._grammars.move_to_end(labels)
        return found

    def grammar_of(self, state: tuple) -> DescriptorGrammar:
        """The descriptor grammar of a descriptor state."""
        return self.grammar(state[2])

    # ---- states
    def initial(self) -> tuple:
        """The state before the first generated token."""
        return (CAPTION, self.caption.start(over=self.max_caption_tokens == 0), 0, (), b"")

    def max_tokens(self) -> int:
        """Upper bound on the tokens of any accepted answer (every token has >= 1 byte)."""
        return self.max_caption_tokens + _OVER_TOKENS + self._open.max_bytes() + 1

    def _caption_bytes(self, state: tuple, data: bytes) -> tuple | None:
        _, s, n, phrases, current = state
        step = self.caption.step
        for byte in data:
            if s[0] == SEG_DONE:
                return None  # a token running past "<seg>"
            before = s[0]
            s = step(s, byte)
            if s is None:
                return None
            if before == IN and s[0] == IN:
                current += bytes([byte])
            elif before == OUT_LTP:
                current = b""
            elif before == IN_LTSP:
                phrases += (current.decode("utf-8"),)
                current = b""
        if s[0] == SEG_DONE:
            labels = tuple(phrase_labels(phrases, self.background))
            return (SEG, self.grammar(labels).start(), labels)
        n += 1
        if n >= self.max_caption_tokens and not s[4]:
            s = self.caption.spend(s)
        return (CAPTION, s, n, phrases, current)

    def _advance_bytes(self, state: tuple, token: int, data: bytes) -> tuple | None:
        if state[0] == CAPTION:
            return self._caption_bytes(state, data)
        return self._descriptor_step(self.grammar(state[2]), (state[2], state[1], token), state[1], data,
                                     (state[2],))

    def key(self, state: tuple) -> tuple:
        """Cache key of the allowed set of ``state`` (descriptor keys name their labels)."""
        if state[0] == SEG:
            return (SEG, state[2], self.grammar(state[2]).cache_key(state[1], self.vocab.horizon))
        if state[0] == CAPTION:
            return (CAPTION, self._caption_key(state[1]))
        return (state[0],)

    def _caption_key(self, s: tuple) -> tuple:
        """The caption state with the phrase length only where it matters: inside a phrase, once some token
        would need more room than is left (after ``<`` the phrase closes; outside it there is none)."""
        phase, x = s[0], s[1]
        if phase == IN:
            needs = self._phrase_needs(s)
            if needs and x + max(needs.values()) > self.caption.max_phrase_bytes:
                return s
            return (IN, -1) + s[2:]
        if phase in (IN_LT, IN_LTS, IN_LTSP):
            return (phase, -1) + s[2:]
        return s

    def position(self, state: tuple) -> tuple[int, tuple] | None:
        """``(row, position key)`` of a descriptor state (for row-copy drafts); None outside the rows."""
        if state[0] != SEG or state[1][0] == SEG_OPEN:
            return None
        return state[1][1], DescriptorGrammar.position_key(state[1])

    # ---- allowed sets
    def allowed(self, state: tuple) -> Allowed:
        """The token ids allowed in ``state`` (never empty)."""
        if state[0] == STOP:
            return _ANY
        key = self.key(state)
        found = self._allowed.get(key)
        if found is None:
            if state[0] == SEG:
                ids = descriptor_tokens(self.vocab, self.grammar(state[2]), state[1])
            elif state[0] == CAPTION:
                ids = self._caption_allowed(state[1])
            else:
                ids = list(self.vocab.eos_ids)
            ids = sorted(set(ids)) or (list(self.vocab.eos_ids) or [0])
            found = Allowed(key, tuple(ids), frozenset(ids))
            if len(self._allowed) > 50_000:
                self._allowed.clear()
            self._allowed[key] = found
        return found

    def _caption_allowed(self, s: tuple) -> list[int]:
        """Tokens whose bytes keep caption state ``s`` valid; tokens are checked only when their first byte is
        (and plain ASCII ones outside a phrase not at all). Inside a phrase the set read from length 0 is
        cut to the tokens that fit the room left."""
        if s[0] == IN:
            room = self.caption.max_phrase_bytes - s[1]
            return [token_id for token_id, need in self._phrase_needs(s).items() if need <= room]
        plain = self._plain if s[0] == OUT and not s[2] and not s[4] else ()
        out = []
        for byte, tokens in self._by_first.items():
            after = self.caption.step(s, byte)
            if after is None:
                continue
            for token_id in tokens:
                if token_id in plain or self.caption.walk(after, self.vocab.token_bytes[token_id][1:]) is not None:
                    out.append(token_id)
        return out

    def _phrase_needs(self, s: tuple) -> dict[int, int]:
        """Tokens valid in phrase state ``s`` read from length 0, each with the phrase length it needs (the
        largest :meth:`CaptionGrammar.room` of its bytes in this phrase; 0 for none): at length x a token is
        valid exactly when it is valid at 0 and x + need <= ``max_phrase_bytes``."""
        base = (IN, 0) + s[2:]
        found = self._needs.get(base)
        if found is not None:
            return found
        found = {}
        caption, token_bytes = self.caption, self.vocab.token_bytes
        # printable ASCII without '<', '|', '*' at a character boundary: every byte is phrase text, and an
        # empty phrase needs one byte more only when the token is all spaces
        plain = self._plain_phrase if not base[2] and not base[4] else ()
        for byte, tokens in self._by_first.items():
            if caption.step(base, byte) is None:
                continue
            for token_id in tokens:
                data = token_bytes[token_id]
                if token_id in plain:
                    need = len(data) + (0 if base[3] or data.strip(b" ") else 1)
                    if need <= caption.max_phrase_bytes:
                        found[token_id] = need
                    continue
                state, need, counting = base, 0, True
                for b in data:
                    if state is None or state[0] == SEG_DONE:
                        state = None
                        break
                    if counting and state[0] == IN:
                        need = max(need, caption.room(state, b))
                    else:
                        counting = False  # the phrase is closed: a later one starts from length 0
                    state = caption.step(state, b)
                if state is not None:
                    found[token_id] = need
        if len(self._needs) > 4096:
            self._needs.clear()
        self._needs[base] = found
        return found

    # ---- drafts
    def forced_tokens(self, state: tuple) -> tuple[int, ...]:
        """Canonical tokens of the text every valid continuation of ``state`` starts with (may be empty)."""
        key = self.key(state)
        if key in self._forced:
            return self._forced[key]
        allowed = self.allowed(state)
        text = self.caption.forced_bytes(state[1], limit=max(self.vocab.horizon, 16)) if state[0] == CAPTION else b""
        if text:  # a marker's rest, "</p>\n<seg>" once the budget is spent: often more than one token
            out: tuple[int, ...] = self.vocab.encode(text)
        elif len(allowed.ids) == 1 and not allowed.everything:
            out = allowed.ids
        elif state[0] == SEG:
            out = descriptor_forced(self.vocab, self.grammar(state[2]), state[1])
        else:
            out = ()
        if len(self._forced) > 50_000:
            self._forced.clear()
        self._forced[key] = out
        return out


_CONSTRAINTS: OrderedDict[tuple, GroundedConstraint] = OrderedDict()


def grounded_constraint(vocab: TokenVocab, height: int, width: int, form: str, background: str,
                        max_caption_tokens: int = MAX_CAPTION_TOKENS, max_phrase_bytes: int = 128
                        ) -> GroundedConstraint:
    """A (cached) :class:`GroundedConstraint`: answers about the same grid share its allowed-set caches."""
    key = (id(vocab), height, width, form, background, max_caption_tokens, max_phrase_bytes)
    found = _CONSTRAINTS.get(key)
    if found is None or found.vocab is not vocab:
        found = GroundedConstraint(vocab, height, width, form, background, max_caption_tokens, max_phrase_bytes)
        _CONSTRAINTS[key] = found
        while len(_CONSTRAINTS) > 16:
            _CONSTRAINTS.popitem(last=False)
    else:
        _CONSTRAINTS.move_to_end(key)
    return found
