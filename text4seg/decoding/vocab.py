"""Token-level view of the descriptor grammar: the bytes of every token, a trie of them, and per-state sets of
allowed token ids computed by walking the grammar automaton and the vocabulary trie together.

Works with any tokenizer whose tokens concatenate to the text: byte-level BPE (GPT-2, Llama-3, Qwen, our tiny
tokenizer), SentencePiece with ``▁`` and byte fallback (Llama-2, Vicuna/LLaVA-1.5); added tokens (``<seg>``, cell
tokens) contribute their literal content, special tokens (BOS, PAD, ``<image>``) no bytes at all. Other
tokenizers fall back to decoding each token alone.

No torch here.
"""

from __future__ import annotations

import json
import logging
import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from text4seg.decoding.grammar import SEG_OPEN, DescriptorGrammar, utf8_lead, utf8_next

__all__ = ["TokenVocab", "Allowed", "ByteConstraint", "TokenConstraint", "token_vocab", "token_constraint", "descriptor_tokens",
           "descriptor_forced"]

logger = logging.getLogger(__name__)

_SEG = b"<seg>"
_BYTE_TOKEN = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map used by byte-level BPE vocabularies."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, map(chr, chars)))


_UNICODE_TO_BYTE = {c: b for b, c in _bytes_to_unicode().items()}


def _decoder_kinds(tokenizer) -> set[str]:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return set()
    try:
        spec = json.loads(backend.to_str()).get("decoder") or {}
    except (ValueError, AttributeError):
        return set()
    kinds: set[str] = set()
    stack = [spec]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "type" in item:
                kinds.add(item["type"])
            stack.extend(item.get("decoders") or [])
    return kinds


def token_byte_strings(tokenizer, size: int | None = None) -> list[bytes | None]:
    """The bytes each token id adds to the text; None for special tokens and ids without a token.

    Args:
        tokenizer: a transformers tokenizer (fast or slow).
        size: number of ids to describe (the model's vocabulary may be padded beyond ``len(tokenizer)``).

    Returns:
        ``size`` entries (default ``len(tokenizer)``).
    """
    size = len(tokenizer) if size is None else size
    kinds = _decoder_kinds(tokenizer)
    byte_level = "ByteLevel" in kinds
    sentencepiece = bool(kinds & {"Metaspace", "Replace", "ByteFallback"})
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    added = {}
    for token_id, token in (getattr(tokenizer, "added_tokens_decoder", {}) or {}).items():
        added[int(token_id)] = token
    n_tok = len(tokenizer)
    tokens = tokenizer.convert_ids_to_tokens(list(range(n_tok)))
    if not kinds and any(isinstance(t, str) and "▁" in t for t in tokens[: min(n_tok, 2000)]):
        sentencepiece = True  # slow SentencePiece tokenizer
    out: list[bytes | None] = []
    for token_id in range(size):
        if token_id >= n_tok or token_id in special:
            out.append(None)
            continue
        if token_id in added:
            entry = added[token_id]
            if getattr(entry, "special", False):
                out.append(None)
            else:
                out.append(str(getattr(entry, "content", entry)).encode("utf-8") or None)
            continue
        token = tokens[token_id]
        if token is None:
            out.append(None)
        elif byte_level:
            try:
                out.append(bytes(_UNICODE_TO_BYTE[c] for c in token))
            except KeyError:
                out.append(token.encode("utf-8"))
        elif sentencepiece:
            match = _BYTE_TOKEN.match(token)
            out.append(bytes([int(match.group(1), 16)]) if match else token.replace("▁", " ").encode("utf-8"))
        else:
            out.append(tokenizer.decode([token_id]).encode("utf-8") or None)
    return out


class TokenVocab:
    """Token bytes of one tokenizer and a byte trie over them.

    Attributes:
        tokenizer: the tokenizer.
        size: number of token ids (model logits width).
        token_bytes: bytes per id (None: special / no text).
        horizon: the longest token in bytes.
        eos_ids: end-of-sequence ids (generation stops at any of them).
    """

    def __init__(self, tokenizer, size: int | None = None, eos_ids: Iterable[int] = ()) -> None:
        self.tokenizer = tokenizer
        self.token_bytes = token_byte_strings(tokenizer, size)
        self.size = len(self.token_bytes)
        self.eos_ids = tuple(sorted({int(e) for e in eos_ids if e is not None and 0 <= int(e) < self.size}))
        self.children: list[dict[int, int]] = [{}]
        self.ids: list[list[int]] = [[]]
        for token_id, data in enumerate(self.token_bytes):
            if not data:
                continue
            node = 0
            for byte in data:
                nxt = self.children[node].get(byte)
                if nxt is None:
                    nxt = len(self.children)
                    self.children[node][byte] = nxt
                    self.children.append({})
                    self.ids.append([])
                node = nxt
            self.ids[node].append(token_id)
        self.horizon = max((len(b) for b in self.token_bytes if b), default=1)
        self.text_ids = tuple(i for i, b in enumerate(self.token_bytes) if b)
        self._encode_cache: dict[bytes, tuple[int, ...]] = {}

    def encode(self, data: bytes) -> tuple[int, ...]:
        """Canonical token ids of ``data`` (no special tokens); a trailing partial UTF-8 character is dropped."""
        found = self._encode_cache.get(data)
        if found is None:
            text = data.decode("utf-8", errors="ignore")
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []
            found = tuple(int(i) for i in ids)
            if len(self._encode_cache) > 20000:
                self._encode_cache.clear()
            self._encode_cache[data] = found
        return found

    def trim_open_end(self, tokens: Sequence[int]) -> tuple[int, ...]:
        """``tokens`` without a last token ending in a space: in context, the text that follows would join
        that space (``"Ġothers"``, ``"▁others"``), so as a draft it would be rejected."""
        if tokens and (self.token_bytes[tokens[-1]] or b"").endswith(b" "):
            return tuple(tokens[:-1])
        return tuple(tokens)


@dataclass(frozen=True)
class Allowed:
    """Token ids allowed in one state: ``ids`` sorted, ``members`` for membership tests, ``key`` for caching."""

    key: tuple
    ids: tuple[int, ...]
    members: frozenset

    @property
    def everything(self) -> bool:
        """True for the unconstrained set (``ids`` is empty then)."""
        return self.key == ("*",)


_ANY = Allowed(("*",), (), frozenset())
_MISSING = object()

# constraint states: ("F", k, n) free text with k bytes of "<seg>" matched after n tokens; ("S", g) inside the
# descriptor at grammar state g; ("E",) after </seg> (only an end token); ("X",) finished.
FREE, SEG, END, STOP = "F", "S", "E", "X"


class ByteConstraint:
    """What every answer constraint shares (:class:`TokenConstraint`, the grounded-caption one): the end rules
    of :meth:`advance` (an end token only after ``</seg>``, nothing after the end) and the memoised descriptor
    step. Subclasses set ``vocab``, ``eos`` and ``_advanced`` and implement ``_advance_bytes``."""

    vocab: TokenVocab
    eos: frozenset
    _advanced: dict

    def advance(self, state: tuple, token: int) -> tuple | None:
        """The state after ``token``, or None when the token is not allowed in ``state``."""
        kind = state[0]
        if kind == STOP:
            return state
        if token in self.eos:
            return (STOP,) if kind == END else None
        if kind == END:
            return None
        data = self.vocab.token_bytes[token] if 0 <= token < self.vocab.size else None
        if not data:
            return None
        return self._advance_bytes(state, token, data)

    def _advance_bytes(self, state: tuple, token: int, data: bytes) -> tuple | None:
        raise NotImplementedError

    def _descriptor_step(self, grammar: DescriptorGrammar, memo: tuple, g: tuple, data: bytes,
                         tail: tuple = ()) -> tuple | None:
        """The state after ``data`` at descriptor state ``g`` (``(SEG, g', *tail)``, ``(END,)`` or None),
        memoised under ``memo``: queries of one image and batch rows revisit the same states with the same
        tokens."""
        found = self._advanced.get(memo, _MISSING)
        if found is not _MISSING:
            return found
        nxt = grammar.walk(g, data)
        out = None if nxt is None else (END,) if grammar.is_done(nxt) else (SEG, nxt, *tail)
        if len(self._advanced) > 200_000:
            self._advanced.clear()
        self._advanced[memo] = out
        return out


class TokenConstraint(ByteConstraint):
    """Which token ids keep an answer a valid prefix of ``free text <seg> descriptor </seg> <eos>``.

    Text before ``<seg>`` is free except for end and special tokens (an answer always gets its mask) and
    after ``max_preamble_tokens`` free tokens ``<seg>`` is forced; inside the descriptor the grammar decides;
    after ``</seg>`` only an end token is allowed. Allowed sets are cached per grammar-equivalent state, so
    after the first few rows every step is a dictionary look-up.

    Args:
        grammar: the descriptor automaton.
        vocab: the tokenizer's :class:`TokenVocab`.
        max_preamble_tokens: free tokens before ``<seg>`` is forced (0: the answer starts with ``<seg>``).
    """

    def __init__(self, grammar: DescriptorGrammar, vocab: TokenVocab, max_preamble_tokens: int = 64) -> None:
        if max_preamble_tokens < 0:
            raise ValueError(f"max_preamble_tokens {max_preamble_tokens}: expected >= 0")
        self.grammar = grammar
        self.vocab = vocab
        self.max_preamble_tokens = int(max_preamble_tokens)
        self.eos = frozenset(vocab.eos_ids)
        self._allowed: dict[tuple, Allowed] = {}
        self._forced: dict[tuple, tuple[int, ...]] = {}
        self._advanced: dict[tuple, tuple | None] = {}

    @property
    def spec(self) -> tuple:
        """Hashable description: constraints over one vocabulary with equal specs allow the same tokens in every
        state (the key of cached token masks, which must not be the object's ``id``: a freed constraint's id
        is reused)."""
        return ("descriptor", self.grammar.spec, self.max_preamble_tokens)

    # ---- states
    def initial(self) -> tuple:
        """The state before the first generated token."""
        if self.max_preamble_tokens == 0:
            return (SEG, self.grammar.start(with_seg_tag=True))
        return (FREE, 0, 0, 0)

    def grammar_of(self, state: tuple) -> DescriptorGrammar:
        """The descriptor grammar of a descriptor state (one for every state here)."""
        return self.grammar

    def max_tokens(self) -> int:
        """Upper bound on the tokens of any answer this constraint accepts (each descriptor token has >= 1 byte;
        the free text may run 3 tokens over its budget to finish a UTF-8 character)."""
        return self.max_preamble_tokens + 3 + self.grammar.max_bytes() + 1

    def _free_bytes(self, k: int, n: int, data: bytes, pending: int = 0) -> tuple | None:
        """Feed ``data`` to the free-text state; switch to the grammar once ``<seg>`` is complete. The free text
        stays valid UTF-8 (``pending``: continuation bytes its last character still needs), so byte-fallback
        tokens never leave half a character that would swallow the ``<`` of ``<seg>`` when decoded."""
        for i, byte in enumerate(data):
            if pending:
                pending = utf8_next(pending, byte)
                if pending is None:
                    return None
                continue
            follow = utf8_lead(byte)
            if follow is None:
                return None
            if follow:
                pending, k = follow, 0
                continue
            if byte == _SEG[k]:
                k += 1
                if k == len(_SEG):
                    g = self.grammar.walk(self.grammar.start(), data[i + 1 :])
                    if g is None:
                        return None
                    return (END,) if self.grammar.is_done(g) else (SEG, g)
            else:
                k = 1 if byte == _SEG[0] else 0
        if n + 1 >= self.max_preamble_tokens and not pending:
            return (SEG, (SEG_OPEN, 0, 0, -1, k))  # k bytes of "<seg>" already matched
        return (FREE, k, n + 1, pending)

    def _advance_bytes(self, state: tuple, token: int, data: bytes) -> tuple | None:
        if state[0] == FREE:
            return self._free_bytes(state[1], state[2], data, state[3])
        return self._descriptor_step(self.grammar, (state[1], token), state[1], data)

    def key(self, state: tuple) -> tuple:
        """Cache key of the allowed set of ``state``."""
        if state[0] == SEG:
            return self.grammar.cache_key(state[1], self.vocab.horizon)
        if state[0] == FREE:
            return (FREE, state[1], state[3])
        return (state[0],)

    def position(self, state: tuple) -> tuple[int, tuple] | None:
        """``(row, position key)`` of a descriptor state (for row-copy drafts); None outside the rows."""
        if state[0] != SEG or state[1][0] == SEG_OPEN:
            return None
        g = state[1]
        return g[1], self.grammar.position_key(g)

    # ---- allowed sets
    def allowed(self, state: tuple) -> Allowed:
        """The token ids allowed in ``state`` (never empty: a dead end allows the end tokens)."""
        if state[0] == STOP:
            return _ANY
        key = self.key(state)
        found = self._allowed.get(key)
        if found is None:
            if state[0] == SEG:
                ids = descriptor_tokens(self.vocab, self.grammar, state[1])
            elif state[0] == FREE:
                ids = self._free_allowed(state[1], state[3])
            else:
                ids = list(self.vocab.eos_ids)
            if not ids:
                logger.warning(
                    "descriptor constraint: no token continues state %s; allowing an end token", key
                )
                ids = list(self.vocab.eos_ids) or [0]
            ids = sorted(set(ids))
            found = Allowed(key, tuple(ids), frozenset(ids))
            self._allowed[key] = found
        return found

    def _free_allowed(self, k: int, pending: int = 0) -> list[int]:
        # Only tokens that could complete "<seg>" need a check: those holding "<" or, mid-tag, starting with
        # the next tag byte.
        eos = self.eos
        out = []
        for token_id in self.vocab.text_ids:
            if token_id in eos:
                continue
            data = self.vocab.token_bytes[token_id]
            needs_check = pending or b"<" in data or (k and data[0] == _SEG[k]) or (data and max(data) >= 0x80)
            if needs_check and self._free_bytes(k, 0, data, pending) is None:
                continue
            out.append(token_id)
        return out

    # ---- drafts
    def forced_tokens(self, state: tuple) -> tuple[int, ...]:
        """Canonical tokens of the text every valid continuation of ``state`` starts with (may be empty).

        A single allowed token (an end token after ``</seg>``) is forced too.
        """
        key = self.key(state)
        if key in self._forced:
            return self._forced[key]
        allowed = self.allowed(state)
        if len(allowed.ids) == 1 and not allowed.everything:
            out: tuple[int, ...] = allowed.ids
        elif state[0] == SEG:
            out = descriptor_forced(self.vocab, self.grammar, state[1])
        else:
            out = ()
        self._forced[key] = out
        return out


def descriptor_tokens(vocab: TokenVocab, grammar: DescriptorGrammar, g: tuple) -> list[int]:
    """Tokens whose bytes keep descriptor grammar state ``g`` alive: DFS of the vocabulary trie, pruned by the
    grammar (a token may end the descriptor, not run past it)."""
    children, ids, step = vocab.children, vocab.ids, grammar.step
    out: list[int] = []
    stack = [(0, g)]
    while stack:
        node, state = stack.pop()
        for byte, child in children[node].items():
            nxt = step(state, byte)
            if nxt is None:
                continue
            if ids[child]:
                out.extend(ids[child])
            if children[child] and not grammar.is_done(nxt):
                stack.append((child, nxt))
    return out


def descriptor_forced(vocab: TokenVocab, grammar: DescriptorGrammar, g: tuple) -> tuple[int, ...]:
    """Canonical tokens of the text every continuation of descriptor state ``g`` starts with (may be empty); a
    last token that a longer one could still replace is trimmed unless the text ends the descriptor."""
    text = grammar.forced_bytes(g, limit=vocab.horizon)
    out = vocab.encode(text) if text else ()
    if out and not grammar.is_done(grammar.walk(g, text) or g):
        out = vocab.trim_open_end(out)
    return out


_VOCABS: OrderedDict[tuple, TokenVocab] = OrderedDict()
_CONSTRAINTS: OrderedDict[tuple, TokenConstraint] = OrderedDict()


def token_vocab(tokenizer, size: int | None = None, eos_ids: Iterable[int] = ()) -> TokenVocab:
    """The (cached) :class:`TokenVocab` of ``tokenizer`` padded to ``size`` ids."""
    eos = tuple(sorted({int(e) for e in eos_ids if e is not None}))
    key = (id(tokenizer), size, eos)
    found = _VOCABS.get(key)
    if found is None or found.tokenizer is not tokenizer:
        found = TokenVocab(tokenizer, size, eos)
        _VOCABS[key] = found
        while len(_VOCABS) > 4:
            _VOCABS.popitem(last=False)
    return found


def token_constraint(
    vocab: TokenVocab,
    height: int,
    width: int,
    labels: Sequence[str] | None,
    form: str,
    background: str,
    max_preamble_tokens: int = 64,
    max_label_bytes: int = 128,
) -> TokenConstraint:
    """A (cached) :class:`TokenConstraint`; queries with the same grid and labels share allowed-set caches."""
    grammar = DescriptorGrammar(height, width, labels, form, background, max_label_bytes)
    key = (id(vocab), grammar.spec, max_preamble_tokens)
    found = _CONSTRAINTS.get(key)
    if found is None or found.vocab is not vocab:
        found = TokenConstraint(grammar, vocab, max_preamble_tokens)
        _CONSTRAINTS[key] = found
        while len(_CONSTRAINTS) > 256:
            _CONSTRAINTS.popitem(last=False)
    else:
        _CONSTRAINTS.move_to_end(key)
    return found
