"""CLV matrix (分层CLV): private-domain customers by layer × purchase-value tier × propagation-value
tier, with counts and average CLV per cell (DESIGN §4).

Tiers are relative to the brand in that period: customers with no value are `none`; the others are
split at the tertiles (purchase: low / mid / high) or the median (propagation: low / high) of the
positive values, and the thresholds are part of the output so a reader can see where they fall.
"""

from __future__ import annotations

from typing import Any

import ibis
import ibis.expr.types as ir

from siyu.metrics.fast import FastMetrics, average
from siyu.metrics.labels import LAYERS
from siyu.metrics.periods import Period

PURCHASE_TIERS = ("none", "low", "mid", "high")
PROPAGATION_TIERS = ("none", "low", "high")


def _thresholds(m: FastMetrics, values: ir.IntegerColumn, table: ir.Table, quantiles: list[float]) -> list[int]:
    positive = table.filter(values > 0)
    exprs = {f"q{i}": positive[values.get_name()].quantile(q) for i, q in enumerate(quantiles)}
    row = m.app.engine.to_arrow(positive.aggregate(**exprs)).to_pylist()[0]
    return [round(row[f"q{i}"]) if row[f"q{i}"] is not None else 0 for i in range(len(quantiles))]


def _tier(value: ir.IntegerValue, names: tuple[str, ...], cuts: list[int]) -> ir.StringValue:
    cases = [(value == 0, names[0])]
    cases += [(value <= cut, name) for cut, name in zip(cuts, names[1:], strict=False)]
    return ibis.cases(*cases, else_=names[-1])


def clv_matrix(m: FastMetrics, period: Period) -> dict[str, Any]:
    c = m.app.engine.materialise(m.clv_per_customer(period), f"facts_{m.facts.tag}_clv_{period.label}")
    p_cuts = _thresholds(m, c.transaction_fen, c, [1 / 3, 2 / 3])
    g_cuts = _thresholds(m, c.propagation_fen, c, [0.5])
    tiered = c.mutate(
        purchase_tier=_tier(c.transaction_fen, PURCHASE_TIERS, p_cuts),
        propagation_tier=_tier(c.propagation_fen, PROPAGATION_TIERS, g_cuts),
    )
    rows = m.app.engine.to_arrow(
        tiered.group_by(["rank", "purchase_tier", "propagation_tier"]).agg(n=tiered.count(), total=tiered.clv_fen.sum())
    ).to_pylist()
    order = {t: i for i, t in enumerate(PURCHASE_TIERS)} | {f"g{t}": i for i, t in enumerate(PROPAGATION_TIERS)}
    rows.sort(key=lambda r: (r["rank"], order[r["purchase_tier"]], order["g" + r["propagation_tier"]]))
    return {
        "brand": m.settings.code,
        "period": period.label,
        "grain": period.grain,
        "window_days": m.window_days,
        "purchase_tiers": list(PURCHASE_TIERS),
        "propagation_tiers": list(PROPAGATION_TIERS),
        "thresholds": {"purchase_fen": p_cuts, "propagation_fen": g_cuts},
        "cells": [
            {
                "layer": LAYERS[r["rank"]],
                "purchase_tier": r["purchase_tier"],
                "propagation_tier": r["propagation_tier"],
                "customers": int(r["n"]),
                "average_clv_fen": average(int(r["total"]), int(r["n"])),
            }
            for r in rows
        ],
    }
