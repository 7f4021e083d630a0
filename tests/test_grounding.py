"""Grounded captions through the inference API (text4seg.grounding): Segmenter.ground / ground_many with a stub
backend (exact masks, scores, batching), on the tiny model in every decoding mode, and ``text4seg segment
--grounded`` (caption, phrase PNGs, overlay, JSON)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from text4seg.config import Text4SegConfig
from text4seg.decoding import GeneratedText
from text4seg.grounded import GroundedAnswer, decode_grounded, grounded_answer
from text4seg.prompts import gcg_question
from text4seg.segmenter import Segmenter

CONFIG = Text4SegConfig(grid=(2, 4), descriptor_form="rle", question_template="Find {expression} now.",
                        fg_label="target")
ANSWER = grounded_answer("A man holds a tennis racket.", [(2, 5), (14, 27)],
                         np.array([["others", "man", "man", "others"],
                                   ["others", "man", "tennis racket", "tennis racket"]], dtype=object))


class StubBackend:
    """Batched answers (queued or fixed), the prompts and ``grounded=`` flags it was asked, label scores."""

    def __init__(self, answers, scores=None):
        self.answers = answers
        self.scores = scores
        self.calls: list[tuple[list[str], object]] = []
        self.scored: list[str] = []

    def generate_batch(self, images, prompts, grounded=None):
        self.calls.append((list(prompts), grounded))
        out = []
        for _ in prompts:
            text = self.answers.pop(0) if isinstance(self.answers, list) else self.answers
            out.append(GeneratedText(text=text, tokens=11, forward_passes=5, seconds=0.25))
        return out

    def label_scores(self, images, prompts, answers):
        self.scored.extend(answers)
        return [dict(self.scores or {}) for _ in answers]


def test_ground_decodes_phrases_at_the_image_size():
    backend = StubBackend(ANSWER, scores={"man": math.log(0.5), "tennis racket": math.log(0.25)})
    got = Segmenter(backend, CONFIG).ground(np.zeros((20, 40, 3), dtype=np.uint8))
    assert isinstance(got, GroundedAnswer)
    assert backend.calls == [([gcg_question()], True)]
    assert got.prompt == gcg_question() and (got.tokens, got.forward_passes, got.seconds) == (11, 5, 0.25)
    assert got.caption == "A man holds a tennis racket." and got.repairs == [] and got.text == ANSWER
    man, racket = got.phrases
    assert (man.text, man.label, man.cells, racket.cells) == ("man", "man", 3, 2)
    expected = np.zeros((20, 40), dtype=bool)
    expected[:10, 10:30] = True
    expected[10:, 10:20] = True
    assert np.array_equal(man.mask, expected)
    assert racket.mask.sum() == 10 * 20 and not (man.mask & racket.mask).any()
    assert man.score == pytest.approx(0.5) and racket.score == pytest.approx(0.25)


def test_ground_many_batches_and_scores_only_what_has_cells():
    no_cells = "Just <p>sky</p>.\n<seg>others *4\n others *4\n</seg>"
    backend = StubBackend([ANSWER, no_cells], scores={"Man": -1.0})
    images = [Image.new("RGB", (8, 4)), Image.new("RGB", (4, 6))]
    got = Segmenter(backend, CONFIG).ground_many(images, "Describe it.", upsample="smooth")
    assert backend.calls == [(["Describe it.", "Describe it."], True)]
    assert [a.caption for a in got] == ["A man holds a tennis racket.", "Just sky."]
    assert got[1].phrases[0].mask.shape == (6, 4) and not got[1].phrases[0].mask.any()
    assert backend.scored == [ANSWER]  # the second answer has no phrase with cells: no scoring pass
    # scores match labels case-insensitively; a label the scorer does not know keeps None
    assert got[0].phrases[0].score == pytest.approx(math.exp(-1.0)) and got[0].phrases[1].score is None
    assert got[1].phrases[0].score is None
    assert Segmenter(backend, CONFIG).ground_many([]) == []
    unscored = Segmenter(StubBackend(ANSWER, scores={"man": 0.0}), CONFIG).ground(images[0], score=False)
    assert all(p.score is None for p in unscored.phrases)


def test_ground_with_a_generate_only_backend_and_bad_arguments():
    class Plain:
        def __init__(self):
            self.prompts = []

        def generate(self, image, prompts):
            self.prompts.extend(prompts)
            return [GeneratedText(text="No marks.\n<seg>others *4\n others *4\n</seg>", tokens=3, forward_passes=3,
                                  seconds=0.0)]

    backend = Plain()
    got = Segmenter(backend, CONFIG).ground(Image.new("RGB", (4, 4)))
    assert backend.prompts == [gcg_question()] and got.phrases == [] and got.caption == "No marks."
    seg = Segmenter(StubBackend(ANSWER), CONFIG)
    with pytest.raises(ValueError, match="upsample"):
        seg.ground(Image.new("RGB", (4, 4)), upsample="cubic")
    with pytest.raises(ValueError, match="instruction"):
        seg.ground(Image.new("RGB", (4, 4)), "  ")
    with pytest.raises(ValueError, match="images"):
        seg.ground_many(Image.new("RGB", (4, 4)))


def test_untrusted_answers_are_repaired_not_raised():
    backend = StubBackend("A <p>dog <p>cat</p> and noise </p>\n<seg>dog *9| cat\n</seg>")
    got = Segmenter(backend, CONFIG).ground(Image.new("RGB", (4, 4)))
    assert [p.label for p in got.phrases] == ["dog", "cat"] and got.repairs


# ---------------------------------------------------------------------------------------------------- tiny model


@pytest.mark.slow
def test_ground_on_the_tiny_model_in_every_mode(tiny_gcg):
    from text4seg.decoding import HFGenerationBackend
    from text4seg.options import DecodingOptions

    config = tiny_gcg.config.__class__.from_dict({**tiny_gcg.config.to_dict(), "grid": [2, 3]})
    image = np.random.default_rng(5).integers(0, 256, (24, 36, 3), dtype=np.uint8)
    results = {}
    for mode in ("plain", "constrained", "fast"):
        options = DecodingOptions(decoding=mode, max_caption_tokens=12, max_new_tokens=40 if mode == "plain" else None)
        backend = HFGenerationBackend(tiny_gcg.model, tiny_gcg.processor, config, options)
        seg = Segmenter(backend, config)
        results[mode] = seg.ground_many([image, image], "Describe the image.")
    for mode, answers in results.items():
        for got in answers:
            assert isinstance(got, GroundedAnswer) and got.prompt == "Describe the image."
            assert got.tokens > 0 and got.forward_passes > 0 and got.grid.shape == (2, 3)
            assert all(p.mask.shape == (24, 36) for p in got.phrases)
            if mode != "plain":
                assert got.repairs == [], got.text
                assert decode_grounded(got.text, 2, 3).repairs == []
    slow, fast = results["constrained"][0], results["fast"][0]
    assert slow.text == fast.text and fast.forward_passes < slow.forward_passes
    assert slow.phrases, slow.text
    for phrase in slow.phrases:
        assert (phrase.score is None) == (phrase.cells == 0)
        assert phrase.score is None or 0.0 < phrase.score <= 1.0


@pytest.mark.slow
def test_segment_grounded_command(tiny_model_dir, tmp_path, capsys, monkeypatch):
    from pycocotools import mask as mask_utils

    from text4seg.cli import main

    monkeypatch.chdir(tmp_path)
    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (20, 28, 3), dtype=np.uint8)).save(image)
    args = ["segment", str(image), "--grounded", "--model", str(tiny_model_dir), "--device", "cpu",
            "--max-caption-tokens", "6", "--out", str(tmp_path / "out" / "gcg.png")]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (entry,) = report["results"]
    assert entry["prompt"] == gcg_question() and entry["repairs"] == []
    assert entry["overlay_png"] == str(tmp_path / "out" / "gcg_overlay.png")
    assert Image.open(entry["overlay_png"]).size == (28, 20)
    assert decode_grounded(entry["text"], 8, 8).caption == entry["caption"]
    for k, phrase in enumerate(entry["phrases"]):
        assert phrase["mask_png"] == str(tmp_path / "out" / f"gcg_{k}.png")
        mask = np.asarray(Image.open(phrase["mask_png"])) > 0
        rle = dict(phrase["rle"], counts=phrase["rle"]["counts"].encode())
        assert np.array_equal(mask_utils.decode(rle).astype(bool), mask)
    assert main([*args, "--no-overlay"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("caption: ") and "repairs: none" in text and "overlay:" not in text
    for conflict in ([*args[:2], "the dog", *args[2:]], [*args, "--classes", "sky"], [*args, "--question-index", "1"]):
        assert main(conflict) == 1
        assert "--grounded" in capsys.readouterr().err
