"""Descriptor confidence: the teacher-forced mean log-probability of the descriptor tokens."""

from __future__ import annotations

import math

import pytest
import torch


@pytest.mark.slow
def test_confidence_is_the_mean_logprob_of_the_descriptor_tokens(tiny_model_dir, tiny_data):
    from text4seg.decoding import HFGenerationBackend
    from text4seg.decoding.hf import encode_inputs
    from text4seg.images import load_image
    from text4seg.modeling import load_model

    loaded = load_model(tiny_model_dir, device="cpu")
    backend = HFGenerationBackend(loaded.model, loaded.processor, loaded.config, decoding="plain", max_new_tokens=40)
    image = load_image(tiny_data.root / tiny_data.samples[0].image)
    prompt = loaded.config.question_template.format(expression="the red circle")
    answer = backend.generate_batch([image], [prompt])[0].text
    answer = answer if "<seg>" in answer else "Here is the mask.\n<seg>others *8\n</seg>"
    (score,) = backend.confidence([image], [prompt], [answer])
    # independent: score every answer token one by one with growing prefixes, keep those inside <seg>...</seg>
    tok = loaded.processor.tokenizer
    enc = tok(answer, add_special_tokens=False, return_offsets_mapping=True)
    start, end = answer.index("<seg>") + 5, answer.find("</seg>") if "</seg>" in answer else len(answer)
    inputs = encode_inputs(loaded.model, loaded.processor, loaded.config, [image], [prompt], backend.render)
    total, count = 0.0, 0
    with torch.inference_mode():
        for k, (a, b) in enumerate(enc["offset_mapping"]):
            ids = torch.tensor([enc["input_ids"][:k]], dtype=torch.long)
            step = dict(inputs, input_ids=torch.cat([inputs["input_ids"], ids], 1),
                        attention_mask=torch.ones(1, inputs["input_ids"].shape[1] + k, dtype=torch.long))
            logits = loaded.model(**step).logits[0, -1].float()
            if a < end and b > start:
                total += float(torch.log_softmax(logits, -1)[enc["input_ids"][k]])
                count += 1
    assert count > 0 and score == pytest.approx(total / count, abs=1e-4)
    assert score <= 0 and math.isfinite(score)
    assert backend.confidence([image], [prompt], ["no descriptor here"]) == [None]
    with pytest.raises(ValueError, match="1 images, 1 prompts, 2 answers"):
        backend.confidence([image], [prompt], ["a", "b"])
