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

from text4seg._optional import require
from text4seg.refine.prompts import (
    RefineOptions,
    as_coarse_mask,
    mask_box,
    mask_prompt_logits,
    point_prompts,
)

__all__ = ["RefinedLabels", "RefinedMask", "SamRefiner"]


def _require_sam() -> tuple[Any, Any]:
    """Import torch and segment_anything, or fail with the install command."""
    import torch

    return torch, require("segment_anything", purpose="the SAM refiner")


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
        m = as_coarse_mask(coarse_mask)
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
        box = mask_box(m) if opts.use_box else None
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
