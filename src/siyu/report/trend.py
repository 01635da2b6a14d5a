"""Report sections over time: the trend across periods and the diagnosis of what changed."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from siyu.metrics.labels import METRIC_NAMES
from siyu.report.charts import Charts, base_layout
from siyu.report.diagnosis import as_float, as_int
from siyu.report.markup import as_dict, chart_label, esc, no_data
from siyu.report.style import ACCENT


def trend_section(trend: list[dict[str, Any]], charts: Charts) -> str:
    points = [t for t in trend if isinstance(t, dict)]
    if len(points) < 2:
        return no_data(("趋势需要至少两个周期", "trend needs at least 2 periods"))
    x = [esc(str(t.get("period") or i)) for i, t in enumerate(points)]
    capital = [as_int(t.get("capital")) or 0 for t in points]
    rates = [as_float(as_dict(t.get("conversion")).get("rate")) for t in points]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go.Scatter(
            x=x,
            y=capital,
            name=chart_label(METRIC_NAMES["capital"]),
            mode="lines+markers",
            line={"color": ACCENT, "width": 3},
            hovertemplate="%{x}<br>%{y:,}<extra></extra>",
        ),
        secondary_y=False,
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[None if r is None else r * 100 for r in rates],
            name=chart_label(METRIC_NAMES["conversion"]) + " %",
            mode="lines+markers",
            line={"color": "#e76f51", "width": 2, "dash": "dot"},
            connectgaps=False,
            hovertemplate="%{x}<br>%{y:.1f}%<extra></extra>",
        ),
        secondary_y=True,
    )
    base_layout(fig, 400)
    fig.update_xaxes(type="category")
    fig.update_yaxes(
        title_text=chart_label(METRIC_NAMES["capital"]), rangemode="tozero", tickformat=",d", secondary_y=False
    )
    fig.update_yaxes(
        title_text="%", rangemode="tozero", tickmode="auto", nticks=6, showgrid=False, ticksuffix="%", secondary_y=True
    )
    return charts.div(fig, "trend")


def diagnosis_section(sentences: list[dict[str, str]]) -> str:
    if not sentences:
        return no_data()
    zh = "".join(f"<li>{esc(s.get('zh', ''))}</li>" for s in sentences)
    en = "".join(f"<li>{esc(s.get('en', ''))}</li>" for s in sentences)
    return (
        f'<div class="cols"><div lang="zh-CN"><h3>中文</h3><ul>{zh}</ul></div>'
        f'<div lang="en"><h3>English</h3><ul>{en}</ul></div></div>'
    )
