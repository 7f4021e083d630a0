"""The demo served for real: a second concurrent request waits in Gradio's queue (gradio_client), and headless
Chromium (Debian's chromium + chromedriver through Selenium; nothing downloaded) drives the page: upload, query,
Segment, the overlay appears, the downloaded mask equals Segmenter's, a corrupt upload shows the CLI's message;
in the Video tab an uploaded MP4 gives the result JSON of Segmenter.segment_video and a zip with a ".." entry is
refused in the page."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from text4seg.demo import DEMO_ASSETS, DemoHandler, DemoOptions, serve

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = DEMO_ASSETS / "example_0.png"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(predicate, timeout: float, what: str, poll: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"gave up waiting for {what} after {timeout:.0f} s")


@pytest.mark.slow
def test_second_concurrent_request_waits_in_the_queue(tmp_path):
    pytest.importorskip("gradio", reason="the demo needs gradio (pip install 'text4seg[demo]')")
    from gradio_client import Client, handle_file
    from gradio_client.utils import Status
    from test_demo import CONFIG, TOP_LEFT, StubBackend

    from text4seg.segmenter import Segmenter

    entered, release = threading.Event(), threading.Event()
    lock = threading.Lock()
    running, peak, calls = [0], [0], []

    class Gate(StubBackend):
        """Holds the first request inside the model until released; counts requests running at once."""

        def generate(self, image, prompts):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
                calls.extend(prompts)
            entered.set()
            release.wait(timeout=120)
            with lock:
                running[0] -= 1
            return super().generate(image, prompts)

    handler = DemoHandler(Segmenter(Gate(TOP_LEFT), CONFIG), DemoOptions(port=_free_port()), workdir=tmp_path)
    app = serve(handler, block=False)
    try:
        client = Client(app.local_url, verbose=False)
        args = (handle_file(str(EXAMPLE)), "referring")
        first = client.submit(*args, "the first", "fast", False, api_name="/segment")
        assert entered.wait(120), "the first request never reached the model"
        second = client.submit(*args, "the second", "fast", False, api_name="/segment")
        queued = _wait_for(lambda: second.status().code == Status.IN_QUEUE and second.status(), 60,
                           "the second request to be reported in the queue")
        assert queued.rank is not None and not second.done() and calls == ["Find the first now."]
        release.set()
        done = [first.result(timeout=120), second.result(timeout=120)]
    finally:
        release.set()
        app.close()
        handler.close()
    assert peak[0] == 1 and calls == ["Find the first now.", "Find the second now."]
    for status, *_ in done:
        assert 't4s-ok' in status and "grid 4x4, 1 answer" in status


# ---------------------------------------------------------------------------------------------- browser


@pytest.fixture
def browser_paths() -> tuple[str, str]:
    """(chromium, chromedriver), or skip with one line, before any server starts."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("no Chromium here: apt-get install chromium chromium-driver (as .ci/run does)")
    pytest.importorskip("selenium", reason="selenium missing: pip install 'text4seg[dev]'")
    pytest.importorskip("gradio", reason="the demo needs gradio (pip install 'text4seg[demo]')")
    return chromium, driver


@pytest.fixture
def demo_server(browser_paths, tiny_model_dir, tmp_path):
    """``text4seg demo`` on the tiny model, on a free local port, in a subprocess; yields its URL."""
    port = _free_port()
    log = (tmp_path / "server.log").open("w")
    env = dict(os.environ, PYTHONPATH=str(REPO), GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-m", "text4seg.cli", "demo", "--model", str(tiny_model_dir),
                             "--device", "cpu", "--port", str(port)], cwd=tmp_path, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"demo exited with {proc.returncode}: {(tmp_path / 'server.log').read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    try:
        _wait_for(up, 300, "the demo server", poll=0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.mark.slow
def test_browser_upload_query_segment_and_errors(browser_paths, demo_server, tiny_model_dir, tmp_path,
                                                 monkeypatch):
    chromium, chromedriver = browser_paths
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from text4seg.options import LoadOptions
    from text4seg.segmenter import Segmenter

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not look anything up
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1400", "--hide-scrollbars"):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    wait = WebDriverWait(browser, 240)

    def status_text() -> str:
        return browser.find_element(By.CSS_SELECTOR, "#t4s-status").text

    try:
        browser.get(demo_server)
        upload = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#t4s-upload input[type=file]")))
        upload.send_keys(str(EXAMPLE))
        wait.until(lambda _: "example_0.png: 128x128" in status_text())
        browser.find_element(By.CSS_SELECTOR, "#t4s-query textarea").send_keys("the red square")
        browser.find_element(By.CSS_SELECTOR, "#t4s-segment").click()
        wait.until(lambda _: "grid 8x8, 1 answer" in status_text())
        overlay = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#t4s-overlay img")))
        links = wait.until(lambda b: [a.get_attribute("href") for a in
                                      b.find_elements(By.CSS_SELECTOR, "#t4s-files a[href]")] or None)
        assert "the red square" in browser.find_element(By.CSS_SELECTOR, "#t4s-legend").text
        browser.save_screenshot(str(tmp_path / "demo.png"))

        def fetch(href: str) -> bytes:
            with urllib.request.urlopen(href, timeout=30) as response:
                return response.read()

        mask_href = next(h for h in links if h.split("?")[0].endswith("mask.png"))
        json_href = next(h for h in links if h.split("?")[0].endswith("segment.json"))
        page_mask = np.asarray(Image.open(io.BytesIO(fetch(mask_href)))) > 0
        report = json.loads(fetch(json_href))
        shown = Image.open(io.BytesIO(fetch(overlay.get_attribute("src"))))

        # a corrupt upload: the CLI's message, in the page
        broken = tmp_path / "broken.png"
        broken.write_bytes(b"this is not an image")
        browser.get(demo_server)
        upload = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#t4s-upload input[type=file]")))
        upload.send_keys(str(broken))
        message = "error: broken.png: not a readable image (UnidentifiedImageError"
        wait.until(lambda _: message in status_text())
        browser.find_element(By.CSS_SELECTOR, "#t4s-query textarea").send_keys("the red square")
        browser.find_element(By.CSS_SELECTOR, "#t4s-segment").click()
        wait.until(lambda _: message in status_text() and "Traceback" not in browser.page_source)
        browser.save_screenshot(str(tmp_path / "demo_error.png"))
    finally:
        browser.quit()

    expected = Segmenter.from_pretrained(tiny_model_dir, load=LoadOptions(device="cpu")).segment(
        EXAMPLE, "the red square")
    assert page_mask.shape == (128, 128) and np.array_equal(page_mask, expected.mask)
    (entry,) = report["results"]
    assert entry["query"] == "the red square" and entry["text"] == expected.text
    assert shown.size == (128, 128)
    assert (tmp_path / "demo.png").stat().st_size > 0 and (tmp_path / "demo_error.png").stat().st_size > 0


@pytest.mark.slow
def test_server_refuses_uploads_over_the_limit(tmp_path):
    pytest.importorskip("gradio", reason="the demo needs gradio (pip install 'text4seg[demo]')")
    import httpx
    from test_demo import CONFIG, TOP_LEFT, StubBackend

    from text4seg.segmenter import Segmenter

    handler = DemoHandler(Segmenter(StubBackend(TOP_LEFT), CONFIG),
                          DemoOptions(port=_free_port(), max_upload_mb=0.01), workdir=tmp_path)
    app = serve(handler, block=False)
    try:
        url = app.local_url + "gradio_api/upload"
        big = httpx.post(url, files={"files": ("example_0.png", EXAMPLE.read_bytes(), "image/png")})
        small = httpx.post(url, files={"files": ("small.png", b"x" * 100, "image/png")})
    finally:
        app.close()
        handler.close()
    # the upload never reaches the disk: Gradio answers 413 with the limit (0.01 MB = 10485 bytes)
    assert big.status_code == 413 and "maximum allowed size of 10485 bytes" in big.text
    assert small.status_code == 200 and small.json()[0].endswith("small.png")


@pytest.mark.slow
def test_browser_video_tab_segments_an_upload(browser_paths, demo_server, tiny_model_dir, tmp_path, monkeypatch):
    chromium, chromedriver = browser_paths
    import zipfile

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from text4seg.options import LoadOptions
    from text4seg.segmenter import Segmenter
    from text4seg.video_io import read_frames, write_mp4

    rng = np.random.default_rng(2)
    video = write_mp4(tmp_path / "clip.mp4", [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(3)],
                      fps=3)
    unsafe = tmp_path / "unsafe.zip"
    with zipfile.ZipFile(unsafe, "w") as archive:
        archive.writestr("../evil.png", EXAMPLE.read_bytes())

    monkeypatch.setenv("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1400", "--hide-scrollbars"):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    wait = WebDriverWait(browser, 240)

    def status_text() -> str:
        return browser.find_element(By.CSS_SELECTOR, "#t4s-video-status").text

    def open_video_tab():
        browser.get(demo_server)
        tab = wait.until(ec.element_to_be_clickable((By.XPATH, "//button[@role='tab' and normalize-space()='Video']")))
        tab.click()
        return wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#t4s-video-upload input[type=file]")))

    try:
        open_video_tab().send_keys(str(video))
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#t4s-video-upload [aria-label='clip.mp4']")))
        browser.find_element(By.CSS_SELECTOR, "#t4s-video-query textarea").send_keys("the red circle")
        browser.find_element(By.CSS_SELECTOR, "#t4s-video-segment").click()
        wait.until(lambda _: "3 frames 32x32 (per-frame): 3 model" in status_text())
        shown = wait.until(lambda b: [v.get_attribute("src") for v in
                                      b.find_elements(By.CSS_SELECTOR, "#t4s-video-overlay video[src]")] or None)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#t4s-video-timeline img")))
        links = wait.until(lambda b: [a.get_attribute("href") for a in
                                      b.find_elements(By.CSS_SELECTOR, "#t4s-video-files a[href]")] or None)
        assert "model (3)" in browser.find_element(By.CSS_SELECTOR, "#t4s-video-details").text
        browser.save_screenshot(str(tmp_path / "demo_video.png"))
        json_href = next(h for h in links if h.split("?")[0].endswith("result.json"))
        with urllib.request.urlopen(json_href, timeout=30) as response:
            record = json.loads(response.read())
        with urllib.request.urlopen(shown[0], timeout=30) as response:
            (tmp_path / "shown.mp4").write_bytes(response.read())

        # a zip with a '..' entry: refused, the message in the page
        open_video_tab().send_keys(str(unsafe))
        browser.find_element(By.CSS_SELECTOR, "#t4s-video-query textarea").send_keys("the red circle")
        browser.find_element(By.CSS_SELECTOR, "#t4s-video-segment").click()
        wait.until(lambda _: "error: unsafe.zip: unsafe entry '../evil.png'" in status_text())
        assert "Traceback" not in browser.page_source
    finally:
        browser.quit()

    frames = read_frames(video).frames
    expected = Segmenter.from_pretrained(tiny_model_dir, load=LoadOptions(device="cpu")).segment_video(
        frames, "the red circle")
    from pycocotools import mask as mask_utils

    page = np.stack([mask_utils.decode(dict(e["rle"], counts=e["rle"]["counts"].encode())).astype(bool)
                     for e in record["per_frame"]])
    assert record["video"] == "clip.mp4" and record["strategy"] == "per-frame" and record["frames"] == 3
    assert np.array_equal(page, expected.masks)
    assert [e["source"] for e in record["per_frame"]] == expected.sources == ["model"] * 3
    assert len(read_frames(tmp_path / "shown.mp4").frames) == 3
    assert not (tmp_path.parent / "evil.png").exists()
