"""Image + query -> descriptor text -> mask: the inference API.

``Segmenter`` owns the prompt wording (from the model's ``text4seg_config.json``) and the decoding of the answer
into masks; a :class:`text4seg.decoding.GenerationBackend` owns text generation, so tests can plug in a stub and
decoding strategies live in :mod:`text4seg.decoding` (:class:`text4seg.decoding.HFGenerationBackend` wraps a
transformers model + processor).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from PIL import Image

from text4seg.config import Text4SegConfig
from text4seg.decoding.generation import GeneratedText, GenerationBackend
from text4seg.descriptors import (
    Instance,
    LabelMap,
    decode_descriptor,
    grid_to_mask,
    instances_from_grid,
    referring_mask,
)
from text4seg.grounded import GroundedAnswer
from text4seg.options import DecodingOptions, LoadOptions, split_options

__all__ = ["SegmentationResult", "Segmenter"]

logger = logging.getLogger(__name__)

_ImageLike = str | os.PathLike | Image.Image | np.ndarray


@dataclass
class SegmentationResult:
    """One answered query.

    Attributes:
        query: the expression, instruction or comma-joined class list asked.
        text: the model's full answer.
        grid: (H, W) object array of str labels decoded from the answer.
        repairs: fixes applied while decoding (empty for a well-formed answer), plus unknown class names for
            semantic prompts.
        mask: (H0, W0) bool at the original image size; int64 class ids for semantic prompts (the unknown-label
            id is 255, or 65535 for lists of more than 255 classes).
        seconds: generation wall time (batched prompts share theirs equally).
        tokens: generated tokens.
        forward_passes: decoder forward passes of its generation batch.
        prompt: the user-turn text sent to the model.
        form: descriptor form found (``"rle"``, ``"plain"`` or ``"empty"``).
        extra: more about the answer. A chunked class list (``chunk_size=``) puts there ``"chunks"``: per chunk
            a dict with its ``classes``, ``prompt``, ``text``, ``form``, ``repairs``, ``tokens``,
            ``forward_passes``, ``seconds`` and ``label_scores`` (label -> mean log-probability, or None), and
            ``"cell_chunk"``: the (H, W) int64 grid of the chunk each cell's label came from (-1: background
            in every chunk). The result's ``text`` is then the merged grid as a descriptor, ``prompt`` the
            chunks' prompts one per line, ``form`` their common form (else ``"mixed"``), ``tokens``,
            ``forward_passes`` and ``seconds`` the chunks' sums (chunks answered in one batch each count that
            batch's passes).
        instances: instance-aware requests (``instances=True``): one :class:`~text4seg.descriptors.Instance`
            per label (``"person 2"``, or a class label such as ``"sky"``), with its mask and score; else None.
            ``mask`` is then an int64 map: 0 = no segment, n = the n-th instance.
        token_ids: the answer's token ids (empty when the backend does not give them); pass the result as
            ``previous=`` to :meth:`Segmenter.segment_many` for temporal drafts.
    """

    query: str
    text: str
    grid: np.ndarray
    repairs: list[str]
    mask: np.ndarray
    seconds: float
    tokens: int
    forward_passes: int
    prompt: str = ""
    form: str = ""
    extra: dict = field(default_factory=dict)
    instances: list[Instance] | None = None
    token_ids: tuple[int, ...] = ()

    @property
    def foreground_share(self) -> float:
        """Share of pixels in [0, 1] that are foreground (bool mask) or not background id 0 (label map)."""
        if self.mask.size == 0:
            return 0.0
        return float(np.count_nonzero(self.mask)) / float(self.mask.size)


class Segmenter:
    """Segments images from referring expressions, free-form instructions or class lists.

    Args:
        backend: generates answers (see :class:`GenerationBackend`).
        config: the model's :class:`Text4SegConfig` (prompt wording, grid, background label).
    """

    def __init__(self, backend: GenerationBackend, config: Text4SegConfig) -> None:
        self.backend = backend
        self.config = config

    @classmethod
    def from_pretrained(
        cls,
        model: str | os.PathLike,
        adapter: str | os.PathLike | None = None,
        *,
        load: LoadOptions | None = None,
        decoding: DecodingOptions | str | None = None,
        batch_size: int = 16,
        question_template: str | None = None,
        **options: Any,
    ) -> Segmenter:
        """Load a model (+ adapter) and its ``text4seg_config.json``.

        Args:
            model: hub id or directory of a model, or an adapter directory (its base is found automatically).
            adapter: LoRA adapter directory.
            load: device, dtype, quantization, attention kernel (:class:`text4seg.options.LoadOptions`).
            decoding: a :class:`text4seg.options.DecodingOptions`, or just the mode: ``"plain"`` greedy,
                ``"constrained"`` (never malformed), ``"fast"`` (default; the tokens of ``"constrained"`` in far
                fewer forward passes) or ``"fast-unconstrained"``; see :mod:`text4seg.decoding`.
            batch_size: prompts per generation call.
            question_template: override the stored referring question (must contain ``{expression}``), e.g. to
                match the wording a model was trained with.
            **options: fields of :class:`LoadOptions` (``device="cpu"``, ``load_in_4bit=True``, ...) or of
                :class:`DecodingOptions` (``max_new_tokens=...``), merged into ``load`` / ``decoding``.
        """
        from text4seg.decoding.backend import HFGenerationBackend
        from text4seg.modeling.loading import load_model

        load_fields, rest = split_options(LoadOptions, options)
        decoding_fields, unknown = split_options(DecodingOptions, rest)
        if unknown:
            raise TypeError(f"Segmenter.from_pretrained: unknown options {sorted(unknown)}")
        load = replace(load or LoadOptions(), **load_fields)
        if isinstance(decoding, str):
            decoding = DecodingOptions(decoding=decoding)
        decoding = replace(decoding or DecodingOptions(), **decoding_fields)
        loaded = load_model(model, adapter, load)
        config = loaded.config
        if question_template is not None:
            config = Text4SegConfig.from_dict({**config.to_dict(), "question_template": question_template})
        backend = HFGenerationBackend(loaded.model, loaded.processor, config, decoding, batch_size=batch_size)
        return cls(backend, config)

    # ---- prompts
    def referring_prompt(self, expression: str) -> str:
        """The config's question template filled with ``expression``; with the ``reference`` profile (a converted
        official checkpoint) the expression's commas are removed first, as the original evaluation does."""
        if not isinstance(expression, str) or not expression.strip():
            raise ValueError(f"query: expected a non-empty expression, got {expression!r}")
        if self.config.profile == "reference":
            expression = expression.replace(",", "")
        return self.config.question_template.format(expression=expression)

    def semantic_prompt(self, class_names: Sequence[str]) -> str:
        """A question listing ``class_names`` (the config's semantic template, else the evaluation template)."""
        if isinstance(class_names, str) or not class_names:
            raise ValueError(f"classes: expected a non-empty list of class names, got {class_names!r}")
        if self.config.semantic_template is not None:
            return self.config.semantic_template.format(classes=", ".join(class_names))
        from text4seg.prompts import semantic_question

        return semantic_question(list(class_names), family="all", template=0)

    def instance_prompt(self, class_names: Sequence[str]) -> str:
        """The instance-aware question listing ``class_names`` (template 0 of
        :data:`text4seg.prompts.CONDITION_QUESTIONS`, as the instance builders ask it); the answer labels
        instances ``"{class} {k}"`` and whole classes by name."""
        if isinstance(class_names, str) or not class_names:
            raise ValueError(f"classes: expected a non-empty list of class names, got {class_names!r}")
        from text4seg.prompts import semantic_question

        return semantic_question(list(class_names), family="condition", template=0)

    # ---- decoding
    def _result(
        self,
        query: str,
        prompt: str,
        generated: GeneratedText,
        out_hw: tuple[int, int],
        classes: Sequence[str] | None,
        upsample: str,
        instances: bool = False,
    ) -> SegmentationResult:
        height, width = self.config.grid
        decoded = decode_descriptor(generated.text, height, width, background=self.config.background)
        repairs = list(decoded.repairs)  # an answer without descriptor says so here ("no descriptor found...")
        found = None
        if instances:
            from text4seg.decoding.labels import MAX_INSTANCES

            found, unknown = instances_from_grid(decoded.labels, list(classes), out_hw, mode=upsample,
                                                 background=self.config.background, max_instances=MAX_INSTANCES)
            repairs.extend(f"unknown label {name!r}: no instance" for name in unknown)
            mask = np.zeros(out_hw, dtype=np.int64)
            for n, inst in enumerate(found, start=1):
                mask[inst.mask] = n
        elif classes is None:
            mask = referring_mask(decoded.labels, out_hw, mode=upsample, background=self.config.background)
        else:
            label_map = _class_label_map(classes, self.config.background)
            _, unknown = label_map.ids(decoded.labels)
            repairs.extend(f"unknown class {name!r}: id {label_map.fallback_id}" for name in unknown)
            mask = grid_to_mask(decoded.labels, label_map, out_hw, mode=upsample)
        return SegmentationResult(
            query=query,
            text=generated.text,
            grid=decoded.labels,
            repairs=repairs,
            mask=mask,
            seconds=generated.seconds,
            tokens=generated.tokens,
            forward_passes=generated.forward_passes,
            prompt=prompt,
            form=decoded.form,
            instances=found,
            token_ids=tuple(getattr(generated, "ids", ()) or ()),
        )

    def _requests(
        self, query: str | Sequence[str] | None, instruction: str | None, classes: Sequence[str] | None,
        instances: bool = False, chunk_size: int | None = None,
    ) -> tuple[list[tuple[str, str]], bool]:
        given = sum(x is not None for x in (query, instruction, classes))
        if given != 1:
            raise ValueError("segment: give exactly one of query, instruction= or classes=")
        if instances and classes is None:
            raise ValueError("segment: instances=True needs classes=[...]")
        if chunk_size is not None:
            from text4seg.chunking import class_chunks

            if classes is None or instances:
                raise ValueError("segment: chunk_size= applies to classes=[...] without instances=True")
            return [(", ".join(chunk), self.semantic_prompt(chunk)) for chunk in class_chunks(classes, chunk_size)], True
        if instances:
            classes = list(classes)
            return [(", ".join(classes), self.instance_prompt(classes))], True
        if instruction is not None:
            if not isinstance(instruction, str) or not instruction.strip():
                raise ValueError(f"instruction: expected a non-empty string, got {instruction!r}")
            return [(instruction, instruction)], True
        if classes is not None:
            classes = list(classes)
            return [(", ".join(classes), self.semantic_prompt(classes))], True
        if isinstance(query, str):
            return [(query, self.referring_prompt(query))], True
        queries = list(query)
        if not queries:
            raise ValueError("query: expected at least one expression")
        return [(q, self.referring_prompt(q)) for q in queries], False

    def segment(
        self,
        image: _ImageLike,
        query: str | Sequence[str] | None = None,
        *,
        instruction: str | None = None,
        classes: Sequence[str] | None = None,
        upsample: str = "nearest",
        instances: bool = False,
        score_instances: bool = True,
        chunk_size: int | None = None,
    ) -> SegmentationResult | list[SegmentationResult]:
        """Segment one image.

        Args:
            image: path, PIL image or HxWx3 uint8 array (EXIF orientation applied, any mode converted).
            query: a referring expression (-> one result) or a list of them (-> a list, generated as a batch).
            instruction: free-form text sent to the model as is (reasoning segmentation).
            classes: class names for a semantic prompt; the result's mask is an int64 label map with the index
                of each class in ``classes`` (255 for labels that match none; background -> 255 unless
                ``"others"`` is listed).
            upsample: grid -> pixel upsampling, ``"nearest"`` or ``"smooth"``.
            instances: with ``classes``: ask the instance-aware question (:meth:`instance_prompt`) and decode
                ``"{class} {k}"`` labels into ``result.instances``, one mask per instance.
            score_instances: score each instance by its label tokens' mean log-probability (one teacher-forced
                pass per answer, when the backend offers ``label_scores``): ``Instance.score = exp(mean)``.
            chunk_size: with ``classes``: ask several prompts, each listing at most ``chunk_size`` of the classes
                in order, and merge their answers into one label map over all of ``classes``: per grid cell the
                label (not background) whose tokens have the highest mean log-probability (one teacher-forced
                pass per answer, when the backend offers ``label_scores``; without it the first chunk that names
                a class wins); see :mod:`text4seg.chunking`. None: one prompt listing every class.

        Returns:
            :class:`SegmentationResult` (a list for a list of queries); masks at the image's original size.
        """
        single = query is None or isinstance(query, str)
        results = self.segment_many([(image, query)], instruction=instruction, classes=classes, upsample=upsample,
                                    instances=instances, score_instances=score_instances, chunk_size=chunk_size)
        return results[0][0] if single else results[0]

    def segment_many(
        self,
        items: Sequence[tuple[_ImageLike, str | Sequence[str] | None]],
        *,
        instruction: str | None = None,
        classes: Sequence[str] | None = None,
        upsample: str = "nearest",
        instances: bool = False,
        score_instances: bool = True,
        previous: Sequence[Sequence[SegmentationResult | str | Sequence[int] | None] | None] | None = None,
        chunk_size: int | None = None,
    ) -> list[list[SegmentationResult]]:
        """Segment several images, each with its expressions; prompts of all images are generated in batches
        when the backend offers ``generate_batch``.

        Args:
            items: ``(image, queries)`` pairs (queries: one expression or a list). With ``instruction=`` or
                ``classes=`` the queries must be None and that request is asked of every image. An image may
                be a list of frames: context frames, then the frame the masks are about (a model trained with
                context frames; answered with ``constrained`` decoding in the fast modes).
            upsample: ``"nearest"`` or ``"smooth"``.
            instances, score_instances: instance-aware requests, as in :meth:`segment`.
            previous: per item, None or one entry per query: an earlier answer to the same query (the previous
                video frame's :class:`SegmentationResult`, its text or token ids, or None), which the ``fast``
                modes draft from. Answers are unchanged (the drafts are verified), usually in fewer passes.
            chunk_size: with ``classes``: most classes per prompt, the answers merged (as in :meth:`segment`);
                the chunks of all images are generated in one batched call. Not with ``previous``.

        Returns:
            Per item, its results in query order.
        """
        from text4seg.images import load_image

        if upsample not in ("nearest", "smooth"):
            raise ValueError(f"upsample {upsample!r}: expected 'nearest' or 'smooth'")
        if chunk_size is not None and previous is not None:
            raise ValueError("segment_many: previous= drafts do not apply to chunked class lists (chunk_size=)")
        images: list[Any] = []
        requests: list[list[tuple[str, str]]] = []
        for image, query in items:
            if isinstance(image, (list, tuple)):  # context frames, then the frame the answer is about
                if not image:
                    raise ValueError("segment: an empty list of frames")
                loaded = [load_image(frame) for frame in image]
                loaded = loaded[0] if len(loaded) == 1 else loaded
            else:
                loaded = load_image(image)
            reqs, _ = self._requests(query, instruction, classes, instances, chunk_size)
            images.append(loaded)
            requests.append(reqs)
        flat_images = [images[i] for i, reqs in enumerate(requests) for _ in reqs]
        flat_prompts = [prompt for reqs in requests for _, prompt in reqs]
        drafts = None if previous is None else _previous_answers(previous, [len(r) for r in requests])
        if drafts is not None and _takes_previous(self.backend):
            generated = self.backend.generate_batch(flat_images, flat_prompts, previous=drafts)
        elif hasattr(self.backend, "generate_batch"):
            generated = self.backend.generate_batch(flat_images, flat_prompts)
        else:
            generated = []
            for image, reqs in zip(images, requests):
                generated.extend(self.backend.generate(image, [prompt for _, prompt in reqs]))
        if len(generated) != len(flat_prompts):
            raise ValueError(f"backend returned {len(generated)} answers for {len(flat_prompts)} prompts")
        if chunk_size is not None:
            return self._merge_chunks(images, requests, generated, list(classes), chunk_size, upsample)
        out: list[list[SegmentationResult]] = []
        k = 0
        for image, reqs in zip(images, requests):
            target = image[-1] if isinstance(image, list) else image
            out_hw = (target.height, target.width)
            results = []
            for query, prompt in reqs:
                results.append(self._result(query, prompt, generated[k], out_hw, classes, upsample, instances))
                k += 1
            out.append(results)
        if instances and score_instances and hasattr(self.backend, "label_scores"):
            self._score_instances(images, out)
        return out

    def _merge_chunks(self, images: list[Any], requests: list[list[tuple[str, str]]], generated: list[GeneratedText],
                      classes: list[str], chunk_size: int, upsample: str) -> list[list[SegmentationResult]]:
        """One result per image from its chunk answers (:func:`text4seg.chunking.merge_chunk_grids`), the
        answers scored by ``backend.label_scores`` (one pass per answer) when the backend offers it."""
        from text4seg.chunking import chunked_result_fields, class_chunks, merge_chunk_grids

        height, width = self.config.grid
        decoded = [decode_descriptor(g.text, height, width, background=self.config.background) for g in generated]
        flat_images = [image for image, reqs in zip(images, requests) for _ in reqs]
        flat_prompts = [prompt for reqs in requests for _, prompt in reqs]
        scores: list[Any] = [None] * len(generated)
        if hasattr(self.backend, "label_scores"):
            scores = self.backend.label_scores(flat_images, flat_prompts, [g.text for g in generated])
            if len(scores) != len(generated):
                raise ValueError(f"backend returned {len(scores)} label scores for {len(generated)} answers")
        label_map = _class_label_map(classes, self.config.background)
        chunks = class_chunks(classes, chunk_size)
        out, k = [], 0
        for image, reqs in zip(images, requests):
            target = image[-1] if isinstance(image, list) else image
            part = slice(k, k + len(reqs))
            k += len(reqs)
            merged = merge_chunk_grids([d.labels for d in decoded[part]], scores[part], label_map)
            fields = chunked_result_fields(chunks, [prompt for _, prompt in reqs], generated[part], decoded[part],
                                           scores[part], merged, label_map, rle=self.config.descriptor_form != "plain")
            mask = grid_to_mask(merged.labels, label_map, (target.height, target.width), mode=upsample)
            out.append([SegmentationResult(query=", ".join(classes), grid=merged.labels, mask=mask, **fields)])
        return out

    def _score_instances(self, images: list[Image.Image], results: list[list[SegmentationResult]]) -> None:
        """Fill ``Instance.score`` = exp(mean log-probability of the label's tokens) (1 pass per answer)."""
        import math

        pending = [(image, res) for image, group in zip(images, results) for res in group if res.instances]
        if not pending:
            return
        scores = self.backend.label_scores([image for image, _ in pending], [res.prompt for _, res in pending],
                                           [res.text for _, res in pending])
        for (_, res), by_label in zip(pending, scores):
            for inst in res.instances:
                value = by_label.get(" ".join(inst.label.split()))
                inst.score = None if value is None else math.exp(value)

    def ground(self, image: _ImageLike, instruction: str | None = None, *, upsample: str = "nearest",
               score: bool = True) -> GroundedAnswer:
        """A grounded caption of one image (GCG): a caption whose phrases each get a mask.

        Args:
            image: path, PIL image or HxWx3 uint8 array.
            instruction: the request; default :func:`text4seg.prompts.gcg_question` (GLaMM's GCG instruction).
                The grammar modes constrain the answer to a marked caption and a descriptor labelled by its
                phrases (:mod:`text4seg.decoding.caption`).
            upsample: grid -> pixel upsampling, ``"nearest"`` or ``"smooth"``.
            score: score each phrase by its label tokens' mean log-probability (one teacher-forced pass, when
                the backend offers ``label_scores``): ``GroundedPhrase.score = exp(mean)``.

        Returns:
            :class:`text4seg.grounded.GroundedAnswer`; phrase masks at the image's original size.
        """
        return self.ground_many([image], instruction, upsample=upsample, score=score)[0]

    def ground_many(self, images: Sequence[_ImageLike], instruction: str | None = None, *,
                    upsample: str = "nearest", score: bool = True) -> list[GroundedAnswer]:
        """Grounded captions of several images, generated in batches like :meth:`segment_many`; arguments as
        :meth:`ground`. Returns one :class:`~text4seg.grounded.GroundedAnswer` per image, in order."""
        from text4seg.grounding import ground_many

        return ground_many(self, images, instruction, upsample=upsample, score=score)

    def segment_video(self, frames: Sequence[Any], expression: str | None = None, **options: Any) -> Any:
        """Masks of ``expression`` (or ``instruction=``) through a video: per frame or keyframes + SAM2
        propagation; see :func:`text4seg.video_segment.segment_video` for the options.

        Returns:
            :class:`text4seg.video_segment.VideoSegmentation` (``.masks`` T x H x W bool, ``.keyframes``,
            ``.scores``, ``.sources``).
        """
        from text4seg.video_segment import segment_video

        return segment_video(self, frames, expression, **options)

    def with_config(self, **changes: Any) -> Segmenter:
        """A segmenter sharing this backend's model with some config fields changed (validated)."""
        config = Text4SegConfig.from_dict({**self.config.to_dict(), **changes}, source="with_config")
        with_config = getattr(self.backend, "with_config", None)
        return Segmenter(with_config(config) if with_config is not None else self.backend, config)


def _class_label_map(classes: Sequence[str], background: str) -> LabelMap:
    """Class name -> index in ``classes``; unknown labels get 255, or 65535 past 255 classes (as dataset ignore ids)."""
    from text4seg.datasets.semantic import ignore_id

    return LabelMap(list(classes), background=background, fallback_id=ignore_id(len(classes)))


def _takes_previous(backend: Any) -> bool:
    """Whether ``backend.generate_batch`` accepts ``previous=`` (other backends simply answer without drafts)."""
    import inspect

    method = getattr(backend, "generate_batch", None)
    if method is None:
        return False
    try:
        return "previous" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


def _previous_answers(previous: Sequence[Any], counts: Sequence[int]) -> list[Any]:
    """``segment_many(previous=...)`` flattened to one entry per prompt (text or token ids or None)."""
    if isinstance(previous, str) or len(previous) != len(counts):
        raise ValueError(f"previous: expected one entry per item ({len(counts)}), got {previous!r:.80}")
    out: list[Any] = []
    for k, (entry, count) in enumerate(zip(previous, counts)):
        if entry is None:
            out.extend([None] * count)
            continue
        if isinstance(entry, (str, SegmentationResult)) or len(entry) != count:
            raise ValueError(f"previous[{k}]: expected None or a list of {count} earlier answers (one per query)")
        for answer in entry:
            if isinstance(answer, SegmentationResult):
                answer = list(answer.token_ids) if answer.token_ids else answer.text
            out.append(answer)
    return out
