"""GLaMM's GranD-f grounded-caption sets (GCG): training readers and the evaluation ground truth.

Layout under the data root, as GLaMM's ``docs/datasets.md`` and dataset code arrange it::

    GranDf/annotations/train/GranDf_HA_GCG_train.json                 grandf-ha  (train only)
    GranDf/annotations/train/OpenPsgGCG_{train,val}.json              psg
    GranDf/annotations/train/flickr_mergedGT_GCG_{train,val}.json     flickr30k
    GranDf/annotations/train/RefCOCOg_GCG_{train,val}.json            refcocog
    GranDf/annotations/val_test/{val,test}_gcg_coco_{caption,mask}_gt.json   evaluation ground truth
    GranDf/GranDf_HA_images/{train,val_test}/sa_*.jpg    GranDf-HA images (GLaMM's code and eval scripts; its
                                                         docs tree draws GranDf_HA_images/ beside GranDf/, also read)
    coco_2017/train2017/*.jpg                            PSG-GCG images (train and val)
    flikcr_30k/train/*.jpg                               Flickr30k-GCG images (GLaMM's spelling of the folder)
    coco_2014/train2014/COCO_train2014_*.jpg             RefCOCOg-GCG images (train and val)

The formats:

- GranDf-HA and PSG-GCG: a list of ``{"file_name", "caption", "groundings": {PHRASE: {"token_positives": [start,
  end], "rle_masks": [COCO RLE, ...]}}}``; a phrase's mask is the union of its RLEs (their size is the image size).
- Flickr30k-GCG: COCO format; ``images[]`` carry ``caption``, ``height``, ``width``; ``annotations[]`` carry
  ``tokens_positive`` (a list of ``[start, end]``, the first used, as GLaMM does) and ``sam_mask`` (RLE); an
  annotation with ``ignore`` set is left out. Annotations with the same span are one phrase (masks united).
- RefCOCOg-GCG: a list of one-key dicts ``{KEY: {"img_file_name", "caption", "refs": [{"sentence",
  "segmentation": polygons}]}}``; a ref's span is the first match of its lower-cased sentence in the lower-cased
  caption (a ref not found there is left out, as GLaMM does); overlapping spans are trimmed, as GLaMM does, so
  that the earlier phrase ends where the later one starts. The image is opened for its size (polygons carry none).

Captions are stripped of surrounding whitespace and double quotes (GLaMM's ``strip('"').strip()``) with the
spans shifted to match; each phrase's text is ``caption[start:end]``. A sample whose phrases overlap (other than
RefCOCOg's trimmed ones) keeps the first of them; one without any phrase is skipped. Masks decode on demand.

Evaluation ground truth (GLaMM's ``eval/gcg/evaluate.py``): ``{split}_gcg_coco_caption_gt.json`` (``images[]``
with ``id`` = the image's file stem; ``annotations[]``: ``image_id``, ``caption``, ``labels`` = the phrases) and
``{split}_gcg_coco_mask_gt.json`` (COCO masks, one category): label i of an image is its i-th mask annotation.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from text4seg.datasets.coco_masks import SkipLog, read_json, skip_or_raise, union_masks
from text4seg.descriptors import sanitize_label
from text4seg.paths import safe_relative_id

__all__ = [
    "GCG_DATASETS",
    "GCG_SPLITS",
    "GcgPhrase",
    "GcgSample",
    "GcgGroundTruth",
    "gcg_annotation_path",
    "gcg_image_dir",
    "read_grandf",
    "read_gcg_ground_truth",
    "gcg_gt_paths",
]

# dataset -> (annotation file per split, image folder relative to the data root)
GCG_DATASETS: dict[str, tuple[dict[str, str], str]] = {
    "grandf-ha": ({"train": "GranDf_HA_GCG_train.json"}, "GranDf/GranDf_HA_images/train"),
    "psg": ({"train": "OpenPsgGCG_train.json", "val": "OpenPsgGCG_val.json"}, "coco_2017/train2017"),
    "flickr30k": ({"train": "flickr_mergedGT_GCG_train.json", "val": "flickr_mergedGT_GCG_val.json"},
                  "flikcr_30k/train"),
    "refcocog": ({"train": "RefCOCOg_GCG_train.json", "val": "RefCOCOg_GCG_val.json"}, "coco_2014/train2014"),
}
GCG_SPLITS = ("val", "test")
_ANNOTATIONS = Path("GranDf") / "annotations"
_HA_EVAL_IMAGES = "GranDf/GranDf_HA_images/val_test"
_LAYOUT = ("GranD-f layout: GranDf/annotations/train/<set>.json, GranDf/annotations/val_test/<split>_gcg_coco_"
           "{caption,mask}_gt.json, GranDf/GranDf_HA_images/{train,val_test}/ (module text4seg.datasets.grandf)")
_STRIP = ' \t\r\n"'


@dataclass
class GcgPhrase:
    """One grounded phrase: ``caption[start:end] == text``; its mask is the union of ``segmentations``."""

    text: str
    start: int
    end: int
    segmentations: list


@dataclass
class GcgSample:
    """One grounded caption of a GranD-f training set.

    Attributes:
        id: ``"gcg_<dataset>_<split>_<k>"`` (k: position in the file).
        dataset: ``grandf-ha``, ``psg``, ``flickr30k`` or ``refcocog``.
        image: image path relative to the data root.
        height, width: image size in pixels.
        caption: the caption (stripped).
        phrases: the grounded phrases in caption order (spans never overlap).
    """

    id: str
    dataset: str
    image: str
    height: int
    width: int
    caption: str
    phrases: list[GcgPhrase]

    @property
    def spans(self) -> list[tuple[int, int]]:
        return [(p.start, p.end) for p in self.phrases]

    def masks(self) -> list[np.ndarray]:
        """One (H, W) bool mask per phrase, in caption order."""
        return [union_masks(p.segmentations, self.height, self.width) for p in self.phrases]


@dataclass
class GcgGroundTruth:
    """One image of the GCG evaluation ground truth.

    Attributes:
        image_id: the image id of both JSON files (the file stem, ``"sa_10010541"``).
        image: image path relative to the data root.
        height, width: image size (from the mask file's ``images[]``, else its RLEs).
        caption: the reference caption (the image's first caption annotation, whose ``labels`` are used).
        labels: the grounded phrases; label i belongs to ``segmentations[i]``.
        segmentations: the image's mask annotations' ``segmentation`` (COCO RLE), in file order.
        references: every caption annotation of the image (the references of METEOR and CIDEr, as
            ``COCOEvalCap`` takes them).
    """

    image_id: str
    image: str
    height: int
    width: int
    caption: str
    labels: list[str]
    segmentations: list
    references: list[str] = field(default_factory=list)

    def masks(self) -> list[np.ndarray]:
        """One (H, W) bool mask per label."""
        return [union_masks([s], self.height, self.width) for s in self.segmentations]


def _load_json(path: Path, what: str, kind: type) -> object:
    return read_json(path, what, _LAYOUT, kind)


def gcg_annotation_path(root: str | os.PathLike, dataset: str, split: str = "train") -> Path:
    """``<root>/GranDf/annotations/train/<file>`` of a training set and split."""
    if dataset not in GCG_DATASETS:
        raise ValueError(f"unknown GCG dataset {dataset!r}; known: {', '.join(GCG_DATASETS)}")
    files = GCG_DATASETS[dataset][0]
    if split not in files:
        raise ValueError(f"GCG dataset {dataset!r} has splits {', '.join(files)}, not {split!r}")
    return Path(root) / _ANNOTATIONS / "train" / files[split]


def gcg_image_dir(root: str | os.PathLike, dataset: str) -> str:
    """The image folder of a training set, relative to ``root`` (GranDf-HA: also ``GranDf_HA_images/`` at the
    root, the layout GLaMM's docs draw, when GLaMM's code layout ``GranDf/GranDf_HA_images/`` is absent)."""
    folder = GCG_DATASETS[dataset][1]
    return _ha_folder(Path(root), folder)


def _ha_folder(root: Path, folder: str) -> str:
    if folder.startswith("GranDf/GranDf_HA_images") and not (root / folder).is_dir():
        beside = folder.removeprefix("GranDf/")
        if (root / beside).is_dir():
            return beside
    return folder


def _clean_caption(raw: object) -> tuple[str, int] | None:
    """(caption stripped of whitespace and double quotes, characters removed on the left), None if not text."""
    if not isinstance(raw, str):
        return None
    left = len(raw) - len(raw.lstrip(_STRIP))
    caption = raw.strip(_STRIP)
    return caption, left


def _phrase(caption: str, start: int, end: int, segmentations: list, left: int = 0,
            raw_length: int | None = None) -> GcgPhrase | None:
    """The phrase on the raw caption's ``[start, end)`` (shifted by the ``left`` characters stripped, clipped to
    the stripped caption) with surrounding whitespace trimmed; None when empty or outside the raw caption."""
    raw_length = len(caption) + left if raw_length is None else raw_length
    if not 0 <= start < end <= raw_length:
        return None
    start, end = max(start - left, 0), min(end - left, len(caption))
    text = caption[start:end] if start < end else ""
    start += len(text) - len(text.lstrip())
    end -= len(text) - len(text.rstrip())
    if end <= start or not sanitize_label(caption[start:end]):
        return None
    return GcgPhrase(caption[start:end], start, end, segmentations)


def _span(value: object) -> tuple[int, int] | None:
    """``[s, e]`` or ``[[s, e], ...]`` (the first) as ints; None when malformed."""
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], (list, tuple)):
        value = value[0]
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        return None
    return int(value[0]), int(value[1])


def _non_overlapping(phrases: list[GcgPhrase]) -> tuple[list[GcgPhrase], int]:
    """Phrases in caption order; the same span twice is one phrase (masks united); a phrase overlapping an
    earlier one is dropped. Returns (phrases, dropped)."""
    kept: list[GcgPhrase] = []
    dropped = 0
    for phrase in sorted(phrases, key=lambda p: (p.start, p.end)):
        if kept and (phrase.start, phrase.end) == (kept[-1].start, kept[-1].end):
            kept[-1].segmentations = kept[-1].segmentations + phrase.segmentations
        elif kept and phrase.start < kept[-1].end:
            dropped += 1
        else:
            kept.append(phrase)
    return kept, dropped


def _rle_size(segmentations: list) -> tuple[int, int] | None:
    for seg in segmentations:
        if isinstance(seg, dict) and isinstance(seg.get("size"), (list, tuple)) and len(seg["size"]) == 2:
            return int(seg["size"][0]), int(seg["size"][1])
    return None


def _check_masks(phrases: list[GcgPhrase], height: int, width: int) -> str | None:
    from text4seg.datasets.coco_masks import segmentation_to_rle

    for phrase in phrases:
        for seg in phrase.segmentations:
            try:
                segmentation_to_rle(seg, height, width)
            except ValueError as err:
                return f"phrase {phrase.text!r}: {err}"
    return None


def _image_size(path: Path) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
    except OSError:
        return None
    return int(height), int(width)


def read_grandf(root: str | os.PathLike, dataset: str, split: str = "train", strict: bool = False,
                skips: SkipLog | None = None) -> Iterator[GcgSample]:
    """Iterate one GranD-f training set in file order (see the module docstring).

    Args:
        root: data root holding ``GranDf/`` and the image folders.
        dataset: ``"grandf-ha"``, ``"psg"``, ``"flickr30k"`` or ``"refcocog"`` (:data:`GCG_DATASETS`).
        split: ``"train"`` or, except for grandf-ha, ``"val"``.
        strict: raise on a malformed entry (naming the file and the field) instead of skipping it.
        skips: where skipped entries and dropped phrases are counted.

    Raises:
        FileNotFoundError: missing annotation file (naming the layout).
        ValueError: unknown dataset or split, malformed JSON, an unsafe image file name.
    """
    root = Path(root)
    path = gcg_annotation_path(root, dataset, split)
    folder = gcg_image_dir(root, dataset)
    if dataset == "flickr30k":
        entries = _flickr_entries(path)
    else:
        data = _load_json(path, f"{dataset} annotations", list)
        entries = ((k, entry) for k, entry in enumerate(data))
    parse = {"grandf-ha": _groundings_entry, "psg": _groundings_entry, "flickr30k": _flickr_entry,
             "refcocog": _refcocog_entry}[dataset]
    for k, entry in entries:
        sample_id = f"gcg_{dataset}_{split}_{k}"
        got = parse(entry, path, root, folder)
        if isinstance(got, str):
            skip_or_raise(got, f"{sample_id} (entry #{k})", str(path), strict, skips)
            continue
        file_name, height, width, caption, phrases = got
        phrases, dropped = _non_overlapping(phrases)
        for _ in range(dropped):
            skip_or_raise("phrase span overlaps an earlier phrase", f"{sample_id} (entry #{k})", str(path),
                          strict, skips)
        problem = "no grounded phrase" if not phrases else _check_masks(phrases, height, width)
        if problem is not None:
            skip_or_raise(problem, f"{sample_id} (entry #{k})", str(path), strict, skips)
            continue
        yield GcgSample(sample_id, dataset, f"{folder}/{file_name}", height, width, caption, phrases)


def _file_name(value: object, field: str, path: Path) -> str:
    return safe_relative_id(value, field, path)


def _groundings_entry(entry: object, path: Path, root: Path, folder: str) -> tuple | str:
    if not isinstance(entry, dict):
        return "entry is not an object"
    for key in ("file_name", "caption", "groundings"):
        if key not in entry:
            return f"no {key!r} field"
    file_name = _file_name(entry["file_name"], "file_name", path)
    cleaned = _clean_caption(entry["caption"])
    if cleaned is None:
        return "'caption' is not a string"
    caption, left = cleaned
    groundings = entry["groundings"]
    if not isinstance(groundings, dict):
        return "'groundings' is not an object"
    phrases, size = [], None
    for name, grounding in groundings.items():
        if not isinstance(grounding, dict) or "token_positives" not in grounding or "rle_masks" not in grounding:
            return f"grounding {name!r} without 'token_positives' or 'rle_masks'"
        span, rles = _span(grounding["token_positives"]), grounding["rle_masks"]
        if span is None:
            return f"grounding {name!r}: 'token_positives' is not [start, end]"
        if not isinstance(rles, list) or not rles:
            return f"grounding {name!r}: 'rle_masks' is not a non-empty list"
        size = size or _rle_size(rles)
        phrase = _phrase(caption, span[0], span[1], list(rles), left, len(entry["caption"]))
        if phrase is None:
            return f"grounding {name!r}: 'token_positives' {list(span)} is empty or outside the caption"
        phrases.append(phrase)
    if not phrases:
        return "no grounded phrase"
    if size is None:
        return "no RLE with a 'size' (the image size)"
    return file_name, size[0], size[1], caption, phrases


def _flickr_entries(path: Path) -> Iterator[tuple[int, tuple[dict, list[dict]]]]:
    data = _load_json(path, "flickr30k annotations", dict)
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{path}: expected a COCO object with an {key!r} list")
    by_image: dict[object, list[dict]] = {}
    for ann in data["annotations"]:
        if isinstance(ann, dict):
            by_image.setdefault(ann.get("image_id"), []).append(ann)
    for k, image in enumerate(data["images"]):
        yield k, (image, by_image.get(image.get("id") if isinstance(image, dict) else None, []))


def _flickr_entry(entry: tuple[dict, list[dict]], path: Path, root: Path, folder: str) -> tuple | str:
    image, anns = entry
    if not isinstance(image, dict):
        return "image entry is not an object"
    for key in ("id", "file_name", "caption", "height", "width"):
        if key not in image:
            return f"image without {key!r} field"
    file_name = _file_name(image["file_name"], "file_name", path)
    cleaned = _clean_caption(image["caption"])
    if cleaned is None:
        return "'caption' is not a string"
    caption, left = cleaned
    phrases = []
    for ann in anns:
        if ann.get("ignore", False):
            continue
        span = _span(ann.get("tokens_positive"))
        if span is None or "sam_mask" not in ann:
            return f"annotation {ann.get('id')!r} without 'tokens_positive' [[start, end]] or 'sam_mask'"
        phrase = _phrase(caption, span[0], span[1], [ann["sam_mask"]], left, len(image["caption"]))
        if phrase is None:
            return f"annotation {ann.get('id')!r}: 'tokens_positive' {list(span)} is empty or outside the caption"
        phrases.append(phrase)
    return file_name, int(image["height"]), int(image["width"]), caption, phrases


def _refcocog_entry(entry: object, path: Path, root: Path, folder: str) -> tuple | str:
    if not isinstance(entry, dict) or len(entry) != 1:
        return "entry is not a one-key object"
    info = next(iter(entry.values()))
    if not isinstance(info, dict):
        return "entry value is not an object"
    for key in ("img_file_name", "caption", "refs"):
        if key not in info:
            return f"no {key!r} field"
    file_name = _file_name(info["img_file_name"], "img_file_name", path)
    cleaned = _clean_caption(info["caption"])
    if cleaned is None:
        return "'caption' is not a string"
    caption = cleaned[0]
    lower = caption.lower()
    if len(lower) != len(caption):  # a character whose lower case is longer: search the caption as it is
        lower = caption
    size = _image_size(root / folder / file_name)
    if size is None:
        return f"image {folder}/{file_name} not found or unreadable (its size is needed for the polygons)"
    spans = []
    for ref in info["refs"] if isinstance(info["refs"], list) else []:
        if not isinstance(ref, dict) or not isinstance(ref.get("sentence"), str) or "segmentation" not in ref:
            return "ref without 'sentence' or 'segmentation'"
        sentence = ref["sentence"].lower().strip()
        start = lower.find(sentence) if sentence else -1
        if start >= 0:
            spans.append([start, start + len(sentence), [ref["segmentation"]]])
    spans.sort(key=lambda s: (s[0], s[1]))
    for earlier, later in zip(spans, spans[1:]):  # GLaMM's trimming: the earlier phrase ends where the next starts
        if earlier[1] > later[0]:
            earlier[1] = later[0]
    phrases = [p for p in (_phrase(caption, s, e, segs) for s, e, segs in spans) if p is not None]
    return file_name, size[0], size[1], caption, phrases


# --------------------------------------------------------------------------------------- evaluation


def gcg_gt_paths(root: str | os.PathLike, split: str) -> tuple[Path, Path]:
    """``(caption GT, mask GT)`` of an evaluation split under ``root/GranDf/annotations/val_test``."""
    if split not in GCG_SPLITS:
        raise ValueError(f"GCG evaluation split {split!r}: expected one of {', '.join(GCG_SPLITS)}")
    base = Path(root) / _ANNOTATIONS / "val_test"
    return base / f"{split}_gcg_coco_caption_gt.json", base / f"{split}_gcg_coco_mask_gt.json"


def read_gcg_ground_truth(root: str | os.PathLike, split: str = "val") -> list[GcgGroundTruth]:
    """The GCG evaluation ground truth of ``split`` (``val`` / ``test``), one entry per caption image, in the
    caption file's ``images[]`` order.

    Raises:
        FileNotFoundError: a missing JSON (naming the layout).
        ValueError: malformed JSON; an image without caption, or whose labels and masks differ in number
            (label i is the i-th mask); an unsafe image id.
    """
    root = Path(root)
    caption_path, mask_path = gcg_gt_paths(root, split)
    captions = _load_json(caption_path, "GCG caption ground truth", dict)
    masks = _load_json(mask_path, "GCG mask ground truth", dict)
    for path, data in ((caption_path, captions), (mask_path, masks)):
        for key in ("images", "annotations"):
            if not isinstance(data.get(key), list):
                raise ValueError(f"{path}: expected a COCO object with an {key!r} list")
    by_caption: dict[object, list[dict]] = {}
    for ann in captions["annotations"]:
        if isinstance(ann, dict) and isinstance(ann.get("caption"), str):
            by_caption.setdefault(ann.get("image_id"), []).append(ann)
    by_mask: dict[object, list[dict]] = {}
    for ann in masks["annotations"]:
        if isinstance(ann, dict):
            by_mask.setdefault(ann.get("image_id"), []).append(ann)
    mask_images = {img.get("id"): img for img in masks["images"] if isinstance(img, dict)}
    folder = _ha_folder(root, _HA_EVAL_IMAGES)
    out = []
    for image in captions["images"]:
        image_id = image.get("id") if isinstance(image, dict) else None
        safe_relative_id(image_id, "image id", caption_path)
        if "/" in image_id:
            raise ValueError(f"{caption_path}: image id {image_id!r} is not a file stem")
        anns = by_caption.get(image_id, [])
        caption = anns[0] if anns else None
        if caption is None or not isinstance(caption.get("labels"), list):
            raise ValueError(f"{caption_path}: image {image_id!r} has no annotation with 'caption' and 'labels'")
        segs = [ann.get("segmentation") for ann in by_mask.get(image_id, [])]
        labels = [str(label) for label in caption["labels"]]
        if len(segs) != len(labels):
            raise ValueError(f"{mask_path}: image {image_id!r} has {len(segs)} masks for {len(labels)} labels in "
                             f"{caption_path.name}")
        info = {**mask_images.get(image_id, {}), **image}
        size = (info.get("height"), info.get("width"))
        if not all(isinstance(v, int) for v in size):
            size = _rle_size(segs)
        if size is None:
            raise ValueError(f"{mask_path}: image {image_id!r} has no height/width and no RLE size")
        file_name = info.get("file_name") or f"{image_id}.jpg"
        safe_relative_id(file_name, "file_name", caption_path)
        out.append(GcgGroundTruth(image_id, f"{folder}/{file_name}", int(size[0]), int(size[1]),
                                  caption["caption"], labels, segs, [a["caption"] for a in anns]))
    return out
