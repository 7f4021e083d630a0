"""The Video tab's requests: a video file (PyAV) or zip of frames segmented by one expression or instruction
with :meth:`text4seg.Segmenter.segment_video` (per-frame, or keyframes carried by SAM2), an overlay MP4, a
timeline of mask sources and keyframes, and the ``text4seg segment-video`` downloads.
"""

from __future__ import annotations

import io
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from text4seg.demo.drawing import _shorten, timeline_html, timeline_picture
from text4seg.demo.frames import _frame_sizes, _video_size, _whole, extract_zip_frames
from text4seg.demo.options import _UNZIP_FACTOR, VIDEO_MODES, VideoResult


class VideoTab:
    """The Video tab's requests (a mixin of :class:`~text4seg.demo.handler.DemoHandler`)."""

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
