"""``python -m data_builders NAME ...``: build a Text4Seg training JSON (``NAME --help`` for its options)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from data_builders import BUILDERS

__all__ = ["build_parser", "main"]


def _module(name: str):
    return importlib.import_module(BUILDERS[name][0])


def _configure(name: str, parser: argparse.ArgumentParser) -> None:
    module = _module(name)
    fixed = BUILDERS[name][1]
    if "dataset" in fixed and module.__name__ in ("data_builders.semantic", "data_builders.video"):
        module.configure(parser, dataset=fixed["dataset"])
    else:
        module.configure(parser)


def _option_list(parser: argparse.ArgumentParser) -> str:
    options = []
    for action in parser._actions:  # argparse has no public accessor for its actions
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
            continue
        options.append(action.option_strings[0] if action.option_strings else action.metavar or action.dest)
    return " ".join(options)


def build_parser() -> argparse.ArgumentParser:
    """The parser with one sub-command per builder; the epilog lists every builder's options."""
    parser = argparse.ArgumentParser(
        prog="python -m data_builders",
        description="Build Text4Seg training JSON from datasets in their downloaded layout.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="builder", metavar="NAME")
    epilog = ["builders and their options (NAME --help for details):"]
    for name, (module_name, fixed) in BUILDERS.items():
        module = importlib.import_module(module_name)
        help_text = module.HELP[fixed["dataset"]] if isinstance(module.HELP, dict) else module.HELP
        child = sub.add_parser(name, help=help_text, description=help_text)
        _configure(name, child)
        epilog.append(f"  {name}: {_option_list(child)}")
    parser.epilog = "\n".join(epilog)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one builder; prints its one-line summary. Returns the exit status (0 ok, 1 error, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if not args.builder:
        parser.print_help()
        return 2
    name = args.builder
    # Options left at None are dropped: the build function owns every default.
    kwargs = {k: v for k, v in vars(args).items() if k != "builder" and v is not None}
    try:
        summary = _module(name).build(**BUILDERS[name][1], **kwargs)
    except (ValueError, FileNotFoundError) as err:
        print(f"data_builders {name}: error: {err}", file=sys.stderr)
        return 1
    print(summary.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
