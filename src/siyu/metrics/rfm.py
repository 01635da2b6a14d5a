"""RFM: quintile scores (1–5) on recency, frequency and monetary value over a window, and the 8
classic groups (重要价值客户 … 一般挽留客户) by whether each score is above the average score.

- recency_days: days from the last purchase day to the as-of day (brand-local days)
- frequency: purchase days in the window (two orders on one day are one purchase, as in FAST+)
- monetary_fen: net paid amount in the window
Scores: a customer's score is 1 + ⌊5 · rank / n⌋ with rank the 0-based position from worst to best
(ties share the lowest rank), so equal values always get equal scores and each score holds about a
fifth of the customers. Higher is better: recent, frequent, high spend.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from siyu.bootstrap import App
from siyu.brands.settings import BrandSettings, brand_settings
from siyu.core.clock import utc_now
from siyu.lake.tables import sql_text
from siyu.metrics.facts import Facts
from siyu.metrics.fast import average
from siyu.metrics.freshness import Key, fresh_run, inputs
from siyu.metrics.labels import RFM_GROUPS

RFM_TABLE = "rfm"


def _score(value: ir.NumericColumn, n: int) -> ir.IntegerValue:
    rank = ibis.rank().over(order_by=value)
    return (1 + (rank * 5) // n).cast("int8")


def scores(app: App, settings: BrandSettings, as_of: date, window_days: int) -> tuple[ir.Table, int]:
    """customer_id, recency_days, frequency, monetary_fen, r, f, m, group of every buyer in the
    window (a temporary table, computed in memory), and how many there are."""
    zone = ZoneInfo(settings.timezone)
    end = datetime.combine(as_of + timedelta(days=1), datetime.min.time(), zone).astimezone(UTC)
    start = end - timedelta(days=window_days)
    facts = Facts(app, settings, since=start)
    p = facts.purchases
    p = p.filter(
        p.paid_at >= ibis.literal(start, "timestamp('UTC')"), p.paid_at < ibis.literal(end, "timestamp('UTC')")
    )
    per = p.group_by("customer_id").agg(last_day=p.day.max(), frequency=p.day.nunique(), monetary_fen=p.net_fen.sum())
    per = per.select(
        "customer_id",
        recency_days=(ibis.literal(as_of) - per.last_day).cast("int32"),
        frequency=per.frequency.cast("int64"),
        monetary_fen=per.monetary_fen.cast("int64"),
    )
    per = app.engine.materialise(per, f"facts_{facts.tag}_rfm")
    n = _count(app, per)
    if n == 0:
        return per.mutate(r=ibis.literal(0, "int8"), f=ibis.literal(0, "int8"), m=ibis.literal(0, "int8"),
                          group=ibis.literal("", "string")), 0  # fmt: skip
    scored = per.mutate(r=_score(-per.recency_days, n), f=_score(per.frequency, n), m=_score(per.monetary_fen, n))
    scored = app.engine.materialise(scored, f"facts_{facts.tag}_rfm_scored")
    avg = _averages(app, scored)
    cases = [
        ((scored.r > avg["r"]) == r_high) & ((scored.f > avg["f"]) == f_high) & ((scored.m > avg["m"]) == m_high)
        for r_high, f_high, m_high in RFM_GROUPS
    ]
    group = ibis.cases(*[(c, names[0]) for c, names in zip(cases, RFM_GROUPS.values(), strict=True)])
    return app.engine.materialise(scored.mutate(group=group), f"facts_{facts.tag}_rfm_grouped"), n


def _count(app: App, table: ir.Table) -> int:
    return int(app.engine.to_arrow(table.count().name("n").as_table())["n"][0].as_py())


def _averages(app: App, scored: ir.Table) -> dict[str, Any]:
    row: dict[str, Any] = app.engine.to_arrow(
        scored.aggregate(r=scored.r.mean(), f=scored.f.mean(), m=scored.m.mean())
    ).to_pylist()[0]
    return row


def rfm(app: App, brand: str, as_of: date, window_days: int = 365) -> dict[str, Any]:
    """The RFM JSON (keys are a contract: docs/metrics.md). Reads the lake table `rfm` when
    `siyu metrics materialise` stored it from the inputs of now, else computes in memory; never writes."""
    settings = brand_settings(app, brand)
    run = fresh_run(app, Key("rfm", settings.code, as_of=as_of, window_days=window_days), inputs(app, settings))
    table = app.engine.table(RFM_TABLE) if run is not None else None
    if run is not None and table is not None:
        mine = table.filter(
            (table.brand == settings.code) & (table.as_of == ibis.literal(as_of)) & (table.window_days == window_days)
        )
        scored, n = mine, _count(app, mine)
    else:
        scored, n = scores(app, settings, as_of, window_days)
    return summary(app, settings, as_of, window_days, scored, n) | {
        # When the scores were read from `siyu metrics materialise`'s store (None: computed now).
        "materialised_at": run.materialised_at.isoformat() if run is not None and table is not None else None
    }


def summary(
    app: App, settings: BrandSettings, as_of: date, window_days: int, scored: ir.Table, n: int
) -> dict[str, Any]:
    """Averages, the 8 groups and the R × F grid of `scored` (see `scores`)."""
    out: dict[str, Any] = {
        "brand": settings.code,
        "as_of": as_of.isoformat(),
        "window_days": window_days,
        "timezone": settings.timezone,
        "customers": n,
    }
    if n == 0:
        return out | {"averages": {"r": None, "f": None, "m": None}, "groups": _groups({}), "grid": []}
    avg = _averages(app, scored)
    by_group = {
        row["group"]: row
        for row in app.engine.to_arrow(
            scored.group_by("group").agg(n=scored.count(), total=scored.monetary_fen.sum())
        ).to_pylist()
    }
    grid = app.engine.to_arrow(
        scored.group_by(["r", "f"]).agg(n=scored.count(), total=scored.monetary_fen.sum()).order_by(["r", "f"])
    ).to_pylist()
    return out | {
        "averages": {k: round(float(v), 4) for k, v in avg.items()},
        "groups": _groups(by_group),
        "grid": [
            {
                "r": int(g["r"]),
                "f": int(g["f"]),
                "customers": int(g["n"]),
                "average_monetary_fen": average(int(g["total"]), int(g["n"])),
            }
            for g in grid
        ],
    }


def _groups(by_group: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    groups = []
    for (r_high, f_high, m_high), (key, zh, en) in RFM_GROUPS.items():
        row = by_group.get(key, {"n": 0, "total": 0})
        groups.append(
            {
                "group": key,
                "name_zh": zh,
                "name_en": en,
                "r_high": r_high,
                "f_high": f_high,
                "m_high": m_high,
                "customers": int(row["n"]),
                "monetary_fen": int(row["total"]),
                "average_monetary_fen": average(int(row["total"]), int(row["n"])),
            }
        )
    return groups


def store_rfm(app: App, settings: BrandSettings, as_of: date, window_days: int, scored: ir.Table) -> tuple[int, int]:
    """Replace the stored RFM of (brand, as_of, window_days) with `scored`; returns the lake
    version written and the rows. Only the materialise job calls this (reads never write)."""
    data = app.engine.to_arrow(scored)
    n = data.num_rows
    table = pa.table(
        {
            "brand": pa.array([settings.code] * n, pa.string()),
            "as_of": pa.array([as_of] * n, pa.date32()),
            "window_days": pa.array([window_days] * n, pa.int32()),
            **{
                c: data[c] for c in ("customer_id", "recency_days", "frequency", "monetary_fen", "r", "f", "m", "group")
            },
            "computed_at": pa.array([utc_now()] * n, pa.timestamp("us", tz="UTC")),
        }
    )
    version = app.lake.replace(
        RFM_TABLE,
        table,
        f"brand = {sql_text(settings.code)} AND as_of = '{as_of.isoformat()}' AND window_days = {window_days}",
    )
    return version, n
