"""The demo's settings and results: limits and serving options (:class:`DemoOptions`), what a request
returns (:class:`DemoResult`, :class:`VideoResult`), the bundled examples, and the page's colours (no torch).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from text4seg.options import option

DEMO_ASSETS = Path(__file__).resolve().parent.parent / "demo_assets"  # text4seg/demo_assets (package data)


MODES = ("referring", "instruction", "classes", "caption")


_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


# Distinct, saturated colours (matplotlib's tab10); query / class k gets PALETTE[k % 10].
PALETTE: tuple[tuple[int, int, int], ...] = (
    (214, 39, 40), (31, 119, 180), (44, 160, 44), (255, 127, 14), (148, 103, 189),
    (23, 190, 207), (227, 119, 194), (188, 189, 34), (140, 86, 75), (127, 127, 127),
)


_GRID_BACKGROUND = (40, 40, 40)


VIDEO_MODES = ("expression", "instruction")


# timeline colours per frame source
SOURCE_COLOURS: dict[str, tuple[int, int, int]] = {
    "model": (214, 39, 40), "propagated": (31, 119, 180), "nearest": (188, 189, 34), "empty": (127, 127, 127),
}


_UNZIP_FACTOR = 8  # a zip of frames may hold this many times the upload limit, unzipped


_KEEP_REQUEST_DIRS = 32  # download folders kept; older ones were served long ago (one request at a time)


@dataclass(frozen=True)
class DemoOptions:
    """How the demo page is served and what it accepts."""

    host: str = option("127.0.0.1", "address to bind; anything but 127.0.0.1/localhost serves other machines "
                       "too (a warning is printed)", group="serving")
    port: int = option(7860, "port to serve on", group="serving")
    share: bool = option(False, "also open a public gradio.live link through Gradio's share servers (a warning "
                         "is printed)", group="serving")
    queue_size: int = option(16, "most requests waiting in the queue; more are turned away with a message",
                             group="serving", metavar="N")
    max_upload_mb: float = option(20.0, "largest upload in MB", group="limits", metavar="MB")
    max_pixels: int = option(25_000_000, "largest image in pixels (width x height), checked before decoding",
                             group="limits", metavar="N")
    max_queries: int = option(8, "most queries (lines) per request", group="limits", metavar="N")
    sam_checkpoint: str | None = option(None, "SAM checkpoint, e.g. sam_vit_h_4b8939.pth: offers SAM refinement "
                                        "in the page", group="refinement", metavar="FILE")
    sam_type: str = option("vit_h", "SAM model type of --sam-checkpoint", group="refinement",
                           choices=("vit_h", "vit_l", "vit_b"))
    sam2: str | None = option(None, "SAM2 video model, hub id (e.g. facebook/sam2.1-hiera-large) or directory: "
                              "offers the propagate strategy in the Video tab", group="refinement",
                              metavar="ID|DIR")
    max_video_frames: int = option(300, "most frames of a video; longer videos are cut to their first N",
                                   group="limits", metavar="N")
    max_video_pixels: int = option(300 * 1280 * 720, "most pixels of a video, frames x width x height (checked "
                                   "before decoding); longer videos are cut to the frames that fit",
                                   group="limits", metavar="N")

    def __post_init__(self) -> None:
        if not 0 <= int(self.port) <= 65535:
            raise ValueError(f"port {self.port}: expected 0..65535")
        for name in ("queue_size", "max_pixels", "max_queries", "max_video_frames", "max_video_pixels"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} {getattr(self, name)}: expected an integer >= 1")
        if not self.max_upload_mb > 0:
            raise ValueError(f"max_upload_mb {self.max_upload_mb}: expected a size > 0")

    @property
    def public(self) -> bool:
        """Whether other machines can reach the page (a non-local bind or a share link)."""
        return self.share or self.host not in _LOCAL_HOSTS

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def warnings(self) -> list[str]:
        """What to tell the user before serving publicly (empty for the default local bind)."""
        out = []
        if self.host not in _LOCAL_HOSTS:
            out.append(f"serving on {self.host}:{self.port}: anyone who can reach this machine can run the model "
                       f"and upload files to it (the default, --host 127.0.0.1, serves only this machine)")
        if self.share:
            out.append("--share: a public gradio.live link relays this page through Gradio's servers; anyone "
                       "with the link can run the model (it expires after a week)")
        return out


@dataclass
class DemoResult:
    """One answered request of the image tab.

    Attributes:
        overlay: RGB image with each query's mask (or each class) blended in its colour.
        legend: ``(name, (r, g, b), share)`` per coloured entry: query or class, colour, pixel share in [0, 1].
        descriptor: the model's answers, one block per query.
        grid: picture of the decoded label grid(s), one panel per query.
        masks: per query the final mask (HxW bool, or an HxW int64 class-id map for classes mode).
        report: the ``text4seg segment --json`` report (masks as COCO RLE).
        files: the downloads: mask PNG(s) and ``segment.json``.
        summary: one line: grid, repairs, tokens, forward passes, time.
        rows: per query ``(query, repairs, tokens, forward_passes, seconds, share)`` for the details table.
    """

    overlay: Image.Image
    legend: list[tuple[str, tuple[int, int, int], float]]
    descriptor: str
    grid: Image.Image
    masks: list[np.ndarray]
    report: dict
    files: list[Path]
    summary: str
    rows: list[tuple[str, list[str], int, int, float, float]] = field(default_factory=list)


@dataclass
class VideoResult:
    """One answered request of the Video tab.

    Attributes:
        overlay: the overlay MP4 (each frame's mask blended in red).
        timeline: strip picture, a cell per frame coloured by its source, keyframes marked.
        masks: (T, H, W) bool; sources, keyframes: as :class:`text4seg.video_segment.VideoSegmentation`.
        record: the ``result.json`` record (``text4seg segment-video``'s, masks as COCO RLE).
        files: the downloads: ``overlay.mp4``, ``result.json``, ``masks.zip`` (``masks/<frame>.png``, 0/255).
        summary: one line: frames, sources, model answers, SAM2 passes, keyframes, time.
        details: HTML legend of the timeline and a table of the frames the model answered.
    """

    overlay: Path
    timeline: Image.Image
    masks: np.ndarray
    sources: list[str]
    keyframes: list[int]
    record: dict
    files: list[Path]
    summary: str
    details: str


def examples() -> list[tuple[Path, str, str]]:
    """The bundled examples: ``(image path, mode, query text)`` (from ``demo_assets/examples.json``)."""
    index = DEMO_ASSETS / "examples.json"
    if not index.is_file():
        return []
    entries = json.loads(index.read_text(encoding="utf-8"))
    return [(DEMO_ASSETS / e["image"], e["mode"], e["text"]) for e in entries]


def write_demo_assets(out: str | os.PathLike, *, image_size: int = 128, seed: int = 3) -> list[dict]:
    """Draw the bundled example images with :mod:`text4seg.datasets.synthetic` and write ``examples.json``.

    Args:
        out: folder for ``example_K.png`` and ``examples.json``.
        image_size, seed: synthetic drawing parameters (the committed assets use the defaults).

    Returns:
        The ``examples.json`` entries.
    """
    from text4seg.datasets.synthetic import generate_synthetic
    from text4seg.io import atomic_write, write_json_atomic

    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        samples = generate_synthetic(tmp, "demo", num_images=2, image_size=image_size, seed=seed, max_shapes=3,
                                     distinct_colours=True)
        entries, seen = [], {}
        for sample in samples:
            if sample.image in seen:
                continue
            name = f"example_{len(seen)}.png"
            seen[sample.image] = name
            with atomic_write(out / name, binary=True) as handle:
                handle.write((Path(tmp) / sample.image).read_bytes())
            entries.append({"image": name, "mode": "referring", "text": sample.expressions[0]})
    write_json_atomic(out / "examples.json", entries)
    return entries
