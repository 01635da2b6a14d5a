"""Report sections on customer value: historical CLV, the layer x tier CLV matrix, predicted CLV."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from siyu.metrics.labels import PRIVATE_LAYERS
from siyu.report.charts import Charts, base_layout, empty_figure
from siyu.report.diagnosis import DASH, as_int, format_count, format_money, format_rate
from siyu.report.markup import (
    as_dict,
    as_list,
    bi,
    chart_label,
    esc,
    layer_label,
    no_data,
    stat_strip,
    window_text,
    yuan,
)
from siyu.report.style import LAYER_COLORS, PREVIOUS_COLOR

TIER_NAMES = {"none": ("无", "none"), "low": ("低", "low"), "mid": ("中", "mid"), "high": ("高", "high")}


def clv_section(fast: dict[str, Any], previous: dict[str, Any] | None, charts: Charts) -> str:
    clv = as_dict(fast.get("clv"))
    by_layer = as_dict(clv.get("by_layer"))
    tx, pv = as_int(clv.get("transaction_fen")), as_int(clv.get("propagation_fen"))
    share = (pv or 0) / ((tx or 0) + (pv or 0)) if (tx or 0) + (pv or 0) > 0 else None
    stats = stat_strip(
        [
            (("平均CLV", "Average CLV"), format_money(clv.get("average_fen"))),
            (("交易价值", "Transaction"), format_money(tx)),
            (("传播价值", "Propagation"), format_money(pv)),
            (("传播占比", "Propagation share"), format_rate(share)),
            (("客户", "Customers"), format_count(clv.get("customers") or 0)),
            (("窗口", "Window"), window_text(clv.get("window_days"))),
        ]
    )
    if as_int(clv.get("customers")) in (None, 0) and not any(as_int(v) for v in by_layer.values()):
        return stats + charts.div(empty_figure(), "clv") + no_data()
    cur_label, prev_label = str(fast.get("period") or ""), str((previous or {}).get("period") or "")
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.7, 0.3],
        horizontal_spacing=0.1,
        subplot_titles=["按关系层平均CLV CLV by layer", "交易 vs 传播 transaction vs propagation"],
    )
    x = [layer_label(k) for k in PRIVATE_LAYERS]

    def layer_bar(source: Mapping[str, Any], name: str, color: Any, group: str) -> go.Bar:
        fen = [as_int(source.get(k)) for k in PRIVATE_LAYERS]
        return go.Bar(
            x=x,
            y=[yuan(v) for v in fen],
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
        prev_by_layer = as_dict(as_dict(previous.get("clv")).get("by_layer"))
        fig.add_trace(layer_bar(prev_by_layer, f"上期 previous {esc(prev_label)}", PREVIOUS_COLOR, "prev"), 1, 1)
    fig.add_trace(
        layer_bar(by_layer, f"本期 current {esc(cur_label)}", [LAYER_COLORS[k] for k in PRIVATE_LAYERS], "cur"), 1, 1
    )
    # Stacked transaction + propagation per period: the same offsetgroup and an explicit base stack the
    # two bars while the layer bars on the left stay grouped (barmode is figure-wide).
    periods = [(f"本期<br>{esc(cur_label)}", clv)]
    if previous is not None:
        periods.insert(0, (f"上期<br>{esc(prev_label)}", as_dict(previous.get("clv"))))
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
    base_layout(
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
    thresholds = as_dict(matrix.get("thresholds"))
    parts = []
    for key, tiers_key, name in (
        ("purchase_fen", "purchase_tiers", ("购买价值", "purchase")),
        ("propagation_fen", "propagation_tiers", ("传播价值", "propagation")),
    ):
        cuts = [as_int(c) for c in as_list(thresholds.get(key))]
        tiers = [str(t) for t in as_list(matrix.get(tiers_key))]
        if not cuts or len(tiers) < 2:
            continue
        text = f"{chart_label(_tier_label(tiers[0]))} = ¥0"
        valued = tiers[1:]
        for i, tier in enumerate(valued):
            text += f" · {chart_label(_tier_label(tier))}"
            if i < len(cuts):
                text += f" ≤ {esc(format_money(cuts[i]))}"
            elif cuts:
                text += f" > {esc(format_money(cuts[-1]))}"
        parts.append(f"{bi(name)}：{text}")
    if not parts:
        return ""
    return f'<p class="note">{bi(("分档阈值", "Tier thresholds"))} — ' + "；".join(parts) + "</p>"


def clv_matrix_section(matrix: dict[str, Any], charts: Charts) -> str:
    ptiers = [str(t) for t in as_list(matrix.get("purchase_tiers"))] or ["none", "low", "mid", "high"]
    gtiers = [str(t) for t in as_list(matrix.get("propagation_tiers"))] or ["none", "low", "high"]
    cells = {}
    for c in as_list(matrix.get("cells")):
        c = as_dict(c)
        cells[(str(c.get("layer")), str(c.get("purchase_tier")), str(c.get("propagation_tier")))] = c
    window = window_text(matrix.get("window_days"))
    note = f'<p class="note">{esc(str(matrix.get("period") or ""))} · {esc(window)} · '
    note += "颜色 = 平均CLV（元），格内为客户数 · colour = average CLV (¥), cell text = customers</p>"
    if not any(as_int(c.get("customers")) for c in cells.values()):
        return charts.div(empty_figure(), "clv-matrix") + no_data() + _thresholds_note(matrix)
    combos = [(p, g) for p in ptiers for g in gtiers]
    x = [
        f"购{esc(_tier_label(p)[0])}·传{esc(_tier_label(g)[0])}<br>{esc(_tier_label(p)[1])} / {esc(_tier_label(g)[1])}"
        for p, g in combos
    ]
    layers = [k for k in PRIVATE_LAYERS] + sorted({k[0] for k in cells} - set(PRIVATE_LAYERS))
    y = [layer_label(k, " ") for k in layers]
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
            zrow.append(yuan(avg))
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
    base_layout(fig, 460, margin={"l": 170, "r": 30, "t": 30, "b": 90})
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title_text="购买层级 · 传播层级 purchase tier / propagation tier", tickfont={"size": 11})
    return note + charts.div(fig, "clv-matrix") + _thresholds_note(matrix)


def predicted_section(predicted: dict[str, Any], charts: Charts) -> str:
    """Forward-looking CLV (BG/NBD × Gamma-Gamma) by layer, next to the historical one."""
    by_layer = as_dict(predicted.get("by_layer"))
    if not by_layer:
        return no_data(
            (
                "尚未拟合预测模型：运行 siyu clv fit 与 siyu clv predict",
                "no model yet: run siyu clv fit and siyu clv predict",
            )
        )
    x = [layer_label(k) for k in PRIVATE_LAYERS]
    rows = [as_dict(by_layer.get(k)) for k in PRIVATE_LAYERS]
    fig = go.Figure()
    fig.add_bar(
        x=x,
        y=[yuan(r.get("average_clv_fen")) for r in rows],
        marker_color=[LAYER_COLORS[k] for k in PRIVATE_LAYERS],
        text=[format_money(r.get("average_clv_fen")) for r in rows],
        textposition="outside",
        customdata=[[format_rate(r.get("average_p_alive"))] for r in rows],
        hovertemplate="%{x}<br>¥%{y:,.2f}<br>P(alive) %{customdata[0]}<extra></extra>",
    )
    base_layout(fig, yaxis_title=f"未来{predicted.get('horizon_months', 12)}个月 CLV (¥) next months")
    fig.update_yaxes(rangemode="tozero")
    stats = stat_strip([
        (("预测期", "Horizon"), f"{predicted.get('horizon_months', DASH)} 月 months"),
        (("平均预测CLV", "Average predicted CLV"), format_money(predicted.get("average_clv_fen"))),
        (("平均存活概率", "Average P(alive)"), format_rate(predicted.get("average_p_alive"))),
        (("基于", "As of"), str(predicted.get("as_of") or DASH)),
    ])  # fmt: skip
    return stats + charts.div(fig, "predicted-clv")
