"""``text4seg demo``: a web page to try a model, a Gradio Blocks app over one loaded :class:`Segmenter` (extra
``demo``).

Two layers:

- :class:`DemoHandler` answers requests in plain Python (no Gradio): for an image it checks an upload (file
  size, pixel count before decoding, readable image), runs the segmenter (one or several queries; referring, instruction or
  classes mode, or a grounded caption; a decoding mode per request; optional SAM refinement), draws the overlay, the legend and the
  descriptor grid, and writes the downloads (the mask PNG and the JSON of ``text4seg segment --json``, built by
  the same helpers of :mod:`text4seg.segment`). Bad input raises ``ValueError`` with the message the CLI prints;
  :meth:`DemoHandler.respond` turns every failure into a message in the page, never a stack trace.
- :func:`build_app` wires the handler into Gradio components; :func:`serve` queues requests (one model:
  one request at a time, the others wait their turn) and binds to 127.0.0.1 unless asked otherwise.

The model is loaded once (:func:`load_demo`) before the page starts. The page has two tabs: Image (above) and
Video: an uploaded video file (PyAV) or zip of frames (extracted safely: no path traversal, bounded size and
frame count, natural frame order) segmented by one expression or instruction with
:meth:`Segmenter.segment_video` (per-frame with a stride, or keyframes carried by SAM2 when started with
``--sam2``), shown as an overlay MP4 and a per-frame timeline of mask sources and keyframes, with the
``text4seg segment-video`` result JSON and a zip of the mask PNGs as downloads.

Example::

    handler = load_demo("runs/quickstart/model", load=LoadOptions(device="cpu"))
    serve(handler, DemoOptions(port=7860))
"""

from __future__ import annotations

import dataclasses
import html
import io
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from text4seg.options import DECODING_MODES, DecodingOptions, LoadOptions, option

__all__ = [
    "DEMO_ASSETS",
    "MODES",
    "PALETTE",
    "DemoOptions",
    "DemoResult",
    "VideoResult",
    "VIDEO_MODES",
    "SOURCE_COLOURS",
    "extract_zip_frames",
    "timeline_picture",
    "DemoHandler",
    "load_demo",
    "build_app",
    "serve",
    "examples",
    "grid_picture",
    "write_demo_assets",
]

logger = logging.getLogger(__name__)

DEMO_ASSETS = Path(__file__).with_name("demo_assets")
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


# ------------------------------------------------------------------------------------------------- drawing


def grid_picture(grids: Sequence[np.ndarray], colours: Sequence[dict[str, tuple[int, int, int]]], *,
                 cell: int | None = None, gap: int = 8) -> Image.Image:
    """Small picture of decoded label grids: one panel per grid, one square per cell, thin lines between.

    Args:
        grids: (Hg, Wg) object arrays of str labels (:attr:`SegmentationResult.grid`).
        colours: per grid, label -> RGB; labels missing from it (the background, unknown names) are dark.
        cell: cell side in pixels (default: so that a panel is about 192 px wide, 4..24).
        gap: pixels between panels.

    Returns:
        RGB image.
    """
    if not grids:
        return Image.new("RGB", (1, 1), _GRID_BACKGROUND)
    heights = [int(g.shape[0]) for g in grids]
    widths = [int(g.shape[1]) for g in grids]
    cell = cell or max(4, min(24, 192 // max(1, max(widths))))
    total_w = sum(w * cell for w in widths) + gap * (len(grids) - 1)
    picture = Image.new("RGB", (total_w, max(heights) * cell), (255, 255, 255))
    draw = ImageDraw.Draw(picture)
    left = 0
    for grid, lut in zip(grids, colours):
        for r in range(grid.shape[0]):
            for c in range(grid.shape[1]):
                fill = lut.get(str(grid[r, c]), _GRID_BACKGROUND)
                x0, y0 = left + c * cell, r * cell
                draw.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=fill,
                               outline=(20, 20, 20) if cell >= 6 else None)
        left += grid.shape[1] * cell + gap
    return picture


def _blend(rgb: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int], alpha: float = 0.5) -> None:
    """Blend ``colour`` into float HxWx3 ``rgb`` where ``mask`` is set (in place)."""
    rgb[mask] = (1.0 - alpha) * rgb[mask] + alpha * np.asarray(colour, dtype=np.float64)


# ------------------------------------------------------------------------------------------------- video


def extract_zip_frames(archive: str | os.PathLike, out: str | os.PathLike, *, name: str | None = None,
                       max_frames: int | None = None, max_bytes: int | None = None) -> list[Path]:
    """Extract the frames of a zip (``.jpg .jpeg .png .bmp .webp`` files, in any one folder of it) into the flat
    folder ``out``, safely.

    Every entry name is checked before anything is written: an absolute name, a drive letter or a ``..`` part
    refuses the whole archive. Frames are taken in natural name order (``2.png`` before ``10.png``, as
    :func:`text4seg.video_io.read_frames` orders a folder), the first ``max_frames`` of them; their bytes are
    counted while they are read (not trusted from the archive's header) against ``max_bytes``. Other files,
    folders and ``__MACOSX`` / dot-file clutter are skipped; entries are written as plain files (never links).

    Args:
        archive: the zip file; name: how messages name it (default: its file name).
        out: folder to create (it must not exist yet or be empty).

    Returns:
        The extracted frame files, in order.

    Raises:
        ValueError: not a readable zip, an unsafe entry name, an encrypted frame, no frames, two frames of the
            same name in different folders, more than ``max_bytes`` unzipped.
    """
    import zipfile
    import zlib

    from text4seg.video_io import FRAME_SUFFIXES

    archive = Path(archive)
    name = name or archive.name
    out = Path(out)
    try:
        with zipfile.ZipFile(archive) as handle:
            infos = handle.infolist()
            for info in infos:
                entry = info.filename.replace("\\", "/")
                parts = entry.split("/")
                if entry.startswith("/") or ":" in parts[0] or ".." in parts:
                    raise ValueError(f"{name}: unsafe entry {info.filename!r} (an absolute path or '..'): "
                                     f"refusing the archive")
            frames = []
            for info in infos:
                parts = info.filename.replace("\\", "/").split("/")
                if info.is_dir() or "__MACOSX" in parts or any(p.startswith(".") for p in parts if p):
                    continue
                if Path(parts[-1]).suffix.lower() in FRAME_SUFFIXES:
                    frames.append((parts[-1], info))
            if not frames:
                raise ValueError(f"{name}: no frames ({', '.join(FRAME_SUFFIXES)} files) in this zip")
            seen: dict[str, str] = {}
            for base, info in frames:
                if base in seen:
                    raise ValueError(f"{name}: two frames named {base} ({seen[base]}, {info.filename}): put the "
                                     f"frames of one video in one folder")
                seen[base] = info.filename
            frames.sort(key=lambda item: _natural_key(item[0]))
            frames = frames[:max_frames] if max_frames else frames
            out.mkdir(parents=True, exist_ok=True)
            total, written = 0, []
            for base, info in frames:
                if info.flag_bits & 0x1:
                    raise ValueError(f"{name}: {info.filename} is encrypted")
                target = out / base
                with handle.open(info) as source, target.open("wb") as sink:
                    while chunk := source.read(1 << 20):
                        total += len(chunk)
                        if max_bytes is not None and total > max_bytes:
                            raise ValueError(f"{name}: more than {max_bytes / 2**20:g} MB of frames unzipped "
                                             f"(the limit is {_UNZIP_FACTOR} x --max-upload-mb)")
                        sink.write(chunk)
                written.append(target)
            return written
    except zipfile.BadZipFile as err:
        raise ValueError(f"{name}: not a readable zip file ({err})") from None
    except (zipfile.LargeZipFile, NotImplementedError, EOFError, zlib.error) as err:
        raise ValueError(f"{name}: not a readable zip file ({type(err).__name__}: {err})") from None


def _natural_key(file_name: str) -> list:
    import re

    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", Path(file_name).stem)]


def _frame_sizes(folder: Path, name: str) -> list[tuple[str, tuple[int, int]]]:
    """``(label, (width, height))`` of each frame file from its header (unreadable files are left to
    ``read_frames``, which names them)."""
    sizes = []
    for path in sorted(folder.iterdir(), key=lambda p: _natural_key(p.name)):
        try:
            with Image.open(path) as image:
                sizes.append((f"{name}/{path.name}", image.size))
        except Exception:  # noqa: BLE001 - read_frames reports it with the CLI's message
            continue
    return sizes


def _video_size(path: Path, name: str) -> list[tuple[str, tuple[int, int]]]:
    """``[(name, (width, height))]`` of a video file's first video stream, from its header (nothing decoded);
    empty when PyAV cannot tell (``read_frames`` then reports why)."""
    from text4seg._optional import require

    av = require("av", extra="video", purpose="reading video files")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return []
            context = container.streams.video[0].codec_context
            if context.width and context.height:
                return [(name, (int(context.width), int(context.height)))]
    except Exception:  # noqa: BLE001 - read_frames reports it with the CLI's message
        return []
    return []


def _whole(value: Any, flag: str) -> int:
    """A whole number >= 1 from a page field (Gradio numbers arrive as floats)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number >= 1 or number != int(number):
        raise ValueError(f"{flag} {value!r}: expected an integer >= 1")
    return int(number)


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def timeline_picture(sources: Sequence[str], keyframes: Sequence[int], *, width: int = 600,
                     height: int = 28) -> Image.Image:
    """A strip of the video's frames, one cell per frame coloured by where its mask came from
    (:data:`SOURCE_COLOURS`), keyframes marked with a white bar above their cell.

    Args:
        sources: per frame ``"model"``, ``"propagated"``, ``"nearest"`` or ``"empty"``.
        keyframes: frame indices to mark.
        width: about this wide (cells are 2..24 px; at least one px per frame).
    """
    count = max(1, len(sources))
    cell = max(1, min(24, width // count))
    gap = 1 if cell >= 4 else 0
    mark = max(4, height // 4)
    picture = Image.new("RGB", (count * cell, height + mark), _GRID_BACKGROUND)
    draw = ImageDraw.Draw(picture)
    for k, source in enumerate(sources):
        draw.rectangle([k * cell, mark, (k + 1) * cell - 1 - gap, height + mark - 1],
                       fill=SOURCE_COLOURS.get(source, _GRID_BACKGROUND))
    for k in keyframes:
        draw.rectangle([k * cell, 0, (k + 1) * cell - 1 - gap, mark - 2], fill=(255, 255, 255))
    return picture


def timeline_html(names: Sequence[str], result: Any, counts: dict[str, int]) -> str:
    """The timeline's legend (a swatch and count per source) and a table of the frames the model answered:
    frame, source, keyframe, confidence score (``best`` candidates), foreground share (escaped HTML)."""
    items = []
    for source, n in counts.items():
        r, g, b = SOURCE_COLOURS[source]
        items.append(f'<span style="margin-right:1em;white-space:nowrap"><span style="display:inline-block;'
                     f'width:0.9em;height:0.9em;background:rgb({r},{g},{b});vertical-align:middle;'
                     f'margin-right:0.3em;border:1px solid #333"></span>{source} ({n})</span>')
    items.append('<span style="white-space:nowrap">white bar: keyframe</span>')
    answered = sorted(set(result.texts) | set(result.scores) | set(result.keyframes))
    rows = []
    for k in answered:
        score = result.scores.get(k)
        rows.append(f"<tr><td>{html.escape(names[k])}</td><td>{html.escape(result.sources[k])}</td>"
                    f"<td>{'yes' if k in result.keyframes else ''}</td>"
                    f"<td>{'' if score is None else f'{score:.3f}'}</td>"
                    f"<td>{100 * float(result.masks[k].mean()):.1f}%</td></tr>")
    head = "<tr><th>frame</th><th>source</th><th>keyframe</th><th>score</th><th>foreground</th></tr>"
    return (f'<div class="t4s-timeline-legend">{"".join(items)}</div>'
            f'<div style="max-height:16em;overflow-y:auto"><table class="t4s-video-frames">{head}'
            f'{"".join(rows)}</table></div>')


# ------------------------------------------------------------------------------------------------- handler


class DemoHandler:
    """The page's requests (Image and Video tabs), in plain Python; one model, loaded once.

    Args:
        segmenter: the loaded :class:`text4seg.segmenter.Segmenter`.
        options: limits and serving settings (:class:`DemoOptions`).
        refiner: a :class:`text4seg.refine.SamRefiner` (or an object with its ``set_image`` / ``refine`` /
            ``refine_labels``); None: no refinement offered.
        model, adapter: names reported in the JSON.
        load_seconds: model loading time (reported).
        workdir: where downloads are written (default: a temporary folder removed by :meth:`close`).
        propagator: a :class:`text4seg.refine.sam2_video.Sam2Propagator` (or an object with its
            ``propagate``); None: the Video tab offers per-frame only.
    """

    def __init__(self, segmenter: Any, options: DemoOptions | None = None, *, refiner: Any = None,
                 model: str | os.PathLike = "", adapter: str | os.PathLike | None = None,
                 load_seconds: float = 0.0, workdir: str | os.PathLike | None = None,
                 propagator: Any = None) -> None:
        self.segmenter = segmenter
        self.propagator = propagator
        self.options = options or DemoOptions()
        self.refiner = refiner
        self.model = str(model)
        self.adapter = None if adapter is None else str(adapter)
        self.load_seconds = float(load_seconds)
        self._owned_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="text4seg-demo-") if workdir is None else workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._segmenters: dict[str, Any] = {}
        self._requests = 0

    # ---- settings the page shows
    @property
    def decoding(self) -> str:
        """The decoding mode the model was loaded with (the page's default)."""
        return str(getattr(self.segmenter.backend, "decoding", "fast"))

    @property
    def decoding_modes(self) -> tuple[str, ...]:
        """Modes a request may pick: all of them for a transformers model, else the loaded one only."""
        return DECODING_MODES if self._hf_backend() is not None else (self.decoding,)

    def _hf_backend(self) -> Any:
        backend = self.segmenter.backend
        try:
            from text4seg.decoding.backend import HFGenerationBackend
        except ImportError:  # pragma: no cover - torch missing
            return None
        return backend if isinstance(backend, HFGenerationBackend) else None

    def segmenter_for(self, decoding: str | None) -> Any:
        """A segmenter on the same model decoding with ``decoding`` (built once per mode, sharing the weights)."""
        if decoding is None or decoding == self.decoding:
            return self.segmenter
        if decoding not in self.decoding_modes:
            raise ValueError(f"decoding {decoding!r}: expected one of {', '.join(self.decoding_modes)}")
        if decoding not in self._segmenters:
            from text4seg.decoding.backend import HFGenerationBackend
            from text4seg.segmenter import Segmenter

            base = self._hf_backend()
            backend = HFGenerationBackend(base.model, base.processor, base.config,
                                          dataclasses.replace(base.options, decoding=decoding),
                                          batch_size=base.batch_size)
            self._segmenters[decoding] = Segmenter(backend, self.segmenter.config)
        return self._segmenters[decoding]

    # ---- input checks

    def _upload(self, path: Any, kind: str, missing: str) -> tuple[Path, str]:
        """The uploaded file's path and display name, checked: given, present, within the upload limit."""
        if path is None or str(path) == "":
            raise ValueError(missing)
        path = Path(path)
        name = path.name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise FileNotFoundError(f"{kind} file not found: {name}") from None
        if size > self.options.max_upload_bytes:
            raise ValueError(f"{name}: {size / 2**20:.1f} MB exceeds the upload limit of "
                             f"{self.options.max_upload_mb:g} MB")
        return path, name
    def load_upload(self, path: str | os.PathLike | None) -> tuple[Image.Image, str]:
        """Check and decode an uploaded file.

        Args:
            path: the uploaded (or example) file.

        Returns:
            ``(RGB image, the file's name)``.

        Raises:
            ValueError: no file, a file over the upload limit, more pixels than the limit (checked from the
                header, before decoding: the decompression-bomb guard), or not a readable image; the message
                is the CLI's, naming the file by its name.
        """
        from text4seg.images import load_image

        path, name = self._upload(path, "image", "no image: upload one or pick an example")
        try:
            return load_image(path, max_pixels=self.options.max_pixels), name
        except (ValueError, OSError) as err:
            # the CLI's message, with the upload's name instead of the server's temporary path
            raise type(err)(str(err).replace(str(path), name)) from err

    def parse_queries(self, mode: str, text: str | None) -> list[str]:
        """The queries of a request: one per non-empty line (classes: lines and commas both separate names)."""
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
        lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
        if mode == "caption":  # the request itself, optional: GLaMM's GCG instruction by default
            return [" ".join(lines)] if lines else []
        if mode == "classes":
            lines = [name.strip() for line in lines for name in line.split(",") if name.strip()]
        if not lines:
            what = {"referring": "a referring expression", "instruction": "an instruction",
                    "classes": "class names"}[mode]
            raise ValueError(f"no query: type {what} (one per line)")
        if mode != "classes" and len(lines) > self.options.max_queries:
            raise ValueError(f"{len(lines)} queries: at most {self.options.max_queries} per request")
        if mode == "classes" and len(lines) > 4 * self.options.max_queries:
            raise ValueError(f"{len(lines)} class names: at most {4 * self.options.max_queries} per request")
        return lines

    # ---- the request
    def segment(self, image_path: str | os.PathLike | None, mode: str = "referring", text: str | None = "",
                decoding: str | None = None, refine: bool = False) -> DemoResult:
        """Answer one request of the image tab.

        Args:
            image_path: uploaded or example image file.
            mode: ``"referring"`` (one mask per line), ``"instruction"`` (each line sent as is),
                ``"classes"`` (one semantic prompt listing the class names) or ``"caption"`` (a grounded caption,
                one mask per phrase; ``text`` replaces the request, empty: the GCG instruction).
            text: the queries, one per line.
            decoding: one of :attr:`decoding_modes` (default: the loaded one).
            refine: refine the masks with SAM (needs a refiner).

        Returns:
            :class:`DemoResult`.

        Raises:
            ValueError / FileNotFoundError: bad upload or request (the message says what and why).
        """
        t0 = time.perf_counter()
        picture, name = self.load_upload(image_path)
        queries = self.parse_queries(mode, text)
        if refine and self.refiner is None:
            raise ValueError("SAM refinement: start the demo with --sam-checkpoint FILE to offer it")
        segmenter = self.segmenter_for(decoding)
        if mode == "caption":
            if refine:
                raise ValueError("SAM refinement applies to referring, instruction and classes requests")
            answer = segmenter.ground(picture, queries[0] if queries else None)
            return self._present_caption(picture, name, answer, segmenter, time.perf_counter() - t0)
        if mode == "referring":
            results = segmenter.segment(picture, queries)
        elif mode == "instruction":
            results = [segmenter.segment(picture, instruction=q) for q in queries]
        else:
            results = [segmenter.segment(picture, classes=queries)]
        masks = [np.asarray(r.mask) for r in results]
        scores: list[float | None] = [None] * len(results)
        if refine:
            masks, scores = self._refine(picture, results, masks, mode, queries)
        return self._present(picture, name, mode, queries, results, masks, scores, segmenter,
                             time.perf_counter() - t0)

    def _refine(self, picture: Image.Image, results: list, masks: list[np.ndarray], mode: str,
                queries: list[str]) -> tuple[list[np.ndarray], list[float | None]]:
        background = self.segmenter.config.background
        self.refiner.set_image(picture)
        if mode == "classes":
            skip = {255} | {k for k, q in enumerate(queries) if q == background}
            present = [int(c) for c in np.unique(masks[0]) if int(c) not in skip]
            refined = self.refiner.refine_labels(masks[0], present)
            score = float(np.mean(list(refined.scores.values()))) if refined.scores else 0.0
            return [np.asarray(refined.label_map, dtype=np.int64)], [score]
        out, scores = [], []
        for res, mask in zip(results, masks):
            fine = self.refiner.refine(mask, np.asarray(res.grid) != background)
            out.append(np.asarray(fine.mask, dtype=bool))
            scores.append(float(fine.score))
        return out, scores

    def _present(self, picture: Image.Image, name: str, mode: str, queries: list[str], results: list,
                 masks: list[np.ndarray], scores: list[float | None], segmenter: Any,
                 seconds: float) -> DemoResult:
        from text4seg.images import save_mask_png
        from text4seg.io import write_json_atomic
        from text4seg.segment import report_header, result_record

        config = segmenter.config
        background = config.background
        rgb = np.asarray(picture, dtype=np.float64).copy()
        legend: list[tuple[str, tuple[int, int, int], float]] = []
        grid_colours: list[dict[str, tuple[int, int, int]]] = []
        if mode == "classes":
            label_map = masks[0]
            lut: dict[str, tuple[int, int, int]] = {}
            for k, cls in enumerate(queries):
                if cls == background:
                    continue
                colour = PALETTE[k % len(PALETTE)]
                region = label_map == k
                _blend(rgb, region, colour)
                legend.append((cls, colour, float(region.mean())))
                lut[cls] = colour
            grid_colours.append(lut)
        else:
            for k, (res, mask) in enumerate(zip(results, masks)):
                colour = PALETTE[k % len(PALETTE)]
                _blend(rgb, mask, colour)
                legend.append((res.query, colour, float(mask.mean())))
                grid_colours.append({str(label): colour for label in np.unique(res.grid) if label != background})
        overlay = Image.fromarray(np.rint(rgb).astype(np.uint8), "RGB")
        grid = grid_picture([np.asarray(r.grid) for r in results], grid_colours)

        folder = self._request_dir()
        report = report_header(name, picture, self.model, self.adapter, config, self.load_seconds)
        report["mode"] = mode
        report["decoding"] = str(getattr(segmenter.backend, "decoding", self.decoding))
        files: list[Path] = []
        rows = []
        for k, (res, mask, score) in enumerate(zip(results, masks, scores)):
            mask_path = folder / ("mask.png" if len(results) == 1 else f"mask_{k}.png")
            save_mask_png(mask, mask_path)
            files.append(mask_path)
            extra = {} if score is None else {"refined": True, "sam_score": round(score, 4)}
            report["results"].append(result_record(res, mask=mask, mask_png=mask_path.name, **extra))
            share = report["results"][-1]["foreground_share"]
            rows.append((res.query, list(res.repairs), int(res.tokens), int(res.forward_passes),
                         float(res.seconds), float(share)))
        report["seconds"] = round(seconds, 3)
        files.append(write_json_atomic(folder / "segment.json", report))

        blocks = []
        for res in results:
            blocks.append(f"query: {res.query}\n{res.text.rstrip()}")
        height, width = config.grid
        repaired = sum(1 for r in results if r.repairs)
        summary = (f"grid {height}x{width}, {len(results)} "
                   f"{'answer' if len(results) == 1 else 'answers'} ({repaired} repaired), "
                   f"{sum(r.tokens for r in results)} tokens, {sum(r.forward_passes for r in results)} forward "
                   f"passes, generation {sum(r.seconds for r in results):.2f} s, request {seconds:.2f} s, "
                   f"decoding {report['decoding']}" + (", refined with SAM" if scores[0] is not None else ""))
        return DemoResult(overlay=overlay, legend=legend, descriptor="\n\n".join(blocks), grid=grid,
                          masks=masks, report=report, files=files, summary=summary, rows=rows)

    def _present_caption(self, picture: Image.Image, name: str, answer: Any, segmenter: Any,
                         seconds: float) -> DemoResult:
        """A grounded caption: each phrase's mask in its colour, the marked caption, the downloads."""
        from text4seg.images import save_mask_png
        from text4seg.io import write_json_atomic
        from text4seg.segment import grounded_record, report_header

        rgb = np.asarray(picture, dtype=np.float64).copy()
        legend, lut, masks = [], {}, []
        for k, phrase in enumerate(answer.phrases):
            colour = PALETTE[k % len(PALETTE)]
            _blend(rgb, phrase.mask, colour)
            legend.append((phrase.text, colour, float(phrase.mask.mean())))
            lut[phrase.label] = colour
            masks.append(np.asarray(phrase.mask, dtype=bool))
        folder = self._request_dir()
        files = []
        for k, mask in enumerate(masks):
            save_mask_png(mask, folder / f"mask_{k}.png")
            files.append(folder / f"mask_{k}.png")
        report = report_header(name, picture, self.model, self.adapter, segmenter.config, self.load_seconds)
        report["mode"] = "caption"
        report["decoding"] = str(getattr(segmenter.backend, "decoding", self.decoding))
        report["results"].append(grounded_record(answer, mask_pngs=[p.name for p in files]))
        report["seconds"] = round(seconds, 3)
        files.append(write_json_atomic(folder / "segment.json", report))
        height, width = segmenter.config.grid
        summary = (f"grid {height}x{width}, caption with {len(answer.phrases)} grounded "
                   f"{'phrase' if len(answer.phrases) == 1 else 'phrases'} "
                   f"({'repaired' if answer.repairs else 'no repairs'}), {answer.tokens} tokens, "
                   f"{answer.forward_passes} forward passes, generation {answer.seconds:.2f} s, request "
                   f"{seconds:.2f} s, decoding {report['decoding']}")
        share = float(np.mean(np.any(masks, axis=0))) if masks else 0.0
        rows = [(answer.marked_caption, list(answer.repairs), int(answer.tokens), int(answer.forward_passes),
                 float(answer.seconds), share)]
        return DemoResult(overlay=Image.fromarray(np.rint(rgb).astype(np.uint8), "RGB"), legend=legend,
                          descriptor=f"caption: {answer.marked_caption}\n\n{answer.text.rstrip()}",
                          grid=grid_picture([np.asarray(answer.grid)], [lut]), masks=masks, report=report,
                          files=files, summary=summary, rows=rows)

    def _request_dir(self) -> Path:
        self._requests += 1
        folder = self.workdir / f"request_{self._requests:06d}"
        folder.mkdir(parents=True, exist_ok=True)
        old = self._requests - _KEEP_REQUEST_DIRS
        if old >= 1:
            shutil.rmtree(self.workdir / f"request_{old:06d}", ignore_errors=True)
        return folder

    # ---- the Video tab
    @property
    def strategies(self) -> tuple[str, ...]:
        """Video strategies a request may pick: propagate only with a SAM2 model (``--sam2``)."""
        return ("per-frame", "propagate") if self.propagator is not None else ("per-frame",)

    def load_video(self, path: str | os.PathLike | None, folder: Path) -> tuple[Any, str, str]:
        """Check and decode an uploaded video file or zip of frames.

        Args:
            path: the upload: a video file (MP4, WebM, GIF, ...: anything PyAV decodes) or a ``.zip`` of frames.
            folder: where a zip's frames are extracted (removed again once decoded).

        Returns:
            ``(VideoFrames, the upload's name, a note when the video was cut to the limits, else "")``.

        Raises:
            ValueError / FileNotFoundError: no file, over the upload limit, an unsafe or unreadable zip, a frame
                over the pixel limit, or not a readable video; the messages are ``text4seg segment-video``'s,
                naming the upload by its name.
        """
        from text4seg.video_io import read_frames

        path, name = self._upload(path, "video", "no video: upload a video file or a zip of frames")
        max_frames = self.options.max_video_frames
        source, shown = path, str(path)
        if path.suffix.lower() == ".zip":
            source = folder / "frames"
            shown = str(source)
        try:
            if source != path:
                extract_zip_frames(path, source, name=name, max_frames=max_frames + 1,
                                   max_bytes=_UNZIP_FACTOR * self.options.max_upload_bytes)
                sizes = _frame_sizes(source, name)
            else:
                sizes = _video_size(path, name)
            if sizes:
                width, height = sizes[0][1]
                for label, (w, h) in sizes:
                    if w * h > self.options.max_pixels:
                        raise ValueError(f"{label}: {w}x{h} = {w * h} pixels per frame exceeds the limit of "
                                         f"{self.options.max_pixels}")
                fits = self.options.max_video_pixels // (width * height)
                if fits < 1:
                    raise ValueError(f"{name}: a {width}x{height} frame exceeds the video limit of "
                                     f"{self.options.max_video_pixels} pixels")
                max_frames = min(max_frames, fits)
            try:
                frames = read_frames(source, max_frames=max_frames + 1)
            except (ValueError, OSError) as err:
                raise type(err)(str(err).replace(shown, name)) from err
        finally:
            if source != path:
                shutil.rmtree(source, ignore_errors=True)
        note = ""
        if len(frames.frames) > max_frames:
            frames.frames, frames.names = frames.frames[:max_frames], frames.names[:max_frames]
            which = ("--max-video-frames" if max_frames == self.options.max_video_frames
                     else f"--max-video-pixels {self.options.max_video_pixels} at this frame size")
            note = f"cut to the first {max_frames} frames ({which})"
        return frames, name, note

    def segment_video(self, video_path: str | os.PathLike | None, mode: str = "expression",
                      text: str | None = "", strategy: str = "per-frame", frame_stride: Any = 1,
                      keyframes: str = "first", candidates: Any = 4, decoding: str | None = None) -> VideoResult:
        """Answer one request of the Video tab (:meth:`text4seg.segmenter.Segmenter.segment_video`).

        Args:
            video_path: uploaded video file or zip of frames.
            mode: ``"expression"`` (a referring expression) or ``"instruction"`` (sent as is).
            text: the expression or instruction (one line).
            strategy: ``"per-frame"`` or, when the demo has a SAM2 model, ``"propagate"``.
            frame_stride: per-frame: answer every k-th frame.
            keyframes, candidates: propagate: ``first|middle|best|stride:N`` and the ``best`` candidates.
            decoding: one of :attr:`decoding_modes` (default: the loaded one).

        Returns:
            :class:`VideoResult`.

        Raises:
            ValueError / FileNotFoundError: bad upload or request (the message says what and why).
        """
        from text4seg.video_segment import parse_keyframes

        t0 = time.perf_counter()
        if mode not in VIDEO_MODES:
            raise ValueError(f"mode {mode!r}: expected one of {', '.join(VIDEO_MODES)}")
        query = " ".join((text or "").split())
        if not query:
            raise ValueError(f"no query: type {'a referring expression' if mode == 'expression' else 'an instruction'}")
        if strategy not in self.strategies:
            if strategy == "propagate":
                raise ValueError("--video-strategy propagate needs a SAM2 model: start the demo with --sam2 ID|DIR")
            raise ValueError(f"--video-strategy {strategy!r}: expected one of {', '.join(self.strategies)}")
        stride = _whole(frame_stride, "--frame-stride")
        count = _whole(candidates, "--candidates")
        if strategy == "propagate":
            parse_keyframes(str(keyframes))
        segmenter = self.segmenter_for(decoding)
        folder = self._request_dir()
        frames, name, note = self.load_video(video_path, folder)
        kwargs: dict[str, Any] = {"strategy": strategy}
        if strategy == "per-frame":
            kwargs["frame_stride"] = stride
        else:
            kwargs.update(keyframes=str(keyframes), candidates=count, propagator=self.propagator)
        if mode == "expression":
            result = segmenter.segment_video(frames.frames, query, **kwargs)
        else:
            result = segmenter.segment_video(frames.frames, instruction=query, **kwargs)
        return self._present_video(frames, name, query, result, segmenter, note, folder, time.perf_counter() - t0)

    def _present_video(self, frames: Any, name: str, query: str, result: Any, segmenter: Any, note: str,
                       folder: Path, seconds: float) -> VideoResult:
        import zipfile

        from text4seg.images import overlay_mask
        from text4seg.io import atomic_write, write_json_atomic
        from text4seg.video_io import write_mp4
        from text4seg.video_segment import video_record

        overlays = [np.asarray(overlay_mask(frame, mask)) for frame, mask in zip(frames.frames, result.masks)]
        overlay_path = write_mp4(folder / "overlay.mp4", overlays, frames.fps)
        masks_path = folder / "masks.zip"
        with atomic_write(masks_path, binary=True) as handle:
            with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                for frame_name, mask in zip(frames.names, result.masks):
                    buffer = io.BytesIO()
                    Image.fromarray(mask.astype(np.uint8) * 255).save(buffer, format="PNG")
                    archive.writestr(f"masks/{frame_name}.png", buffer.getvalue())
        record = video_record(result, frames, video=name, query=query, model=self.model, adapter=self.adapter,
                              load_seconds=self.load_seconds, overlay=overlay_path.name, masks_dir="masks")
        record["decoding"] = str(getattr(segmenter.backend, "decoding", self.decoding))
        record["request_seconds"] = round(seconds, 3)
        if note:
            record["note"] = note
        json_path = write_json_atomic(folder / "result.json", record)
        counts = {s: result.sources.count(s) for s in ("model", "propagated", "nearest", "empty")}
        height, width = frames.size
        shown = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        keys = ", ".join(frames.names[k] for k in result.keyframes) if result.keyframes else "none"
        summary = (f"{len(frames.frames)} frames {width}x{height} ({result.strategy}): {shown}; "
                   f"{result.model_calls} model answers, {result.forward_passes} forward passes, "
                   f"{result.sam2_calls} SAM2 passes, keyframes {_shorten(keys)}, video {result.seconds:.2f} s, "
                   f"request {seconds:.2f} s, decoding {record['decoding']}" + (f"; {note}" if note else ""))
        return VideoResult(overlay=overlay_path, timeline=timeline_picture(result.sources, result.keyframes),
                           masks=result.masks, sources=list(result.sources), keyframes=list(result.keyframes),
                           record=record, files=[overlay_path, json_path, masks_path], summary=summary,
                           details=timeline_html(frames.names, result, counts))

    # ---- Gradio callbacks: they never raise
    def preview(self, image_path: str | None) -> tuple[Any, str]:
        """``(image or None, status HTML)`` for a newly chosen file: the image, or why it cannot be used."""
        if image_path is None:
            return None, ""
        try:
            picture, name = self.load_upload(image_path)
        except Exception as err:  # noqa: BLE001 - every failure becomes a message in the page
            return None, status_html(error_message(err), error=True)
        return picture, status_html(f"{name}: {picture.width}x{picture.height}")

    def respond(self, image_path: str | None, mode: str, text: str | None, decoding: str | None,
                refine: bool = False) -> tuple[Any, ...]:
        """The Segment button: ``(status, overlay, legend, descriptor, grid, details, files)``; any failure is
        a message in ``status`` and empty outputs."""
        try:
            result = self.segment(image_path, mode, text, decoding, bool(refine))
        except Exception as err:  # noqa: BLE001 - every failure becomes a message in the page
            return status_html(error_message(err), error=True), None, "", "", None, "", None
        return (status_html(result.summary), result.overlay, legend_html(result.legend), result.descriptor,
                result.grid, details_html(result.rows), [str(p) for p in result.files])

    def respond_video(self, video_path: str | None, mode: str, text: str | None, strategy: str,
                      frame_stride: Any, keyframes: str, candidates: Any, decoding: str | None) -> tuple[Any, ...]:
        """The Segment video button: ``(status, overlay video, timeline, details, files)``; any failure is a
        message in ``status`` and empty outputs."""
        try:
            result = self.segment_video(video_path, mode, text, strategy, frame_stride, keyframes, candidates,
                                        decoding)
        except Exception as err:  # noqa: BLE001 - every failure becomes a message in the page
            return status_html(error_message(err), error=True), None, None, "", None
        return (status_html(result.summary), str(result.overlay), result.timeline, result.details,
                [str(p) for p in result.files])

    def close(self) -> None:
        """Remove the downloads folder (when the handler made it)."""
        if self._owned_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def error_message(err: BaseException) -> str:
    """The one line a user sees: the CLI's ``error: ...`` for input errors, a short note for anything else
    (its traceback goes to the server log, not to the page)."""
    from text4seg._optional import MissingDependency

    if isinstance(err, (ValueError, OSError, MissingDependency)):
        return f"error: {err}"
    logger.error("demo request failed", exc_info=err)
    return f"error: the request failed ({type(err).__name__}); the server log has the details"


def status_html(text: str, *, error: bool = False) -> str:
    """A status line (escaped: it may quote file names and model output)."""
    kind = "t4s-error" if error else "t4s-ok"
    style = "color:#b00020;font-weight:600" if error else "color:inherit"
    return f'<div class="{kind}" style="{style}">{html.escape(text)}</div>'


def legend_html(legend: Sequence[tuple[str, tuple[int, int, int], float]]) -> str:
    """Colour swatches with each query's or class's name and pixel share."""
    items = []
    for name, (r, g, b), share in legend:
        items.append(
            f'<span class="t4s-legend-item" style="margin-right:1em;white-space:nowrap">'
            f'<span style="display:inline-block;width:0.9em;height:0.9em;background:rgb({r},{g},{b});'
            f'vertical-align:middle;margin-right:0.3em;border:1px solid #333"></span>'
            f"{html.escape(name)} ({100 * share:.1f}%)</span>")
    return '<div class="t4s-legend">' + "".join(items) + "</div>"


def details_html(rows: Sequence[tuple[str, list[str], int, int, float, float]]) -> str:
    """Per query: repairs, tokens, forward passes, seconds, foreground share (an escaped HTML table)."""
    head = ("<tr><th>query</th><th>repairs</th><th>tokens</th><th>forward passes</th><th>seconds</th>"
            "<th>foreground</th></tr>")
    body = []
    for query, repairs, tokens, passes, seconds, share in rows:
        fixes = "<br>".join(html.escape(r) for r in repairs) if repairs else "none"
        body.append(f"<tr><td>{html.escape(query)}</td><td>{fixes}</td><td>{tokens}</td><td>{passes}</td>"
                    f"<td>{seconds:.2f}</td><td>{100 * share:.1f}%</td></tr>")
    return f'<table class="t4s-details">{head}{"".join(body)}</table>'


# ------------------------------------------------------------------------------------------ loading, app


def load_demo(model: str | os.PathLike, adapter: str | os.PathLike | None = None, *,
              load: LoadOptions | None = None, decoding: DecodingOptions | str | None = None,
              question_template: str | None = None, options: DemoOptions | None = None) -> DemoHandler:
    """Load the model (and SAM when ``options.sam_checkpoint`` is set, SAM2 when ``options.sam2`` is) once, for
    :func:`serve`.

    Args:
        model, adapter: as :meth:`text4seg.segmenter.Segmenter.from_pretrained`.
        load, decoding: loading and generation options; ``decoding`` is the page's default mode.
        question_template: override the model's referring question.
        options: :class:`DemoOptions`.
    """
    from text4seg.segmenter import Segmenter

    options = options or DemoOptions()
    t0 = time.perf_counter()
    segmenter = Segmenter.from_pretrained(model, adapter, load=load, decoding=decoding,
                                          question_template=question_template)
    refiner = None
    if options.sam_checkpoint is not None:
        from text4seg.refine import SamRefiner

        device = None if load is None or load.device is None else str(load.device)
        refiner = SamRefiner.from_checkpoint(options.sam_checkpoint, options.sam_type, device=device)
    propagator = None
    if options.sam2 is not None:
        from text4seg.refine.sam2_video import Sam2Propagator

        device = None if load is None or load.device is None else str(load.device)
        propagator = Sam2Propagator.from_pretrained(options.sam2, device=device)
    return DemoHandler(segmenter, options, refiner=refiner, model=model, adapter=adapter,
                       load_seconds=time.perf_counter() - t0, propagator=propagator)


def build_app(handler: DemoHandler) -> Any:
    """The Gradio Blocks page over ``handler`` (not launched; :func:`serve` queues and launches it).

    Two tabs: Image (:meth:`DemoHandler.respond`) and Video (:meth:`DemoHandler.respond_video`); both run on
    the one model, one request at a time (a shared concurrency slot).
    """
    gr = _gradio()
    config = handler.segmenter.config
    height, width = config.grid
    refine_note = "" if handler.refiner is not None else " (start with --sam-checkpoint to offer SAM refinement)"
    # delete_cache: Gradio's copies of uploads and results older than an hour go, checked hourly
    with gr.Blocks(title="text4seg demo", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown(f"## text4seg demo\nModel `{html.escape(handler.model)}`: {height}x{width} descriptor grid, "
                    f"{config.descriptor_form} descriptors. One request runs at a time; others wait in the "
                    f"queue. Uploads up to {handler.options.max_upload_mb:g} MB and "
                    f"{handler.options.max_pixels / 1e6:g} megapixels.")
        with gr.Tab("Image"):
            with gr.Row():
                with gr.Column():
                    upload = gr.File(label="image (PNG, JPEG, ...)", type="filepath", elem_id="t4s-upload")
                    preview = gr.Image(label="input", interactive=False, type="pil", format="png",
                                       elem_id="t4s-preview", height=240)
                    mode = gr.Radio(list(MODES), value="referring", label="mode",
                                    info="referring: a mask per line; instruction: each line sent as is "
                                    "(reasoning); classes: one semantic prompt of the names; caption: a grounded "
                                    "caption, a mask per phrase (the text, if any, replaces the request)",
                                    elem_id="t4s-mode")
                    text = gr.Textbox(label="query (one per line)", lines=3, elem_id="t4s-query",
                                      placeholder="the red circle")
                    decoding = gr.Dropdown(list(handler.decoding_modes), value=handler.decoding,
                                           label="decoding", elem_id="t4s-decoding")
                    refine = gr.Checkbox(False, label=f"refine with SAM{refine_note}",
                                         interactive=handler.refiner is not None, elem_id="t4s-refine")
                    button = gr.Button("Segment", variant="primary", elem_id="t4s-segment")
                with gr.Column():
                    status = gr.HTML(elem_id="t4s-status")
                    overlay = gr.Image(label="overlay", interactive=False, type="pil", format="png",
                                       elem_id="t4s-overlay")
                    legend = gr.HTML(elem_id="t4s-legend")
                    grid = gr.Image(label="descriptor grid", interactive=False, type="pil", format="png",
                                    elem_id="t4s-grid", height=200)
                    descriptor = gr.Textbox(label="descriptor (model answer)", lines=6, interactive=False,
                                            elem_id="t4s-descriptor")
                    details = gr.HTML(elem_id="t4s-details")
                    files = gr.File(label="downloads: mask PNG, JSON (COCO RLE)", file_count="multiple",
                                    interactive=False, elem_id="t4s-files")
            bundled = examples()
            if bundled:
                gr.Examples([[str(p), m, t] for p, m, t in bundled], inputs=[upload, mode, text],
                            label="bundled examples (synthetic)")
        with gr.Tab("Video"):
            with gr.Row():
                with gr.Column():
                    vupload = gr.File(label="video (MP4, WebM, GIF, ...) or a zip of frames (PNG, JPEG, ...)",
                                      type="filepath", elem_id="t4s-video-upload")
                    vmode = gr.Radio(list(VIDEO_MODES), value="expression", label="mode",
                                     info="expression: a referring expression; instruction: sent as is",
                                     elem_id="t4s-video-mode")
                    vtext = gr.Textbox(label="expression", lines=1, elem_id="t4s-video-query",
                                       placeholder="the red circle moving right")
                    strategy = gr.Radio(list(handler.strategies), value="per-frame", label="strategy",
                                        info="per-frame: the model on every k-th frame, the rest take the "
                                        "nearest answer; propagate: the model on keyframes, SAM2 carries them"
                                        + ("" if handler.propagator is not None
                                           else " (start with --sam2 ID|DIR to offer propagate)"),
                                        elem_id="t4s-video-strategy")
                    with gr.Row():
                        stride = gr.Number(1, label="frame stride (per-frame)", precision=0, minimum=1,
                                           elem_id="t4s-video-stride")
                        keyframes = gr.Dropdown(["first", "middle", "best", "stride:5"], value="first",
                                                allow_custom_value=True, label="keyframes (propagate)",
                                                info="first, middle, best or stride:N",
                                                interactive=handler.propagator is not None,
                                                elem_id="t4s-video-keyframes")
                        candidates = gr.Number(4, label="candidates (best)", precision=0, minimum=1,
                                               interactive=handler.propagator is not None,
                                               elem_id="t4s-video-candidates")
                    vdecoding = gr.Dropdown(list(handler.decoding_modes), value=handler.decoding,
                                            label="decoding", elem_id="t4s-video-decoding")
                    vbutton = gr.Button("Segment video", variant="primary", elem_id="t4s-video-segment")
                    gr.Markdown(f"Videos up to {handler.options.max_video_frames} frames and "
                                f"{handler.options.max_video_pixels / 1e6:g} megapixels in all (longer ones are "
                                f"cut); a zip holds the frames of one video, taken in natural name order.")
                with gr.Column():
                    vstatus = gr.HTML(elem_id="t4s-video-status")
                    voverlay = gr.Video(label="overlay", interactive=False, format="mp4", autoplay=False,
                                        loop=True, elem_id="t4s-video-overlay")
                    timeline = gr.Image(label="timeline: a cell per frame by mask source, keyframes marked",
                                        interactive=False, type="pil", format="png", height=80,
                                        elem_id="t4s-video-timeline")
                    vdetails = gr.HTML(elem_id="t4s-video-details")
                    vfiles = gr.File(label="downloads: overlay MP4, result JSON (COCO RLE), masks zip",
                                     file_count="multiple", interactive=False, elem_id="t4s-video-files")
        vbutton.click(handler.respond_video,
                      inputs=[vupload, vmode, vtext, strategy, stride, keyframes, candidates, vdecoding],
                      outputs=[vstatus, voverlay, timeline, vdetails, vfiles], api_name="segment_video",
                      concurrency_limit=1, concurrency_id="model")
        upload.change(handler.preview, inputs=[upload], outputs=[preview, status], api_name="preview",
                      concurrency_limit=4, concurrency_id="preview")
        button.click(handler.respond, inputs=[upload, mode, text, decoding, refine],
                     outputs=[status, overlay, legend, descriptor, grid, details, files], api_name="segment",
                     concurrency_limit=1, concurrency_id="model")
    return app


def _gradio() -> Any:
    from text4seg._optional import require

    return require("gradio", extra="demo", purpose="text4seg demo")


def _theme(gr: Any) -> Any:
    # system fonts: the default theme fetches Google fonts, and the page must work without a network
    return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                             font_mono=["ui-monospace", "monospace"])


def serve(handler: DemoHandler, options: DemoOptions | None = None, *, block: bool = True,
          stream: Any = None) -> Any:
    """Queue and launch the page.

    Args:
        handler: from :func:`load_demo`.
        options: serving settings (default: the handler's).
        block: wait until interrupted (Ctrl-C); False returns at once with the server running (tests).
        stream: where warnings and the address are printed (default stderr / stdout).

    Returns:
        The Gradio ``Blocks`` app (``app.close()`` stops it).
    """
    gr = _gradio()
    options = options or handler.options
    for line in options.warnings():
        print(f"text4seg demo: warning: {line}", file=stream or sys.stderr)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    app = build_app(handler)
    app.queue(max_size=options.queue_size, default_concurrency_limit=1)
    app.launch(server_name=options.host, server_port=options.port, share=options.share,
               max_file_size=options.max_upload_bytes, prevent_thread_lock=True, show_error=False,
               quiet=True, ssr_mode=False, allowed_paths=[str(DEMO_ASSETS)], theme=_theme(gr),
               footer_links=["api"])
    print(f"text4seg demo: serving {app.local_url} (Ctrl-C stops it)", file=stream or sys.stdout, flush=True)
    if app.share_url:
        print(f"text4seg demo: public link {app.share_url}", file=stream or sys.stdout, flush=True)
    if block:
        try:
            app.block_thread()
        finally:
            handler.close()
    return app
