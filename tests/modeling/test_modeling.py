"""Model side: Text4SegConfig, the one-token-per-cell tiny tokenizer, tiny model building and generic loading."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from text4seg.config import CONFIG_NAME, Text4SegConfig
from text4seg.descriptors import encode_descriptor
from text4seg.modeling.tokenizer import build_tiny_tokenizer, cell_token_strings

# ------------------------------------------------------------------------------------------------ config


def test_config_defaults_and_roundtrip(tmp_path):
    config = Text4SegConfig(grid="24x32", descriptor_form="plain", image_size=336, fg_label="target")
    assert config.grid == (24, 32) and config.image_size == (336, 336)
    assert (config.height, config.width) == (24, 32)
    path = config.save(tmp_path)
    assert path == tmp_path / CONFIG_NAME
    data = json.loads(path.read_text())
    assert data["grid"] == [24, 32] and data["image_size"] == [336, 336]
    assert Text4SegConfig.load(tmp_path) == config
    assert Text4SegConfig().grid == (16, 16) and Text4SegConfig().descriptor_form == "rle"
    assert Text4SegConfig().image_position == "before" and Text4SegConfig().fg_label == "sentence"


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"grid": 0}, "grid"),
        ({"grid": "16x"}, "grid"),
        ({"descriptor_form": "json"}, "descriptor_form"),
        ({"resize": "pad"}, "resize"),
        ({"image_position": "middle"}, "image_position"),
        ({"question_template": "Segment it."}, "question_template"),
        ({"question_template": "{expression} and {expression}"}, "question_template"),
        ({"question_template": "{expression} {other}"}, "question_template"),
        ({"fg_label": "a|b"}, "fg_label"),
        ({"fg_label": "others"}, "fg_label"),
        ({"background": ""}, "background"),
        ({"semantic_template": "no field"}, "semantic_template"),
    ],
)
def test_config_rejects_bad_values(kwargs, field):
    with pytest.raises(ValueError, match=field):
        Text4SegConfig(**kwargs)


def test_config_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=CONFIG_NAME):
        Text4SegConfig.load(tmp_path)
    (tmp_path / CONFIG_NAME).write_text("{broken")
    with pytest.raises(ValueError, match="invalid JSON"):
        Text4SegConfig.load(tmp_path)
    (tmp_path / CONFIG_NAME).write_text(json.dumps({"grid": [8, 8], "descriptor_form": "svg"}))
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / CONFIG_NAME))):
        Text4SegConfig.load(tmp_path)
    (tmp_path / CONFIG_NAME).write_text(json.dumps({"grid": [8, 8], "from_the_future": 1}))
    assert Text4SegConfig.load(tmp_path).grid == (8, 8)  # unknown keys ignored


# ------------------------------------------------------------------------------------------------ tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer(
        ["Segment the red circle.", "Here is the mask.", "the blue square"] * 5,
        ["target", "red circle"],
        vocab_size=400,
    )


def test_every_cell_is_one_token(tokenizer):
    rng = np.random.default_rng(0)
    for height, width in [(1, 1), (3, 5), (16, 16)]:
        grid = rng.choice(np.array(["others", "target", "red circle"], dtype=object), size=(height, width))
        descriptor = encode_descriptor(grid, rle=False)
        ids = tokenizer(descriptor, add_special_tokens=False)["input_ids"]
        assert len(ids) == height * width
        tokens = tokenizer.convert_ids_to_tokens(ids)
        expected = [
            cell_token_strings(grid[i, j])[0 if j < width - 1 else (1 if i < height - 1 else 2)]
            for i in range(height)
            for j in range(width)
        ]
        assert tokens == expected
        assert tokenizer.decode(ids) == descriptor


def test_tokenizer_specials_and_answer_roundtrip(tokenizer):
    assert tokenizer.bos_token == "<s>" and tokenizer.eos_token == "</s>" and tokenizer.pad_token == "<pad>"
    assert tokenizer.image_token == "<image>"
    answer = "Here is the mask.\n<seg>others| target\n target| others\n</seg>"
    ids = tokenizer(answer + "</s>", add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == answer + "</s>"
    assert tokenizer.decode(ids, skip_special_tokens=True) == answer  # <seg> tags survive
    assert tokenizer.convert_ids_to_tokens(ids).count("<seg>") == 1


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=60))
def test_tokenizer_roundtrips_any_text(text):
    tok = _shared_tokenizer()
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


_TOK = []


def _shared_tokenizer():
    if not _TOK:
        _TOK.append(build_tiny_tokenizer(["hello world"], ["target"], vocab_size=300))
    return _TOK[0]


def test_tokenizer_rejects_bad_labels():
    with pytest.raises(ValueError, match="labels"):
        build_tiny_tokenizer(["x"], ["a|b"])
    with pytest.raises(ValueError, match="vocab_size"):
        build_tiny_tokenizer(["x"], ["a"], vocab_size=10)


# ------------------------------------------------------------------------------------------------ tiny model


def test_tiny_model_dir_is_self_describing(tiny_model_dir):
    names = {p.name for p in tiny_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "processor_config.json", CONFIG_NAME} <= names
    config = Text4SegConfig.load(tiny_model_dir)
    assert config.grid == (8, 8) and config.image_size == (32, 32)
    assert config.descriptor_form == "plain" and config.image_position == "after" and config.fg_label == "target"
    assert config.question_template == "Segment {expression}."


def test_tiny_model_reloads_with_image_tokens_equal_to_cells(tiny_model_dir):
    from PIL import Image

    from text4seg.modeling import encode_prompt, load_model, prepare_image, render_chat, user_content

    loaded = load_model(tiny_model_dir, device="cpu")
    assert type(loaded.model).__name__ == "LlavaForConditionalGeneration" and not loaded.model.training
    assert loaded.dtype == torch.float32 and loaded.config.grid == (8, 8)
    text = render_chat(loaded.processor, [{"role": "user", "content": user_content("Segment x.", "after")}], True)
    assert text == "<s>USER: Segment x.<image>\nASSISTANT: "
    image = prepare_image(Image.new("RGB", (50, 20)), loaded.config, loaded.processor)
    assert image.size == (32, 32)  # stretched, aspect ratio not kept
    inputs = encode_prompt(loaded.processor, [text], [image])
    ids = inputs["input_ids"][0].tolist()
    assert ids.count(loaded.model.config.image_token_id) == 64
    assert ids.count(loaded.processor.tokenizer.bos_token_id) == 1  # the template's BOS, no second one
    assert tuple(inputs["pixel_values"].shape) == (1, 3, 32, 32)
    with torch.no_grad():
        logits = loaded.model(**inputs).logits
    assert logits.shape == (1, len(ids), len(loaded.processor.tokenizer))


def test_tiny_model_is_deterministic_by_seed(tmp_path):
    from safetensors.torch import load_file

    from text4seg.modeling import build_tiny_model

    dims = dict(grid=4, patch_size=4, vision_hidden=16, vision_layers=1, text_hidden=32, text_layers=1, heads=2)
    a = build_tiny_model(tmp_path / "a", texts=["hi"], labels=["target"], seed=3, **dims)
    b = build_tiny_model(tmp_path / "b", texts=["hi"], labels=["target"], seed=3, **dims)
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    with pytest.raises(ValueError, match="square"):
        build_tiny_model(tmp_path / "c", texts=["hi"], labels=[], grid="4x8")
    with pytest.raises(ValueError, match="image_size"):
        build_tiny_model(tmp_path / "d", texts=["hi"], labels=[], grid=4, patch_size=4, image_size=20)


def test_module_discovery_on_llava(tiny_model_dir):
    from text4seg.modeling import (
        language_model_prefix,
        load_model,
        lora_target_regex,
        non_language_roots,
        projector_names,
        vision_tower_names,
    )

    model = load_model(tiny_model_dir, device="cpu").model
    assert language_model_prefix(model) == "model.language_model"
    assert non_language_roots(model) == ["lm_head", "model.multi_modal_projector", "model.vision_tower"]
    assert projector_names(model) == ["model.multi_modal_projector"]
    assert vision_tower_names(model) == ["model.vision_tower"]
    pattern = re.compile(lora_target_regex(model))
    linears = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    matched = [n for n in linears if pattern.fullmatch(n)]
    assert matched == [n for n in linears if n.startswith("model.language_model.")]
    assert len(matched) == 2 * 7  # 2 layers x (q, k, v, o, gate, up, down)


def test_load_model_errors(tiny_model_dir, tmp_path, monkeypatch):
    import importlib.util

    from text4seg._optional import MissingDependency
    from text4seg.modeling import load_model
    from text4seg.modeling.loading import _check_attn

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "flash_attn" else real(n, *a))
    with pytest.raises(MissingDependency, match=r"pip install 'text4seg\[flash\]'"):
        _check_attn("flash_attention_2", torch.device("cuda"))
    with pytest.raises(ValueError, match="CUDA only"):  # the device is checked first
        load_model(tiny_model_dir, device="cpu", attn="flash_attention_2")
    monkeypatch.undo()
    with pytest.raises(ValueError, match="attn"):
        load_model(tiny_model_dir, device="cpu", attn="fast")
    with pytest.raises(ValueError, match="dtype"):
        load_model(tiny_model_dir, device="cpu", dtype="float8")
    with pytest.raises(FileNotFoundError, match="missing"):
        load_model(tmp_path / "missing", device="cpu")
    with pytest.raises(FileNotFoundError, match="adapter"):
        load_model(tiny_model_dir, tmp_path / "no_adapter", device="cpu")


def test_flash_attention_needs_cuda(tiny_model_dir, monkeypatch):
    import importlib.util

    from text4seg.modeling import load_model

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: object() if n == "flash_attn" else real(n, *a))
    with pytest.raises(ValueError, match="CUDA"):
        load_model(tiny_model_dir, device="cpu", attn="flash_attention_2")


def test_model_without_config_uses_defaults_with_warning(copy_model_dir, caplog):
    from text4seg.modeling import load_model

    model_dir = copy_model_dir()
    (model_dir / CONFIG_NAME).unlink()
    with caplog.at_level("WARNING"):
        loaded = load_model(model_dir, device="cpu")
    assert loaded.config == Text4SegConfig()
    assert CONFIG_NAME in caplog.text
