"""Plotly figures for the report: one look for every chart, an empty "no data" chart, and the chart divs."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from siyu.report.markup import NO_DATA, chart_label, esc
from siyu.report.style import CHART_HEIGHT, FONT_STACK

# No mode bar (its buttons link to plotly.com) and no logo: the report is read, not edited.
PLOTLY_CONFIG: dict[str, Any] = {"displaylogo": False, "displayModeBar": False, "responsive": True}


def base_layout(fig: go.Figure, height: int = CHART_HEIGHT, **extra: Any) -> go.Figure:
    """Same look for every chart; a fixed height so the page does not reflow as charts draw."""
    layout: dict[str, Any] = {
        "template": "plotly_white",
        "height": height,
        "margin": {"l": 60, "r": 30, "t": 40, "b": 60},
        "font": {"family": FONT_STACK, "size": 13, "color": "#1f2933"},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0},
        "hoverlabel": {"font": {"family": FONT_STACK}},
    }
    fig.update_layout(layout | extra)
    return fig


def empty_figure(height: int = 260, message: tuple[str, str] = NO_DATA) -> go.Figure:
    """An empty chart that still renders (axes hidden) with a centred "无数据 no data"."""
    fig = go.Figure()
    fig.add_annotation(
        text=chart_label(message), x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font={"size": 18}
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return base_layout(fig, height)


class Charts:
    """Turns figures into chart divs with stable ids (deterministic output for identical data)."""

    def __init__(self) -> None:
        self.count = 0

    def div(self, fig: go.Figure, name: str) -> str:
        self.count += 1
        body = fig.to_html(
            full_html=False, include_plotlyjs=False, div_id=f"chart-{name}", config=PLOTLY_CONFIG, validate=True
        )
        return f'<div class="chart" data-chart="{esc(name)}">{body}</div>'
