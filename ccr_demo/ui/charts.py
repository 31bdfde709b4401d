"""Grouped bar charts as inline SVG: one group per language, one bar per series (a model, or a
metric), the value axis from 0.

Why not Gradio's plots: its native plots stack bars that share an x value (two models' R@1 would
add up to 160%) and start their axes at the data's minimum, which made 93-98% look like 0-100;
and one redrawn twice in quick succession could keep the older drawing (the rank plot showed an
earlier query's images). An SVG string drawn here is what the server computed, whole, every time,
and a test can read each bar's value from it (``data-value``).
"""

from __future__ import annotations

from html import escape
from typing import Mapping, Sequence

# colour-blind-safe (Okabe-Ito), one per series in order
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00")


def grouped_bars(title: str, groups: Sequence[str], values: Mapping[str, Mapping[str, float | None]],
                 y_max: float = 100.0, unit: str = "%", chart_id: str = "", height: int = 260) -> str:
    """``values[series][group]`` as bars grouped by ``groups`` (None or a missing value: no bar),
    the axis from 0 to ``y_max`` with gridlines every 20%, each bar labelled with its value."""
    series = list(values)
    width, left, bottom, top = 760, 44, 34, 34
    plot_w, plot_h = width - left - 10, height - bottom - top
    slot = plot_w / max(len(groups), 1)
    bar = min(28.0, slot * 0.8 / max(len(series), 1))
    parts = [f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="{escape(title)}" '
             'xmlns="http://www.w3.org/2000/svg" style="max-width:760px;font:11px sans-serif">',
             f'<text x="{left}" y="14" font-size="13" font-weight="600">{escape(title)}</text>']
    for i in range(6):  # gridlines and axis labels: 0, 20 ... 100% of y_max
        value = y_max * i / 5
        y = top + plot_h * (1 - i / 5)
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#555">{value:g}</text>')
    for g, group in enumerate(groups):
        x0 = left + g * slot + (slot - bar * len(series)) / 2
        for s, name in enumerate(series):
            value = values[name].get(group)
            if value is None:
                continue
            h = plot_h * max(0.0, min(float(value), y_max)) / y_max
            x, y = x0 + s * bar, top + plot_h - h
            parts.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar - 2:.1f}" height="{h:.1f}" '
                         f'fill="{COLOURS[s % len(COLOURS)]}" data-series="{escape(name)}" '
                         f'data-group="{escape(group)}" data-value="{value:g}">'
                         f'<title>{escape(name)}, {escape(group)}: {value:.1f}{unit}</title></rect>'
                         f'<text x="{x + (bar - 2) / 2:.1f}" y="{y - 2:.1f}" text-anchor="middle" font-size="9" '
                         f'fill="#333">{value:.0f}</text>')
        parts.append(f'<text x="{left + (g + 0.5) * slot:.1f}" y="{height - bottom + 14}" text-anchor="middle">'
                     f'{escape(group)}</text>')
    x = left
    for s, name in enumerate(series):  # legend, under the group labels
        parts.append(f'<rect x="{x}" y="{height - 12}" width="10" height="10" fill="{COLOURS[s % len(COLOURS)]}"/>'
                     f'<text x="{x + 14}" y="{height - 3}">{escape(name)}</text>')
        x += 20 + 7 * len(name)
    parts.append("</svg>")
    return f'<div class="ccr-chart" id="{escape(chart_id)}">' + "".join(parts) + "</div>"
