"""Which labels a descriptor answer may use, recovered from the prompt when the caller does not say (no torch)."""

from __future__ import annotations

from text4seg.config import Text4SegConfig
from text4seg.descriptors import MAX_INSTANCES, sanitize_label

__all__ = ["MAX_INSTANCES", "allowed_labels", "grounded_prompt", "instance_labels"]


def instance_labels(classes: list[str], max_instances: int = MAX_INSTANCES) -> list[str]:
    """The labels of an instance-aware answer about ``classes``: each class name (stuff, or a class written
    whole) and ``"{class} {k}"`` for k in 1..``max_instances``, class by class."""
    if isinstance(max_instances, bool) or not isinstance(max_instances, int) or max_instances < 1:
        raise ValueError(f"max_instances {max_instances!r}: expected an int >= 1")
    out = []
    for name in classes:
        out.append(name)
        out.extend(f"{name} {k}" for k in range(1, max_instances + 1))
    return out


def _fill(template: str, field: str, prompt: str) -> str | None:
    """The text that filled ``{field}`` in ``template`` to give ``prompt``, or None when it does not match."""
    head, sep, tail = template.partition("{" + field + "}")
    if not sep:
        return None
    head, tail = head.replace("{{", "{").replace("}}", "}"), tail.replace("{{", "{").replace("}}", "}")
    if len(prompt) < len(head) + len(tail) or not prompt.startswith(head) or not prompt.endswith(tail):
        return None
    return prompt[len(head) : len(prompt) - len(tail)]


def grounded_prompt(prompt: str) -> bool:
    """True for a grounded-caption request (one of :data:`text4seg.prompts.GCG_QUESTIONS`, surrounding
    whitespace ignored): its answer is a marked caption and a descriptor labelled by its phrases
    (:mod:`text4seg.grounded`), whose labels are only known once the caption is written."""
    from text4seg.prompts import GCG_QUESTIONS

    return isinstance(prompt, str) and prompt.strip() in GCG_QUESTIONS


def allowed_labels(prompt: str, config: Text4SegConfig, max_instances: int = MAX_INSTANCES) -> list[str] | None:
    """Labels (background last) an answer to ``prompt`` may use, or None when any label is possible.

    - a semantic prompt (the config's semantic template, else the evaluation template of
      :mod:`text4seg.prompts`): the listed class names (split at ``", "``);
    - an instance-aware prompt (the evaluation template of :data:`text4seg.prompts.CONDITION_QUESTIONS`, as
      :meth:`text4seg.Segmenter.instance_prompt` asks): the listed class names and ``"{class} {k}"`` for
      ``k <= max_instances`` (:func:`instance_labels`);
    - a referring prompt (the config's question template): ``config.fg_label``, or the sanitized expression
      when ``fg_label == "sentence"``;
    - anything else (free-form instructions): ``[fg_label, background]`` for a fixed foreground word, else None.

    A grounded-caption request (:func:`grounded_prompt`) has no fixed label set: the decoder gives it the
    caption grammar instead (:mod:`text4seg.decoding.caption`).

    Args:
        prompt: the user-turn text sent to the model.
        config: the model's config.
        max_instances: highest instance number of instance-aware prompts.

    Returns:
        Sanitized labels without duplicates, the background included, or None.
    """
    from text4seg.prompts import ALL_CLASSES_QUESTIONS, CONDITION_QUESTIONS

    labels: list[str] | None = None
    semantic = config.semantic_template or ALL_CLASSES_QUESTIONS[0]
    classes = _fill(semantic, "classes", prompt)
    instances = _fill(CONDITION_QUESTIONS[0], "classes", prompt) if classes is None else None
    if classes is not None:
        labels = [c for c in classes.split(", ")]
    elif instances is not None:
        labels = instance_labels([sanitize_label(c) for c in instances.split(", ")], max_instances)
    else:
        expression = _fill(config.question_template, "expression", prompt)
        if config.fg_label != "sentence":
            labels = [config.fg_label]
        elif expression is not None:
            labels = [expression]
    if labels is None:
        return None
    out: list[str] = []
    for label in [*labels, config.background]:
        label = sanitize_label(label)
        if label and label not in out:
            out.append(label)
    return out
