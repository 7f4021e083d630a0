"""Mask propagation through a video with SAM2 (transformers' ``Sam2VideoModel``, frames held in memory).

The model segments a few keyframes; :class:`Sam2Propagator` carries those masks to every other frame, forward
from the first keyframe and backward to the frames before it (several keyframes re-anchor the same object).
Real weights: ``facebook/sam2.1-hiera-{tiny,small,base-plus,large}`` (hub id or a local copy, safetensors).
:func:`build_tiny_sam2_video` writes a random 1.35M-parameter model that runs on CPU: it tests the mechanics
(every frame covered, shapes, keyframe masks kept), not tracking quality.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["PropagationResult", "Sam2Propagator", "build_tiny_sam2_video"]


@dataclass
class PropagationResult:
    """Masks of every frame.

    Attributes:
        masks: (T, H, W) bool.
        sources: per frame ``"keyframe"`` (the given mask, kept as is) or ``"propagated"``.
        sam2_calls: SAM2 forward passes (one per keyframe added plus one per propagated frame and direction).
    """

    masks: np.ndarray
    sources: list[str]
    sam2_calls: int = 0
    keyframes: list[int] = field(default_factory=list)


def _frame_array(frame: Any, index: int) -> np.ndarray:
    array = np.asarray(frame.convert("RGB")) if hasattr(frame, "convert") else np.asarray(frame)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"frame {index}: expected an RGB image or an (H, W, 3) uint8 array, got "
                         f"{array.dtype} {array.shape}")
    return array


class Sam2Propagator:
    """Propagates keyframe masks through a video with a ``Sam2VideoModel``.

    Args:
        model: a ``transformers.Sam2VideoModel`` in eval mode.
        processor: its ``Sam2VideoProcessor``.
        device: where the model runs; ``dtype``: its compute dtype.
    """

    def __init__(self, model: Any, processor: Any, device: Any = "cpu", dtype: Any = None) -> None:
        import torch

        self.model, self.processor = model, processor
        self.device = torch.device(device)
        self.dtype = dtype or next(model.parameters()).dtype

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike, *, device: str | None = None,
                        dtype: str | None = None) -> Sam2Propagator:
        """Load a SAM2 video model (hub id such as ``facebook/sam2.1-hiera-large`` or a local directory).

        Raises:
            FileNotFoundError: a local path that does not exist.
            ImportError: this transformers has no ``Sam2VideoModel``.
        """

        try:
            from transformers import Sam2VideoModel, Sam2VideoProcessor
        except ImportError as err:
            raise ImportError("SAM2 propagation needs transformers >= 4.56 (Sam2VideoModel): "
                              "pip install -U 'transformers>=4.56'") from err
        text = str(source)
        if not Path(text).exists() and (text.startswith((".", "/", "~")) or text.count("/") != 1):
            raise FileNotFoundError(f"--sam2 {text}: no such directory (nor a hub id such as "
                                    f"facebook/sam2.1-hiera-large)")
        from text4seg.modeling.loading import resolve_device, resolve_dtype

        dev = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, dev)
        model = Sam2VideoModel.from_pretrained(text, dtype=torch_dtype, use_safetensors=True).to(dev).eval()
        processor = Sam2VideoProcessor.from_pretrained(text)
        return cls(model, processor, dev, torch_dtype)

    def propagate(self, frames: Sequence[Any], prompts: Mapping[int, np.ndarray]) -> PropagationResult:
        """Masks of every frame from the keyframe masks ``prompts`` (frame index -> (H, W) bool).

        Keyframes keep their own mask. With no keyframe or only empty keyframe masks the video is empty and
        SAM2 is not called.

        Raises:
            ValueError: no frames, frames of different sizes, a keyframe index outside the video or a mask of
                another size.
        """
        import torch

        if not frames:
            raise ValueError("propagate: no frames")
        arrays = [_frame_array(f, k) for k, f in enumerate(frames)]
        height, width = arrays[0].shape[:2]
        for k, array in enumerate(arrays):
            if array.shape[:2] != (height, width):
                raise ValueError(f"frame {k}: size {array.shape[1]}x{array.shape[0]}, frame 0 is {width}x{height}")
        keyed: dict[int, np.ndarray] = {}
        for index, mask in sorted(prompts.items()):
            if not 0 <= int(index) < len(arrays):
                raise ValueError(f"keyframe {index}: the video has frames 0..{len(arrays) - 1}")
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != (height, width):
                raise ValueError(f"keyframe {index}: mask {mask.shape}, frames are {(height, width)}")
            keyed[int(index)] = mask
        masks = np.zeros((len(arrays), height, width), dtype=bool)
        sources = ["propagated"] * len(arrays)
        for index, mask in keyed.items():
            masks[index], sources[index] = mask, "keyframe"
        anchors = [k for k, mask in keyed.items() if mask.any()]
        if not anchors:
            return PropagationResult(masks, sources, 0, sorted(keyed))
        calls = 0
        with torch.inference_mode():
            session = self.processor.init_video_session(video=arrays, inference_device=self.device,
                                                        dtype=self.dtype)
            for index in anchors:
                self.processor.add_inputs_to_inference_session(inference_session=session, frame_idx=index,
                                                               obj_ids=1, input_masks=keyed[index])
                self.model(inference_session=session, frame_idx=index)
                calls += 1
            first = anchors[0]
            for reverse in (False, True):
                if reverse and first == 0:
                    break
                for output in self.model.propagate_in_video_iterator(session, start_frame_idx=first,
                                                                     reverse=reverse):
                    calls += 1
                    index = int(output.frame_idx)
                    if sources[index] == "keyframe":
                        continue
                    pred = self.processor.post_process_masks([output.pred_masks], original_sizes=[[height, width]],
                                                             binarize=True)[0]
                    masks[index] = pred.reshape(-1, height, width)[0].cpu().numpy().astype(bool)
        return PropagationResult(masks, sources, calls, sorted(keyed))


def build_tiny_sam2_video(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Write a random tiny ``Sam2VideoModel`` (1.35M parameters, 128-px input) with its processor to
    ``out_dir``; for tests and benchmarks of the propagation mechanics on CPU."""
    import torch
    from transformers import (
        Sam2HieraDetConfig,
        Sam2ImageProcessor,
        Sam2VideoConfig,
        Sam2VideoModel,
        Sam2VideoProcessor,
        Sam2VideoVideoProcessor,
        Sam2VisionConfig,
    )
    from transformers.models.sam2_video.configuration_sam2_video import (
        Sam2VideoMaskDecoderConfig,
        Sam2VideoPromptEncoderConfig,
    )

    from text4seg.io import atomic_directory

    torch.manual_seed(seed)
    backbone = Sam2HieraDetConfig(
        hidden_size=16, blocks_per_stage=[1, 1, 2, 1], embed_dim_per_stage=[16, 32, 64, 128],
        num_attention_heads_per_stage=[1, 1, 1, 1], window_size_per_stage=[4, 4, 4, 4], global_attention_blocks=[3],
        window_positional_embedding_background_size=[2, 2], image_size=[128, 128],
    )  # fmt: skip
    vision = Sam2VisionConfig(backbone_config=backbone, backbone_channel_list=[128, 64, 32, 16],
                              backbone_feature_sizes=[[32, 32], [16, 16], [8, 8]], fpn_hidden_size=128)
    config = Sam2VideoConfig(
        vision_config=vision,
        prompt_encoder_config=Sam2VideoPromptEncoderConfig(hidden_size=128, image_size=128, patch_size=16,
                                                           mask_input_channels=8),
        mask_decoder_config=Sam2VideoMaskDecoderConfig(hidden_size=128, mlp_dim=64, num_attention_heads=2,
                                                       iou_head_hidden_dim=128),
        image_size=128, memory_attention_hidden_size=128, memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=64, memory_attention_rope_feat_sizes=[8, 8],
        memory_encoder_hidden_size=128, memory_encoder_output_channels=64, mask_downsampler_embed_dim=128,
        memory_fuser_embed_dim=128, memory_fuser_intermediate_dim=64, num_maskmem=3,
    )  # fmt: skip
    model = Sam2VideoModel(config).eval()
    processor = Sam2VideoProcessor(
        image_processor=Sam2ImageProcessor(size={"height": 128, "width": 128}, mask_size={"height": 32, "width": 32}),
        video_processor=Sam2VideoVideoProcessor(size={"height": 128, "width": 128}),
        target_size=128,
    )
    out_dir = Path(out_dir)
    with atomic_directory(out_dir, overwrite=True) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
    return out_dir
