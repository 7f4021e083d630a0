"""Training on grounded-caption (GCG) items: they are ordinary conversations, so the collator trains exactly the
answer (marked caption + descriptor labelled by its phrases) and one tiny training step runs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from text4seg.grounded import decode_grounded, grounded_answer
from text4seg.prompts import conversation_item, gcg_question


def _gcg_item(root):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)).save(root / "img.png")
    grid = np.full((8, 8), "others", dtype=object)
    grid[1:4, 1:3] = "man"
    grid[5:8, 4:8] = "tennis racket"
    answer = grounded_answer("A man holds a tennis racket.", [(2, 5), (14, 27)], grid, rle=False)
    item = conversation_item("gcg_0", "img.png", 24, 40, [(gcg_question(), answer)])
    path = root / "gcg.json"
    path.write_text(json.dumps([item]))
    return path, answer


def test_gcg_item_trains_only_its_answer(tmp_path, tiny_model_dir):
    from text4seg.modeling import load_model
    from text4seg.training import Text4SegDataset

    loaded = load_model(tiny_model_dir, device="cpu")
    path, answer = _gcg_item(tmp_path)
    out = Text4SegDataset([path], loaded.processor, loaded.config, image_root=tmp_path)[0]
    tok = loaded.processor.tokenizer
    labels = out["labels"].tolist()
    trained = [t for t in labels if t != -100]
    assert tok.decode(trained) == answer + "</s>\n"
    first = labels.index(trained[0])
    assert all(t == -100 for t in labels[:first]) and labels[first:] == out["input_ids"].tolist()[first:]
    got = decode_grounded(tok.decode(trained[:-2]), 8, 8)
    assert got.repairs == [] and [(p.label, p.cells) for p in got.phrases] == [("man", 6), ("tennis racket", 12)]


@pytest.mark.slow
def test_one_training_step_on_a_gcg_item(tmp_path, copy_model_dir):
    from text4seg.training import train

    path, _ = _gcg_item(tmp_path)
    result = train(model=str(copy_model_dir()), data=[str(path)], out=tmp_path / "run", data_root=tmp_path,
                   full=True, max_steps=1, batch_size=1, lr=1e-3, save_steps=10, logging_steps=1, precision="fp32",
                   progress=False)
    assert result.global_step == 1
    losses = [e["loss"] for e in result.log_history if "loss" in e]
    assert len(losses) == 1 and math.isfinite(losses[0]) and losses[0] > 0
