"""Untrusted model output at scale: mangled descriptors through the decoder, and random-logit constrained decoding.

1. ``--count`` (default 1,000,000) mangled answers — random edits, truncation, wrong/huge/negative counts,
   unicode junk (combining marks, zero-width, RTL, lone surrogates), nested and repeated tags, rows dropped or
   repeated, empty text — through :func:`text4seg.descriptors.decode_descriptor` and
   :func:`~text4seg.descriptors.referring_mask` for grids 16x16, 24x24, 32x32 and non-square ones. Counted:
   exceptions (must be 0) and results of the wrong shape (must be 0).
2. Time per byte of answers of ~1 KB and ~1 MB (a linear decoder gives a ratio near 1; quadratic would be ~1000).
3. ``--grounded-count`` (default ``--count`` / 10) mangled grounded-caption answers (``A <p>man</p> ...`` then
   a descriptor labelled by the phrases; markers broken, nested, doubled, cased or spaced besides the mangling
   above) through :func:`text4seg.grounded.decode_grounded`: exceptions, wrong shapes and inconsistent phrases
   (a span that is not its text, duplicate labels, more phrase cells than the grid) must all be 0.
4. The grammar-constrained decoder (:class:`~text4seg.decoding.vocab.TokenConstraint`) driven by random logits
   for ``--seeds`` seeds with a byte-level BPE tokenizer (the tiny tokenizer), and a SentencePiece one when
   ``sentencepiece`` is installed: every answer must decode with zero repairs.

Usage::

    python benchmarks/fuzz_decode.py                 # 1,000,000 answers (a few minutes on one core)
    python benchmarks/fuzz_decode.py --count 20000 --seeds 50
"""

from __future__ import annotations

import argparse
import random
import sys
import time

import numpy as np

from text4seg.descriptors import decode_descriptor, encode_descriptor, referring_mask, wrap_descriptor
from text4seg.grounded import decode_grounded, grounded_answer, phrase_labels

GRIDS = [(16, 16), (24, 24), (32, 32), (16, 24), (24, 16), (7, 31), (1, 50), (40, 3)]
LABELS = ["others", "man on left", "red", "the white horse", "猫", "é", "x"]
JUNK = ["|", "*", "\n", " ", "\n ", "<seg>", "</seg>", "*0", "*-3", "*99999999999999999999", "| |", "**", "\t",
        "\u0301", "\u200b", "\u202e", "\ud800", "\U0001f600", "\x00", "\r\n", "others", "*1e9", "*٣", "*³"]


def valid_answer(rng: random.Random, height: int, width: int) -> str:
    k = rng.randint(1, 3)
    labels = [LABELS[0]] + rng.sample(LABELS[1:], k)
    grid = [[rng.choice(labels) for _ in range(width)] for _ in range(height)]
    if rng.random() < 0.5:  # blobs rather than noise, as real answers
        grid = [[labels[(r // max(1, height // 3) + c // max(1, width // 2)) % len(labels)] for c in range(width)]
                for r in range(height)]
    return wrap_descriptor(encode_descriptor(grid, rle=rng.random() < 0.7), "Sure, it is here.")


def mangle(rng: random.Random, text: str) -> str:
    kind = rng.randrange(10)
    if kind == 0:  # random edits
        chars = list(text)
        for _ in range(rng.randint(1, 20)):
            pos = rng.randrange(len(chars) + 1)
            op = rng.randrange(3)
            junk = rng.choice(JUNK)
            if op == 0 or not chars:
                chars[pos:pos] = junk
            elif op == 1:
                del chars[min(pos, len(chars) - 1)]
            else:
                chars[min(pos, len(chars) - 1)] = junk
        return "".join(chars)
    if kind == 1:  # truncation
        return text[: rng.randrange(len(text) + 1)]
    if kind == 2:  # wrong counts
        parts = text.split("*")
        return "*".join(p if not p[:1].isdigit() or rng.random() < 0.5 else
                        str(rng.choice([0, -1, 1, 2, 10**rng.randint(1, 40)])) + p.lstrip("0123456789")
                        for p in parts)
    if kind == 3:  # unicode junk everywhere
        return "".join(c + (rng.choice(JUNK[13:]) if rng.random() < 0.1 else "") for c in text)
    if kind == 4:  # nested / repeated tags
        return rng.choice(["<seg>", "<seg><seg>", "</seg>", "<seg></seg>"]) + text + rng.choice(["</seg>", "<seg>", ""])
    if kind == 5:  # rows dropped or repeated
        rows = text.split("\n ")
        if rng.random() < 0.5 and len(rows) > 1:
            del rows[rng.randrange(len(rows))]
        else:
            rows[rng.randrange(len(rows)):0] = [rng.choice(rows)] * rng.randint(1, 5)
        return "\n ".join(rows)
    if kind == 6:  # random bytes decoded leniently
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 300))).decode("utf-8", "replace")
    if kind == 7:  # empty / whitespace / tags only
        return rng.choice(["", " ", "\n", "<seg>", "</seg>", "<seg></seg>", "<seg>\n</seg>", "*", "|"])
    if kind == 8:  # huge numbers and many columns
        return f"<seg>{rng.choice(LABELS)} *{10 ** rng.randint(5, 400)}" + "| x *1" * rng.randint(0, 50) + "</seg>"
    return text  # untouched: must decode exactly


def fuzz(count: int, seed: int) -> tuple[int, int, int, float]:
    rng = random.Random(seed)
    exceptions = wrong_shape = clean = 0
    bases: dict = {}
    start = time.perf_counter()
    for n in range(count):
        height, width = GRIDS[n % len(GRIDS)]
        key = (height, width, n % 97)
        if key not in bases:
            bases[key] = valid_answer(rng, height, width)
        text = mangle(rng, bases[key])
        out_hw = (height + rng.randrange(3), width * 2 + rng.randrange(5))
        try:
            decoded = decode_descriptor(text, height, width)
            mask = referring_mask(decoded.labels, out_hw)
            if decoded.labels.shape != (height, width) or mask.shape != out_hw or mask.dtype != bool:
                wrong_shape += 1
            clean += not decoded.repairs
        except Exception as err:  # noqa: BLE001 - counting them is the point
            exceptions += 1
            if exceptions <= 5:
                print(f"  exception on {text[:120]!r}: {type(err).__name__}: {err}", file=sys.stderr)
        if (n + 1) % 100_000 == 0:
            print(f"  {n + 1:,} answers, {exceptions} exceptions, {time.perf_counter() - start:.0f} s", flush=True)
    return exceptions, wrong_shape, clean, time.perf_counter() - start


MARKERS = ["<p>", "</p>", "< p >", "<P>", "</ p>", "<p><p>", "</p></p>", "<p", "p>", "</", "<seg>"]
CAPTION_WORDS = ["A", "man", "holds", "the", "white horse", "猫", "and", "a", "red", "others", "x|y", "é"]


def grounded_base(rng: random.Random, height: int, width: int) -> str:
    """A valid grounded answer: 1-3 marked phrases, their labels in blobs on the grid."""
    words = [rng.choice(CAPTION_WORDS) for _ in range(rng.randint(3, 9))]
    caption = " ".join(words) + "."
    spans, start = [], 0
    for word in words:
        if len(spans) < 3 and rng.random() < 0.4:
            spans.append((start, start + len(word)))
        start += len(word) + 1
    if not spans:
        spans = [(0, len(words[0]))]
    labels = ["others", *phrase_labels([caption[a:b] for a, b in spans])]
    grid = [[labels[(r // max(1, height // 3) + c // max(1, width // 2)) % len(labels)] for c in range(width)]
            for r in range(height)]
    return grounded_answer(caption, spans, grid, rle=rng.random() < 0.7)


def fuzz_grounded(count: int, seed: int) -> tuple[int, int, int, float]:
    """(exceptions, wrong shapes or inconsistent phrases, clean answers, seconds) of mangled grounded answers."""
    rng = random.Random(seed)
    exceptions = bad = clean = 0
    start = time.perf_counter()
    for n in range(count):
        height, width = GRIDS[n % len(GRIDS)]
        text = grounded_base(rng, height, width)
        if rng.random() < 0.5:
            chars = list(text)
            for _ in range(rng.randint(1, 6)):
                chars[rng.randrange(len(chars) + 1):0] = rng.choice(MARKERS)
            text = "".join(chars)
        text = mangle(rng, text)
        out_hw = (height + rng.randrange(3), width + rng.randrange(5))
        try:
            got = decode_grounded(text, height, width, out_hw=out_hw)
            labels = [p.label.casefold() for p in got.phrases]
            ok = (got.grid.shape == (height, width) and len(set(labels)) == len(labels)
                  and sum(p.cells for p in got.phrases) <= height * width
                  and all(p.mask.shape == out_hw and got.caption[p.start:p.end] == p.text for p in got.phrases))
            bad += not ok
            clean += not got.repairs
        except Exception as err:  # noqa: BLE001 - counting them is the point
            exceptions += 1
            if exceptions <= 5:
                print(f"  exception on {text[:120]!r}: {type(err).__name__}: {err}", file=sys.stderr)
    return exceptions, bad, clean, time.perf_counter() - start


def per_byte(size: int, repeats: int, seed: int) -> float:
    """Seconds per byte of decoding an answer of about ``size`` bytes (32 x 32 grid; rows repeated, junk mixed)."""
    rng = random.Random(seed)
    base = valid_answer(rng, 32, 32)
    body = base[base.index("<seg>") + 5: base.index("</seg>")]
    rows = body.split("\n ")
    text = "Sure.\n<seg>"
    parts = []
    length = len(text)
    while length < size:
        row = rng.choice(rows) if rng.random() < 0.9 else mangle(rng, rng.choice(rows))
        parts.append(row)
        length += len(row) + 2
    text += "\n ".join(parts) + "</seg>"
    nbytes = len(text.encode("utf-8", "surrogatepass"))
    start = time.perf_counter()
    for _ in range(repeats):
        decode_descriptor(text, 32, 32)
    return (time.perf_counter() - start) / repeats / nbytes


def constrained(seeds: int, tokenizer, name: str) -> tuple[int, int, int]:
    """(answers, answers with repairs, answers not complete) of random-logit constrained decoding."""
    from text4seg.decoding.vocab import STOP, token_constraint, token_vocab

    vocab = token_vocab(tokenizer, len(tokenizer), [tokenizer.eos_token_id])
    answers = repaired = incomplete = 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        height, width = GRIDS[seed % len(GRIDS)]
        closed = seed % 3 != 2
        labels = ["man on left"] if seed % 2 else ["red", "the white horse"]
        form = "rle" if seed % 4 else "plain"
        constraint = token_constraint(vocab, height, width, labels if closed else None, form, "others",
                                      max_preamble_tokens=int(seed % 5) * 2, max_label_bytes=24)
        state, ids = constraint.initial(), []
        for _ in range(constraint.max_tokens() + 2):
            if state[0] == STOP:
                break
            allowed = constraint.allowed(state)
            logits = rng.standard_normal(vocab.size)
            if allowed.everything:
                token = int(np.argmax(logits))
            else:
                choices = np.asarray(allowed.ids)
                token = int(choices[np.argmax(logits[choices])])
            nxt = constraint.advance(state, token)
            if nxt is None:
                break
            state = nxt
            if token not in constraint.eos:
                ids.append(token)
        answers += 1
        text = tokenizer.decode(ids, skip_special_tokens=True)
        if state[0] != STOP:
            incomplete += 1
        decoded = decode_descriptor(text, height, width)
        if decoded.repairs:
            repaired += 1
            if repaired <= 3:
                print(f"  {name} seed {seed}: {decoded.repairs[:2]} in {text[:200]!r}", file=sys.stderr)
    return answers, repaired, incomplete


def tiny_tokenizer():
    from text4seg.modeling.tokenizer import build_tiny_tokenizer

    texts = ["Sure, it is here.", "Segment the man on left.", "the white horse is red", "others *16| red *8"] * 20
    return build_tiny_tokenizer(texts, ["others", "man on left", "red", "the white horse"], vocab_size=400)


def sentencepiece_tokenizer():
    """A LLaMA-style SentencePiece tokenizer trained here on a tiny corpus, or None without sentencepiece."""
    try:
        import sentencepiece as spm
    except ImportError:
        return None
    import io
    import tempfile

    from transformers import LlamaTokenizer

    corpus = ["Sure, it is here.", "others *16| red *8\n others *4", "the white horse", "man on left"] * 200
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus), model_writer=model, vocab_size=400,
                                   byte_fallback=True, character_coverage=1.0, hard_vocab_limit=False,
                                   minloglevel=2)
    with tempfile.TemporaryDirectory() as tmp:
        with open(f"{tmp}/tokenizer.model", "wb") as handle:
            handle.write(model.getvalue())
        tokenizer = LlamaTokenizer.from_pretrained(tmp, legacy=True)
    return tokenizer if len(tokenizer) > 100 else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="mangled answers (default: 1,000,000)")
    parser.add_argument("--grounded-count", type=int, default=None,
                        help="mangled grounded-caption answers (default: --count / 10)")
    parser.add_argument("--seeds", type=int, default=300, help="constrained-decoding seeds (default: 300)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mangling (default: 0)")
    args = parser.parse_args(argv)

    print(f"fuzz: {args.count:,} mangled answers, grids {', '.join(f'{h}x{w}' for h, w in GRIDS)}")
    exceptions, wrong, clean, seconds = fuzz(args.count, args.seed)
    print(f"fuzz: {exceptions} exceptions, {wrong} results of the wrong shape, {clean:,} decoded without repairs, "
          f"{seconds:.0f} s ({1e6 * seconds / max(args.count, 1):.1f} us per answer)")
    grounded = args.count // 10 if args.grounded_count is None else args.grounded_count
    g_exceptions, g_bad, g_clean, g_seconds = fuzz_grounded(grounded, args.seed)
    print(f"fuzz grounded: {grounded:,} mangled grounded captions, {g_exceptions} exceptions, {g_bad} wrong shapes or "
          f"inconsistent phrases, {g_clean:,} decoded without repairs, {g_seconds:.0f} s")
    small = per_byte(1_000, 2000, 1)
    large = per_byte(1_000_000, 3, 1)
    print(f"scaling: {1e9 * small:.1f} ns/byte at 1 KB, {1e9 * large:.1f} ns/byte at 1 MB "
          f"(ratio {large / small:.2f}; linear = about 1)")
    failures = exceptions + wrong + g_exceptions + g_bad
    for name, build in (("byte-level BPE (tiny)", tiny_tokenizer), ("SentencePiece", sentencepiece_tokenizer)):
        tokenizer = build()
        if tokenizer is None:
            print(f"constrained, {name}: skipped (sentencepiece is not installed, or transformers could not build "
                  "a tokenizer from its model)")
            continue
        answers, repaired, incomplete = constrained(args.seeds, tokenizer, name)
        failures += repaired + incomplete
        print(f"constrained, {name}: {answers} random-logit answers, {repaired} with repairs, "
              f"{incomplete} incomplete")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
