"""FAST+ for one brand and period: Capital, Conversion, Connection, CLV (DESIGN §4).

`FastMetrics` gets every period's layers once, so a trend of N periods needs N + 1 layer snapshots,
and each metric is a small aggregate over them. A snapshot is read from the lake table `layers` when
`siyu metrics materialise` stored it from the inputs of now (fresh), else computed in memory: this
class never writes (reads never write; the materialise job stores).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import ibis.expr.types as ir
from sqlalchemy import select

from siyu.bootstrap import App
from siyu.brands.settings import brand_settings
from siyu.core.errors import SiyuError
from siyu.metrics.facts import Facts, utc
from siyu.metrics.freshness import Key, fresh_run, inputs
from siyu.metrics.labels import LAYERS, PRIVATE_LAYERS
from siyu.metrics.layers import LAYERS_TABLE, active_at, layer_ranks
from siyu.metrics.periods import DEFAULT_WINDOW_DAYS as DEFAULT_WINDOW_DAYS
from siyu.metrics.periods import GRAINS, Grain, Period, parse_period, period_range
from siyu.store.models import Field


class BadOptionError(SiyuError):
    code = "bad_option"


def average(total: int, count: int) -> int | None:
    """Average in whole fen, rounded half up; None for an empty population."""
    if count == 0:
        return None
    return (2 * total + count) // (2 * count)


def ratio(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 6)


class FastMetrics:
    """FAST+ calculator for one brand (see module docstring)."""

    def __init__(self, app: App, brand: str, grain: str = "month", window_days: int = DEFAULT_WINDOW_DAYS) -> None:
        if grain not in GRAINS:
            raise BadOptionError(f"unknown grain {grain!r}: use one of {', '.join(GRAINS)} (周期粒度)")
        if window_days < 0:
            raise BadOptionError("--window-days must be ≥ 0 (0 = lifetime) (窗口天数)")
        self.app = app
        self.settings = brand_settings(app, brand)
        self.grain: Grain = grain
        self.window_days = window_days
        self._inputs: str | None = None
        self._facts: Facts | None = None
        self._span: tuple[Period, Period] | None = None
        self._ranks: dict[str, ir.Table] = {}
        self._materialised_at: dict[str, str] = {}
        self._fast: dict[str, dict[str, Any]] = {}
        self._n = 0

    @property
    def facts(self) -> Facts:
        if self._facts is None:
            self._facts = Facts(self.app, self.settings)  # all history: nothing was prepared
        return self._facts

    def prepare(self, first: Period, last: Period) -> None:
        """Say which periods are coming: facts are read once for all of them (purchases from the
        earliest instant any of them needs, visits for the whole span)."""
        # Layers need purchases from the previous period on; CLV from the window start (lifetime: all).
        since: datetime | None = None
        if self.window_days:
            since = min(first.previous().start, first.end - timedelta(days=self.window_days))
        if self._facts is None or not self._facts.covers(since):
            self._facts = Facts(self.app, self.settings, since)
        self._span = (first, last)

    def ensure(self, period: Period) -> None:
        """Prepare for `period` unless an earlier `prepare` already covers it."""
        if self._span is None or not self._span[0].start <= period.start < self._span[1].end:
            self.prepare(period, period)

    def period(self, label: str) -> Period:
        return parse_period(label, self.grain, self.settings.timezone)

    def _sql(self, expr: ir.Table) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.app.engine.to_arrow(expr).to_pylist()
        return rows

    # -- layers -------------------------------------------------------------------------------

    def ranks(self, period: Period) -> ir.Table:
        """customer_id, rank at the end of `period` (stored if fresh, else computed; once)."""
        if period.label not in self._ranks:
            self._n += 1
            name = f"facts_{self.facts.tag}_ranks_{self._n}"
            stored = self._stored_ranks(period)
            expr = stored if stored is not None else layer_ranks(self.facts, period)
            self._ranks[period.label] = self.app.engine.materialise(expr, name)
        return self._ranks[period.label]

    def _stored_ranks(self, period: Period) -> ir.Table | None:
        if self._inputs is None:
            self._inputs = inputs(self.app, self.settings)
        key = Key("layers", self.settings.code, grain=period.grain, period=period.label)
        run = fresh_run(self.app, key, self._inputs)
        table = self.app.engine.table(LAYERS_TABLE) if run is not None else None
        if run is None or table is None:
            return None
        self._materialised_at[period.label] = run.materialised_at.isoformat()
        mine = table.filter(
            (table.brand == self.settings.code) & (table.grain == period.grain) & (table.period == period.label)
        )
        return mine.select("customer_id", "rank")

    # -- metrics ------------------------------------------------------------------------------

    def fast(self, period: Period) -> dict[str, Any]:
        """The FAST+ JSON of one period (keys are a contract: see issue 3 and docs/metrics.md)."""
        if period.label not in self._fast:
            self.ensure(period)
            self._fast[period.label] = self._compute(period)
        return self._fast[period.label]

    def _compute(self, period: Period) -> dict[str, Any]:
        cur = self.ranks(period)
        previous = period.previous()
        prev = self.ranks(previous)
        layers = {row["rank"]: row["n"] for row in self._sql(cur.group_by("rank").agg(n=cur.count()))}
        by_layer = {name: int(layers.get(rank, 0)) for rank, name in enumerate(LAYERS) if rank > 0}
        capital = sum(by_layer.values())
        return {
            "brand": self.settings.code,
            "period": period.label,
            "grain": period.grain,
            "timezone": self.settings.timezone,
            "period_start": period.start.isoformat(),
            "period_end": period.end.isoformat(),
            "previous_period": previous.label,
            "capital": capital,
            "layers": by_layer,
            "capital_by_field": self._capital_by_field(period, cur),
            "conversion": self._conversion(cur, prev),
            "connection": self._connection(period, cur),
            "connection_overall": self._connection_overall(period, cur),
            "clv": self._clv(period, cur),
            "field_names": self.field_names(),
            # When the layers were read from `siyu metrics materialise`'s store (None: computed now).
            "layers_materialised_at": self._materialised_at.get(period.label),
        }

    def trend(self, first: Period, last: Period) -> dict[str, Any]:
        periods = period_range(first, last)
        self.prepare(first, last)
        return {
            "brand": self.settings.code,
            "grain": self.grain,
            "timezone": self.settings.timezone,
            "from": first.label,
            "to": last.label,
            "periods": [self.fast(p) for p in periods],
        }

    def _capital_by_field(self, period: Period, cur: ir.Table) -> dict[str, int]:
        r = self.facts.relations
        held = r.filter(active_at(r, "started_at", "ended_at", utc(period.end))).select("customer_id", "field")
        held = held.join(cur.filter(cur["rank"] >= 1), "customer_id")
        rows = self._sql(held.group_by("field").agg(n=held.customer_id.nunique()).order_by("field"))
        return {row["field"]: int(row["n"]) for row in rows}

    def _conversion(self, cur: ir.Table, prev: ir.Table) -> dict[str, Any]:
        j = cur.join(prev.select("customer_id", prev_rank=prev["rank"]), "customer_id")
        moved = j.filter((j.prev_rank > 0) | (j["rank"] > 0))
        rows = self._sql(moved.group_by(["prev_rank", "rank"]).agg(n=moved.count()).order_by(["prev_rank", "rank"]))
        base = sum(r["n"] for r in rows if r["prev_rank"] > 0)
        deepened = sum(r["n"] for r in rows if r["prev_rank"] > 0 and r["rank"] > r["prev_rank"])
        new = sum(r["n"] for r in rows if r["prev_rank"] == 0)
        new_members = sum(r["n"] for r in rows if r["prev_rank"] == 0 and r["rank"] >= 2)
        return {
            "rate": ratio(deepened, base),
            "deepened": int(deepened),
            "base": int(base),
            "new_entrants": int(new),
            "new_member_entrants": int(new_members),
            "transitions": [
                {"from": LAYERS[r["prev_rank"]], "to": LAYERS[r["rank"]], "customers": int(r["n"])} for r in rows
            ],
        }

    def _visits(self, period: Period, cur: ir.Table) -> ir.Table:
        first, last = self._span or (period, period)
        v = self.facts.visits_between(first.start, last.end)
        v = v.filter(v.occurred_at >= utc(period.start), v.occurred_at < utc(period.end))
        return v.select("customer_id", "field").join(cur, "customer_id")

    def _connection(self, period: Period, cur: ir.Table) -> dict[str, dict[str, Any]]:
        v = self._visits(period, cur)
        visits = self._sql(
            v.group_by("field").agg(
                visitors=v.customer_id.nunique(), holders=v.customer_id.nunique(where=v["rank"] >= 1)
            )
        )
        r = self.facts.relations
        started = r.filter(r.started_at >= utc(period.start), r.started_at < utc(period.end))
        new = {row["field"]: int(row["n"]) for row in self._sql(started.group_by("field").agg(n=started.count()))}
        total_new = sum(new.values())
        out: dict[str, dict[str, Any]] = {}
        by_field = {row["field"]: row for row in visits}
        for field in sorted(set(by_field) | set(new)):
            row = by_field.get(field, {"visitors": 0, "holders": 0})
            out[field] = {
                "visitors": int(row["visitors"]),
                "holders": int(row["holders"]),
                "rate": ratio(int(row["holders"]), int(row["visitors"])),
                "new_relationships": new.get(field, 0),
                "new_relationship_share": ratio(new.get(field, 0), total_new),
            }
        return out

    def _connection_overall(self, period: Period, cur: ir.Table) -> dict[str, Any]:
        """All fields together (a customer visiting two fields counts once)."""
        v = self._visits(period, cur)
        row = self._sql(
            v.aggregate(visitors=v.customer_id.nunique(), holders=v.customer_id.nunique(where=v["rank"] >= 1))
        )[0]
        visitors, holders = int(row["visitors"] or 0), int(row["holders"] or 0)
        return {"visitors": visitors, "holders": holders, "rate": ratio(holders, visitors)}

    def clv_per_customer(self, period: Period) -> ir.Table:
        """customer_id, rank, transaction_fen, propagation_fen, clv_fen for every private-domain
        customer (rank ≥ 1) at the end of `period`, over the window ending at the period end."""
        cur = self.ranks(period)
        end = utc(period.end)
        p, a = self.facts.purchases, self.facts.attributed
        p_in = p.paid_at < end
        a_in = a.paid_at < end
        if self.window_days:
            start = utc(period.end - timedelta(days=self.window_days))
            p_in &= p.paid_at >= start
            a_in &= a.paid_at >= start
        own = p.filter(p_in)
        own = own.group_by("customer_id").agg(transaction_fen=own.net_fen.sum())
        brought = a.filter(a_in)
        brought = brought.group_by(customer_id=brought.sharer).agg(propagation_fen=brought.net_fen.sum())
        base = cur.filter(cur["rank"] >= 1)
        joined = (
            base.left_join(own, "customer_id")
            .drop("customer_id_right")
            .left_join(brought, "customer_id")
            .drop("customer_id_right")
        )
        tx = joined.transaction_fen.fill_null(0).cast("int64")
        pv = joined.propagation_fen.fill_null(0).cast("int64")
        return joined.select("customer_id", "rank", transaction_fen=tx, propagation_fen=pv, clv_fen=tx + pv)

    def _clv(self, period: Period, cur: ir.Table) -> dict[str, Any]:
        c = self.clv_per_customer(period)
        rows = self._sql(c.group_by("rank").agg(n=c.count(), tx=c.transaction_fen.sum(), pv=c.propagation_fen.sum()))
        n = sum(int(r["n"]) for r in rows)
        tx = sum(int(r["tx"]) for r in rows)
        pv = sum(int(r["pv"]) for r in rows)
        by_rank = {int(r["rank"]): r for r in rows}
        by_layer = {}
        for rank, name in enumerate(LAYERS):
            if name in PRIVATE_LAYERS:
                row = by_rank.get(rank)
                by_layer[name] = average(int(row["tx"]) + int(row["pv"]), int(row["n"])) if row else None
        return {
            "window_days": self.window_days,
            "customers": n,
            "average_fen": average(tx + pv, n),
            "by_layer": by_layer,
            "transaction_fen": average(tx, n),
            "propagation_fen": average(pv, n),
            "total_fen": tx + pv,
        }

    def field_names(self) -> dict[str, list[str | None]]:
        with self.app.store.unit_of_work() as session:
            fields = session.scalars(select(Field).where(Field.brand == self.settings.code)).all()
            return {f.code: [f.name_zh or f.code, f.name_en or f.code] for f in fields}
