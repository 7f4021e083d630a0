"""The ``text4seg`` command: a thin dispatcher over library functions.

Each sub-command lives in the module of its concept and exposes two functions: ``configure(parser)``, which adds
its options (all defaulting to ``None`` so that the library owns every default), and ``run(args) -> int``.
Modules are imported only when their sub-command runs, so ``text4seg --help`` needs no torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# sub-command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "quickstart": ("text4seg.quickstart", "build synthetic data, fine-tune a tiny model on CPU, evaluate, segment"),
    "train": ("text4seg.train", "LoRA (or full) fine-tuning on Text4Seg JSON files"),
    "merge": ("text4seg.merge", "merge a LoRA adapter into its base model and save a standalone model"),
    "segment": ("text4seg.segment_command", "segment one image from a referring expression or instruction"),
    "eval": ("text4seg.evaluate", "benchmark evaluation (refer-seg, rec, grefer-seg, reason-seg, semantic-seg)"),
}


def _load(name: str):
    module_name, _ = COMMANDS[name]
    return importlib.import_module(module_name)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="text4seg", description="Text-as-mask segmentation with multimodal LLMs.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = None
    if argv:
        chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        # Only the chosen sub-command's module is imported: its options may need heavy imports.
        if name == chosen:
            _load(name).configure(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return int(_load(args.command).run(args) or 0)
    except (ValueError, FileNotFoundError) as err:
        print(f"text4seg {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
