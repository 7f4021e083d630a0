"""SAM refiner: turn a coarse text4seg mask into a fine mask with Segment Anything (extra ``sam``).

The coarse mask (a descriptor grid upsampled to the image) becomes SAM prompts:

- a **mask prompt**: logits in SAM's low-resolution frame (256x256 for the official models) laid out the way
  SAM lays out the image itself: SAM resizes the long side to 1024 and pads bottom/right, so the coarse mask
  is resized into the top-left ``(round(256*h/long), round(256*w/long))`` region (exactly: SAM's own resized
  size divided by 4), foreground ``+mask_logit``, background ``-mask_logit``, and the padding
  ``pad_logit`` (default -20: strongly "not object", which is also what SAM predicts there itself, so fed-back
  logits and our first prompt look alike). The reference stretched the mask over the whole frame, which is
  misaligned for every non-square image.
- **positive points**: interior distance-transform maxima, up to ``positive_points`` per connected component,
  largest components first (deterministic: ties go to the first pixel in raster order);
- **negative points**: centres of the largest background areas inside the mask's box grown by
  ``box_margin``, kept at least ``negative_min_distance`` away from the (uncertain) coarse border;
- optionally the **box** (XYXY of the mask);
- ``rounds`` extra iterations that feed SAM's best low-res logits back as the mask prompt.

torch and segment-anything are imported only when a refiner is built; prompt construction is numpy only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = [
    "RefineOptions",
    "RefinedLabels",
    "RefinedMask",
    "SamRefiner",
    "connected_components",
    "mask_prompt_logits",
    "point_prompts",
    "preprocess_shape",
    "squared_distance_transform",
]

_INSTALL_HINT = "pip install 'text4seg[sam]'"


def _require_sam() -> tuple[Any, Any]:
    """Import torch and segment_anything, or fail with the install command."""
    try:
        import segment_anything
        import torch
    except ImportError as err:
        raise ImportError(f"the SAM refiner needs torch, torchvision and segment-anything ({err}); "
                          f"install them with: {_INSTALL_HINT}") from err
    return torch, segment_anything


# ------------------------------------------------------------------------------------------------ options


@dataclass
class RefineOptions:
    """How coarse masks become SAM prompts.

    Attributes:
        positive_points: interior points per connected component (0 = none).
        max_components: components that get points, largest first.
        negative_points: background points in the grown box (0 = none).
        use_mask_prompt: give SAM the coarse mask as low-res logits.
        use_box: give SAM the mask's XYXY box.
        box_margin: growth of the box in which negative points are sought, as a fraction of its longer side.
        negative_min_distance: negative points keep at least this distance from the coarse mask, as a
            fraction of the image's long side (1/16 = one cell of a 16x16 grid).
        rounds: extra SAM iterations feeding back its best low-res logits (reference: 2).
        mask_logit: magnitude of the foreground/background logits of the mask prompt.
        pad_logit: logit of the padded (non-image) part of SAM's low-res frame.
        multimask: ask SAM for 3 candidates and keep the best-scored one.
        point_resolution: points are chosen on the mask resized to at most this long side (speed).
    """

    positive_points: int = 2
    max_components: int = 3
    negative_points: int = 2
    use_mask_prompt: bool = True
    use_box: bool = False
    box_margin: float = 0.25
    negative_min_distance: float = 0.0625
    rounds: int = 2
    mask_logit: float = 8.0
    pad_logit: float = -20.0
    multimask: bool = False
    point_resolution: int = 256

    def __post_init__(self) -> None:
        for name in ("positive_points", "max_components", "negative_points", "rounds"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"RefineOptions.{name} must be >= 0, got {getattr(self, name)}")
        if self.point_resolution < 8:
            raise ValueError(f"RefineOptions.point_resolution must be >= 8, got {self.point_resolution}")
        for name in ("box_margin", "negative_min_distance"):
            if getattr(self, name) < 0:
                raise ValueError(f"RefineOptions.{name} must be >= 0, got {getattr(self, name)}")
        if self.mask_logit <= 0:
            raise ValueError(f"RefineOptions.mask_logit must be > 0, got {self.mask_logit}")
        if not (self.use_mask_prompt or self.use_box or self.positive_points):
            raise ValueError("RefineOptions gives SAM no prompt: enable the mask prompt, the box or points")


@dataclass
class RefinedMask:
    """Result of :meth:`SamRefiner.refine`.

    Attributes:
        mask: HxW bool at the image size.
        score: SAM's predicted IoU of the returned mask (0.0 when SAM was not called: empty coarse mask).
        points: Nx2 float XY prompt points in image pixels (pixel centres at +0.5).
        point_labels: N int, 1 = positive, 0 = negative.
        box: XYXY box prompt, or None.
    """

    mask: np.ndarray
    score: float
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    point_labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), dtype=np.int64))
    box: np.ndarray | None = None


@dataclass
class RefinedLabels:
    """Result of :meth:`SamRefiner.refine_labels`: HxW int64 ``label_map`` and SAM's score per class."""

    label_map: np.ndarray
    scores: dict[int, float]


# ----------------------------------------------------------------------------------- prompt construction


def _as_mask(mask: Any, name: str = "coarse_mask") -> np.ndarray:
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D HxW mask, got shape {arr.shape}")
    return arr if arr.dtype == bool else arr != 0


def preprocess_shape(height: int, width: int, long_side: int) -> tuple[int, int]:
    """SAM's resized image size (``ResizeLongestSide.get_preprocess_shape``): long side -> ``long_side``."""
    scale = long_side / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def mask_prompt_logits(mask: np.ndarray, input_size: int = 1024, frame: tuple[int, int] = (256, 256),
                       mask_logit: float = 8.0, pad_logit: float = -20.0,
                       grid: np.ndarray | None = None) -> np.ndarray:
    """Coarse mask -> SAM mask prompt, aligned with SAM's resize-and-pad of the image.

    Args:
        mask: HxW bool coarse mask at the image size.
        input_size: SAM's encoder input (``image_encoder.img_size``, 1024 for the official models).
        frame: SAM's low-res mask frame (``prompt_encoder.mask_input_size``, 256x256 officially).
        mask_logit: foreground logit (background gets ``-mask_logit``); partial cells get values in between.
        pad_logit: logit of the frame outside the image (bottom/right padding).
        grid: optional Hg x Wg bool grid the mask came from; when given, the prompt is the grid bilinearly
            resized into the image region (soft logits across cell borders) instead of the box-filtered mask.

    Returns:
        ``1 x frame_h x frame_w`` float32 logits; the image occupies the top-left
        ``round(resized_h * frame_h / input_size) x round(resized_w * frame_w / input_size)`` region.
    """
    m = _as_mask(mask)
    h, w = m.shape
    new_h, new_w = preprocess_shape(h, w, input_size)
    content_h = max(1, min(frame[0], round(new_h * frame[0] / input_size)))
    content_w = max(1, min(frame[1], round(new_w * frame[1] / input_size)))
    if grid is not None:
        g = _as_mask(grid, "grid").astype(np.float32)
        frac = np.asarray(Image.fromarray(g, "F").resize((content_w, content_h), Image.BILINEAR))
    else:
        # BOX = area average: the fraction of each low-res cell covered by the mask
        frac = np.asarray(Image.fromarray(m.astype(np.float32), "F").resize((content_w, content_h), Image.BOX))
    out = np.full((1, frame[0], frame[1]), pad_logit, dtype=np.float32)
    out[0, :content_h, :content_w] = mask_logit * (2.0 * np.clip(frac, 0.0, 1.0) - 1.0)
    return out


def _squared_edt_numpy(mask: np.ndarray, border: bool) -> np.ndarray:
    """Exact squared Euclidean distance to the nearest False pixel (see :func:`squared_distance_transform`)."""
    h, w = mask.shape
    far = h + w + 1  # farther than any pixel of the array
    # 1) per column: distance in rows to the nearest False pixel (or to the padding row when border)
    g = np.zeros((h, w), dtype=np.int64)
    start = 0 if border else far
    run = np.full(w, start, dtype=np.int64)
    for r in range(h):
        run = np.where(mask[r], np.minimum(run + 1, far), 0)
        g[r] = run
    run[:] = start
    for r in range(h - 1, -1, -1):
        run = np.where(mask[r], np.minimum(run + 1, far), 0)
        g[r] = np.minimum(g[r], run)
    g2 = g * g
    # 2) per row: min over columns c' of g2[c'] + (c - c')^2 (and the padding columns when border)
    cols = np.arange(w)
    d2 = (cols[:, None] - cols[None, :]) ** 2  # (c, c')
    edge = np.minimum(cols + 1, w - cols) ** 2 if border else np.full(w, 2 * far * far)
    out = np.empty((h, w), dtype=np.int64)
    step = max(1, 2_000_000 // max(1, w * w))
    for r0 in range(0, h, step):
        block = g2[r0:r0 + step]
        out[r0:r0 + step] = np.minimum((block[:, None, :] + d2[None]).min(axis=2), edge[None])
    return np.where(mask, out, 0)


def squared_distance_transform(mask: np.ndarray, border: bool = True) -> np.ndarray:
    """Exact squared Euclidean distance of each True pixel to the nearest False pixel.

    scipy.ndimage is used when installed; the numpy fallback gives the same integers.

    Args:
        mask: HxW bool.
        border: pixels outside the array count as False (so interior points of objects touching the border
            stay away from it). With ``border=False`` the mask must hold at least one False pixel.

    Returns:
        HxW int64 squared distances (0 on False pixels).
    """
    m = _as_mask(mask, "mask")
    if not border and m.all():
        raise ValueError("squared_distance_transform(border=False) needs at least one False pixel")
    try:
        from scipy import ndimage
    except ImportError:
        return _squared_edt_numpy(m, border)
    if border:
        dist = ndimage.distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1]
    else:
        dist = ndimage.distance_transform_edt(m)
    return np.rint(dist * dist).astype(np.int64)


_NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def _shift_min(labels: np.ndarray, big: int) -> np.ndarray:
    h, w = labels.shape
    out = labels.copy()
    padded = np.pad(labels, 1, constant_values=big)
    for dy, dx in _NEIGHBOURS:
        np.minimum(out, padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w], out=out)
    return out


def connected_components(mask: np.ndarray, limit: int | None = None) -> list[np.ndarray]:
    """8-connected components of a binary mask, largest first (ties: first pixel in raster order).

    Args:
        mask: HxW bool.
        limit: return at most this many (the largest).

    Returns:
        List of HxW bool masks, one per component.
    """
    m = _as_mask(mask, "mask")
    n = m.size
    if not m.any():
        return []
    try:
        from scipy import ndimage
    except ImportError:
        ndimage = None
    if ndimage is not None:
        flat = ndimage.label(m, structure=np.ones((3, 3), dtype=bool))[0].ravel()
    else:
        # min-index propagation with pointer jumping: each pixel ends with its component's first index
        big = n
        lab = np.where(m, np.arange(n).reshape(m.shape), big)
        while True:
            flat_new = np.where(m, _shift_min(lab, big), big).ravel()
            while True:
                jumped = np.where(flat_new < big, flat_new[np.minimum(flat_new, n - 1)], big)
                if np.array_equal(jumped, flat_new):
                    break
                flat_new = jumped
            new = flat_new.reshape(m.shape)
            if np.array_equal(new, lab):
                break
            lab = new
        flat = np.where(m.ravel(), lab.ravel() + 1, 0)
    ids, first, sizes = np.unique(flat, return_index=True, return_counts=True)
    order = sorted((i for i in range(len(ids)) if ids[i] > 0), key=lambda i: (-int(sizes[i]), int(first[i])))
    return [(flat == ids[i]).reshape(m.shape) for i in order[:limit]]


def _pick_maxima(dist2: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Up to k well-spread deep points of a squared distance map (only where ``allowed``).

    The first is the deepest point. Each next one is, among the points at least half as deep as the first and
    outside every picked point's inscribed disk, the one farthest from the picks (farthest-point sampling):
    several points spread along an elongated object, none in the corners of a blob. Ties go to the first
    pixel in raster order.
    """
    depth = dist2.astype(np.int64)
    if allowed is not None:
        depth = np.where(allowed, depth, 0)
    first = int(np.argmax(depth))
    if k <= 0 or depth.flat[first] <= 0:
        return []
    ys, xs = np.indices(depth.shape)
    candidates = depth * 4 >= depth.flat[first]  # at least half the first's depth
    nearest = np.full(depth.shape, np.iinfo(np.int64).max)
    picks: list[tuple[int, int]] = []
    idx = first
    while True:
        r, c = divmod(idx, depth.shape[1])
        picks.append((r, c))
        d2 = (ys - r) ** 2 + (xs - c) ** 2
        candidates &= d2 > depth[r, c]
        np.minimum(nearest, d2, out=nearest)
        if len(picks) >= k or not candidates.any():
            return picks
        idx = int(np.argmax(np.where(candidates, nearest, -1)))


def point_prompts(mask: np.ndarray, positive_points: int = 2, max_components: int = 3, negative_points: int = 2,
                  box_margin: float = 0.25, negative_min_distance: float = 0.0625,
                  resolution: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic SAM point prompts from a coarse mask.

    Positive points: distance-transform maxima inside each of the ``max_components`` largest 8-connected
    components (``positive_points`` each, spread by farthest-point sampling among points at least half as
    deep as the deepest, see :func:`_pick_maxima`). Negative points: centres
    of the largest background areas (distance maxima to the mask or the region's edge) inside the mask's box
    grown by ``box_margin``, among pixels at least ``negative_min_distance`` (fraction of the image's long
    side; 1/16 = one cell of a 16x16 grid) away from the mask, since a coarse mask's border is uncertain.
    Work happens on the mask resized (nearest) to at most ``resolution`` on its long side; a mask that
    vanishes there gets its middle pixel as the one positive point.

    Args:
        mask: HxW bool coarse mask at the image size.

    Returns:
        ``(coords, labels)``: Nx2 float64 XY pixel coordinates in the image (pixel centres, ``col + 0.5``)
        and N int64 labels (1 positive, 0 negative); positives first.
    """
    m = _as_mask(mask)
    h, w = m.shape
    if not m.any():
        return np.zeros((0, 2), dtype=np.float64), np.zeros((0,), dtype=np.int64)
    scale = min(1.0, resolution / max(h, w))
    wh, ww = max(1, round(h * scale)), max(1, round(w * scale))
    rows = np.minimum(((np.arange(wh) + 0.5) * h / wh).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(ww) + 0.5) * w / ww).astype(np.int64), w - 1)
    small = m[rows][:, cols]
    if not small.any():
        r, c = np.argwhere(m)[int(np.count_nonzero(m)) // 2]
        return np.array([[c + 0.5, r + 0.5]], dtype=np.float64), np.ones(1, dtype=np.int64)

    positives: list[tuple[int, int]] = []
    if positive_points > 0:
        inside = squared_distance_transform(small)
        for component in connected_components(small, limit=max_components):
            positives += _pick_maxima(inside, positive_points, allowed=component)
    negatives: list[tuple[int, int]] = []
    if negative_points > 0 and not small.all():
        rs, cs = np.flatnonzero(small.any(axis=1)), np.flatnonzero(small.any(axis=0))
        min_dist = negative_min_distance * max(wh, ww)
        margin = max(2, round(box_margin * max(rs[-1] - rs[0] + 1, cs[-1] - cs[0] + 1)), int(np.ceil(2 * min_dist)))
        r0, c0 = max(0, rs[0] - margin), max(0, cs[0] - margin)
        r1, c1 = min(wh, rs[-1] + 1 + margin), min(ww, cs[-1] + 1 + margin)
        to_mask = squared_distance_transform(~small, border=False)[r0:r1, c0:c1]
        background = ~small[r0:r1, c0:c1]
        centres = squared_distance_transform(background)  # to the mask or the region's edge
        far = background & (to_mask >= min_dist * min_dist)
        negatives = [(r + r0, c + c0) for r, c in _pick_maxima(centres, negative_points, allowed=far)]

    def to_image(points: list[tuple[int, int]]) -> list[tuple[float, float]]:
        return [((c + 0.5) * w / ww, (r + 0.5) * h / wh) for r, c in points]

    coords = np.array(to_image(positives) + to_image(negatives), dtype=np.float64).reshape(-1, 2)
    labels = np.array([1] * len(positives) + [0] * len(negatives), dtype=np.int64)
    return coords, labels


def _box(mask: np.ndarray) -> np.ndarray:
    rs, cs = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return np.array([cs[0], rs[0], cs[-1] + 1, rs[-1] + 1], dtype=np.float64)


# ------------------------------------------------------------------------------------------------ refiner


class SamRefiner:
    """Refine coarse masks of one image at a time with SAM (image embedding computed once per image).

    Example::

        refiner = SamRefiner.from_checkpoint("sam_vit_h_4b8939.pth", "vit_h")
        refiner.set_image("photo.jpg")                 # path, PIL image or HxWx3 uint8
        fine = refiner.refine(coarse_mask)             # HxW bool at the image size
        fine.mask, fine.score

    Args:
        sam_model: a built ``segment_anything.modeling.Sam`` (already on its device).
        options: prompt settings (:class:`RefineOptions`; defaults when None).
        predictor: instead of ``sam_model``, any object with SamPredictor's ``set_image(HxWx3 uint8)`` and
            ``predict(point_coords, point_labels, box, mask_input, multimask_output)`` (tests, custom SAMs).
    """

    def __init__(self, sam_model: Any = None, options: RefineOptions | None = None, *,
                 predictor: Any = None) -> None:
        if predictor is None:
            if sam_model is None:
                raise ValueError("SamRefiner needs a SAM model (or a predictor)")
            _, segment_anything = _require_sam()
            predictor = segment_anything.SamPredictor(sam_model)
        self.predictor = predictor
        self.options = options or RefineOptions()
        model = getattr(predictor, "model", None)
        try:
            self.input_size = int(model.image_encoder.img_size)
            self.frame = tuple(int(v) for v in model.prompt_encoder.mask_input_size)
        except AttributeError:
            self.input_size, self.frame = 1024, (256, 256)
        self._image: np.ndarray | None = None
        self._embedded = False
        self.encodings = 0  # how many image embeddings were computed (one per image at most)

    @classmethod
    def from_checkpoint(cls, checkpoint: str | os.PathLike, model_type: str | Callable[[], Any] = "vit_h",
                        device: str | None = None, options: RefineOptions | None = None) -> SamRefiner:
        """Build SAM and load official weights safely.

        The model is built empty (``sam_model_registry[model_type](checkpoint=None)``) and the weights are
        read here with ``torch.load(..., weights_only=True)`` (or safetensors for ``.safetensors`` files), so
        no pickle code can run.

        Args:
            checkpoint: path to ``sam_vit_h_4b8939.pth`` / ``sam_vit_l_0b3195.pth`` / ``sam_vit_b_01ec64.pth``
                (or a ``.safetensors`` file).
            model_type: ``"vit_h"``, ``"vit_l"``, ``"vit_b"`` (keys of ``sam_model_registry``), or a
                zero-argument builder returning an empty ``Sam``.
            device: torch device; None picks CUDA when available, else CPU.
            options: prompt settings.

        Raises:
            FileNotFoundError: no checkpoint file.
            ValueError: unknown model type, a checkpoint that is not a plain state dict, or weights that
                do not fit the model (the message names the file and model type).
            ImportError: torch / segment-anything missing (names ``pip install 'text4seg[sam]'``).
        """
        torch, segment_anything = _require_sam()
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"SAM checkpoint not found: {path}")
        registry = segment_anything.sam_model_registry
        if callable(model_type):
            model, type_name = model_type(), getattr(model_type, "__name__", "custom builder")
        elif model_type in registry:
            model, type_name = registry[model_type](checkpoint=None), model_type
        else:
            raise ValueError(f"unknown SAM model_type {model_type!r}; expected one of {sorted(registry)}")
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                state = load_file(str(path), device="cpu")
            else:
                state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"{path}: not a loadable plain state dict (weights_only=True refused or failed: "
                             f"{type(err).__name__}: {err})") from err
        if isinstance(state, dict) and not any(torch.is_tensor(v) for v in state.values()):
            for key in ("model", "state_dict"):
                if isinstance(state.get(key), dict):
                    state = state[key]
                    break
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as err:
            raise ValueError(f"{path}: weights do not fit SAM model_type {type_name!r}: {err}") from err
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        model.to(device).eval()
        return cls(model, options)

    # -------------------------------------------------------------------------------------------- image

    def set_image(self, image: Any) -> None:
        """Set the image that following ``refine`` calls work on.

        The SAM embedding is computed lazily, once, at the first refine that needs SAM (an image whose
        coarse masks are all empty is never encoded).

        Args:
            image: path, PIL image or HxWx3 uint8 RGB array (anything :func:`text4seg.images.load_image` takes).
        """
        from text4seg.images import load_image

        self._image = np.asarray(load_image(image), dtype=np.uint8)
        self._embedded = False

    @property
    def image_hw(self) -> tuple[int, int]:
        if self._image is None:
            raise RuntimeError("no image set: call SamRefiner.set_image(image) first")
        return int(self._image.shape[0]), int(self._image.shape[1])

    def _ensure_embedding(self) -> None:
        if not self._embedded:
            self.predictor.set_image(self._image)
            self._embedded = True
            self.encodings += 1

    # ----------------------------------------------------------------------------------------- prompts

    def mask_prompt(self, coarse_mask: np.ndarray, grid: np.ndarray | None = None) -> np.ndarray:
        """The ``1 x 256 x 256`` (SAM's frame) logits prompt for a coarse mask; see :func:`mask_prompt_logits`."""
        return mask_prompt_logits(coarse_mask, self.input_size, self.frame, self.options.mask_logit,
                                  self.options.pad_logit, grid)

    def _check_mask(self, coarse_mask: np.ndarray) -> np.ndarray:
        m = _as_mask(coarse_mask)
        if m.shape != self.image_hw:
            raise ValueError(f"shape mismatch: coarse_mask has shape {m.shape}, the image is {self.image_hw} "
                             f"(height, width); upsample the grid to the image size first")
        return m

    # ------------------------------------------------------------------------------------------ refine

    def refine(self, coarse_mask: np.ndarray, grid: np.ndarray | None = None) -> RefinedMask:
        """Refine one binary mask of the current image.

        Args:
            coarse_mask: HxW bool at the image size (e.g. ``referring_mask(grid, image_hw)``).
            grid: optional Hg x Wg bool grid the mask was decoded from (softer mask prompt, see
                :func:`mask_prompt_logits`).

        Returns:
            :class:`RefinedMask`; an empty coarse mask gives an empty mask with score 0.0 without calling SAM.
        """
        m = self._check_mask(coarse_mask)
        if not m.any():
            return RefinedMask(mask=np.zeros(m.shape, dtype=bool), score=0.0)
        opts = self.options
        coords, labels = point_prompts(m, opts.positive_points, opts.max_components, opts.negative_points,
                                       opts.box_margin, opts.negative_min_distance, opts.point_resolution)
        box = _box(m) if opts.use_box else None
        prompt = self.mask_prompt(m, grid) if opts.use_mask_prompt else None
        self._ensure_embedding()
        points = dict(point_coords=coords if len(coords) else None, point_labels=labels if len(labels) else None)
        mask_out, score = m, 0.0
        for _ in range(1 + opts.rounds):
            masks, scores, low_res = self.predictor.predict(**points, box=box, mask_input=prompt,
                                                            multimask_output=opts.multimask)
            best = int(np.argmax(scores))
            mask_out, score = np.asarray(masks[best]).astype(bool), float(scores[best])
            prompt = np.asarray(low_res[best], dtype=np.float32)[None]
        return RefinedMask(mask=mask_out, score=score, points=coords, point_labels=labels, box=box)

    def refine_labels(self, label_map: np.ndarray, class_ids: Sequence[int], grid: np.ndarray | None = None,
                      fill_id: int | None = None) -> RefinedLabels:
        """Refine a multi-class label map class by class; overlaps go to the higher SAM score.

        Args:
            label_map: HxW integer class ids at the image size.
            class_ids: classes to refine (e.g. all present classes except background); their order does not
                matter: on equal scores the lower class id wins.
            grid: optional Hg x Wg integer grid the map came from (per-class soft mask prompts).
            fill_id: label for pixels of refined classes that no refined mask claims; None keeps their
                coarse label. Pixels of classes not in ``class_ids`` keep their label unless a refined mask
                claims them.

        Returns:
            :class:`RefinedLabels` with the new HxW int64 map and ``{class_id: score}``.
        """
        labels = np.asarray(label_map)
        if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"label_map must be an HxW integer map, got shape {labels.shape} dtype {labels.dtype}")
        self._check_mask(labels)
        out = labels.astype(np.int64).copy()
        classes = sorted({int(c) for c in class_ids})
        refined = np.zeros(labels.shape, dtype=bool)
        if fill_id is not None:
            out[np.isin(labels, classes)] = int(fill_id)
        best = np.full(labels.shape, -np.inf)
        winner = np.full(labels.shape, -1, dtype=np.int64)
        scores: dict[int, float] = {}
        for c in classes:
            result = self.refine(labels == c, None if grid is None else np.asarray(grid) == c)
            scores[c] = result.score
            take = result.mask & (result.score > best)  # strict: ties keep the lower class id
            best[take] = result.score
            winner[take] = c
            refined |= result.mask
        out[refined] = winner[refined]
        return RefinedLabels(label_map=out, scores=scores)
