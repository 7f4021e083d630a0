"""Inference: Segmenter with a stub backend (exact masks), odd and corrupt images, the HF backend on the tiny
model (batching, budgets), and the ``text4seg segment`` command (PNGs, overlay, JSON with COCO RLE)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from text4seg.config import Text4SegConfig
from text4seg.decoding import GeneratedText, HFGenerationBackend
from text4seg.descriptors import encode_descriptor
from text4seg.segmenter import SegmentationResult, Segmenter

CONFIG = Text4SegConfig(grid=(4, 4), descriptor_form="plain", question_template="Find {expression} now.",
                        fg_label="target")


class StubBackend:
    """Returns queued answers (or one fixed answer) and records the prompts it was asked."""

    def __init__(self, answers):
        self.answers = answers
        self.prompts: list[str] = []
        self.sizes: list[tuple[int, int]] = []

    def generate(self, image, prompts):
        self.prompts.extend(prompts)
        self.sizes.extend([image.size] * len(prompts))
        out = []
        for _ in prompts:
            text = self.answers.pop(0) if isinstance(self.answers, list) else self.answers
            out.append(GeneratedText(text=text, tokens=len(text), forward_passes=7, seconds=0.5))
        return out


def _answer(fg) -> str:
    grid = np.array([["target" if fg(i, j) else "others" for j in range(4)] for i in range(4)], dtype=object)
    return "Here is the mask.\n<seg>" + encode_descriptor(grid, rle=False) + "</seg>"


TOP_LEFT = _answer(lambda i, j: i < 2 and j < 2)


def test_referring_mask_at_original_size():
    backend = StubBackend(TOP_LEFT)
    seg = Segmenter(backend, CONFIG)
    image = np.zeros((24, 40, 3), dtype=np.uint8)
    res = seg.segment(image, "the red circle")
    assert isinstance(res, SegmentationResult)
    assert backend.prompts == ["Find the red circle now."]
    assert res.mask.shape == (24, 40) and res.mask.dtype == bool
    expected = np.zeros((24, 40), dtype=bool)
    expected[:12, :20] = True
    assert np.array_equal(res.mask, expected)
    assert res.grid.shape == (4, 4) and res.grid[0, 0] == "target" and res.grid[3, 3] == "others"
    assert res.repairs == [] and res.form == "plain" and res.text == TOP_LEFT
    assert (res.tokens, res.forward_passes, res.seconds) == (len(TOP_LEFT), 7, 0.5)
    assert res.foreground_share == pytest.approx(0.25)
    assert res.prompt == "Find the red circle now."


def test_several_queries_and_smooth_upsampling():
    backend = StubBackend([TOP_LEFT, _answer(lambda i, j: True)])
    seg = Segmenter(backend, CONFIG)
    results = seg.segment(Image.new("RGB", (8, 8)), ["a", "b"], upsample="smooth")
    assert [r.query for r in results] == ["a", "b"]
    assert backend.prompts == ["Find a now.", "Find b now."]
    assert results[1].mask.all()  # a full-image target is a full mask, not empty
    assert results[0].mask[:4, :4].all() and not results[0].mask[4:, :].any()
    with pytest.raises(ValueError, match="upsample"):
        seg.segment(Image.new("RGB", (8, 8)), "a", upsample="cubic")


def test_instruction_is_sent_as_is():
    backend = StubBackend(TOP_LEFT)
    seg = Segmenter(backend, CONFIG)
    res = seg.segment(Image.new("RGB", (4, 4)), instruction="What would a driver hold on to?")
    assert backend.prompts == ["What would a driver hold on to?"]
    assert res.query == "What would a driver hold on to?" and res.mask.sum() == 4


def test_semantic_prompt_gives_label_map():
    from text4seg.prompts import semantic_question

    rows = ["cat| cat| dog| dog\n", "cat| cat| dog| dog\n", "others| others| tree| tree\n", "others| x| x| x\n"]
    text = "<seg>" + " ".join(rows) + "</seg>"
    backend = StubBackend(text)
    seg = Segmenter(backend, CONFIG)
    res = seg.segment(Image.new("RGB", (8, 8)), classes=["others", "cat", "Dog"])
    assert backend.prompts == [semantic_question(["others", "cat", "Dog"], family="all", template=0)]
    assert res.mask.dtype == np.int64 and res.mask.shape == (8, 8)
    assert res.mask[0, 0] == 1 and res.mask[0, 7] == 2 and res.mask[5, 0] == 0
    assert res.mask[5, 7] == 255 and res.mask[7, 7] == 255  # unknown labels
    assert res.repairs == ["unknown class 'tree': id 255", "unknown class 'x': id 255"]
    custom = Segmenter(backend, Text4SegConfig(semantic_template="Label: {classes}."))
    custom.segment(Image.new("RGB", (8, 8)), classes=["a", "b"])
    assert backend.prompts[-1] == "Label: a, b."


@pytest.mark.parametrize(
    "answer, repaired, share",
    [
        ("I cannot see it.", ["no descriptor found: all cells 'others'"], 0.0),
        ("<seg>target| target| target| target\n others| others", None, None),
        ("<seg>" + "\x00\ufffd|*|" * 10, None, None),
        ("", ["no descriptor found: all cells 'others'"], 0.0),
    ],
)
def test_untrusted_output_never_crashes(answer, repaired, share):
    seg = Segmenter(StubBackend(answer), CONFIG)
    res = seg.segment(Image.new("RGB", (6, 5)), "x")
    assert res.mask.shape == (5, 6) and res.grid.shape == (4, 4)
    if repaired is not None:
        assert res.repairs == repaired
    else:
        assert res.repairs  # something was fixed and said so
    if share is not None:
        assert res.foreground_share == share


def test_request_validation():
    seg = Segmenter(StubBackend(TOP_LEFT), CONFIG)
    image = Image.new("RGB", (4, 4))
    with pytest.raises(ValueError, match="exactly one"):
        seg.segment(image)
    with pytest.raises(ValueError, match="exactly one"):
        seg.segment(image, "a", instruction="b")
    with pytest.raises(ValueError, match="query"):
        seg.segment(image, "  ")
    with pytest.raises(ValueError, match="classes"):
        seg.segment(image, classes=[])


# ------------------------------------------------------------------------------------------------ images


def test_odd_images_are_converted_and_corrupt_ones_named(tmp_path):
    seg = Segmenter(StubBackend(TOP_LEFT), CONFIG)
    Image.new("RGBA", (10, 6), (255, 0, 0, 0)).save(tmp_path / "rgba.png")
    Image.new("L", (10, 6)).save(tmp_path / "gray.png")
    Image.new("I;16", (10, 6)).save(tmp_path / "deep.png")
    Image.new("P", (10, 6)).save(tmp_path / "palette.png")
    Image.new("CMYK", (10, 6)).save(tmp_path / "cmyk.jpg")
    for name in ("rgba.png", "gray.png", "deep.png", "palette.png", "cmyk.jpg"):
        assert seg.segment(tmp_path / name, "x").mask.shape == (6, 10), name
    assert seg.segment(np.zeros((6, 10), dtype=np.uint8), "x").mask.shape == (6, 10)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(ValueError, match="broken.jpg"):
        seg.segment(tmp_path / "broken.jpg", "x")
    with pytest.raises(FileNotFoundError, match="absent.png"):
        seg.segment(tmp_path / "absent.png", "x")


def test_exif_orientation_gives_mask_of_the_upright_image(tmp_path):
    image = Image.new("RGB", (40, 20), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees: shown as 20 wide x 40 high
    image.save(tmp_path / "rotated.jpg", exif=exif.tobytes())
    backend = StubBackend(TOP_LEFT)
    res = Segmenter(backend, CONFIG).segment(tmp_path / "rotated.jpg", "x")
    assert res.mask.shape == (40, 20)
    assert backend.sizes == [(20, 40)]


def test_pixel_limit_refuses_huge_images(tmp_path, monkeypatch):
    import text4seg.images as images

    Image.new("RGB", (300, 300)).save(tmp_path / "big.png")
    real = images.load_image
    monkeypatch.setattr(images, "load_image", lambda src, max_pixels=images.MAX_PIXELS, **kw: real(src, 1000))
    with pytest.raises(ValueError, match="big.png"):
        Segmenter(StubBackend(TOP_LEFT), CONFIG).segment(tmp_path / "big.png", "x")


# ------------------------------------------------------------------------------------------------ HF backend


@pytest.fixture(scope="module")
def tiny_segmenter(tiny_model_dir):
    return Segmenter.from_pretrained(tiny_model_dir, device="cpu", decoding="plain", max_new_tokens=12)


def test_hf_backend_budget_and_decoding_modes(tiny_model_dir):
    from text4seg.modeling import load_model

    loaded = load_model(tiny_model_dir, device="cpu")
    backend = HFGenerationBackend(loaded.model, loaded.processor, loaded.config)
    assert backend.budget(["Segment x."]) == 8 * 8 * 1 + 64  # one token per cell
    rle = HFGenerationBackend(loaded.model, loaded.processor, Text4SegConfig(grid=8, descriptor_form="rle"))
    assert rle.budget(["x"]) == 8 * 6 * max(rle._cost("others *8| "), rle._cost("x *8| ")) + 64
    assert HFGenerationBackend(loaded.model, loaded.processor, loaded.config, max_new_tokens=5).budget([]) == 5
    for mode in ("plain", "constrained", "fast"):
        assert HFGenerationBackend(loaded.model, loaded.processor, loaded.config, decoding=mode).decoding == mode
    with pytest.raises(ValueError, match="decoding"):
        HFGenerationBackend(loaded.model, loaded.processor, loaded.config, decoding="beam")
    assert backend.render("Segment x.") == "<s>USER: Segment x.<image>\nASSISTANT: "


@pytest.mark.slow
def test_hf_backend_batches_with_left_padding(tiny_segmenter, tiny_data):
    sample = tiny_data.samples[0]
    path = tiny_data.root / sample.image
    queries = ["the red circle", "a much longer expression about the blue square on the left"]
    batched = tiny_segmenter.segment(path, queries)
    single = [tiny_segmenter.segment(path, q) for q in queries]
    assert [r.text for r in batched] == [r.text for r in single]
    assert all(r.tokens <= 12 and r.forward_passes <= 12 for r in batched)
    assert all(r.mask.shape == (sample.height, sample.width) for r in batched)
    other = tiny_data.root / tiny_data.samples[-1].image
    many = tiny_segmenter.segment_many([(path, queries), (other, "the circle")])
    assert [len(r) for r in many] == [2, 1]
    assert [r.text for r in many[0]] == [r.text for r in single]


@pytest.mark.slow
def test_segment_command_writes_masks_and_json(tiny_model_dir, tiny_data, tmp_path, capsys, monkeypatch):
    from pycocotools import mask as mask_utils

    from text4seg.cli import main

    monkeypatch.chdir(tmp_path)  # default output names (mask.png, overlay.png) land here, never in the repo

    sample = tiny_data.samples[0]
    image = str(tiny_data.root / sample.image)
    code = main(["segment", image, "the red circle", "--query", "the square", "--model", str(tiny_model_dir),
                 "--out", str(tmp_path / "m.png"), "--overlay", str(tmp_path / "o.png"), "--max-new-tokens", "8",
                 "--device", "cpu"])
    assert code == 0
    text = capsys.readouterr().out
    assert "query: the red circle" in text and "query: the square" in text and "grid 8x8" in text
    for name in ("m_0.png", "m_1.png", "o_0.png", "o_1.png"):
        assert (tmp_path / name).is_file()
    mask = np.asarray(Image.open(tmp_path / "m_0.png"))
    assert mask.shape == (sample.height, sample.width) and set(np.unique(mask)) <= {0, 255}

    code = main(["segment", image, "the red circle", "--model", str(tiny_model_dir), "--json",
                 "--out", str(tmp_path / "single.png"), "--overlay", str(tmp_path / "single_overlay.png"),
                 "--max-new-tokens", "8", "--device", "cpu"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["grid"] == [8, 8] and report["size"] == [sample.height, sample.width]
    (entry,) = report["results"]
    assert entry["mask_png"] == str(tmp_path / "single.png") and entry["query"] == "the red circle"
    rle = dict(entry["rle"], counts=entry["rle"]["counts"].encode())
    decoded = mask_utils.decode(rle).astype(bool)
    assert np.array_equal(decoded, np.asarray(Image.open(tmp_path / "single.png")) > 0)
    assert entry["foreground_share"] == pytest.approx(decoded.mean(), abs=1e-6)

    assert main(["segment", str(tmp_path / "missing.png"), "x", "--model", str(tiny_model_dir)]) == 1
    assert "missing.png" in capsys.readouterr().err
    assert main(["segment", image, "--model", str(tiny_model_dir)]) == 1


def test_coco_rle_roundtrip():
    from pycocotools import mask as mask_utils

    from text4seg.datasets.coco_masks import encode_rle as coco_rle

    mask = np.zeros((5, 7), dtype=bool)
    mask[1:3, 2:6] = True
    rle = coco_rle(mask)
    assert rle["size"] == [5, 7] and isinstance(rle["counts"], str)
    assert np.array_equal(mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}), mask)
    json.dumps(rle)
