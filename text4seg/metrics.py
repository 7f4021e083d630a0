"""Streaming, mergeable segmentation metrics (numpy only).

Every meter keeps O(1) state in the number of samples, can be merged with another meter of the same kind
(``a.merge(b)``: sharded evaluation adds up exactly, bit for bit, whatever the split), and round-trips through
a JSON-able ``state_dict()`` / ``from_state_dict()``.

Meters:

- :class:`ReferSegMeter`: referring / generalized referring / reasoning segmentation (cIoU, gIoU, N-acc, T-acc).
- :class:`RECMeter`: referring expression comprehension from mask boxes (Acc@0.5).
- :class:`SemanticSegMeter`: confusion-matrix semantic segmentation (mIoU, per-class IoU, pixel accuracy).
- :class:`JFMeter`: video object segmentation J&F (DAVIS), one :func:`jf_score` per video.
- :class:`GroupedMeter`: one meter per named sub-group (e.g. ReasonSeg short query vs long sentence) plus
  their exact total.

Masks are ``HxW`` arrays; boolean masks may also be given as 0/1 or 0/255 integers (non-zero = foreground).
Boxes are XYXY in continuous pixel coordinates: pixel ``(row, col)`` covers ``[col, col+1) x [row, row+1)``, so
a box from integer pixel indices is inclusive-exclusive (``x1 = last column + 1``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "GroupedMeter",
    "JFMeter",
    "RECMeter",
    "ReferSegMeter",
    "SemanticSegMeter",
    "box_accuracy",
    "box_from_mask",
    "box_iou",
    "boundary_f_measure",
    "boundary_radius",
    "jf_score",
    "meter_from_state_dict",
    "region_iou",
]

_STATE_VERSION = 1


# --------------------------------------------------------------------------------------------------- helpers


class _ExactSum:
    """Exact running sum of finite floats, kept as an integer count of 2**-1074 (the smallest float step).

    The value does not depend on the order of additions, so merged shards equal a single pass bit for bit,
    and the state is canonical. Memory is O(1) in #samples (an integer of ~1100 bits plus log2(#samples)).
    """

    __slots__ = ("units",)
    _SCALE_BITS = 1074

    def __init__(self, units: int = 0) -> None:
        self.units = int(units)

    def add(self, x: float) -> None:
        x = float(x)
        if not math.isfinite(x):
            raise ValueError(f"cannot accumulate a non-finite value: {x!r}")
        num, den = x.as_integer_ratio()  # den is a power of two <= 2**1074
        self.units += num * ((1 << self._SCALE_BITS) // den)

    def merge(self, other: _ExactSum) -> None:
        self.units += other.units

    @property
    def value(self) -> float:
        return self.units / (1 << self._SCALE_BITS)  # int / int is correctly rounded in Python

    def state(self) -> str:
        """Exact value as ``"<hex mantissa>p<binary exponent>"`` (a string: exact in every JSON reader)."""
        if self.units == 0:
            return "0p0"
        shift = ((abs(self.units) & -abs(self.units)).bit_length() - 1)
        return f"{self.units >> shift:x}p{shift - self._SCALE_BITS}"

    @classmethod
    def from_state(cls, text: str) -> _ExactSum:
        try:
            mantissa, exponent = str(text).split("p")
            units = int(mantissa, 16) << (int(exponent) + cls._SCALE_BITS)
        except ValueError as err:
            raise ValueError(f"malformed exact sum {text!r} in state_dict") from err
        return cls(units)


def _as_bool_mask(mask: Any, name: str) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D HxW mask, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name} must be a boolean or numeric mask, got dtype {arr.dtype}")
    return arr != 0


def _check_same_shape(a: np.ndarray, b: np.ndarray, names: tuple[str, str]) -> None:
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {names[0]} has shape {a.shape}, {names[1]} has shape {b.shape}")


def _check_state(state: dict[str, Any], kind: str) -> None:
    if not isinstance(state, dict) or state.get("type") != kind:
        got = state.get("type") if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"state_dict is not a {kind} state (type field: {got!r})")
    if state.get("version") != _STATE_VERSION:
        raise ValueError(f"{kind} state_dict version {state.get('version')!r} is not supported")


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


class _Meter:
    """Shared plumbing: equality by state, settings-compatible merges, fresh copies."""

    kind = "_Meter"

    def settings(self) -> dict[str, Any]:
        """Constructor keyword arguments that make two meters of this kind mergeable."""
        return {}

    def fresh(self) -> Any:
        """A new, empty meter with the same settings."""
        return type(self)(**self.settings())

    def _check_mergeable(self, other: Any) -> None:
        if type(other) is not type(self):
            raise ValueError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
        if other.settings() != self.settings():
            raise ValueError(f"cannot merge {self.kind}s with different settings: "
                             f"{self.settings()} vs {other.settings()}")

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.state_dict() == other.state_dict()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]


def region_iou(pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None) -> float:
    """IoU of two binary masks.

    Args:
        pred: HxW bool (or 0/non-zero) predicted mask.
        gt: HxW bool ground-truth mask.
        ignore: optional HxW bool mask of pixels excluded from intersection and union.

    Returns:
        IoU in [0, 1]; 1.0 when the union is empty (both masks empty).
    """
    p = _as_bool_mask(pred, "pred")
    g = _as_bool_mask(gt, "gt")
    _check_same_shape(p, g, ("pred", "gt"))
    if ignore is not None:
        keep = ~_as_bool_mask(ignore, "ignore")
        _check_same_shape(p, keep, ("pred", "ignore"))
        p, g = p & keep, g & keep
    union = int(np.count_nonzero(p | g))
    return 1.0 if union == 0 else int(np.count_nonzero(p & g)) / union


# ------------------------------------------------------------------------------------------- referring seg


class ReferSegMeter(_Meter):
    """Referring-segmentation scores over a stream of (prediction, ground truth) mask pairs.

    ``compute()`` returns:

    - ``ciou``: cumulative IoU, sum of intersections / sum of unions over all samples (1.0 if every union is
      empty, None without samples);
    - ``giou``: mean per-sample IoU, a sample with an empty union (empty target, empty prediction) counts 1.0;
    - ``n_acc``: share of no-target samples (empty ground truth) whose prediction is empty (None if there is
      no such sample);
    - ``t_acc``: share of with-target samples whose prediction is non-empty (None if there is no such sample);
    - ``samples``, ``no_target_samples``.

    Pixels marked in ``ignore`` (ReasonSeg) are excluded everywhere: from intersection and union, and from
    the emptiness tests of N-acc / T-acc.
    """

    kind = "ReferSegMeter"

    def __init__(self) -> None:
        self.intersection = 0
        self.union = 0
        self.samples = 0
        self.no_target_samples = 0
        self.no_target_correct = 0  # no-target samples predicted empty
        self.target_correct = 0  # with-target samples predicted non-empty
        self._iou_sum = _ExactSum()

    def update(self, pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None) -> float:
        """Add one sample.

        Args:
            pred: HxW bool predicted mask (0/non-zero integers accepted).
            gt: HxW bool ground-truth mask; all False for a no-target sample.
            ignore: optional HxW bool mask of pixels to exclude from scoring.

        Returns:
            The sample's IoU in [0, 1] (1.0 for an empty union), e.g. for per-sample logs.

        Raises:
            ValueError: the shapes differ (the message gives both) or a mask is not 2-D.
        """
        p = _as_bool_mask(pred, "pred")
        g = _as_bool_mask(gt, "gt")
        _check_same_shape(p, g, ("pred", "gt"))
        if ignore is not None:
            keep = ~_as_bool_mask(ignore, "ignore")
            _check_same_shape(p, keep, ("pred", "ignore"))
            p, g = p & keep, g & keep
        inter = int(np.count_nonzero(p & g))
        union = int(np.count_nonzero(p | g))
        iou = 1.0 if union == 0 else inter / union
        self.intersection += inter
        self.union += union
        self.samples += 1
        self._iou_sum.add(iou)
        pred_empty = not p.any()
        if not g.any():
            self.no_target_samples += 1
            self.no_target_correct += int(pred_empty)
        else:
            self.target_correct += int(not pred_empty)
        return iou

    def compute(self) -> dict[str, Any]:
        """Scores so far (see the class docstring); floats in [0, 1] or None."""
        target_samples = self.samples - self.no_target_samples
        if self.samples == 0:
            ciou = giou = None
        else:
            ciou = 1.0 if self.union == 0 else self.intersection / self.union
            giou = self._iou_sum.value / self.samples
        return {
            "ciou": ciou,
            "giou": giou,
            "n_acc": _ratio(self.no_target_correct, self.no_target_samples),
            "t_acc": _ratio(self.target_correct, target_samples),
            "samples": self.samples,
            "no_target_samples": self.no_target_samples,
        }

    def merge(self, other: ReferSegMeter) -> ReferSegMeter:
        """Add ``other``'s samples to this meter (exact); returns self."""
        self._check_mergeable(other)
        self.intersection += other.intersection
        self.union += other.union
        self.samples += other.samples
        self.no_target_samples += other.no_target_samples
        self.no_target_correct += other.no_target_correct
        self.target_correct += other.target_correct
        self._iou_sum.merge(other._iou_sum)
        return self

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state (ints; the exact IoU sum as a ``"<hex>p<exp>"`` string)."""
        return {
            "type": self.kind,
            "version": _STATE_VERSION,
            "intersection": self.intersection,
            "union": self.union,
            "samples": self.samples,
            "no_target_samples": self.no_target_samples,
            "no_target_correct": self.no_target_correct,
            "target_correct": self.target_correct,
            "iou_sum": self._iou_sum.state(),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> ReferSegMeter:
        """Rebuild a meter from :meth:`state_dict` output."""
        _check_state(state, cls.kind)
        meter = cls()
        for key in ("intersection", "union", "samples", "no_target_samples", "no_target_correct",
                    "target_correct"):
            setattr(meter, key, int(state[key]))
        meter._iou_sum = _ExactSum.from_state(state["iou_sum"])
        return meter



# ---------------------------------------------------------------------------------------------------- REC


def box_from_mask(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight bounding box of a binary mask.

    Args:
        mask: HxW bool (or 0/non-zero) mask.

    Returns:
        ``(x0, y0, x1, y1)`` XYXY ints, inclusive-exclusive: columns ``x0 .. x1-1`` and rows ``y0 .. y1-1``
        hold the mask (equivalently continuous pixel coordinates, pixel ``(r, c)`` covering
        ``[c, c+1) x [r, r+1)``); None for an empty mask.
    """
    m = _as_bool_mask(mask, "mask")
    cols = np.flatnonzero(m.any(axis=0))
    if cols.size == 0:
        return None
    rows = np.flatnonzero(m.any(axis=1))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _check_box(box: Sequence[float], name: str) -> tuple[float, float, float, float]:
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be 4 numbers (XYXY), got {box!r}") from err
    if x1 < x0 or y1 < y0:
        raise ValueError(f"{name} must be XYXY with x1 >= x0 and y1 >= y0, got {box!r}")
    return x0, y0, x1, y1


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two XYXY boxes (continuous coordinates, area = width * height).

    Returns:
        IoU in [0, 1]; 1.0 if both boxes have zero area and are identical, 0.0 if the union area is 0 otherwise.
    """
    ax0, ay0, ax1, ay1 = _check_box(a, "box a")
    bx0, by0, bx1, by1 = _check_box(b, "box b")
    iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    ih = max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = iw * ih
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    if union <= 0:
        return 1.0 if (ax0, ay0, ax1, ay1) == (bx0, by0, bx1, by1) else 0.0
    return inter / union


def _target_box(gt: Any) -> tuple[float, float, float, float] | None:
    """A ground truth given as an HxW mask or an XYXY box (None = no target)."""
    if gt is None:
        return None
    arr = np.asarray(gt)
    if arr.ndim == 2:
        return box_from_mask(arr)
    if arr.ndim == 1 and arr.shape[0] == 4:
        return _check_box(arr.tolist(), "ground-truth box")
    raise ValueError(f"ground truth must be an HxW mask or an XYXY box of 4 numbers, got shape {arr.shape}")


def _rec_iou(pred_mask: np.ndarray, gt: Any) -> float:
    pred_box = box_from_mask(pred_mask)
    gt_box = _target_box(gt)
    if gt_box is None:
        return 1.0 if pred_box is None else 0.0
    if pred_box is None:
        return 0.0
    return box_iou(pred_box, gt_box)


def box_accuracy(pred_mask: np.ndarray, gt: np.ndarray | Sequence[float] | None, threshold: float = 0.5) -> bool:
    """Referring-expression-comprehension hit: box of the predicted mask vs the target box.

    Args:
        pred_mask: HxW bool predicted mask.
        gt: HxW bool ground-truth mask, an XYXY box (4 numbers, continuous pixel coordinates; convert COCO
            ``[x, y, w, h]`` with ``[x, y, x + w, y + h]``), or None for "no target".
        threshold: IoU must be strictly greater than this (Acc@0.5).

    Returns:
        True for a hit. An empty prediction is a miss unless the target is empty too (then it is a hit; a
        non-empty prediction for an empty target is a miss).
    """
    return _rec_iou(pred_mask, gt) > threshold


class RECMeter(_Meter):
    """Streaming Acc@threshold for referring expression comprehension (boxes from masks).

    ``compute()`` returns ``{"acc": hits / samples (None without samples), "hits", "samples", "threshold",
    "mean_box_iou"}``. See :func:`box_accuracy` for the hit rule.
    """

    kind = "RECMeter"

    def __init__(self, threshold: float = 0.5) -> None:
        if not 0.0 <= threshold < 1.0:
            raise ValueError(f"threshold must be in [0, 1), got {threshold}")
        self.threshold = float(threshold)
        self.hits = 0
        self.samples = 0
        self._iou_sum = _ExactSum()

    def settings(self) -> dict[str, Any]:
        return {"threshold": self.threshold}

    def update(self, pred_mask: np.ndarray, gt: np.ndarray | Sequence[float] | None) -> bool:
        """Add one sample (see :func:`box_accuracy` for the arguments); returns whether it is a hit."""
        iou = _rec_iou(pred_mask, gt)
        hit = iou > self.threshold
        self.hits += int(hit)
        self.samples += 1
        self._iou_sum.add(iou)
        return hit

    def compute(self) -> dict[str, Any]:
        return {
            "acc": _ratio(self.hits, self.samples),
            "hits": self.hits,
            "samples": self.samples,
            "threshold": self.threshold,
            "mean_box_iou": None if self.samples == 0 else self._iou_sum.value / self.samples,
        }

    def merge(self, other: RECMeter) -> RECMeter:
        self._check_mergeable(other)
        self.hits += other.hits
        self.samples += other.samples
        self._iou_sum.merge(other._iou_sum)
        return self

    def state_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "version": _STATE_VERSION, "threshold": self.threshold, "hits": self.hits,
                "samples": self.samples, "iou_sum": self._iou_sum.state()}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> RECMeter:
        _check_state(state, cls.kind)
        meter = cls(threshold=float(state["threshold"]))
        meter.hits = int(state["hits"])
        meter.samples = int(state["samples"])
        meter._iou_sum = _ExactSum.from_state(state["iou_sum"])
        return meter



# ---------------------------------------------------------------------------------------------- semantic


class SemanticSegMeter(_Meter):
    """Confusion-matrix semantic segmentation scores.

    Pixels whose ground truth is ``ignore_index`` are dropped on both sides (they count for no class, in
    prediction or ground truth). A predicted value outside ``[0, num_classes)`` (e.g. an unknown class name
    decoded to ``ignore_index``) where the ground truth is valid is a wrong prediction: it adds to the
    ground-truth class's union and to no class's prediction.

    ``compute()`` returns:

    - ``miou``: mean IoU over the classes that appear in the prediction or the ground truth (classes absent
      from both are not counted as 0 or 1, they are skipped), excluding ``background_id`` unless
      ``include_background``; None when no class qualifies;
    - ``per_class_iou``: list of ``num_classes`` entries, None for classes absent from both sides;
    - ``pixel_accuracy``: correct pixels / valid (non-ignored) pixels, None without valid pixels;
    - ``classes_in_mean``, ``pixels`` (valid pixels), ``samples``;
    - with ``background_id`` set: ``miou_with_background`` (the reference's convention) for comparison.

    Args:
        num_classes: number of class ids, ``0 .. num_classes-1``.
        ignore_index: ground-truth value of pixels to ignore (must lie outside ``[0, num_classes)``).
        background_id: optional id of a "background" class: still scored per class, but left out of
            ``miou`` unless ``include_background`` is True. Default None: every class counts.
        include_background: count ``background_id`` in ``miou`` as well.
    """

    kind = "SemanticSegMeter"

    def __init__(self, num_classes: int, ignore_index: int = 255, background_id: int | None = None,
                 include_background: bool = False) -> None:
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        if 0 <= self.ignore_index < self.num_classes:
            raise ValueError(f"ignore_index {ignore_index} collides with a class id (num_classes={num_classes})")
        if background_id is not None and not 0 <= int(background_id) < self.num_classes:
            raise ValueError(f"background_id {background_id} is not a class id in [0, {self.num_classes})")
        self.background_id = None if background_id is None else int(background_id)
        self.include_background = bool(include_background)
        # rows: ground truth class; columns: predicted class, last column = invalid prediction
        self.confusion = np.zeros((self.num_classes, self.num_classes + 1), dtype=np.int64)
        self.samples = 0

    def settings(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "ignore_index": self.ignore_index,
                "background_id": self.background_id, "include_background": self.include_background}

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add one image.

        Args:
            pred: HxW integer label map of predicted class ids.
            gt: HxW integer label map, values in ``[0, num_classes)`` or ``ignore_index``.

        Raises:
            ValueError: shapes differ, non-integer maps, or a ground-truth value that is neither a class id
                nor ``ignore_index``.
        """
        p = np.asarray(pred)
        g = np.asarray(gt)
        if p.ndim != 2 or g.ndim != 2:
            raise ValueError(f"pred and gt must be 2-D HxW label maps, got shapes {p.shape} and {g.shape}")
        _check_same_shape(p, g, ("pred", "gt"))
        for name, arr in (("pred", p), ("gt", g)):
            if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
                raise ValueError(f"{name} must be an integer label map, got dtype {arr.dtype}")
        g = g.astype(np.int64).ravel()
        p = p.astype(np.int64).ravel()
        valid = g != self.ignore_index
        g, p = g[valid], p[valid]
        bad = (g < 0) | (g >= self.num_classes)
        if bad.any():
            raise ValueError(f"gt holds value {int(g[bad][0])}, neither a class id in [0, {self.num_classes}) "
                             f"nor ignore_index {self.ignore_index}")
        p = np.where((p < 0) | (p >= self.num_classes), self.num_classes, p)
        cols = self.num_classes + 1
        counts = np.bincount(g * cols + p, minlength=self.num_classes * cols)
        self.confusion += counts.reshape(self.num_classes, cols)
        self.samples += 1

    def compute(self) -> dict[str, Any]:
        k = self.num_classes
        tp = np.diag(self.confusion[:, :k])
        gt_count = self.confusion.sum(axis=1)
        pred_count = self.confusion[:, :k].sum(axis=0)
        union = gt_count + pred_count - tp
        per_class: list[float | None] = [None if int(u) == 0 else int(t) / int(u) for t, u in zip(tp, union)]
        present = [c for c in range(k) if per_class[c] is not None]

        def mean(classes: list[int]) -> float | None:
            return None if not classes else math.fsum(per_class[c] for c in classes) / len(classes)

        in_mean = [c for c in present if self.include_background or c != self.background_id]
        pixels = int(self.confusion.sum())
        out: dict[str, Any] = {
            "miou": mean(in_mean),
            "per_class_iou": per_class,
            "pixel_accuracy": _ratio(int(tp.sum()), pixels),
            "classes_in_mean": len(in_mean),
            "pixels": pixels,
            "samples": self.samples,
        }
        if self.background_id is not None:
            out["miou_with_background"] = mean(present)
        return out

    def merge(self, other: SemanticSegMeter) -> SemanticSegMeter:
        self._check_mergeable(other)
        self.confusion += other.confusion
        self.samples += other.samples
        return self

    def state_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "version": _STATE_VERSION, "num_classes": self.num_classes,
                "ignore_index": self.ignore_index, "background_id": self.background_id,
                "include_background": self.include_background, "samples": self.samples,
                "confusion": self.confusion.tolist()}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> SemanticSegMeter:
        _check_state(state, cls.kind)
        meter = cls(state["num_classes"], state["ignore_index"], state["background_id"],
                    state["include_background"])
        confusion = np.asarray(state["confusion"], dtype=np.int64)
        if confusion.shape != meter.confusion.shape:
            raise ValueError(f"confusion has shape {confusion.shape}, expected {meter.confusion.shape}")
        meter.confusion = confusion
        meter.samples = int(state["samples"])
        return meter



# ------------------------------------------------------------------------------------------------- video


def _seg2bmap(mask: np.ndarray) -> np.ndarray:
    """DAVIS boundary map: a pixel is boundary if it differs from its right, bottom or bottom-right neighbour.

    This is a morphological gradient with a 2x2 structuring element (identical to DAVIS' ``seg2bmap`` for a
    map of the mask's own size); pixels past the last row/column count as equal to the pixel itself.
    """
    e = np.zeros_like(mask)
    s = np.zeros_like(mask)
    se = np.zeros_like(mask)
    e[:, :-1] = mask[:, 1:]
    s[:-1, :] = mask[1:, :]
    se[:-1, :-1] = mask[1:, 1:]
    b = (mask ^ e) | (mask ^ s) | (mask ^ se)
    b[-1, :] = mask[-1, :] ^ e[-1, :]
    b[:, -1] = mask[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


def _disk(radius: float) -> np.ndarray:
    """Disk footprint as ``skimage.morphology.disk(radius)``: offsets ``arange(-r, r + 1)`` on both axes, kept
    where ``x^2 + y^2 <= r^2``. A non-integer radius gives an even-sized footprint (``r = 1.5``: 4x4 holding
    the central 2x2), exactly as the reference."""
    offsets = np.arange(-radius, radius + 1)
    return (offsets[:, None] ** 2 + offsets[None, :] ** 2) <= radius * radius


def _dilate(mask: np.ndarray, radius: float) -> np.ndarray:
    """Binary dilation by :func:`_disk` as ``cv2.dilate`` computes it (zero border), so F matches the reference.

    OpenCV anchors a ``k x k`` kernel at index ``k // 2`` and sets ``out[y, x]`` when ``mask[y + i - k // 2,
    x + j - k // 2]`` is set for a kernel cell ``(i, j)``. For the odd footprints of integer radii that is the
    plain dilation; for the even ones of non-integer radii (``bound_th >= 1`` given as e.g. 1.5) it is shifted
    by half a pixel, which scipy reproduces with ``origin=-1``. Uses scipy.ndimage when installed, otherwise
    shifted ORs (same result).
    """
    footprint = _disk(radius)
    if not mask.any() or footprint.shape == (1, 1):
        return mask.copy()
    try:
        from scipy import ndimage
    except ImportError:
        ndimage = None
    if ndimage is not None:
        origin = 0 if footprint.shape[0] % 2 else -1
        return ndimage.binary_dilation(mask, structure=footprint, origin=origin)
    h, w = mask.shape
    out = np.zeros_like(mask)
    anchor = footprint.shape[0] // 2
    for dy, dx in np.argwhere(footprint) - anchor:  # out[y, x] |= mask[y + dy, x + dx]
        if abs(dy) >= h or abs(dx) >= w:
            continue  # the shifted mask lies wholly outside the frame
        ys, yd = (slice(dy, h), slice(0, h - dy)) if dy >= 0 else (slice(0, h + dy), slice(-dy, h))
        xs, xd = (slice(dx, w), slice(0, w - dx)) if dx >= 0 else (slice(0, w + dx), slice(-dx, w))
        out[yd, xd] |= mask[ys, xs]
    return out


def boundary_radius(shape: tuple[int, int], bound_th: float = 0.008) -> float:
    """Boundary tolerance in pixels as davis2017-evaluation computes it.

    Args:
        shape: ``(H, W)`` of the frame.
        bound_th: a fraction of the diagonal when ``< 1`` (radius ``ceil(bound_th * sqrt(H^2 + W^2))``, 8 at
            480x854), else the radius in pixels, used as given (a non-integer radius is kept: see :func:`_disk`).

    Raises:
        ValueError: ``bound_th`` is negative or not finite.
    """
    if not (math.isfinite(bound_th) and bound_th >= 0):
        raise ValueError(f"bound_th must be a finite number >= 0, got {bound_th!r}")
    if bound_th >= 1:
        return float(bound_th)
    h, w = shape
    return float(math.ceil(bound_th * math.sqrt(h * h + w * w)))  # as np.linalg.norm: exact sum, one sqrt


def boundary_f_measure(pred: np.ndarray, gt: np.ndarray, bound_th: float = 0.008) -> float:
    """DAVIS boundary F-measure of one frame, equal to davis2017-evaluation's ``db_eval_boundary``.

    Boundaries come from :func:`_seg2bmap`; a boundary pixel is matched when the other mask's boundary lies
    within the disk of :func:`boundary_radius` (dilation as ``cv2.dilate``, see :func:`_dilate`). Empty cases
    are decided on the boundary maps as the reference does: none on either side gives 1.0; none on one side
    only gives 0.0 (so a mask covering the whole frame, which has no boundary, scores 1.0 against an empty one).

    Args:
        pred: HxW bool predicted mask.
        gt: HxW bool ground-truth mask.
        bound_th: tolerance as a fraction of the diagonal (< 1) or in pixels (>= 1).

    Returns:
        F in [0, 1].
    """
    p = _as_bool_mask(pred, "pred")
    g = _as_bool_mask(gt, "gt")
    _check_same_shape(p, g, ("pred", "gt"))
    radius = boundary_radius(p.shape, bound_th)
    pb = _seg2bmap(p)
    gb = _seg2bmap(g)
    n_p = int(np.count_nonzero(pb))
    n_g = int(np.count_nonzero(gb))
    if n_p == 0 and n_g == 0:
        return 1.0
    if n_p == 0 or n_g == 0:
        return 0.0
    precision = int(np.count_nonzero(pb & _dilate(gb, radius))) / n_p
    recall = int(np.count_nonzero(gb & _dilate(pb, radius))) / n_g
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def jf_score(pred_frames: Sequence[np.ndarray], gt_frames: Sequence[np.ndarray],
             bound_th: float = 0.008) -> dict[str, Any]:
    """J&F of one video (one object): region IoU and DAVIS boundary F-measure per frame.

    Args:
        pred_frames: sequence of HxW bool predicted masks, one per frame.
        gt_frames: sequence of HxW bool ground-truth masks, same length and shapes.
        bound_th: boundary tolerance, see :func:`boundary_f_measure`.

    Returns:
        ``{"j": mean J, "f": mean F, "jf": (j + f) / 2, "j_frames": [...], "f_frames": [...], "frames": n}``;
        a frame where both masks are empty scores 1 for J and F. Means are None for zero frames.
    """
    pred_frames = list(pred_frames)
    gt_frames = list(gt_frames)
    if len(pred_frames) != len(gt_frames):
        raise ValueError(f"pred_frames has {len(pred_frames)} frames, gt_frames has {len(gt_frames)}")
    j_frames: list[float] = []
    f_frames: list[float] = []
    for i, (p, g) in enumerate(zip(pred_frames, gt_frames)):
        p = _as_bool_mask(p, f"pred frame {i}")
        g = _as_bool_mask(g, f"gt frame {i}")
        if p.shape != g.shape:
            raise ValueError(f"shape mismatch at frame {i}: pred has shape {p.shape}, gt has shape {g.shape}")
        j_frames.append(region_iou(p, g))
        f_frames.append(boundary_f_measure(p, g, bound_th))
    n = len(j_frames)
    j = math.fsum(j_frames) / n if n else None
    f = math.fsum(f_frames) / n if n else None
    return {"j": j, "f": f, "jf": None if n == 0 else (j + f) / 2, "j_frames": j_frames,
            "f_frames": f_frames, "frames": n}


class JFMeter(_Meter):
    """Streaming J&F over videos (DAVIS convention: per-video means, then the mean over videos).

    ``update(pred_frames, gt_frames)`` scores one video (one object track) with :func:`jf_score`.
    ``compute()`` returns ``{"j", "f", "jf", "videos", "frames"}`` where ``j``/``f`` are means over videos of
    the per-video means and ``jf = (j + f) / 2`` (None without videos).
    """

    kind = "JFMeter"

    def __init__(self, bound_th: float = 0.008) -> None:
        self.bound_th = float(bound_th)
        self.videos = 0
        self.frames = 0
        self._j_sum = _ExactSum()
        self._f_sum = _ExactSum()

    def settings(self) -> dict[str, Any]:
        return {"bound_th": self.bound_th}

    def update(self, pred_frames: Sequence[np.ndarray], gt_frames: Sequence[np.ndarray]) -> dict[str, Any]:
        """Score one video and add it; returns its :func:`jf_score` result. Zero-frame videos are refused."""
        score = jf_score(pred_frames, gt_frames, self.bound_th)
        if score["frames"] == 0:
            raise ValueError("a video must have at least one frame")
        self.videos += 1
        self.frames += score["frames"]
        self._j_sum.add(score["j"])
        self._f_sum.add(score["f"])
        return score

    def compute(self) -> dict[str, Any]:
        if self.videos == 0:
            return {"j": None, "f": None, "jf": None, "videos": 0, "frames": 0}
        j = self._j_sum.value / self.videos
        f = self._f_sum.value / self.videos
        return {"j": j, "f": f, "jf": (j + f) / 2, "videos": self.videos, "frames": self.frames}

    def merge(self, other: JFMeter) -> JFMeter:
        self._check_mergeable(other)
        self.videos += other.videos
        self.frames += other.frames
        self._j_sum.merge(other._j_sum)
        self._f_sum.merge(other._f_sum)
        return self

    def state_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "version": _STATE_VERSION, "bound_th": self.bound_th, "videos": self.videos,
                "frames": self.frames, "j_sum": self._j_sum.state(),
                "f_sum": self._f_sum.state()}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> JFMeter:
        _check_state(state, cls.kind)
        meter = cls(bound_th=float(state["bound_th"]))
        meter.videos = int(state["videos"])
        meter.frames = int(state["frames"])
        meter._j_sum = _ExactSum.from_state(state["j_sum"])
        meter._f_sum = _ExactSum.from_state(state["f_sum"])
        return meter



# ------------------------------------------------------------------------------------------------ groups

_METERS: dict[str, Any] = {
    "ReferSegMeter": ReferSegMeter,
    "RECMeter": RECMeter,
    "SemanticSegMeter": SemanticSegMeter,
    "JFMeter": JFMeter,
}


class GroupedMeter(_Meter):
    """One meter per named group plus their exact total, e.g. ReasonSeg short-query vs long-sentence.

    Example::

        meter = GroupedMeter(ReferSegMeter(), groups=("short", "long"))
        meter.update("long", pred, gt, ignore=ignore)     # same arguments as ReferSegMeter.update
        meter.compute()  # {"overall": {...all samples...}, "groups": {"long": {...}, "short": {...}}}

    The overall scores are the merge of the groups (meters merge exactly), so nothing is counted twice.

    Args:
        meter: the prototype, an (empty) meter instance whose settings every group copies, or a meter class
            built with its default settings.
        groups: optional group names created up front (so they appear even with no samples).
    """

    kind = "GroupedMeter"

    def __init__(self, meter: _Meter | type = ReferSegMeter, groups: Iterable[str] = ()) -> None:
        self.prototype: _Meter = (meter() if isinstance(meter, type) else meter).fresh()
        self.groups: dict[str, Any] = {}
        for name in groups:
            self.group(name)

    def settings(self) -> dict[str, Any]:
        return {"meter": self.prototype.kind, **self.prototype.settings()}

    def fresh(self) -> GroupedMeter:
        return GroupedMeter(self.prototype)

    def group(self, name: str) -> Any:
        """The meter of group ``name`` (created on first use); group names are strings (JSON keys)."""
        if not isinstance(name, str):
            raise ValueError(f"group names must be strings, got {name!r}")
        if name not in self.groups:
            self.groups[name] = self.prototype.fresh()
        return self.groups[name]

    def update(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """``group(name).update(*args, **kwargs)``; returns what the meter's update returns."""
        return self.group(name).update(*args, **kwargs)

    def total(self) -> Any:
        """A new meter holding all groups merged."""
        out = self.prototype.fresh()
        for name in sorted(self.groups):
            out.merge(self.groups[name])
        return out

    def compute(self) -> dict[str, Any]:
        """``{"overall": total().compute(), "groups": {name: group.compute()}}``."""
        return {"overall": self.total().compute(),
                "groups": {name: self.groups[name].compute() for name in sorted(self.groups)}}

    def merge(self, other: GroupedMeter) -> GroupedMeter:
        self._check_mergeable(other)
        for name in sorted(other.groups):
            self.group(name).merge(other.groups[name])
        return self

    def state_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "version": _STATE_VERSION, "prototype": self.prototype.state_dict(),
                "groups": {name: self.groups[name].state_dict() for name in sorted(self.groups)}}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> GroupedMeter:
        _check_state(state, cls.kind)
        out = cls(meter_from_state_dict(state["prototype"]))
        for name, group_state in state["groups"].items():
            group = meter_from_state_dict(group_state)
            if group.settings() != out.prototype.settings() or type(group) is not type(out.prototype):
                raise ValueError(f"GroupedMeter group {name!r} does not match the prototype's settings")
            out.groups[name] = group
        return out


_METERS["GroupedMeter"] = GroupedMeter
# Video meters live in text4seg.video_metrics (built on this module); their states dispatch here too.
_VIDEO_METERS = ("RVOSMeter", "ReVOSMeter")


def meter_from_state_dict(state: dict[str, Any]) -> Any:
    """Rebuild any meter of this module or of :mod:`text4seg.video_metrics` from its ``state_dict()`` (dispatch
    on the ``type`` field)."""
    kind = state.get("type") if isinstance(state, dict) else None
    if kind in _VIDEO_METERS and kind not in _METERS:
        import text4seg.video_metrics as video_metrics  # imports this module: registered on first use

        _METERS[kind] = getattr(video_metrics, kind)
    if kind not in _METERS:
        raise ValueError(f"unknown meter type {kind!r}; expected one of {sorted(set(_METERS) | set(_VIDEO_METERS))}")
    return _METERS[kind].from_state_dict(state)
