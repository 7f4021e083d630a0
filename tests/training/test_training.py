"""Fine-tuning: data loading and mixing, exact loss masks, descriptor re-encoding, LoRA/QLoRA/full training,
time budget, exact resume, merge equality, the train CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from text4seg.config import CONFIG_NAME, Text4SegConfig
from text4seg.descriptors import descriptor_shape, encode_descriptor
from text4seg.training import DataSource, Text4SegCollator, Text4SegDataset, parse_data_spec, train

# ------------------------------------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    from text4seg.modeling import load_model

    return load_model(tiny_model_dir, device="cpu")


def _write_json(path: Path, items: list) -> Path:
    path.write_text(json.dumps(items))
    return path


def _quadrant_image(path: Path, size=(40, 24)) -> Path:
    """W x H image whose four quadrants are red, green, blue, white."""
    w, h = size
    arr = np.zeros((h, w, 3), dtype=np.uint8)
    arr[: h // 2, : w // 2] = (255, 0, 0)
    arr[: h // 2, w // 2 :] = (0, 255, 0)
    arr[h // 2 :, : w // 2] = (0, 0, 255)
    arr[h // 2 :, w // 2 :] = (255, 255, 255)
    Image.fromarray(arr).save(path)
    return path


def _plain(grid_rows: list[str]) -> str:
    return encode_descriptor(np.array([list(r) for r in grid_rows], dtype=object), rle=False)


def _stop_at(step: int):
    """A TrainerCallback that stops training, saving a checkpoint, after ``step``."""
    from transformers import TrainerCallback

    class StopAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == step:
                control.should_training_stop = True
                control.should_save = True
            return control

    return StopAt()


def _grid(h, w, fg=lambda i, j: False, label="target"):
    return np.array([[label if fg(i, j) else "others" for j in range(w)] for i in range(h)], dtype=object)


# ------------------------------------------------------------------------------------------------ parsing


def test_parse_data_spec():
    assert parse_data_spec("a.json") == DataSource(Path("a.json"), 1.0)
    assert parse_data_spec("dir/a.json:3") == DataSource(Path("dir/a.json"), 3.0)
    assert parse_data_spec("a.json:0.25") == DataSource(Path("a.json"), 0.25)
    assert parse_data_spec("C:/data/a.json") == DataSource(Path("C:/data/a.json"), 1.0)  # not a ratio
    assert parse_data_spec(("b.json", 2)) == DataSource(Path("b.json"), 2.0)
    with pytest.raises(ValueError, match="ratio"):
        parse_data_spec("a.json:-1")


def test_descriptor_shape():
    assert descriptor_shape("others *2| white horse *2\n others *4\n") == (2, 4)
    assert descriptor_shape(_plain(["ab", "ba", "aa"]).replace("a", "x")) == (3, 2)
    assert descriptor_shape("") == (0, 0)


# ------------------------------------------------------------------------------------------------ dataset


def test_two_round_item_has_exact_loss_mask(tmp_path, loaded):
    """Labels are -100 everywhere except the assistant answers and their end-of-turn tokens."""
    _quadrant_image(tmp_path / "img.png")
    a1 = "Here is the mask.\n<seg>" + encode_descriptor(_grid(8, 8, lambda i, j: i < 2), rle=False) + "</seg>"
    a2 = "It is red."
    item = {
        "id": "two_rounds",
        "image": "img.png",
        "height": 24,
        "width": 40,
        "conversations": [
            {"from": "human", "value": "<image>\nSegment the red part."},
            {"from": "gpt", "value": a1},
            {"from": "human", "value": "What colour is it?"},
            {"from": "gpt", "value": a2},
        ],
    }
    data = _write_json(tmp_path / "d.json", [item])
    ds = Text4SegDataset([data], loaded.processor, loaded.config)
    out = ds[0]
    tok = loaded.processor.tokenizer

    def enc(text):
        return tok(text, add_special_tokens=False)["input_ids"]

    prompt1 = enc("<s>USER: Segment the red part.") + [tok.convert_tokens_to_ids("<image>")] * 64 + enc(
        "\nASSISTANT: "
    )
    answer1 = enc(a1 + "</s>\n")
    prompt2 = enc("USER: What colour is it?\nASSISTANT: ")
    answer2 = enc(a2 + "</s>\n")
    expected_ids = prompt1 + answer1 + prompt2 + answer2
    expected_labels = [-100] * len(prompt1) + answer1 + [-100] * len(prompt2) + answer2
    assert out["input_ids"].tolist() == expected_ids
    assert out["labels"].tolist() == expected_labels
    trained = [t for t in out["labels"].tolist() if t != -100]
    assert tok.decode(trained) == a1 + "</s>\n" + a2 + "</s>\n"
    assert len(enc(a1)) == len(enc("Here is the mask.\n")) + 1 + 64 + 1  # one token per cell
    assert tuple(out["pixel_values"].shape) == (1, 3, 32, 32)


def test_reference_item_with_crop_and_rle_16x16_is_reencoded(tmp_path, loaded, caplog):
    """A reference-format item (R-RLE 16x16, crop_size, two rounds) loads unchanged; answers become plain 8x8."""
    image = _quadrant_image(tmp_path / "img.png", size=(40, 24))
    ref_grid = _grid(16, 16, lambda i, j: j >= 8, label="green thing")
    ref_answer = "Sure, it is.\n<seg>" + encode_descriptor(ref_grid, rle=True) + "</seg>"
    item = {
        "id": 7,
        "image": image.name,
        "height": 24,
        "width": 40,
        "crop_size": [20, 0, 40, 12],  # the green quadrant only
        "conversations": [
            {"from": "human", "value": "<image>\nPlease segment the green thing in this image."},
            {"from": "gpt", "value": ref_answer},
            {"from": "human", "value": "And the same again?"},
            {"from": "gpt", "value": ref_answer},
        ],
    }
    assert ref_answer.endswith("green thing *8\n</seg>")
    data = _write_json(tmp_path / "ref.json", [item])
    with caplog.at_level("WARNING"):
        ds = Text4SegDataset([data], loaded.processor, loaded.config)
    assert "rle 16x16" in caplog.text and "plain 8x8" in caplog.text
    messages = ds.messages(ds.items[0])
    expected = "Sure, it is.\n<seg>" + encode_descriptor(_grid(8, 8, lambda i, j: j >= 4, "green thing"), rle=False)
    assert messages[1]["content"][0]["text"] == expected + "</seg>"
    assert messages[3]["content"][0]["text"] == expected + "</seg>"
    assert messages[0]["content"] == [
        {"type": "text", "text": "Please segment the green thing in this image."},
        {"type": "image"},
    ]
    out = ds[0]
    pixels = out["pixel_values"][0]
    # Cropped to the green quadrant: every pixel has the same (normalised) green colour.
    assert torch.allclose(pixels, pixels[:, :1, :1].expand_as(pixels), atol=1e-5)
    assert pixels[1, 0, 0] > pixels[0, 0, 0] and pixels[1, 0, 0] > pixels[2, 0, 0]


def test_items_without_seg_or_image_train_as_conversation(tmp_path, loaded):
    items = [
        {"id": "vqa", "conversations": [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hello."}]}
    ]
    ds = Text4SegDataset([_write_json(tmp_path / "v.json", items)], loaded.processor, loaded.config)
    out = ds[0]
    assert "pixel_values" not in out
    tok = loaded.processor.tokenizer
    assert tok.decode([t for t in out["labels"].tolist() if t != -100]) == "Hello.</s>\n"


def test_bad_items_fail_fast_or_are_skipped(tmp_path, loaded):
    _quadrant_image(tmp_path / "ok.png")
    good = {
        "id": "good",
        "image": "ok.png",
        "conversations": [{"from": "human", "value": "<image>\nQ"}, {"from": "gpt", "value": "A"}],
    }
    missing = dict(good, id="lost", image="nowhere/missing.png")
    data = _write_json(tmp_path / "d.json", [good, missing])
    with pytest.raises(FileNotFoundError, match=r"item 'lost'.*missing\.png"):
        Text4SegDataset([data], loaded.processor, loaded.config)
    ds = Text4SegDataset([data], loaded.processor, loaded.config, skip_bad=True)
    assert len(ds) == 1 and len(ds.skipped) == 1 and "lost" in ds.skipped[0]

    malformed = [
        dict(good, id="odd", conversations=[{"from": "human", "value": "<image>\nQ"}]),
        dict(good, id="swap", conversations=[{"from": "gpt", "value": "A"}, {"from": "human", "value": "Q"}]),
        dict(good, id="crop", crop_size=[10, 10, 5, 20]),
        {"id": "noimg", "conversations": [{"from": "human", "value": "<image>\nQ"}, {"from": "gpt", "value": "A"}]},
    ]
    for bad in malformed:
        path = _write_json(tmp_path / f"{bad['id']}.json", [good, bad])
        with pytest.raises(ValueError, match=rf"{path.name}: item '{bad['id']}'"):
            Text4SegDataset([path], loaded.processor, loaded.config)
    with pytest.raises(ValueError, match="JSON list"):
        Text4SegDataset([_write_json(tmp_path / "obj.json", {"a": 1})], loaded.processor, loaded.config)
    with pytest.raises(FileNotFoundError, match="absent.json"):
        Text4SegDataset([tmp_path / "absent.json"], loaded.processor, loaded.config)


def test_corrupt_image_names_item_and_file(tmp_path, loaded):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    item = {"id": "c1", "image": "bad.png", "conversations": [{"from": "human", "value": "<image>\nQ"},
                                                            {"from": "gpt", "value": "A"}]}
    ds = Text4SegDataset([_write_json(tmp_path / "c.json", [item])], loaded.processor, loaded.config)
    with pytest.raises(ValueError, match=r"c\.json: item 'c1'.*bad\.png"):
        ds[0]


def test_ratios_are_deterministic(tmp_path, loaded):
    _quadrant_image(tmp_path / "ok.png")

    def items(prefix, n):
        return [
            {"id": f"{prefix}{i}", "image": "ok.png",
             "conversations": [{"from": "human", "value": "<image>\nQ"}, {"from": "gpt", "value": f"{prefix}{i}"}]}
            for i in range(n)
        ]

    a = _write_json(tmp_path / "a.json", items("a", 4))
    b = _write_json(tmp_path / "b.json", items("b", 6))
    ds = Text4SegDataset([f"{a}:2", f"{b}:0.5"], loaded.processor, loaded.config, seed=1, check_images=False)
    ids = [ds.items[i].id for i in ds.order]
    assert len(ids) == 2 * 4 + 3
    assert ids[:8] == ["a0", "a1", "a2", "a3"] * 2
    assert len(set(ids[8:])) == 3 and all(x.startswith("b") for x in ids[8:])
    again = Text4SegDataset([f"{a}:2", f"{b}:0.5"], loaded.processor, loaded.config, seed=1, check_images=False)
    assert [again.items[i].id for i in again.order] == ids


def test_collator_pads_and_weights_foreground(tmp_path, loaded, tiny_data):
    ds = Text4SegDataset([tiny_data.json_path], loaded.processor, loaded.config, fg_weight=4.0)
    features = [ds[0], ds[1]]
    batch = Text4SegCollator(loaded.processor.tokenizer.pad_token_id)(features)
    n0, n1 = len(features[0]["input_ids"]), len(features[1]["input_ids"])
    length = max(n0, n1)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["loss_weights"].shape == (2, length)
    assert batch["attention_mask"].sum(1).tolist() == [n0, n1]
    assert tuple(batch["pixel_values"].shape) == (2, 3, 32, 32)
    tok = loaded.processor.tokenizer
    for row, f in enumerate(features):
        ids = f["input_ids"].tolist()
        weights = batch["loss_weights"][row, : len(ids)].tolist()
        tokens = tok.convert_ids_to_tokens(ids)
        for token, label, weight in zip(tokens, f["labels"].tolist(), weights):
            if label == -100:
                assert weight == 0.0
            elif token.startswith("target"):
                assert weight == 4.0
            else:
                assert weight == 1.0
        assert sum(t.startswith("target") for t in tokens) > 0
        assert batch["labels"][row, len(ids):].eq(-100).all()


# ------------------------------------------------------------------------------------------------ training


def _final_weights(path: Path) -> dict:
    from safetensors.torch import load_file

    files = sorted(path.glob("*.safetensors"))
    out = {}
    for f in files:
        out.update(load_file(f))
    return out


@pytest.mark.slow
def test_full_finetune_end_to_end(tmp_path, copy_model_dir, tiny_data):
    from text4seg.segmenter import Segmenter

    out = tmp_path / "run"
    result = train(
        model=str(copy_model_dir()), data=[str(tiny_data.json_path)], out=out, data_root=tiny_data.root, full=True,
        max_steps=3, batch_size=2, lr=1e-3, save_steps=2, logging_steps=1, precision="fp32", progress=False,
    )
    assert result.global_step == 3 and not result.adapter and not result.stopped_by_time
    assert [e["step"] for e in result.log_history if "loss" in e] == [1, 2, 3]
    assert (out / "config.json").is_file() and (out / CONFIG_NAME).is_file()
    assert (out / "checkpoint-2" / CONFIG_NAME).is_file()
    assert Text4SegConfig.load(out).grid == (8, 8)
    seg = Segmenter.from_pretrained(out, device="cpu", decoding="plain", max_new_tokens=80)
    sample = tiny_data.samples[0]
    res = seg.segment(tiny_data.root / sample.image, sample.expressions[0])
    assert res.mask.shape == (sample.height, sample.width) and res.mask.dtype == bool
    assert res.grid.shape == (8, 8) and res.tokens <= 80


@pytest.mark.slow
@pytest.mark.parametrize("train_vision", [False, True])
def test_full_finetune_trains_vision_tower_only_when_asked(tmp_path, copy_model_dir, tiny_data, train_vision):
    from safetensors.torch import load_file

    base = copy_model_dir()
    out = tmp_path / "run"
    train(
        model=str(base), data=[str(tiny_data.json_path)], out=out, data_root=tiny_data.root, full=True, train_vision=train_vision,
        max_steps=2, batch_size=2, lr=1e-2, save_steps=10, logging_steps=1, precision="fp32", progress=False,
    )
    before, after = load_file(str(base / "model.safetensors")), load_file(str(out / "model.safetensors"))
    vision = [k for k in after if "vision_tower" in k and k.endswith("weight")]
    lm = [k for k in after if "language_model" in k and k.endswith("weight")]
    assert vision and lm
    lm_changed = [not torch.equal(before[k], after[k]) for k in lm if k in before]
    vision_changed = [not torch.equal(before[k], after[k]) for k in vision if k in before]
    assert lm_changed and vision_changed, "weights saved under other key names than the base model's"
    assert any(lm_changed)
    assert any(vision_changed) == train_vision


def test_train_vision_needs_full(tmp_path, tiny_model_dir, tiny_data):
    with pytest.raises(ValueError, match="--train-vision needs --full"):
        train(model=str(tiny_model_dir), data=[str(tiny_data.json_path)], out=tmp_path / "x", data_root=tiny_data.root,
              train_vision=True, max_steps=1, progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("group_by_length", [False, True])
def test_resume_continues_exactly(tmp_path, copy_model_dir, tiny_data, group_by_length):
    model = str(copy_model_dir())
    common = dict(data_root=tiny_data.root, full=True, max_steps=4, batch_size=2, lr=1e-3, save_steps=100,
                  logging_steps=1, precision="fp32", progress=False, seed=3, group_by_length=group_by_length)
    straight = train(model=model, data=[str(tiny_data.json_path)], out=tmp_path / "straight", **common)
    first = train(model=model, data=[str(tiny_data.json_path)], out=tmp_path / "cut", callbacks=[_stop_at(2)], **common)
    assert first.global_step == 2 and (tmp_path / "cut" / "checkpoint-2").is_dir()
    resumed = train(model=model, data=[str(tiny_data.json_path)], out=tmp_path / "cut", resume=True, **common)
    assert resumed.global_step == 4
    losses = {e["step"]: e["loss"] for e in straight.log_history if "loss" in e}
    resumed_losses = {e["step"]: e["loss"] for e in resumed.log_history if "loss" in e}
    assert resumed_losses[3] == pytest.approx(losses[3], rel=1e-5)
    assert resumed_losses[4] == pytest.approx(losses[4], rel=1e-5)
    a, b = _final_weights(tmp_path / "straight"), _final_weights(tmp_path / "cut")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_time_budget_stops_and_saves(tmp_path, copy_model_dir, tiny_data):
    result = train(
        model=str(copy_model_dir()), data=[str(tiny_data.json_path)], out=tmp_path / "t", data_root=tiny_data.root, full=True,
        max_steps=50, batch_size=1, minutes=1e-4, save_steps=1000, precision="fp32", progress=False,
    )
    assert result.stopped_by_time and result.global_step == 1
    assert (tmp_path / "t" / "checkpoint-1" / CONFIG_NAME).is_file()
    assert (tmp_path / "t" / "model.safetensors").is_file()


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_model_dir, tiny_data):
    out = tmp_path_factory.mktemp("lora") / "adapter"
    result = train(
        model=str(tiny_model_dir), data=[str(tiny_data.json_path)], out=out, data_root=tiny_data.root, max_steps=2,
        batch_size=2, lr=1e-2, projector_lr=5e-3, lora_r=4, lora_alpha=8, save_steps=100, precision="fp32",
        progress=False, logging_steps=1, gradient_checkpointing=True,
    )
    return result


@pytest.mark.slow
def test_lora_adapter_dir_and_projector_lr(lora_run, tiny_model_dir):
    out = lora_run.output_dir
    assert lora_run.adapter and lora_run.global_step == 2
    names = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", CONFIG_NAME, "processor_config.json"} <= names
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    assert adapter_config["r"] == 4 and adapter_config["lora_alpha"] == 8
    assert Path(adapter_config["base_model_name_or_path"]) == tiny_model_dir.resolve()
    assert adapter_config["modules_to_save"] == ["multi_modal_projector"]
    keys = _final_weights(out).keys()
    assert any("multi_modal_projector" in k for k in keys)
    assert not any("vision_tower" in k for k in keys) and not any("lm_head" in k for k in keys)
    assert [e["step"] for e in lora_run.log_history if "loss" in e] == [1, 2]


@pytest.mark.slow
def test_projector_gets_its_own_learning_rate(tiny_model_dir, tiny_data, tmp_path, monkeypatch):
    from text4seg.training import trainer as trainer_module

    captured = {}

    class Spy(trainer_module.Text4SegTrainer):
        def create_optimizer(self, model=None):
            opt = super().create_optimizer(model)
            captured["groups"] = [(g["lr"], len(g["params"])) for g in opt.param_groups]
            names = dict((id(p), n) for n, p in self.model.named_parameters())
            captured["projector"] = [
                names[id(p)] for g in opt.param_groups if g["lr"] == 5e-3 for p in g["params"]
            ]
            return opt

    monkeypatch.setattr(trainer_module, "Text4SegTrainer", Spy)
    train(model=str(tiny_model_dir), data=[str(tiny_data.json_path)], out=tmp_path / "o", data_root=tiny_data.root,
          max_steps=1, batch_size=1, lr=1e-2, projector_lr=5e-3, lora_r=2, lora_alpha=4, precision="fp32",
          progress=False, save_steps=100)
    assert {lr for lr, _ in captured["groups"]} == {1e-2, 5e-3}
    assert captured["projector"] and all("multi_modal_projector" in n for n in captured["projector"])
    assert len(captured["projector"]) == 4  # linear_1/linear_2 weight + bias


@pytest.mark.slow
def test_merge_gives_identical_outputs(lora_run, tmp_path, tiny_data):
    from text4seg.merge import merge
    from text4seg.modeling import encode_prompt, load_model, prepare_image, render_chat, user_content
    from text4seg.segmenter import Segmenter

    merged_dir = merge(lora_run.output_dir, tmp_path / "merged")
    assert (merged_dir / "config.json").is_file() and (merged_dir / CONFIG_NAME).is_file()
    assert not (merged_dir / "adapter_config.json").exists()
    with_adapter = load_model(lora_run.output_dir, device="cpu")
    merged = load_model(merged_dir, device="cpu")
    sample = tiny_data.samples[0]
    image = prepare_image(Image.open(tiny_data.root / sample.image).convert("RGB"), merged.config, merged.processor)
    text = render_chat(merged.processor, [{"role": "user", "content": user_content("Segment x.", "after")}], True)
    inputs = encode_prompt(merged.processor, [text], [image])
    with torch.no_grad():
        a = with_adapter.model(**inputs).logits
        b = merged.model(**inputs).logits
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    query = sample.expressions[0]
    ra = Segmenter.from_pretrained(lora_run.output_dir, device="cpu", max_new_tokens=40).segment(
        tiny_data.root / sample.image, query)
    rb = Segmenter.from_pretrained(merged_dir, device="cpu", max_new_tokens=40).segment(
        tiny_data.root / sample.image, query)
    assert ra.text == rb.text and np.array_equal(ra.mask, rb.mask)
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        merge(tmp_path / "merged", tmp_path / "again")


@pytest.mark.slow
def test_qlora_4bit_step_on_cpu(tmp_path, tiny_model_dir, tiny_data):
    pytest.importorskip("bitsandbytes")
    result = train(
        model=str(tiny_model_dir), data=[str(tiny_data.json_path)], out=tmp_path / "q", data_root=tiny_data.root,
        load_in_4bit=True, max_steps=1, batch_size=1, lora_r=2, lora_alpha=4, save_steps=100,
        precision="fp32", progress=False, device="cpu",
    )
    assert result.global_step == 1 and result.adapter
    loss = [e["train_loss"] for e in result.log_history if "train_loss" in e][0]
    assert np.isfinite(loss)
    assert (tmp_path / "q" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_train_tiny_from_cli(tmp_path, tiny_data, capsys):
    from text4seg.cli import main

    out = tmp_path / "cli"
    code = main([
        "train", "--model", "tiny", "--data", f"{tiny_data.json_path}:1", "--image-root", str(tiny_data.root),
        "--output-dir", str(out), "--full", "--max-steps", "1", "--batch-size", "1", "--precision", "fp32",
        "--save-steps", "100", "--curriculum-grid", "none",
    ])
    assert code == 0
    assert "trained 1 steps" in capsys.readouterr().out
    config = Text4SegConfig.load(out)
    assert config.grid == (8, 8) and config.descriptor_form == "plain" and config.fg_label == "target"
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out)
    assert "target| " in tok.get_vocab() and "others\n " in tok.get_vocab()
    assert main(["train", "--model", "tiny", "--data", str(tmp_path / "nope.json"), "--output-dir", str(out)]) == 1
    assert "nope.json" in capsys.readouterr().err


@pytest.mark.slow
def test_quickstart_smoke(tmp_path, capsys):
    """The quickstart pipeline end to end with a miniature preset: data, training, evaluation, mask + overlay."""
    from text4seg.presets import TINY_PRESET
    from text4seg.quickstart import quickstart

    result = quickstart(
        tmp_path / "qs", minutes=1.0, progress=False, train_images=4, val_images=2, image_pixels=32, grid=8,
        vision_hidden=32, vision_layers=1, text_hidden=64, text_layers=1, heads=2, vocab_size=300, max_steps=2,
        batch_size=2, eval_batch_size=4, curriculum_grid=4, curriculum_fraction=0.5,
    )
    out = capsys.readouterr().out
    assert "held-out cIoU" in out and str(result.mask_path) in out
    # it ends with the one command that opens the demo on the trained model
    import shlex

    from text4seg.cli import build_parser

    prefix, command = out.rstrip("\n").rsplit("\n", 1)[1].split(": ", 1)
    assert prefix == "try it in a browser"
    argv = shlex.split(command)
    assert argv[0] == "text4seg"
    args = build_parser(argv[1:]).parse_args(argv[1:])
    assert (args.command, args.model, args.device) == ("demo", str(result.model_dir), "cpu")
    assert result.train_steps == 2 and 0.0 <= result.ciou <= 1.0 and 0.0 <= result.giou <= 1.0
    assert result.mask_path.is_file() and result.overlay_path.is_file()
    scores = json.loads(result.scores_path.read_text())
    assert scores["preset"]["model"]["grid"] == 8 and scores["train_steps"] == 2
    assert Text4SegConfig.load(result.model_dir).grid == (8, 8)
    mask = np.asarray(Image.open(result.mask_path))
    assert mask.shape == (32, 32)
    assert TINY_PRESET.model.grid == 16  # the miniature overrides did not leak into the preset
    with pytest.raises(ValueError, match="unknown preset fields"):
        quickstart(tmp_path / "x", colour="red")


def test_time_schedule_follows_the_budget(monkeypatch):
    from text4seg.training import schedule as schedule_module
    from text4seg.training.schedule import TimeSchedule

    clock = [100.0]
    monkeypatch.setattr(schedule_module.time, "monotonic", lambda: clock[0])
    schedule = TimeSchedule(seconds=100.0, warmup_ratio=0.1, kind="cosine")
    factors = []
    for t in (0, 5, 10, 55, 100, 150):
        clock[0] = 100.0 + t
        factors.append(schedule(0))
    assert factors[0] == pytest.approx(1e-3) and factors[1] == pytest.approx(0.5)
    assert factors[2] == pytest.approx(1.0) and factors[3] == pytest.approx(0.5)
    assert factors[4] == pytest.approx(0.0, abs=1e-12) and factors[5] == pytest.approx(0.0, abs=1e-12)
    linear = TimeSchedule(seconds=10.0, warmup_ratio=0.0, kind="linear")
    clock[0] = 0.0
    assert linear(0) == 1.0
    clock[0] = 2.5
    assert linear(0) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="time schedule"):
        TimeSchedule(10.0, 0.0, "polynomial")
    with pytest.raises(ValueError, match="time_schedule"):
        train(model="tiny", data=["x.json"], out="out", time_schedule=True)


def test_cell_noise_swaps_inputs_not_targets(loaded, tiny_data):
    import random

    from text4seg.training.data import cell_token_table as _cell_token_table

    clean = Text4SegDataset([tiny_data.json_path], loaded.processor, loaded.config)
    noisy = Text4SegDataset([tiny_data.json_path], loaded.processor, loaded.config, cell_noise=0.5)
    cells, _ = _cell_token_table(loaded.processor.tokenizer)
    assert {label for label, _ in cells.values()} == {"others", "target"}
    random.seed(0)
    a, b = clean[0], noisy[0]
    assert torch.equal(a["labels"], b["labels"]) and torch.equal(a["pixel_values"], b["pixel_values"])
    changed = (a["input_ids"] != b["input_ids"]).nonzero().flatten().tolist()
    assert 64 * 0.3 < len(changed) < 64 * 0.7  # about half of the 8 x 8 cells
    for k in changed:
        before, after = cells[int(a["input_ids"][k])], cells[int(b["input_ids"][k])]
        assert before[1] == after[1] and before[0] != after[0]  # same separator, the other label
        assert a["labels"][k] != -100
    with pytest.raises(ValueError, match="cell_noise"):
        Text4SegDataset([tiny_data.json_path], loaded.processor, loaded.config, cell_noise=1.0)


# ------------------------------------------------------------------------------------------------ curriculum


def test_stage_config_scales_grid_and_image():
    from text4seg.training.curriculum import stage_config

    config = Text4SegConfig(grid=16, image_size=64, descriptor_form="plain", fg_label="target")
    low = stage_config(config, 8)
    assert low.grid == (8, 8) and low.image_size == (32, 32)
    assert (low.descriptor_form, low.fg_label, low.question_template) == ("plain", "target", config.question_template)
    assert config.grid == (16, 16) and config.image_size == (64, 64)  # not modified
    wide = stage_config(Text4SegConfig(grid="16x24", image_size="64x96"), "4x6")
    assert wide.grid == (4, 6) and wide.image_size == (16, 24)
    with pytest.raises(ValueError, match="coarser than the model's grid 16x16"):
        stage_config(config, 16)
    with pytest.raises(ValueError, match="coarser"):
        stage_config(config, "8x16")
    assert stage_config(config, 3).image_size == (12, 12)
    with pytest.raises(ValueError, match="image size 60x60 does not scale"):
        stage_config(Text4SegConfig(grid=16, image_size=60), 3)
    with pytest.raises(ValueError, match="fixed image_size"):
        stage_config(Text4SegConfig(grid=16), 8)
    with pytest.raises(ValueError, match="fixed image_size"):
        stage_config(Text4SegConfig(grid=16, image_size=64, resize="none"), 8)


def test_dataset_stage_serves_a_coarser_grid_and_smaller_images(loaded, tiny_data):
    from text4seg.descriptors import decode_descriptor, extract_descriptor, mask_to_grid

    ds = Text4SegDataset([tiny_data.json_path], loaded.processor, loaded.config)
    tok = loaded.processor.tokenizer
    image_id = loaded.model.config.image_token_id
    full = ds[0]
    ds.set_stage(4)
    low = ds[0]
    assert tuple(full["pixel_values"].shape) == (1, 3, 32, 32) and tuple(low["pixel_values"].shape) == (1, 3, 16, 16)
    assert int((full["input_ids"] == image_id).sum()) == 64 and int((low["input_ids"] == image_id).sum()) == 16

    def answer_grid(item, size):
        answer = tok.decode(item["labels"][item["labels"] != -100].tolist())
        return decode_descriptor(extract_descriptor(answer), size, size).labels

    full_grid = answer_grid(full, 8)
    expected = np.where(mask_to_grid(full_grid == "target", 4, 4, mode="nearest"), "target", "others")
    assert (answer_grid(low, 4) == expected).all()
    ds.set_stage(None)
    again = ds[0]
    assert torch.equal(again["input_ids"], full["input_ids"]) and torch.equal(again["pixel_values"], full["pixel_values"])


def test_position_interpolation_lets_the_tower_take_small_images(loaded):
    from text4seg.training.curriculum import PositionInterpolation

    model = loaded.model
    ids = torch.tensor([[1] + [model.config.image_token_id] * 16 + [5]])
    small = torch.randn(1, 3, 16, 16)
    with pytest.raises(ValueError):
        model(input_ids=ids, pixel_values=small)
    interpolation = PositionInterpolation(model)
    native_ids = torch.tensor([[1] + [model.config.image_token_id] * 64 + [5]])
    native = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        before = model(input_ids=native_ids, pixel_values=native).logits
        try:
            interpolation.enable()
            interpolation.enable()  # idempotent
            logits = model(input_ids=ids, pixel_values=small).logits
            assert logits.shape == (1, 18, model.config.text_config.vocab_size)
            torch.testing.assert_close(model(input_ids=native_ids, pixel_values=native).logits, before)
        finally:
            interpolation.disable()
    with pytest.raises(ValueError):
        model(input_ids=ids, pixel_values=small)
    with pytest.raises(ValueError, match="cannot interpolate"):
        PositionInterpolation(torch.nn.Linear(2, 2))


@pytest.mark.slow
def test_curriculum_trains_coarse_first_then_switches_and_resumes(tmp_path, copy_model_dir, tiny_data, monkeypatch):
    seen: list[int] = []
    collate = Text4SegCollator.__call__

    def spy(self, features):
        batch = collate(self, features)
        seen.append(int(batch["pixel_values"].shape[-1]))
        return batch

    monkeypatch.setattr(Text4SegCollator, "__call__", spy)

    model = str(copy_model_dir())
    common = dict(data_root=tiny_data.root, full=True, max_steps=4, batch_size=2, lr=1e-3, save_steps=100,
                  logging_steps=1, precision="fp32", progress=False, curriculum_grid=4, curriculum_fraction=0.5)
    first = train(model=model, data=[str(tiny_data.json_path)], out=tmp_path / "run", callbacks=[_stop_at(3)], **common)
    assert first.global_step == 3
    assert {"curriculum_end": 2, "step": 2} in first.log_history
    # Steps 1-2 on 16 px (4 x 4 grid); a batch fetched ahead of the switch may still be small; then 32 px.
    assert seen[:2] == [16, 16] and seen[-1] == 32 and seen == sorted(seen, reverse=False)
    assert Text4SegConfig.load(tmp_path / "run" / "checkpoint-3").grid == (8, 8)
    seen.clear()
    resumed = train(model=model, data=[str(tiny_data.json_path)], out=tmp_path / "run", resume=True, **common)
    assert resumed.global_step == 4 and seen and set(seen) == {32}
    assert Text4SegConfig.load(tmp_path / "run").grid == (8, 8)


def test_curriculum_options_are_checked(tmp_path, tiny_model_dir, tiny_data):
    common = dict(data_root=tiny_data.root, max_steps=1, progress=False)
    with pytest.raises(ValueError, match="curriculum_fraction"):
        train(model=str(tiny_model_dir), data=[str(tiny_data.json_path)], out=tmp_path / "a", curriculum_grid=4,
              curriculum_fraction=1.0, **common)
    with pytest.raises(ValueError, match="--workers 0"):
        train(model=str(tiny_model_dir), data=[str(tiny_data.json_path)], out=tmp_path / "b", curriculum_grid=4, workers=2, **common)
    with pytest.raises(ValueError, match="coarser"):
        train(model=str(tiny_model_dir), data=[str(tiny_data.json_path)], out=tmp_path / "c", curriculum_grid=8, full=True, **common)
