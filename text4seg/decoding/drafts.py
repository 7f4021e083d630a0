"""Draft tokens for lossless speculative decoding of descriptors (no torch).

A :class:`Drafter` follows one answer token by token. It knows where each descriptor token started (row and
position in the row, from the grammar), so it can propose:

1. **row copy**: the tokens the previous row had from the same position onward, continuing into the current
   row (which is the draft for the next row when rows repeat, as they mostly do in masks);
2. **forced tokens**: the canonical tokens of the text the grammar leaves no choice about (the rest of a label
   once it is unambiguous, ``</seg>`` after the last row, the end token after ``</seg>``);
3. **text row copy**: when the previous row has no token starting at the same place (BPE tokens straddle cell
   boundaries differently), its *text* from that place onward, tokenized;
4. **n-gram lookup**: the continuation of the latest earlier occurrence of the last two tokens (prompt
   included), for text outside the descriptor;
5. **temporal** (``previous=``, e.g. the answer to the same expression on the previous video frame): inside the
   descriptor, the previous answer's tokens from the same row and position on; outside it (the sentence before
   ``<seg>``, or without a grammar), the previous answer's continuation while the answer so far equals it.
   Tried first: consecutive frames mostly give the same descriptor.

Drafts never change the output: the model verifies them and only tokens that greedy decoding would have
produced are kept.
"""

from __future__ import annotations

from collections.abc import Sequence

from text4seg.decoding.grammar import DONE, DescriptorGrammar
from text4seg.decoding.vocab import SEG, STOP, Allowed, TokenConstraint

__all__ = ["Drafter"]


class Drafter:
    """Grammar state, row positions and draft proposals of one answer.

    Args:
        constraint: the token constraint of the answer's grammar, or None (no grammar: n-gram drafts only).
        enforce: True when the constraint restricts the tokens; False to only follow the answer (row copy
            works while the text stays a valid descriptor prefix).
        prompt: prompt token ids (for n-gram lookup).
        max_draft: most tokens proposed at once.
        previous: token ids of an earlier answer to the same question (temporal drafts), or None. Any ids are
            safe: they are only proposed, and verified like every draft.
        max_temporal_draft: most tokens proposed at once when the draft starts with the previous answer (it is
            usually right for many rows on end); None = ``max_draft``.
    """

    def __init__(
        self,
        constraint: TokenConstraint | None,
        enforce: bool,
        prompt: Sequence[int],
        max_draft: int = 24,
        previous: Sequence[int] | None = None,
        max_temporal_draft: int | None = None,
    ) -> None:
        self.constraint = constraint
        self.enforce = enforce and constraint is not None
        self.state: tuple | None = constraint.initial() if constraint is not None else None
        self.max_draft = max(0, int(max_draft))
        self.max_temporal_draft = self.max_draft if max_temporal_draft is None or not self.max_draft else max(
            self.max_draft, int(max_temporal_draft))
        self.history: list[int] = [int(t) for t in prompt]
        self.start = len(self.history)
        self._bigrams: dict[tuple[int, int], int] = {}
        for i in range(2, len(self.history)):
            self._bigrams[(self.history[i - 2], self.history[i - 1])] = i
        # row -> position key -> index (in history) of the first token that started there
        self._rows: dict[int, dict[tuple, int]] = {}
        # descriptor bytes so far, (index in them, grammar state) at each token start, and per completed row
        # (built when first needed) position key -> index of the first byte read there
        self._text = bytearray()
        self._starts: list[tuple[int, tuple]] = []
        self._text_rows: dict[int, dict[tuple, int]] = {}
        # temporal drafts: the previous answer, (row, position key) -> index in it of the first token that
        # started there, and how many leading generated tokens equal it
        self._previous: list[int] = [int(t) for t in previous] if previous is not None and self.max_draft else []
        self._previous_at: dict[tuple, int] = {}
        self._agree = 0
        if self._previous and constraint is not None:
            state = constraint.initial()
            for j, token in enumerate(self._previous):
                where = constraint.position(state)
                if where is not None:
                    self._previous_at.setdefault(where, j)
                state = constraint.advance(state, token)
                if state is None:  # the rest does not follow this grammar (another question's answer)
                    break

    @property
    def tokens(self) -> list[int]:
        """Generated tokens so far."""
        return self.history[self.start :]

    def allowed(self, state: tuple | None = None) -> Allowed | None:
        """Allowed set in ``state`` (default: now); None when nothing is enforced."""
        if not self.enforce:
            return None
        return self.constraint.allowed(self.state if state is None else state)

    def push(self, token: int) -> None:
        """Append one generated token (already checked against :meth:`allowed` by the caller)."""
        token = int(token)
        index = len(self.history)
        done = index - self.start
        if self._agree == done and done < len(self._previous) and self._previous[done] == token:
            self._agree += 1
        if self.state is not None:
            where = self.constraint.position(self.state)
            if where is not None:
                self._rows.setdefault(where[0], {}).setdefault(where[1], index)
                if self.max_draft:
                    self._starts.append((len(self._text), self.state[1]))
                    self._text.extend(self.constraint.vocab.token_bytes[token] or b"")
            nxt = self.constraint.advance(self.state, token)
            if nxt is None and self.enforce:
                raise ValueError(f"token {token} is not allowed by the descriptor grammar here")
            self.state = nxt
        if index >= 2:
            self._bigrams[(self.history[-2], self.history[-1])] = index
        self.history.append(token)

    # ---- drafts
    def _advance(self, state: tuple | None, token: int) -> tuple | None:
        if state is None or self.constraint is None:
            return None
        return self.constraint.advance(state, token)

    def _row_copy(self, state: tuple | None, limit: int) -> list[int]:
        if state is None:
            return []
        where = self.constraint.position(state)
        if where is None:
            return []
        row, key = where
        index = self._rows.get(row - 1, {}).get(key)
        if index is None:
            return []
        return self.history[index : index + limit]

    def _row_text(self, row: int, grammar: DescriptorGrammar) -> dict[tuple, int]:
        """Position key -> index in the descriptor bytes of the first byte read there, for one row."""
        found = self._text_rows.get(row)
        if found is not None:
            return found
        found = {}
        # start at the last token that began before the row (its bytes may run into it)
        first = 0
        for k, (_, g) in enumerate(self._starts):
            if g[1] >= row:
                break
            first = k
        if not self._starts:
            return found
        index, g = self._starts[first]
        complete = False
        while index < len(self._text) and g is not None and g[0] != DONE:
            if g[1] > row:
                complete = True
                break
            if g[1] == row:
                found.setdefault(grammar.position_key(g), index)
            g = grammar.step(g, self._text[index])
            index += 1
        if complete:
            self._text_rows[row] = found
        return found

    def _text_copy(self, state: tuple | None, limit: int) -> list[int]:
        if state is None or state[0] != SEG:
            return []
        where = self.constraint.position(state)
        if where is None:
            return []
        row, key = where
        now = self.state[1][1] if self.state is not None and self.state[0] == SEG else -1
        if not 0 < row <= now:
            return []  # copy completed rows only (the row being written is copied token by token)
        grammar = self.constraint.grammar_of(state)
        previous = self._row_text(row - 1, grammar)
        start, prefix = previous.get(key), b""
        if start is None:
            # e.g. a row start before its leading space: row 0 had none, so look up the place after it
            prefix = grammar.forced_bytes(state[1], limit=4)
            after = grammar.walk(state[1], prefix) if prefix else None
            if after is None or after[1] != row or after[0] == DONE:
                return []
            start = previous.get(grammar.position_key(after))
            if start is None:
                return []
        end = min(len(self._text), start + limit * self.constraint.vocab.horizon, start + 1024)
        tokens = list(self.constraint.vocab.encode(prefix + bytes(self._text[start:end])))
        if end < len(self._text) and len(tokens) > 1:
            tokens.pop()  # cut text: its last token may be a fragment
        return list(self.constraint.vocab.trim_open_end(tokens[:limit]))

    def _temporal(self, state: tuple | None, tokens: list[int], limit: int) -> list[int]:
        """The previous answer's tokens from the place ``tokens`` (drafted so far this pass) lead to."""
        if not self._previous:
            return []
        where = self.constraint.position(state) if state is not None else None
        if where is not None:
            index = self._previous_at.get(where)
            return [] if index is None else self._previous[index : index + limit]
        done = len(self.history) - self.start
        if self._agree < done:
            return []
        at = done + len(tokens)
        if self._previous[done:at] != tokens:
            return []
        return self._previous[at : at + limit]

    def _ngram(self, tokens: list[int], limit: int) -> list[int]:
        seq = self.history + tokens
        if len(seq) < 2:
            return []
        index = self._bigrams.get((seq[-2], seq[-1]))
        if index is None or index >= len(self.history):
            return []
        return self.history[index : index + limit]

    def draft(self) -> tuple[list[int], list[tuple | None]]:
        """Propose draft tokens after the last generated token.

        Returns:
            ``(tokens, states)``: up to ``max_draft`` tokens (``max_temporal_draft`` when the previous answer
            leads), and the constraint state before each draft token
            and after the last one (``len(tokens) + 1`` entries; None entries when no grammar is followed).
            Under an enforced grammar every draft token is allowed in its state.
        """
        tokens: list[int] = []
        states: list[tuple | None] = [self.state]
        state = self.state
        if self.max_draft == 0 or (state is not None and state[0] == STOP):
            return tokens, states
        limit = self.max_draft
        if self.max_temporal_draft > self.max_draft and self._temporal(state, tokens, 1):
            limit = self.max_temporal_draft
        while len(tokens) < limit:
            room = limit - len(tokens)
            proposal: list[int] = self._temporal(state, tokens, room)
            if state is not None and not proposal:
                proposal = (
                    self._row_copy(state, room)
                    or list(self.constraint.forced_tokens(state))
                    or self._text_copy(state, room)
                )
            if not proposal:
                proposal = self._ngram(tokens, room)
            added = 0
            for token in proposal[:room]:
                if state is not None:
                    if self.enforce and token not in self.constraint.allowed(state).members:
                        break
                    nxt = self._advance(state, token)
                    if nxt is None and self.enforce:
                        break
                else:
                    nxt = None
                tokens.append(token)
                states.append(nxt)
                state = nxt
                added += 1
                if state is not None and state[0] == STOP:
                    return tokens, states
            if added < len(proposal[:room]) or added == 0:
                break
        return tokens, states
