"""argparse options derived from the option dataclasses, and the groups every command shares.

A flag's name, type, choices and help come from its dataclass field (:func:`text4seg.options.option`); every
flag defaults to None so that "not given" is visible and the dataclass keeps the default, which the help text
shows. Commands then build their dataclass from :func:`given` values.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "add_dataclass_options",
    "given",
    "show_default",
    "add_question_options",
    "question_index",
    "add_load_options",
    "add_decoding_options",
    "QUESTION_FIELDS",
]

QUESTION_FIELDS = ("question_template", "question_index")


def show_default(value: Any) -> str:
    """How a default reads in ``--help``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (tuple, list)):
        return ",".join(show_default(v) for v in value) if value else "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _scalar_type(hint: Any) -> type:
    """The argparse type of a field annotation: int, float or str (unions of several scalars parse as str)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)] if _is_union(hint) else [hint]
    origin = typing.get_origin(hint)
    if origin in (tuple, list):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
    args = [a for a in args if a in (int, float, str, bool)]
    if len(args) == 1 and args[0] in (int, float):
        return args[0]
    return str


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _is_bool(hint: Any) -> bool:
    return hint is bool


def add_dataclass_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    exclude: Iterable[str] = (),
    defaults: Any = None,
    also: Mapping[str, Any] | None = None,
    also_name: str = "",
    groups: dict[str, argparse._ArgumentGroup] | None = None,
) -> list[str]:
    """Add one flag per command-line field of dataclass ``cls``.

    Args:
        parser: parser (or group) to add to; fields with a ``group`` get an argument group of that title.
        cls: the options dataclass.
        exclude: field names to leave out.
        defaults: an instance whose values the help shows as defaults (default: the field defaults).
        also, also_name: other defaults shown beside them (e.g. the tiny recipe's: ``"tiny: 8"``).
        groups: argument groups already made, by title (shared between calls).

    Returns:
        The names of the fields added.
    """
    hints = typing.get_type_hints(cls)
    groups = {} if groups is None else groups
    added = []
    root_parser = parser
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if not meta.get("cli", True) or f.name in exclude:
            continue
        if defaults is not None:
            default = getattr(defaults, f.name)
        elif f.default is not dataclasses.MISSING:
            default = f.default
        else:
            default = f.default_factory()  # type: ignore[misc]
        help_text = meta.get("help", "")
        parts = [] if default is None and "default:" in help_text else [f"default: {show_default(default)}"]
        if also is not None and f.name in also and also[f.name] != default:
            parts.append(f"{also_name}: {show_default(also[f.name])}")
        if parts:
            help_text = f"{help_text} ({'; '.join(parts)})"
        help_text = help_text.replace("%", "%%")
        title = meta.get("group")
        target = root_parser
        if title and hasattr(root_parser, "add_argument_group"):
            if title not in groups:
                groups[title] = root_parser.add_argument_group(title)
            target = groups[title]
        flag = meta.get("flag") or "--" + f.name.replace("_", "-")
        names = [flag, *meta.get("aliases", ())]
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": help_text}
        hint = hints[f.name]
        if meta.get("choices"):
            kwargs["choices"] = meta["choices"]
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        if _is_bool(hint):
            kwargs["action"] = argparse.BooleanOptionalAction
            kwargs.pop("metavar", None)
        else:
            kwargs["type"] = meta.get("parse") or _scalar_type(hint)
            if meta.get("multiple"):
                kwargs["action"] = "append"
            if meta.get("nargs"):
                kwargs["nargs"] = meta["nargs"]
                kwargs["const"] = meta.get("const")
        target.add_argument(*names, **kwargs)
        added.append(f.name)
    return added


def given(args: argparse.Namespace, names: Iterable[str]) -> dict[str, Any]:
    """The values of ``names`` the user gave (not None), with repeatable flags as tuples."""
    out = {}
    for name in names:
        value = getattr(args, name, None)
        if value is not None:
            out[name] = tuple(value) if isinstance(value, list) else value
    return out


def question_index(text: str) -> int | str:
    """``--question-index``: a template index >= 0, or ``random`` where the command samples questions."""
    if text == "random":
        return text
    try:
        index = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a template index or 'random', got {text!r}") from None
    if index < 0:
        raise argparse.ArgumentTypeError(f"template index must be >= 0, got {index}")
    return index


def add_question_options(parser: argparse.ArgumentParser, *, index: bool = True, default: str = "the model's "
                         "training question (text4seg_config.json)") -> None:
    """``--question-template TEXT`` (a literal question with ``{expression}``) and ``--question-index K``
    (template K of REFERRING_QUESTIONS); the same meaning in every command."""
    group = parser.add_argument_group("question")
    group.add_argument("--question-template", default=None, metavar="TEXT",
                       help=f"the referring question, a text containing {{expression}} (default: {default})")
    if index:
        group.add_argument("--question-index", "--template", dest="question_index", type=question_index,
                           default=None, metavar="K",
                           help="ask template K of REFERRING_QUESTIONS (and of the all-classes questions) "
                           "instead (default: none)")


def add_load_options(parser: argparse.ArgumentParser, groups: dict | None = None, exclude: Iterable[str] = (),
                     defaults: Any = None) -> list[str]:
    """The :class:`~text4seg.options.LoadOptions` flags (device, dtype, 4/8-bit, attention, remote code)."""
    from text4seg.options import LoadOptions

    return add_dataclass_options(parser, LoadOptions, groups=groups, exclude=exclude, defaults=defaults)


def add_decoding_options(parser: argparse.ArgumentParser, groups: dict | None = None) -> list[str]:
    """The :class:`~text4seg.options.DecodingOptions` flags (``--decoding``, ``--max-new-tokens``)."""
    from text4seg.options import DecodingOptions

    return add_dataclass_options(parser, DecodingOptions, groups=groups)
