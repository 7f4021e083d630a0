"""The evaluation tasks: which reader feeds each one and which scores it reports (no torch)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TaskSpec", "TASKS", "COLUMN_TITLES", "DATASET_ALIASES", "DEFAULT_SPLITS", "task_spec", "resolve_dataset",
           "resolve_split"]


@dataclass(frozen=True)
class TaskSpec:
    """What one ``text4seg eval TASK`` evaluates.

    Attributes:
        name: task name on the command line.
        kind: ``"referring"`` (one binary mask per expression), ``"semantic"`` (one label map per image),
            ``"panoptic"`` / ``"instance"`` (instance-aware answers, :mod:`text4seg.evaluation.instances`) or
            ``"video"`` (one binary mask per frame of a video and expression; :mod:`text4seg.evaluation.video`)
            or ``"gcg"`` (grounded captions, :mod:`text4seg.evaluation.gcg`).
        default_dataset: dataset used when ``--dataset`` is not given.
        datasets: the benchmark datasets of the task (others registered in the readers are accepted too).
        mask_metrics: mask scores reported, keys of ``ReferSegMeter.compute()`` / ``SemanticSegMeter.compute()``.
        boxes: also score Acc@0.5 of the masks' bounding boxes (REC).
        query_subsets: also score short-query and long-sentence queries separately (ReasonSeg).
        columns: score columns of the printed table, in order (keys of the scores' metric dicts).
    """

    name: str
    kind: str
    default_dataset: str
    datasets: tuple[str, ...]
    mask_metrics: tuple[str, ...]
    boxes: bool = False
    query_subsets: bool = False
    columns: tuple[str, ...] = ("ciou", "giou")


_REFER = ("refcoco", "refcoco+", "refcocog", "refclef")
TASKS: dict[str, TaskSpec] = {
    "refer-seg": TaskSpec("refer-seg", "referring", "refcoco", _REFER, ("ciou", "giou"), boxes=True,
                          columns=("ciou", "giou", "acc@0.5")),
    "rec": TaskSpec("rec", "referring", "refcoco", _REFER, ("ciou", "giou"), boxes=True,
                    columns=("acc@0.5", "ciou", "giou")),
    "grefer-seg": TaskSpec("grefer-seg", "referring", "grefcoco", ("grefcoco",), ("ciou", "giou", "n_acc", "t_acc"),
                           columns=("ciou", "giou", "n_acc", "t_acc")),
    "reason-seg": TaskSpec("reason-seg", "referring", "reasonseg", ("reasonseg",), ("giou", "ciou"),
                           query_subsets=True, columns=("giou", "ciou")),
    "semantic-seg": TaskSpec("semantic-seg", "semantic", "ade20k", ("ade20k", "pascal_context", "pascal_voc"),
                             ("miou", "pixel_accuracy"), columns=("miou", "pixel_accuracy")),
    "synthetic": TaskSpec("synthetic", "referring", "synthetic", ("synthetic",), ("ciou", "giou")),
    "rvos": TaskSpec("rvos", "video", "ref-youtube-vos", ("ref-youtube-vos", "ref-davis17", "mevis", "synthetic-video"),
                     ("j", "f", "jf"), columns=("jf", "j", "f")),
    "reasonvos": TaskSpec("reasonvos", "video", "revos", ("revos",), ("j", "f", "jf", "a", "r"),
                          columns=("jf", "j", "f", "a", "r")),
    "panoptic": TaskSpec("panoptic", "panoptic", "coco_panoptic", ("coco_panoptic",), (),
                         columns=("pq", "sq", "rq", "pq_th", "sq_th", "rq_th", "pq_st", "sq_st", "rq_st")),
    "part-seg": TaskSpec("part-seg", "semantic", "paco_lvis", ("paco_lvis", "pascal_part"), ("miou", "pixel_accuracy"),
                         columns=("miou", "pixel_accuracy")),
    "instance": TaskSpec("instance", "instance", "coco_instances", ("coco_instances",), (),
                         columns=("ap", "ap50", "ap75")),
    "gcg": TaskSpec("gcg", "gcg", "grandf", ("grandf",), (), columns=("meteor", "cider", "ap50", "miou", "recall")),
}

# Split evaluated when --split is not given: image tasks "val"; video datasets their scored split.
DEFAULT_SPLITS: dict[str, str] = {
    "ref-youtube-vos": "valid",
    "ref-davis17": "valid",
    "mevis": "valid_u",
    "revos": "valid",
    "synthetic-video": "valid_u",
}

# Column titles of the printed table.
COLUMN_TITLES: dict[str, str] = {
    "ciou": "cIoU",
    "giou": "gIoU",
    "n_acc": "N-acc",
    "t_acc": "T-acc",
    "acc@0.5": "Acc@0.5",
    "miou": "mIoU",
    "pixel_accuracy": "pixel acc",
    "jf": "J&F",
    "j": "J",
    "f": "F",
    "a": "A",
    "r": "R",
    **{f"{m}{g}": f"{m.upper()}{t}" for m in ("pq", "sq", "rq") for g, t in (("", ""), ("_th", "th"), ("_st", "st"))},
    "ap": "AP",
    "ap50": "AP50",
    "ap75": "AP75",
    "meteor": "METEOR",
    "cider": "CIDEr",
    "recall": "Recall",
}

# Names the papers use -> reader names.
DATASET_ALIASES: dict[str, str] = {
    "ade-150": "ade20k",
    "ade150": "ade20k",
    "pc-59": "pascal_context",
    "pc59": "pascal_context",
    "voc-20": "pascal_voc",
    "ade-847": "ade847",
    "a-847": "ade847",
    "pc-459": "pc459",
    "voc20": "pascal_voc",
    "gref": "grefcoco",
    "reason_seg": "reasonseg",
    "ref-ytvos": "ref-youtube-vos",
    "refytvos": "ref-youtube-vos",
    "ref-davis": "ref-davis17",
    "refdavis17": "ref-davis17",
    "reason-vos": "revos",
    "coco": "coco",
}


def task_spec(task: str) -> TaskSpec:
    """The :class:`TaskSpec` of ``task``; ValueError naming the known tasks otherwise."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(sorted(TASKS))}")
    return TASKS[task]


def resolve_dataset(spec: TaskSpec, dataset: str | None) -> str:
    """The reader name for ``dataset`` (aliases such as ``"ADE-150"`` accepted), or the task's default.

    Video tasks take only their own datasets (ValueError naming them): ReVOS needs ``reasonvos`` (its scores
    use the expression types and the video foregrounds), the R-VOS sets need ``rvos``; ``part-seg`` takes only
    the part datasets.
    """
    if dataset is None:
        return spec.default_dataset
    name = DATASET_ALIASES.get(dataset.lower(), dataset)
    if (spec.kind == "video" or spec.name == "part-seg") and name not in spec.datasets:
        raise ValueError(f"task {spec.name} evaluates {', '.join(spec.datasets)}, not {dataset!r}")
    return name


def resolve_split(spec: TaskSpec, dataset: str, split: str | None) -> str:
    """``split``, or the dataset's usual evaluation split (:data:`DEFAULT_SPLITS`, ``"val"`` for images)."""
    if split is not None:
        return split
    return DEFAULT_SPLITS.get(dataset, "val") if spec.kind == "video" else "val"
