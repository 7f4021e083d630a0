"""Benchmark evaluation loop: readers → Segmenter → (SAM) → per-sample records → meters → scores.

Outputs under ``out`` (see :mod:`text4seg.evaluation.shards`): ``run.json``, ``samples.jsonl`` (or one
``samples.rank<R>.jsonl`` per process), ``done.rank<R>-of-<N>.json``, ``scores.json``, ``scores.md``, and
``vis/<index>.png`` overlays of the first ``save_vis`` samples.

A *sample* is one expression of one referring target (each sentence of a RefCOCO ref is scored on its own, as in
the papers) or one image of a semantic dataset; ``index`` numbers the samples of the split in reader order.
Samples of the same image are predicted together (one ``Segmenter.segment`` call with every expression, one SAM
embedding), and shards are whole images: image group ``g`` goes to rank ``g % world_size``.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from text4seg.datasets.semantic import ignore_id
from text4seg.evaluation.lock import RunLock
from text4seg.evaluation.records import SampleLog
from text4seg.evaluation.scoring import Scorer, gt_box, referring_fields, semantic_fields
from text4seg.evaluation.shards import (
    RUN_FILE,
    check_settings,
    completed_records,
    done_file,
    finish_shard,
    merge_shards,
    rank_world,
    samples_file,
)
from text4seg.evaluation.tasks import TaskSpec, resolve_dataset, resolve_split, task_spec
from text4seg.io import write_json_atomic
from text4seg.options import DecodingOptions, LoadOptions

__all__ = ["evaluate", "merge_shards"]



@dataclass
class _Item:
    index: int
    sample: Any  # ReferringSample | SemanticSample
    expression_index: int | None = None
    expression: str | None = None


# ------------------------------------------------------------------------------------------- data side


def _reader(spec: TaskSpec, dataset: str, root: Path, split: str) -> Iterator[Any]:
    from text4seg.datasets import read_referring, read_semantic

    read = read_semantic if spec.kind == "semantic" else read_referring
    return read(dataset, root, split)


def _items(spec: TaskSpec, samples: Iterator[Any], limit: int | None, expressions: str = "all") -> Iterator[_Item]:
    index = 0
    for sample in samples:
        if spec.kind == "semantic":
            entries = [(None, None)]
        else:
            if not sample.expressions:
                raise ValueError(f"sample {sample.id}: no expression to evaluate")
            entries = list(enumerate(sample.expressions))
            if expressions == "first":
                entries = entries[:1]
        for k, expression in entries:
            if limit is not None and index >= limit:
                return
            yield _Item(index, sample, k, expression)
            index += 1


def _image_groups(items: Iterator[_Item]) -> Iterator[list[_Item]]:
    """Consecutive items of the same image (readers yield the refs of an image together)."""
    for _, group in itertools.groupby(items, key=lambda item: item.sample.image):
        yield list(group)


# --------------------------------------------------------------------------------------- model side


def _build_segmenter(model: str | None, adapter: str | None, load: LoadOptions, decoding: DecodingOptions,
                     device: Any) -> Any:
    if model is None:
        raise ValueError("--model is required: a model directory (with text4seg_config.json) or hub id")
    from text4seg.segmenter import Segmenter

    if device is not None and load.device is None:
        load = dataclasses.replace(load, device=str(device))
    return Segmenter.from_pretrained(str(model), None if adapter is None else str(adapter), load=load,
                                     decoding=decoding)


def _build_refiner(refiner: Any, sam_checkpoint: str | None, sam_type: str, device: Any) -> Any:
    if refiner is None or refiner == "none":
        return None
    if refiner == "sam":
        if sam_checkpoint is None:
            raise ValueError("--refiner sam needs --sam-checkpoint (e.g. sam_vit_h_4b8939.pth)")
        from text4seg.refine import SamRefiner

        return SamRefiner.from_checkpoint(sam_checkpoint, sam_type, device=None if device is None else str(device))
    if isinstance(refiner, str):
        raise ValueError(f"refiner {refiner!r}: expected 'none' or 'sam'")
    return refiner  # an object with set_image / refine / refine_labels (e.g. a SamRefiner)


def _check_question(question_index: int | str | None, question_template: str | None) -> None:
    if question_index is not None and question_template is not None:
        raise ValueError("give --question-template or --question-index, not both")
    if question_index is None:
        return
    from text4seg.prompts import ALL_CLASSES_QUESTIONS, REFERRING_QUESTIONS

    if question_index == "random" or isinstance(question_index, bool) or not isinstance(question_index, int):
        raise ValueError(f"--question-index {question_index!r}: evaluation asks one question, give an index K")
    for family, name in ((REFERRING_QUESTIONS, "REFERRING_QUESTIONS"), (ALL_CLASSES_QUESTIONS, "ALL_CLASSES_QUESTIONS")):
        if not 0 <= question_index < len(family):
            raise ValueError(f"--question-index {question_index}: {name} has templates 0..{len(family) - 1}")


def _with_question(segmenter: Any, question_index: int | None, question_template: str | None) -> Any:
    """The segmenter asking template ``K`` of the referring / all-classes families, or a literal referring
    question (None, None: its own wording, the training question stored in ``text4seg_config.json``)."""
    if question_template is not None:
        return segmenter.with_config(question_template=question_template)
    if question_index is None:
        return segmenter
    from text4seg.prompts import ALL_CLASSES_QUESTIONS, REFERRING_QUESTIONS

    return segmenter.with_config(question_template=REFERRING_QUESTIONS[question_index],
                                 semantic_template=ALL_CLASSES_QUESTIONS[question_index])


def _label_map(dataset: str, class_names: list[str], background: str, root: Path | None = None) -> Any:
    """Class name -> dataset id for semantic answers (dataset synonyms accepted, ``others`` -> its id)."""
    from text4seg.descriptors import LabelMap

    try:
        from text4seg.datasets.class_names import class_synonyms

        synonyms = class_synonyms(dataset)
    except (ValueError, KeyError):
        synonyms = {}
    from text4seg.datasets.large_vocab import LARGE_VOCAB_DATASETS, large_vocab_class_names

    if dataset in LARGE_VOCAB_DATASETS and root is not None:
        synonyms = large_vocab_class_names(root, dataset)[1]
    synonyms = {alias: name for alias, name in synonyms.items() if name in class_names}
    return LabelMap(class_names, synonyms=synonyms, background=background, fallback_id=ignore_id(len(class_names)))


# ------------------------------------------------------------------------------------------ evaluate


def evaluate(
    task: str,
    model: str | os.PathLike | None = None,
    adapter: str | os.PathLike | None = None,
    *,
    data_root: str | os.PathLike = "playground/data",
    dataset: str | None = None,
    split: str | None = None,
    refiner: Any = "none",
    sam_checkpoint: str | os.PathLike | None = None,
    sam_type: str = "vit_h",
    limit: int | None = None,
    out: str | os.PathLike | None = None,
    save_vis: int = 0,
    question_index: int | None = None,
    question_template: str | None = None,
    expressions: str = "all",
    batch_size: int = 1,
    frame_stride: int = 1,
    save_masks: bool = False,
    video_strategy: str = "per-frame",
    keyframes: str = "first",
    candidates: int = 4,
    sam2: str | os.PathLike | None = None,
    context_frames: int = 0,
    class_chunk: int | None = None,
    similarity_model: str | os.PathLike | None = None,
    load: LoadOptions | None = None,
    decoding: DecodingOptions | str | None = None,
    segmenter: Any = None,
    rank: int | None = None,
    world_size: int | None = None,
    device: Any = None,
    progress: bool = True,
) -> dict | None:
    """Evaluate a Text4Seg model on one benchmark split; resumable and shardable.

    Args:
        task: ``"refer-seg"``, ``"rec"``, ``"grefer-seg"``, ``"reason-seg"``, ``"semantic-seg"``,
            ``"part-seg"``, ``"synthetic"``, or the video tasks ``"rvos"`` and ``"reasonvos"`` (per-frame
            inference, see :mod:`text4seg.evaluation.video`; :data:`text4seg.evaluation.tasks.TASKS`).
        model: model directory or hub id (ignored when ``segmenter`` is given).
        adapter: LoRA adapter directory applied on ``model``.
        data_root: data root of the readers (the reference layout, ``playground/data``).
        dataset: reader name (``refcoco``, ``refcoco+``, ``refcocog``, ``refclef``, ``grefcoco``, ``reasonseg``,
            ``ade20k``, ``pascal_context``, ``pascal_voc``, ``synthetic``, for ``part-seg`` ``paco_lvis``,
            ``pascal_part`` (each image asked for the parts of its objects); aliases ``ADE-150``, ``PC-59``,
            ``VOC-20``; for ``rvos`` ``ref-youtube-vos``, ``ref-davis17``, ``mevis``, ``synthetic-video``, for
            ``reasonvos`` ``revos``); default: the task's usual dataset.
        split: split as the dataset spells it (``val``, ``testA``, ``validation``, ``valid_u``, ...); default
            ``val``, for video datasets their evaluation split (:data:`~text4seg.evaluation.tasks.DEFAULT_SPLITS`).
        refiner: ``"none"``, ``"sam"`` (needs ``sam_checkpoint``) or a refiner object (``SamRefiner``).
        sam_checkpoint: official SAM checkpoint file.
        sam_type: ``"vit_h"``, ``"vit_l"`` or ``"vit_b"``.
        limit: evaluate only samples ``0 .. limit-1``.
        out: output folder; default ``runs/eval/<task>_<dataset>_<split>``.
        save_vis: write overlays of the first ``save_vis`` samples to ``out/vis`` (video tasks: one GIF per
            expression, ``out/vis/<video>/<exp_id>.gif``).
        question_index: ask template K of :data:`text4seg.prompts.REFERRING_QUESTIONS` (and of the
            all-classes questions); default: the model's own training question (``text4seg_config.json``).
        question_template: a literal referring question containing ``{expression}`` instead.
        expressions: ``"all"`` expressions of each referring sample, or only the ``"first"``.
        batch_size: images (video tasks: segmented frames) per batched ``Segmenter.segment_many`` call (all
            expressions of one image or frame always go in one call).
        frame_stride: video tasks: segment every k-th frame; the frames between get the mask of the nearest
            segmented frame.
        video_strategy, keyframes, candidates, sam2, context_frames: video tasks: ``per-frame`` or ``propagate``
            (keyframes answered by the model, carried by the SAM2 model ``sam2``), the keyframe rule
            (``first|middle|best|stride:N``), the ``best`` candidates, and the context frames of a model trained
            with them (see :func:`text4seg.video_segment.segment_video`).
        class_chunk: ``semantic-seg``: ask each image several prompts listing at most this many classes and merge
            the answers by their label scores (``Segmenter.segment(..., chunk_size=)``, :mod:`text4seg.chunking`),
            for class lists too long for one prompt (ADE-847, PC-459); 0 or None: one prompt with every class.
        save_masks: video tasks: write ``out/masks/<video>/<exp_id>/<frame>.png`` (always done, with
            ``out/submission.zip``, for splits without ground truth).
        similarity_model: ``gcg``: a local transformers model directory (e.g. ``bert-base-uncased``) for mask
            recall's phrase similarity, GLaMM's; default: an offline bag-of-words cosine
            (:mod:`text4seg.gcg_metrics`).
        load: device, dtype, 4/8-bit, attention kernel, remote code (:class:`~text4seg.options.LoadOptions`).
        decoding: decoding mode or :class:`~text4seg.options.DecodingOptions` (default ``fast``).
        segmenter: a ready :class:`text4seg.Segmenter` (e.g. with a stub backend in tests); ``load`` and
            ``decoding`` are then unused.
        rank, world_size: this process's shard; default from ``accelerate`` (``PartialState``) if installed,
            else a single process. With explicit values and ``world_size > 1`` nothing is merged: call
            :func:`merge_shards` once every shard is done.
        device: device for the model and SAM (default: accelerate's device, else the loaders' choice).
        progress: show a progress bar (rank 0 only).

    Returns:
        The scores (as written to ``out/scores.json``) on the process that merged, else None.
    """
    spec = task_spec(task)
    dataset = resolve_dataset(spec, dataset)
    class_chunk = _check_class_chunk(spec, class_chunk)
    if spec.kind in ("gcg", "panoptic", "instance"):
        _refuse_unused(task, {"save_vis": (save_vis, 0), "expressions": (expressions, "all"),
                              "frame_stride": (frame_stride, 1), "save_masks": (save_masks, False),
                              "video_strategy": (video_strategy, "per-frame"), "sam2": (sam2, None),
                              "context_frames": (context_frames, 0), "question_template": (question_template, None),
                              **({} if spec.kind == "gcg" else {"question_index": (question_index, None),
                                                                "batch_size": (batch_size, 1)})})
    if spec.kind == "gcg":
        return _evaluate_gcg(spec, dataset, model, adapter, data_root=data_root, split=split, limit=limit, out=out,
                             load=load, decoding=decoding, segmenter=segmenter, device=device, progress=progress,
                             refiner=refiner, world_size=world_size, batch_size=batch_size,
                             question_index=question_index, similarity_model=similarity_model)
    if similarity_model is not None:
        raise ValueError(f"task {task}: --similarity-model applies to gcg")
    if spec.kind in ("panoptic", "instance"):
        return _evaluate_instances(spec, dataset, model, adapter, data_root=data_root, split=split, limit=limit,
                                   out=out, load=load, decoding=decoding, segmenter=segmenter, device=device,
                                   progress=progress, refiner=refiner, world_size=world_size)
    split = resolve_split(spec, dataset, split)
    root = Path(data_root)
    if limit is not None and int(limit) < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if int(save_vis) < 0:
        raise ValueError(f"save_vis must be >= 0, got {save_vis}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if expressions not in ("all", "first"):
        raise ValueError(f"expressions {expressions!r}: expected 'all' or 'first'")
    _check_question(question_index, question_template)
    load = load or LoadOptions()
    if decoding is None or isinstance(decoding, str):
        decoding = DecodingOptions() if decoding is None else DecodingOptions(decoding=decoding)
    out = Path(out) if out is not None else Path("runs") / "eval" / f"{task}_{dataset}_{split}"
    if spec.kind == "video":
        if refiner is not None and refiner != "none":
            raise ValueError(f"task {task}: per-frame evaluation has no SAM refiner (give --refiner none)")
        if expressions != "all":
            raise ValueError(f"task {task}: every expression of a video is evaluated (--expressions all)")
        from text4seg.evaluation.video import evaluate_video

        return evaluate_video(
            spec, dataset=dataset, split=split, root=root, out=out,
            model=None if model is None else str(model), adapter=None if adapter is None else str(adapter),
            segmenter=segmenter, load=load, decoding=decoding, limit=limit, save_vis=save_vis,
            save_masks=save_masks, frame_stride=frame_stride, batch_size=batch_size, question_index=question_index,
            question_template=question_template, rank=rank, world_size=world_size, device=device,
            progress=progress, video_strategy=video_strategy, keyframes=keyframes, candidates=candidates,
            sam2=None if sam2 is None else str(sam2), context_frames=context_frames)
    if (int(frame_stride) != 1 or save_masks or video_strategy != "per-frame" or sam2 is not None
            or context_frames):
        raise ValueError(f"task {task}: frame_stride, save_masks, the video strategy, sam2 and context_frames "
                         "apply to the video tasks (rvos, reasonvos)")
    rank, world, state = rank_world(rank, world_size)
    if device is None and state is not None and world > 1:
        device = state.device

    samples = iter(_reader(spec, dataset, root, split))
    class_names = None
    if spec.kind == "semantic":
        first = next(samples, None)
        if first is None:
            raise ValueError(f"dataset {dataset!r} split {split!r} under {root} has no samples")
        class_names = list(first.class_names)
        samples = itertools.chain([first], samples)
    refined = refiner is not None and refiner != "none"
    settings = {
        "task": task,
        "dataset": dataset,
        "split": split,
        "data_root": str(root),
        "model": None if model is None else str(model),
        "adapter": None if adapter is None else str(adapter),
        "refiner": ("sam" if refiner == "sam" else type(refiner).__name__) if refined else "none",
        "sam_type": sam_type if refined else None,
        "sam_checkpoint": None if sam_checkpoint is None or not refined else str(sam_checkpoint),
        "question_index": question_index,
        "question_template": question_template,
        "expressions": expressions,
        "decoding": None if segmenter is not None else decoding.decoding,
        "max_new_tokens": None if segmenter is not None else decoding.max_new_tokens,
        "dtype": None if segmenter is not None or load.dtype is None else str(load.dtype),
        "quantization": "4bit" if load.load_in_4bit else "8bit" if load.load_in_8bit else None,
        "limit": None if limit is None else int(limit),
        "class_chunk": class_chunk,
        "class_names": class_names,
    }
    out.mkdir(parents=True, exist_ok=True)
    with RunLock(out, rank):  # a second process on this folder and rank refuses here
        check_settings(out, settings)
        write_json_atomic(out / RUN_FILE, settings)
        done_file(out, rank, world).unlink(missing_ok=True)

        if segmenter is None:
            segmenter = _build_segmenter(model, adapter, load, decoding, device)
        segmenter = _with_question(segmenter, question_index, question_template)
        run = _Run(
            spec=spec,
            segmenter=segmenter,
            refiner=_build_refiner(refiner, None if sam_checkpoint is None else str(sam_checkpoint), sam_type, device),
            root=root,
            out=out,
            save_vis=int(save_vis),
            class_names=class_names,
            label_map=None if class_names is None else _label_map(dataset, class_names, segmenter.config.background,
                                                                  root),
            expressions=expressions,
            class_chunk=class_chunk,
        )
        log = SampleLog(samples_file(out, rank, world))
        try:
            shard_samples = run.shard(samples, log, completed_records(out), rank, world, limit=limit,
                                      batch_size=int(batch_size), progress=progress)
        finally:
            log.close()
        return finish_shard(out, rank, world, state, shard_samples, settings["limit"])


def _check_class_chunk(spec: TaskSpec, class_chunk: int | None) -> int | None:
    """``class_chunk`` as stored in the run settings: None for one prompt, else the chunk size."""
    if class_chunk is None:
        return None
    if isinstance(class_chunk, bool) or not isinstance(class_chunk, int) or class_chunk < 0:
        raise ValueError(f"class_chunk {class_chunk!r}: expected an int >= 1 (classes per prompt), or 0 for one prompt")
    if class_chunk == 0:
        return None
    if spec.kind != "semantic":
        raise ValueError(f"task {spec.name}: class_chunk applies to the class-list tasks (semantic-seg, part-seg), not {spec.kind} tasks")
    return int(class_chunk)


def _evaluate_instances(spec: TaskSpec, dataset: str, model: Any, adapter: Any, *, refiner: Any, world_size: Any,
                        decoding: Any, **options: Any) -> dict:
    """``panoptic`` / ``instance``: :func:`text4seg.evaluation.instances.evaluate_instances` (one process, no
    refiner)."""
    from text4seg.evaluation.instances import evaluate_instances

    if dataset not in (spec.default_dataset, "coco"):
        raise ValueError(f"task {spec.name}: dataset {dataset!r}; only COCO ({spec.default_dataset}) is read")
    if refiner not in (None, "none"):
        raise ValueError(f"task {spec.name}: --refiner is not supported (instances are scored coarse)")
    if world_size not in (None, 1):
        raise ValueError(f"task {spec.name}: runs in one process (world_size 1)")
    if decoding is None or isinstance(decoding, str):
        decoding = DecodingOptions() if decoding is None else DecodingOptions(decoding=decoding)
    return evaluate_instances(spec, model, adapter, decoding=decoding, **options)


def _refuse_unused(task: str, values: dict[str, tuple[Any, Any]]) -> None:
    """ValueError naming the first option given that ``task`` does not use (``{name: (value, default)}``)."""
    for name, (value, default) in values.items():
        if value != default and not (default is None and value is None):
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"task {task}: {flag} does not apply (it is for the referring, semantic or video tasks)")


def _evaluate_gcg(spec: TaskSpec, dataset: str, model: Any, adapter: Any, *, refiner: Any, world_size: Any,
                  decoding: Any, split: str | None, **options: Any) -> dict:
    """``gcg``: :func:`text4seg.evaluation.gcg.evaluate_gcg` (one process, no refiner)."""
    from text4seg.evaluation.gcg import evaluate_gcg

    if dataset.lower() not in (spec.default_dataset, "grandf-ha"):
        raise ValueError(f"task gcg: dataset {dataset!r}; only GranD-f ({spec.default_dataset}) is evaluated")
    if refiner not in (None, "none"):
        raise ValueError("task gcg: --refiner is not supported")
    if world_size not in (None, 1):
        raise ValueError("task gcg: runs in one process (world_size 1)")
    if decoding is None or isinstance(decoding, str):
        decoding = DecodingOptions() if decoding is None else DecodingOptions(decoding=decoding)
    return evaluate_gcg(spec, model, adapter, decoding=decoding, split=split or "val", **options)


@dataclass
class _Run:
    """What the loop needs: the task, the predictor and refiner, where data and outputs live."""

    spec: TaskSpec
    segmenter: Any
    refiner: Any
    root: Path
    out: Path
    save_vis: int
    class_names: list[str] | None
    label_map: Any
    expressions: str = "all"
    class_chunk: int | None = None

    def shard(self, samples: Iterator[Any], log: SampleLog, done: dict[int, dict], rank: int, world: int, *,
              limit: int | None, batch_size: int, progress: bool) -> int:
        """Predict and record the pending samples of shard ``rank``; returns the shard's sample count."""
        from tqdm.auto import tqdm

        live = Scorer(self.spec, self.refiner is not None, self.class_names)
        total = 0
        batch: list[list[_Item]] = []
        bar = tqdm(desc=f"eval {self.spec.name}", unit="sample", total=limit if world == 1 else None,
                   disable=not progress or rank != 0, dynamic_ncols=True)
        try:  # the bar ends its line even when a sample fails, so the error prints on a line of its own
            for number, group in enumerate(_image_groups(_items(self.spec, samples, limit, self.expressions))):
                if number % world != rank:
                    continue
                total += len(group)
                todo = []
                for item in group:
                    if item.index in done:
                        live.add(done[item.index])
                    else:
                        todo.append(item)
                bar.update(len(group) - len(todo))
                if todo:
                    batch.append(todo)
                if len(batch) >= batch_size:
                    self.run_batch(batch, log, live, bar)
                    batch = []
            self.run_batch(batch, log, live, bar)
        finally:
            bar.close()
        return total

    def run_batch(self, batch: list[list[_Item]], log: SampleLog, live: Scorer, bar: Any) -> None:
        """Predict a batch of image groups, score, refine and record each sample."""
        if not batch:
            return
        from text4seg.images import load_image

        started = time.perf_counter()
        images = [load_image(self.root / todo[0].sample.image) for todo in batch]
        predictions = self.predict(images, batch)
        shared = (time.perf_counter() - started) / sum(len(todo) for todo in batch)
        for image, todo, results in zip(images, batch, predictions):
            t_image = time.perf_counter()
            if self.refiner is not None:
                self.refiner.set_image(np.asarray(image))  # SAM embeds the image once, at its first refine
            overhead = (time.perf_counter() - t_image) / len(todo)
            for item, result in zip(todo, results):
                t0 = time.perf_counter()
                record, masks = self.score(item, result)
                record["seconds"] = shared + overhead + time.perf_counter() - t0
                log.append(record)
                live.add(record)
                if item.index < self.save_vis:
                    ignored = 255 if self.class_names is None else ignore_id(len(self.class_names))
                    _visualize(self.out, item, image, masks, ignored)
            bar.update(len(todo))
        _postfix(bar, live)

    def predict(self, images: list[Any], batch: list[list[_Item]]) -> list[list[Any]]:
        """SegmentationResults per image group: one ``segment`` call per image with all its expressions, or
        one ``segment_many`` call for several images."""
        if self.spec.kind == "semantic":
            # part datasets ask each image for its own classes (``prompt_classes``), other sets for every class
            every = [n for n in self.class_names if n != _BACKGROUND_NAME]
            lists = [list(getattr(todo[0].sample, "prompt_classes", None) or every) for todo in batch]
            if self.class_chunk:
                if len({tuple(names) for names in lists}) == 1:
                    return self.segmenter.segment_many([(image, None) for image in images], classes=lists[0],
                                                       chunk_size=self.class_chunk)
                return [[self.segmenter.segment(image, classes=names, chunk_size=self.class_chunk)]
                        for image, names in zip(images, lists)]
            prompts = [self.segmenter.semantic_prompt(names) for names in lists]
            if len(images) == 1 or len(set(prompts)) > 1:
                return [[self.segmenter.segment(image, instruction=p)] for image, p in zip(images, prompts)]
            return self.segmenter.segment_many([(image, None) for image in images], instruction=prompts[0])
        queries = [[item.expression for item in todo] for todo in batch]
        if len(images) == 1:
            return [self.segmenter.segment(images[0], queries[0])]
        return self.segmenter.segment_many(list(zip(images, queries)))

    def sample_label_map(self, sample: Any) -> Any:
        """The run's class-name -> id map, or one with the sample's own ``synonyms`` (part datasets)."""
        synonyms = getattr(sample, "synonyms", None)
        if not synonyms:
            return self.label_map
        from text4seg.descriptors import LabelMap

        return LabelMap(self.class_names, synonyms=synonyms, background=self.label_map.background,
                        fallback_id=self.label_map.fallback_id)

    def score(self, item: _Item, result: Any) -> tuple[dict, dict[str, np.ndarray | None]]:
        """The record of one prediction and the masks to visualise."""
        sample = item.sample
        record: dict[str, Any] = {
            "index": item.index,
            "id": sample.id,
            "expression_index": item.expression_index,
            "image": sample.image,
            "expression": item.expression,
            "text": result.text,
            "repairs": list(result.repairs),
        }
        masks: dict[str, np.ndarray | None] = {}
        if self.spec.kind == "semantic":
            from text4seg.descriptors import grid_to_mask

            gt = sample.label_map
            label_map = self.sample_label_map(sample)
            pred = grid_to_mask(result.grid, label_map, tuple(result.mask.shape))
            _check_shape(pred, gt, sample)
            _, unknown = label_map.ids(result.grid)
            ignored = ignore_id(len(self.class_names))
            if "chunks" in result.extra:  # the dataset's label map (synonyms, "others") decides what is unknown
                record["repairs"] = [r for r in record["repairs"] if not r.startswith("unknown class ")]
                record["chunks"] = [{"classes": len(c["classes"]), "text": c["text"]} for c in result.extra["chunks"]]
            record["repairs"] += [f"unknown class {name!r}: id {ignored}" for name in unknown]
            num_classes = len(self.class_names)
            record.update(semantic_fields(pred, gt, num_classes))
            masks["coarse"] = pred
            if self.refiner is not None:
                present = [int(c) for c in np.unique(pred) if c not in (0, ignored)]
                fine = self.refiner.refine_labels(pred, present).label_map
                record.update(semantic_fields(fine, gt, num_classes, suffix="_refined"))
                masks["refined"] = fine
            masks["ground truth"] = gt
            return record, masks
        pred = np.asarray(result.mask, dtype=bool)
        _check_shape(pred, sample.mask, sample)
        record.update(referring_fields(pred, sample.mask, sample.ignore))
        masks["coarse"] = pred
        if self.spec.boxes:
            record["box"] = _box(pred)
            record["gt_box"] = gt_box(sample)
        if self.refiner is not None:
            grid = np.asarray(result.grid) != self.segmenter.config.background
            fine = np.asarray(self.refiner.refine(pred, grid).mask, dtype=bool)
            record.update(referring_fields(fine, sample.mask, sample.ignore, suffix="_refined"))
            masks["refined"] = fine
            if self.spec.boxes:
                record["box_refined"] = _box(fine)
        if sample.no_target:
            record["no_target"] = True
        if sample.is_sentence is not None:
            record["is_sentence"] = bool(sample.is_sentence)
        masks["ground truth"] = sample.mask
        return record, masks


_BACKGROUND_NAME = "others"


def _box(mask: np.ndarray) -> list[int] | None:
    from text4seg.metrics import box_from_mask

    box = box_from_mask(mask)
    return None if box is None else list(box)


def _postfix(bar: Any, live: Scorer) -> None:
    if live.samples:
        metrics = live.metrics("coarse")
        key = "miou" if "miou" in metrics else "giou"
        if metrics.get(key) is not None:
            bar.set_postfix({key: f"{100 * metrics[key]:.1f}"}, refresh=False)


def _check_shape(pred: np.ndarray, gt: np.ndarray, sample: Any) -> None:
    if pred.shape != gt.shape:
        raise ValueError(f"{sample.image}: the image decodes to {pred.shape} (height, width) but the annotation "
                         f"of sample {sample.id} is {gt.shape}")


def _visualize(out: Path, item: _Item, image: Any, masks: dict[str, np.ndarray | None], ignore_index: int = 255
               ) -> None:
    from text4seg.evaluation.visualize import save_panels

    save_panels(image, list(masks.items()), out / "vis" / f"{item.index:06d}.png", caption=item.expression or "",
                ignore_index=ignore_index)

