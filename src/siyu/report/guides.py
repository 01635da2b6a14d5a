"""Report section: guides and stores (导购与门店) — guide performance, the store roll-up, bindings
and churn alerts (删人提醒) of the period. Brands without staff or bindings get "no data"."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from sqlalchemy import func, select

from siyu.bootstrap import App
from siyu.guides.bindings import HISTORY_TABLE
from siyu.guides.models import CurrentBinding, GuideTask
from siyu.guides.performance import performance
from siyu.ingest.views import current
from siyu.metrics.periods import Period
from siyu.report.charts import Charts, base_layout
from siyu.report.diagnosis import DASH, as_int, format_count, format_money, format_rate
from siyu.report.markup import as_dict, as_list, bi, chart_label, esc, html_table, no_data, stat_strip, yuan
from siyu.report.style import ACCENT

TOP_GUIDES = 10
TOP_STORES = 15
SOURCE_NAMES = {
    "wecom_add": ("企微添加", "WeCom add"), "scan": ("扫码", "channel code"),
    "purchase": ("门店购买", "store purchase"), "manual": ("手工指定", "manual"), "transfer": ("客户继承", "transfer"),
}  # fmt: skip


def guides_data(app: App, brand: str, period: Period) -> dict[str, Any] | None:
    """Performance per guide and store for `period`, current bindings by source and the churn
    alerts of deletions in the period; None when the brand has neither staff nor bindings. Reads only."""
    staff = current(app, "staff")
    has_staff = staff is not None and app.engine.to_arrow(staff.filter(staff.brand == brand).limit(1)).num_rows > 0
    if not has_staff and app.engine.table(HISTORY_TABLE) is None:
        return None
    perf = performance(app, brand, period)
    with app.store.unit_of_work() as session:
        bindings = dict(
            session.execute(
                select(CurrentBinding.source, func.count())
                .where(CurrentBinding.brand == brand)
                .group_by(CurrentBinding.source)
            ).all()
        )
        alerts = session.execute(
            select(GuideTask.store_code, GuideTask.status, func.count())
            .where(
                GuideTask.brand == brand,
                GuideTask.kind == "churn_alert",
                # due when the customer deleted the guide: the period of the deletion, not of processing
                GuideTask.due_at >= period.start,
                GuideTask.due_at < period.end,
            )
            .group_by(GuideTask.store_code, GuideTask.status)
        ).all()
    by_store: dict[str, dict[str, int]] = {}
    for store, status, n in alerts:
        counts = by_store.setdefault(store or DASH, {"open": 0, "done": 0})
        counts["open" if status == "open" else "done"] += int(n)
    return {
        "period": period.label,
        "guides": perf["guides"],
        "stores": perf["stores"],
        "bindings": {str(k): int(v) for k, v in bindings.items()},
        "churn_alerts": [{"store_code": s, **c} for s, c in sorted(by_store.items())],
    }


def guides_section(data: dict[str, Any], charts: Charts) -> str:
    guides = [as_dict(g) for g in as_list(data.get("guides"))]
    if not guides:
        return no_data(("无导购或门店数据", "no guides or stores"))
    stores = [as_dict(s) for s in as_list(data.get("stores"))]
    alerts = [as_dict(a) for a in as_list(data.get("churn_alerts"))]
    bindings = as_dict(data.get("bindings"))

    def total(key: str) -> int:
        return sum(as_int(g.get(key)) or 0 for g in guides)

    stats = stat_strip(
        [
            (("导购", "Guides"), format_count(sum(1 for g in guides if g.get("role") != "manager"))),
            (("门店", "Stores"), format_count(len(stores))),
            (("绑定客户", "Bound customers"), format_count(sum(as_int(v) or 0 for v in bindings.values()))),
            (("新增好友", "New friends"), format_count(total("new_friends"))),
            (("流失好友", "Lost friends"), format_count(total("lost_friends"))),
            (("导购业绩", "Attributed sales"), format_money(total("attributed_fen"))),
            (("佣金", "Commission"), format_money(total("commission_fen"))),
            (("删人提醒", "Churn alerts"), format_count(sum(a["open"] + a["done"] for a in alerts))),
        ]
    )
    ranked = sorted(stores, key=lambda s: -(as_int(s.get("attributed_fen")) or 0))[:TOP_STORES]
    fig = go.Figure(
        go.Bar(
            x=[esc(str(s.get("store_code") or DASH)) for s in ranked],
            y=[yuan(s.get("attributed_fen")) or 0 for s in ranked],
            marker_color=ACCENT,
            customdata=[[format_count(s.get("bound_customers")), format_count(s.get("guides"))] for s in ranked],
            hovertemplate=(
                "%{x}<br>业绩 sales: ¥%{y:,.2f}<br>绑定客户 bound: %{customdata[0]}"
                "<br>导购 guides: %{customdata[1]}<extra></extra>"
            ),
        )
    )
    base_layout(fig, 360)
    fig.update_xaxes(type="category", title_text=chart_label(("门店", "store")))
    fig.update_yaxes(title_text=chart_label(("导购业绩 ¥", "attributed sales ¥")), rangemode="tozero")
    top = sorted(guides, key=lambda g: -(as_int(g.get("attributed_fen")) or 0))[:TOP_GUIDES]
    guide_rows = [
        [
            esc(g.get("staff_id") or DASH), esc(g.get("name") or DASH), esc(g.get("store_code") or DASH),
            format_count(g.get("new_friends")), format_count(g.get("lost_friends")),
            format_count(g.get("bound_customers")), format_count(g.get("attributed_orders")),
            format_money(g.get("attributed_fen")), format_money(g.get("commission_fen")),
            f"{format_count(g.get('tasks_done'))} / {format_count(g.get('tasks_open'))}",
            DASH if g.get("reply_p50_s") is None else f"{float(g['reply_p50_s']) / 60:.1f} min",
            format_rate(g.get("conversion_rate")),
        ]
        for g in top
    ]  # fmt: skip
    guide_table = html_table(
        [bi(h) for h in (
            ("导购", "Guide"), ("姓名", "Name"), ("门店", "Store"), ("新增好友", "New friends"),
            ("流失好友", "Lost friends"), ("绑定客户", "Bound"), ("业绩订单", "Orders"), ("业绩", "Sales"),
            ("佣金", "Commission"), ("任务 完成/待办", "Tasks done / open"), ("回复中位数", "Reply p50"),
            ("转化率", "Conversion"),
        )],
        guide_rows,
    )  # fmt: skip
    binding_table = html_table(
        [bi(("绑定来源", "Binding source")), bi(("客户", "Customers"))],
        [[esc(chart_label(SOURCE_NAMES.get(k, (k, k)))), format_count(v)] for k, v in sorted(bindings.items())],
    )
    alert_table = (
        html_table(
            [bi(("门店", "Store")), bi(("待处理", "Open")), bi(("已处理", "Done"))],
            [[esc(a["store_code"]), format_count(a["open"]), format_count(a["done"])] for a in alerts],
        )
        if alerts
        else no_data(("本期无删人提醒", "no churn alerts in the period"))
    )
    return (
        stats
        + charts.div(fig, "guides-stores")
        + f"<h3>{bi(('导购绩效 前十', 'Top guides by sales'))}</h3>"
        + guide_table
        + f"<h3>{bi(('当前绑定', 'Current bindings'))}</h3>"
        + binding_table
        + f"<h3>{bi(('删人提醒（按门店）', 'Churn alerts by store'))}</h3>"
        + alert_table
    )
