"""The demo's page: :func:`load_demo` loads the model once, :func:`build_app` wires a :class:`DemoHandler`
into Gradio components, :func:`serve` queues requests and binds to 127.0.0.1 unless asked otherwise.
"""

from __future__ import annotations

import html
import os
import sys
import time
from typing import Any

from text4seg.demo.handler import DemoHandler
from text4seg.demo.options import DEMO_ASSETS, MODES, VIDEO_MODES, DemoOptions, examples
from text4seg.options import DecodingOptions, LoadOptions


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
