"""The demo's pictures and HTML: the descriptor grid, the video timeline, the legend, the details table and
the status line (no torch).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from text4seg.demo.options import _GRID_BACKGROUND, SOURCE_COLOURS

logger = logging.getLogger(__name__)


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
