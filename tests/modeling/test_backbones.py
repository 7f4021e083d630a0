"""Qwen2-VL, Qwen2.5-VL and InternVL as first-class backbones, on tiny models built from configs: module
discovery, the prompt/image contract, the decoding modes and (slow) train -> merge -> segment -> eval."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from conftest import TINY_DIMS, TINY_QUESTION, TINY_TEXTS
from PIL import Image

ARCHS = ("qwen2-vl", "qwen2.5-vl", "internvl")
# per family: model type, projector, vision tower, language model, leaf names LoRA targets
EXPECTED = {
    "qwen2-vl": ("qwen2_vl", ["model.visual.merger"], ["model.visual"], "model.language_model"),
    "qwen2.5-vl": ("qwen2_5_vl", ["model.visual.merger"], ["model.visual"], "model.language_model"),
    "internvl": ("internvl", ["model.multi_modal_projector"], ["model.vision_tower"], "model.language_model"),
}


@pytest.fixture(scope="module", params=ARCHS)
def tiny_backbone(request, tmp_path_factory):
    from text4seg.modeling import build_tiny_model

    out = tmp_path_factory.mktemp(f"tiny_{request.param}")
    build_tiny_model(out, texts=list(TINY_TEXTS), labels=["target"], arch=request.param, descriptor_form="plain",
                     image_position="after", question_template=TINY_QUESTION, fg_label="target", seed=0,
                     **TINY_DIMS)
    return request.param, out


def _images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (30, 44, 3), dtype=np.uint8)) for _ in range(n)]


def test_module_discovery_and_fixed_image_grid(tiny_backbone):
    import torch

    from text4seg.modeling import (
        encode_prompt,
        language_model_prefix,
        load_model,
        lora_target_regex,
        prepare_image,
        projector_names,
        render_user_prompt,
        vision_tower_names,
    )
    from text4seg.modeling.tiny import tiny_image_side

    arch, path = tiny_backbone
    model_type, projector, vision, prefix = EXPECTED[arch]
    loaded = load_model(path, device="cpu")
    model = loaded.model
    assert model.config.model_type == model_type
    assert projector_names(model) == projector
    assert vision_tower_names(model) == vision
    assert language_model_prefix(model) == prefix
    assert lora_target_regex(model) == (
        rf"^{prefix.replace('.', chr(92) + '.')}\.(?:.*\.)?(?:down_proj|gate_proj|k_proj|o_proj|q_proj|up_proj|v_proj)$"
    )
    side = tiny_image_side(arch, TINY_DIMS["grid"], TINY_DIMS["patch_size"])
    assert loaded.config.image_size == (side, side) and loaded.config.resize == "stretch"
    # any input size -> the stored size -> exactly grid x grid image tokens
    image_token = model.config.image_token_id
    text = render_user_prompt(loaded.processor, loaded.config, "Segment it.")
    for size in ((30, 44), (71, 13)):
        image = prepare_image(Image.new("RGB", size[::-1], (9, 9, 9)), loaded.config, loaded.processor)
        assert image.size == (side, side)
        enc = encode_prompt(loaded.processor, [text], [image])
        assert int((enc["input_ids"] == image_token).sum()) == TINY_DIMS["grid"] ** 2
        if "image_grid_thw" in enc:  # Qwen2-VL: 2 x 2 patches merged per token
            assert enc["image_grid_thw"].tolist() == [[1, 2 * TINY_DIMS["grid"], 2 * TINY_DIMS["grid"]]]
        with torch.no_grad():
            assert model(**enc).logits.shape[1] == enc["input_ids"].shape[1]


@pytest.mark.slow
def test_fast_matches_constrained_and_plain(tiny_backbone, position="before"):
    """fast == constrained and fast-unconstrained == plain, token for token, with image sharing and prefix
    sharing across prompts (Qwen2-VL: 3-D rotary positions, the image first so the shared prefix holds it)."""
    import torch

    from text4seg.decoding import DescriptorDecoder, HFGenerationBackend
    from text4seg.descriptors import decode_descriptor
    from text4seg.modeling import load_model

    arch, path = tiny_backbone
    loaded = load_model(path, device="cpu", dtype="float32")
    loaded.model.to(torch.float64)
    config = replace(loaded.config, image_position=position, grid=(3, 4), descriptor_form="rle")
    a, b = _images(2, seed=1)
    images = [a, a, b]
    prompts = ["Segment the red circle.", "Segment the blue square left of the green triangle.", "Segment it."]
    decoder = DescriptorDecoder(loaded.model, loaded.processor, config, max_preamble_tokens=4)
    assert decoder.unsupported is None
    slow = decoder.generate_ids(images, prompts, mode="constrained")
    fast = decoder.generate_ids(images, prompts, mode="fast")
    assert [ids for ids, _ in fast] == [ids for ids, _ in slow]
    assert sum(p for _, p in fast) < sum(p for _, p in slow)
    for ids, _ in fast:
        text = loaded.processor.tokenizer.decode(ids, skip_special_tokens=True)
        assert decode_descriptor(text, 3, 4).repairs == []
    plain = HFGenerationBackend(loaded.model, loaded.processor, config, decoding="plain", max_new_tokens=24,
                                batch_size=1).generate_batch(images, prompts)
    quick = HFGenerationBackend(loaded.model, loaded.processor, config, decoding="fast-unconstrained",
                                max_new_tokens=24).generate_batch(images, prompts)
    assert [g.text for g in quick] == [g.text for g in plain]


@pytest.mark.slow
def test_train_merge_segment_eval_end_to_end(tiny_backbone, tiny_data, tmp_path, capsys):
    """--model tiny-<arch>: LoRA and full training (1 step), merge, segment and eval refer-seg by the CLI."""
    from fixtures_data import make_refcoco_layout

    from text4seg.cli import main
    from text4seg.config import Text4SegConfig

    arch, _ = tiny_backbone
    common = ["--data", str(tiny_data.json_path), "--image-root", str(tiny_data.root), "--max-steps", "1",
              "--batch-size", "2", "--precision", "fp32", "--save-steps", "100", "--curriculum-grid", "none",
              "--device", "cpu"]
    lora, full = tmp_path / "lora", tmp_path / "full"
    assert main(["train", "--model", f"tiny-{arch}", "--output-dir", str(lora), "--no-full", "--no-train-vision",
                 "--lora-r", "4", "--lora-alpha", "8", *common]) == 0
    assert main(["train", "--model", f"tiny-{arch}", "--output-dir", str(full), "--full", *common]) == 0
    assert "trained 1 steps" in capsys.readouterr().out
    assert (lora / "adapter_model.safetensors").is_file() and (full / "model.safetensors").is_file()
    adapter = json.loads((lora / "adapter_config.json").read_text())
    assert adapter["modules_to_save"] == [EXPECTED[arch][1][0].rsplit(".", 1)[-1]]
    model_type = json.loads((full / "config.json").read_text())["model_type"]
    assert model_type == EXPECTED[arch][0]
    config = Text4SegConfig.load(full)
    assert config.grid == (8, 8) and config.image_size is not None

    merged = tmp_path / "merged"
    assert main(["merge", "--adapter", str(lora), "--out", str(merged), "--device", "cpu"]) == 0
    assert Text4SegConfig.load(merged).image_size == config.image_size

    image = tiny_data.root / tiny_data.samples[0].image
    out_png = tmp_path / "mask.png"
    answers = []
    for model in (lora, merged):
        capsys.readouterr()
        assert main(["segment", str(image), "the red circle", "--model", str(model), "--out", str(out_png),
                     "--json", "--no-overlay", "--device", "cpu", "--decoding", "fast"]) == 0
        answers.append(json.loads(capsys.readouterr().out))
        assert Image.open(out_png).size == Image.open(image).size
    texts = [[r["text"] for r in a["results"]] if "results" in a else a["text"] for a in answers]
    assert texts[0] == texts[1]  # the merged model answers as the adapter does

    layout = make_refcoco_layout(tmp_path / "data")
    out = tmp_path / "eval"
    assert main(["eval", "refer-seg", "--model", str(full), "--data-root", str(layout["root"]), "--dataset",
                 "refcoco", "--split", "train", "--out", str(out), "--device", "cpu", "--max-new-tokens", "80"]) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert scores["samples"] == 4
    assert len((out / "samples.jsonl").read_text().splitlines()) == 4


def test_load_checks_the_prompt_contract(copy_model_dir, caplog):
    """What is assumed of any image-text-to-text model is checked at load, with a message naming the model."""
    import logging

    from text4seg.config import Text4SegConfig
    from text4seg.modeling import load_model

    path = copy_model_dir()
    (path / "chat_template.jinja").write_text("{% for m in messages %}{{ m['role'] }}{% endfor %}")
    with pytest.raises(ValueError, match=r"dropped the image or the text of a user turn"):
        load_model(path, device="cpu")
    (path / "chat_template.jinja").write_text("{{ messages[0]['content'] + 1 }}")
    with pytest.raises(ValueError, match=r"cannot render a user turn with an image"):
        load_model(path, device="cpu")
    (path / "chat_template.jinja").unlink()
    with pytest.raises(ValueError, match=str(path) + r".*no chat template"):
        load_model(path, device="cpu")
    # a dynamic-resolution processor without a fixed image size loads, with a warning
    from text4seg.modeling.inputs import check_prompt_contract

    loaded = load_model(copy_model_dir("ok"), device="cpu")
    loaded.processor.image_processor.size = {"shortest_edge": 16, "longest_edge": 64}
    loaded.processor.image_processor.do_center_crop = False
    with caplog.at_level(logging.WARNING):
        check_prompt_contract(loaded.processor, Text4SegConfig(), source="m")
    assert "resizes dynamically" in caplog.text
