"""Long runs watched for growth: resident memory (VmRSS from /proc/self/status) of an evaluation of ``--samples``
(default 20,000) samples with a stub generator, after 2,000 and at the end; and of a ``--steps`` (default 2,000)
step training run of the tiny model, at step 200 and at the end. Growth over 5% is reported as a failure.

Usage::

    python benchmarks/eval_memory.py                        # both parts
    python benchmarks/eval_memory.py --samples 5000 --steps 0
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def eval_memory(samples: int, first: int, tmp: Path) -> tuple[float, float]:
    import gc

    import text4seg.evaluation.runner as runner
    from text4seg.config import Text4SegConfig
    from text4seg.datasets.synthetic import generate_synthetic
    from text4seg.decoding import GeneratedText
    from text4seg.descriptors import encode_descriptor, wrap_descriptor
    from text4seg.evaluation import evaluate
    from text4seg.segmenter import Segmenter

    images = max(1, samples // 2)
    generate_synthetic(tmp, "val", num_images=images, image_size=32, seed=1, max_shapes=2)
    seen = {"n": 0, "at_first": None}

    class Stub:
        def generate(self, image, prompts):
            out = []
            for prompt in prompts:
                bits = hashlib.sha256(prompt.encode()).digest()
                grid = [["thing" if bits[(4 * r + c) % 32] & 1 else "others" for c in range(8)] for r in range(8)]
                out.append(GeneratedText(wrap_descriptor(encode_descriptor(grid), "Sure."), 1, 1, 0.0))
            return out

    original = runner._Run.run_batch

    def watched(self, batch, log, live, bar):
        original(self, batch, log, live, bar)
        seen["n"] += sum(len(todo) for todo in batch)
        if seen["at_first"] is None and seen["n"] >= first:
            gc.collect()
            seen["at_first"] = rss_mb()

    runner._Run.run_batch = watched
    segmenter = Segmenter(Stub(), Text4SegConfig(grid=(8, 8)))
    evaluate("synthetic", data_root=tmp, split="val", out=tmp / "eval", segmenter=segmenter, limit=samples,
             progress=False)
    gc.collect()
    runner._Run.run_batch = original
    return seen["at_first"], rss_mb()


def train_memory(steps: int, first: int, tmp: Path) -> tuple[float, float]:
    import gc

    from transformers import TrainerCallback

    from text4seg.datasets.synthetic import generate_synthetic
    from text4seg.items import BuildSummary, referring_items, write_items
    from text4seg.training import train

    samples = generate_synthetic(tmp, "train", num_images=16, image_size=32, seed=0)
    items = referring_items(samples, BuildSummary(name="mem"), grid=8, rle=False, fg_label="target", rounds=1,
                            repeat=1, question_template="Segment {expression}.", answer_sentence="Here.",
                            expressions="first", shuffle=True)
    data = tmp / "train.json"
    write_items(data, items, BuildSummary(name="mem"))
    marks: dict[int, float] = {}

    class Watch(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step in (first, steps):
                gc.collect()
                marks[state.global_step] = rss_mb()

    train(model="tiny", data=[str(data)], out=tmp / "run", data_root=tmp, full=True, max_steps=steps, batch_size=1,
          lr=1e-4, save_steps=10**6, logging_steps=50, precision="fp32", progress=False, callbacks=[Watch()],
          tiny={"vision_layers": 1, "text_layers": 1, "vision_hidden": 16, "text_hidden": 32, "heads": 2})
    return marks[first], marks[steps]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=20_000, help="evaluation samples (default: 20,000)")
    parser.add_argument("--steps", type=int, default=2_000, help="training steps (default: 2,000; 0: skip)")
    args = parser.parse_args(argv)
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        if args.samples:
            first = max(1, args.samples // 10)
            a, b = eval_memory(args.samples, first, Path(tmp) / "eval")
            growth = 100 * (b - a) / a
            failed |= growth > 5
            print(f"eval: RSS {a:.1f} MB after {first:,} samples, {b:.1f} MB after {args.samples:,} "
                  f"({growth:+.1f}%)")
        if args.steps:
            first = max(1, args.steps // 10)
            a, b = train_memory(args.steps, first, Path(tmp) / "train")
            growth = 100 * (b - a) / a
            failed |= growth > 5
            print(f"train: RSS {a:.1f} MB at step {first:,}, {b:.1f} MB at step {args.steps:,} ({growth:+.1f}%)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
