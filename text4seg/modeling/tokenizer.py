"""Tokenizer of tiny models: a byte-level BPE trained offline, with one token per descriptor cell.

With ordinary tokenization a cell such as ``"others| "`` costs several tokens and a tiny model trained from
scratch cannot keep track of where it is in the grid. Here every (label, separator) pair is one added token:
``"L| "`` (a cell followed by the run separator), ``"L\\n "`` (last cell of a row) and ``"L\\n"`` (last cell of the
grid), so a plain H x W descriptor is exactly H*W tokens and output cell i sits at a fixed offset from image
patch i. Everything else (templates, expressions, R-RLE counts) goes through the BPE, whose alphabet holds all
256 bytes, so any text round-trips exactly: ``decode(encode(text)) == text``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from text4seg.descriptors import BACKGROUND, ROW_SEP, RUN_SEP, SEG_END, SEG_START, sanitize_label

__all__ = [
    "IMAGE_TOKEN",
    "BOS_TOKEN",
    "EOS_TOKEN",
    "PAD_TOKEN",
    "TINY_CHAT_TEMPLATE",
    "CHATML_TEMPLATE",
    "CHAT_STYLES",
    "cell_token_strings",
    "build_tiny_tokenizer",
]

IMAGE_TOKEN = "<image>"
BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
PAD_TOKEN = "<pad>"

# "USER: <turn>\nASSISTANT: <answer></s>\n"; newlines are Jinja expressions because transformers renders chat
# templates with trim_blocks (a literal newline after a block tag would be dropped).
TINY_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: {% elif message['role'] == 'system' %}SYSTEM: "
    "{% else %}ASSISTANT: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<image>{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT: {% endif %}"
)

# ChatML ("<|im_start|>role\n...<|im_end|>\n", the Qwen2-VL and InternVL families); the image placeholder of
# the family is substituted for IMAGE_PLACEHOLDER.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}{{ '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}IMAGE_PLACEHOLDER{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>{{ '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant{{ '\\n' }}{% endif %}"
)


@dataclass(frozen=True)
class ChatStyle:
    """Special tokens and chat template of one backbone family's tiny tokenizer.

    Attributes:
        template: the chat template.
        bos, eos, pad: special tokens (bos None: the family writes none).
        extra: named special tokens (``image_token``, ...) set as tokenizer attributes.
    """

    template: str
    bos: str | None
    eos: str
    pad: str
    extra: tuple[tuple[str, str], ...]


CHAT_STYLES: dict[str, ChatStyle] = {
    "llava": ChatStyle(TINY_CHAT_TEMPLATE, BOS_TOKEN, EOS_TOKEN, PAD_TOKEN, (("image_token", IMAGE_TOKEN),)),
    # Qwen2-VL / Qwen2.5-VL: the vision block "<|vision_start|><|image_pad|><|vision_end|>", "<|im_end|>" ends a turn
    "qwen2-vl": ChatStyle(
        CHATML_TEMPLATE.replace("IMAGE_PLACEHOLDER", "<|vision_start|><|image_pad|><|vision_end|>"),
        None, "<|im_end|>", "<|endoftext|>",
        (("image_token", "<|image_pad|>"), ("video_token", "<|video_pad|>"), ("vision_start_token", "<|vision_start|>"),
         ("vision_end_token", "<|vision_end|>"), ("im_start_token", "<|im_start|>")),
    ),
    # InternVL (transformers-native): "<IMG_CONTEXT>" is expanded by the processor to "<img>" + N x "<IMG_CONTEXT>" + "</img>"
    "internvl": ChatStyle(
        CHATML_TEMPLATE.replace("IMAGE_PLACEHOLDER", "<IMG_CONTEXT>"),
        None, "<|im_end|>", "<|endoftext|>",
        (("context_image_token", "<IMG_CONTEXT>"), ("start_image_token", "<img>"), ("end_image_token", "</img>"),
         ("video_token", "<video>"), ("im_start_token", "<|im_start|>")),
    ),
}
CHAT_STYLES["qwen2.5-vl"] = CHAT_STYLES["qwen2-vl"]

# Literal pieces of the chat template and descriptor syntax the BPE should see even when the data is tiny.
_SEED_TEXTS = (
    "USER: ",
    "ASSISTANT: ",
    "SYSTEM: ",
    " *1| ",
    " *12| ",
    " *16\n ",
    " *24\n",
    "0123456789",
)


def cell_token_strings(label: str) -> tuple[str, str, str]:
    """The three cell tokens of one label: ``(label + "| ", label + "\\n ", label + "\\n")``."""
    return (label + RUN_SEP, label + ROW_SEP, label + "\n")


def build_tiny_tokenizer(
    texts: Iterable[str],
    labels: Sequence[str],
    *,
    vocab_size: int = 1024,
    min_frequency: int = 2,
    model_max_length: int = 4096,
    style: str = "llava",
):
    """Train a byte-level BPE on ``texts`` and add one token per descriptor cell of every label.

    Args:
        texts: training text (questions, answers, expressions); any str.
        labels: descriptor labels (background first is customary); each must be a clean label
            (``sanitize_label(label) == label``). The background label ``"others"`` is always included.
        vocab_size: BPE vocabulary size before added tokens (>= 300: 256 bytes + specials + merges).
        min_frequency: minimum pair frequency for a BPE merge.
        model_max_length: stored as the tokenizer's maximum length.
        style: special tokens and chat template of a backbone family (a key of :data:`CHAT_STYLES`).

    Returns:
        A ``transformers.PreTrainedTokenizerFast`` with the style's special tokens (``"llava"``: bos ``<s>``, eos
        ``</s>``, pad ``<pad>``, image token ``<image>``), ``<seg>``/``</seg>`` (plain added tokens, kept by
        ``skip_special_tokens``), the cell tokens and the style's chat template.

    Raises:
        ValueError: for a label that is not a clean descriptor label, or a too small ``vocab_size``.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if style not in CHAT_STYLES:
        raise ValueError(f"style {style!r}: expected one of {sorted(CHAT_STYLES)}")
    chat = CHAT_STYLES[style]
    if vocab_size < 300:
        raise ValueError(f"vocab_size {vocab_size}: expected >= 300")
    clean: list[str] = []
    for label in [BACKGROUND, *labels]:
        if not isinstance(label, str) or not label or sanitize_label(label) != label:
            raise ValueError(f"labels: {label!r} is not a clean descriptor label (see descriptors.sanitize_label)")
        if label not in clean:
            clean.append(label)

    specials = [chat.pad, *([chat.bos] if chat.bos else []), chat.eos, *(token for _, token in chat.extra)]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )

    def corpus() -> Iterable[str]:
        yield from _SEED_TEXTS
        yield from clean
        yield from texts

    bpe.train_from_iterator(corpus(), trainer)
    # Added tokens match raw text, leftmost-longest, so "others\n " wins over "others\n" before a space.
    bpe.add_tokens([AddedToken(t, normalized=False, special=False) for t in (SEG_START, SEG_END)])
    bpe.add_tokens(
        [AddedToken(t, normalized=False, special=False) for label in clean for t in cell_token_strings(label)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=chat.bos,
        eos_token=chat.eos,
        pad_token=chat.pad,
        extra_special_tokens=dict(chat.extra),
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
        padding_side="right",
    )
    tokenizer.chat_template = chat.template
    return tokenizer
