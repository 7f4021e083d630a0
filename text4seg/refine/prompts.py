"""SAM prompts from a coarse mask, in numpy: the mask prompt laid out the way SAM lays out the image, interior
positive points, background negative points, the box (no torch).

SAM resizes the long side of the image to 1024 and pads bottom/right, so the coarse mask is resized into the
top-left ``(round(256*h/long), round(256*w/long))`` region of SAM's 256x256 low-resolution frame (exactly:
SAM's own resized size divided by 4), foreground ``+mask_logit``, background ``-mask_logit``, the padding
``pad_logit``. The reference stretched the mask over the whole frame, which is misaligned for every non-square
image. Points are deterministic (ties go to the first pixel in raster order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

__all__ = [
    "RefineOptions",
    "as_coarse_mask",
    "connected_components",
    "mask_box",
    "mask_prompt_logits",
    "point_prompts",
    "preprocess_shape",
    "squared_distance_transform",
]


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


def as_coarse_mask(mask: Any, name: str = "coarse_mask") -> np.ndarray:
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
    m = as_coarse_mask(mask)
    h, w = m.shape
    new_h, new_w = preprocess_shape(h, w, input_size)
    content_h = max(1, min(frame[0], round(new_h * frame[0] / input_size)))
    content_w = max(1, min(frame[1], round(new_w * frame[1] / input_size)))
    if grid is not None:
        g = as_coarse_mask(grid, "grid").astype(np.float32)
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
    m = as_coarse_mask(mask, "mask")
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
    m = as_coarse_mask(mask, "mask")
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
    m = as_coarse_mask(mask)
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


def mask_box(mask: np.ndarray) -> np.ndarray:
    """XYXY box (float64, exclusive right/bottom) of a non-empty HxW bool mask."""
    rs, cs = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return np.array([cs[0], rs[0], cs[-1] + 1, rs[-1] + 1], dtype=np.float64)
