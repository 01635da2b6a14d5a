"""The FAST+ health report (私域健康度报告) as ONE self-contained HTML file.

Why one file with plotly.js inlined: the report is mailed around and opened on laptops inside
company networks, often offline or behind proxies that block CDNs. So the page has no external
script, stylesheet, font or image; plotly.js (~5 MB) is embedded once in <head> and every chart is a
plotly figure div that draws from that copy. Every label is bilingual (zh-CN first, then English)
because operators and head office read the same report, and every piece of text that comes from data
(brand, field names, periods) is HTML-escaped. Money arrives as integer fen and is only turned into
¥ strings (or yuan floats for bar heights) at the very end, so the numbers shown match the ledger.

Missing data never crashes the report: a section without data still draws an empty chart with a
"无数据 no data" note, so the layout (and the browser test) stays the same for a brand-new brand.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from siyu.core.output import atomic_output, output_format
from siyu.metrics.labels import LAYER_NAMES, METRIC_NAMES, PRIVATE_LAYERS, RANK, RFM_GROUPS, bilingual
from siyu.report.diagnosis import (
    DASH,
    as_float,
    as_int,
    diagnose,
    field_label,
    format_count,
    format_money,
    format_rate,
    relative_change,
    signed_pct,
    signed_pp,
)

FONT_STACK = (
    '-apple-system, BlinkMacSystemFont, "Segoe UI", "PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", '
    '"Noto Sans CJK SC", "Noto Sans SC", "WenQuanYi Micro Hei", Roboto, "Helvetica Neue", Arial, sans-serif'
)
# No mode bar (its buttons link to plotly.com) and no logo: the report is read, not edited.
PLOTLY_CONFIG: dict[str, Any] = {"displaylogo": False, "displayModeBar": False, "responsive": True}
LAYER_COLORS = {
    "none": "#9aa5b1",
    "basic": "#8ecae6",
    "member_no_purchase": "#219ebc",
    "purchased": "#2a9d8f",
    "repurchase": "#e9a23b",
    "koc": "#e76f51",
}
PREVIOUS_COLOR = "#cbd2d9"
ACCENT = "#3b5bdb"
TIER_NAMES = {"none": ("无", "none"), "low": ("低", "low"), "mid": ("中", "mid"), "high": ("高", "high")}
GRAIN_NAMES = {"month": ("月", "month"), "week": ("周", "week"), "quarter": ("季度", "quarter"), "year": ("年", "year")}
NO_DATA = ("无数据", "no data")

CHART_HEIGHT = 420
TITLE = ("私域健康度报告", "Private-domain health report")
SECTIONS: tuple[tuple[str, tuple[str, str]], ...] = (
    ("kpis", ("核心指标", "Key metrics")),
    ("layers", ("关系分层", "Relationship layers")),
    ("transitions", ("关系流转", "Layer transitions")),
    ("connection", METRIC_NAMES["connection"]),
    ("clv", METRIC_NAMES["clv"]),
    ("clv-matrix", ("分层CLV矩阵", "CLV matrix")),
    ("predicted-clv", ("预测CLV", "Predicted CLV")),
    ("rfm", ("RFM 客户分群", "RFM segments")),
    ("lifecycle", ("生命周期", "Lifecycle")),
    ("trend", ("趋势", "Trend")),
    ("diagnosis", ("诊断", "Diagnosis")),
)

CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f4f6fa;color:#1f2933;font-family:__FONT__;font-size:15px;line-height:1.55}
header{background:linear-gradient(120deg,#243b6b,#3b5bdb);color:#fff;padding:28px 0 22px}
.wrap{max-width:1200px;margin:0 auto;padding:0 24px}
header h1{margin:0 0 6px;font-size:26px;font-weight:650;letter-spacing:.3px}
header .meta{display:flex;flex-wrap:wrap;gap:8px 18px;font-size:14px;opacity:.92}
header .meta b{font-weight:600}
header h1 .en{color:rgba(255,255,255,.78)}
nav{display:flex;flex-wrap:wrap;gap:6px;margin-top:16px}
nav a{color:#fff;text-decoration:none;font-size:13px;padding:3px 10px;border:1px solid rgba(255,255,255,.35);
border-radius:999px}
nav a:hover{background:rgba(255,255,255,.15)}
main{padding:22px 0 40px}
section{background:#fff;border-radius:14px;box-shadow:0 1px 3px rgba(15,23,42,.08),0 6px 18px rgba(15,23,42,.04);
padding:20px 22px;margin:0 0 20px}
section h2{margin:0 0 14px;font-size:19px;font-weight:650}
section h2 .en,.en{color:#52606d;font-weight:500}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(230px,1fr));gap:14px}
.kpi{border:1px solid #e4e7eb;border-radius:12px;padding:14px 16px;background:#fbfcfe}
.kpi .label{font-size:13px;color:#52606d}
.kpi .value{font-size:30px;font-weight:700;margin:4px 0 2px;font-variant-numeric:tabular-nums}
.kpi .sub{font-size:12.5px;color:#616e7c}
.delta{font-size:13.5px;font-weight:600;font-variant-numeric:tabular-nums}
.delta.up{color:#1a7f4b}.delta.down{color:#c92a2a}.delta.flat,.delta.none{color:#7b8794}
.stats{display:flex;flex-wrap:wrap;gap:10px;margin:0 0 12px}
.stat{background:#f1f4f9;border-radius:10px;padding:8px 12px;font-size:13px}
.stat b{display:block;font-size:17px;font-variant-numeric:tabular-nums}
.chart{width:100%;margin:6px 0 10px}
.note{font-size:13px;color:#616e7c;margin:6px 0}
.nodata{display:inline-block;background:#fff4e6;color:#a0522d;border-radius:8px;padding:4px 10px;font-size:13px}
table{border-collapse:collapse;width:100%;font-size:13.5px;margin-top:8px}
th,td{padding:7px 10px;border-bottom:1px solid #e4e7eb;text-align:right;font-variant-numeric:tabular-nums}
th{background:#f5f7fa;font-weight:600;color:#3e4c59}
th:first-child,td:first-child{text-align:left}
details summary{cursor:pointer;font-size:13px;color:__ACCENT__;margin-top:6px}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:18px}
.cols h3{margin:0 0 6px;font-size:15px}
.cols ul{margin:0;padding-left:20px}.cols li{margin:4px 0}
footer{color:#7b8794;font-size:12.5px;text-align:center;padding:0 0 30px}
""".replace("__FONT__", FONT_STACK).replace("__ACCENT__", ACCENT)


# ----------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    """HTML-escape anything shown on the page (brand names and field names come from config)."""
    return html.escape(str(value), quote=True)


def _bi(pair: Sequence[str]) -> str:
    """Escaped "中文 English" heading with the English part muted."""
    zh, en = pair[0], pair[1]
    return f'{_e(zh)} <span class="en">{_e(en)}</span>' if zh != en else _e(zh)


def _label(pair: Sequence[str], sep: str = " ") -> str:
    """Chart label "中文 English"; escaped because plotly reads labels as a subset of HTML."""
    zh, en = str(pair[0]), str(pair[1])
    return _e(zh) if zh == en else f"{_e(zh)}{sep}{_e(en)}"


def _layer_label(layer: str, sep: str = "<br>") -> str:
    return _label(LAYER_NAMES.get(layer, (layer, layer)), sep)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _yuan(fen: Any) -> float | None:
    """Bar heights in yuan (display only; the text on the bar is the exact ¥ string)."""
    n = as_int(fen)
    return None if n is None else n / 100


def _nodata(message: tuple[str, str] = NO_DATA) -> str:
    return f'<p class="nodata">{_e(message[0])} {_e(message[1])}</p>'


def _base_layout(fig: go.Figure, height: int = CHART_HEIGHT, **extra: Any) -> go.Figure:
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


def _empty_figure(height: int = 260, message: tuple[str, str] = NO_DATA) -> go.Figure:
    """An empty chart that still renders (axes hidden) with a centred "无数据 no data"."""
    fig = go.Figure()
    fig.add_annotation(
        text=_label(message), x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font={"size": 18}
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _base_layout(fig, height)


class _Charts:
    """Turns figures into chart divs with stable ids (deterministic output for identical data)."""

    def __init__(self) -> None:
        self.count = 0

    def div(self, fig: go.Figure, name: str) -> str:
        self.count += 1
        body = fig.to_html(
            full_html=False, include_plotlyjs=False, div_id=f"chart-{name}", config=PLOTLY_CONFIG, validate=True
        )
        return f'<div class="chart" data-chart="{_e(name)}">{body}</div>'


def _delta(current: Any, previous: Any, has_previous: bool, kind: str = "relative") -> str:
    """▲/▼ change against the previous period: relative % for counts and money, percentage points for
    rates (a relative change of a rate reads wrong: 10% → 12% is +2 pp, not +20%)."""
    if not has_previous:
        return '<span class="delta none">— 无上期 no previous period</span>'
    if kind == "pp":
        c, p = as_float(current), as_float(previous)
        if c is None or p is None:
            return f'<span class="delta none">{DASH}</span>'
        text, diff = f"{signed_pp(c, p)} pp 百分点", c - p
    else:
        change = relative_change(current, previous)
        if change is None:
            return f'<span class="delta none">{DASH}</span>'
        text, diff = signed_pct(change), change
    if abs(diff) < 0.0005:  # shows as ±0.0: flat, not a misleading ▲/▼
        return f'<span class="delta flat">■ {_e(text.lstrip("+−"))}</span>'
    arrow, cls = ("▲", "up") if diff > 0 else ("▼", "down")
    return f'<span class="delta {cls}">{arrow} {_e(text)}</span>'


def _connection_overall(fast: Mapping[str, Any]) -> dict[str, Any]:
    """Overall Connection: the deduplicated `connection_overall` when the metrics provide it (a customer
    visiting two fields counts once), else Σ holders / Σ visitors over the fields."""
    overall = _dict(fast.get("connection_overall"))
    if as_int(overall.get("visitors")) is not None:
        visitors, holders = as_int(overall.get("visitors")) or 0, as_int(overall.get("holders")) or 0
    else:
        rows = [_dict(r) for r in _dict(fast.get("connection")).values()]
        visitors = sum(as_int(r.get("visitors")) or 0 for r in rows)
        holders = sum(as_int(r.get("holders")) or 0 for r in rows)
    return {"visitors": visitors, "holders": holders, "rate": holders / visitors if visitors else None}


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table whose cells are already-escaped HTML."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _stats(items: Sequence[tuple[tuple[str, str], str]]) -> str:
    return (
        '<div class="stats">'
        + "".join(f'<div class="stat">{_bi(label)}<b>{_e(value)}</b></div>' for label, value in items)
        + "</div>"
    )


# ----------------------------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------------------------


def _kpis(fast: dict[str, Any], previous: dict[str, Any] | None) -> str:
    has_prev = previous is not None
    prev = previous or {}
    conv, prev_conv = _dict(fast.get("conversion")), _dict(prev.get("conversion"))
    clv, prev_clv = _dict(fast.get("clv")), _dict(prev.get("clv"))
    overall, prev_overall = _connection_overall(fast), _connection_overall(prev)
    cards = [
        (
            METRIC_NAMES["capital"],
            format_count(fast.get("capital") or 0),
            _delta(fast.get("capital"), prev.get("capital"), has_prev),
            f"私域关系人数 private-domain customers · 上期 previous {format_count(prev.get('capital'))}",
        ),
        (
            METRIC_NAMES["conversion"],
            format_rate(conv.get("rate")),
            _delta(conv.get("rate"), prev_conv.get("rate"), has_prev, "pp"),
            f"加深 deepened {format_count(conv.get('deepened') or 0)} / "
            f"基数 base {format_count(conv.get('base') or 0)}",
        ),
        (
            METRIC_NAMES["connection"],
            format_rate(overall["rate"]),
            _delta(overall["rate"], prev_overall["rate"], has_prev, "pp"),
            f"持有关系 holders {format_count(overall['holders'])} / 访客 visitors {format_count(overall['visitors'])}",
        ),
        (
            METRIC_NAMES["clv"],
            format_money(clv.get("average_fen")),
            _delta(clv.get("average_fen"), prev_clv.get("average_fen"), has_prev),
            f"平均 average · {_window(clv.get('window_days'))} · "
            f"{format_count(clv.get('customers') or 0)} 人 customers",
        ),
    ]
    out = ['<div class="grid">']
    for label, value, delta, sub in cards:
        out.append(
            f'<div class="kpi"><div class="label">{_bi(label)}</div><div class="value">{_e(value)}</div>'
            f'{delta}<div class="sub">{_e(sub)}</div></div>'
        )
    out.append("</div>")
    return "".join(out)


def _window(days: Any) -> str:
    n = as_int(days)
    if n is None:
        return DASH
    return "全生命周期 lifetime" if n == 0 else f"近 {n:,} 天 last {n:,} days"


def _layers(fast: dict[str, Any], previous: dict[str, Any] | None, charts: _Charts) -> str:
    layers = _dict(fast.get("layers"))
    x = [_layer_label(k) for k in PRIVATE_LAYERS]
    y = [as_int(layers.get(k)) or 0 for k in PRIVATE_LAYERS]
    fig = go.Figure()
    if previous is not None:
        prev_layers = _dict(previous.get("layers"))
        py = [as_int(prev_layers.get(k)) or 0 for k in PRIVATE_LAYERS]
        fig.add_bar(
            x=x,
            y=py,
            name=f"上期 previous {_e(previous.get('period') or fast.get('previous_period') or '')}",
            marker_color=PREVIOUS_COLOR,
            text=[f"{v:,}" for v in py],
            textposition="outside",
            hovertemplate="%{x}<br>%{y:,}<extra>上期 previous</extra>",
        )
    fig.add_bar(
        x=x,
        y=y,
        name=f"本期 current {_e(fast.get('period') or '')}",
        marker_color=[LAYER_COLORS[k] for k in PRIVATE_LAYERS],
        text=[f"{v:,}" for v in y],
        textposition="outside",
        hovertemplate="%{x}<br>%{y:,}<extra>本期 current</extra>",
    )
    _base_layout(fig, barmode="group", yaxis_title="客户数 customers", showlegend=True)
    fig.update_yaxes(rangemode="tozero", tickformat=",d")
    if not any(y) and not any(fig.data[0].y):  # all zero: a readable 0–5 axis instead of 0, 0, 1, 1
        fig.update_yaxes(range=[0, 5], dtick=1)
    parts = [charts.div(fig, "layers")]
    by_field = _dict(fast.get("capital_by_field"))
    if by_field:
        items = sorted(by_field.items(), key=lambda kv: (-(as_int(kv[1]) or 0), str(kv[0])))
        text = " · ".join(f"{_label(field_label(fast, str(k)))} {format_count(v)}" for k, v in items)
        parts.append(f'<p class="note">{_bi(("各场域私域关系", "Capital by field"))}：{text}</p>')
    if sum(y) == 0:
        parts.append(_nodata())
    return "".join(parts)


def _transitions(fast: dict[str, Any], charts: _Charts) -> str:
    conv = _dict(fast.get("conversion"))
    prev_label = str(fast.get("previous_period") or "P-1")
    cur_label = str(fast.get("period") or "P")
    stats = _stats(
        [
            (METRIC_NAMES["conversion"], format_rate(conv.get("rate"))),
            (("加深关系", "Deepened"), format_count(conv.get("deepened") or 0)),
            (("上期私域基数", "Base (previous private)"), format_count(conv.get("base") or 0)),
            (("新进入私域", "New entrants"), format_count(conv.get("new_entrants") or 0)),
            (("新进入即会员", "New member entrants"), format_count(conv.get("new_member_entrants") or 0)),
        ]
    )
    moves: dict[tuple[str, str], int] = {}
    for t in _list(conv.get("transitions")):
        t = _dict(t)
        src, dst, n = str(t.get("from")), str(t.get("to")), as_int(t.get("customers")) or 0
        if (src == "none" and dst == "none") or n <= 0:
            continue
        moves[(src, dst)] = moves.get((src, dst), 0) + n
    if not moves:
        return stats + charts.div(_empty_figure(), "transitions") + _nodata(("本期无关系流转", "no transitions"))

    def order(layer: str) -> tuple[int, str]:
        return (RANK.get(layer, 99), layer)

    sources = sorted({s for s, _ in moves}, key=order)
    targets = sorted({d for _, d in moves}, key=order)
    labels = [f"{_e(prev_label)}: {_layer_label(s, ' ')}" for s in sources]
    labels += [f"{_e(cur_label)}: {_layer_label(d, ' ')}" for d in targets]
    colors = [LAYER_COLORS.get(s, "#9aa5b1") for s in sources] + [LAYER_COLORS.get(d, "#9aa5b1") for d in targets]
    keys = sorted(moves, key=lambda k: (order(k[0]), order(k[1])))
    link_colors = []
    for s, d in keys:
        rs, rd = RANK.get(s, 0), RANK.get(d, 0)
        link_colors.append(
            "rgba(26,127,75,0.38)" if rd > rs else "rgba(201,42,42,0.33)" if rd < rs else "rgba(154,165,177,0.30)"
        )
    fig = go.Figure(
        go.Sankey(
            arrangement="snap",
            node={
                "label": labels,
                "color": colors,
                "pad": 14,
                "thickness": 16,
                "line": {"color": "#ffffff", "width": 0.5},
                "hovertemplate": "%{label}<br>%{value:,} 人 customers<extra></extra>",
            },
            link={
                "source": [sources.index(s) for s, _ in keys],
                "target": [len(sources) + targets.index(d) for _, d in keys],
                "value": [moves[k] for k in keys],
                "color": link_colors,
                "hovertemplate": "%{source.label} → %{target.label}<br>%{value:,} 人 customers<extra></extra>",
            },
        )
    )
    _base_layout(fig, 520, margin={"l": 20, "r": 20, "t": 30, "b": 20})
    rows = [
        [_layer_label(s, " "), _layer_label(d, " "), format_count(moves[(s, d)])]
        for s, d in sorted(keys, key=lambda k: (-moves[k], order(k[0]), order(k[1])))
    ]
    table = _table(
        [_bi((f"上期 {prev_label}", "from")), _bi((f"本期 {cur_label}", "to")), _bi(("客户", "customers"))], rows
    )
    legend = (
        '<p class="note">绿色 = 关系加深，红色 = 关系变浅，灰色 = 不变 · '
        "green = deepened, red = weakened, grey = unchanged</p>"
    )
    return (
        stats + charts.div(fig, "transitions") + legend + f"<details><summary>明细 Details</summary>{table}</details>"
    )


def _connection(fast: dict[str, Any], charts: _Charts) -> str:
    conn = {str(k): _dict(v) for k, v in _dict(fast.get("connection")).items()}
    by_field = _dict(fast.get("capital_by_field"))
    overall = _connection_overall(fast)
    stats = _stats(
        [
            (("整体场域引力", "Overall connection"), format_rate(overall["rate"])),
            (("访客", "Visitors"), format_count(overall["visitors"])),
            (("持有关系", "Holders"), format_count(overall["holders"])),
        ]
    )
    if not conn:
        return stats + charts.div(_empty_figure(), "connection") + _nodata(("无场域访问数据", "no field visits"))
    fields = sorted(conn, key=lambda f: (-(as_int(conn[f].get("visitors")) or 0), f))
    x = [_label(field_label(fast, f), "<br>") for f in fields]
    visitors = [as_int(conn[f].get("visitors")) or 0 for f in fields]
    holders = [as_int(conn[f].get("holders")) or 0 for f in fields]
    rates = [as_float(conn[f].get("rate")) for f in fields]
    rates = [r if r is not None else (h / v if v else None) for r, h, v in zip(rates, holders, visitors, strict=True)]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go.Bar(
            x=x,
            y=visitors,
            name="访客 visitors",
            marker_color="#b6c8f5",
            text=[f"{v:,}" for v in visitors],
            textposition="outside",
            hovertemplate="%{x}<br>访客 visitors %{y:,}<extra></extra>",
        ),
        secondary_y=False,
    )
    fig.add_trace(
        go.Bar(
            x=x,
            y=holders,
            name="持有关系 holders",
            marker_color=ACCENT,
            text=[f"{v:,}" for v in holders],
            textposition="outside",
            hovertemplate="%{x}<br>持有关系 holders %{y:,}<extra></extra>",
        ),
        secondary_y=False,
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[None if r is None else r * 100 for r in rates],
            name="场域引力 rate %",
            mode="lines+markers+text",
            marker={"size": 9, "color": "#e76f51"},
            line={"color": "#e76f51", "width": 2},
            text=[format_rate(r) for r in rates],
            textposition="top center",
            hovertemplate="%{x}<br>场域引力 rate %{y:.1f}%<extra></extra>",
        ),
        secondary_y=True,
    )
    _base_layout(fig, barmode="group")
    fig.update_yaxes(title_text="人数 people", rangemode="tozero", tickformat=",d", secondary_y=False)
    fig.update_yaxes(
        title_text="场域引力 rate", range=[0, 108], dtick=20, ticksuffix="%", showgrid=False, secondary_y=True
    )
    rows = []
    for f in fields:
        r = conn[f]
        rows.append(
            [
                _label(field_label(fast, f)),
                format_count(r.get("visitors") or 0),
                format_count(r.get("holders") or 0),
                format_rate(r.get("rate")),
                format_count(r.get("new_relationships") or 0),
                format_rate(r.get("new_relationship_share")),
                format_count(by_field.get(f) or 0),
            ]
        )
    table = _table(
        [
            _bi(("场域", "field")),
            _bi(("访客", "visitors")),
            _bi(("持有关系", "holders")),
            _bi(("场域引力", "rate")),
            _bi(("新建关系", "new relationships")),
            _bi(("新建占比", "share of new")),
            _bi(("私域关系", "capital")),
        ],
        rows,
    )
    return stats + charts.div(fig, "connection") + table


def _clv(fast: dict[str, Any], previous: dict[str, Any] | None, charts: _Charts) -> str:
    clv = _dict(fast.get("clv"))
    by_layer = _dict(clv.get("by_layer"))
    tx, pv = as_int(clv.get("transaction_fen")), as_int(clv.get("propagation_fen"))
    share = (pv or 0) / ((tx or 0) + (pv or 0)) if (tx or 0) + (pv or 0) > 0 else None
    stats = _stats(
        [
            (("平均CLV", "Average CLV"), format_money(clv.get("average_fen"))),
            (("交易价值", "Transaction"), format_money(tx)),
            (("传播价值", "Propagation"), format_money(pv)),
            (("传播占比", "Propagation share"), format_rate(share)),
            (("客户", "Customers"), format_count(clv.get("customers") or 0)),
            (("窗口", "Window"), _window(clv.get("window_days"))),
        ]
    )
    if as_int(clv.get("customers")) in (None, 0) and not any(as_int(v) for v in by_layer.values()):
        return stats + charts.div(_empty_figure(), "clv") + _nodata()
    cur_label, prev_label = str(fast.get("period") or ""), str((previous or {}).get("period") or "")
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.7, 0.3],
        horizontal_spacing=0.1,
        subplot_titles=["按关系层平均CLV CLV by layer", "交易 vs 传播 transaction vs propagation"],
    )
    x = [_layer_label(k) for k in PRIVATE_LAYERS]

    def layer_bar(source: Mapping[str, Any], name: str, color: Any, group: str) -> go.Bar:
        fen = [as_int(source.get(k)) for k in PRIVATE_LAYERS]
        return go.Bar(
            x=x,
            y=[_yuan(v) for v in fen],
            name=name,
            marker_color=color,
            offsetgroup=group,
            text=[format_money(v) for v in fen],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{x}<br>%{text}<extra>" + name + "</extra>",
            legendgroup="layer",
        )

    if previous is not None:
        prev_by_layer = _dict(_dict(previous.get("clv")).get("by_layer"))
        fig.add_trace(layer_bar(prev_by_layer, f"上期 previous {_e(prev_label)}", PREVIOUS_COLOR, "prev"), 1, 1)
    fig.add_trace(
        layer_bar(by_layer, f"本期 current {_e(cur_label)}", [LAYER_COLORS[k] for k in PRIVATE_LAYERS], "cur"), 1, 1
    )
    # Stacked transaction + propagation per period: the same offsetgroup and an explicit base stack the
    # two bars while the layer bars on the left stay grouped (barmode is figure-wide).
    periods = [(f"本期<br>{_e(cur_label)}", clv)]
    if previous is not None:
        periods.insert(0, (f"上期<br>{_e(prev_label)}", _dict(previous.get("clv"))))
    px = [p[0] for p in periods]
    ptx = [as_int(p[1].get("transaction_fen")) or 0 for p in periods]
    ppv = [as_int(p[1].get("propagation_fen")) or 0 for p in periods]
    fig.add_trace(
        go.Bar(
            x=px,
            y=[v / 100 for v in ptx],
            name="交易价值 transaction",
            marker_color="#2a9d8f",
            offsetgroup="split",
            text=[format_money(v) for v in ptx],
            textposition="inside",
            hovertemplate="%{x}<br>交易价值 transaction %{text}<extra></extra>",
        ),
        1,
        2,
    )
    fig.add_trace(
        go.Bar(
            x=px,
            y=[v / 100 for v in ppv],
            base=[v / 100 for v in ptx],
            name="传播价值 propagation",
            marker_color="#e76f51",
            offsetgroup="split",
            text=[format_money(v) for v in ppv],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{x}<br>传播价值 propagation %{text}<extra></extra>",
        ),
        1,
        2,
    )
    _base_layout(
        fig,
        480,
        barmode="group",
        margin={"l": 70, "r": 30, "t": 50, "b": 120},
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "xanchor": "left", "x": 0},
    )
    fig.update_xaxes(tickangle=0, tickfont={"size": 11})
    fig.update_yaxes(title_text="¥ 元 yuan", rangemode="tozero", tickformat=",.0f", tickprefix="¥", row=1, col=1)
    fig.update_yaxes(rangemode="tozero", tickformat=",.0f", tickprefix="¥", row=1, col=2)
    return stats + charts.div(fig, "clv")


def _tier_label(tier: str) -> tuple[str, str]:
    return TIER_NAMES.get(tier, (tier, tier))


def _thresholds_note(matrix: Mapping[str, Any]) -> str:
    """Where the tiers split, e.g. "购买 purchase: 低 low ≤ ¥50.00 < 中 mid ≤ ¥200.00 < 高 high"."""
    thresholds = _dict(matrix.get("thresholds"))
    parts = []
    for key, tiers_key, name in (
        ("purchase_fen", "purchase_tiers", ("购买价值", "purchase")),
        ("propagation_fen", "propagation_tiers", ("传播价值", "propagation")),
    ):
        cuts = [as_int(c) for c in _list(thresholds.get(key))]
        tiers = [str(t) for t in _list(matrix.get(tiers_key))]
        if not cuts or len(tiers) < 2:
            continue
        text = f"{_label(_tier_label(tiers[0]))} = ¥0"
        valued = tiers[1:]
        for i, tier in enumerate(valued):
            text += f" · {_label(_tier_label(tier))}"
            if i < len(cuts):
                text += f" ≤ {_e(format_money(cuts[i]))}"
            elif cuts:
                text += f" > {_e(format_money(cuts[-1]))}"
        parts.append(f"{_bi(name)}：{text}")
    if not parts:
        return ""
    return f'<p class="note">{_bi(("分档阈值", "Tier thresholds"))} — ' + "；".join(parts) + "</p>"


def _clv_matrix(matrix: dict[str, Any], charts: _Charts) -> str:
    ptiers = [str(t) for t in _list(matrix.get("purchase_tiers"))] or ["none", "low", "mid", "high"]
    gtiers = [str(t) for t in _list(matrix.get("propagation_tiers"))] or ["none", "low", "high"]
    cells = {}
    for c in _list(matrix.get("cells")):
        c = _dict(c)
        cells[(str(c.get("layer")), str(c.get("purchase_tier")), str(c.get("propagation_tier")))] = c
    window = _window(matrix.get("window_days"))
    note = f'<p class="note">{_e(str(matrix.get("period") or ""))} · {_e(window)} · '
    note += "颜色 = 平均CLV（元），格内为客户数 · colour = average CLV (¥), cell text = customers</p>"
    if not any(as_int(c.get("customers")) for c in cells.values()):
        return charts.div(_empty_figure(), "clv-matrix") + _nodata() + _thresholds_note(matrix)
    combos = [(p, g) for p in ptiers for g in gtiers]
    x = [
        f"购{_e(_tier_label(p)[0])}·传{_e(_tier_label(g)[0])}<br>{_e(_tier_label(p)[1])} / {_e(_tier_label(g)[1])}"
        for p, g in combos
    ]
    layers = [k for k in PRIVATE_LAYERS] + sorted({k[0] for k in cells} - set(PRIVATE_LAYERS))
    y = [_layer_label(k, " ") for k in layers]
    z: list[list[float | None]] = []
    text: list[list[str]] = []
    custom: list[list[list[str]]] = []
    for layer in layers:
        zrow: list[float | None] = []
        trow: list[str] = []
        crow: list[list[str]] = []
        for p, g in combos:
            cell = cells.get((layer, p, g))
            n = as_int((cell or {}).get("customers")) or 0
            if cell is None or n == 0:
                zrow.append(None)
                trow.append("")
                crow.append(["0", DASH])
                continue
            avg = as_int(cell.get("average_clv_fen"))
            zrow.append(_yuan(avg))
            trow.append(f"{n:,}")
            crow.append([f"{n:,}", format_money(avg)])
        z.append(zrow)
        text.append(trow)
        custom.append(crow)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=x,
            y=y,
            text=text,
            customdata=custom,
            texttemplate="%{text}",
            textfont={"size": 11},
            colorscale="YlGnBu",
            hoverongaps=False,
            xgap=2,
            ygap=2,
            colorbar={"title": {"text": "¥ 平均CLV<br>avg CLV"}, "tickprefix": "¥", "tickformat": ",.0f"},
            hovertemplate=(
                "%{y}<br>%{x}<br>平均CLV avg CLV: %{customdata[1]}<br>客户 customers: %{customdata[0]}<extra></extra>"
            ),
        )
    )
    _base_layout(fig, 460, margin={"l": 170, "r": 30, "t": 30, "b": 90})
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title_text="购买层级 · 传播层级 purchase tier / propagation tier", tickfont={"size": 11})
    return note + charts.div(fig, "clv-matrix") + _thresholds_note(matrix)


def _rfm(rfm: dict[str, Any], charts: _Charts) -> str:
    total = as_int(rfm.get("customers")) or 0
    avgs = _dict(rfm.get("averages"))

    def score(v: Any) -> str:
        f = as_float(v)
        return DASH if f is None else f"{f:.2f}"

    stats = _stats(
        [
            (("客户", "Customers"), format_count(total)),
            (("截至", "As of"), str(rfm.get("as_of") or DASH)),
            (("窗口", "Window"), _window(rfm.get("window_days"))),
            (
                ("平均分 R/F/M", "Average scores"),
                f"{score(avgs.get('r'))} / {score(avgs.get('f'))} / {score(avgs.get('m'))}",
            ),
        ]
    )
    grid = {(as_int(_dict(g).get("r")), as_int(_dict(g).get("f"))): _dict(g) for g in _list(rfm.get("grid"))}
    z, money = [], []
    for r in range(1, 6):
        z.append([as_int(grid.get((r, f), {}).get("customers")) or 0 for f in range(1, 6)])
        money.append([format_money(grid.get((r, f), {}).get("average_monetary_fen")) for f in range(1, 6)])
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[f"F{f}" for f in range(1, 6)],
            y=[f"R{r}" for r in range(1, 6)],
            text=[[f"{v:,}" for v in row] for row in z],
            customdata=money,
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            xgap=2,
            ygap=2,
            colorbar={"title": {"text": "客户<br>customers"}},
            hovertemplate=(
                "%{y} · %{x}<br>客户 customers: %{z:,}<br>平均消费 avg monetary: %{customdata}<extra></extra>"
            ),
        )
    )
    _base_layout(fig, 440, margin={"l": 60, "r": 30, "t": 30, "b": 60})
    fig.update_xaxes(title_text="F 频次得分 frequency score (5 = 最高 highest)", side="bottom")
    fig.update_yaxes(title_text="R 近度得分 recency score (5 = 最近 most recent)")
    names = {key: (zh, en) for key, zh, en in RFM_GROUPS.values()}
    flags = {key: flags for flags, (key, _, _) in RFM_GROUPS.items()}
    groups = [_dict(g) for g in _list(rfm.get("groups"))]
    order = {key: i for i, (key, _, _) in enumerate(RFM_GROUPS.values())}
    groups.sort(key=lambda g: order.get(str(g.get("group")), 99))
    rows = []
    for g in groups:
        key = str(g.get("group"))
        zh, en = names.get(key, (str(g.get("name_zh") or key), str(g.get("name_en") or key)))
        hi = flags.get(key)
        rfm_flags = " ".join(f"{k}{'↑' if h else '↓'}" for k, h in zip("RFM", hi, strict=True)) if hi else DASH
        n = as_int(g.get("customers")) or 0
        rows.append(
            [
                _label((zh, en)),
                _e(rfm_flags),
                format_count(n),
                format_rate(n / total if total else None),
                format_money(g.get("monetary_fen") or 0),
                format_money(g.get("average_monetary_fen")),
            ]
        )
    table = _table(
        [
            _bi(("客户分群", "group")),
            _bi(("R/F/M 高低", "vs average")),
            _bi(("客户", "customers")),
            _bi(("占比", "share")),
            _bi(("消费金额", "monetary")),
            _bi(("人均消费", "avg monetary")),
        ],
        rows,
    )
    extra = _nodata() if total == 0 else ""
    return stats + charts.div(fig, "rfm") + extra + table


def _trend(trend: list[dict[str, Any]], charts: _Charts) -> str:
    points = [t for t in trend if isinstance(t, dict)]
    if len(points) < 2:
        return _nodata(("趋势需要至少两个周期", "trend needs at least 2 periods"))
    x = [_e(str(t.get("period") or i)) for i, t in enumerate(points)]
    capital = [as_int(t.get("capital")) or 0 for t in points]
    rates = [as_float(_dict(t.get("conversion")).get("rate")) for t in points]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go.Scatter(
            x=x,
            y=capital,
            name=_label(METRIC_NAMES["capital"]),
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
            name=_label(METRIC_NAMES["conversion"]) + " %",
            mode="lines+markers",
            line={"color": "#e76f51", "width": 2, "dash": "dot"},
            connectgaps=False,
            hovertemplate="%{x}<br>%{y:.1f}%<extra></extra>",
        ),
        secondary_y=True,
    )
    _base_layout(fig, 400)
    fig.update_xaxes(type="category")
    fig.update_yaxes(title_text=_label(METRIC_NAMES["capital"]), rangemode="tozero", tickformat=",d", secondary_y=False)
    fig.update_yaxes(
        title_text="%", rangemode="tozero", tickmode="auto", nticks=6, showgrid=False, ticksuffix="%", secondary_y=True
    )
    return charts.div(fig, "trend")


def _predicted(predicted: dict[str, Any], charts: _Charts) -> str:
    """Forward-looking CLV (BG/NBD × Gamma-Gamma) by layer, next to the historical one."""
    by_layer = _dict(predicted.get("by_layer"))
    if not by_layer:
        return _nodata(
            (
                "尚未拟合预测模型：运行 siyu clv fit 与 siyu clv predict",
                "no model yet: run siyu clv fit and siyu clv predict",
            )
        )
    x = [_layer_label(k) for k in PRIVATE_LAYERS]
    rows = [_dict(by_layer.get(k)) for k in PRIVATE_LAYERS]
    fig = go.Figure()
    fig.add_bar(
        x=x,
        y=[_yuan(r.get("average_clv_fen")) for r in rows],
        marker_color=[LAYER_COLORS[k] for k in PRIVATE_LAYERS],
        text=[format_money(r.get("average_clv_fen")) for r in rows],
        textposition="outside",
        customdata=[[format_rate(r.get("average_p_alive"))] for r in rows],
        hovertemplate="%{x}<br>¥%{y:,.2f}<br>P(alive) %{customdata[0]}<extra></extra>",
    )
    _base_layout(fig, yaxis_title=f"未来{predicted.get('horizon_months', 12)}个月 CLV (¥) next months")
    fig.update_yaxes(rangemode="tozero")
    stats = _stats([
        (("预测期", "Horizon"), f"{predicted.get('horizon_months', DASH)} 月 months"),
        (("平均预测CLV", "Average predicted CLV"), format_money(predicted.get("average_clv_fen"))),
        (("平均存活概率", "Average P(alive)"), format_rate(predicted.get("average_p_alive"))),
        (("基于", "As of"), str(predicted.get("as_of") or DASH)),
    ])  # fmt: skip
    return stats + charts.div(fig, "predicted-clv")


def _lifecycle(life: dict[str, Any], charts: _Charts) -> str:
    stages = _dict(life.get("stages"))
    if not stages:
        return _nodata()
    names = _dict(life.get("stage_names"))
    x = [_label(names.get(k) or (k, k), "<br>") for k in stages]
    fig = go.Figure()
    fig.add_bar(x=x, y=[as_int(v) or 0 for v in stages.values()], marker_color=ACCENT,
                text=[format_count(v) for v in stages.values()], textposition="outside",
                hovertemplate="%{x}<br>%{y:,}<extra></extra>")  # fmt: skip
    _base_layout(fig, 360, yaxis_title="客户数 customers")
    fig.update_yaxes(rangemode="tozero", tickformat=",d")
    flows = sorted((_dict(f) for f in _list(life.get("flows"))), key=lambda f: -(as_int(f.get("customers")) or 0))
    rows = [
        [_label(names.get(str(f.get("from"))) or (str(f.get("from")),) * 2),
         _label(names.get(str(f.get("to"))) or (str(f.get("to")),) * 2), format_count(f.get("customers"))]
        for f in flows[:8]
    ]  # fmt: skip
    as_of, before = _e(life.get("as_of") or DASH), _e(life.get("previous") or DASH)
    note = f'<p class="note">{_bi(("截至", "As of"))} {as_of} · {_bi(("对比", "vs"))} {before}</p>'
    table = _table([_bi(("从", "From")), _bi(("到", "To")), _bi(("客户", "Customers"))], rows) if rows else ""
    return charts.div(fig, "lifecycle") + note + table


def _diagnosis(sentences: list[dict[str, str]]) -> str:
    if not sentences:
        return _nodata()
    zh = "".join(f"<li>{_e(s.get('zh', ''))}</li>" for s in sentences)
    en = "".join(f"<li>{_e(s.get('en', ''))}</li>" for s in sentences)
    return (
        f'<div class="cols"><div lang="zh-CN"><h3>中文</h3><ul>{zh}</ul></div>'
        f'<div lang="en"><h3>English</h3><ul>{en}</ul></div></div>'
    )


# ----------------------------------------------------------------------------------------------
# Page
# ----------------------------------------------------------------------------------------------


def render_report(data: dict[str, Any]) -> str:
    """The whole report as one self-contained HTML document (see the module docstring).

    `data` keys: fast, previous (None for the first period), clv_matrix, rfm, trend and optionally
    diagnosis (computed with `diagnose` when absent). Missing pieces render as "无数据 no data".
    """
    fast = _dict(data.get("fast"))
    previous = data.get("previous") if isinstance(data.get("previous"), dict) else None
    trend = [t for t in _list(data.get("trend")) if isinstance(t, dict)] or [fast]
    sentences = data.get("diagnosis")
    if not isinstance(sentences, list):
        sentences = diagnose(fast, previous)
    sentences = [s for s in sentences if isinstance(s, dict)]

    charts = _Charts()
    bodies = {
        "kpis": _kpis(fast, previous),
        "layers": _layers(fast, previous, charts),
        "transitions": _transitions(fast, charts),
        "connection": _connection(fast, charts),
        "clv": _clv(fast, previous, charts),
        "clv-matrix": _clv_matrix(_dict(data.get("clv_matrix")), charts),
        "predicted-clv": _predicted(_dict(data.get("predicted_clv")), charts),
        "rfm": _rfm(_dict(data.get("rfm")), charts),
        "lifecycle": _lifecycle(_dict(data.get("lifecycle")), charts),
        "trend": _trend(trend, charts),
        "diagnosis": _diagnosis(sentences),
    }
    brand, period = str(fast.get("brand") or DASH), str(fast.get("period") or DASH)
    grain = str(fast.get("grain") or "")
    prev_text = (
        f"上期 previous: <b>{_e(previous.get('period') or fast.get('previous_period') or DASH)}</b>"
        if previous is not None
        else "无上期 no previous period"
    )
    meta = [
        f"品牌 brand: <b>{_e(brand)}</b>",
        f"周期 period: <b>{_e(period)}</b> ({_label(GRAIN_NAMES.get(grain, (grain, grain)))})",
        prev_text,
        f"时区 timezone: <b>{_e(fast.get('timezone') or DASH)}</b>",
    ]
    nav = "".join(f'<a href="#{sid}">{_e(title[0])} {_e(title[1])}</a>' for sid, title in SECTIONS)
    sections = "".join(f'<section id="{sid}"><h2>{_bi(title)}</h2>{bodies[sid]}</section>' for sid, title in SECTIONS)
    # One <script> with the library, placed in <head> so every inline figure script below can use it.
    plotly_js = get_plotlyjs()
    title = f"{TITLE[0]} {TITLE[1]} · {brand} · {period}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="zh-CN">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="generator" content="siyu FAST+ report">\n<title>{_e(title)}</title>\n'
        f"<style>{CSS}</style>\n"
        f'<script type="text/javascript">{plotly_js}</script>\n'
        "</head>\n<body>\n"
        f'<header><div class="wrap"><h1>{_bi(TITLE)}</h1>'
        f'<div class="meta">{"".join(f"<span>{m}</span>" for m in meta)}</div><nav>{nav}</nav></div></header>\n'
        f'<main class="wrap">{sections}</main>\n'
        '<footer class="wrap">siyu FAST+ · 金额单位：元（由分换算） amounts in ¥ yuan (from integer fen) · '
        f"{_e(bilingual(METRIC_NAMES['capital']))} · {_e(bilingual(METRIC_NAMES['conversion']))} · "
        f"{_e(bilingual(METRIC_NAMES['connection']))} · {_e(bilingual(METRIC_NAMES['clv']))}</footer>\n"
        f'<script type="application/json" id="report-meta">{_json_meta(charts.count, brand, period)}</script>\n'
        "</body>\n</html>\n"
    )


def _json_meta(charts: int, brand: str, period: str) -> str:
    """A tiny machine-readable footer (chart count) so tests and tools need not parse the page."""
    text = json.dumps({"charts": charts, "brand": brand, "period": period}, ensure_ascii=False)
    # JSON inside <script>: escape the characters HTML cares about, as plotly does for its figures.
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


REPORT_FORMATS = {".html": "html", ".htm": "html"}


def write_report(data: dict[str, Any], path: Path, *, force: bool = False) -> Path:
    """Render the report and write it as UTF-8 to `path` (parent folders created; an existing file
    replaced only with `force`, see siyu.core.output); returns `path`."""
    path = Path(path)
    output_format(path, REPORT_FORMATS)
    with atomic_output(path, force=force) as tmp:
        tmp.write_text(render_report(data), encoding="utf-8")
    return path
