"""User-facing option dataclasses: one field per option, with its default and a one-line help (no torch).

Every option of the library lives once, as a dataclass field made with :func:`option`. The functions take the
dataclass (or its fields as keyword arguments), and the command layer (:mod:`text4seg.cli.options`) derives
each flag, its type, choices and help text — default included — from the same field. Validation happens in
``__post_init__``, so ``LoadOptions(load_in_4bit=True, load_in_8bit=True)`` fails the same way from Python and
from the command line.

- :class:`LoadOptions`: where and how a backbone is loaded (device, dtype, quantization, attention kernel,
  remote code); shared by training, :meth:`text4seg.Segmenter.from_pretrained`, ``segment``, ``eval`` and
  ``merge``.
- :class:`DecodingOptions`: how answers are generated (decoding mode, token budgets).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "option",
    "option_fields",
    "split_options",
    "LoadOptions",
    "DecodingOptions",
    "DTYPE_NAMES",
    "ATTN_CHOICES",
    "DECODING_MODES",
    "MAX_CAPTION_TOKENS",
]

# dtype spellings accepted everywhere (the short forms are aliases)
DTYPE_NAMES = ("auto", "float32", "bfloat16", "float16", "fp32", "bf16", "fp16")
ATTN_CHOICES = ("flash_attention_2", "sdpa", "eager")
# "plain": transformers' greedy generate. "constrained": generate with the descriptor grammar masking tokens.
# "fast": the tokens of "constrained" in far fewer forward passes. "fast-unconstrained": the tokens of "plain",
# faster (drafts verified, no grammar). See text4seg.decoding.
DECODING_MODES = ("plain", "constrained", "fast", "fast-unconstrained")


def option(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    default_factory: Callable[[], Any] | None = None,
    group: str | None = None,
    flag: str | None = None,
    aliases: Sequence[str] = (),
    choices: Sequence[str] | None = None,
    metavar: str | None = None,
    parse: Callable[[str], Any] | None = None,
    multiple: bool = False,
    nargs: str | None = None,
    const: Any = None,
    cli: bool = True,
) -> Any:
    """A dataclass field carrying what the command line needs to expose it.

    Args:
        default, default_factory: as :func:`dataclasses.field`.
        help: one line saying what the option does (the CLI appends the default).
        group: heading of the option in ``--help`` (e.g. ``"LoRA"``).
        flag: the long flag (default ``--field-name``); ``aliases``: older spellings still accepted.
        choices: allowed values; ``metavar``: placeholder in the help.
        parse: str -> value for the command line (default: from the field's type).
        multiple: a repeatable flag collecting a list.
        nargs, const: an optional flag value (``nargs="?"``) and what the bare flag means.
        cli: False keeps the field out of the command line (Python-only options).
    """
    metadata = {
        "help": help,
        "group": group,
        "flag": flag,
        "aliases": tuple(aliases),
        "choices": None if choices is None else tuple(choices),
        "metavar": metavar,
        "parse": parse,
        "multiple": multiple,
        "nargs": nargs,
        "const": const,
        "cli": cli,
    }
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def option_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of an options dataclass, in declaration order."""
    return list(dataclasses.fields(cls))


def split_options(cls: type, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``values`` into (fields of ``cls``, the rest)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in values.items() if k in names}, {k: v for k, v in values.items() if k not in names}


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if value is not None and value not in choices:
        raise ValueError(f"{name} {value!r}: expected one of {', '.join(choices)}")


@dataclasses.dataclass(frozen=True)
class LoadOptions:
    """Where and how a backbone is loaded (:func:`text4seg.modeling.load_model`)."""

    device: str | None = option(
        None, "cpu, cuda, cuda:1, mps or auto; default: this process's GPU when there is one, else CPU",
        group="loading", metavar="DEVICE")
    dtype: str | None = option(
        None, "weights dtype: float32, bfloat16, float16 (or bf16/fp16/fp32, auto); default: bfloat16 on "
        "GPUs that support it, float16 on other accelerators, float32 on CPU",
        group="loading", choices=DTYPE_NAMES)
    load_in_4bit: bool = option(False, "quantize the language model to 4 bits (bitsandbytes NF4; QLoRA)",
                                group="loading")
    load_in_8bit: bool = option(False, "quantize the language model to 8 bits (bitsandbytes)", group="loading")
    attn: str | None = option(None, "attention kernel; default: the model's own (flash_attention_2 needs "
                              "CUDA and text4seg[flash])", group="loading", choices=ATTN_CHOICES)
    trust_remote_code: bool = option(False, "run the model repository's own Python code (only for models you "
                                     "trust)", group="loading")

    def __post_init__(self) -> None:
        if isinstance(self.dtype, str):  # a torch.dtype given from Python is resolved by the loader
            _check_choice("dtype", self.dtype.lower(), DTYPE_NAMES)
        _check_choice("attn", self.attn, ATTN_CHOICES)
        if self.load_in_4bit and self.load_in_8bit:
            raise ValueError("load_in_4bit and load_in_8bit: choose one")
        if isinstance(self.device, str) and not self.device.strip():
            raise ValueError("device '': expected a device name such as cpu, cuda or cuda:0")

    @property
    def quantized(self) -> bool:
        """True when the language model is loaded in 4 or 8 bits."""
        return self.load_in_4bit or self.load_in_8bit


def _positive_int_or_none(name: str, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} {value!r}: expected an integer >= 1")


# The grammar modes bound every answer by the grid; a plain answer is bounded by the grid and the labels. Far
# above any real descriptor (a 64x64 plain grid of 20-token labels), so a larger value is a mistake.
MAX_NEW_TOKENS_LIMIT = 1_000_000
# A GLaMM-style detailed caption is 40-80 words; beyond this the caption is closed and its descriptor started.
MAX_CAPTION_TOKENS = 160


@dataclasses.dataclass(frozen=True)
class DecodingOptions:
    """How answers are generated (:class:`text4seg.decoding.HFGenerationBackend`)."""

    decoding: str = option("fast", "plain: transformers' greedy generate (answers may need repairs); "
                           "constrained: only well-formed descriptors; fast: the tokens of constrained in far "
                           "fewer forward passes; fast-unconstrained: the tokens of plain, faster",
                           group="decoding", choices=DECODING_MODES)
    max_new_tokens: int | None = option(None, "most new tokens per answer; default: enough for a complete "
                                        "descriptor of the model's grid", group="decoding", metavar="N")

    max_caption_tokens: int = option(MAX_CAPTION_TOKENS, "grounded captions (GCG): most caption tokens before "
                                     "the grammar modes close the caption and start its descriptor",
                                     group="decoding", metavar="N")

    def __post_init__(self) -> None:
        _check_choice("decoding", self.decoding, DECODING_MODES)
        _positive_int_or_none("max_new_tokens", self.max_new_tokens)
        _positive_int_or_none("max_caption_tokens", self.max_caption_tokens)
        if self.max_new_tokens is not None and self.max_new_tokens > MAX_NEW_TOKENS_LIMIT:
            raise ValueError(f"max_new_tokens {self.max_new_tokens}: at most {MAX_NEW_TOKENS_LIMIT}")
