"""text4seg convert: a tiny checkpoint in the Text4Seg LLaVA codebase's on-disk format, converted, answers token
for token as an independent reimplementation of the original prompt, preprocessing and forward pass."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("sentencepiece")

SIDE, PATCH = 56, 14  # 16 image tokens (the real tower: 336 / 14 -> 576)
MEAN = np.array([0.48145466, 0.4578275, 0.40821073])
STD = np.array([0.26862954, 0.26130258, 0.27577711])
LLAMA = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
             num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-5, hidden_act="silu",
             tie_word_embeddings=False)


def _sentencepiece(directory: Path) -> None:
    import sentencepiece as spm

    from text4seg.modeling.convert import REFERENCE_SYSTEM_PROMPT

    corpus = directory / "corpus.txt"
    lines = [REFERENCE_SYSTEM_PROMPT, "USER: ASSISTANT: Please segment only the red circle in the image.",
             "others *4| red circle *2\n others *6\n", "<seg> </seg> the blue square on the left"] * 20
    corpus.write_text("\n".join(lines), encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(directory / "tokenizer"), vocab_size=340,
                                   model_type="bpe", byte_fallback=True, character_coverage=1.0, unk_id=0,
                                   bos_id=1, eos_id=2, pad_id=-1, minloglevel=2,
                                   # Llama's tokenizer.model: no normalization, spaces and newlines kept
                                   normalization_rule_name="identity", remove_extra_whitespaces=False,
                                   add_dummy_prefix=True, split_digits=True, allow_whitespace_only_pieces=True)
    corpus.unlink()
    (directory / "tokenizer.vocab").unlink()
    (directory / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "legacy": True, "add_bos_token": True, "add_eos_token": False, "model_max_length": 3072}))
    (directory / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}))


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """(checkpoint dir in the original format, CLIP tower dir, original weights)."""
    from transformers import CLIPConfig, CLIPModel, LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("original")
    tower = root / "clip-vit-tiny"
    tower.mkdir()
    torch.manual_seed(0)
    clip_config = CLIPConfig(
        text_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                         vocab_size=100),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=SIDE, patch_size=PATCH), projection_dim=16)
    clip = CLIPModel(clip_config)
    (tower / "config.json").write_text(json.dumps(clip_config.to_dict()))
    torch.save(clip.state_dict(), tower / "pytorch_model.bin")  # a pickle with text_model.* too, as released

    ckpt = root / "text4seg-llava-tiny-p16"
    ckpt.mkdir()
    _sentencepiece(ckpt)
    import sentencepiece as spm

    vocab = spm.SentencePieceProcessor(model_file=str(ckpt / "tokenizer.model")).get_piece_size()
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=vocab, **LLAMA))
    weights = {k: v for k, v in llama.state_dict().items() if "rotary" not in k}
    weights["model.mm_projector.0.weight"] = torch.randn(64, 32) * 0.2
    weights["model.mm_projector.0.bias"] = torch.randn(64) * 0.1
    weights["model.mm_projector.2.weight"] = torch.randn(64, 64) * 0.2
    weights["model.mm_projector.2.bias"] = torch.randn(64) * 0.1
    for key, value in clip.state_dict().items():  # the copy the original ignores: fp16 and perturbed
        if key.startswith("vision_model."):
            weights["model.vision_tower.vision_tower." + key] = (value + 0.01).half()
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in weights.items()}, str(ckpt / "model.safetensors"))
    config = {"model_type": "llava_llama", "architectures": ["LlavaLlamaForCausalLM"], "vocab_size": vocab,
              "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, **LLAMA,
              "mm_vision_tower": "./pre_trained/clip-vit-large-patch14-336/", "mm_hidden_size": 32,
              "mm_projector_type": "mlp2x_gelu", "mm_vision_select_layer": -2, "mm_vision_select_feature": "patch",
              "mm_patch_merge_type": "flat", "image_aspect_ratio": "anyres", "mm_use_im_start_end": False,
              "mm_use_im_patch_token": False, "tokenizer_model_max_length": 3072}
    (ckpt / "config.json").write_text(json.dumps(config))
    (ckpt / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "temperature": 0.9, "top_p": 0.6,
         "max_length": 4096}))
    return ckpt, tower, weights, clip


def _reference_tokens(ckpt: Path, weights, clip, image: Image.Image, expression: str, steps: int,
                      half: bool = False) -> list[int]:
    """The original inference, reimplemented: conversation (commas removed from the expression),
    tokenizer_image_token, PIL bilinear stretch, CLIP layer -2 without CLS in fp32, mlp2x_gelu, greedy. ``half``:
    as the original in fp16: pixel values cast to fp16, CLIP in fp32, features cast to fp16 at the projector,
    projector and language model in fp16."""
    import sentencepiece as spm
    from transformers import LlamaConfig, LlamaForCausalLM

    from text4seg.modeling.convert import REFERENCE_SYSTEM_PROMPT

    sp = spm.SentencePieceProcessor(model_file=str(ckpt / "tokenizer.model"))
    question = f"Please segment only the {expression.replace(',', '')} in the image."
    prompt = f"{REFERENCE_SYSTEM_PROMPT} USER: <image>\n{question} ASSISTANT:"
    before, after = prompt.split("<image>")
    ids_before, ids_after = [1, *sp.encode(before)], sp.encode(after)
    pixels = np.asarray(image.convert("RGB").resize((SIDE, SIDE), Image.BILINEAR), dtype=np.float64) / 255.0
    pixels = torch.tensor(((pixels - MEAN) / STD).transpose(2, 0, 1)[None], dtype=torch.float32)
    lm = torch.float16 if half else torch.float32
    pixels = pixels.to(lm).to(torch.float32)  # images.to(fp16), then CLIPVisionTower casts to its fp32
    w = {k: v.to(lm) for k, v in weights.items() if k.startswith("model.mm_projector.")}
    with torch.no_grad():
        hidden = clip.float().vision_model(pixel_values=pixels, output_hidden_states=True).hidden_states[-2][:, 1:]
        hidden = hidden.to(lm)
        h = torch.nn.functional.linear(hidden, w["model.mm_projector.0.weight"], w["model.mm_projector.0.bias"])
        feats = torch.nn.functional.linear(torch.nn.functional.gelu(h), w["model.mm_projector.2.weight"],
                                           w["model.mm_projector.2.bias"])[0]
        llama = LlamaForCausalLM(LlamaConfig(vocab_size=sp.get_piece_size(), **LLAMA))
        llama.load_state_dict({k: v for k, v in weights.items() if not k.startswith("model.mm_")
                               and not k.startswith("model.vision_tower")}, strict=False)
        llama.to(lm).eval()
        embed = llama.get_input_embeddings()
        embeds = torch.cat([embed(torch.tensor(ids_before)), feats, embed(torch.tensor(ids_after))])[None]
        out: list[int] = []
        for _ in range(steps):
            token = int(llama(inputs_embeds=embeds).logits[0, -1].argmax())
            out.append(token)
            if token == 2:
                break
            embeds = torch.cat([embeds, embed(torch.tensor([[token]]))], dim=1)
    return out


def test_converted_checkpoint_answers_as_the_original(original, tmp_path, caplog):
    import logging

    from text4seg.config import Text4SegConfig
    from text4seg.decoding import HFGenerationBackend
    from text4seg.decoding.hf import generate_plain
    from text4seg.modeling import load_model
    from text4seg.modeling.convert import convert_text4seg_llava
    from text4seg.segmenter import Segmenter

    ckpt, tower, weights, clip = original
    out = tmp_path / "converted"
    with caplog.at_level(logging.INFO):
        convert_text4seg_llava(ckpt, out, vision_tower=tower)
    assert "grid 16 (from 'p16' in the name" in caplog.text
    assert {"config.json", "model.safetensors", "tokenizer.json", "text4seg_config.json", "processor_config.json",
            "generation_config.json"} <= {p.name for p in out.iterdir()}
    config = Text4SegConfig.load(out)
    assert (config.grid, config.descriptor_form, config.background, config.profile) == ((16, 16), "rle",
                                                                                         "others", "reference")
    assert config.question_template == "Please segment only the {expression} in the image."
    assert config.resample == "bilinear" and config.image_size == (SIDE, SIDE)

    loaded = load_model(out, device="cpu", dtype="float32")
    vocab = weights["model.embed_tokens.weight"].shape[0]
    assert loaded.model.config.text_config.vocab_size % 64 == 0
    assert loaded.model.generation_config.suppress_tokens == list(range(vocab, loaded.model.config.text_config.vocab_size))
    segmenter = Segmenter(HFGenerationBackend(loaded.model, loaded.processor, config, decoding="plain"), config)
    rng = np.random.default_rng(3)
    # the original removes the expression's commas: "the blue square, on the left" is asked without them
    assert segmenter.referring_prompt("the blue square, on the left") == (
        "Please segment only the the blue square on the left in the image.")
    for k, expression in enumerate(["red circle", "the blue square, on the left"]):
        image = Image.fromarray(rng.integers(0, 256, (37 + 20 * k, 61, 3), dtype=np.uint8))
        prompt = segmenter.referring_prompt(expression)
        render = segmenter.backend.render
        enc = loaded.processor(text=[render(prompt)], images=[image.resize((SIDE, SIDE), Image.BILINEAR)],
                               return_tensors="pt")
        assert int((enc["input_ids"] == loaded.model.config.image_token_id).sum()) == (SIDE // PATCH) ** 2
        [(ids, _)] = generate_plain(loaded.model, loaded.processor, config, [image], [prompt], render, 12)
        expected = _reference_tokens(ckpt, weights, clip, image, expression, 12)
        assert ids == expected
        # the same through the fast loop (suppressed ids honoured there too)
        fast = HFGenerationBackend(loaded.model, loaded.processor, config, decoding="fast-unconstrained",
                                   max_new_tokens=12).decoder.generate_ids([image], [prompt],
                                                                           mode="fast-unconstrained",
                                                                           max_new_tokens=12)
        assert fast[0][0] == expected
    # the prompt ids are the original's: "▁" after the image, pieces tokenized separately
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(ckpt / "tokenizer.model"))
    text = segmenter.backend.render("Q")
    before, after = text.split("<image>")
    assert before.endswith(" USER: ") and after == "\nQ ASSISTANT:"
    pieces = loaded.processor.tokenizer(text)["input_ids"]
    image_id = loaded.model.config.image_token_id
    assert pieces == [1, *sp.encode(before), image_id, *sp.encode(after)]
    assert sp.id_to_piece(pieces[pieces.index(image_id) + 1]) == "▁"


def test_convert_refuses_bad_input(original, tmp_path):
    from text4seg.modeling.convert import convert_text4seg_llava, grid_from_name, load_state_dict

    ckpt, tower, _, _ = original
    assert (grid_from_name("lmc22/text4seg-llava-7b-p24"), grid_from_name("x_p32"), grid_from_name("p240")) == (
        24, 32, None)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FileExistsError):
        convert_text4seg_llava(ckpt, out, vision_tower=tower)
    with pytest.raises(ValueError, match="states no grid"):
        convert_text4seg_llava(tower, tmp_path / "x")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "non_lora_trainables.bin"
    torch.save({"x": Evil()}, bad)
    with pytest.raises(ValueError, match="weights_only=True"):
        load_state_dict(bad)
    assert not (tmp_path / "x").exists()


def test_convert_cli_writes_once_unless_forced(original, tmp_path, capsys):
    from text4seg.cli import main

    ckpt, tower, _, _ = original
    out = tmp_path / "cli"
    argv = ["convert", "text4seg-llava", str(ckpt), "--out", str(out), "--vision-tower", str(tower), "--grid", "24"]
    assert main(argv) == 0 and "converted:" in capsys.readouterr().out
    assert json.loads((out / "text4seg_config.json").read_text())["grid"] == [24, 24]
    assert main(argv) == 1 and "already exists" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0


def test_reference_profile_keeps_clip_fp32_beside_an_fp16_language_model(original, tmp_path):
    """--dtype float16 on a converted checkpoint: CLIP in fp32 with its exact weights, projector and language model
    in fp16, and the answer of the original's mixed precision (same stack: fp16 matmuls on this CPU)."""
    from text4seg.decoding import HFGenerationBackend
    from text4seg.decoding.hf import generate_plain
    from text4seg.modeling import load_model
    from text4seg.modeling.convert import convert_text4seg_llava
    from text4seg.segmenter import Segmenter

    ckpt, tower, weights, clip = original
    out = tmp_path / "converted"
    convert_text4seg_llava(ckpt, out, vision_tower=tower)
    loaded = load_model(out, device="cpu", dtype="float16")
    assert loaded.dtype == torch.float16
    inner = loaded.model.model
    assert {p.dtype for p in inner.vision_tower.parameters()} == {torch.float32}
    assert {p.dtype for p in inner.multi_modal_projector.parameters()} == {torch.float16}
    assert {p.dtype for p in inner.language_model.parameters()} == {torch.float16}
    assert loaded.model.lm_head.weight.dtype == torch.float16
    # the tower's fp32 values themselves, read again from the files (not fp16 values up-cast)
    key = "vision_model.encoder.layers.0.self_attn.q_proj.weight"
    assert torch.equal(inner.vision_tower.encoder.layers[0].self_attn.q_proj.weight, clip.state_dict()[key])

    segmenter = Segmenter(HFGenerationBackend(loaded.model, loaded.processor, loaded.config, decoding="plain",
                                              max_new_tokens=12), loaded.config)
    image = Image.fromarray(np.random.default_rng(5).integers(0, 256, (40, 52, 3), dtype=np.uint8))
    expected = _reference_tokens(ckpt, weights, clip, image, "red circle", 12, half=True)
    [(ids, _)] = generate_plain(loaded.model, loaded.processor, loaded.config, [image],
                                [segmenter.referring_prompt("red circle")], segmenter.backend.render, 12)
    assert len(ids) == 12 and ids == expected
    fast = segmenter.backend.decoder.generate_ids([image], [segmenter.referring_prompt("red circle")],
                                                  mode="fast-unconstrained", max_new_tokens=12)
    assert fast[0][0] == expected


def _swift_base_and_adapter(tiny_model_dir: Path, root: Path) -> tuple[Path, dict[str, torch.Tensor], float]:
    """An adapter as ms-swift saves one on llava-hf/llava-1.5 (transformers 4 layout: ``language_model.model.*``;
    LoRA on the language model's q/v projections; ``sft_args.json`` beside it), with non-zero B matrices.

    Returns:
        (adapter dir, its tensors in the transformers 4 layout, alpha / r).
    """
    from safetensors.torch import save_file

    adapter = root / "swift-ckpt"
    adapter.mkdir()
    torch.manual_seed(7)
    from transformers import AutoConfig

    text = AutoConfig.from_pretrained(str(tiny_model_dir)).text_config
    hidden, kv = text.hidden_size, text.num_key_value_heads * (text.hidden_size // text.num_attention_heads)
    r, alpha = 4, 16
    tensors = {}
    for layer in range(text.num_hidden_layers):
        for proj, out in (("q_proj", hidden), ("v_proj", kv)):
            key = f"base_model.model.language_model.model.layers.{layer}.self_attn.{proj}"
            tensors[f"{key}.lora_A.weight"] = torch.randn(r, hidden) * 0.3
            tensors[f"{key}.lora_B.weight"] = torch.randn(out, r) * 0.3
    save_file(tensors, str(adapter / "adapter_model.safetensors"))
    (adapter / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": alpha, "lora_dropout": 0.05,
        "bias": "none", "target_modules": r"^(language_model(?=\.).*\.(q_proj|v_proj))$",
        "base_model_name_or_path": "llava-hf/llava-1.5-7b-hf", "inference_mode": True}))
    (adapter / "sft_args.json").write_text(json.dumps({"model_type": "llava1_5-7b-instruct",
                                                      "template_type": "llava1_5", "sft_type": "lora"}))
    return adapter, tensors, alpha / r


def test_ms_swift_adapter_answers_as_its_template(tiny_model_dir, tmp_path):
    """ms-swift profile: the converted adapter, loaded on its base, answers token for token as an independent
    reimplementation of ms-swift's llava1_5 inference: no system prompt, ``USER: <image>\\n{q}\\nASSISTANT:``, a
    bicubic stretch to the tower's size, CLIP normalization, LoRA merged by hand (W += alpha/r B A), greedy."""
    from transformers import LlavaForConditionalGeneration

    from text4seg.config import Text4SegConfig
    from text4seg.decoding import HFGenerationBackend
    from text4seg.decoding.hf import generate_plain
    from text4seg.modeling import load_model
    from text4seg.modeling.convert import convert_ms_swift_llava
    from text4seg.segmenter import Segmenter

    adapter, tensors, scale = _swift_base_and_adapter(tiny_model_dir, tmp_path)
    out = convert_ms_swift_llava(adapter, tmp_path / "swift", base=tiny_model_dir, grid=8)
    config = Text4SegConfig.load(out)
    assert (config.profile, config.resample, config.grid, config.image_position) == ("ms-swift", "bicubic", (8, 8),
                                                                                    "before")
    loaded = load_model(out, device="cpu", dtype="float32")
    assert loaded.adapter == str(out)
    segmenter = Segmenter(HFGenerationBackend(loaded.model, loaded.processor, config, decoding="plain",
                                              max_new_tokens=10), config)
    question = segmenter.referring_prompt("the red circle")
    assert segmenter.backend.render(question) == f"USER: <image>\n{question}\nASSISTANT:"

    # the reimplementation: base weights + hand-merged LoRA, hand-made prompt ids and pixels
    reference = LlavaForConditionalGeneration.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()
    state = reference.state_dict()
    for key, a in tensors.items():
        if ".lora_A." in key:
            target = key.replace("base_model.model.language_model.model.", "model.language_model.").replace(
                ".lora_A.weight", ".weight")
            state[target] = state[target] + scale * tensors[key.replace(".lora_A.", ".lora_B.")] @ a
    reference.load_state_dict(state)
    tokenizer = loaded.processor.tokenizer
    side = reference.config.vision_config.image_size
    image_id = reference.config.image_token_id
    rng = np.random.default_rng(11)
    for k in range(2):
        image = Image.fromarray(rng.integers(0, 256, (23 + 17 * k, 41, 3), dtype=np.uint8))
        pixels = np.asarray(image.resize((side, side), Image.BICUBIC), dtype=np.float64) / 255.0
        pixels = torch.tensor(((pixels - MEAN) / STD).transpose(2, 0, 1)[None], dtype=torch.float32)
        with torch.no_grad():
            feats = reference.model.get_image_features(pixel_values=pixels).pooler_output[0]
            ids = [*tokenizer("USER: ")["input_ids"], *[image_id] * feats.shape[0],
                   *tokenizer(f"\n{question}\nASSISTANT:", add_special_tokens=False)["input_ids"]]
            embeds = reference.get_input_embeddings()(torch.tensor(ids))
            embeds[torch.tensor(ids) == image_id] = feats
            embeds, expected = embeds[None], []
            for _ in range(10):
                token = int(reference(inputs_embeds=embeds).logits[0, -1].argmax())
                expected.append(token)
                if token == tokenizer.eos_token_id:
                    break
                embeds = torch.cat([embeds, reference.get_input_embeddings()(torch.tensor([[token]]))], dim=1)
        [(got, _)] = generate_plain(loaded.model, loaded.processor, config, [image], [question],
                                    segmenter.backend.render, 10)
        assert got == expected
        fast = segmenter.backend.decoder.generate_ids([image], [question], mode="fast-unconstrained",
                                                      max_new_tokens=10)
        assert fast[0][0] == expected
    # the LoRA is live: the merged reference differs from the bare base
    bare = LlavaForConditionalGeneration.from_pretrained(str(tiny_model_dir), dtype=torch.float32).state_dict()
    assert not torch.equal(bare["model.language_model.layers.0.self_attn.q_proj.weight"],
                           state["model.language_model.layers.0.self_attn.q_proj.weight"])


def test_lora_form_checkpoint_merges_onto_its_base(original, tmp_path):
    """The LoRA form of an official checkpoint (peft adapter on vicuna + non_lora_trainables.bin) with --base:
    every target weight is base + alpha/r B A, the projector comes from non_lora_trainables.bin, the rest is the
    base's."""
    from safetensors.torch import load_file, save_file

    from text4seg.modeling.convert import convert_text4seg_llava

    ckpt, tower, weights, _ = original
    base = tmp_path / "vicuna-tiny"
    base.mkdir()
    for name in ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"):
        (base / name).write_bytes((ckpt / name).read_bytes())
    lm = {k: v for k, v in weights.items() if not k.startswith(("model.mm_", "model.vision_tower"))}
    config = json.loads((ckpt / "config.json").read_text())
    (base / "config.json").write_text(json.dumps({k: v for k, v in config.items() if not k.startswith("mm_")}
                                                 | {"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    save_file(lm, str(base / "model.safetensors"))

    lora = tmp_path / "text4seg-llava-tiny-lora-p24"
    lora.mkdir()
    for name in ("config.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"):
        (lora / name).write_bytes((ckpt / name).read_bytes())
    torch.manual_seed(3)
    r, alpha, hidden, inter = 8, 16, LLAMA["hidden_size"], LLAMA["intermediate_size"]
    shapes = {"self_attn.q_proj": (hidden, hidden), "self_attn.v_proj": (hidden, hidden),
              "mlp.gate_proj": (inter, hidden), "mlp.down_proj": (hidden, inter)}
    adapter = {}
    for layer in range(LLAMA["num_hidden_layers"]):
        for module, (rows, cols) in shapes.items():
            key = f"base_model.model.model.layers.{layer}.{module}"
            adapter[f"{key}.lora_A.weight"] = torch.randn(r, cols) * 0.1
            adapter[f"{key}.lora_B.weight"] = torch.randn(rows, r) * 0.1
    save_file(adapter, str(lora / "adapter_model.safetensors"))
    (lora / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "r": r, "lora_alpha": alpha, "target_modules": ["q_proj", "v_proj", "gate_proj",
                                                                             "down_proj"],
        "base_model_name_or_path": "lmsys/vicuna-7b-v1.5"}))
    projector = {f"base_model.model.model.mm_projector.{i}.{p}": torch.randn(*shape) * 0.2
                 for i, shapes_ in ((0, {"weight": (64, 32), "bias": (64,)}), (2, {"weight": (64, 64), "bias": (64,)}))
                 for p, shape in shapes_.items()}
    torch.save(projector, lora / "non_lora_trainables.bin")

    with pytest.raises(ValueError, match="pass --base"):
        convert_text4seg_llava(lora, tmp_path / "nobase", vision_tower=tower)
    out = convert_text4seg_llava(lora, tmp_path / "merged", vision_tower=tower, base=base)
    merged = load_file(str(out / "model.safetensors"))
    assert json.loads((out / "text4seg_config.json").read_text())["grid"] == [24, 24]

    def stored(key: str) -> torch.Tensor:  # the converted file's name of an original key
        if key.startswith("model.mm_projector."):
            index, leaf = key.split(".")[2:4]
            return merged[f"multi_modal_projector.linear_{1 if index == '0' else 2}.{leaf}"]
        if key == "lm_head.weight":
            return merged["language_model.lm_head.weight"][: lm[key].shape[0]]
        name = "language_model." + key
        return merged[name][: lm[key].shape[0]] if key.endswith("embed_tokens.weight") else merged[name]

    for layer in range(LLAMA["num_hidden_layers"]):
        for module in shapes:
            key = f"model.layers.{layer}.{module}.weight"
            a, b = (adapter[f"base_model.model.{key[:-len('.weight')]}.lora_{x}.weight"] for x in "AB")
            assert torch.allclose(stored(key), lm[key] + (alpha / r) * b @ a, atol=1e-6, rtol=0)
            assert not torch.equal(stored(key), lm[key])
    for key in ("model.layers.0.self_attn.k_proj.weight", "model.layers.1.mlp.up_proj.weight", "model.norm.weight",
                "lm_head.weight", "model.embed_tokens.weight"):
        assert torch.equal(stored(key), lm[key])  # not targeted: the base's own
    for key, value in projector.items():
        assert torch.equal(stored(key.replace("base_model.model.", "")), value)
