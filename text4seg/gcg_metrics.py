"""Grounded conversation generation (GCG) metrics, as GLaMM's ``eval/gcg/evaluate.py`` computes them.

- **METEOR, CIDEr**: pycocoevalcap's ``Meteor`` and ``Cider`` scorers called directly on captions tokenized
  by its ``PTBTokenizer`` (``COCOEvalCap.evaluate()`` is not used: its SPICE downloads CoreNLP at first use).
  The tokenizer and METEOR run Java (``java`` on the PATH). Without Java the captions are tokenized in Python
  the PTB way (lower case, punctuation tokens dropped; ``tokenizer: "simple"`` in the scores) and METEOR is
  None with the reason in ``meteor_note``. CIDEr is pycocoevalcap's CIDEr-D (IDF over the scored images'
  references), so it depends on the set of images scored.
- **AP50**: pycocotools ``COCOeval`` (``segm``), one category, every prediction scored 1.0; the AP at IoU 0.50.
- **mIoU**: per image, the IoU matrix of predicted x ground-truth masks; the largest entry is taken while it is
  > 0 and its row and column removed; the image scores the mean of the taken IoUs (0 when none); the mean over
  images.
- **Mask recall**: per image, the (ground truth, prediction) pair of highest IoU is taken while its IoU >= 0.5
  and its phrase similarity >= 0.5 (the first pair failing either test ends the image, as in GLaMM); recall =
  matched pairs / ground-truth phrases over all images.

Phrase similarity: GLaMM's is the cosine of mean-pooled ``bert-base-uncased`` last hidden states
(:class:`BertPhraseSimilarity`, from a local model directory); offline, :class:`BagOfWordsSimilarity` is the
cosine of the phrases' word-count vectors (lower-cased ``\\w+`` tokens), so "a man" ~ "the man" = 0.5 and
unrelated words 0. The scores name the one used. An IoU over an empty union is 0. No torch at import.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import shutil
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

__all__ = [
    "PTB_PUNCTUATION",
    "PhraseSimilarity",
    "BagOfWordsSimilarity",
    "BertPhraseSimilarity",
    "phrase_similarity",
    "iou_matrix",
    "greedy_miou",
    "recall_matches",
    "mask_ap50",
    "caption_scores",
    "simple_tokenize",
    "gcg_scores",
]

# pycocoevalcap's PTBTokenizer drops these tokens
PTB_PUNCTUATION = ("''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--",
                   "...", ";")
IOU_THRESHOLD = 0.5
SIMILARITY_THRESHOLD = 0.5


class PhraseSimilarity(Protocol):
    """``name`` (written in the scores) and ``matrix(a, b)``: (len(a), len(b)) similarities in [-1, 1]."""

    name: str

    def matrix(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray: ...


def _cosine(u: np.ndarray, v: np.ndarray) -> float:
    norm = float(np.linalg.norm(u) * np.linalg.norm(v))
    return float(np.dot(u, v) / norm) if norm > 0 else 0.0


class BagOfWordsSimilarity:
    """Cosine of word-count vectors over lower-cased ``\\w+`` tokens (0 when a phrase has no word)."""

    name = "bag-of-words cosine (lower-cased \\w+ tokens)"

    def matrix(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        counts_a = [Counter(re.findall(r"\w+", str(t).lower())) for t in a]
        counts_b = [Counter(re.findall(r"\w+", str(t).lower())) for t in b]
        out = np.zeros((len(a), len(b)))
        for i, x in enumerate(counts_a):
            for j, y in enumerate(counts_b):
                norm = math.sqrt(sum(v * v for v in x.values()) * sum(v * v for v in y.values()))
                out[i, j] = sum(x[w] * y[w] for w in x.keys() & y.keys()) / norm if norm else 0.0
        return out


class BertPhraseSimilarity:
    """GLaMM's similarity: cosine of the mean of a BERT model's last hidden states over a phrase's tokens.

    Args:
        model_dir: a local ``transformers`` model directory (e.g. a saved ``bert-base-uncased``); nothing is
            downloaded.

    Raises:
        FileNotFoundError: ``model_dir`` is not a directory.
    """

    def __init__(self, model_dir: str | os.PathLike) -> None:
        if not os.path.isdir(model_dir):
            raise FileNotFoundError(f"similarity model directory {model_dir} not found (a local transformers "
                                    "model, e.g. bert-base-uncased saved with save_pretrained)")
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()
        self.name = f"BERT mean-pooled cosine ({os.path.basename(os.path.normpath(model_dir))})"
        self._cache: dict[str, np.ndarray] = {}

    def embedding(self, text: str) -> np.ndarray:
        """(D,) mean of the last hidden states over the text's tokens (special tokens included, as GLaMM)."""
        if text not in self._cache:
            import torch

            inputs = self.tokenizer(text, return_tensors="pt", max_length=512, truncation=True)
            with torch.no_grad():
                hidden = self.model(**inputs).last_hidden_state[0]  # (T, D)
            self._cache[text] = hidden.mean(dim=0).float().numpy()
        return self._cache[text]

    def matrix(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(a), len(b)))
        for i, x in enumerate(a):
            for j, y in enumerate(b):
                out[i, j] = _cosine(self.embedding(str(x)), self.embedding(str(y)))
        return out


def phrase_similarity(model_dir: str | os.PathLike | None = None) -> PhraseSimilarity:
    """:class:`BertPhraseSimilarity` of ``model_dir``, or :class:`BagOfWordsSimilarity` when None."""
    return BagOfWordsSimilarity() if model_dir is None else BertPhraseSimilarity(model_dir)


def iou_matrix(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> np.ndarray:
    """(len(a), len(b)) IoU of (H, W) bool masks (0 over an empty union)."""
    out = np.zeros((len(a), len(b)))
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            union = np.logical_or(x, y).sum()
            out[i, j] = np.logical_and(x, y).sum() / union if union else 0.0
    return out


def greedy_miou(pred_masks: Sequence[np.ndarray], gt_masks: Sequence[np.ndarray]) -> float:
    """One image's mIoU: greedy one-to-one pairs of largest IoU while > 0; their mean (0 when none)."""
    ious = iou_matrix(pred_masks, gt_masks)
    taken = []
    while ious.size and ious.max() > 0:
        i, j = np.unravel_index(np.argmax(ious), ious.shape)
        taken.append(float(ious[i, j]))
        ious = np.delete(np.delete(ious, i, axis=0), j, axis=1)
    return float(np.mean(taken)) if taken else 0.0


def recall_matches(gt_masks: Sequence[np.ndarray], gt_labels: Sequence[str], pred_masks: Sequence[np.ndarray],
                   pred_labels: Sequence[str], similarity: PhraseSimilarity, iou_threshold: float = IOU_THRESHOLD,
                   similarity_threshold: float = SIMILARITY_THRESHOLD) -> list[tuple[int, int]]:
    """One image's matched ``(gt, prediction)`` pairs for mask recall (GLaMM's ``find_best_matches``).

    Raises:
        ValueError: a label list and its masks differ in length.
    """
    if len(gt_masks) != len(gt_labels) or len(pred_masks) != len(pred_labels):
        raise ValueError(f"{len(gt_masks)} ground-truth masks for {len(gt_labels)} labels, {len(pred_masks)} "
                         f"predicted masks for {len(pred_labels)} phrases")
    ious = iou_matrix(gt_masks, pred_masks)
    sims = similarity.matrix(gt_labels, pred_labels) if ious.size else np.zeros(ious.shape)
    matches = []
    while ious.size:
        i, j = np.unravel_index(np.argmax(ious), ious.shape)
        if ious[i, j] < iou_threshold or sims[i, j] < similarity_threshold:
            break
        matches.append((int(i), int(j)))
        ious[i, :] = ious[:, j] = 0.0
        sims[i, :] = sims[:, j] = 0.0
    return matches


def mask_ap50(gt: Sequence[Sequence[dict]], predictions: Sequence[Sequence[dict]],
              sizes: Sequence[tuple[int, int]]) -> float | None:
    """AP at IoU 0.50 of class-agnostic masks with pycocotools ``COCOeval`` (``segm``), every score 1.0.

    Args:
        gt: per image, its ground-truth masks as COCO RLEs.
        predictions: per image, its predicted masks as COCO RLEs.
        sizes: per image, (height, width).

    Returns:
        The AP50 as a fraction; 0.0 without any prediction; None without any ground truth.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, dets = [], [], []
    for index, (gts, preds, (height, width)) in enumerate(zip(gt, predictions, sizes)):
        images.append({"id": index, "height": int(height), "width": int(width)})
        for rle in gts:
            anns.append({"id": len(anns) + 1, "image_id": index, "category_id": 1, "segmentation": rle,
                         "area": float(_area(rle)), "bbox": _bbox(rle), "iscrowd": 0})
        dets += [{"image_id": index, "category_id": 1, "segmentation": rle, "score": 1.0} for rle in preds]
    if not anns:
        return None
    if not dets:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "object"}]}
        coco_gt.createIndex()
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(dets), "segm")
        evaluator.params.catIds = [1]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    value = float(evaluator.stats[1])
    return None if value < 0 else value


def _area(rle: dict) -> float:
    from pycocotools import mask as mask_utils

    return float(mask_utils.area(rle))


def _bbox(rle: dict) -> list[float]:
    from pycocotools import mask as mask_utils

    return [float(v) for v in mask_utils.toBbox(rle)]


def simple_tokenize(text: str) -> str:
    """PTB-like tokenization without Java: lower case, words and punctuation split, PTB punctuation dropped
    (double quotes too: the PTB tokenizer turns them into the dropped ``` `` ``` and ``''``)."""
    tokens = re.findall(r"\w+(?:'\w+)?|\.\.\.|--|[^\w\s]", str(text).lower())
    return " ".join(t for t in tokens if t not in PTB_PUNCTUATION and t != '"')


def _java_missing() -> str | None:
    return None if shutil.which("java") else "java not found on the PATH (pycocoevalcap's METEOR and PTB " \
                                                 "tokenizer run Java)"


def caption_scores(references: Mapping[str, Sequence[str]], candidates: Mapping[str, str],
                   meteor: bool = True) -> dict[str, Any]:
    """METEOR and CIDEr of ``candidates`` against ``references`` (same keys) with pycocoevalcap's scorers.

    Returns:
        ``{"meteor", "cider", "tokenizer", "meteor_note"}``: scores as fractions (CIDEr unbounded, ~10 at most);
        ``meteor`` None when skipped (``meteor_note`` says why); both None without any image.

    Raises:
        ImportError: pycocoevalcap is not installed (``pip install 'text4seg[gcg]'``).
        ValueError: the keys differ.
    """
    if set(references) != set(candidates):
        raise ValueError("caption references and candidates must cover the same images")
    try:
        from pycocoevalcap.cider.cider import Cider
    except ImportError as err:
        raise ImportError("the GCG caption metrics need pycocoevalcap: pip install 'text4seg[gcg]'") from err
    out: dict[str, Any] = {"meteor": None, "cider": None, "tokenizer": "ptb", "meteor_note": None}
    if not references:
        return out
    keys = sorted(references)
    missing = _java_missing()
    if missing is None:
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            tokenizer = PTBTokenizer()
            gts = tokenizer.tokenize({k: [{"caption": c} for c in references[k]] for k in keys})
            res = tokenizer.tokenize({k: [{"caption": candidates[k]}] for k in keys})
    else:
        out["tokenizer"] = "simple"
        gts = {k: [simple_tokenize(c) for c in references[k]] for k in keys}
        res = {k: [simple_tokenize(candidates[k])] for k in keys}
    out["cider"] = float(Cider().compute_score(gts, res)[0])
    if not meteor:
        out["meteor_note"] = "skipped (meteor=False)"
    elif missing is not None:
        out["meteor_note"] = f"skipped: {missing}"
    else:
        from pycocoevalcap.meteor.meteor import Meteor

        try:
            scorer = Meteor()
            try:
                out["meteor"] = float(scorer.compute_score(gts, res)[0])
            finally:
                scorer.__del__()  # stops the Java process now (running it again at collection is harmless)
        except (OSError, ValueError) as err:  # the jar failed to start or answered garbage
            out["meteor_note"] = f"skipped: METEOR-1.5 failed ({err})"
    return out


def gcg_scores(ground_truth: Sequence[Any], predictions: Sequence[Mapping[str, Any]],
               similarity: PhraseSimilarity | None = None, meteor: bool = True) -> dict[str, Any]:
    """All GCG metrics of paired ground truth and predictions (GLaMM's ``evaluate.py``).

    Args:
        ground_truth: per image, an object with ``caption``, ``labels``, ``segmentations`` (COCO RLEs, label i
            <-> mask i), ``height``, ``width`` and optionally ``references`` (every reference caption; default
            ``[caption]``) (:class:`text4seg.datasets.grandf.GcgGroundTruth`).
        predictions: per image (same order), ``{"caption", "phrases", "pred_masks": [COCO RLE]}`` (phrase i
            <-> mask i), GLaMM's prediction format.
        similarity: phrase similarity for mask recall (default :class:`BagOfWordsSimilarity`).
        meteor: compute METEOR (needs Java).

    Returns:
        ``{"meteor", "cider", "ap50", "miou", "recall"}`` (fractions) with ``images``, ``gt_phrases``,
        ``pred_phrases``, ``true_positives``, ``similarity``, ``tokenizer`` and ``meteor_note``.
    """
    from text4seg.datasets.coco_masks import decode_rle, segmentation_to_rle

    if len(ground_truth) != len(predictions):
        raise ValueError(f"{len(ground_truth)} ground-truth images for {len(predictions)} predictions")
    similarity = similarity or BagOfWordsSimilarity()
    mious, tp, gt_phrases, pred_phrases = [], 0, 0, 0
    gt_rles, pred_rles, sizes = [], [], []
    for gt, pred in zip(ground_truth, predictions):
        size = (int(gt.height), int(gt.width))
        g = [segmentation_to_rle(s, *size) for s in gt.segmentations]
        p = [segmentation_to_rle(s, *size) for s in pred["pred_masks"]]
        gt_masks, pred_masks = [decode_rle(r) for r in g], [decode_rle(r) for r in p]
        mious.append(greedy_miou(pred_masks, gt_masks))
        tp += len(recall_matches(gt_masks, list(gt.labels), pred_masks, list(pred["phrases"]), similarity))
        gt_phrases += len(gt.labels)
        pred_phrases += len(pred["phrases"])
        gt_rles.append(g)
        pred_rles.append(p)
        sizes.append(size)
    captions = caption_scores({str(k): list(getattr(gt, "references", None) or [gt.caption])
                               for k, gt in enumerate(ground_truth)},
                              {str(k): str(pred["caption"]) for k, pred in enumerate(predictions)}, meteor=meteor)
    return {
        "meteor": captions["meteor"],
        "cider": captions["cider"],
        "ap50": mask_ap50(gt_rles, pred_rles, sizes),
        "miou": float(np.mean(mious)) if mious else None,
        "recall": tp / gt_phrases if gt_phrases else None,
        "images": len(ground_truth),
        "gt_phrases": gt_phrases,
        "pred_phrases": pred_phrases,
        "true_positives": tp,
        "similarity": similarity.name,
        "tokenizer": captions["tokenizer"],
        "meteor_note": captions["meteor_note"],
    }
