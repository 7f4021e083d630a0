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

from text4seg.demo.app import build_app, load_demo, serve
from text4seg.demo.drawing import grid_picture, timeline_picture
from text4seg.demo.frames import extract_zip_frames
from text4seg.demo.handler import DemoHandler
from text4seg.demo.options import (
    DEMO_ASSETS,
    MODES,
    PALETTE,
    SOURCE_COLOURS,
    VIDEO_MODES,
    DemoOptions,
    DemoResult,
    VideoResult,
    examples,
    write_demo_assets,
)

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
