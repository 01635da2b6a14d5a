"""The HTML health report: one self-contained file, every section, bilingual, and every chart really
draws in a headless browser (plotly.js inlined, no network), also for a brand-new brand."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from browser import browser
from siyu.metrics.labels import LAYER_NAMES, METRIC_NAMES, PRIVATE_LAYERS, RANK, RFM_GROUPS, bilingual
from siyu.report.diagnosis import diagnose
from siyu.report.html import SECTIONS, render_report, write_report

SECTION_IDS = [
    "kpis", "layers", "transitions", "connection", "clv", "clv-matrix", "predicted-clv", "rfm", "lifecycle", "guides",
    "trend", "diagnosis",
]  # fmt: skip
SCREENSHOT = Path("/tmp/report.png")


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------


def _fast(period: str, previous_period: str, k: float) -> dict[str, Any]:
    """A plausible FAST+ dict; `k` scales the numbers so consecutive periods differ."""
    layers = {
        "basic": round(500 * k),
        "member_no_purchase": round(300 * k),
        "purchased": round(250 * k),
        "repurchase": round(150 / k),
        "koc": round(34 * k),
    }
    capital = sum(layers.values())
    transitions = [
        {"from": "none", "to": "basic", "customers": round(200 * k)},
        {"from": "none", "to": "member_no_purchase", "customers": round(60 * k)},
        {"from": "none", "to": "purchased", "customers": round(20 * k)},
        {"from": "basic", "to": "basic", "customers": round(380 * k)},
        {"from": "basic", "to": "member_no_purchase", "customers": round(40 * k)},
        {"from": "basic", "to": "purchased", "customers": round(30 * k)},
        {"from": "basic", "to": "none", "customers": 12},
        {"from": "member_no_purchase", "to": "member_no_purchase", "customers": round(200 * k)},
        {"from": "member_no_purchase", "to": "purchased", "customers": round(50 * k)},
        {"from": "purchased", "to": "purchased", "customers": round(150 * k)},
        {"from": "purchased", "to": "repurchase", "customers": round(40 / k)},
        {"from": "repurchase", "to": "repurchase", "customers": round(100 / k)},
        {"from": "repurchase", "to": "koc", "customers": 5},
        {"from": "koc", "to": "koc", "customers": round(29 * k)},
        {"from": "koc", "to": "none", "customers": 3},
    ]
    base = sum(t["customers"] for t in transitions if t["from"] != "none")
    deepened = sum(t["customers"] for t in transitions if RANK[t["from"]] >= 1 and RANK[t["to"]] > RANK[t["from"]])
    visitors = {"wecom": round(1000 * k), "tmall_store": round(2400 * k), "mini_program": 20, "douyin": round(800 * k)}
    holders = {"wecom": round(400 * k), "tmall_store": round(600 * k), "mini_program": 9, "douyin": round(40 * k)}
    new = {"wecom": 50, "tmall_store": 120, "mini_program": 2, "douyin": 28}
    connection = {
        f: {
            "visitors": visitors[f],
            "holders": holders[f],
            "rate": round(holders[f] / visitors[f], 6),
            "new_relationships": new[f],
            "new_relationship_share": round(new[f] / sum(new.values()), 6),
        }
        for f in visitors
    }
    by_layer = {
        "basic": 1000,
        "member_no_purchase": 0,
        "purchased": round(30000 * k),
        "repurchase": 90000,
        "koc": 150000,
    }
    return {
        "brand": "demo",
        "period": period,
        "grain": "month",
        "timezone": "Asia/Shanghai",
        "previous_period": previous_period,
        "capital": capital,
        "layers": layers,
        "capital_by_field": {"wecom": round(400 * k), "tmall_store": round(600 * k), "douyin": round(40 * k)},
        "conversion": {
            "rate": round(deepened / base, 6),
            "deepened": deepened,
            "base": base,
            "new_entrants": round(280 * k),
            "new_member_entrants": round(80 * k),
            "transitions": transitions,
        },
        "connection": connection,
        "clv": {
            "window_days": 365,
            "average_fen": round(123456 * k),
            "by_layer": by_layer,
            "transaction_fen": round(120000 * k),
            "propagation_fen": round(123456 * k) - round(120000 * k),
            "customers": capital,
        },
        # mini_program has no name: the report shows the code; douyin has no English name.
        "field_names": {
            "wecom": ["企业微信", "WeCom"],
            "tmall_store": ["天猫店铺", "Tmall store"],
            "douyin": ["抖音", None],
        },
    }


def _matrix() -> dict[str, Any]:
    cells = []
    for i, layer in enumerate(PRIVATE_LAYERS):
        for j, p in enumerate(["none", "low", "mid", "high"]):
            for g_i, g in enumerate(["none", "low", "high"]):
                if (i + j + g_i) % 4 == 3:
                    continue  # missing combinations are simply absent
                if layer in ("basic", "member_no_purchase") and p != "none":
                    continue
                cells.append(
                    {
                        "layer": layer,
                        "purchase_tier": p,
                        "propagation_tier": g,
                        "customers": 5 + 7 * i + 3 * j + g_i,
                        "average_clv_fen": 1000 + 4000 * j + 1500 * g_i + 20000 * (layer == "koc"),
                    }
                )
    return {
        "period": "2024-06",
        "window_days": 365,
        "purchase_tiers": ["none", "low", "mid", "high"],
        "propagation_tiers": ["none", "low", "high"],
        "thresholds": {"purchase_fen": [5000, 20000], "propagation_fen": [3000]},
        "cells": cells,
    }


def _rfm() -> dict[str, Any]:
    counts = [100, 60, 90, 40, 180, 150, 120, 160]
    groups = [
        {
            "group": key,
            "name_zh": zh,
            "name_en": en,
            "customers": n,
            "monetary_fen": n * (12345 - 1000 * i),
            "average_monetary_fen": 12345 - 1000 * i,
        }
        for i, ((key, zh, en), n) in enumerate(zip(RFM_GROUPS.values(), counts, strict=True))
    ]
    grid = [
        {"r": r, "f": f, "customers": 10 + 3 * r + 5 * f, "average_monetary_fen": 5000 * f + 1000 * r}
        for r in range(1, 6)
        for f in range(1, 6)
        if (r, f) != (1, 5)  # a missing cell counts as 0
    ]
    return {
        "as_of": "2024-06-30",
        "window_days": 365,
        "customers": sum(counts),
        "averages": {"r": 3.0, "f": 2.9, "m": 3.0},
        "groups": groups,
        "grid": grid,
    }


def full_data() -> dict[str, Any]:
    labels = [f"2023-{m:02d}" for m in range(7, 13)] + [f"2024-{m:02d}" for m in range(1, 7)]
    trend = [_fast(p, labels[i - 1] if i else "2023-06", 0.73 + 0.02 * i) for i, p in enumerate(labels)]
    trend[-1] = _fast("2024-06", "2024-05", 1.0)
    previous = trend[-2]
    return {
        "fast": trend[-1],
        "previous": previous,
        "clv_matrix": _matrix(),
        "rfm": _rfm(),
        "trend": trend,
        "diagnosis": diagnose(trend[-1], previous),
        "predicted_clv": {
            "as_of": "2024-06-30",
            "horizon_months": 12,
            "average_clv_fen": 45678,
            "average_p_alive": 0.61,
            "by_layer": {
                layer: {
                    "customers": 10 * (i + 1),
                    "average_clv_fen": 10000 * (i + 1),
                    "average_p_alive": 0.5 + 0.08 * i,
                }
                for i, layer in enumerate(["basic", "member_no_purchase", "purchased", "repurchase", "koc"])
            },
        },
        "lifecycle": {
            "as_of": "2024-06-30",
            "previous": "2024-05-30",
            "stages": {"prospect": 300, "new": 40, "active": 500, "at_risk": 120, "lapsed": 230, "won_back": 12},
            "stage_names": {
                "prospect": ["潜在客户", "Prospect"],
                "new": ["新客", "New"],
                "active": ["活跃", "Active"],
                "at_risk": ["流失风险", "At risk"],
                "lapsed": ["已流失", "Lapsed"],
                "won_back": ["已召回", "Won back"],
            },
            "flows": [
                {"from": "active", "to": "at_risk", "customers": 35},
                {"from": "new", "to": "active", "customers": 20},
            ],
        },
    }


def empty_data() -> dict[str, Any]:
    """The first period of a brand with almost nothing: no previous, no moves, no fields, no matrix."""
    fast = {
        "brand": "new<brand>",
        "period": "2024-06",
        "grain": "month",
        "timezone": "Asia/Shanghai",
        "previous_period": "2024-05",
        "capital": 0,
        "layers": {k: 0 for k in PRIVATE_LAYERS},
        "capital_by_field": {},
        "conversion": {
            "rate": None,
            "deepened": 0,
            "base": 0,
            "new_entrants": 0,
            "new_member_entrants": 0,
            "transitions": [],
        },
        "connection": {},
        "clv": {
            "window_days": 0,
            "average_fen": None,
            "by_layer": {k: None for k in PRIVATE_LAYERS},
            "transaction_fen": None,
            "propagation_fen": None,
            "customers": 0,
        },
        "field_names": {},
    }
    return {
        "fast": fast,
        "previous": None,
        "clv_matrix": {
            "period": "2024-06",
            "window_days": 0,
            "purchase_tiers": ["none", "low", "mid", "high"],
            "propagation_tiers": ["none", "low", "high"],
            "thresholds": {"purchase_fen": [0, 0], "propagation_fen": [0]},
            "cells": [],
        },
        "rfm": {
            "as_of": "2024-06-30",
            "window_days": 365,
            "customers": 0,
            "averages": {"r": None, "f": None, "m": None},
            "groups": [
                {
                    "group": key,
                    "name_zh": zh,
                    "name_en": en,
                    "customers": 0,
                    "monetary_fen": 0,
                    "average_monetary_fen": None,
                }
                for key, zh, en in RFM_GROUPS.values()
            ],
            "grid": [],
        },
        "trend": [fast],
        # no "diagnosis": render_report computes it
    }


# ----------------------------------------------------------------------------------------------
# Static checks
# ----------------------------------------------------------------------------------------------


def _assert_offline(page: str) -> None:
    assert "<script src" not in page.lower()
    assert not re.search(r"<script[^>]*\ssrc\s*=", page, re.IGNORECASE)
    assert not re.search(r"<link[^>]*href\s*=\s*[\"']?(https?:)?//", page, re.IGNORECASE)
    assert not re.search(r"<img[^>]*src\s*=\s*[\"']?(https?:)?//", page, re.IGNORECASE)
    assert "@import" not in page
    assert page.count("<script") == page.count("</script>")


def _charts(page: str) -> int:
    return page.count('class="chart"')


def test_full_report_is_self_contained_bilingual_and_complete() -> None:
    page = render_report(full_data())
    assert page.startswith("<!DOCTYPE html>")
    _assert_offline(page)
    assert "Plotly.newPlot" in page
    assert "plotly.js v" in page[:20000]  # the library itself, inlined once in <head>
    assert page.count("plotly.js v") == 1
    for sid in SECTION_IDS:
        assert f'<section id="{sid}">' in page
    assert [sid for sid, _ in SECTIONS] == SECTION_IDS
    # Bilingual labels from siyu.metrics.labels.
    for zh, en in METRIC_NAMES.values():
        assert zh in page and en in page
    for layer in PRIVATE_LAYERS:
        zh, en = LAYER_NAMES[layer]
        assert zh in page and en in page
    for _, zh, en in RFM_GROUPS.values():
        assert zh in page and en in page
    assert bilingual(METRIC_NAMES["capital"]) in page
    assert "企业微信" in page and "WeCom" in page and "mini_program" in page  # unnamed field shows its code
    # Numbers: capital with separators, money as ¥ with 2 decimals, rates as %.
    fast = full_data()["fast"]
    assert fast["capital"] == 1234
    assert ">1,234<" in page
    assert "¥1,234.56" in page  # average CLV 123456 fen
    assert f"{fast['conversion']['rate'] * 100:.1f}%" in page
    assert "▲" in page or "▼" in page
    # Overall connection = Σ holders / Σ visitors.
    conn = fast["connection"].values()
    overall = sum(c["holders"] for c in conn) / sum(c["visitors"] for c in conn)
    assert f"{overall * 100:.1f}%" in page
    # Every section with a chart has one; the trend (12 periods), predicted CLV and lifecycle too.
    assert _charts(page) == 9
    assert "¥456.78" in page and "流失风险" in page and "At risk" in page
    assert 'id="chart-transitions"' in page and '"type":"sankey"' in page
    assert '"type":"heatmap"' in page
    # Diagnosis sentences, both languages.
    for sentence in full_data()["diagnosis"]:
        assert sentence["zh"].split("（")[0][:8] in page
    assert "Conversion" in page and "Capital" in page


def test_edge_case_report_renders_without_data() -> None:
    data = empty_data()
    page = render_report(data)
    _assert_offline(page)
    for sid in SECTION_IDS:
        assert f'<section id="{sid}">' in page
    assert "无上期 no previous period" in page
    assert "无数据" in page and "no data" in page
    assert "new&lt;brand&gt;" in page and "new<brand>" not in page  # escaped
    assert "First period, no comparison" in page and "首个周期" in page
    assert "trend needs at least 2 periods" in page
    assert _charts(page) == 6  # layers, transitions, connection, clv, clv-matrix, rfm (no trend)
    assert '"charts": 6' in page
    # Even a bare or missing dict renders (the CLI never sends one, but a crash would hide the report).
    for bare in ({"fast": {}}, {}, {"fast": data["fast"], "previous": data["fast"], "trend": []}):
        bare_page = render_report(bare)
        assert all(f'<section id="{sid}">' in bare_page for sid in SECTION_IDS)


def test_render_is_deterministic_and_write_report(tmp_path: Path) -> None:
    data = full_data()
    assert render_report(data) == render_report(data)
    out = write_report(data, tmp_path / "sub" / "report.html")
    assert out.read_text(encoding="utf-8") == render_report(data)


def test_diagnosis_explains_changes_and_survives_zeros() -> None:
    data = full_data()
    sentences = diagnose(data["fast"], data["previous"])
    assert all(set(s) == {"zh", "en"} and s["zh"] and s["en"] for s in sentences)
    text = " ".join(s["en"] for s in sentences)
    assert "Conversion" in text and "from" in text and "→" in text
    assert "Weakest field" in text and "抖音" in text  # douyin: 40/800 = 5.0%, the weakest with ≥ 30 visitors
    assert "mini_program" not in text  # only 20 visitors: too few to judge
    assert "propagation value is" in text
    zeros = empty_data()["fast"]
    assert diagnose(zeros, None)[0]["en"].startswith("First period")
    assert diagnose(zeros, zeros)  # a previous period with all zeros: no division by zero
    assert diagnose({}, None) and diagnose({}, {})


# ----------------------------------------------------------------------------------------------
# Browser
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("report")
    return {
        "full": write_report(full_data(), folder / "full.html"),
        "empty": write_report(empty_data(), folder / "empty.html"),
    }


def _dom(path: Path, tmp_path: Path) -> str:
    dom = browser(["--dump-dom", path.resolve().as_uri()], tmp_path).stdout
    assert "</html>" in dom
    return dom


def _drawn_charts(dom: str) -> int:
    """Charts that plotly actually drew: plotly adds the js-plotly-plot class to a figure div when it
    draws it (and, as verified with plotly.js 4, three <svg class="main-svg"> layers per figure)."""
    return len(re.findall(r'class="[^"]*\bjs-plotly-plot\b', dom))


def test_browser_draws_every_chart(rendered: dict[str, Path], tmp_path: Path) -> None:
    dom = _dom(rendered["full"], tmp_path)
    charts = _charts(rendered["full"].read_text(encoding="utf-8"))
    assert charts == 9
    assert _drawn_charts(dom) == charts
    assert dom.count('class="main-svg"') >= 3 * charts
    # Sankey nodes and links, heatmap layers (CLV matrix and RFM), bars and lines.
    assert dom.count('class="sankey-node"') >= 8
    assert 'class="sankey-link"' in dom
    assert dom.count('class="hm"') >= 2  # one drawn heatmap per heatmap chart
    assert 'class="heatmaplayer' in dom
    assert 'class="point"' in dom  # bars
    assert 'class="js-line"' in dom  # trend / rate lines
    assert "无数据" not in dom  # nothing empty in the full report
    # The report's own text survives in the DOM (plotly draws labels as SVG text).
    assert "基础私域用户" in dom and "Brand KOC" in dom


def test_browser_draws_empty_report(rendered: dict[str, Path], tmp_path: Path) -> None:
    dom = _dom(rendered["empty"], tmp_path)
    charts = _charts(rendered["empty"].read_text(encoding="utf-8"))
    assert _drawn_charts(dom) == charts == 6
    assert dom.count('class="main-svg"') >= 3 * charts
    assert "无数据" in dom


def test_screenshot(rendered: dict[str, Path], tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    browser([f"--screenshot={shot}", "--window-size=1280,4000", rendered["full"].resolve().as_uri()], tmp_path)
    assert shot.exists()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 50_000
    shutil.copyfile(shot, SCREENSHOT)  # for a person to look at
