"""Grounded captions under the grammar (text4seg.decoding.caption): the caption automaton (exact accepted and
rejected bytes), the token constraint on the tiny tokenizer (random-logit walks always parse without a repair,
descriptor labels = the caption's phrases), the prompt recognition, and on the random-weight tiny LLaVA the
fast loop gives token for token what constrained ``generate`` gives."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from text4seg.config import Text4SegConfig
from text4seg.decoding import CaptionGrammar, GroundedConstraint, allowed_labels, grounded_prompt, token_vocab
from text4seg.decoding.caption import SEG_DONE
from text4seg.grounded import decode_grounded, parse_caption
from text4seg.prompts import GCG_QUESTIONS, gcg_question

# ---------------------------------------------------------------------------------------------------- automaton


def _walk(data: bytes, max_phrase_bytes: int = 128, over: bool = False):
    grammar = CaptionGrammar(max_phrase_bytes)
    return grammar.walk(grammar.start(over=over), data)


@pytest.mark.parametrize("text", [
    b"A <p>man</p> holds a <p>tennis racket</p>.\n<seg>",
    b"\n<seg>",
    b"<p>caf\xc3\xa9</p>\n<seg>",
    b"<p> x </p>\n<seg>",
    b"<p>dog</p><p>dog</p> | * > p> /p>\n<seg>",
    b"\xe4\xb8\xad<p>\xe2\x82\xac</p>\n<seg>",  # a non-space character (the euro sign) is a phrase
    b"<p>\xe3\x80\x80x</p>\n<seg>",
])
def test_caption_grammar_accepts(text):
    state = _walk(text)
    assert state is not None and state[0] == SEG_DONE
    caption, phrases, repairs = parse_caption(text.decode()[: -len("<seg>")])
    assert repairs == [] and all(p.label for p in phrases)


@pytest.mark.parametrize("text", [
    b"A <p>ma", b"<", b"<p", b"<p>", b"<p>x<", b"<p>x</", b"<p>x</p", b"x\n", b"x\n<se", b"\xc3", b"<p>\xe3\x80",
])
def test_caption_grammar_prefixes(text):
    state = _walk(text)
    assert state is not None and state[0] != SEG_DONE


@pytest.mark.parametrize("text", [
    b"<p><p>",  # nested
    b"</p>",  # stray close
    b"<p></p>", b"<p> </p>", b"<p>\xe3\x80\x80</p>", b"<p>\xc2\xa0</p>",  # empty phrases (space, U+3000, U+00A0)
    b"<p>a|b", b"<p>a*", b"<p>a\n",  # label separators inside a phrase
    b"a\tb", b"a\rb", b"a\x00", b"a\x7f",  # control characters
    b"<seg>", b"a<b", b"<P>", b"< p>", b"<p>a<b",  # '<' only as an exact marker; <seg> only after the newline
    b"\n<sex>", b"\nx", b"\n<seg>x",  # nothing after the newline but <seg>, nothing after <seg>
    b"\xc3(", b"\xff", b"\x80", b"\xed\xa0\x80", b"<p>\xc0\xaf",  # invalid UTF-8
])
def test_caption_grammar_rejects(text):
    assert _walk(text) is None


def test_caption_grammar_phrase_length_and_room():
    assert _walk(b"<p>abcd</p>\n<seg>", max_phrase_bytes=4)[0] == SEG_DONE
    assert _walk(b"<p>abcde", max_phrase_bytes=4) is None
    assert _walk(b"<p>ab\xc3\xa9", max_phrase_bytes=4) is not None
    assert _walk(b"<p>abc\xc3", max_phrase_bytes=4) is None  # the character would not fit
    # an empty phrase keeps room for one non-space byte
    assert _walk(b"<p> ", max_phrase_bytes=2) is not None
    assert _walk(b"<p>  ", max_phrase_bytes=2) is None
    assert _walk(b"<p> a</p>\n<seg>", max_phrase_bytes=2)[0] == SEG_DONE
    assert _walk(b"<p>\xc3\xa9", max_phrase_bytes=2) is None  # (it could be a space such as U+00A0)


def test_caption_grammar_spent_budget_takes_the_shortest_way_out():
    grammar = CaptionGrammar()
    spent = grammar.spend(grammar.start())
    assert grammar.forced_bytes(spent) == b"\n<seg>"
    assert grammar.walk(spent, b"a") is None and grammar.walk(spent, b"<") is None
    inside = grammar.spend(grammar.walk(grammar.start(), b"A <p>"))
    assert grammar.next_bytes(inside) == [b for b in range(0x21, 0x7F) if b not in b"<|*"]
    assert grammar.walk(inside, b" ") is None and grammar.walk(inside, b"\xc3\xa9") is None
    assert grammar.forced_bytes(grammar.walk(inside, b"x")) == b"</p>\n<seg>"
    half = grammar.spend(grammar.walk(grammar.start(), b"<p>x\xe2\x82"))
    assert grammar.next_bytes(half) == list(range(0x80, 0xC0))
    assert grammar.forced_bytes(grammar.walk(grammar.start(), b"a <")) == b"p>"
    assert grammar.forced_bytes(grammar.walk(grammar.start(), b"<p>a<")) == b"/p>"
    assert grammar.forced_bytes(grammar.walk(grammar.start(), b"a")) == b""
    with pytest.raises(ValueError, match="max_phrase_bytes"):
        CaptionGrammar(0)


# ---------------------------------------------------------------------------------------------------- tokens


@pytest.fixture(scope="module")
def gcg_tokenizer():
    from text4seg.modeling.tokenizer import build_tiny_tokenizer

    texts = ["A <p>man</p> holds a <p>tennis racket</p>.\n<seg>others *3| man *1\n others *4\n</seg>",
             "Segment the red circle.", "Here is the mask. caf\u00e9 \u4e2d\u6587 \u3000"] * 3
    return build_tiny_tokenizer(texts, ["target", "man"], vocab_size=320)


def _random_answer(constraint: GroundedConstraint, rng: random.Random, lt_token: int | None) -> list[int]:
    """Argmax of random logits over the allowed tokens, step by step; biased towards '<' so phrases open."""
    state, ids = constraint.initial(), []
    while state[0] != "X":
        allowed = constraint.allowed(state).ids
        logits = {token: rng.random() for token in allowed}
        if lt_token in logits:
            logits[lt_token] += 0.5
        token = max(logits, key=logits.get)
        ids.append(token)
        state = constraint.advance(state, token)
        assert state is not None
    return ids


@pytest.mark.parametrize("form, grid", [("rle", (2, 3)), ("plain", (3, 2))])
def test_random_logit_answers_always_parse_without_repairs(gcg_tokenizer, form, grid):
    tok = gcg_tokenizer
    vocab = token_vocab(tok, len(tok), [tok.eos_token_id])
    constraint = GroundedConstraint(vocab, *grid, form, "others", max_caption_tokens=14, max_phrase_bytes=10)
    lt = tok.convert_tokens_to_ids("<")
    rng = random.Random(3)
    phrases = labelled = 0
    for _ in range(250):
        ids = _random_answer(constraint, rng, lt)
        assert ids[-1] == tok.eos_token_id and len(ids) <= constraint.max_tokens()
        text = tok.decode(ids, skip_special_tokens=True)
        got = decode_grounded(text, *grid, out_hw=(5, 4))
        assert got.repairs == [], text
        assert got.form in (form, "plain" if grid[1] == 1 else form)
        values = set(got.grid.ravel())
        assert values <= set(got.labels) | {"others"}, text
        phrases += len(got.phrases)
        labelled += len(values - {"others"})
    assert phrases > 50 and labelled > 10  # the walks did open phrases and use their labels


def test_cached_allowed_sets_are_exact(gcg_tokenizer):
    """The allowed set of every caption state met on random walks (cached per state class; inside a phrase
    derived from the set at length 0) is exactly the tokens that ``advance`` accepts there."""
    tok = gcg_tokenizer
    vocab = token_vocab(tok, len(tok), [tok.eos_token_id])
    rng = random.Random(5)
    lt = tok.convert_tokens_to_ids("<")
    for cap in (3, 6, 40):
        constraint = GroundedConstraint(vocab, 1, 2, "plain", "others", max_caption_tokens=20, max_phrase_bytes=cap)
        for _ in range(40):
            state = constraint.initial()
            while state[0] == "C":
                expected = {t for t in range(vocab.size) if constraint.advance(state, t) is not None}
                assert set(constraint.allowed(state).ids) == expected, state
                allowed = constraint.allowed(state).ids
                token = lt if lt in allowed and rng.random() < 0.3 else rng.choice(allowed)
                state = constraint.advance(state, token)


def test_descriptor_labels_are_the_phrase_labels(gcg_tokenizer):
    tok = gcg_tokenizer
    vocab = token_vocab(tok, len(tok), [tok.eos_token_id])
    constraint = GroundedConstraint(vocab, 1, 2, "rle", "others")
    state = constraint.initial()
    caption = "A <p>dog</p> and a <p>Dog</p> near <p>others</p>.\n<seg>"
    for token in tok(caption, add_special_tokens=False)["input_ids"]:
        state = constraint.advance(state, token)
    assert state[0] == "S" and state[2] == ("dog", "Dog 2", "others 2")
    assert constraint.grammar_of(state).labels == ("dog", "Dog 2", "others 2", "others")
    assert constraint.grammar_of(state) is constraint.grammar(("dog", "Dog 2", "others 2"))  # cached
    # no phrase: only the background
    state = constraint.initial()
    for token in tok("A plain caption.\n<seg>", add_special_tokens=False)["input_ids"]:
        state = constraint.advance(state, token)
    assert state[2] == () and constraint.grammar_of(state).labels == ("others",)
    text = b"".join(vocab.token_bytes[t] for t in constraint.allowed(state).ids)
    assert b"man" not in text and b"target" not in text
    # a token may end at <seg> but not run past it; an end token only after </seg>
    state = constraint.initial()
    assert tok.eos_token_id not in constraint.allowed(state).members
    assert constraint.advance(state, tok.eos_token_id) is None


def test_caption_budget_forces_the_descriptor(gcg_tokenizer):
    tok = gcg_tokenizer
    vocab = token_vocab(tok, len(tok), [tok.eos_token_id])
    ids = tok("A <p>man", add_special_tokens=False)["input_ids"]
    constraint = GroundedConstraint(vocab, 1, 1, "rle", "others", max_caption_tokens=len(ids))
    state = constraint.initial()
    for token in ids:
        assert not state[1][4]
        state = constraint.advance(state, token)
    assert state[1][4]  # spent: the phrase must close now
    assert tok.decode(list(constraint.forced_tokens(state))) == "</p>\n<seg>"
    assert constraint.advance(state, ids[-1]) is None
    zero = GroundedConstraint(vocab, 1, 1, "rle", "others", max_caption_tokens=0)
    assert tok.decode(list(zero.forced_tokens(zero.initial()))) == "\n<seg>"
    with pytest.raises(ValueError, match="max_caption_tokens"):
        GroundedConstraint(vocab, 1, 1, "rle", "others", max_caption_tokens=-1)


def test_grounded_prompts_are_recognised(gcg_tokenizer):
    assert all(grounded_prompt(q) for q in GCG_QUESTIONS) and grounded_prompt(f"  {gcg_question()}\n")
    assert not grounded_prompt("Segment the dog.") and not grounded_prompt(None)
    config = Text4SegConfig(grid=4, question_template="Segment {expression}.", fg_label="target")
    assert allowed_labels("Segment the dog.", config) == ["target", "others"]  # unchanged


# ---------------------------------------------------------------------------------------------------- model


def _images(n: int, seed: int) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(n)]


@pytest.mark.parametrize("grid, form", [((2, 3), "rle"), ((2, 2), "plain")])
def test_fast_equals_constrained_on_grounded_captions(tiny_gcg, grid, form):
    from text4seg.decoding import DescriptorDecoder

    config = replace(tiny_gcg.config, grid=grid, descriptor_form=form)
    decoder = DescriptorDecoder(tiny_gcg.model, tiny_gcg.processor, config, max_caption_tokens=10,
                                max_label_bytes=8)
    image_a, image_b = _images(2, seed=11)
    images = [image_a, image_b, image_a]
    prompts = [gcg_question(), gcg_question(), "Describe it."]
    slow = decoder.generate(images, prompts, mode="constrained", grounded=True)
    fast = decoder.generate(images, prompts, mode="fast", grounded=[True, None, True])
    assert [a.ids for a in fast] == [a.ids for a in slow]
    phrases = 0
    for answer in slow:
        got = decode_grounded(answer.text, *grid)
        assert got.repairs == [], answer.text
        assert set(got.grid.ravel()) <= set(got.labels) | {"others"}
        phrases += len(got.phrases)
    assert phrases > 0
    assert sum(a.forward_passes for a in fast) < sum(a.forward_passes for a in slow)
    with pytest.raises(ValueError, match="labels"):
        decoder.generate(images[:1], prompts[:1], mode="fast", labels=[["dog"]], grounded=True)
    with pytest.raises(ValueError, match="grounded"):
        decoder.generate(images[:1], prompts[:1], mode="fast", grounded=[True, False])


def test_mask_bank_keeps_the_most_recent_masks():
    from text4seg.decoding.hf import MaskBank
    from text4seg.decoding.vocab import Allowed

    bank = MaskBank(6, "cpu", max_masks=2)
    sets = [Allowed((k,), (k,), frozenset([k])) for k in range(3)]
    first = bank.get(None, sets[0])
    assert first.tolist() == [True, False, False, False, False, False]
    bank.get(None, sets[1])
    assert bank.get(None, sets[0]) is first  # used again: kept
    bank.get(None, sets[2])  # evicts sets[1], the least recently used
    assert bank.get(None, sets[0]) is first and len(bank._masks) == 2 and (id(None), (1,)) not in bank._masks


def test_mask_bank_keys_masks_by_constraint_spec_not_object_id():
    """Equal specs share masks; a constraint with another spec never gets them, even at a reused ``id``."""
    from text4seg.decoding.hf import MaskBank
    from text4seg.decoding.vocab import Allowed

    class Spec:
        def __init__(self, spec):
            self.spec = spec

    bank = MaskBank(4, "cpu")
    a, same, other = Spec(("descriptor", "cat")), Spec(("descriptor", "cat")), Spec(("descriptor", "dog"))
    state = ("S", 3)
    mask = bank.get(a, Allowed(state, (1,), frozenset([1])))
    assert bank.get(same, Allowed(state, (1,), frozenset([1]))) is mask
    assert bank.get(other, Allowed(state, (2,), frozenset([2]))).tolist() == [False, False, True, False]
    del a, same
    # a new object may take a freed one's id: with a different spec it still gets its own mask
    fresh = Spec(("descriptor", "bird"))
    assert bank.get(fresh, Allowed(state, (3,), frozenset([3]))).tolist() == [False, False, False, True]
