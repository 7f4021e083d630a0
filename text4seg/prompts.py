"""Question/answer templates and the LLaVA-style conversation item of Text4Seg training data.

Each template family is a tuple of sentences; index 0 is the evaluation template. Every random choice takes a
``random.Random`` (``rng``); ``rng=None`` means template 0, so evaluation prompts never vary. A data builder
that passes ``random.Random(seed)`` writes the same file on every run.
"""

from __future__ import annotations

import numbers
import operator
import random
from collections.abc import Sequence

from text4seg.descriptors import wrap_descriptor

__all__ = [
    "ALL_CLASSES_QUESTIONS",
    "ANSWER_SENTENCES",
    "CONDITION_QUESTIONS",
    "GCG_QUESTIONS",
    "IMAGE_TOKEN",
    "OBJECT_PARTS_QUESTIONS",
    "OBJECT_PART_QUESTIONS",
    "PARTIAL_CLASSES_QUESTIONS",
    "PART_QUESTIONS",
    "REFERRING_QUESTIONS",
    "SEMANTIC_FAMILIES",
    "answer_text",
    "conversation_item",
    "gcg_question",
    "object_part_question",
    "object_parts_question",
    "part_question",
    "referring_question",
    "semantic_question",
]

IMAGE_TOKEN = "<image>"

# Referring / partial segmentation of one object described in words; "{expression}" is the description.
REFERRING_QUESTIONS: tuple[str, ...] = (
    "Please segment {expression} in this image.",
    "Can you segment {expression} in the image?",
    "Segment {expression}.",
    "Where is {expression} in this picture? Answer with a segmentation mask.",
    "Mark the region of the image that shows {expression}.",
    "Which part of this image is {expression}? Please give its mask.",
    "Show me {expression} in this image as a segmentation mask.",
    "Find {expression} and segment it.",
)

# Short sentences placed before "\n<seg>" in answers.
ANSWER_SENTENCES: tuple[str, ...] = (
    "Sure, here is the segmentation mask.",
    "Here is the mask.",
    "Sure, the mask is below.",
    "This is the segmentation result.",
    "Certainly, here is the segmentation.",
    "Here is where it is in the image.",
)

# Semantic segmentation with every class of the dataset listed; "{classes}" is the comma-separated list.
ALL_CLASSES_QUESTIONS: tuple[str, ...] = (
    "Please segment the image into these classes: {classes}.",
    "Label every part of this image with one of these classes: {classes}.",
    "Give a semantic segmentation of the image using the classes {classes}.",
    "Divide this picture into regions of the following categories: {classes}.",
    "Segment everything in the image. Possible classes: {classes}.",
)

# Semantic segmentation of a subset of classes; everything else is background.
PARTIAL_CLASSES_QUESTIONS: tuple[str, ...] = (
    "Please segment only these classes in the image: {classes}.",
    "Segment the following classes and treat the rest as background: {classes}.",
    "Find and segment these categories in the picture: {classes}.",
    "Which regions of the image belong to {classes}? Give the segmentation.",
    "Mark where {classes} appear in this image.",
)

# Conditional segmentation: the listed classes may or may not be present.
CONDITION_QUESTIONS: tuple[str, ...] = (
    "Segment whichever of these classes appear in the image: {classes}.",
    "Some of these classes may be in the image: {classes}. Segment the ones that are.",
    "Check the image for {classes} and segment any you find.",
    "If any of {classes} are visible, please segment them.",
    "Look for {classes} in this picture and give a mask of those present.",
)

# Objects and their parts ("the handle of the mug"); "{expression}" names the object or part.
PART_QUESTIONS: tuple[str, ...] = (
    "Please segment the {expression} in this image.",
    "Can you segment the {expression}?",
    "Where is the {expression} in this picture? Answer with a mask.",
    "Mark the {expression} in the image.",
    "Show the region of the {expression} as a segmentation mask.",
)

# Grounded conversation generation: a caption with marked phrases and their masks (text4seg.grounded).
# Template 0 is GLaMM's GCG evaluation instruction.
GCG_QUESTIONS: tuple[str, ...] = (
    "Could you please give me a detailed description of the image? Please respond with interleaved "
    "segmentation masks for the corresponding parts of the answer.",
    "Can you provide a thorough description of this image? Please output with interleaved segmentation masks "
    "for the corresponding phrases.",
    "Please describe the image in detail and ground the objects you mention with segmentation masks.",
    "Describe this picture and give a mask for each thing you name.",
)

# One or more whole objects, every part labelled ("the dog into its parts"); "{objects}" names the objects.
OBJECT_PARTS_QUESTIONS: tuple[str, ...] = (
    "Please segment the {objects} into parts and label each part.",
    "Can you divide the {objects} in this image into their parts?",
    "Segment each part of the {objects} separately.",
    "Show the parts of the {objects} in this picture as a segmentation.",
    "Label every part of the {objects} in the image.",
)

# Named parts of one object ("the head, tail of the dog"); the named parts may be absent from the image.
OBJECT_PART_QUESTIONS: tuple[str, ...] = (
    "Please segment the {parts} of the {object} in this image.",
    "Can you segment the {parts} of the {object}?",
    "Show the {parts} of the {object} in this picture as a segmentation mask.",
    "Mark the {parts} of the {object} in the image.",
    "Find the {parts} of the {object} and segment them.",
)

SEMANTIC_FAMILIES: dict[str, tuple[str, ...]] = {
    "all": ALL_CLASSES_QUESTIONS,
    "partial": PARTIAL_CLASSES_QUESTIONS,
    "condition": CONDITION_QUESTIONS,
}


def _choose(family: tuple[str, ...], name: str, rng: random.Random | None, template: int | None) -> str:
    """Template ``template`` if given, else a seeded random one, else template 0."""
    if template is not None:
        try:
            index = operator.index(template)
        except TypeError:
            raise ValueError(f"template {template!r}: expected an int index into {name}") from None
        if not 0 <= index < len(family):
            raise ValueError(f"template {template!r}: {name} has templates 0..{len(family) - 1}")
        return family[index]
    if rng is None:
        return family[0]
    return family[rng.randrange(len(family))]


def _check_text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name}: expected a non-empty str, got {value!r}")
    return value


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def referring_question(expression: str, rng: random.Random | None = None, template: int | None = None) -> str:
    """A question asking to segment the object described by ``expression``.

    Args:
        expression: the referring expression, inserted as is.
        rng: picks a template from :data:`REFERRING_QUESTIONS`; None -> template 0 (evaluation).
        template: fixed template index (overrides ``rng``).
    """
    _check_text(expression, "expression")
    return _choose(REFERRING_QUESTIONS, "REFERRING_QUESTIONS", rng, template).format(expression=expression)


def part_question(expression: str, rng: random.Random | None = None, template: int | None = None) -> str:
    """A question asking to segment an object or object part (:data:`PART_QUESTIONS`)."""
    _check_text(expression, "expression")
    return _choose(PART_QUESTIONS, "PART_QUESTIONS", rng, template).format(expression=expression)


def object_parts_question(objects: Sequence[str], rng: random.Random | None = None,
                          template: int | None = None) -> str:
    """A question asking for every part of ``objects`` (:data:`OBJECT_PARTS_QUESTIONS`, names joined by ``", "``)."""
    if isinstance(objects, str) or not objects:
        raise ValueError(f"objects: expected a non-empty sequence of names, got {objects!r}")
    for name in objects:
        _check_text(name, "objects")
    return _choose(OBJECT_PARTS_QUESTIONS, "OBJECT_PARTS_QUESTIONS", rng, template).format(objects=", ".join(objects))


def object_part_question(obj: str, parts: Sequence[str], rng: random.Random | None = None,
                         template: int | None = None) -> str:
    """A question asking for the named ``parts`` of one object ``obj`` (:data:`OBJECT_PART_QUESTIONS`)."""
    _check_text(obj, "object")
    if isinstance(parts, str) or not parts:
        raise ValueError(f"parts: expected a non-empty sequence of names, got {parts!r}")
    for name in parts:
        _check_text(name, "parts")
    return _choose(OBJECT_PART_QUESTIONS, "OBJECT_PART_QUESTIONS", rng, template).format(
        object=obj, parts=", ".join(parts))


def semantic_question(
    class_names: Sequence[str],
    family: str = "all",
    rng: random.Random | None = None,
    template: int | None = None,
) -> str:
    """A semantic segmentation question listing ``class_names`` (joined with ``", "``, order kept).

    Args:
        class_names: class names to list (at least one).
        family: ``"all"`` (every class of the dataset), ``"partial"`` (a subset, rest is background) or
            ``"condition"`` (classes that may be absent).
        rng: picks a template of the family; None -> template 0 (evaluation).
        template: fixed template index (overrides ``rng``).
    """
    if family not in SEMANTIC_FAMILIES:
        raise ValueError(f"family {family!r}: expected one of {sorted(SEMANTIC_FAMILIES)}")
    if isinstance(class_names, str) or not class_names:
        raise ValueError(f"class_names: expected a non-empty sequence of names, got {class_names!r}")
    for name in class_names:
        _check_text(name, "class_names")
    name = f"{family.upper()}_CLASSES_QUESTIONS" if family != "condition" else "CONDITION_QUESTIONS"
    return _choose(SEMANTIC_FAMILIES[family], name, rng, template).format(classes=", ".join(class_names))


def gcg_question(rng: random.Random | None = None, template: int | None = None) -> str:
    """A grounded-caption request (:data:`GCG_QUESTIONS`); None -> template 0 (evaluation)."""
    return _choose(GCG_QUESTIONS, "GCG_QUESTIONS", rng, template)


def answer_text(descriptor: str, rng: random.Random | None = None, template: int | None = None) -> str:
    """An answer: a sentence from :data:`ANSWER_SENTENCES`, a newline, and ``<seg>descriptor</seg>``."""
    sentence = _choose(ANSWER_SENTENCES, "ANSWER_SENTENCES", rng, template)
    return wrap_descriptor(descriptor, sentence)


def conversation_item(
    item_id: str,
    image: str | Sequence[str],
    height: int,
    width: int,
    rounds: Sequence[tuple[str, str]],
    crop_size: Sequence[int] | None = None,
) -> dict:
    """One training item in the Text4Seg / LLaVA JSON format.

    Args:
        item_id: unique id of the item.
        image: image path relative to the data root, or a list of them (context frames, then the frame the
            answers are about): the first question then starts with one ``"<image>\\n"`` per image.
        height: image height in pixels.
        width: image width in pixels.
        rounds: ``(question, answer)`` pairs, at least one; only the first question gets ``"<image>\\n"``.
        crop_size: optional ``[left, top, right, bottom]`` crop box in pixels.

    Returns:
        ``{"id", "image", "height", "width", ["crop_size",] "conversations": [{"from": "human", "value":
        "<image>\\n" + q0}, {"from": "gpt", "value": a0}, ...]}``.
    """
    _check_text(item_id, "item_id")
    paths = [image] if isinstance(image, str) else list(image)
    if not paths:
        raise ValueError("image: expected a path or a non-empty list of paths")
    for k, path in enumerate(paths):
        _check_text(path, "image" if isinstance(image, str) else f"image[{k}]")
    for name, value in (("height", height), ("width", width)):
        if not _is_int(value) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    if isinstance(rounds, str) or not rounds:
        raise ValueError(f"rounds: expected at least one (question, answer) pair, got {rounds!r}")
    conversations = []
    for k, pair in enumerate(rounds):
        if isinstance(pair, str) or len(pair) != 2:
            raise ValueError(f"rounds[{k}]: expected a (question, answer) pair, got {pair!r}")
        question, answer = pair
        _check_text(question, f"rounds[{k}] question")
        _check_text(answer, f"rounds[{k}] answer")
        if IMAGE_TOKEN in question:
            raise ValueError(f"rounds[{k}] question contains {IMAGE_TOKEN!r}; it is added to the first turn")
        value = f"{IMAGE_TOKEN}\n" * len(paths) + question if k == 0 else question
        conversations.append({"from": "human", "value": value})
        conversations.append({"from": "gpt", "value": answer})
    item: dict = {"id": item_id, "image": image if isinstance(image, str) else paths, "height": int(height),
                  "width": int(width)}
    if crop_size is not None:
        box = list(crop_size)
        if len(box) != 4 or not all(_is_int(v) for v in box):
            raise ValueError(f"crop_size: expected [left, top, right, bottom] ints, got {crop_size!r}")
        item["crop_size"] = [int(v) for v in box]
    item["conversations"] = conversations
    return item
