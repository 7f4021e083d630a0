"""Context frames: items with K earlier frames + the target frame go through build -> train -> segment."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from text4seg.items.video import context_indices


def test_context_indices_repeat_frame_zero_at_the_start():
    assert context_indices(5, 2) == [3, 4]
    assert context_indices(1, 3) == [0, 0, 0]
    assert context_indices(0, 1) == [0]


def _build(tmp_path, k: int):
    from data_builders.video import build

    out = tmp_path / f"items_{k}.json"
    build("synthetic-video", str(tmp_path / "data"), str(out), split="train", frames_per_expression=2, grid=8,
          rle=False, fg_label="target", num_videos=2, num_frames=4, frame_size=32, context_frames=k,
          question_index=0, answer_index=0, quiet=True)
    return out, json.loads(out.read_text())


def test_builder_writes_multi_image_items(tmp_path):
    _, items = _build(tmp_path, 2)
    item = items[0]
    assert isinstance(item["image"], list) and len(item["image"]) == 3
    question = item["conversations"][0]["value"]
    assert question.startswith("<image>\n<image>\n<image>\n") and question.count("<image>") == 3
    frame = item["id"].rsplit("_f", 1)[1]
    assert item["image"][-1].endswith(f"{frame}.jpg")
    _, single = _build(tmp_path, 0)
    assert all(isinstance(i["image"], str) for i in single)


def test_dataset_refuses_a_tag_count_that_does_not_match(tmp_path, tiny_model_dir):
    from text4seg.modeling import load_model
    from text4seg.training import Text4SegDataset

    path, items = _build(tmp_path, 1)
    items[0]["conversations"][0]["value"] = items[0]["conversations"][0]["value"].replace("<image>\n", "", 1)
    path.write_text(json.dumps(items))
    loaded = load_model(tiny_model_dir, device="cpu")
    with pytest.raises(ValueError, match=r"2 images but 1 '<image>' tags"):
        Text4SegDataset([path], loaded.processor, loaded.config, image_root=tmp_path / "data")


@pytest.mark.slow
def test_context_frames_build_train_segment(tmp_path):
    from text4seg.segmenter import Segmenter
    from text4seg.training import Text4SegCollator, Text4SegDataset, train

    path, items = _build(tmp_path, 1)
    result = train(model="tiny", data=[str(path)], out=str(tmp_path / "run"), data_root=str(tmp_path / "data"),
                   full=True, train_vision=True, max_steps=2, batch_size=2, save_steps=100, precision="fp32",
                   device="cpu", progress=False)
    assert result.global_step == 2
    seg = Segmenter.from_pretrained(result.output_dir, device="cpu", max_new_tokens=80)
    from text4seg.modeling import load_model

    loaded = load_model(result.output_dir, device="cpu")
    dataset = Text4SegDataset([path], loaded.processor, loaded.config, image_root=tmp_path / "data")
    batch = Text4SegCollator(loaded.processor.tokenizer.pad_token_id)([dataset[0], dataset[1]])
    image_id = loaded.model.config.image_token_id
    assert batch["pixel_values"].shape[0] == 4  # two images per item
    assert int((batch["input_ids"] == image_id).sum()) == 4 * int((dataset[0]["input_ids"] == image_id).sum()) // 2
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(3)]
    for mode in ("plain", "fast"):
        video = seg.with_config().segment_video(frames, "the red circle", context_frames=1) if mode == "fast" else \
            Segmenter.from_pretrained(result.output_dir, device="cpu", decoding="plain",
                                      max_new_tokens=80).segment_video(frames, "the red circle", context_frames=1)
        assert video.masks.shape == (3, 32, 32) and video.model_calls == 3
    with torch.inference_mode():
        one = seg.segment_many([([frames[0], frames[1]], "the red circle")])[0][0]
    assert one.mask.shape == (32, 32)
