"""CLV matrix (分层CLV): private-domain customers by layer × purchase-value tier × propagation-value
tier, with counts and average CLV per cell (DESIGN §4).

Tiers are relative to the brand in that period: customers with no value are `none`; the others are
split at the nearest-rank tertiles (purchase: low / mid / high) or median (propagation: low /
high) of the positive values, and the thresholds are part of the output so a reader can see where they fall.
"""

from __future__ import annotations

import math
from typing import Any

import ibis
import ibis.expr.types as ir

from siyu.metrics.fast import FastMetrics, average
from siyu.metrics.labels import LAYERS
from siyu.metrics.periods import Period

PURCHASE_TIERS = ("none", "low", "mid", "high")
PROPAGATION_TIERS = ("none", "low", "high")


def _thresholds(m: FastMetrics, table: ir.Table, column: str, quantiles: list[float]) -> list[int]:
    """Nearest-rank quantiles of the positive values of `column`: the smallest value with at least
    a fraction q of the positive values at or below it (an exact value, never interpolated)."""
    positive = table.filter(table[column] > 0).select(value=table[column])
    n = int(m.app.engine.to_arrow(positive.count().name("n").as_table())["n"][0].as_py())
    if n == 0:
        return [0] * len(quantiles)
    ranked = positive.mutate(position=ibis.row_number().over(order_by="value") + 1)
    wanted = {math.ceil(q * n): i for i, q in enumerate(quantiles)}
    rows = m.app.engine.to_arrow(ranked.filter(ranked.position.isin(list(wanted)))).to_pylist()
    by_position = {r["position"]: int(r["value"]) for r in rows}
    return [by_position[math.ceil(q * n)] for q in quantiles]


def _tier(value: ir.IntegerValue, names: tuple[str, ...], cuts: list[int]) -> ir.StringValue:
    cases = [(value == 0, names[0])]
    cases += [(value <= cut, name) for cut, name in zip(cuts, names[1:], strict=False)]
    return ibis.cases(*cases, else_=names[-1])


def clv_matrix(m: FastMetrics, period: Period) -> dict[str, Any]:
    m.ensure(period)
    c = m.app.engine.materialise(m.clv_per_customer(period), f"facts_{m.facts.tag}_clv_{period.label}")
    p_cuts = _thresholds(m, c, "transaction_fen", [1 / 3, 2 / 3])
    g_cuts = _thresholds(m, c, "propagation_fen", [0.5])
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
