"""Subprocess entry points for the fault tests: ``python fault_driver.py VERB ARGS...``.

Each verb runs the real ``text4seg`` command (``text4seg.cli.main``) in this fresh process, so the tests can kill
it with SIGKILL at any moment. Only what a test cannot do from outside is replaced:

- ``eval``: ``Segmenter.from_pretrained`` returns a segmenter over a stub generator (a deterministic answer per
  prompt, a few milliseconds per call so that kills land mid-run), and the runner's clock is pinned so the
  per-sample ``seconds`` (wall time, the one field of ``scores.json`` that is not a function of the answers)
  are equal in every run. ``DELAY`` is seconds per generate call, or ``gate:FILE``: answer the first image, then
  wait until FILE exists.
- ``train-slow-save``: the Trainer's optimizer save sleeps first and prints ``SAVING <dir>``, so a kill lands
  while the checkpoint directory is half written.
- ``merge-slow-save`` / builders: a sleep inside the save, printing ``SAVING`` first.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path


def _stub_eval(delay: float | str, patch=setattr) -> None:
    """Install the stub model side (``patch``: ``setattr``, or a pytest ``monkeypatch.setattr`` in-process)."""
    import text4seg.evaluation.runner as runner
    from text4seg.config import Text4SegConfig
    from text4seg.decoding import GeneratedText
    from text4seg.descriptors import encode_descriptor, wrap_descriptor
    from text4seg.segmenter import Segmenter

    gate = None
    if isinstance(delay, str) and delay.startswith("gate:"):  # answer once, then wait for the gate file
        gate, delay = Path(delay[5:]), 0.0
    delay = float(delay)

    class StubBackend:
        calls = 0

        def generate(self, image, prompts):
            time.sleep(delay)
            StubBackend.calls += 1
            while gate is not None and StubBackend.calls > 1 and not gate.exists():
                time.sleep(0.01)
            out = []
            for prompt in prompts:
                bits = hashlib.sha256(prompt.encode()).digest()
                grid = [["thing" if bits[4 * r + c] & 1 else "others" for c in range(4)] for r in range(4)]
                out.append(GeneratedText(wrap_descriptor(encode_descriptor(grid), "Sure."), tokens=1,
                                         forward_passes=1, seconds=0.0))
            return out

    def from_pretrained(cls, model, adapter=None, **kwargs):
        return Segmenter(StubBackend(), Text4SegConfig(grid=(4, 4)))

    patch(Segmenter, "from_pretrained", classmethod(from_pretrained))

    class Clock:  # the runner's only use of time: per-sample seconds
        @staticmethod
        def perf_counter() -> float:
            return 0.0

    patch(runner, "time", Clock)


def main(argv: list[str]) -> int:
    verb, rest = argv[0], argv[1:]
    if verb == "eval":
        _stub_eval(rest.pop(0))
        from text4seg.cli import main as cli

        return cli(["eval", *rest])
    if verb in ("train", "train-slow-save"):
        if verb == "train-slow-save":  # train-slow-save STEP ...: the save of checkpoint-STEP hangs half-written
            from transformers import Trainer

            original = Trainer._save_optimizer_and_scheduler
            slow_step = int(rest.pop(0))

            def slow(self, output_dir):
                if Path(output_dir).name == f"checkpoint-{slow_step}":  # weights written, optimizer/state not yet
                    print(f"SAVING {output_dir}", flush=True)
                    time.sleep(120)
                return original(self, output_dir)

            Trainer._save_optimizer_and_scheduler = slow
        from text4seg.cli import main as cli

        return cli(["train", *rest])
    if verb == "merge-slow-save":
        import transformers.modeling_utils as modeling_utils

        original = modeling_utils.safe_save_file

        def slow_save(*args, **kwargs):
            result = original(*args, **kwargs)  # the weights are on disk (in the hidden sibling) ...
            print("SAVING", flush=True)
            time.sleep(60)  # ... and the kill lands before the rest is written and renamed
            return result

        modeling_utils.safe_save_file = slow_save
        from text4seg.cli import main as cli

        return cli(["merge", *rest])
    raise SystemExit(f"unknown verb {verb!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
