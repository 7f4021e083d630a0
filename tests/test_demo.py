"""The demo's request handler in plain Python: masks equal Segmenter's (tiny model), the CLI's messages for bad
uploads, the upload and pixel limits, query parsing, semantic legends, SAM refinement through SamRefiner, the
downloads (mask PNG, COCO-RLE JSON as ``text4seg segment --json``), the bundled examples, the command's options
and public-bind warnings."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from text4seg.config import Text4SegConfig
from text4seg.decoding import GeneratedText
from text4seg.demo import (
    DEMO_ASSETS,
    PALETTE,
    DemoHandler,
    DemoOptions,
    examples,
    grid_picture,
    load_demo,
    write_demo_assets,
)
from text4seg.descriptors import encode_descriptor
from text4seg.options import LoadOptions
from text4seg.segmenter import Segmenter

EXAMPLE = DEMO_ASSETS / "example_0.png"
CONFIG = Text4SegConfig(grid=(4, 4), descriptor_form="plain", question_template="Find {expression} now.",
                        fg_label="target")


class StubBackend:
    """Answers every prompt with ``answer`` (a fixed descriptor)."""

    decoding = "fast"

    def __init__(self, answer: str) -> None:
        self.answer = answer

    def generate(self, image, prompts):
        return [GeneratedText(text=self.answer, tokens=5, forward_passes=3, seconds=0.25) for _ in prompts]


def _answer(cells) -> str:
    grid = np.array([[cells(i, j) for j in range(4)] for i in range(4)], dtype=object)
    return "Here it is.\n<seg>" + encode_descriptor(grid, rle=False) + "</seg>"


TOP_LEFT = _answer(lambda i, j: "target" if i < 2 and j < 2 else "others")


def _stub_handler(tmp_path, answer=TOP_LEFT, **options) -> DemoHandler:
    return DemoHandler(Segmenter(StubBackend(answer), CONFIG), DemoOptions(**options), model="stub",
                       workdir=tmp_path / "work")


def _decode_rle(rle: dict) -> np.ndarray:
    from pycocotools import mask as mask_utils

    return mask_utils.decode(dict(rle, counts=rle["counts"].encode())).astype(bool)


def _png_header_only(path, width: int, height: int) -> None:
    """A PNG whose header claims width x height (a decompression bomb's shape) with almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
                     + chunk(b"IEND", b""))


# ------------------------------------------------------------------------------------------- tiny model


@pytest.fixture(scope="module")
def tiny_handler(tiny_model_dir, tmp_path_factory):
    handler = load_demo(tiny_model_dir, load=LoadOptions(device="cpu"),
                        options=DemoOptions(), decoding="fast")
    handler.workdir = tmp_path_factory.mktemp("demo_work")
    yield handler
    handler.close()


@pytest.mark.slow
def test_handler_masks_equal_segmenter_on_the_same_input(tiny_model_dir, tiny_handler):
    queries = ["the red square", "the circle"]
    reference = Segmenter.from_pretrained(tiny_model_dir, load=LoadOptions(device="cpu"), decoding="fast")
    expected = reference.segment(EXAMPLE, queries)
    result = tiny_handler.segment(str(EXAMPLE), "referring", "the red square\n\n  the circle  \n", "fast")
    assert [r["query"] for r in result.report["results"]] == queries
    assert len(result.masks) == 2 and any(m.any() for m in result.masks)
    for mask, ref in zip(result.masks, expected):
        assert mask.dtype == bool and np.array_equal(mask, ref.mask)
    # the downloads: the mask PNGs (0/255) and the JSON of `text4seg segment --json`
    names = [p.name for p in result.files]
    assert names == ["mask_0.png", "mask_1.png", "segment.json"]
    for path, ref in zip(result.files, expected):
        assert np.array_equal(np.asarray(Image.open(path)) > 0, ref.mask)
    report = json.loads(result.files[-1].read_text())
    assert report == result.report
    assert report["image"] == "example_0.png" and report["size"] == [128, 128] and report["grid"] == [8, 8]
    assert report["mode"] == "referring" and report["decoding"] == "fast"
    for entry, ref in zip(report["results"], expected):
        assert np.array_equal(_decode_rle(entry["rle"]), ref.mask)
        assert entry["text"] == ref.text and entry["tokens"] == ref.tokens
        assert entry["forward_passes"] == ref.forward_passes and entry["repairs"] == ref.repairs
    assert result.descriptor.startswith(f"query: the red square\n{expected[0].text.rstrip()}")
    assert [name for name, _, _ in result.legend] == queries
    assert [colour for _, colour, _ in result.legend] == [PALETTE[0], PALETTE[1]]
    tokens = sum(r.tokens for r in expected)
    assert "grid 8x8, 2 answers" in result.summary and f"{tokens} tokens" in result.summary
    # the overlay blends each mask in its colour and leaves the rest untouched
    original = np.asarray(Image.open(EXAMPLE).convert("RGB"))
    overlay = np.asarray(result.overlay)
    untouched = ~(result.masks[0] | result.masks[1])
    assert np.array_equal(overlay[untouched], original[untouched])
    only_first = result.masks[0] & ~result.masks[1]
    blended = np.rint(0.5 * original[only_first] + 0.5 * np.array(PALETTE[0])).astype(np.uint8)
    assert np.array_equal(overlay[only_first], blended)


def test_decoding_mode_per_request_shares_the_model(tiny_handler):
    assert tiny_handler.decoding == "fast"
    assert tiny_handler.decoding_modes == ("plain", "constrained", "fast", "fast-unconstrained")
    plain = tiny_handler.segmenter_for("plain")
    assert plain.backend.decoding == "plain" and plain.backend.model is tiny_handler.segmenter.backend.model
    assert tiny_handler.segmenter_for("plain") is plain  # built once
    assert tiny_handler.segmenter_for("fast") is tiny_handler.segmenter
    with pytest.raises(ValueError, match="decoding 'greedy': expected one of plain, constrained"):
        tiny_handler.segmenter_for("greedy")


def test_corrupt_upload_gets_the_cli_message(tiny_model_dir, tmp_path, capsys):
    from text4seg.cli import main

    handler = _stub_handler(tmp_path)
    cases = {"notes.png": b"this is not an image", "half.png": EXAMPLE.read_bytes()[:600]}
    for name, data in cases.items():
        path = tmp_path / "upload" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        status, *outputs = handler.respond(str(path), "referring", "the red square", "fast")
        assert main(["segment", str(path), "the red square", "--model", str(tiny_model_dir)]) == 1
        cli = capsys.readouterr().err.strip()
        assert cli.startswith(f"text4seg segment: error: {path}: ")
        page = cli.removeprefix("text4seg segment: ").replace(str(path), name)
        assert 't4s-error' in status and page.replace("'", "&#x27;") in status
        assert outputs == [None, "", "", None, "", None]
    assert "not a readable image (UnidentifiedImageError" in handler.respond(
        str(tmp_path / "upload" / "notes.png"), "referring", "x", None)[0]
    assert "corrupt or truncated image data" in handler.respond(
        str(tmp_path / "upload" / "half.png"), "referring", "x", None)[0]
    preview, status = handler.preview(str(tmp_path / "upload" / "notes.png"))
    assert preview is None and "error: notes.png: not a readable image" in status


def test_pixel_limit_is_checked_before_decoding(tmp_path):
    handler = _stub_handler(tmp_path, max_pixels=10_000)
    with pytest.raises(ValueError, match=r"^example_0.png: 128x128 = 16384 pixels exceeds the limit of 10000"):
        handler.segment(str(EXAMPLE), "referring", "the red square")
    bomb = tmp_path / "bomb.png"
    _png_header_only(bomb, 10_000, 10_000)  # 100 megapixels claimed by a file of a few bytes
    status = _stub_handler(tmp_path).respond(str(bomb), "referring", "x", None)[0]
    assert "error: bomb.png: 10000x10000 = 100000000 pixels exceeds the limit of 25000000" in status
    _png_header_only(bomb, 40_000, 40_000)  # beyond PIL's own decompression-bomb guard
    status = _stub_handler(tmp_path).respond(str(bomb), "referring", "x", None)[0]
    assert "error: bomb.png: image is larger than PIL&#x27;s decompression-bomb limit" in status


def test_upload_size_limit_and_missing_file(tmp_path):
    handler = _stub_handler(tmp_path, max_upload_mb=0.01)
    size = EXAMPLE.stat().st_size / 2**20
    with pytest.raises(ValueError, match=rf"^example_0.png: {size:.1f} MB exceeds the upload limit of 0.01 MB$"):
        handler.load_upload(EXAMPLE)
    with pytest.raises(ValueError, match="no image: upload one or pick an example"):
        handler.load_upload(None)
    with pytest.raises(FileNotFoundError, match="image file not found: gone.png"):
        handler.load_upload(tmp_path / "gone.png")


def test_queries_one_per_line(tmp_path):
    handler = _stub_handler(tmp_path, max_queries=2)
    assert handler.parse_queries("referring", " a \n\n b\n") == ["a", "b"]
    assert handler.parse_queries("classes", "sky, road\ncar") == ["sky", "road", "car"]
    assert handler.parse_queries("instruction", "What keeps the rain off?") == ["What keeps the rain off?"]
    with pytest.raises(ValueError, match=r"no query: type a referring expression \(one per line\)"):
        handler.parse_queries("referring", " \n ")
    with pytest.raises(ValueError, match="3 queries: at most 2 per request"):
        handler.parse_queries("referring", "a\nb\nc")
    with pytest.raises(ValueError, match="mode 'panoptic': expected one of referring, instruction, classes, caption"):
        handler.parse_queries("panoptic", "a")


def test_instruction_mode_sends_each_line_as_is(tmp_path):
    prompts = []

    class Recording(StubBackend):
        def generate(self, image, batch):
            prompts.extend(batch)
            return super().generate(image, batch)

    handler = DemoHandler(Segmenter(Recording(TOP_LEFT), CONFIG), model="stub", workdir=tmp_path)
    result = handler.segment(str(EXAMPLE), "instruction", "What holds water?\nWhat is red?")
    assert prompts == ["What holds water?", "What is red?"]
    expected = np.zeros((128, 128), dtype=bool)
    expected[:64, :64] = True
    assert all(np.array_equal(m, expected) for m in result.masks)
    assert [p.name for p in result.files] == ["mask_0.png", "mask_1.png", "segment.json"]


def test_classes_mode_colours_each_class_with_a_legend(tmp_path):
    answer = _answer(lambda i, j: "sky" if i < 2 else ("road" if j < 2 else "others"))
    handler = _stub_handler(tmp_path, answer=answer)
    result = handler.segment(str(EXAMPLE), "classes", "sky\nroad, car")
    (label_map,) = result.masks
    assert label_map.dtype == np.int64
    expected = np.full((128, 128), 255, dtype=np.int64)
    expected[:64] = 0
    expected[64:, :64] = 1
    assert np.array_equal(label_map, expected)
    assert result.legend == [("sky", PALETTE[0], 0.5), ("road", PALETTE[1], 0.25), ("car", PALETTE[2], 0.0)]
    (entry,) = result.report["results"]
    assert entry["query"] == "sky, road, car" and entry["class_ids"] == [0, 1, 255]
    assert np.array_equal(_decode_rle(entry["rle"]["1"]), expected == 1)
    assert np.array_equal(np.asarray(Image.open(result.files[0])), expected.astype(np.uint8))
    # the grid picture: a 4x4 grid at 24 px cells, sky cells in the first colour
    assert result.grid.size == (96, 96)
    assert result.grid.getpixel((12, 12)) == PALETTE[0] and result.grid.getpixel((12, 84)) == PALETTE[1]


class StubPredictor:
    """SamPredictor's interface: always predicts the bottom-right quarter."""

    def __init__(self) -> None:
        self.images = 0

    def set_image(self, image):
        self.images += 1
        self.shape = image.shape[:2]

    def predict(self, point_coords=None, point_labels=None, box=None, mask_input=None, multimask_output=True):
        h, w = self.shape
        mask = np.zeros((h, w), dtype=bool)
        mask[h // 2:, w // 2:] = True
        return mask[None], np.array([0.875]), np.zeros((1, 256, 256), dtype=np.float32)


def test_sam_refinement_through_sam_refiner(tmp_path):
    from text4seg.refine import SamRefiner

    predictor = StubPredictor()
    handler = DemoHandler(Segmenter(StubBackend(TOP_LEFT), CONFIG), refiner=SamRefiner(predictor=predictor),
                          workdir=tmp_path)
    result = handler.segment(str(EXAMPLE), "referring", "the red square", refine=True)
    expected = np.zeros((128, 128), dtype=bool)
    expected[64:, 64:] = True
    assert np.array_equal(result.masks[0], expected) and predictor.images == 1
    (entry,) = result.report["results"]
    assert entry["refined"] is True and entry["sam_score"] == 0.875
    assert np.array_equal(_decode_rle(entry["rle"]), expected) and entry["foreground_share"] == 0.25
    assert result.summary.endswith("refined with SAM")
    without = _stub_handler(tmp_path)
    assert ("error: SAM refinement: start the demo with --sam-checkpoint FILE to offer it"
            in without.respond(str(EXAMPLE), "referring", "x", None, True)[0])


def test_unexpected_failures_are_a_line_in_the_page_not_a_traceback(tmp_path, caplog):
    class Broken(StubBackend):
        def generate(self, image, prompts):
            raise RuntimeError("CUDA out of memory")

    handler = DemoHandler(Segmenter(Broken(TOP_LEFT), CONFIG), workdir=tmp_path)
    status = handler.respond(str(EXAMPLE), "referring", "x", None)[0]
    assert "error: the request failed (RuntimeError); the server log has the details" in status
    assert "Traceback" not in status and "CUDA out of memory" in caplog.text


def test_responses_escape_model_output_and_queries(tmp_path):
    handler = _stub_handler(tmp_path)
    status, _, legend, descriptor, _, details, files = handler.respond(str(EXAMPLE), "referring",
                                                                       "<b>bold</b>", None)
    assert "<b>" not in legend and "&lt;b&gt;bold&lt;/b&gt;" in legend and "&lt;b&gt;" in details
    assert descriptor.startswith("query: <b>bold</b>\n")  # a textbox: shown as typed
    assert [f.rsplit("/", 1)[1] for f in files] == ["mask.png", "segment.json"]


def test_grid_picture_panels():
    a = np.array([["t", "others", "t"], ["others", "others", "t"]], dtype=object)
    picture = grid_picture([a, a], [{"t": (1, 2, 3)}, {}], cell=10, gap=5)
    assert picture.size == (65, 20)
    assert picture.getpixel((5, 5)) == (1, 2, 3) and picture.getpixel((15, 5)) == (40, 40, 40)
    assert picture.getpixel((32, 5)) == (255, 255, 255)  # the gap
    assert picture.getpixel((40, 5)) == (40, 40, 40)  # second panel: no colours


def test_bundled_examples_are_synthetic_images(tmp_path):
    bundled = examples()
    assert [(p.name, mode) for p, mode, _ in bundled] == [("example_0.png", "referring"),
                                                          ("example_1.png", "referring")]
    entries = write_demo_assets(tmp_path)
    assert [e["text"] for e in entries] == [text for _, _, text in bundled]
    for path, _, _ in bundled:
        assert path.stat().st_size < 40_000
        assert np.array_equal(np.asarray(Image.open(path)), np.asarray(Image.open(tmp_path / path.name)))


def test_options_validate_and_warn_on_public_binds():
    assert DemoOptions().warnings() == [] and not DemoOptions().public
    assert DemoOptions(host="localhost").warnings() == []
    (line,) = DemoOptions(host="0.0.0.0", port=8080).warnings()
    assert line.startswith("serving on 0.0.0.0:8080: anyone who can reach this machine can run the model")
    (line,) = DemoOptions(share=True).warnings()
    assert line.startswith("--share: a public gradio.live link") and DemoOptions(share=True).public
    with pytest.raises(ValueError, match="port 70000: expected 0..65535"):
        DemoOptions(port=70000)
    with pytest.raises(ValueError, match="max_pixels 0: expected an integer >= 1"):
        DemoOptions(max_pixels=0)


def test_demo_command_passes_its_options(monkeypatch, capsys):
    import text4seg.demo as demo_module
    from text4seg.cli import main

    seen = {}

    def fake_load(model, adapter=None, **kw):
        seen.update(kw, model=model, adapter=adapter)
        return "handler"

    monkeypatch.setattr(demo_module, "load_demo", fake_load)
    monkeypatch.setattr(demo_module, "serve", lambda handler, options: seen.update(served=(handler, options)))
    assert main(["demo", "--model", "m", "--adapter", "a", "--device", "cpu", "--decoding", "plain",
                 "--port", "8123", "--max-pixels", "1000", "--question-index", "1"]) == 0
    assert seen["model"] == "m" and seen["adapter"] == "a" and seen["load"].device == "cpu"
    assert seen["decoding"].decoding == "plain"
    options = seen["options"]
    assert (options.host, options.port, options.max_pixels, options.share) == ("127.0.0.1", 8123, 1000, False)
    assert seen["served"] == ("handler", options)
    from text4seg.prompts import REFERRING_QUESTIONS

    assert seen["question_template"] == REFERRING_QUESTIONS[1]
    assert main(["demo", "--model", "m", "--port", "99999"]) == 1
    assert "text4seg demo: error: port 99999: expected 0..65535" in capsys.readouterr().err


GROUNDED = ("A <p>cat</p> on a <p>mat</p>.\n<seg>cat| cat| others| others\n cat| cat| others| others\n"
            " mat| mat| mat| mat\n others| others| others| others\n</seg>")


def test_caption_mode_grounds_each_phrase(tmp_path):
    prompts = []

    class Recording(StubBackend):
        def generate(self, image, batch):
            prompts.extend(batch)
            return super().generate(image, batch)

    handler = DemoHandler(Segmenter(Recording(GROUNDED), CONFIG), model="stub", workdir=tmp_path)
    result = handler.segment(str(EXAMPLE), "caption", "")
    from text4seg.prompts import gcg_question

    assert prompts == [gcg_question()]
    cat, mat = result.masks
    assert cat[:64, :64].all() and cat.sum() == 64 * 64
    assert mat[64:96].all() and mat.sum() == 32 * 128
    assert result.legend == [("cat", PALETTE[0], 0.25), ("mat", PALETTE[1], 0.25)]
    assert result.descriptor.startswith("caption: A <p>cat</p> on a <p>mat</p>.\n\nA <p>cat</p>")
    assert [p.name for p in result.files] == ["mask_0.png", "mask_1.png", "segment.json"]
    assert np.array_equal(np.asarray(Image.open(result.files[1])) > 0, mat)
    (entry,) = result.report["results"]
    assert entry["caption"] == "A cat on a mat." and [p["mask_png"] for p in entry["phrases"]] == ["mask_0.png",
                                                                                                 "mask_1.png"]
    assert np.array_equal(_decode_rle(entry["phrases"][0]["rle"]), cat)
    assert "caption with 2 grounded phrases (no repairs)" in result.summary
    assert result.grid.getpixel((12, 12)) == PALETTE[0] and result.grid.getpixel((12, 60)) == PALETTE[1]
    handler.segment(str(EXAMPLE), "caption", "Describe it\nbriefly.")
    assert prompts[-1] == "Describe it briefly."
    handler.refiner = object()  # a refiner is loaded, yet captions are not refined
    status, *_ = handler.respond(str(EXAMPLE), "caption", "", None, True)
    assert "SAM refinement applies to referring, instruction and classes requests" in status
