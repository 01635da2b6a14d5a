"""The health report's guides-and-stores section (导购与门店): ranked guides, store chart, bindings and
churn alerts, bilingual; a brand without guides gets "no data" and no chart."""

from __future__ import annotations

from siyu.report.charts import Charts
from siyu.report.guides import guides_section

GUIDE = {
    "staff_id": "G0002", "name": "王芳", "store_code": "S001", "role": "guide", "new_friends": 3, "lost_friends": 1,
    "bound_customers": 5, "attributed_orders": 2, "attributed_fen": 5_000, "commission_fen": 150, "tasks_done": 1,
    "tasks_open": 2, "reply_p50_s": 180.0, "conversion_rate": 0.5,
}  # fmt: skip


def test_section_ranks_guides_and_shows_bindings_and_alerts() -> None:
    data = {
        "guides": [{**GUIDE, "staff_id": "G0001", "attributed_fen": 100, "commission_fen": 1}, GUIDE],
        "stores": [{"store_code": "S001", "guides": 2, "attributed_fen": 5_100, "bound_customers": 10}],
        "bindings": {"wecom_add": 4, "purchase": 2},
        "churn_alerts": [{"store_code": "S001", "open": 1, "done": 2}],
    }
    charts = Charts()
    page = guides_section(data, charts)
    assert charts.count == 1 and 'data-chart="guides-stores"' in page
    assert page.index("G0002") < page.index("G0001")  # ranked by attributed sales
    assert "¥51.00" in page  # 5,000 + 100 fen attributed in total
    assert "¥1.51" in page  # commission 150 + 1 fen
    assert "3.0 min" in page  # reply p50 180 s
    assert "企微添加 WeCom add" in page and "门店购买 store purchase" in page
    assert "<b>6</b>" in page  # bound customers: 4 + 2 current bindings
    assert "<b>3</b>" in page  # churn alerts: 1 open + 2 done
    assert "删人提醒" in page and "Churn alerts" in page


def test_brand_without_guides_has_no_chart() -> None:
    charts = Charts()
    page = guides_section({}, charts)
    assert charts.count == 0 and "no guides or stores" in page
