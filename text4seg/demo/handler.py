""":class:`DemoHandler`: the page's requests in plain Python (no Gradio), one model loaded once; the Image and
Video tabs' requests come from :class:`~text4seg.demo.image_tab.ImageTab` and
:class:`~text4seg.demo.video_tab.VideoTab`, and the Gradio callbacks here never raise.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from text4seg.demo.drawing import details_html, error_message, legend_html, status_html
from text4seg.demo.image_tab import ImageTab
from text4seg.demo.options import _KEEP_REQUEST_DIRS, DemoOptions
from text4seg.demo.video_tab import VideoTab
from text4seg.options import DECODING_MODES


class DemoHandler(ImageTab, VideoTab):
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

    def _request_dir(self) -> Path:
        self._requests += 1
        folder = self.workdir / f"request_{self._requests:06d}"
        folder.mkdir(parents=True, exist_ok=True)
        old = self._requests - _KEEP_REQUEST_DIRS
        if old >= 1:
            shutil.rmtree(self.workdir / f"request_{old:06d}", ignore_errors=True)
        return folder

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
