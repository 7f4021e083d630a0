"""Decoding: the descriptor grammar (exact accept/reject), token-level constraints on byte-level and SentencePiece
vocabularies, row-copy drafts, and on a random-weight tiny LLaVA: constrained answers decode with zero repairs,
and the fast loop gives token for token what plain / constrained greedy ``generate`` gives.

The model tests run the tiny model in float64 so that batching, prefix sharing and draft verification cannot
flip a near-tie of the argmax through rounding; the identity is exact."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from text4seg.config import Text4SegConfig
from text4seg.decoding import DescriptorGrammar, Drafter, allowed_labels, token_constraint, token_vocab
from text4seg.decoding.grammar import DONE
from text4seg.decoding.vocab import token_byte_strings
from text4seg.descriptors import decode_descriptor, encode_descriptor

LABELS = ["red", "red circle", "white horse"]


def _walk(grammar: DescriptorGrammar, text: str):
    return grammar.walk(grammar.start(with_seg_tag=True), text.encode())


# ---------------------------------------------------------------------------------------------------- grammar


@pytest.mark.parametrize("form", ["rle", "plain"])
def test_grammar_accepts_every_encoded_grid(form):
    rng = random.Random(1)
    for _ in range(200):
        height, width = rng.randint(1, 5), rng.randint(1, 9)
        grid = [[rng.choice(LABELS + ["others"]) for _ in range(width)] for _ in range(height)]
        text = "<seg>" + encode_descriptor(grid, rle=form == "rle") + "</seg>"
        for labels in (LABELS, None):
            state = _walk(DescriptorGrammar(height, width, labels, form), text)
            assert state is not None and state[0] == DONE, text


@pytest.mark.parametrize("form", ["rle", "plain"])
@pytest.mark.parametrize("closed", [True, False])
def test_grammar_random_walks_decode_without_repairs(form, closed):
    """Any path through the automaton is a descriptor that decodes exactly, with the expected form."""
    rng = random.Random(2)
    for _ in range(150):
        height, width = rng.randint(1, 4), rng.randint(1, 11)
        labels = LABELS[: rng.randint(1, 3)] if closed else None
        grammar = DescriptorGrammar(height, width, labels, form, max_label_bytes=6)
        state, out = grammar.start(), bytearray()
        while state[0] != DONE:
            options = grammar.next_bytes(state)
            assert options, (state, bytes(out))
            out.append(rng.choice(options))
            state = grammar.step(state, out[-1])
        assert len(out) <= grammar.max_bytes()
        decoded = decode_descriptor("<seg>" + out.decode(errors="replace"), height, width)
        assert decoded.repairs == [] and decoded.labels.shape == (height, width)
        assert decoded.form == form or width == 1
        if closed:
            assert set(decoded.labels.ravel()) <= set(labels) | {"others"}


@pytest.mark.parametrize(
    "text",
    [
        "<seg>others *3\n others *4\n</seg>",  # row 0 sums to 3
        "<seg>others *5\n others *4\n</seg>",  # count above the remaining cells
        "<seg>others *4\n others *4\n others *4\n</seg>",  # a third row
        "<seg>others *4\n others *4\n",  # the descriptor is complete only with </seg> ...
        "<seg>others *4\n others *4\n</seg>x",  # ... and nothing follows it
        "<seg>others *2| others *2\n others *4\n</seg>",  # adjacent runs with one label
        "<seg>others *02| red *2\n others *4\n</seg>",  # leading zero
        "<seg>others *0| red *4\n others *4\n</seg>",  # empty run
        "<seg>blue *4\n others *4\n</seg>",  # label not allowed
        "<seg>others *4\nothers *4\n</seg>",  # rows are joined with "\n "
        "<seg>others*4\n others *4\n</seg>",  # runs are "label *count"
        "<seg>  others *4\n others *4\n</seg>",  # at most one leading space
    ],
)
def test_grammar_rejects_invalid_rle(text):
    state = _walk(DescriptorGrammar(2, 4, ["red"], "rle"), text)
    assert state is None or state[0] != DONE


def test_grammar_exact_states_and_forced_text():
    grammar = DescriptorGrammar(2, 4, ["target"], "rle")
    start = grammar.start()
    assert grammar.next_bytes(start) == [ord(" "), ord("o"), ord("t")]
    # after a run, the other label is the only one left: its text up to the count is forced
    assert grammar.forced_bytes(grammar.walk(start, b"others *2| ")) == b"target *"
    assert grammar.forced_bytes(grammar.walk(start, b"others *4\n others *4\n")) == b"</seg>"
    # the count must fill the row exactly once the last label is forced
    assert grammar.next_bytes(grammar.walk(start, b"others *2| target *")) == [ord("1"), ord("2")]
    assert grammar.next_bytes(grammar.walk(start, b"others *2| target *2")) == [ord("\n")]
    plain = DescriptorGrammar(1, 3, ["red", "red circle"], "plain")
    assert plain.next_bytes(plain.walk(plain.start(), b"red")) == [ord(" "), ord("|")]
    assert plain.walk(plain.start(), b"red circle| red| others\n</seg>")[0] == DONE
    assert plain.walk(plain.start(), b"red circle| red| others| ") is None  # a fourth cell
    # one label only (the background): a run must fill the whole row
    single = DescriptorGrammar(1, 12, [], "rle")
    assert single.labels == ("others",)
    assert single.next_bytes(single.walk(single.start(), b"others *")) == [ord("1")]
    assert single.next_bytes(single.walk(single.start(), b"others *1")) == [ord("2")]


def test_grammar_open_labels():
    grammar = DescriptorGrammar(1, 2, None, "rle", max_label_bytes=8)
    assert grammar.walk(grammar.start(), b"a b *1| c *1\n</seg>")[0] == DONE
    assert grammar.walk(grammar.start(), b" a *2\n</seg>")[0] == DONE  # one optional leading space
    for bad in (b"  a *2", b"a  b *2", b"a|b *2", b"<x *2", b"\xc3\xa9 *2", b"abcdefghi *2", b"a *2| b"):
        state = grammar.walk(grammar.start(), bad)
        assert state is None or (bad == b"a *2| b" and grammar.next_bytes(state) == []), bad


def test_grammar_rejects_bad_arguments():
    with pytest.raises(ValueError, match="grid 0x3"):
        DescriptorGrammar(0, 3, None)
    with pytest.raises(ValueError, match="form"):
        DescriptorGrammar(2, 3, None, "runs")


# ---------------------------------------------------------------------------------------------------- labels


def test_allowed_labels_from_prompts():
    fixed = Text4SegConfig(grid=4, question_template="Segment {expression}.", fg_label="target")
    assert allowed_labels("Segment the red | circle.", fixed) == ["target", "others"]
    assert allowed_labels("What is there?", fixed) == ["target", "others"]
    sentence = Text4SegConfig(grid=4, question_template="Where is {expression}?")
    assert allowed_labels("Where is the red | circle?", sentence) == ["the red / circle", "others"]
    assert allowed_labels("Tell me a story.", sentence) is None
    semantic = "Please segment the image into these classes: sky, tree, others."
    assert allowed_labels(semantic, sentence) == ["sky", "tree", "others"]


# ---------------------------------------------------------------------------------------------------- tokens


@pytest.fixture(scope="module")
def tiny_tokenizer():
    from text4seg.modeling.tokenizer import build_tiny_tokenizer

    texts = ["Segment the red circle.", "Here is the mask.", "others *12| target *4\n others *16\n"] * 3
    return build_tiny_tokenizer(texts, ["target"], vocab_size=320)


def test_token_bytes_byte_level(tiny_tokenizer):
    tok = tiny_tokenizer
    data = token_byte_strings(tok)
    text = "Here is the mask.\n<seg>others| target *12\n é</seg>"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert b"".join(data[i] for i in ids) == text.encode()
    assert data[tok.convert_tokens_to_ids("others| ")] == b"others| "
    for special in (
        tok.bos_token_id,
        tok.eos_token_id,
        tok.pad_token_id,
        tok.convert_tokens_to_ids("<image>"),
    ):
        assert data[special] is None
    assert len(token_byte_strings(tok, len(tok) + 5)) == len(tok) + 5


def test_token_bytes_sentencepiece():
    from tokenizers import Tokenizer, decoders, models, normalizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    vocab.update({f"<0x{b:02X}>": 3 + b for b in range(256)})
    for piece in ["▁", "▁others", "others", "▁*", "1", "|", "o"]:
        vocab[piece] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], byte_fallback=True, unk_token="<unk>"))
    backend.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    backend.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    tok.add_tokens(["<seg>", "</seg>"])
    data = token_byte_strings(tok)
    assert data[vocab["▁others"]] == b" others" and data[vocab["<0x0A>"]] == b"\n" and data[1] is None
    assert data[tok.convert_tokens_to_ids("</seg>")] == b"</seg>"
    vocab_ = token_vocab(tok, None, [tok.eos_token_id])
    constraint = token_constraint(vocab_, 2, 1, ["target"], "rle", "others", max_preamble_tokens=0)
    state = constraint.advance(constraint.initial(), tok.convert_tokens_to_ids("<seg>"))
    allowed = constraint.allowed(state).members
    # "<seg>▁others" (legacy SentencePiece after an added token) is allowed, and so is "others"
    assert vocab["▁others"] in allowed and vocab["others"] in allowed and vocab["1"] not in allowed
    text_ids = [vocab["▁others"], vocab["▁*"], vocab["1"], vocab["<0x0A>"], vocab["▁others"], vocab["▁*"]]
    text_ids += [vocab["1"], vocab["<0x0A>"], tok.convert_tokens_to_ids("</seg>"), tok.eos_token_id]
    for token in text_ids:
        assert token in constraint.allowed(state).members
        state = constraint.advance(state, token)
    assert state == ("X",)


def test_constraint_allowed_sets_tiny_vocab(tiny_tokenizer):
    tok = tiny_tokenizer
    vocab = token_vocab(tok, len(tok), [tok.eos_token_id])
    ids = tok.convert_tokens_to_ids
    constraint = token_constraint(vocab, 2, 2, ["target"], "plain", "others", max_preamble_tokens=3)
    state = constraint.initial()
    free = constraint.allowed(state).members
    assert tok.eos_token_id not in free and ids("<image>") not in free and ids("Here") in free
    state = constraint.advance(state, ids("<seg>"))
    cells = constraint.allowed(state).members
    assert {ids("others| "), ids("target| ")} <= cells
    assert not {ids("others\n "), ids("others\n"), ids("</seg>"), tok.eos_token_id} & cells
    for token in ("target| ", "others\n ", "others| "):
        state = constraint.advance(state, ids(token))
    assert ids("target\n") in constraint.allowed(state).members
    assert ids("target\n ") not in constraint.allowed(state).members  # last row ends with a bare "\n"
    state = constraint.advance(state, ids("target\n"))
    assert constraint.forced_tokens(state) == (ids("</seg>"),)
    state = constraint.advance(state, ids("</seg>"))
    assert constraint.allowed(state).ids == (tok.eos_token_id,)
    assert constraint.advance(state, tok.eos_token_id) == ("X",)
    # after 3 free tokens "<seg>" is forced
    state = constraint.initial()
    for _ in range(3):
        state = constraint.advance(state, ids("Here"))
    assert ids("Here") not in constraint.allowed(state).members
    assert ids("<seg>") in constraint.allowed(state).members


def test_drafter_row_copy_and_forced(tiny_tokenizer):
    tok = tiny_tokenizer
    vocab = token_vocab(tok, len(tok), [tok.eos_token_id])
    constraint = token_constraint(vocab, 3, 4, ["target"], "plain", "others", max_preamble_tokens=8)
    ids = tok.convert_tokens_to_ids
    drafter = Drafter(constraint, True, prompt=[1, 5, 6], max_draft=6)
    row0 = ["others| ", "target| ", "target| ", "others\n "]
    for token in ["<seg>", *row0, "others| "]:
        drafter.push(ids(token))
    tokens, states = drafter.draft()
    # the rest of row 0 from column 1, then row 1 so far ("others| "), as the guess for row 2
    assert tokens == [ids(t) for t in ["target| ", "target| ", "others\n ", "others| "]]
    assert len(states) == len(tokens) + 1 and all(s is not None for s in states)
    # a draft that the grammar rejects is cut: the last row must end with "\n", not "\n "
    drafter = Drafter(constraint, True, prompt=[], max_draft=6)
    for token in ["<seg>", *row0, *row0[:3], "others\n ", "others| "]:
        drafter.push(ids(token))
    tokens, _ = drafter.draft()
    assert tokens == [ids(t) for t in ["target| ", "target| "]]


def test_drafter_temporal_same_row_same_column(tiny_tokenizer):
    """previous=: the previous answer's tokens from the same row and position on, tried before the row copy;
    the sentence before <seg> is drafted while it equals the previous one."""
    tok = tiny_tokenizer
    vocab = token_vocab(tok, len(tok), [tok.eos_token_id])
    constraint = token_constraint(vocab, 3, 4, ["target"], "plain", "others", max_preamble_tokens=8)
    ids = tok.convert_tokens_to_ids
    rows = [["others| ", "target| ", "target| ", "others\n "], ["others| ", "others| ", "target| ", "others\n "],
            ["target| ", "others| ", "others| ", "others\n"]]
    previous = [ids(t) for t in ["Here", "<seg>", *rows[0], *rows[1], *rows[2], "</seg>"]] + [tok.eos_token_id]
    drafter = Drafter(constraint, True, prompt=[1, 5], max_draft=5, previous=previous)
    drafter.push(ids("Here"))
    tokens, _ = drafter.draft()
    assert tokens == previous[1:6]  # the sentence so far equals the previous: its continuation
    for token in ["<seg>", *rows[0], "others| "]:
        drafter.push(ids(token))
    tokens, _ = drafter.draft()
    # row 1 from column 1 in the previous answer (the row copy would give row 0's "target| target| ...")
    assert tokens == [ids(t) for t in ["others| ", "target| ", "others\n ", "target| ", "others| "]]
    # a longer draft when the previous answer leads, then the rest of the answer to the end token
    drafter = Drafter(constraint, True, prompt=[], max_draft=2, previous=previous, max_temporal_draft=50)
    drafter.push(ids("Here"))
    tokens, states = drafter.draft()
    assert tokens == previous[1:] and states[-1] == ("X",)
    # a different previous answer where the current differs: the row copy again
    drafter = Drafter(constraint, True, prompt=[], max_draft=4, previous=previous)
    for token in ["<seg>", *rows[1], "others| "]:
        drafter.push(ids(token))
    tokens, _ = drafter.draft()
    assert tokens[:2] == previous[2 + 4 + 1 : 2 + 4 + 3]  # previous row 1 from column 1
    # an answer of another grammar (the end token first) gives no temporal draft; the other sources still work
    drafter = Drafter(constraint, True, prompt=[], max_draft=4, previous=[tok.eos_token_id, ids("target| ")])
    for token in ["<seg>", *rows[0], "others| "]:
        drafter.push(ids(token))
    assert drafter.draft()[0] == [ids(t) for t in ["target| ", "target| ", "others\n ", "others| "]]


def _simulate(drafter: Drafter, truth: list[int]) -> int:
    """Forward passes the fast loop needs when greedy decoding yields ``truth`` (first token from prefill)."""
    drafter.push(truth[0])
    done = passes = 1
    while done < len(truth):
        draft, _ = drafter.draft()
        m = 0
        while m < len(draft) and done + m < len(truth) and draft[m] == truth[done + m]:
            m += 1
        for token in truth[done : done + m + 1]:
            drafter.push(token)
        done, passes = done + m + 1, passes + 1
    return passes


def test_drafter_text_copy_with_bpe_tokens():
    """BPE tokens straddle cells ("|", "Ġothers"): rows are still copied, through their text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    grid = np.full((6, 8), "others", dtype=object)
    grid[2:5, 3:6] = "the red circle"
    answer = "Sure.\n<seg>" + encode_descriptor(grid, rle=False) + "</seg>"
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    backend.train_from_iterator([answer, "the red circle others"], trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>")
    tok.add_tokens(["<seg>", "</seg>"])
    truth = tok(answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert tok.convert_ids_to_tokens(truth[4:7]) == ["others", "|", "Ġothers"]
    vocab = token_vocab(tok, len(tok), [tok.eos_token_id])
    constraint = token_constraint(vocab, 6, 8, ["the red circle"], "plain", "others", 8)
    drafter = Drafter(constraint, True, prompt=[], max_draft=16)
    row0_end = truth.index(tok.convert_tokens_to_ids("Ċ"), 4)  # the first newline after <seg>
    for token in truth[: row0_end + 1]:
        drafter.push(token)
    draft, _ = drafter.draft()  # row 1 = row 0, but with its leading space inside "Ġothers"
    assert draft[:3] == truth[row0_end + 1 : row0_end + 4]
    drafter = Drafter(constraint, True, prompt=[], max_draft=16)
    assert _simulate(drafter, truth) * 4 < len(truth)


# ---------------------------------------------------------------------------------------------------- model


@pytest.fixture(scope="module")
def tiny64(tiny_model_dir):
    """The conftest tiny model, random weights, in float64."""
    import torch

    from text4seg.modeling import load_model

    loaded = load_model(tiny_model_dir, dtype="float32", device="cpu")
    loaded.model.to(torch.float64)
    return loaded


def _images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(n)]


PROMPTS = ["Segment the red circle.", "Segment the blue square left of the green triangle.", "Segment it."]


def _plain_ids(loaded, config, images, prompts, budget):
    """Token ids of transformers' greedy generate, one prompt at a time (no padding)."""
    import torch

    from text4seg.decoding import HFGenerationBackend
    from text4seg.decoding.hf import encode_inputs

    render = HFGenerationBackend(loaded.model, loaded.processor, config).render
    eos = loaded.processor.tokenizer.eos_token_id
    out = []
    for image, prompt in zip(images, prompts):
        batch = encode_inputs(loaded.model, loaded.processor, config, [image], [prompt], render)
        with torch.inference_mode():
            new = loaded.model.generate(**batch, max_new_tokens=budget, do_sample=False)
        ids = new[0, batch["input_ids"].shape[1] :].tolist()
        out.append(ids[: ids.index(eos) + 1] if eos in ids else ids)
    return out


@pytest.mark.parametrize("position", ["before", "after"])
def test_fast_unconstrained_equals_plain_generate(tiny64, position):
    from text4seg.decoding import DescriptorDecoder

    config = replace(tiny64.config, image_position=position)
    image_a, image_b = _images(2)
    images = [image_a, image_a, image_b]
    plain = _plain_ids(tiny64, config, images, PROMPTS, budget=40)
    decoder = DescriptorDecoder(tiny64.model, tiny64.processor, config)
    fast = decoder.generate_ids(images, PROMPTS, mode="fast-unconstrained", max_new_tokens=40)
    assert [ids for ids, _ in fast] == plain
    # drafts (n-gram look-up on the random model's loops) were accepted: fewer passes than tokens
    assert sum(passes for _, passes in fast) < sum(len(ids) for ids in plain)
    single = DescriptorDecoder(tiny64.model, tiny64.processor, config, speculate=False, share_prefix=False)
    slow = single.generate_ids(images, PROMPTS, mode="fast-unconstrained", max_new_tokens=40)
    assert [ids for ids, _ in slow] == plain
    assert [passes for _, passes in slow] == [len(ids) for ids in plain]
    # prefix sharing alone: one extra pass (the shared prefix) when it holds the image, none otherwise
    shared = DescriptorDecoder(tiny64.model, tiny64.processor, config, speculate=False)
    out = shared.generate_ids(images, PROMPTS, mode="fast-unconstrained", max_new_tokens=40)
    assert [ids for ids, _ in out] == plain
    extra = 1 if position == "before" else 0
    assert [passes for _, passes in out] == [len(ids) + extra for ids in plain]


@pytest.mark.parametrize(
    "grid, form, position",
    [
        ((3, 5), "rle", "before"),
        ((4, 4), "plain", "after"),
        ((2, 7), "plain", "before"),
        ((5, 2), "rle", "after"),
    ],
)
def test_fast_constrained_equals_constrained_and_never_repairs(tiny64, grid, form, position):
    from text4seg.decoding import DescriptorDecoder

    config = replace(tiny64.config, grid=grid, descriptor_form=form, image_position=position)
    image_a, image_b = _images(2, seed=3)
    images = [image_a, image_b, image_a]
    decoder = DescriptorDecoder(tiny64.model, tiny64.processor, config, max_preamble_tokens=5)
    slow = decoder.generate_ids(images, PROMPTS, mode="constrained")
    fast = decoder.generate_ids(images, PROMPTS, mode="fast")
    assert [ids for ids, _ in fast] == [ids for ids, _ in slow]
    tokenizer = tiny64.processor.tokenizer
    for ids, _ in slow:
        assert ids[-1] == tokenizer.eos_token_id
        text = tokenizer.decode(ids, skip_special_tokens=True)
        decoded = decode_descriptor(text, *grid)
        assert decoded.repairs == [] and decoded.form in (form, "plain" if grid[1] == 1 else form), text
        assert set(decoded.labels.ravel()) <= {"target", "others"}
    assert sum(p for _, p in fast) < sum(len(ids) for ids, _ in fast)


def test_fast_open_labels_and_sentence_labels(tiny64):
    """fg_label "sentence": the expression is the label; free-form instructions allow any label."""
    from text4seg.decoding import DescriptorDecoder

    config = replace(tiny64.config, grid=(2, 3), descriptor_form="rle", fg_label="sentence")
    decoder = DescriptorDecoder(
        tiny64.model, tiny64.processor, config, max_preamble_tokens=3, max_label_bytes=12
    )
    image = _images(1, seed=5)[0]
    prompts = ["Segment the red circle.", "Find whatever is odd here"]
    slow = decoder.generate(2 * [image], prompts, mode="constrained")
    fast = decoder.generate(2 * [image], prompts, mode="fast")
    assert [a.text for a in fast] == [a.text for a in slow]
    first = decode_descriptor(slow[0].text, 2, 3)
    assert first.repairs == [] and set(first.labels.ravel()) <= {"the red circle", "others"}
    assert decode_descriptor(slow[1].text, 2, 3).repairs == []
    assert all(a.tokens > 0 and a.forward_passes > 0 and a.seconds >= 0 for a in fast)


@pytest.mark.parametrize("mode, grid, form", [("fast", (3, 5), "rle"), ("fast-unconstrained", (4, 4), "plain")])
def test_temporal_drafts_keep_the_tokens(tiny64, mode, grid, form):
    """previous= (the answer on the previous frame, as ids or text; or unrelated ids) never changes the tokens;
    an identical previous answer needs fewer passes."""
    from text4seg.decoding import DescriptorDecoder

    config = replace(tiny64.config, grid=grid, descriptor_form=form)
    decoder = DescriptorDecoder(tiny64.model, tiny64.processor, config, max_preamble_tokens=5)
    rng = np.random.default_rng(4)
    first = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    frames = [Image.fromarray(np.clip(first.astype(int) + 8 * k, 0, 255).astype(np.uint8)) for k in range(2)]
    prompts = [PROMPTS[0], PROMPTS[1]]
    budget = 40 if mode == "fast-unconstrained" else None
    alone = [decoder.generate_ids([f, f], prompts, mode=mode, max_new_tokens=budget) for f in frames]
    tokenizer = tiny64.processor.tokenizer
    before = [ids for ids, _ in alone[0]]
    texts = [tokenizer.decode(ids, skip_special_tokens=True) for ids in before]
    # the previous frame's answers as ids; as text; another prompt's answer and junk ids (out of the vocabulary)
    for previous in (before, texts, [before[1], [7, 3, 10**7, 0, *range(50)]]):
        got = decoder.generate_ids([frames[1]] * 2, prompts, mode=mode, max_new_tokens=budget, previous=previous)
        assert [ids for ids, _ in got] == [ids for ids, _ in alone[1]]
    own = [ids for ids, _ in alone[0]]
    again = decoder.generate_ids([frames[0]] * 2, prompts, mode=mode, max_new_tokens=budget, previous=own)
    assert [ids for ids, _ in again] == own
    assert all(p <= q for (_, p), (_, q) in zip(again, alone[0]))
    assert sum(p for _, p in again) < sum(p for _, p in alone[0])
    with pytest.raises(ValueError, match="previous"):
        decoder.generate_ids([frames[0]] * 2, prompts, mode=mode, max_new_tokens=budget, previous=own[:1])
    with pytest.raises(ValueError, match=r"previous\[1\]"):
        decoder.generate_ids([frames[0]] * 2, prompts, mode=mode, max_new_tokens=budget, previous=[None, [1.5]])


def test_cache_tidy_keeps_row_order():
    import torch
    from transformers import DynamicCache

    from text4seg.decoding.fast import _Cache

    keys = torch.arange(2 * 80, dtype=torch.float64).view(2, 1, 80, 1)
    mask = torch.zeros(2, 80, dtype=torch.long)
    mask[0, ::3] = 1
    mask[1, 40:50] = 1
    cache = DynamicCache(ddp_cache_data=[(keys.clone(), keys.clone() + 0.5)])
    state = _Cache(cache, mask)
    state.tidy()
    layer = cache.layers[0]
    assert state.mask.shape == (2, 27) and layer.keys.shape == (2, 1, 27, 1)
    assert layer.keys[0, 0, :, 0].tolist() == [float(k) for k in range(0, 80, 3)]
    assert layer.keys[1, 0, state.mask[1].bool(), 0].tolist() == [float(80 + k) for k in range(40, 50)]
    assert torch.equal(layer.values, layer.keys + 0.5)


def test_fast_unsupported_reasons(tiny64):
    from text4seg.decoding.fast import fast_unsupported

    assert fast_unsupported(tiny64.model) is None

    class Other:
        config = Text4SegConfig()  # no model_type

    assert "model type" in fast_unsupported(Other())


@pytest.mark.slow
def test_segmenter_decoding_modes_agree(tiny64):
    """Through the public API: "fast" (the default) and "constrained" give the same answers, with no repairs,
    and a fixed budget still caps the grammar modes."""
    from text4seg.decoding import HFGenerationBackend
    from text4seg.segmenter import Segmenter

    config = replace(tiny64.config, grid=(3, 4))
    image = np.random.default_rng(7).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    results = {}
    for mode in ("constrained", "fast"):
        backend = HFGenerationBackend(tiny64.model, tiny64.processor, config, decoding=mode)
        results[mode] = Segmenter(backend, config).segment(image, ["the red circle", "the blue square"])
    assert HFGenerationBackend(tiny64.model, tiny64.processor, config).decoding == "fast"
    for slow, fast in zip(results["constrained"], results["fast"]):
        assert slow.text == fast.text and slow.repairs == [] and fast.repairs == []
        assert np.array_equal(slow.mask, fast.mask) and slow.mask.shape == (40, 30)
        assert fast.tokens == slow.tokens and fast.forward_passes < slow.forward_passes
    capped = HFGenerationBackend(tiny64.model, tiny64.processor, config, decoding="fast", max_new_tokens=3)
    assert [a.tokens for a in capped.generate(Image.fromarray(image), ["Segment it."])] == [3]


def test_fast_falls_back_to_constrained_generate(tiny64):
    from text4seg.decoding import DescriptorDecoder

    config = replace(tiny64.config, grid=(2, 2))
    decoder = DescriptorDecoder(tiny64.model, tiny64.processor, config, max_preamble_tokens=2)
    image = _images(1, seed=9)[0]
    expected = decoder.generate_ids([image], ["Segment it."], mode="constrained")
    decoder.unsupported = "model type 'other'"
    assert decoder.generate_ids([image], ["Segment it."], mode="fast") == expected
    with pytest.raises(ValueError, match="fast decoding unavailable"):
        decoder.generate_ids([image], ["Segment it."], mode="fast-unconstrained", max_new_tokens=4)


def test_grammar_side_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, text4seg.decoding; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
