"""Class-list chunking vs one prompt on a large vocabulary: prompt tokens, forward passes, seconds and mIoU per
image of ``eval semantic-seg`` on a small ADE-847-format set (one run; CPU).

    python benchmarks/class_chunks.py --images 4 --chunks 0,424,212,100

The set is written to a temporary folder in the real layout (``ADE20K_2021_17_01/``: ``class_names.txt`` with
847 synthetic names, uint16 ``.tif`` label maps with 65535 on an ignored border, ``.jpg`` images; ``--dataset
pc459`` writes PASCAL-Context-459 instead). The model is a tiny LLaVA built from config with random weights
(``build_tiny_model``: one cell token per class name, 8 x 8 grid): untrained, so mIoU is at chance level for
every form and only the cost figures mean something. ``--chunks`` lists the chunk sizes; 0 is one prompt with
every class. Forward passes are counted by a hook on the model (each batched call counts once), and include the
teacher-forced label-scoring pass per chunk answer that chunking adds. Each form answers one warm-up image first
(one-time costs such as building the grammar of each class list are left out); each form runs ``--repeat``
times and the fastest run counts, in wall seconds and in this process's CPU seconds (one torch thread: steadier
than wall time on a shared machine). Ratios are against the single prompt.
The last line is one JSON object of all figures.

With ``--train-minutes M`` the model is trained first, so mIoU means something too:

    python benchmarks/class_chunks.py --train-minutes 6.5 --classes 64 --train-classes 16 --train-images 4000 \
        --images 16 --chunks 0,16,32 --repeat 1

A training split (``--train-images``) is written in the same layout and colour coding (a quadrant's colour is a
fixed function of its class id, so colour -> name is learnable), with only the first ``--classes`` K names in
the label maps. Its items come from the library's builder (:func:`text4seg.items.semantic_items`, whole
images, the model's 8 x 8 plain grid): each question lists a seeded random subset of at most
``--train-classes`` names (present classes plus absent distractors, shuffled; ``partial`` and ``condition``
families) and the answer labels only the listed classes (the rest ``others``). The model of ``build_model``
is trained with the tiny recipe (:func:`text4seg.presets.tiny_train_config`, no curriculum: the grid is
already 8 x 8) for M minutes on every core, then each form segments the validation images with all K classes
(``Segmenter.segment(classes=..., chunk_size=...)``) and is scored with :class:`text4seg.metrics.
SemanticSegMeter` (mIoU over the classes in prediction or ground truth, ``others`` left out; chance is about
``100 / K`` % pixel accuracy). The costs are measured as without training.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

_SYLLABLES = ("ba", "ko", "mi", "ru", "te", "sa", "lo", "ne", "vi", "da", "po", "gu", "fe", "zi", "ha", "wo")
_GRID = 8


def synthetic_names(num: int, seed: int = 0) -> list[str]:
    """``num`` unique pseudo-words of 2-4 syllables (some two-word names), seeded."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < num:
        word = "".join(rng.choice(_SYLLABLES, size=int(rng.integers(2, 5))))
        if rng.random() < 0.2:
            word += " " + "".join(rng.choice(_SYLLABLES, size=2))
        if word not in seen:
            seen.add(word)
            out.append(word)
    return out


def write_dataset(root: Path, dataset: str, names: list[str], images: int, size: int, seed: int,
                  split: str = "validation", classes: int | None = None) -> None:
    """The detectron2 layout of ``dataset`` (ade847 / pc459) with ``images`` images of ``split``: four quadrants
    of random classes each (among the first ``classes`` names; default all), a 4-pixel ignored (65535) border."""
    from PIL import Image

    from text4seg.datasets.large_vocab import LARGE_VOCAB_DATASETS

    base, image_dir, ann_dir, _ = LARGE_VOCAB_DATASETS[dataset]
    (root / base / ann_dir / split).mkdir(parents=True, exist_ok=True)
    (root / base / image_dir / split).mkdir(parents=True, exist_ok=True)
    (root / base / "class_names.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    rng = np.random.default_rng(seed)
    half = size // 2
    for k in range(images):
        raw = np.zeros((size, size), dtype=np.uint16)
        for (y, x), value in zip(((0, 0), (0, 1), (1, 0), (1, 1)), rng.choice(classes or len(names), 4,
                                                                                  replace=False)):
            raw[y * half : (y + 1) * half, x * half : (x + 1) * half] = value
        raw[:4], raw[-4:], raw[:, :4], raw[:, -4:] = 65535, 65535, 65535, 65535
        colors = (np.arange(65536, dtype=np.uint32)[:, None] * np.array([37, 91, 53]) % 256).astype(np.uint8)
        stem = f"{split[:5]}_{k}" if split != "validation" else f"val_{k}"
        Image.fromarray(raw).save(root / base / ann_dir / split / f"{stem}.tif")
        Image.fromarray(colors[raw]).save(root / base / image_dir / split / f"{stem}.jpg", quality=95)


def build_model(out: Path, names: list[str], seed: int, extra_texts: tuple[str, ...] = ()) -> Path:
    """The tiny LLaVA (random weights, 8 x 8 grid, plain descriptors); its tokenizer is trained on the class-list
    questions, "Here is the mask." and ``extra_texts``."""
    from text4seg.modeling import build_tiny_model
    from text4seg.prompts import semantic_question

    texts = [semantic_question(names[k : k + 50]) for k in range(0, len(names), 50)]
    return build_tiny_model(out, texts=[*texts, "Here is the mask.", *extra_texts], labels=names, grid=_GRID,
                            patch_size=4, vision_hidden=32, vision_layers=1, text_hidden=64, text_layers=2, heads=2,
                            mlp_ratio=2, vocab_size=1024, max_positions=16384, seed=seed, descriptor_form="plain")


def print_table(rows: list[dict]) -> None:
    """One line per form, ratios against the single prompt (added to each row as ``"ratios"``)."""
    single = next((r for r in rows if r["chunk"] == 0), rows[0])
    accuracy = "pixel_accuracy" in single  # trained runs add pixel accuracy after mIoU
    print(f"{'chunk':>6} {'prompts':>7} {'prompt tok/img':>14} {'longest':>8} {'passes/img':>10} {'s/img':>7} "
          f"{'cpu s/img':>9} {'mIoU':>6}{' pix acc' if accuracy else ''}   ratios vs one prompt (tokens, passes, s, "
          "cpu s)")
    keys = ("prompt_tokens", "passes", "seconds", "cpu_seconds")
    for r in rows:
        r["ratios"] = {k: r[k] / single[k] if single[k] else None for k in keys}
        label = "one" if r["chunk"] == 0 else str(r["chunk"])
        ratios = ", ".join(f"{v:.2f}" for v in r["ratios"].values())
        extra = f" {100 * r['pixel_accuracy']:>7.2f}" if accuracy else ""
        print(f"{label:>6} {r['prompts']:>7} {r['prompt_tokens']:>14} {r['longest_prompt']:>8} {r['passes']:>10.1f} "
              f"{r['seconds']:>7.2f} {r['cpu_seconds']:>9.2f} {100 * (r['miou'] or 0):>6.2f}{extra}   {ratios}",
              flush=True)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("ade847", "pc459"), default="ade847",
                        help="layout and class count (default: ade847)")
    parser.add_argument("--images", type=int, default=4, help="validation images (default: 4)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (default: 64)")
    parser.add_argument("--chunks", default="0,424,212,100",
                        help="comma-separated chunk sizes, 0 = one prompt (default: 0,424,212,100)")
    parser.add_argument("--decoding", default="fast", help="decoding mode (default: fast)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per form; the fastest counts (default: 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1, steadier timings)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--train-minutes", type=float, default=0.0,
                        help="train the tiny model this long first (default: 0, random weights)")
    parser.add_argument("--classes", type=int, default=None,
                        help="with training: use the first K names of the dataset (default: all)")
    parser.add_argument("--train-classes", type=int, default=16,
                        help="with training: most class names one training question lists (default: 16)")
    parser.add_argument("--train-images", type=int, default=4000,
                        help="with training: training images (default: 4000)")
    args = parser.parse_args(argv)
    if args.train_minutes < 0 or args.train_classes < 1 or args.train_images < 1:
        parser.error("--train-minutes must be >= 0, --train-classes and --train-images >= 1")
    if args.train_minutes > 0:
        return main_trained(args)
    if args.classes is not None:
        parser.error("--classes needs --train-minutes > 0 (the untrained run asks every class of the dataset)")

    import torch

    from text4seg.chunking import class_chunks
    from text4seg.datasets.large_vocab import LARGE_VOCAB_DATASETS
    from text4seg.evaluation import evaluate
    from text4seg.options import LoadOptions
    from text4seg.segmenter import Segmenter

    torch.set_num_threads(args.threads)
    num = LARGE_VOCAB_DATASETS[args.dataset][3]
    sizes = [int(s) for s in args.chunks.split(",")]
    work = Path(args.work or tempfile.mkdtemp(prefix="t4s-chunks-"))
    names = synthetic_names(num, args.seed)
    write_dataset(work / "data", args.dataset, names, args.images, args.size, args.seed)
    model_dir = build_model(work / "model", names, args.seed)
    segmenter = Segmenter.from_pretrained(model_dir, load=LoadOptions(device="cpu"), decoding=args.decoding)
    tokenizer = getattr(segmenter.backend.processor, "tokenizer", segmenter.backend.processor)
    passes = [0]
    segmenter.backend.model.register_forward_pre_hook(lambda *_: passes.__setitem__(0, passes[0] + 1))

    print(f"{args.dataset}: {num} classes, {args.images} images of {args.size} px, tiny model (random weights), "
          f"decoding {args.decoding}, {args.threads} thread(s), grid {_GRID}x{_GRID} ({_GRID * _GRID} image tokens per prompt)", flush=True)
    rows = []
    for size in sizes:
        chunks = [names] if size == 0 else class_chunks(names, size)
        prompt_tokens = sum(len(tokenizer(segmenter.semantic_prompt(c))["input_ids"]) for c in chunks)
        # a warm-up answer per form: one-time costs (the grammar of each class list) are left out of the figures
        segmenter.segment(np.zeros((args.size, args.size, 3), np.uint8), classes=names, chunk_size=size or None)
        wall, cpu = [], []
        for run in range(args.repeat):
            passes[0] = 0
            start, start_cpu = time.perf_counter(), time.process_time()
            scores = evaluate("semantic-seg", dataset=args.dataset, data_root=work / "data", split="validation",
                              out=work / f"run_chunk{size}_{run}", segmenter=segmenter, class_chunk=size,
                              progress=False)
            wall.append((time.perf_counter() - start) / args.images)
            cpu.append((time.process_time() - start_cpu) / args.images)
        rows.append({"chunk": size, "prompts": len(chunks), "prompt_tokens": prompt_tokens,
                     "longest_prompt": max(len(tokenizer(segmenter.semantic_prompt(c))["input_ids"]) for c in chunks),
                     "passes": passes[0] / args.images, "seconds": min(wall), "cpu_seconds": min(cpu),
                     "miou": scores["coarse"]["miou"], "repaired": scores["repaired_samples"]})
    print_table(rows)
    summary = {"dataset": args.dataset, "classes": num, "images": args.images, "decoding": args.decoding,
               "model": "tiny, random weights", "rows": rows}
    print(json.dumps(summary))
    return summary


def training_json(data_root: Path, dataset: str, classes: int, train_classes: int, out: Path, seed: int) -> int:
    """The training items of the training split (see the module docstring); returns how many."""
    import dataclasses

    from text4seg.datasets.large_vocab import read_large_vocab
    from text4seg.items import BuildSummary, semantic_items, write_items

    summary = BuildSummary(name=f"{dataset}-{classes}")
    # only the first ``classes`` names exist for the builder: its distractors are drawn among them
    samples = (dataclasses.replace(s, class_names=s.class_names[: classes + 1])
               for s in read_large_vocab(data_root, "training", dataset))
    items = semantic_items(samples, summary, grid=_GRID, rle=False, rounds=1, seed=seed, max_classes=train_classes,
                           crop=False)
    return write_items(out, items, summary)


def main_trained(args: argparse.Namespace) -> dict:
    """``--train-minutes M``: train the tiny model, then score one prompt vs chunks over ``--classes`` names."""
    import os

    import torch

    from text4seg.chunking import class_chunks
    from text4seg.datasets.large_vocab import LARGE_VOCAB_DATASETS, read_large_vocab
    from text4seg.metrics import SemanticSegMeter
    from text4seg.options import LoadOptions
    from text4seg.presets import tiny_train_config
    from text4seg.segmenter import Segmenter
    from text4seg.training import train

    num = LARGE_VOCAB_DATASETS[args.dataset][3]
    k = num if args.classes is None else args.classes
    if not 4 <= k <= num:
        raise SystemExit(f"--classes {k}: expected 4..{num} (four classes per image)")
    sizes = [int(s) for s in args.chunks.split(",")]
    work = Path(args.work or tempfile.mkdtemp(prefix="t4s-chunks-"))
    names = synthetic_names(num, args.seed)
    listed = names[:k]
    data = work / "data"
    write_dataset(data, args.dataset, names, args.images, args.size, args.seed, classes=k)
    write_dataset(data, args.dataset, names, args.train_images, args.size, args.seed + 1, split="training", classes=k)
    train_json = data / "train.json"
    n_items = training_json(data, args.dataset, k, args.train_classes, train_json, args.seed)
    questions = [item["conversations"][0]["value"] for item in json.loads(train_json.read_text())[:200]]
    base = build_model(work / "model", names, args.seed, extra_texts=tuple(questions))

    torch.set_num_threads(os.cpu_count() or 1)
    print(f"{args.dataset}: first {k} of {num} classes, {args.train_images} training images ({n_items} items, "
          f"questions of <= {args.train_classes} names), training {args.train_minutes:g} min on "
          f"{torch.get_num_threads()} thread(s)", flush=True)
    config = tiny_train_config().replace(
        model=str(base), data=(str(train_json),), out=str(work / "trained"), data_root=str(data), seed=args.seed,
        device="cpu", save_steps=10**9, minutes=args.train_minutes, curriculum_grid=None)
    result = train(config, progress=False)
    losses = [e["loss"] for e in result.log_history if "loss" in e]
    print(f"trained {result.global_step} steps in {result.seconds / 60:.1f} min; loss {losses[0]:.3f} -> "
          f"{losses[-1]:.3f}" if losses else f"trained {result.global_step} steps", flush=True)

    torch.set_num_threads(args.threads)
    segmenter = Segmenter.from_pretrained(result.output_dir, load=LoadOptions(device="cpu"), decoding=args.decoding)
    tokenizer = getattr(segmenter.backend.processor, "tokenizer", segmenter.backend.processor)
    passes = [0]
    segmenter.backend.model.register_forward_pre_hook(lambda *_: passes.__setitem__(0, passes[0] + 1))
    samples = list(read_large_vocab(data, "validation", args.dataset))
    print(f"{args.dataset}: {k} classes asked, {len(samples)} validation images of {args.size} px, tiny model "
          f"(trained), decoding {args.decoding}, {args.threads} thread(s), grid {_GRID}x{_GRID}", flush=True)
    rows = []
    for size in sizes:
        chunks = [listed] if size == 0 else class_chunks(listed, size)
        prompt_tokens = [len(tokenizer(segmenter.semantic_prompt(c))["input_ids"]) for c in chunks]
        segmenter.segment(np.zeros((args.size, args.size, 3), np.uint8), classes=listed, chunk_size=size or None)
        wall, cpu = [], []
        for _ in range(args.repeat):
            meter = SemanticSegMeter(k + 1, ignore_index=65535, background_id=0)
            passes[0], repaired = 0, 0
            start, start_cpu = time.perf_counter(), time.process_time()
            for sample in samples:
                answer = segmenter.segment(data / sample.image, classes=listed, chunk_size=size or None)
                # the mask holds indices into ``listed`` (255: background or an unknown label) -> dataset ids
                meter.update(np.where(answer.mask < k, answer.mask + 1, 0), sample.label_map)
                repaired += bool(answer.repairs)
            wall.append((time.perf_counter() - start) / len(samples))
            cpu.append((time.process_time() - start_cpu) / len(samples))
        scores = meter.compute()
        rows.append({"chunk": size, "prompts": len(chunks), "prompt_tokens": sum(prompt_tokens),
                     "longest_prompt": max(prompt_tokens), "passes": passes[0] / len(samples),
                     "seconds": min(wall), "cpu_seconds": min(cpu), "miou": scores["miou"],
                     "pixel_accuracy": scores["pixel_accuracy"], "repaired": repaired})
    print_table(rows)
    summary = {"dataset": args.dataset, "classes": k, "images": len(samples), "decoding": args.decoding,
               "model": "tiny, trained", "train_minutes": args.train_minutes, "train_images": args.train_images,
               "train_items": n_items, "train_classes": args.train_classes, "train_steps": result.global_step,
               "train_seconds": round(result.seconds, 1), "loss_first": losses[0] if losses else None,
               "loss_last": losses[-1] if losses else None, "chance_pixel_accuracy": 1 / k, "rows": rows}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
