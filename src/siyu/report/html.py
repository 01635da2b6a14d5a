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

The page is assembled here; the sections live by subject (`relationships`, `value`, `segments`,
`trend`), their HTML pieces in `markup`, the chart plumbing in `charts`, the look in `style`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from plotly.offline import get_plotlyjs

from siyu.core.output import atomic_output, output_format
from siyu.metrics.labels import METRIC_NAMES, bilingual
from siyu.report.charts import Charts
from siyu.report.diagnosis import DASH, diagnose
from siyu.report.guides import guides_section
from siyu.report.markup import as_dict, as_list, bi, chart_label, esc
from siyu.report.relationships import connection_section, kpis_section, layers_section, transitions_section
from siyu.report.segments import lifecycle_section, rfm_section
from siyu.report.style import CSS
from siyu.report.trend import diagnosis_section, trend_section
from siyu.report.value import clv_matrix_section, clv_section, predicted_section

GRAIN_NAMES = {"month": ("月", "month"), "week": ("周", "week"), "quarter": ("季度", "quarter"), "year": ("年", "year")}
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
    ("guides", ("导购与门店", "Guides and stores")),
    ("trend", ("趋势", "Trend")),
    ("diagnosis", ("诊断", "Diagnosis")),
)


def render_report(data: dict[str, Any]) -> str:
    """The whole report as one self-contained HTML document (see the module docstring).

    `data` keys: fast, previous (None for the first period), clv_matrix, rfm, trend and optionally
    diagnosis (computed with `diagnose` when absent). Missing pieces render as "无数据 no data".
    """
    fast = as_dict(data.get("fast"))
    previous = data.get("previous") if isinstance(data.get("previous"), dict) else None
    trend = [t for t in as_list(data.get("trend")) if isinstance(t, dict)] or [fast]
    sentences = data.get("diagnosis")
    if not isinstance(sentences, list):
        sentences = diagnose(fast, previous)
    sentences = [s for s in sentences if isinstance(s, dict)]

    charts = Charts()
    bodies = {
        "kpis": kpis_section(fast, previous),
        "layers": layers_section(fast, previous, charts),
        "transitions": transitions_section(fast, charts),
        "connection": connection_section(fast, charts),
        "clv": clv_section(fast, previous, charts),
        "clv-matrix": clv_matrix_section(as_dict(data.get("clv_matrix")), charts),
        "predicted-clv": predicted_section(as_dict(data.get("predicted_clv")), charts),
        "rfm": rfm_section(as_dict(data.get("rfm")), charts),
        "lifecycle": lifecycle_section(as_dict(data.get("lifecycle")), charts),
        "guides": guides_section(as_dict(data.get("guides")), charts),
        "trend": trend_section(trend, charts),
        "diagnosis": diagnosis_section(sentences),
    }
    brand, period = str(fast.get("brand") or DASH), str(fast.get("period") or DASH)
    grain = str(fast.get("grain") or "")
    prev_text = (
        f"上期 previous: <b>{esc(previous.get('period') or fast.get('previous_period') or DASH)}</b>"
        if previous is not None
        else "无上期 no previous period"
    )
    meta = [
        f"品牌 brand: <b>{esc(brand)}</b>",
        f"周期 period: <b>{esc(period)}</b> ({chart_label(GRAIN_NAMES.get(grain, (grain, grain)))})",
        prev_text,
        f"时区 timezone: <b>{esc(fast.get('timezone') or DASH)}</b>",
    ]
    nav = "".join(f'<a href="#{sid}">{esc(title[0])} {esc(title[1])}</a>' for sid, title in SECTIONS)
    sections = "".join(f'<section id="{sid}"><h2>{bi(title)}</h2>{bodies[sid]}</section>' for sid, title in SECTIONS)
    # One <script> with the library, placed in <head> so every inline figure script below can use it.
    plotly_js = get_plotlyjs()
    title = f"{TITLE[0]} {TITLE[1]} · {brand} · {period}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="zh-CN">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="generator" content="siyu FAST+ report">\n<title>{esc(title)}</title>\n'
        f"<style>{CSS}</style>\n"
        f'<script type="text/javascript">{plotly_js}</script>\n'
        "</head>\n<body>\n"
        f'<header><div class="wrap"><h1>{bi(TITLE)}</h1>'
        f'<div class="meta">{"".join(f"<span>{m}</span>" for m in meta)}</div><nav>{nav}</nav></div></header>\n'
        f'<main class="wrap">{sections}</main>\n'
        '<footer class="wrap">siyu FAST+ · 金额单位：元（由分换算） amounts in ¥ yuan (from integer fen) · '
        f"{esc(bilingual(METRIC_NAMES['capital']))} · {esc(bilingual(METRIC_NAMES['conversion']))} · "
        f"{esc(bilingual(METRIC_NAMES['connection']))} · {esc(bilingual(METRIC_NAMES['clv']))}</footer>\n"
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
