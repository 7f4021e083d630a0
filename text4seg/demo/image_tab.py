"""The Image tab's requests: an upload checked (size, pixel count before decoding, readable image), the
segmenter run (referring, instruction, classes or caption mode; optional SAM refinement), the overlay, legend,
grid picture and downloads (the JSON of ``text4seg segment --json``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from text4seg.demo.drawing import _blend, grid_picture
from text4seg.demo.options import MODES, PALETTE, DemoResult


class ImageTab:
    """The Image tab's requests (a mixin of :class:`~text4seg.demo.handler.DemoHandler`)."""

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
