"""The demo's Video tab in plain Python: masks equal Segmenter.segment_video's on the same frames (tiny model,
an MP4 and a zip of PNG frames), zips extracted safely (no '..' or absolute entries, natural order, byte and
frame limits), the CLI's messages for corrupt videos, propagate through a SAM2 propagator, the timeline, the
downloads (``text4seg segment-video``'s result JSON, a masks zip) and the page's two tabs."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image
from test_video_segment import CONFIG, FakePropagator, FrameBackend, _answer, _cell_mask

from text4seg.demo import (
    SOURCE_COLOURS,
    DemoHandler,
    DemoOptions,
    extract_zip_frames,
    load_demo,
    timeline_picture,
)
from text4seg.options import DecodingOptions, LoadOptions
from text4seg.segmenter import Segmenter

H = W = 8


def _png(value: int, size=(W, H)) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size[1], size[0], 3), value, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _zip(path, entries: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def _decode_rle(rle: dict) -> np.ndarray:
    from pycocotools import mask as mask_utils

    return mask_utils.decode(dict(rle, counts=rle["counts"].encode())).astype(bool)


def _zip_masks(path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as archive:
        return {n: np.asarray(Image.open(io.BytesIO(archive.read(n)))) for n in archive.namelist()}


EVEN = {(0, 0)}
ODD = {(3, 3)}


def _stub_handler(tmp_path, propagator=None, answers=None, scores=None, **options) -> tuple[DemoHandler, FrameBackend]:
    backend = FrameBackend(answers or (lambda f: _answer(EVEN if f % 2 == 0 else ODD)), scores)
    handler = DemoHandler(Segmenter(backend, CONFIG), DemoOptions(**options), model="stub", workdir=tmp_path / "work",
                          propagator=propagator)
    return handler, backend


# ------------------------------------------------------------------------------------------- tiny model


@pytest.fixture(scope="module")
def tiny_video_handler(tiny_model_dir, tmp_path_factory):
    handler = load_demo(tiny_model_dir, load=LoadOptions(device="cpu"),
                        decoding=DecodingOptions(decoding="fast", max_new_tokens=30))
    handler.workdir = tmp_path_factory.mktemp("demo_video_work")
    yield handler
    handler.close()


@pytest.mark.slow
def test_video_masks_equal_segment_video_on_the_same_frames(tiny_model_dir, tiny_video_handler, tmp_path):
    from text4seg.video_io import read_frames, write_mp4

    reference = Segmenter.from_pretrained(tiny_model_dir, load=LoadOptions(device="cpu"), decoding="fast",
                                          max_new_tokens=30)
    rng = np.random.default_rng(4)
    frames = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(5)]
    video = write_mp4(tmp_path / "clip.mp4", frames, fps=5)
    decoded = read_frames(video)
    expected = reference.segment_video(decoded.frames, "the red circle", frame_stride=2)
    result = tiny_video_handler.segment_video(str(video), "expression", " the red  circle ", "per-frame", 2.0)
    assert result.masks.shape == (5, 32, 32) and np.array_equal(result.masks, expected.masks)
    assert result.sources == expected.sources == ["model", "nearest", "model", "nearest", "model"]
    assert [p.name for p in result.files] == ["overlay.mp4", "result.json", "masks.zip"]
    record = json.loads(result.files[1].read_text())
    assert record == result.record
    assert (record["video"], record["query"], record["frames"], record["size"]) == ("clip.mp4", "the red circle",
                                                                                    5, [32, 32])
    assert record["strategy"] == "per-frame:2" and record["keyframes"] == ["00000", "00002", "00004"]
    assert record["fps"] == pytest.approx(5.0) and record["model_calls"] == 3 and record["decoding"] == "fast"
    for k, entry in enumerate(record["per_frame"]):
        assert entry["frame"] == f"{k:05d}" and entry["mask_png"] == f"masks/{k:05d}.png"
        assert np.array_equal(_decode_rle(entry["rle"]), expected.masks[k])
        assert entry.get("text") == expected.texts.get(k)
    masks = _zip_masks(result.files[2])
    assert sorted(masks) == [f"masks/{k:05d}.png" for k in range(5)]
    for k in range(5):
        assert np.array_equal(masks[f"masks/{k:05d}.png"] > 0, expected.masks[k])
    overlay = read_frames(result.overlay)
    assert len(overlay.frames) == 5 and overlay.size == (32, 32)
    assert "5 frames 32x32 (per-frame:2): 3 model, 2 nearest; 3 model answers" in result.summary

    # a zip of PNG frames, in natural order (2 before 10), in a folder of the zip: lossless, the frames as given
    names = ["1", "2", "10"]
    archive = _zip(tmp_path / "frames.zip", {f"clip/{n}.png": _png_bytes(f) for n, f in zip(names, frames)})
    expected = reference.segment_video(frames[:3], instruction="What is red?")
    result = tiny_video_handler.segment_video(str(archive), "instruction", "What is red?", "per-frame", 1)
    assert np.array_equal(result.masks, expected.masks) and result.sources == ["model"] * 3
    assert [e["frame"] for e in result.record["per_frame"]] == names and result.record["video"] == "frames.zip"
    assert not (tiny_video_handler.workdir / "request_000002" / "frames").exists()  # extracted frames removed


def _png_bytes(frame: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG")
    return buffer.getvalue()


def test_corrupt_video_gets_the_cli_message(tiny_model_dir, tmp_path, capsys):
    from text4seg.cli import main

    handler, _ = _stub_handler(tmp_path)
    path = tmp_path / "upload" / "broken.mp4"
    path.parent.mkdir()
    path.write_bytes(b"\x00" * 100)
    status, *outputs = handler.respond_video(str(path), "expression", "the red circle", "per-frame", 1, "first",
                                             4, None)
    assert main(["segment-video", str(path), "the red circle", "--model", str(tiny_model_dir)]) == 1
    cli = capsys.readouterr().err.strip()
    assert cli.startswith(f"text4seg segment-video: error: {path}: not a readable video")
    page = cli.removeprefix("text4seg segment-video: ").replace(str(path), "broken.mp4")
    assert "t4s-error" in status and page.replace("'", "&#x27;") in status
    assert outputs == [None, None, "", None] and "Traceback" not in status


# ------------------------------------------------------------------------------------------------- zips


def test_zip_entries_with_dot_dot_or_absolute_names_refuse_the_archive(tmp_path):
    handler, backend = _stub_handler(tmp_path)
    for bad in ("../evil.png", "clip/../../evil.png", "/etc/evil.png", "C:/evil.png", "..\\evil.png"):
        archive = _zip(tmp_path / "bad.zip", {"clip/0.png": _png(0), bad: _png(1)})
        status = handler.respond_video(str(archive), "expression", "x", "per-frame", 1, "first", 4, None)[0]
        assert f"error: bad.zip: unsafe entry {bad!r} (an absolute path or &#x27;..&#x27;): refusing the archive"\
            .replace("'", "&#x27;").replace("&#x27;..&#x27;", "'..'").replace("'", "&#x27;") in status
    assert not (tmp_path / "evil.png").exists() and not list((tmp_path / "work").rglob("*.png"))
    assert backend.asked == []
    with pytest.raises(ValueError, match=r"^x.zip: unsafe entry '../a.txt'"):
        extract_zip_frames(_zip(tmp_path / "x.zip", {"../a.txt": b"text"}), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_zip_frames_in_natural_order_skipping_clutter(tmp_path):
    entries = {"v/10.png": _png(3), "v/2.png": _png(2), "v/1.png": _png(1), "v/notes.txt": b"x",
               "__MACOSX/v/._1.png": b"junk", "v/.hidden.png": b"junk", "v/": b""}
    files = extract_zip_frames(_zip(tmp_path / "f.zip", entries), tmp_path / "out")
    assert [p.name for p in files] == ["1.png", "2.png", "10.png"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["1.png", "10.png", "2.png"]
    assert [p.name for p in extract_zip_frames(tmp_path / "f.zip", tmp_path / "two", max_frames=2)] == ["1.png",
                                                                                                      "2.png"]
    with pytest.raises(ValueError, match=r"^d.zip: two frames named 1.png \(a/1.png, b/1.png\)"):
        extract_zip_frames(_zip(tmp_path / "d.zip", {"a/1.png": _png(1), "b/1.png": _png(1)}), tmp_path / "d")
    with pytest.raises(ValueError, match=r"^e.zip: no frames \(.jpg, .jpeg, .png, .bmp, .webp files\) in this zip"):
        extract_zip_frames(_zip(tmp_path / "e.zip", {"a.txt": b"x"}), tmp_path / "e")
    (tmp_path / "c.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match=r"^c.zip: not a readable zip file \(File is not a zip file\)"):
        extract_zip_frames(tmp_path / "c.zip", tmp_path / "c")


def test_zip_bytes_are_counted_while_unzipping(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as handle:
        handle.writestr("0.bmp", b"\0" * (3 << 20))  # 3 MB that deflate to a few KB
    assert archive.stat().st_size < 20_000
    with pytest.raises(ValueError, match=r"^bomb.zip: more than 2 MB of frames unzipped \(the limit is 8 x "):
        extract_zip_frames(archive, tmp_path / "out", max_bytes=2 << 20)
    handler, _ = _stub_handler(tmp_path, max_upload_mb=0.25)
    status = handler.respond_video(str(archive), "expression", "x", "per-frame", 1, "first", 4, None)[0]
    assert "error: bomb.zip: more than 2 MB of frames unzipped (the limit is 8 x --max-upload-mb)" in status
    assert not list((tmp_path / "work").rglob("*.bmp"))


def test_zip_frames_segmented_with_stride_timeline_and_downloads(tmp_path):
    handler, backend = _stub_handler(tmp_path)
    archive = _zip(tmp_path / "frames.zip", {f"{k}.png": _png(k) for k in range(7)})
    result = handler.segment_video(str(archive), "expression", "the dot", "per-frame", 3)
    assert backend.asked == [0, 3, 6]
    assert result.sources == ["model", "nearest", "nearest", "model", "nearest", "nearest", "model"]
    expected = [_cell_mask(EVEN if k in (0, 1, 5, 6) else ODD) for k in range(7)]  # the nearest answer's
    assert all(np.array_equal(m, e) for m, e in zip(result.masks, expected))
    assert result.record["strategy"] == "per-frame:3" and result.record["keyframes"] == ["0", "3", "6"]
    masks = _zip_masks(result.files[2])
    assert all(np.array_equal(masks[f"masks/{k}.png"], e.astype(np.uint8) * 255) for k, e in enumerate(expected))
    # the timeline: a cell per frame in its source's colour, keyframes marked white above
    assert result.timeline.size == (7 * 24, 35)
    assert result.timeline.getpixel((12, 20)) == SOURCE_COLOURS["model"]
    assert result.timeline.getpixel((36, 20)) == SOURCE_COLOURS["nearest"]
    assert result.timeline.getpixel((3 * 24 + 12, 2)) == (255, 255, 255)
    assert result.timeline.getpixel((36, 2)) != (255, 255, 255)
    assert "model (3)" in result.details and "nearest (4)" in result.details
    assert result.details.count("<tr>") == 1 + 3  # the header and the answered frames
    status, overlay, timeline, details, files = handler.respond_video(str(archive), "expression", "the dot",
                                                                      "per-frame", 3, "first", 4, None)
    assert "t4s-ok" in status and "7 frames 8x8 (per-frame:3): 3 model, 4 nearest" in status
    assert overlay.endswith("overlay.mp4") and [f.rsplit("/", 1)[1] for f in files] == [
        "overlay.mp4", "result.json", "masks.zip"]


def test_propagate_through_a_sam2_propagator_with_best_keyframe_scores(tmp_path):
    propagator = FakePropagator()
    handler, backend = _stub_handler(tmp_path, propagator=propagator, scores={0: -0.5, 2: -0.1, 4: -0.3})
    assert handler.strategies == ("per-frame", "propagate")
    archive = _zip(tmp_path / "frames.zip", {f"f{k:02d}.png": _png(k) for k in range(5)})
    result = handler.segment_video(str(archive), "expression", "the dot", "propagate", 1, "best", 3)
    assert backend.asked == [0, 2, 4] and propagator.calls == [[2]]
    assert result.keyframes == [2] and result.sources == ["propagated", "propagated", "model", "propagated",
                                                          "propagated"]
    assert result.record["scores"] == {"f00": -0.5, "f02": -0.1, "f04": -0.3}
    assert result.record["strategy"] == "propagate:best" and result.record["keyframes"] == ["f02"]
    assert "-0.100" in result.details and result.details.count("<tr>") == 1 + 3
    assert result.timeline.getpixel((2 * 24 + 12, 2)) == (255, 255, 255)
    assert result.timeline.getpixel((12, 20)) == SOURCE_COLOURS["propagated"]
    status = handler.respond_video(str(archive), "expression", "x", "propagate", 1, "sometimes", 4, None)[0]
    assert "error: --keyframes &#x27;sometimes&#x27;: expected first, middle, best or stride:N" in status


def test_video_limits_frames_pixels_and_upload_size(tmp_path):
    archive = _zip(tmp_path / "frames.zip", {f"{k}.png": _png(k) for k in range(6)})
    handler, backend = _stub_handler(tmp_path, max_video_frames=4)
    result = handler.segment_video(str(archive), "expression", "x")
    assert len(result.masks) == 4 and backend.asked == [0, 1, 2, 3]
    assert result.record["note"] == "cut to the first 4 frames (--max-video-frames)"
    assert result.summary.endswith("; cut to the first 4 frames (--max-video-frames)")
    handler, _ = _stub_handler(tmp_path, max_video_pixels=3 * H * W + 5)
    result = handler.segment_video(str(archive), "expression", "x")
    assert len(result.masks) == 3
    assert result.record["note"] == "cut to the first 3 frames (--max-video-pixels 197 at this frame size)"
    handler, backend = _stub_handler(tmp_path, max_pixels=50)
    with pytest.raises(ValueError, match=r"^frames.zip/0.png: 8x8 = 64 pixels per frame exceeds the limit of 50$"):
        handler.segment_video(str(archive), "expression", "x")
    handler, _ = _stub_handler(tmp_path, max_video_pixels=10)
    with pytest.raises(ValueError, match=r"^frames.zip: a 8x8 frame exceeds the video limit of 10 pixels$"):
        handler.segment_video(str(archive), "expression", "x")
    mixed = _zip(tmp_path / "mixed.zip", {"0.png": _png(0), "1.png": _png(1, size=(4, 4))})
    with pytest.raises(ValueError, match=r"^mixed.zip: frame 1 is 4x4, the first is 8x8$"):
        _stub_handler(tmp_path)[0].segment_video(str(mixed), "expression", "x")
    broken = _zip(tmp_path / "broken.zip", {"0.png": _png(0), "1.png": b"not a png"})
    with pytest.raises(ValueError, match=r"^broken.zip/1.png: not a readable image"):
        _stub_handler(tmp_path)[0].segment_video(str(broken), "expression", "x")
    handler, backend = _stub_handler(tmp_path, max_upload_mb=0.0001)
    with pytest.raises(ValueError, match=r"^frames.zip: 0.0 MB exceeds the upload limit of 0.0001 MB$"):
        handler.segment_video(str(archive), "expression", "x")
    assert backend.asked == []


def test_video_request_checks(tmp_path):
    handler, backend = _stub_handler(tmp_path)
    archive = _zip(tmp_path / "frames.zip", {"0.png": _png(0)})
    cases = [((None, "expression", "x"), "no video: upload a video file or a zip of frames"),
             ((str(tmp_path / "gone.mp4"), "expression", "x"), "video file not found: gone.mp4"),
             ((str(archive), "expression", "  "), "no query: type a referring expression"),
             ((str(archive), "referring", "x"), "mode 'referring': expected one of expression, instruction"),
             ((str(archive), "expression", "x", "propagate"),
              "--video-strategy propagate needs a SAM2 model: start the demo with --sam2 ID|DIR"),
             ((str(archive), "expression", "x", "per-frame", 0), "--frame-stride 0: expected an integer >= 1"),
             ((str(archive), "expression", "x", "per-frame", 1.5), "--frame-stride 1.5: expected an integer >= 1"),
             ((str(archive), "expression", "x", "per-frame", None), "--frame-stride None: expected an integer >= 1")]
    for args, message in cases:
        with pytest.raises((ValueError, FileNotFoundError)) as err:
            handler.segment_video(*args)
        assert str(err.value) == message
    assert backend.asked == [] and handler.strategies == ("per-frame",)


def test_timeline_picture_scales_to_long_videos():
    picture = timeline_picture(["model"] + ["nearest"] * 299, [0], width=600)
    assert picture.size == (600, 35)
    assert picture.getpixel((0, 20)) == SOURCE_COLOURS["model"] and picture.getpixel((1, 2)) == (255, 255, 255)
    assert picture.getpixel((10, 20)) == SOURCE_COLOURS["nearest"]
    assert timeline_picture(["model"] * 2000, []).size == (2000, 35)  # at least a pixel per frame


@pytest.mark.slow  # importing gradio alone takes seconds
def test_page_has_both_tabs_and_offers_propagate_only_with_sam2(tmp_path):
    pytest.importorskip("gradio", reason="the demo needs gradio (pip install 'text4seg[demo]')")
    from text4seg.demo import build_app

    for propagator, choices in ((None, ["per-frame"]), (FakePropagator(), ["per-frame", "propagate"])):
        handler, _ = _stub_handler(tmp_path, propagator=propagator)
        app = build_app(handler)
        config = app.get_config_file()
        labels = [c["props"].get("label") for c in config["components"] if c["type"] == "tabitem"]
        assert labels == ["Image", "Video"]
        (strategy,) = [c for c in config["components"] if c["props"].get("elem_id") == "t4s-video-strategy"]
        assert [choice[0] for choice in strategy["props"]["choices"]] == choices
        fns = {f.api_name: f for f in app.fns.values()}
        assert {"segment", "segment_video", "preview"} <= set(fns)
        # one model: the two tabs share one slot, so an image and a video request queue behind each other
        for name in ("segment", "segment_video"):
            assert (fns[name].concurrency_id, fns[name].concurrency_limit) == ("model", 1)


def test_demo_command_passes_the_video_options(monkeypatch):
    import text4seg.demo as demo_module
    from text4seg.cli import main

    seen = {}
    monkeypatch.setattr(demo_module, "load_demo", lambda model, adapter=None, **kw: seen.update(kw) or "handler")
    monkeypatch.setattr(demo_module, "serve", lambda handler, options: None)
    assert main(["demo", "--model", "m", "--sam2", "facebook/sam2.1-hiera-tiny", "--max-video-frames", "50",
                 "--max-video-pixels", "1000000"]) == 0
    options = seen["options"]
    assert (options.sam2, options.max_video_frames, options.max_video_pixels) == ("facebook/sam2.1-hiera-tiny", 50,
                                                                                  1_000_000)
    assert DemoOptions().sam2 is None and DemoOptions().max_video_frames == 300
    with pytest.raises(ValueError, match="max_video_frames 0: expected an integer >= 1"):
        DemoOptions(max_video_frames=0)


def test_gif_and_mp4_uploads_through_pyav_with_header_checks(tmp_path):
    pytest.importorskip("av")
    from text4seg.video_io import write_gif, write_mp4

    frames = [np.full((H, W, 3), 20 * k, dtype=np.uint8) for k in range(4)]
    handler, backend = _stub_handler(tmp_path)
    result = handler.segment_video(str(write_gif(tmp_path / "clip.gif", frames, fps=4)), "expression", "x")
    assert backend.asked == [0, 20, 40, 60] and result.record["fps"] == pytest.approx(4.0)
    assert [e["frame"] for e in result.record["per_frame"]] == ["00000", "00001", "00002", "00003"]
    video = write_mp4(tmp_path / "clip.mp4", [np.zeros((32, 48, 3), np.uint8)] * 3)
    handler, backend = _stub_handler(tmp_path, max_pixels=1000)
    with pytest.raises(ValueError, match=r"^clip.mp4: 48x32 = 1536 pixels per frame exceeds the limit of 1000$"):
        handler.segment_video(str(video), "expression", "x")
    handler, backend = _stub_handler(tmp_path, max_video_pixels=2 * 48 * 32)
    result = handler.segment_video(str(video), "expression", "x")
    assert len(result.masks) == 2 and result.record["note"].startswith("cut to the first 2 frames")
