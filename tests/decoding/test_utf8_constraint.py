"""The descriptor constraint keeps free text and open labels valid UTF-8 (as Python decodes it), so byte-fallback
tokens never leave half a character that swallows the next bytes when the answer is decoded."""

from __future__ import annotations

import pytest

from text4seg.decoding.grammar import DescriptorGrammar, utf8_lead, utf8_next


def _valid(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _accepts_label(grammar: DescriptorGrammar, label: bytes) -> bool:
    state = grammar.walk(grammar.start(with_seg_tag=True), b"<seg>" + label + b" *2")
    return state is not None


@pytest.mark.parametrize("label", [
    "caf\u00e9".encode(), "na\u00efve \u4e2d\u6587".encode(), "x\U0001f600".encode(), b"plain",
    b"x\xc3", b"x\xe0\x80\x80", b"x\xed\xa0\x80", b"x\xf4\x90\x80\x80", b"x\x80", b"x\xc0\xaf", b"x\xf5\x80\x80\x80",
    b"x\xe2\x82", b"x\xf0\x9f\x98",
])
def test_open_labels_are_exactly_the_valid_utf8_ones(label):
    grammar = DescriptorGrammar(1, 2, None, form="rle")
    assert _accepts_label(grammar, label) == _valid(label)


def test_every_two_and_three_byte_sequence_agrees_with_python():
    for first in range(0x80, 0x100):
        state = utf8_lead(first)
        for second in range(0x80, 0xC0):
            after = None if not state else utf8_next(state, second)
            if state == 1:
                assert (after is not None) == _valid(bytes([first, second]))
            if state and after:
                for third in range(0x80, 0xC0):
                    last = utf8_next(after, third)
                    if last == 0:
                        assert _valid(bytes([first, second, third]))


def test_free_text_keeps_characters_whole(tiny_tokenizer_vocab):
    constraint, vocab = tiny_tokenizer_vocab
    state = constraint.initial()
    byte_tokens = {data: token for token, data in enumerate(vocab.token_bytes) if data and len(data) == 1}
    lead = byte_tokens.get(b"\xe2")
    if lead is None:
        pytest.skip("the tokenizer has no single-byte token for 0xE2")
    half = constraint.advance(state, lead)
    assert half is not None and half[0] == state[0]
    lt = byte_tokens[b"<"]
    assert constraint.advance(half, lt) is None  # '<' cannot follow half a character
    assert lt not in constraint.allowed(half).members
    cont = byte_tokens.get(b"\x82")
    if cont is not None:
        assert constraint.advance(half, cont) is not None


@pytest.fixture(scope="module")
def tiny_tokenizer_vocab(tiny_model_dir):
    from transformers import AutoTokenizer

    from text4seg.decoding import token_vocab
    from text4seg.decoding.vocab import TokenConstraint

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    vocab = token_vocab(tokenizer)
    grammar = DescriptorGrammar(2, 2, None, form="rle")
    return TokenConstraint(grammar, vocab, max_preamble_tokens=8), vocab
