"""The train/inference contract: how a user turn is rendered with the model's chat template, how an image is
prepared (the config's resize policy) and how prompts and images become model inputs.

Training (:mod:`text4seg.training.data`) and inference (:mod:`text4seg.decoding`) both go through these
functions, so a model sees at inference exactly the prompt format and preprocessing it was trained with.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from PIL import Image

from text4seg.config import Text4SegConfig

logger = logging.getLogger(__name__)

__all__ = [
    "user_content",
    "render_chat",
    "render_user_prompt",
    "processor_image_size",
    "prepare_image",
    "encode_prompt",
    "check_prompt_contract",
]


def user_content(text: str, image_position: str = "before", with_image: bool = True, num_images: int = 1
                 ) -> list[dict]:
    """Content list of a user turn: ``[{"type": "image"}, {"type": "text", "text": text}]`` (images first for
    ``"before"``, last for ``"after"``); text only when ``with_image`` is False. ``num_images`` > 1: several
    images in order (context frames, then the frame the answer is about)."""
    parts: list[dict] = [{"type": "text", "text": text}]
    if with_image:
        images = [{"type": "image"} for _ in range(max(1, int(num_images)))]
        parts = [*images, *parts] if image_position == "before" else [*parts, *images]
    return parts


def render_user_prompt(processor: Any, config: Text4SegConfig, prompt: str, num_images: int = 1) -> str:
    """The full prompt text of one user turn about one image (or ``num_images`` images: context frames and the
    target frame): the chat template, the images placed per ``config.image_position``, and the generation
    prompt (the one rendering used by every decoding mode)."""
    messages = [{"role": "user", "content": user_content(prompt, config.image_position, num_images=num_images)}]
    return render_chat(processor, messages, add_generation_prompt=True)


def _chat_template_owner(processor):
    if getattr(processor, "chat_template", None):
        return processor
    tokenizer = getattr(processor, "tokenizer", processor)
    if getattr(tokenizer, "chat_template", None):
        return tokenizer
    raise ValueError(
        f"{type(processor).__name__}: the processor and its tokenizer have no chat template; "
        "this model cannot be prompted as a chat model"
    )


def render_chat(processor, messages: Sequence[dict], add_generation_prompt: bool = False) -> str:
    """Render messages (content lists) with the model's chat template, untokenized."""
    owner = _chat_template_owner(processor)
    if owner is processor and hasattr(processor, "image_processor"):
        return processor.apply_chat_template(
            list(messages), add_generation_prompt=add_generation_prompt, tokenize=False
        )
    # A bare tokenizer template expects string contents; the image placeholder is the processor's image token.
    image_token = getattr(processor, "image_token", "<image>")
    flat = []
    for message in messages:
        content = message["content"]
        if not isinstance(content, str):
            content = "".join(image_token if p["type"] == "image" else p.get("text", "") for p in content)
        flat.append({"role": message["role"], "content": content})
    return owner.apply_chat_template(flat, add_generation_prompt=add_generation_prompt, tokenize=False)


def processor_image_size(processor) -> tuple[int, int] | None:
    """The (H, W) the processor's image processor outputs for a fixed-size vision tower, or None when dynamic."""
    ip = getattr(processor, "image_processor", None)
    if ip is None:
        return None

    def as_hw(size) -> tuple[int, int] | None:
        if size is None:
            return None
        if isinstance(size, int):
            return (size, size)
        size = dict(size) if not isinstance(size, dict) else size
        if size.get("height") and size.get("width"):
            return (int(size["height"]), int(size["width"]))
        if size.get("shortest_edge") and not size.get("longest_edge"):
            return (int(size["shortest_edge"]),) * 2
        return None

    if getattr(ip, "do_center_crop", False):
        found = as_hw(getattr(ip, "crop_size", None))
        if found:
            return found
    return as_hw(getattr(ip, "size", None))


def prepare_image(image: Image.Image, config: Text4SegConfig, processor=None) -> Image.Image:
    """Apply the config's resize policy: ``"stretch"`` resizes to ``config.image_size`` (or the processor's fixed
    size) with ``config.resample`` (bicubic or bilinear), aspect ratio not kept, so the descriptor grid covers the
    whole image.

    Args:
        image: RGB PIL image of any size.

    Returns:
        RGB PIL image (the input itself when nothing needs to change).
    """
    if image.mode != "RGB":
        image = image.convert("RGB")
    if config.resize != "stretch":
        return image
    size = config.image_size or (processor_image_size(processor) if processor is not None else None)
    if size is None:
        return image
    height, width = size
    if image.size == (width, height):
        return image
    resample = Image.Resampling.BILINEAR if config.resample == "bilinear" else Image.Resampling.BICUBIC
    return image.resize((width, height), resample)


def _adds_special_tokens(tokenizer) -> bool:
    try:
        return len(tokenizer("", add_special_tokens=True)["input_ids"]) > 0
    except Exception:  # noqa: BLE001 - exotic tokenizers: assume the usual
        return True


def encode_prompt(
    processor,
    texts: Sequence[str],
    images: Sequence[Image.Image] | None,
    padding_side: str | None = None,
    image_size: tuple[int, int] | None = None,
) -> dict:
    """Tokenize rendered prompt texts (one image each) through the processor, as tensors.

    Does not add a second BOS when the chat template already wrote one. ``image_size`` (H, W) overrides the
    image processor's resize and crop size (the low-resolution stage of a training curriculum); the number of
    image tokens follows from it.

    Returns:
        The processor's BatchFeature (``input_ids`` (B, L) int64, ``attention_mask``, ``pixel_values``, ...),
        padded on ``padding_side`` (default: the tokenizer's) when there are several texts.
    """
    tokenizer = getattr(processor, "tokenizer", processor)
    bos = getattr(tokenizer, "bos_token", None)
    add_special = not (bos and all(t.startswith(bos) for t in texts)) and _adds_special_tokens(tokenizer)
    kwargs: dict[str, Any] = {"text": list(texts), "return_tensors": "pt", "add_special_tokens": add_special}
    if images:
        kwargs["images"] = list(images)
        if image_size is not None:
            height, width = image_size
            kwargs["size"] = kwargs["crop_size"] = {"height": int(height), "width": int(width)}
    if len(texts) > 1:
        kwargs["padding"] = True
        if padding_side is not None:
            kwargs["padding_side"] = padding_side
    return processor(**kwargs)


def check_prompt_contract(processor: Any, config: Text4SegConfig, source: str = "model") -> None:
    """Check at load time what text4seg assumes of an image-text-to-text model's processor, so an unsuitable
    model fails with one clear message instead of an exception deep in generation.

    Assumed: an image processor; a named image placeholder (``processor.image_token``); a chat template (on the
    processor or its tokenizer) that renders a user turn with an image into text holding that placeholder. A
    dynamic-resolution processor (no fixed output size) with no ``image_size`` in the config is accepted with a
    warning: the image token grid then follows each image's size.

    Raises:
        ValueError: naming ``source`` and the missing piece.
    """
    name = type(processor).__name__
    if getattr(processor, "image_processor", None) is None:
        raise ValueError(f"{source}: {name} has no image processor; text4seg needs an image-text-to-text model")
    image_token = getattr(processor, "image_token", None)
    if not isinstance(image_token, str) or not image_token:
        raise ValueError(f"{source}: {name} has no image_token field (the placeholder its chat template writes "
                         "for an image)")
    try:
        text = render_user_prompt(processor, config, "probe")
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from None
    except Exception as err:  # noqa: BLE001 - a template that cannot render content lists
        raise ValueError(f"{source}: the chat template of {name} cannot render a user turn with an image "
                         f"({type(err).__name__}: {err})") from None
    if image_token not in text or "probe" not in text:
        raise ValueError(f"{source}: the chat template of {name} dropped the image or the text of a user turn "
                         f"(rendered {text[:200]!r}; expected {image_token!r} and the question)")
    if config.resize == "stretch" and config.image_size is None and processor_image_size(processor) is None:
        logger.warning("%s: %s resizes dynamically and text4seg_config.json has no image_size: the image token "
                       "grid follows each image; set image_size (e.g. [448, 448]) for a stable grid", source, name)
