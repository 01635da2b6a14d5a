"""总览 Overview: FAST+ KPI cards with their change, layers, the transition Sankey, connection by
field, CLV by layer, the 12-month trend and the diagnosis — the health report's data
(siyu.report.build.report_data, over the materialised layers), cached per brand and period."""

from __future__ import annotations

import json
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from siyu.api.deps import ComputeDep
from siyu.bootstrap import App
from siyu.brands.settings import brand_settings
from siyu.console.web import ConsoleDeniedError, Ctx, page
from siyu.core.clock import utc_now
from siyu.core.errors import SiyuError
from siyu.metrics.labels import LAYER_NAMES, LAYERS
from siyu.metrics.periods import containing
from siyu.report.build import report_data
from siyu.report.value import TIER_NAMES
from siyu.store.models import MaterialisationRun

router = APIRouter(include_in_schema=False)
View = Annotated[Ctx, Depends(page("overview.view"))]
Period = Annotated[str | None, Query(max_length=16, pattern=r"^\d{4}-\d{2}$")]


def default_period(app: App, brand: str) -> str:
    """The latest month whose layers are stored (what the materialise job last did), else the last full month."""
    with app.store.unit_of_work() as session:
        stored = session.scalar(
            select(func.max(MaterialisationRun.period)).where(
                MaterialisationRun.brand == brand,
                MaterialisationRun.kind == "layers",
                MaterialisationRun.grain == "month",
            )
        )
    if stored:
        return str(stored)
    tz = brand_settings(app, brand).timezone
    return containing(utc_now().astimezone(ZoneInfo(tz)).date(), "month", tz).previous().label


def _brand(ctx: Ctx) -> str:
    if ctx.brand is None:
        raise ConsoleDeniedError(404, "error.no_brand")
    return ctx.brand


@router.get("/console/overview")
def overview(ctx: View, period: Period = None) -> HTMLResponse:
    brand = _brand(ctx)
    chosen = period or default_period(ctx.app, brand)
    return ctx.render("overview.html", period=chosen)


def _change(cur: float | int | None, prev: float | int | None) -> float | None:
    if cur is None or prev in (None, 0):
        return None
    return (cur - prev) / abs(prev)


def charts(data: dict[str, Any], lang: str) -> dict[str, Any]:
    """The ECharts inputs the page draws (plain numbers and labels; static/console.js adds the options)."""
    fast = data["fast"]
    codes = LAYERS[1:]
    which = 0 if lang == "zh" else 1
    names = [LAYER_NAMES[c][which] for c in codes]

    def name(code: str) -> str:
        return LAYER_NAMES.get(code, (code, code))[which]

    transitions = (fast.get("conversion") or {}).get("transitions") or []
    links = [
        {"source": f"{name(t['from'])} ←", "target": f"→ {name(t['to'])}", "value": t["customers"]}
        for t in transitions
        if t.get("customers")
    ]
    nodes = sorted({n for link in links for n in (link["source"], link["target"])})
    field_names = fast.get("field_names") or {}
    connection = fast.get("connection") or {}
    predicted = (data.get("predicted_clv") or {}).get("by_layer") or {}
    clv_layer = (fast.get("clv") or {}).get("by_layer") or {}
    return {
        "layers": {"names": names, "values": [fast["layers"].get(c, 0) for c in codes]},
        "sankey": {"nodes": [{"name": n} for n in nodes], "links": links},
        "connection": {
            "fields": [(field_names.get(code) or [code, code])[which] or code for code in connection],
            "rates": [round((v.get("rate") or 0) * 100, 1) for v in connection.values()],
        },
        "clv": {
            "names": names,
            "values": [round((clv_layer.get(c) or 0) / 100, 2) for c in codes],
            "predicted": [round(((predicted.get(c) or {}).get("average_clv_fen") or 0) / 100, 2) for c in codes],
        },
        "matrix": clv_matrix_chart(data.get("clv_matrix") or {}, which),
        "trend": {
            "periods": [t["period"] for t in data["trend"]],
            "capital": [t["capital"] for t in data["trend"]],
        },
    }


def clv_matrix_chart(matrix: dict[str, Any], which: int) -> dict[str, Any]:
    """The CLV matrix (分层CLV矩阵) as heatmap cells: y = private-domain layer, x = purchase-value tier ×
    propagation-value tier, colour = average CLV (¥), with the cell's customers for the tooltip."""
    ptiers = matrix.get("purchase_tiers") or []
    gtiers = matrix.get("propagation_tiers") or []
    combos = [(p, g) for p in ptiers for g in gtiers]
    cells = {(c["layer"], c["purchase_tier"], c["propagation_tier"]): c for c in matrix.get("cells") or []}
    layers = [code for code in LAYERS[1:] if any(k[0] == code for k in cells)]
    points = []
    for y, layer in enumerate(layers):
        for x, (p, g) in enumerate(combos):
            cell = cells.get((layer, p, g))
            if cell and cell["customers"]:
                points.append([x, y, round((cell["average_clv_fen"] or 0) / 100, 2), cell["customers"]])
    purchase, propagation = ("购买", "传播") if which == 0 else ("purchase ", "propagation ")
    return {
        "x": [f"{purchase}{TIER_NAMES[p][which]} · {propagation}{TIER_NAMES[g][which]}" for p, g in combos],
        "y": [LAYER_NAMES.get(code, (code, code))[which] for code in layers],
        "cells": points,
        "max": max((pt[2] for pt in points), default=0),
    }


@router.get("/console/overview/data")
def overview_data(ctx: View, app: ComputeDep, period: Period = None) -> HTMLResponse:
    """The heavy part, fetched by htmx after the frame shows (the spinner is the progress)."""
    brand = _brand(ctx)
    chosen = period or default_period(app, brand)
    cache = ctx.request.app.state.console_cache
    try:
        data = cache.get(("overview", brand, chosen), lambda: report_data(app, brand, chosen))
    except SiyuError as error:
        return ctx.render("fragment_error.html", message=ctx.t("error.generic", message=error.message))
    fast, previous = data["fast"], data.get("previous") or {}
    conv, conv_prev = (fast.get("conversion") or {}).get("rate"), (previous.get("conversion") or {}).get("rate")
    con, con_prev = (
        (fast.get("connection_overall") or {}).get("rate"),
        (previous.get("connection_overall") or {}).get("rate"),
    )
    clv, clv_prev = (fast.get("clv") or {}).get("average_fen"), (previous.get("clv") or {}).get("average_fen")
    kpis = [
        ("overview.capital", f"{fast['capital']:,}", _change(fast["capital"], previous.get("capital"))),
        ("overview.conversion", _pct(conv), _change(conv, conv_prev)),
        ("overview.connection", _pct(con), _change(con, con_prev)),
        ("overview.clv", "—" if clv is None else f"¥{clv / 100:,.2f}", _change(clv, clv_prev)),
    ]
    return ctx.render(
        "overview_data.html",
        kpis=kpis,
        charts_json=json.dumps(charts(data, ctx.lang), ensure_ascii=False),
        diagnosis=data.get("diagnosis") or [],
        fast=fast,
    )


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"
