"""Decoding benchmark: plain vs constrained vs fast (constrained + shared prefix + row-copy speculation).

On a trained model (default ``runs/quickstart/model``, the quickstart's tiny model; random weights do not
produce realistic rows), over held-out synthetic images (a fresh seeded split; every expression of every shape
is one query, all queries about an image go in one call as :class:`text4seg.Segmenter` does), it runs the three
decoding modes image by image (interleaved, so machine load hits all three alike) after one warm-up image, and
prints per mask the forward passes, generated tokens and wall time of each mode and whether the masks agree,
then totals, the ratios (a)/(c), and the repairs. It also measures the grammar's own cost per token
(allowed set + state update), cached and uncached, for the tiny vocabulary and a 32k byte-level BPE, and how
many tokens per forward pass the fast loop's drafts would give if the model's answers were the ground-truth
descriptors of the same images (16/32 grids, plain/R-RLE, both tokenizers): a model-independent figure.

Forward passes per mask: plain and constrained ``generate`` count the steps of the batch the mask was in
(one per new token of the longest answer); fast counts the passes the row took part in, the prefill passes
included. Wall time per mask: the batch's wall time divided by its masks.

Identity: (c) must give the tokens of (b) exactly (``constrained_equals_fast``) and the mask of (a) wherever the
plain answer is a well-formed descriptor; where (a) is malformed (decoded with repairs) the grammar made (b) and
(c) differ from it by design. ``identical`` is true when both hold for every mask; ``plain_malformed`` counts
the masks where (a) needed repairs and ``identical_to_plain`` tells whether (c) equals (a) even there.

The last line printed is one JSON object: ``forward_pass_ratio`` and ``wall_ratio`` ((a)/(c)), ``identical``,
``repairs_constrained`` ((b) + (c)), and the other figures.

Per backbone (``--arch llava qwen2-vl qwen2.5-vl internvl``): for each family a tiny model built from configs
(random weights, so answers are grammar-forced rather than learned), constrained ``generate`` (b) against fast
(c) on the same prompts, printing per architecture whether fast runs or falls back (and why), (b) == (c), and
the forward-pass and wall ratios (b)/(c); the last line is one JSON object keyed by architecture.

Usage: ``python benchmarks/decoding.py [--model runs/quickstart/model] [--queries 50] [--seed 1]
[--data ROOT --split NAME] [--threads 1]`` or ``python benchmarks/decoding.py --arch qwen2-vl internvl``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

MODES = ("plain", "constrained", "fast")


def _queries(root: Path, split: str, wanted: int) -> list[tuple[str, list[str]]]:
    """(image path, expressions) per image, images in order, until ``wanted`` queries (plus one warm-up)."""
    from text4seg.datasets.synthetic import read_synthetic

    per_image: dict[str, list[str]] = defaultdict(list)
    for sample in read_synthetic(root, split):
        per_image[str(root / sample.image)].extend(sample.expressions)
    out, total = [], 0
    for path, expressions in per_image.items():
        out.append((path, expressions))
        if len(out) > 1:
            total += len(expressions)
        if total >= wanted:
            break
    return out


def _overhead(tokenizer, grid: int = 32, form: str = "rle") -> dict:
    """Grammar cost per token: walk a realistic descriptor through the constraint, first uncached then cached."""
    from text4seg.decoding import token_constraint, token_vocab
    from text4seg.descriptors import encode_descriptor

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:grid, 0:grid]
    labels = np.full((grid, grid), "others", dtype=object)
    for _ in range(3):
        cy, cx, r = rng.integers(4, grid - 4, 2).tolist() + [int(rng.integers(3, grid // 3))]
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = "white horse"
    text = "Sure, here it is.\n<seg>" + encode_descriptor(labels, rle=form == "rle") + "</seg>"
    ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"] + [tokenizer.eos_token_id]
    vocab = token_vocab(tokenizer, len(tokenizer), [tokenizer.eos_token_id])
    figures = {}
    for name in ("uncached", "cached"):
        if name == "uncached":
            constraint = token_constraint(vocab, grid, grid, ["white horse"], form, "others", 64)
            constraint._allowed.clear()
            constraint._forced.clear()
        start = time.perf_counter()
        state = constraint.initial()
        for token in ids:
            assert token in constraint.allowed(state).members
            state = constraint.advance(state, token)
        figures[name] = (time.perf_counter() - start) / len(ids) * 1e6
    assert state == ("X",)
    return {
        "tokens": len(ids),
        "us_per_token_uncached": figures["uncached"],
        "us_per_token_cached": figures["cached"],
    }


def _oracle(tokenizer, samples, grid: int, form: str, sentence_labels: bool, max_draft: int) -> dict:
    """Forward passes the fast loop needs when the model's greedy answer is the ground-truth descriptor.

    Simulates draft verification with the real :class:`text4seg.decoding.Drafter` and grammar: a draft token
    is accepted while it equals the ground truth, plus one token per pass. Independent of model quality, so it
    shows what row copy gives on realistic masks.
    """
    from text4seg.decoding import Drafter, token_constraint, token_vocab
    from text4seg.descriptors import (
        binary_grid_labels,
        encode_descriptor,
        mask_to_grid,
        sanitize_label,
        wrap_descriptor,
    )

    vocab = token_vocab(tokenizer, len(tokenizer), [tokenizer.eos_token_id])
    tokens_total = passes_total = 0
    for sample in samples:
        label = sanitize_label(sample.expressions[0]) if sentence_labels else "target"
        ids = mask_to_grid(sample.mask, grid, grid)
        answer = wrap_descriptor(
            encode_descriptor(binary_grid_labels(ids, label), rle=form == "rle"), "Sure."
        )
        truth = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        constraint = token_constraint(vocab, grid, grid, [label], form, "others", 64)
        drafter = Drafter(constraint, True, prompt=[], max_draft=max_draft)
        drafter.push(truth[0])
        done, passes = 1, 1
        while done < len(truth):
            draft, _ = drafter.draft()
            m = 0
            while m < len(draft) and done + m < len(truth) and draft[m] == truth[done + m]:
                m += 1
            for token in truth[done : done + m + 1]:
                drafter.push(token)
            done += m + 1
            passes += 1
        tokens_total += len(truth)
        passes_total += passes
    n = max(len(samples), 1)
    return {"tokens_per_mask": tokens_total / n, "passes_per_mask": passes_total / n}


def _big_tokenizer():
    """A 32k byte-level BPE trained here on this repository's Python sources (stands in for a 7B vocabulary)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = [p.read_text(encoding="utf-8", errors="ignore") for p in Path(__file__).parents[1].rglob("*.py")]
    texts += [p.read_text(encoding="utf-8", errors="ignore") for p in Path(np.__file__).parent.rglob("*.py")]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=32000,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    tok.add_tokens(["<seg>", "</seg>"])
    return tok


def _per_arch(archs: list[str], queries: int, seed: int, threads: int) -> int:
    """constrained vs fast per backbone family, on tiny random models (see the module docstring)."""
    import torch
    from PIL import Image

    from text4seg.decoding import DescriptorDecoder
    from text4seg.modeling import build_tiny_model, load_model
    from text4seg.modeling.tiny import TINY_ARCHS

    unknown = sorted(set(archs) - set(TINY_ARCHS))
    if unknown:
        print(f"--arch {', '.join(unknown)}: expected one of {', '.join(TINY_ARCHS)}", file=sys.stderr)
        return 2
    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    per_image = 3
    images = [Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
              for _ in range(max(1, queries // per_image))]
    prompts = ["Segment the red circle.", "Segment the blue square on the left.", "Segment the small star."]
    summary = {}
    print(f"{len(images) * per_image} queries on {len(images)} images per architecture (tiny random models, "
          f"grid 8x8 plain, fp32, torch threads {torch.get_num_threads()})")
    print(f"{'arch':12} {'fast':36} {'b==c':5} {'passes b/c':>11} {'wall b/c':>9}")
    with tempfile.TemporaryDirectory(prefix="t4s_bench_arch_") as tmp:
        for arch in archs:
            path = build_tiny_model(Path(tmp) / arch, texts=prompts, labels=["target"], arch=arch, grid=8,
                                    patch_size=4, vision_hidden=32, vision_layers=1, text_hidden=64, text_layers=2,
                                    heads=2, vocab_size=400, max_positions=512, image_position="before")
            loaded = load_model(path, device="cpu", dtype="float32")
            decoder = DescriptorDecoder(loaded.model, loaded.processor, loaded.config, max_preamble_tokens=4)
            totals = {"constrained": [0, 0.0], "fast": [0, 0.0]}
            same = True
            for k, image in enumerate([images[0], *images]):
                out = {}
                for mode in ("constrained", "fast"):
                    began = time.perf_counter()
                    out[mode] = decoder.generate_ids([image] * per_image, prompts, mode=mode)
                    if k:  # the first image warms up
                        totals[mode][0] += max(p for _, p in out[mode]) if mode == "constrained" else sum(
                            p for _, p in out[mode]) / per_image
                        totals[mode][1] += time.perf_counter() - began
                same &= [i for i, _ in out["constrained"]] == [i for i, _ in out["fast"]]
            passes = totals["constrained"][0] / max(totals["fast"][0], 1e-9)
            wall = totals["constrained"][1] / max(totals["fast"][1], 1e-9)
            status = "runs" if decoder.unsupported is None else f"falls back: {decoder.unsupported}"
            print(f"{arch:12} {status[:36]:36} {'yes' if same else 'NO':5} {passes:10.2f}x {wall:8.2f}x")
            summary[arch] = {"fast": decoder.unsupported is None, "fallback": decoder.unsupported,
                             "constrained_equals_fast": same, "forward_pass_ratio": round(passes, 3),
                             "wall_ratio": round(wall, 3)}
    print(json.dumps(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="trained model dir (default runs/quickstart/model)")
    parser.add_argument("--queries", type=int, default=50, help="queries to measure (>= 50 for the figures)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the held-out synthetic split")
    parser.add_argument("--images", type=int, default=60, help="images generated for the split")
    parser.add_argument(
        "--data", default=None, help="existing synthetic data root (default: generate a split)"
    )
    parser.add_argument("--split", default="val", help="split of --data to read (default val)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1: steadier on a shared box)"
    )
    parser.add_argument("--no-overhead", action="store_true", help="skip the grammar-overhead measurement")
    parser.add_argument("--arch", nargs="+", default=None, metavar="ARCH",
                        help="per-backbone comparison on tiny random models: llava, qwen2-vl, qwen2.5-vl, internvl")
    args = parser.parse_args(argv)
    if args.arch:
        return _per_arch(args.arch, args.queries, args.seed, args.threads)

    import torch

    from text4seg.datasets.synthetic import generate_synthetic
    from text4seg.decoding import HFGenerationBackend
    from text4seg.images import load_image
    from text4seg.modeling import load_model
    from text4seg.segmenter import Segmenter

    model_dir = Path(args.model or "runs/quickstart/model")
    if not (model_dir / "config.json").is_file():
        print(
            f"{model_dir}: no trained model. Train one first, e.g. `text4seg quickstart` (writes "
            "runs/quickstart/model), and pass --model DIR.",
            file=sys.stderr,
        )
        return 2
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    loaded = load_model(model_dir, device="cpu", dtype="float32")
    config = loaded.config
    pixels = config.image_size[0] if config.image_size else 64
    print(
        f"model {model_dir}: grid {config.height}x{config.width}, {config.descriptor_form} descriptors, "
        f"fg label {config.fg_label!r}, image {config.image_position} the question; torch threads "
        f"{torch.get_num_threads()}"
    )

    tmp = tempfile.TemporaryDirectory(prefix="t4s_bench_decoding_")
    if args.data:
        root, split = Path(args.data), args.split
    else:
        root, split = Path(tmp.name), "bench"
        generate_synthetic(root, split, num_images=args.images, image_size=pixels, seed=args.seed)
    items = _queries(root, split, args.queries)
    print(f"data: {root} split {split!r}")
    segmenters = {
        mode: Segmenter(HFGenerationBackend(loaded.model, loaded.processor, config, decoding=mode), config)
        for mode in MODES
    }
    results: dict[str, list] = {mode: [] for mode in MODES}
    queries: list[str] = []
    batches: list[list[int]] = []  # indices of the masks of each measured image
    print(f"{sum(len(q) for _, q in items[1:])} queries on {len(items) - 1} images (+1 warm-up image)")
    print(
        f"{'mask':>4} {'query':30} | {'plain: passes tok ms':>22} | {'constrained':>18} | {'fast':>18} | b=c a=c"
    )
    for n, (path, expressions) in enumerate(items):
        image = load_image(path)
        answers = {}
        for mode in MODES:
            answers[mode] = segmenters[mode].segment(image, expressions)
        if n == 0:
            continue  # warm-up
        batches.append(list(range(len(queries), len(queries) + len(expressions))))
        for k, query in enumerate(expressions):
            row = {mode: answers[mode][k] for mode in MODES}
            same_bc = row["constrained"].text == row["fast"].text
            same_ac = np.array_equal(row["plain"].mask, row["fast"].mask)
            note = "" if same_ac or not row["plain"].repairs else " (plain malformed)"
            cells = " | ".join(
                f"{r.forward_passes:5d} {r.tokens:5d} {r.seconds * 1000:7.1f}"
                for r in (row[m] for m in MODES)
            )
            print(
                f"{len(queries):4d} {query[:30]:30} | {cells} | {'yes' if same_bc else 'NO':3} "
                f"{'yes' if same_ac else 'NO'}{note}"
            )
            queries.append(query)
            for mode in MODES:
                results[mode].append(row[mode])

    totals = {
        mode: {
            "forward_passes": sum(r.forward_passes for r in results[mode]),
            "tokens": sum(r.tokens for r in results[mode]),
            "seconds": sum(r.seconds for r in results[mode]),
            "repairs": sum(len(r.repairs) for r in results[mode]),
        }
        for mode in MODES
    }
    triples = list(zip(results["plain"], results["constrained"], results["fast"]))
    same_text = all(b.text == c.text and np.array_equal(b.mask, c.mask) for _, b, c in triples)
    plain_malformed = sum(1 for a, _, _ in triples if a.repairs)
    identical_to_plain = all(np.array_equal(a.mask, c.mask) for a, _, c in triples)
    identical = same_text and all(np.array_equal(a.mask, c.mask) for a, _, c in triples if not a.repairs)
    for mode in MODES:
        t = totals[mode]
        n = max(len(results[mode]), 1)
        print(
            f"{mode:12} passes/mask {t['forward_passes'] / n:7.1f}  tokens/mask {t['tokens'] / n:7.1f}  "
            f"ms/mask {t['seconds'] / n * 1000:8.1f}  repairs {t['repairs']}"
        )
    a, b, c = (totals[m] for m in MODES)
    forward_pass_ratio = a["forward_passes"] / max(c["forward_passes"], 1)
    wall_ratio = a["seconds"] / max(c["seconds"], 1e-9)
    # wall time per generate step (one forward pass of a batch): the cost of the grammar mask in (b) over (a)
    step_ms = {}
    for mode in ("plain", "constrained"):
        seconds = steps = 0.0
        for k in range(len(batches)):
            first = results[mode][batches[k][0]]
            seconds += sum(results[mode][i].seconds for i in batches[k])
            steps += first.forward_passes
        step_ms[mode] = seconds / max(steps, 1) * 1000
    print(
        f"(a)/(c): forward passes x{forward_pass_ratio:.2f}, wall time x{wall_ratio:.2f}; "
        f"(a)/(b) wall x{a['seconds'] / max(b['seconds'], 1e-9):.2f}; (c) == (b): {same_text}; "
        f"(c) == (a) on well-formed plain answers: {identical}; plain malformed: {plain_malformed}, "
        f"(c) == (a) everywhere: {identical_to_plain}"
    )
    overhead = {}
    if not args.no_overhead:
        overhead["tiny_vocab_rle_32"] = _overhead(loaded.processor.tokenizer, 32, "rle")
        overhead["tiny_vocab_plain_32"] = _overhead(loaded.processor.tokenizer, 32, "plain")
        big = _big_tokenizer()
        overhead["bpe32k_rle_32"] = _overhead(big, 32, "rle")
        overhead["bpe32k_plain_32"] = _overhead(big, 32, "plain")
        for name, fig in overhead.items():
            print(
                f"grammar cost {name}: {fig['us_per_token_cached']:.1f} us/token cached, "
                f"{fig['us_per_token_uncached']:.1f} us/token with cold caches ({fig['tokens']} tokens)"
            )
    oracle = {}
    if not args.no_overhead:
        from text4seg.datasets.synthetic import read_synthetic

        samples = list(read_synthetic(root, split))[: max(args.queries, 50)]
        for name, tok, sentence in (("tiny", loaded.processor.tokenizer, False), ("bpe32k", big, True)):
            for grid in (16, 32):
                for form in ("plain", "rle"):
                    fig = _oracle(tok, samples, grid, form, sentence, grid + 8)
                    key = f"{name}_{form}_{grid}"
                    oracle[key] = round(fig["tokens_per_mask"] / fig["passes_per_mask"], 2)
                    print(
                        f"ground-truth answers, {key}: {fig['tokens_per_mask']:.1f} tokens/mask in "
                        f"{fig['passes_per_mask']:.1f} passes (x{oracle[key]:.2f})"
                    )
    print(
        f"wall per generate step: plain {step_ms['plain']:.2f} ms, constrained {step_ms['constrained']:.2f} ms "
        f"({(step_ms['constrained'] - step_ms['plain']) * 1000:+.0f} us for the grammar mask)"
    )
    summary = {
        "model": str(model_dir),
        "queries": len(queries),
        "images": len(items) - 1,
        "forward_passes": {m: totals[m]["forward_passes"] for m in MODES},
        "tokens": {m: totals[m]["tokens"] for m in MODES},
        "seconds": {m: round(totals[m]["seconds"], 3) for m in MODES},
        "forward_pass_ratio": round(forward_pass_ratio, 3),
        "wall_ratio": round(wall_ratio, 3),
        "identical": identical,
        "constrained_equals_fast": same_text,
        "plain_malformed": plain_malformed,
        "identical_to_plain": identical_to_plain,
        "repairs_plain": a["repairs"],
        "repairs_constrained": b["repairs"] + c["repairs"],
        "step_ms": {k: round(v, 3) for k, v in step_ms.items()},
        "grammar_overhead_us_per_token": {k: round(v["us_per_token_cached"], 2) for k, v in overhead.items()},
        "ground_truth_tokens_per_pass": oracle,
    }
    tmp.cleanup()
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
