"""The ``text4seg`` command: one module per verb, each with ``configure(parser)`` and ``run(args) -> int``.

Only the chosen verb's module is imported, and the modules import the library (and torch) only inside
``run``, so ``text4seg --help`` and ``text4seg VERB --help`` are quick. Errors a user can fix (bad options,
missing files, a missing optional package) print one line, ``text4seg VERB: error: ...``, and exit 1.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
from collections.abc import Sequence

__all__ = ["COMMANDS", "build_parser", "main"]

# verb -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "quickstart": ("text4seg.cli.quickstart", "build synthetic data, fine-tune a tiny model on CPU, evaluate, segment"),
    "train": ("text4seg.cli.train", "LoRA (or full) fine-tuning on Text4Seg JSON files"),
    "merge": ("text4seg.cli.merge", "merge a LoRA adapter into its base model and save a standalone model"),
    "segment": ("text4seg.cli.segment", "segment one image from a referring expression or instruction"),
    "segment-video": ("text4seg.cli.segment_video", "segment a video (file or folder of frames) by text, per frame "
                      "or with SAM2 propagation"),
    "convert": ("text4seg.cli.convert", "convert an official Text4Seg (LLaVA codebase) or ms-swift checkpoint"),
    "eval": ("text4seg.cli.eval", "benchmark evaluation (refer-seg, rec, grefer-seg, reason-seg, semantic-seg, panoptic, instance, "
             "part-seg, rvos, reasonvos)"),
    "demo": ("text4seg.cli.demo", "a web page to try a model (Gradio; image and video tabs)"),
}


def _module(name: str):
    return importlib.import_module(COMMANDS[name][0])


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the verb named in ``argv`` gets its options (the others' modules stay unimported)."""
    parser = argparse.ArgumentParser(prog="text4seg", description="Text-as-mask segmentation with multimodal LLMs.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None) if argv else None
    for name, (_, help_text) in COMMANDS.items():
        child = sub.add_parser(name, help=help_text, description=help_text,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        if name == chosen:
            module = _module(name)
            child.epilog = getattr(module, "EPILOG", None)
            module.configure(child)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one verb. Returns the exit status (0 ok, 1 error, 2 usage)."""
    from text4seg._optional import MissingDependency

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return int(_module(args.command).run(args) or 0)
    except (ValueError, OSError, MissingDependency) as err:  # missing files, unreadable images, bad options
        hint = ""
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            hint = " (disk full: free some space and rerun; finished outputs were kept)"
        message = " ".join(str(err).split())  # one line, whatever the message holds
        print(f"text4seg {args.command}: error: {message}{hint}", file=sys.stderr)
        return 1
