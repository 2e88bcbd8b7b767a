"""Server-side SVG: a metric across versions, two versions side by side, and the lineage graph.

Drawn here rather than by a JavaScript chart library so the pages need no
script to show them and stay within ``default-src 'self'``. Colours and
fonts come from classes in ``static/atoll.css`` (an inline ``style``
attribute would be refused by the page's CSP); every text is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from markupsafe import Markup, escape

BAR_HEIGHT = 18
GAP = 6
LABEL_WIDTH = 170
PLOT_WIDTH = 420
VALUE_WIDTH = 90


@dataclass(frozen=True)
class Bar:
    """One bar: a label (linked when ``href`` is set) and its value."""

    label: str
    value: float
    href: str | None = None
    css: str = "bar"


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _link(href: str | None, inner: str) -> str:
    return f'<a href="{escape(href)}">{inner}</a>' if href else inner


def bar_chart(title: str, bars: Sequence[Bar]) -> Markup:
    """Horizontal bars scaled from 0 (or from the smallest value when some are negative)."""
    if not bars:
        return Markup("")
    low = min(0.0, *(b.value for b in bars))
    high = max(0.0, *(b.value for b in bars))
    span = (high - low) or 1.0
    zero_x = LABEL_WIDTH + (0 - low) / span * PLOT_WIDTH
    height = 28 + len(bars) * (BAR_HEIGHT + GAP)
    width = LABEL_WIDTH + PLOT_WIDTH + VALUE_WIDTH
    parts = [
        (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
         f'viewBox="0 0 {width} {height}" aria-label="{escape(title)}">'),
        f'<text class="chart-title" x="0" y="16">{escape(title)}</text>',
    ]
    for i, bar in enumerate(bars):
        y = 26 + i * (BAR_HEIGHT + GAP)
        x = LABEL_WIDTH + (min(bar.value, 0) - low) / span * PLOT_WIDTH
        w = max(abs(bar.value) / span * PLOT_WIDTH, 1.0)
        label = f'<text class="chart-label" x="{LABEL_WIDTH - 8}" y="{y + 13}" text-anchor="end">{escape(bar.label)}</text>'
        parts += [
            _link(bar.href, label),
            (f'<rect class="{escape(bar.css)}" x="{x:.1f}" y="{y}" width="{w:.1f}" height="{BAR_HEIGHT}">'
             f"<title>{escape(bar.label)}: {escape(_fmt(bar.value))}</title></rect>"),
            f'<text class="chart-value" x="{LABEL_WIDTH + PLOT_WIDTH + 6}" y="{y + 13}">{escape(_fmt(bar.value))}</text>',
        ]
    parts.append(f'<line class="axis" x1="{zero_x:.1f}" y1="22" x2="{zero_x:.1f}" y2="{height}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


def side_by_side(a: str, b: str, metrics: dict[str, tuple[float | None, float | None]]) -> Markup:
    """Every numeric metric of versions ``a`` and ``b`` as pairs of bars."""
    bars: list[Bar] = []
    for metric, (va, vb) in sorted(metrics.items()):
        if va is not None:
            bars.append(Bar(f"{metric} · {a}", va, css="bar bar-a"))
        if vb is not None:
            bars.append(Bar(f"{metric} · {b}", vb, css="bar bar-b"))
    return bar_chart(f"{a} vs {b}", bars)


@dataclass(frozen=True)
class Node:
    """A box of the lineage graph."""

    kind: str  # dataset | training | version | deployment | pretrained
    label: str
    href: str | None = None


NODE_W = 190
NODE_H = 44
COL_GAP = 60
ROW_GAP = 14


def lineage(columns: Sequence[Sequence[Node]]) -> Markup:
    """Columns of boxes left to right (dataset → training → version → deployments), each
    box joined to every box of the next column; a box links to its page."""
    columns = [list(c) for c in columns if c]
    if not columns:
        return Markup("")
    rows = max(len(c) for c in columns)
    width = len(columns) * NODE_W + (len(columns) - 1) * COL_GAP + 2
    height = rows * NODE_H + (rows - 1) * ROW_GAP + 2
    centres: list[list[tuple[float, float]]] = []
    boxes: list[str] = []
    for ci, column in enumerate(columns):
        x = 1 + ci * (NODE_W + COL_GAP)
        top = 1 + (height - (len(column) * NODE_H + (len(column) - 1) * ROW_GAP)) / 2
        col_centres: list[tuple[float, float]] = []
        for ri, node in enumerate(column):
            y = top + ri * (NODE_H + ROW_GAP)
            col_centres.append((x, y + NODE_H / 2))
            box = (
                f'<g class="node node-{escape(node.kind)}">'
                f'<rect x="{x}" y="{y:.1f}" width="{NODE_W}" height="{NODE_H}" rx="6"/>'
                f'<text class="node-kind" x="{x + 10}" y="{y + 17:.1f}">{escape(node.kind)}</text>'
                f'<text class="node-label" x="{x + 10}" y="{y + 35:.1f}">{escape(_clip(node.label))}</text>'
                f"<title>{escape(node.kind)} {escape(node.label)}</title></g>"
            )
            boxes.append(_link(node.href, box))
        centres.append(col_centres)
    edges = []
    for left, right in pairwise(centres):
        for lx, ly in left:
            for rx, ry in right:
                edges.append(f'<line class="edge" x1="{lx + NODE_W}" y1="{ly:.1f}" x2="{rx}" y2="{ry:.1f}"/>')
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-label="lineage">' + "".join(edges) + "".join(boxes) + "</svg>"
    )


def _clip(text: str, limit: int = 26) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
