"""Report sections on customer segments: RFM groups and lifecycle stages."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from siyu.metrics.labels import RFM_GROUPS
from siyu.report.charts import Charts, base_layout
from siyu.report.diagnosis import DASH, as_float, as_int, format_count, format_money, format_rate
from siyu.report.markup import as_dict, as_list, bi, chart_label, esc, html_table, no_data, stat_strip, window_text
from siyu.report.style import ACCENT


def rfm_section(rfm: dict[str, Any], charts: Charts) -> str:
    total = as_int(rfm.get("customers")) or 0
    avgs = as_dict(rfm.get("averages"))

    def score(v: Any) -> str:
        f = as_float(v)
        return DASH if f is None else f"{f:.2f}"

    stats = stat_strip(
        [
            (("客户", "Customers"), format_count(total)),
            (("截至", "As of"), str(rfm.get("as_of") or DASH)),
            (("窗口", "Window"), window_text(rfm.get("window_days"))),
            (
                ("平均分 R/F/M", "Average scores"),
                f"{score(avgs.get('r'))} / {score(avgs.get('f'))} / {score(avgs.get('m'))}",
            ),
        ]
    )
    grid = {(as_int(as_dict(g).get("r")), as_int(as_dict(g).get("f"))): as_dict(g) for g in as_list(rfm.get("grid"))}
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
    base_layout(fig, 440, margin={"l": 60, "r": 30, "t": 30, "b": 60})
    fig.update_xaxes(title_text="F 频次得分 frequency score (5 = 最高 highest)", side="bottom")
    fig.update_yaxes(title_text="R 近度得分 recency score (5 = 最近 most recent)")
    names = {key: (zh, en) for key, zh, en in RFM_GROUPS.values()}
    flags = {key: flags for flags, (key, _, _) in RFM_GROUPS.items()}
    groups = [as_dict(g) for g in as_list(rfm.get("groups"))]
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
                chart_label((zh, en)),
                esc(rfm_flags),
                format_count(n),
                format_rate(n / total if total else None),
                format_money(g.get("monetary_fen") or 0),
                format_money(g.get("average_monetary_fen")),
            ]
        )
    table = html_table(
        [
            bi(("客户分群", "group")),
            bi(("R/F/M 高低", "vs average")),
            bi(("客户", "customers")),
            bi(("占比", "share")),
            bi(("消费金额", "monetary")),
            bi(("人均消费", "avg monetary")),
        ],
        rows,
    )
    extra = no_data() if total == 0 else ""
    return stats + charts.div(fig, "rfm") + extra + table


def lifecycle_section(life: dict[str, Any], charts: Charts) -> str:
    stages = as_dict(life.get("stages"))
    if not stages:
        return no_data()
    names = as_dict(life.get("stage_names"))
    x = [chart_label(names.get(k) or (k, k), "<br>") for k in stages]
    fig = go.Figure()
    fig.add_bar(x=x, y=[as_int(v) or 0 for v in stages.values()], marker_color=ACCENT,
                text=[format_count(v) for v in stages.values()], textposition="outside",
                hovertemplate="%{x}<br>%{y:,}<extra></extra>")  # fmt: skip
    base_layout(fig, 360, yaxis_title="客户数 customers")
    fig.update_yaxes(rangemode="tozero", tickformat=",d")
    flows = sorted((as_dict(f) for f in as_list(life.get("flows"))), key=lambda f: -(as_int(f.get("customers")) or 0))
    rows = [
        [chart_label(names.get(str(f.get("from"))) or (str(f.get("from")),) * 2),
         chart_label(names.get(str(f.get("to"))) or (str(f.get("to")),) * 2), format_count(f.get("customers"))]
        for f in flows[:8]
    ]  # fmt: skip
    as_of, before = esc(life.get("as_of") or DASH), esc(life.get("previous") or DASH)
    note = f'<p class="note">{bi(("截至", "As of"))} {as_of} · {bi(("对比", "vs"))} {before}</p>'
    table = html_table([bi(("从", "From")), bi(("到", "To")), bi(("客户", "Customers"))], rows) if rows else ""
    return charts.div(fig, "lifecycle") + note + table
