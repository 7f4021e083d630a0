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


def write_dataset(root: Path, dataset: str, names: list[str], images: int, size: int, seed: int) -> None:
    """The detectron2 layout of ``dataset`` (ade847 / pc459) with ``images`` validation images: four quadrants
    of random classes each, a 4-pixel ignored (65535) border."""
    from PIL import Image

    from text4seg.datasets.large_vocab import LARGE_VOCAB_DATASETS

    base, image_dir, ann_dir, _ = LARGE_VOCAB_DATASETS[dataset]
    (root / base / ann_dir / "validation").mkdir(parents=True, exist_ok=True)
    (root / base / image_dir / "validation").mkdir(parents=True, exist_ok=True)
    (root / base / "class_names.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    rng = np.random.default_rng(seed)
    half = size // 2
    for k in range(images):
        raw = np.zeros((size, size), dtype=np.uint16)
        for (y, x), value in zip(((0, 0), (0, 1), (1, 0), (1, 1)), rng.choice(len(names), 4, replace=False)):
            raw[y * half : (y + 1) * half, x * half : (x + 1) * half] = value
        raw[:4], raw[-4:], raw[:, :4], raw[:, -4:] = 65535, 65535, 65535, 65535
        colors = (np.arange(65536, dtype=np.uint32)[:, None] * np.array([37, 91, 53]) % 256).astype(np.uint8)
        Image.fromarray(raw).save(root / base / ann_dir / "validation" / f"val_{k}.tif")
        Image.fromarray(colors[raw]).save(root / base / image_dir / "validation" / f"val_{k}.jpg", quality=95)


def build_model(out: Path, names: list[str], seed: int) -> Path:
    from text4seg.modeling import build_tiny_model
    from text4seg.prompts import semantic_question

    texts = [semantic_question(names[k : k + 50]) for k in range(0, len(names), 50)]
    return build_tiny_model(out, texts=texts + ["Here is the mask."], labels=names, grid=_GRID, patch_size=4,
                            vision_hidden=32, vision_layers=1, text_hidden=64, text_layers=2, heads=2, mlp_ratio=2,
                            vocab_size=1024, max_positions=16384, seed=seed, descriptor_form="plain")


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
    args = parser.parse_args(argv)

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
    single = next((r for r in rows if r["chunk"] == 0), rows[0])
    print(f"{'chunk':>6} {'prompts':>7} {'prompt tok/img':>14} {'longest':>8} {'passes/img':>10} {'s/img':>7} "
          f"{'cpu s/img':>9} {'mIoU':>6}   ratios vs one prompt (tokens, passes, s, cpu s)")
    keys = ("prompt_tokens", "passes", "seconds", "cpu_seconds")
    for r in rows:
        r["ratios"] = {k: r[k] / single[k] if single[k] else None for k in keys}
        label = "one" if r["chunk"] == 0 else str(r["chunk"])
        ratios = ", ".join(f"{v:.2f}" for v in r["ratios"].values())
        print(f"{label:>6} {r['prompts']:>7} {r['prompt_tokens']:>14} {r['longest_prompt']:>8} {r['passes']:>10.1f} "
              f"{r['seconds']:>7.2f} {r['cpu_seconds']:>9.2f} {100 * r['miou']:>6.2f}   {ratios}", flush=True)
    summary = {"dataset": args.dataset, "classes": num, "images": args.images, "decoding": args.decoding,
               "model": "tiny, random weights", "rows": rows}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
