"""Descriptor codec benchmark: throughput of mask -> text and text -> mask, and R-RLE length saving.

Corpus (generated in memory, seeded): binary referring masks of five kinds (blobs, thin lines, several
objects, full, empty) at five image sizes, plus multi-class semantic label maps. For 16/24/32 grids it prints
masks/s for ``mask_to_grid`` + ``encode_descriptor`` and for ``decode_descriptor`` + ``referring_mask``, and the
length saving of R-RLE over the plain form in characters and in tokens: under the project's tiny tokenizer
(``text4seg.tokenizer.build_tiny_tokenizer``, one token per plain cell) and under a byte-level BPE trained here
with ``tokenizers`` on descriptor text of both forms. One line per figure; the last line is one JSON object of
all figures (savings are fractions: 1 - rle / plain).

Usage: ``python benchmarks/codec.py [--seed 0] [--per-kind 4] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np

from text4seg.descriptors import (
    LabelMap,
    binary_grid_labels,
    decode_descriptor,
    encode_descriptor,
    grid_to_mask,
    ids_to_labels,
    mask_to_grid,
    referring_mask,
    wrap_descriptor,
)

GRIDS = (16, 24, 32)
IMAGE_SIZES = ((240, 320), (375, 500), (480, 640), (512, 512), (768, 1024))  # (H, W)
KINDS = ("blob", "thin", "multi", "full", "empty")
EXPRESSIONS = (
    "white horse",
    "the man in the red shirt",
    "left elephant",
    "bowl of soup on the right",
    "person holding an umbrella",
    "giraffe closest to the camera",
    "the smaller of the two dogs, lying down",
    "car",
)
CLASSES = ("wall", "sky", "tree", "road", "building", "grass", "person", "car", "mountain", "water", "floor")


# --------------------------------------------------------------------------------------------------------------
# corpus


def _ellipse(h: int, w: int, rng: np.random.Generator, scale: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
    ry, rx = (rng.uniform(0.3, 1.0, 2) * scale * np.array([h, w])).clip(2.0)
    a = rng.uniform(0, np.pi)
    dy, dx = yy - cy, xx - cx
    u, v = dx * np.cos(a) + dy * np.sin(a), -dx * np.sin(a) + dy * np.cos(a)
    return (u / rx) ** 2 + (v / ry) ** 2 <= 1.0


def _line(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    p = np.array([rng.uniform(0, h), rng.uniform(0, w)])
    q = np.array([rng.uniform(0, h), rng.uniform(0, w)])
    d = q - p
    t = np.clip(((yy - p[0]) * d[0] + (xx - p[1]) * d[1]) / max(float(d @ d), 1e-9), 0, 1)
    dist = np.hypot(yy - (p[0] + t * d[0]), xx - (p[1] + t * d[1]))
    return dist <= rng.uniform(0.5, 3.0)  # 1 to 6 pixels wide: a pole, a leash, a ski


def make_mask(kind: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """One (h, w) bool mask of the given kind."""
    if kind == "full":
        return np.ones((h, w), dtype=bool)
    if kind == "empty":
        return np.zeros((h, w), dtype=bool)
    if kind == "blob":  # an irregular object: overlapping ellipses around one place
        m = _ellipse(h, w, rng, 0.25)
        ys, xs = np.nonzero(m)
        for _ in range(3):
            sub = np.random.default_rng(rng.integers(2**32))
            part = _ellipse(h, w, sub, 0.12)
            m |= np.roll(part, (int(ys.mean() - h / 2) // 3, int(xs.mean() - w / 2) // 3), axis=(0, 1))
        return m
    if kind == "thin":
        m = _line(h, w, rng)
        if rng.random() < 0.5:
            m |= _line(h, w, rng)
        return m
    if kind == "multi":  # several separate instances ("all the people")
        m = np.zeros((h, w), dtype=bool)
        for _ in range(int(rng.integers(2, 5))):
            m |= _ellipse(h, w, rng, 0.1)
        return m
    raise ValueError(f"kind {kind!r}")


def make_label_map(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """(h, w) int64 semantic label map: Voronoi regions of 3-8 classes with a few small objects on top."""
    k = int(rng.integers(3, 9))
    classes = rng.choice(len(CLASSES), size=k, replace=False)
    seeds = rng.uniform(0, 1, (k, 2)) * [h, w]
    yy, xx = np.mgrid[0:h, 0:w]
    dist = (yy[None] - seeds[:, 0, None, None]) ** 2 + (xx[None] - seeds[:, 1, None, None]) ** 2
    out = classes[np.argmin(dist, axis=0)].astype(np.int64)
    for _ in range(int(rng.integers(0, 4))):
        out[_ellipse(h, w, rng, 0.06)] = int(rng.integers(len(CLASSES)))
    return out


def build_corpus(seed: int, per_kind: int) -> tuple[list[tuple[str, np.ndarray, str]], list[np.ndarray]]:
    """Referring items (kind, mask, expression) and semantic label maps, deterministic by seed."""
    rng = np.random.default_rng(seed)
    referring = []
    for h, w in IMAGE_SIZES:
        for kind in KINDS:
            for _ in range(per_kind):
                expression = EXPRESSIONS[int(rng.integers(len(EXPRESSIONS)))]
                referring.append((kind, make_mask(kind, h, w, rng), expression))
    semantic = [make_label_map(h, w, rng) for h, w in IMAGE_SIZES for _ in range(per_kind)]
    return referring, semantic


# --------------------------------------------------------------------------------------------------------------
# measurements


def masks_per_second(fn: Callable[[], int], repeat: int) -> float:
    """Best of ``repeat`` runs of ``fn`` (which returns how many masks it handled)."""
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        n = fn()
        best = max(best, n / max(time.perf_counter() - start, 1e-9))
    return best


def saving(rle: Sequence[int], plain: Sequence[int]) -> float:
    return 1.0 - float(sum(rle)) / float(sum(plain))


def token_counters(texts: Sequence[str], labels: Sequence[str]) -> dict[str, Callable[[Sequence[str]], list[int]]]:
    """Token counters: a byte-level BPE trained here and, when importable, the project's tiny tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=4096, min_frequency=2, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    bpe.train_from_iterator(texts, trainer)
    counters: dict[str, Callable[[Sequence[str]], list[int]]] = {
        "bpe": lambda batch: [len(e.ids) for e in bpe.encode_batch(list(batch))],
    }
    try:
        from text4seg.modeling.tokenizer import build_tiny_tokenizer
    except ImportError:
        return counters
    tiny = build_tiny_tokenizer(texts, labels)
    counters["project"] = lambda batch: [len(ids) for ids in tiny(list(batch), add_special_tokens=False)["input_ids"]]
    return counters


def run(seed: int = 0, per_kind: int = 4, repeat: int = 3) -> dict[str, float]:
    """Measure every figure; print one line each and return them."""
    figures: dict[str, float] = {}

    def report(key: str, value: float, line: str) -> None:
        figures[key] = round(value, 4) if abs(value) < 100 else round(value, 1)
        print(line.format(value), flush=True)

    referring, semantic = build_corpus(seed, per_kind)
    print(f"corpus: {len(referring)} referring masks ({', '.join(KINDS)}), {len(semantic)} semantic label maps, "
          f"image sizes {', '.join(f'{h}x{w}' for h, w in IMAGE_SIZES)}", flush=True)

    texts: dict[tuple[int, str], list[str]] = {}  # (grid, form) -> descriptors of the referring corpus
    for g in GRIDS:
        rle = [encode_descriptor(binary_grid_labels(mask_to_grid(m, g, g), e)) for _, m, e in referring]
        plain = [encode_descriptor(binary_grid_labels(mask_to_grid(m, g, g), e), rle=False) for _, m, e in referring]
        texts[(g, "rle")], texts[(g, "plain")] = rle, plain
        answers = [wrap_descriptor(t, "Sure, here is the segmentation mask.") for t in rle]
        shapes = [m.shape for _, m, _ in referring]

        def encode(mode: str, g: int = g) -> int:
            for _, m, e in referring:
                encode_descriptor(binary_grid_labels(mask_to_grid(m, g, g, mode=mode), e))
            return len(referring)

        def decode(mode: str, g: int = g, answers: list[str] = answers, shapes: list = shapes) -> int:
            for text, hw in zip(answers, shapes):
                referring_mask(decode_descriptor(text, g, g).labels, hw, mode=mode)
            return len(answers)

        for mode in ("nearest", "area"):
            report(f"encode_{mode}_{g}_masks_per_s", masks_per_second(lambda m=mode: encode(m), repeat),
                   f"mask_to_grid({mode}) + encode_descriptor, {g}x{g}: {{:.1f}} masks/s")
        for mode in ("nearest", "smooth"):
            report(f"decode_{mode}_{g}_masks_per_s", masks_per_second(lambda m=mode: decode(m), repeat),
                   f"decode_descriptor + referring_mask({mode}), {g}x{g}: {{:.1f}} masks/s")

    # Semantic maps at the semantic grid size (32): class names as labels, LabelMap back to ids.
    label_map = LabelMap(CLASSES)
    sem_rle = [encode_descriptor(ids_to_labels(mask_to_grid(m, 32, 32), CLASSES)) for m in semantic]
    sem_plain = [encode_descriptor(ids_to_labels(mask_to_grid(m, 32, 32), CLASSES), rle=False) for m in semantic]

    def sem_roundtrip() -> int:
        for m, text in zip(semantic, sem_rle):
            grid_to_mask(decode_descriptor(text, 32, 32).labels, label_map, m.shape)
        return len(semantic)

    report("semantic_decode_nearest_32_masks_per_s", masks_per_second(sem_roundtrip, repeat),
           "decode_descriptor + grid_to_mask(nearest, LabelMap), semantic 32x32: {:.1f} maps/s")

    def lengths(counter: Callable[[Sequence[str]], list[int]] | None, batch: list[str]) -> list[int]:
        return [len(t) for t in batch] if counter is None else counter(batch)

    all_texts = [t for batch in texts.values() for t in batch] + sem_rle + sem_plain
    counters = token_counters(all_texts, sorted(set(EXPRESSIONS) | set(CLASSES)))
    units = [("char", None, "characters")] + [
        (f"token_{name}", counter, f"tokens ({'project tiny tokenizer' if name == 'project' else 'BPE 4096'})")
        for name, counter in counters.items()
    ]
    totals: dict[str, tuple[list[int], list[int]]] = {}
    for unit, counter, words in units:
        all_rle: list[int] = []
        all_plain: list[int] = []
        for g in GRIDS:
            rle, plain = lengths(counter, texts[(g, "rle")]), lengths(counter, texts[(g, "plain")])
            all_rle += rle
            all_plain += plain
            report(f"rle_{unit}_saving_{g}", saving(rle, plain),
                   f"R-RLE vs plain, referring {g}x{g}, {words}: {{:.1%}} shorter "
                   f"(mean {np.mean(rle):.0f} vs {np.mean(plain):.0f})")
        rle, plain = lengths(counter, sem_rle), lengths(counter, sem_plain)
        report(f"rle_{unit}_saving_semantic_32", saving(rle, plain),
               f"R-RLE vs plain, semantic 32x32, {words}: {{:.1%}} shorter (mean {np.mean(rle):.0f} vs "
               f"{np.mean(plain):.0f})")
        totals[unit] = (all_rle + rle, all_plain + plain)

    report("rle_char_saving", saving(*totals["char"]), "R-RLE vs plain, whole corpus, characters: {:.1%} shorter")
    token_unit = "token_project" if "token_project" in totals else "token_bpe"
    report("rle_token_saving", saving(*totals[token_unit]),
           f"R-RLE vs plain, whole corpus, tokens ({token_unit[6:]}): {{:.1%}} shorter")
    if token_unit != "token_bpe":
        report("rle_token_saving_bpe", saving(*totals["token_bpe"]),
               "R-RLE vs plain, whole corpus, tokens (BPE 4096): {:.1%} shorter")
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-kind", type=int, default=4, help="masks per kind and image size")
    parser.add_argument("--repeat", type=int, default=3, help="timing runs; the best is kept")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    figures = run(args.seed, args.per_kind, args.repeat)
    figures["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
