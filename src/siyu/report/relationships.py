"""Report sections on relationships: key metrics, relationship layers, layer transitions, connection."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from siyu.metrics.labels import METRIC_NAMES, PRIVATE_LAYERS, RANK
from siyu.report.charts import Charts, base_layout, empty_figure
from siyu.report.diagnosis import as_float, as_int, field_label, format_count, format_money, format_rate
from siyu.report.markup import (
    as_dict,
    as_list,
    bi,
    chart_label,
    delta_badge,
    esc,
    html_table,
    layer_label,
    no_data,
    stat_strip,
    window_text,
)
from siyu.report.style import ACCENT, LAYER_COLORS, PREVIOUS_COLOR


def _connection_overall(fast: Mapping[str, Any]) -> dict[str, Any]:
    """Overall Connection: the deduplicated `connection_overall` when the metrics provide it (a customer
    visiting two fields counts once), else Σ holders / Σ visitors over the fields."""
    overall = as_dict(fast.get("connection_overall"))
    if as_int(overall.get("visitors")) is not None:
        visitors, holders = as_int(overall.get("visitors")) or 0, as_int(overall.get("holders")) or 0
    else:
        rows = [as_dict(r) for r in as_dict(fast.get("connection")).values()]
        visitors = sum(as_int(r.get("visitors")) or 0 for r in rows)
        holders = sum(as_int(r.get("holders")) or 0 for r in rows)
    return {"visitors": visitors, "holders": holders, "rate": holders / visitors if visitors else None}


def kpis_section(fast: dict[str, Any], previous: dict[str, Any] | None) -> str:
    has_prev = previous is not None
    prev = previous or {}
    conv, prev_conv = as_dict(fast.get("conversion")), as_dict(prev.get("conversion"))
    clv, prev_clv = as_dict(fast.get("clv")), as_dict(prev.get("clv"))
    overall, prev_overall = _connection_overall(fast), _connection_overall(prev)
    cards = [
        (
            METRIC_NAMES["capital"],
            format_count(fast.get("capital") or 0),
            delta_badge(fast.get("capital"), prev.get("capital"), has_prev),
            f"私域关系人数 private-domain customers · 上期 previous {format_count(prev.get('capital'))}",
        ),
        (
            METRIC_NAMES["conversion"],
            format_rate(conv.get("rate")),
            delta_badge(conv.get("rate"), prev_conv.get("rate"), has_prev, "pp"),
            f"加深 deepened {format_count(conv.get('deepened') or 0)} / "
            f"基数 base {format_count(conv.get('base') or 0)}",
        ),
        (
            METRIC_NAMES["connection"],
            format_rate(overall["rate"]),
            delta_badge(overall["rate"], prev_overall["rate"], has_prev, "pp"),
            f"持有关系 holders {format_count(overall['holders'])} / 访客 visitors {format_count(overall['visitors'])}",
        ),
        (
            METRIC_NAMES["clv"],
            format_money(clv.get("average_fen")),
            delta_badge(clv.get("average_fen"), prev_clv.get("average_fen"), has_prev),
            f"平均 average · {window_text(clv.get('window_days'))} · "
            f"{format_count(clv.get('customers') or 0)} 人 customers",
        ),
    ]
    out = ['<div class="grid">']
    for label, value, delta, sub in cards:
        out.append(
            f'<div class="kpi"><div class="label">{bi(label)}</div><div class="value">{esc(value)}</div>'
            f'{delta}<div class="sub">{esc(sub)}</div></div>'
        )
    out.append("</div>")
    return "".join(out)


def layers_section(fast: dict[str, Any], previous: dict[str, Any] | None, charts: Charts) -> str:
    layers = as_dict(fast.get("layers"))
    x = [layer_label(k) for k in PRIVATE_LAYERS]
    y = [as_int(layers.get(k)) or 0 for k in PRIVATE_LAYERS]
    fig = go.Figure()
    if previous is not None:
        prev_layers = as_dict(previous.get("layers"))
        py = [as_int(prev_layers.get(k)) or 0 for k in PRIVATE_LAYERS]
        fig.add_bar(
            x=x,
            y=py,
            name=f"上期 previous {esc(previous.get('period') or fast.get('previous_period') or '')}",
            marker_color=PREVIOUS_COLOR,
            text=[f"{v:,}" for v in py],
            textposition="outside",
            hovertemplate="%{x}<br>%{y:,}<extra>上期 previous</extra>",
        )
    fig.add_bar(
        x=x,
        y=y,
        name=f"本期 current {esc(fast.get('period') or '')}",
        marker_color=[LAYER_COLORS[k] for k in PRIVATE_LAYERS],
        text=[f"{v:,}" for v in y],
        textposition="outside",
        hovertemplate="%{x}<br>%{y:,}<extra>本期 current</extra>",
    )
    base_layout(fig, barmode="group", yaxis_title="客户数 customers", showlegend=True)
    fig.update_yaxes(rangemode="tozero", tickformat=",d")
    if not any(y) and not any(fig.data[0].y):  # all zero: a readable 0–5 axis instead of 0, 0, 1, 1
        fig.update_yaxes(range=[0, 5], dtick=1)
    parts = [charts.div(fig, "layers")]
    by_field = as_dict(fast.get("capital_by_field"))
    if by_field:
        items = sorted(by_field.items(), key=lambda kv: (-(as_int(kv[1]) or 0), str(kv[0])))
        text = " · ".join(f"{chart_label(field_label(fast, str(k)))} {format_count(v)}" for k, v in items)
        parts.append(f'<p class="note">{bi(("各场域私域关系", "Capital by field"))}：{text}</p>')
    if sum(y) == 0:
        parts.append(no_data())
    return "".join(parts)


def transitions_section(fast: dict[str, Any], charts: Charts) -> str:
    conv = as_dict(fast.get("conversion"))
    prev_label = str(fast.get("previous_period") or "P-1")
    cur_label = str(fast.get("period") or "P")
    stats = stat_strip(
        [
            (METRIC_NAMES["conversion"], format_rate(conv.get("rate"))),
            (("加深关系", "Deepened"), format_count(conv.get("deepened") or 0)),
            (("上期私域基数", "Base (previous private)"), format_count(conv.get("base") or 0)),
            (("新进入私域", "New entrants"), format_count(conv.get("new_entrants") or 0)),
            (("新进入即会员", "New member entrants"), format_count(conv.get("new_member_entrants") or 0)),
        ]
    )
    moves: dict[tuple[str, str], int] = {}
    for t in as_list(conv.get("transitions")):
        t = as_dict(t)
        src, dst, n = str(t.get("from")), str(t.get("to")), as_int(t.get("customers")) or 0
        if (src == "none" and dst == "none") or n <= 0:
            continue
        moves[(src, dst)] = moves.get((src, dst), 0) + n
    if not moves:
        return stats + charts.div(empty_figure(), "transitions") + no_data(("本期无关系流转", "no transitions"))

    def order(layer: str) -> tuple[int, str]:
        return (RANK.get(layer, 99), layer)

    sources = sorted({s for s, _ in moves}, key=order)
    targets = sorted({d for _, d in moves}, key=order)
    labels = [f"{esc(prev_label)}: {layer_label(s, ' ')}" for s in sources]
    labels += [f"{esc(cur_label)}: {layer_label(d, ' ')}" for d in targets]
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
    base_layout(fig, 520, margin={"l": 20, "r": 20, "t": 30, "b": 20})
    rows = [
        [layer_label(s, " "), layer_label(d, " "), format_count(moves[(s, d)])]
        for s, d in sorted(keys, key=lambda k: (-moves[k], order(k[0]), order(k[1])))
    ]
    table = html_table(
        [bi((f"上期 {prev_label}", "from")), bi((f"本期 {cur_label}", "to")), bi(("客户", "customers"))], rows
    )
    legend = (
        '<p class="note">绿色 = 关系加深，红色 = 关系变浅，灰色 = 不变 · '
        "green = deepened, red = weakened, grey = unchanged</p>"
    )
    return (
        stats + charts.div(fig, "transitions") + legend + f"<details><summary>明细 Details</summary>{table}</details>"
    )


def connection_section(fast: dict[str, Any], charts: Charts) -> str:
    conn = {str(k): as_dict(v) for k, v in as_dict(fast.get("connection")).items()}
    by_field = as_dict(fast.get("capital_by_field"))
    overall = _connection_overall(fast)
    stats = stat_strip(
        [
            (("整体场域引力", "Overall connection"), format_rate(overall["rate"])),
            (("访客", "Visitors"), format_count(overall["visitors"])),
            (("持有关系", "Holders"), format_count(overall["holders"])),
        ]
    )
    if not conn:
        return stats + charts.div(empty_figure(), "connection") + no_data(("无场域访问数据", "no field visits"))
    fields = sorted(conn, key=lambda f: (-(as_int(conn[f].get("visitors")) or 0), f))
    x = [chart_label(field_label(fast, f), "<br>") for f in fields]
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
    base_layout(fig, barmode="group")
    fig.update_yaxes(title_text="人数 people", rangemode="tozero", tickformat=",d", secondary_y=False)
    fig.update_yaxes(
        title_text="场域引力 rate", range=[0, 108], dtick=20, ticksuffix="%", showgrid=False, secondary_y=True
    )
    rows = []
    for f in fields:
        r = conn[f]
        rows.append(
            [
                chart_label(field_label(fast, f)),
                format_count(r.get("visitors") or 0),
                format_count(r.get("holders") or 0),
                format_rate(r.get("rate")),
                format_count(r.get("new_relationships") or 0),
                format_rate(r.get("new_relationship_share")),
                format_count(by_field.get(f) or 0),
            ]
        )
    table = html_table(
        [
            bi(("场域", "field")),
            bi(("访客", "visitors")),
            bi(("持有关系", "holders")),
            bi(("场域引力", "rate")),
            bi(("新建关系", "new relationships")),
            bi(("新建占比", "share of new")),
            bi(("私域关系", "capital")),
        ],
        rows,
    )
    return stats + charts.div(fig, "connection") + table
