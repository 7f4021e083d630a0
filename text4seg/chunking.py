"""Class-list chunking: a long class list asked in several prompts, the answers merged into one label grid (no
torch).

Hundreds of class names (ADE20K-847, PASCAL-Context-459) make one very long prompt. With chunking, an image is
asked ``ceil(K / N)`` questions, each listing at most ``N`` of the ``K`` classes (:func:`class_chunks`: the list
cut in order), and the answers' label grids are merged cell by cell (:func:`merge_chunk_grids`):

1. a label naming one of the listed classes beats a label naming none (an unknown label), which beats the
   background label; a cell every chunk calls background stays background;
2. among labels of the same rank, the one with the highest score wins: the mean log-probability of that
   label's tokens in its own answer (``backend.label_scores``, :func:`text4seg.decoding.confidence.
   label_logprobs`); a label without a score (a backend without ``label_scores``) scores ``-inf``;
3. ties go to the earlier chunk, so without scores a cell takes the label of the first chunk that names a
   class there.

:meth:`text4seg.Segmenter.segment` with ``classes=[...]`` and ``chunk_size=N`` asks and merges the chunks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from text4seg.descriptors import LabelMap, encode_descriptor, wrap_descriptor

__all__ = ["MergedGrid", "chunked_result_fields", "class_chunks", "label_key", "merge_chunk_grids"]

# ranks of a cell's label in the merge (higher wins)
_BACKGROUND, _UNKNOWN, _CLASS = 0, 1, 2


def class_chunks(classes: Sequence[str], chunk_size: int) -> list[list[str]]:
    """``classes`` cut in order into lists of ``chunk_size`` (the last one may be shorter).

    Args:
        classes: the class names, K >= 1.
        chunk_size: most classes per prompt, N >= 1.

    Returns:
        ``ceil(K / N)`` non-empty lists whose concatenation is ``classes``.

    Raises:
        ValueError: an empty or str ``classes``, or ``chunk_size`` not an int >= 1.
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size {chunk_size!r}: expected an int >= 1 (most classes per prompt)")
    if isinstance(classes, str) or not classes:
        raise ValueError(f"classes: expected a non-empty list of class names, got {classes!r}")
    names = list(classes)
    return [names[k : k + chunk_size] for k in range(0, len(names), chunk_size)]


def label_key(label: str) -> str:
    """The key of a label in ``backend.label_scores`` dicts: its words joined by one space (as written)."""
    return " ".join(str(label).split())


@dataclass(frozen=True)
class MergedGrid:
    """The merge of several chunk answers about one image.

    Attributes:
        labels: (H, W) object array of str: each cell's winning label as its chunk wrote it, or the label map's
            background label where every chunk said background.
        chunk: (H, W) int64: index of the chunk whose label the cell took; -1 where every chunk said background.
    """

    labels: np.ndarray
    chunk: np.ndarray


def merge_chunk_grids(
    grids: Sequence[np.ndarray],
    scores: Sequence[Mapping[str, float] | None],
    label_map: LabelMap,
) -> MergedGrid:
    """Merge the label grids of the chunk answers about one image (rules in the module docstring).

    Args:
        grids: per chunk, its (H, W) str label grid (``DecodedGrid.labels``), all of the same shape.
        scores: per chunk, label -> mean log-probability of the label's tokens (keys as :func:`label_key`), or
            None when the backend gives no scores.
        label_map: the whole class list (all chunks): a label it knows (other than the background) names a
            class; its ``background`` is the background label.

    Returns:
        :class:`MergedGrid`.

    Raises:
        ValueError: no grids, a scores list of another length, or grids of different shapes.
    """
    if not grids:
        raise ValueError("merge_chunk_grids: no chunk grids")
    if len(scores) != len(grids):
        raise ValueError(f"merge_chunk_grids: {len(grids)} grids but {len(scores)} score dicts")
    grids = [np.asarray(grid, dtype=object) for grid in grids]
    shape = grids[0].shape
    if len(shape) != 2:
        raise ValueError(f"merge_chunk_grids: expected (H, W) grids, got shape {shape}")
    for k, grid in enumerate(grids):
        if grid.shape != shape:
            raise ValueError(f"merge_chunk_grids: chunk {k} has a {grid.shape} grid, chunk 0 {shape}")
    background = label_key(label_map.background).casefold()
    best_rank = np.zeros(shape, dtype=np.int64)
    best_score = np.full(shape, -np.inf)
    chunk = np.full(shape, -1, dtype=np.int64)
    labels = np.full(shape, label_map.background, dtype=object)
    for k, (grid, by_label) in enumerate(zip(grids, scores)):
        values, inverse = np.unique(grid.astype(str), return_inverse=True)
        inverse = inverse.reshape(shape)
        value_rank = np.array([_rank(v, label_map, background) for v in values], dtype=np.int64)
        value_score = np.array([_score(v, by_label) for v in values], dtype=np.float64)
        rank, score = value_rank[inverse], value_score[inverse]
        # strictly better only: on a tie the earlier chunk keeps the cell
        wins = (rank > _BACKGROUND) & ((rank > best_rank) | ((rank == best_rank) & (score > best_score)))
        best_rank[wins], best_score[wins], chunk[wins] = rank[wins], score[wins], k
        labels[wins] = grid[wins]
    return MergedGrid(labels=labels, chunk=chunk)


def _rank(label: str, label_map: LabelMap, background: str) -> int:
    if label_key(label).casefold() == background:
        return _BACKGROUND
    return _UNKNOWN if label_map.lookup(label) is None else _CLASS


def _score(label: str, by_label: Mapping[str, float] | None) -> float:
    if not by_label:
        return -math.inf
    value = by_label.get(label_key(label))
    if value is None:
        return -math.inf
    value = float(value)
    return -math.inf if math.isnan(value) else value


def chunked_result_fields(
    chunks: Sequence[Sequence[str]],
    prompts: Sequence[str],
    generated: Sequence[Any],
    decoded: Sequence[Any],
    scores: Sequence[Mapping[str, float] | None],
    merged: MergedGrid,
    label_map: LabelMap,
    rle: bool = True,
) -> dict[str, Any]:
    """The :class:`~text4seg.segmenter.SegmentationResult` fields of a merged answer other than ``query``,
    ``grid`` and ``mask`` (see its ``extra`` attribute).

    Args:
        chunks: per chunk, its class names (:func:`class_chunks`).
        prompts: per chunk, the prompt asked.
        generated: per chunk, its :class:`~text4seg.decoding.generation.GeneratedText`.
        decoded: per chunk, its :class:`~text4seg.descriptors.DecodedGrid`.
        scores: per chunk, its label scores or None.
        merged: the merge of the chunks' grids.
        label_map: the whole class list (unknown labels are reported with its ``fallback_id``).
        rle: write the merged descriptor in R-RLE (else plain).

    Returns:
        ``text`` (the merged grid as a ``<seg>`` descriptor; the chunks' answers one after another if a label
        cannot be written), ``repairs`` (``"chunk K: ..."`` decoding fixes, then unknown classes of the merged
        grid), ``seconds``, ``tokens``, ``forward_passes`` (sums), ``prompt`` (one line per chunk), ``form``
        (the chunks' common form, else ``"mixed"``) and ``extra`` (``chunks``, ``cell_chunk``).
    """
    repairs = [f"chunk {k}: {fix}" for k, d in enumerate(decoded) for fix in d.repairs]
    _, unknown = label_map.ids(merged.labels)
    repairs.extend(f"unknown class {name!r}: id {label_map.fallback_id}" for name in unknown)
    try:
        text = wrap_descriptor(encode_descriptor(merged.labels, rle=rle))
    except ValueError:  # a label the model wrote that a descriptor cannot hold ("a*b"): keep the answers
        text = "\n".join(g.text for g in generated)
    forms = {d.form for d in decoded}
    per_chunk = [
        {"classes": list(names), "prompt": prompt, "text": g.text, "form": d.form, "repairs": list(d.repairs),
         "tokens": int(g.tokens), "forward_passes": int(g.forward_passes), "seconds": float(g.seconds),
         "label_scores": None if s is None else dict(s)}
        for names, prompt, g, d, s in zip(chunks, prompts, generated, decoded, scores)
    ]
    return {
        "text": text,
        "repairs": repairs,
        "seconds": float(sum(g.seconds for g in generated)),
        "tokens": int(sum(g.tokens for g in generated)),
        "forward_passes": int(sum(g.forward_passes for g in generated)),
        "prompt": "\n".join(prompts),
        "form": forms.pop() if len(forms) == 1 else "mixed",
        "extra": {"chunks": per_chunk, "cell_chunk": merged.chunk},
    }
