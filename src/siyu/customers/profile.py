"""Customer 360 extras (客户全景): layer history, recent orders and events, and the latest RFM,
lifecycle stage and predicted CLV — each only where it has been computed."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import ibis
import ibis.expr.types as ir

from siyu.bootstrap import App
from siyu.clv.service import LIFECYCLE_TABLE, PREDICTIONS_TABLE
from siyu.ingest.views import latest_for_records
from siyu.metrics.layers import LAYERS_TABLE
from siyu.metrics.rfm import RFM_TABLE

NODE = ["brand", "source", "source_customer_id"]
# What Python's datetime can hold (years 1–9999), a day inside each end so no time zone overflows.
_FIRST, _LAST = datetime(1, 1, 2, tzinfo=UTC), datetime(9999, 12, 30, tzinfo=UTC)


def representable(expr: ir.Table) -> ir.Table:
    """`expr` with every timestamp or date Python cannot represent shown as NULL.

    The lake may hold such a value from before the import bounds existed; reading it into Python
    raises, so one bad event would make the whole customer view fail for good."""
    values: dict[str, ir.Value] = {}
    for name, dtype in expr.schema().items():
        column = expr[name]
        if dtype.is_timestamp():
            naive = not dtype.timezone
            lo, hi = (ibis.literal(d.replace(tzinfo=None) if naive else d, type=dtype) for d in (_FIRST, _LAST))
            values[name] = ibis.ifelse(column.between(lo, hi), column, ibis.null(dtype))
        elif dtype.is_date():
            lo, hi = ibis.literal(date(1, 1, 1)), ibis.literal(date(9999, 12, 31))
            values[name] = ibis.ifelse(column.between(lo, hi), column, ibis.null(dtype))
        else:
            values[name] = column
    return expr.select(**values)


def rows_of(app: App, expr: ir.Table) -> list[dict[str, Any]]:
    """The rows of `expr` as Python values (see `representable`)."""
    rows: list[dict[str, Any]] = app.engine.to_arrow(representable(expr)).to_pylist()
    return rows


def _latest_of(app: App, name: str, brand: str, customer_id: str, order: str) -> dict[str, Any] | None:
    table = app.engine.table(name)
    if table is None:
        return None
    mine = table.filter((table.brand == brand) & (table.customer_id == customer_id))
    rows = rows_of(app, mine.order_by(mine[order].desc()).limit(1))
    return rows[0] if rows else None


def customer_profile(app: App, brand: str, customer_id: str, records: ir.Table, recent: int = 20) -> dict[str, Any]:
    """The computed side of a customer: `records` are the customer's source records (NODE columns)."""
    out: dict[str, Any] = {"layer_history": [], "recent_orders": [], "recent_events": []}
    layers = app.engine.table(LAYERS_TABLE)
    if layers is not None:
        mine = layers.filter((layers.brand == brand) & (layers.customer_id == customer_id))
        out["layer_history"] = rows_of(
            app, mine.select("grain", "period", "period_end", "layer").order_by(["grain", "period_end"])
        )
    mine = latest_for_records(app.engine, "orders", records)
    if mine is not None:
        cols: tuple[str, ...] = (
            "source",
            "order_id",
            "status",
            "paid_at",
            "amount_fen",
            "refund_fen",
            "store_code",
            "coupon_code",
        )
        out["recent_orders"] = rows_of(app, mine.order_by(mine.paid_at.desc()).select(*cols).limit(recent))
    mine = latest_for_records(app.engine, "events", records)
    if mine is not None:
        cols = ("source", "event_id", "field", "type", "occurred_at", "properties")
        out["recent_events"] = rows_of(app, mine.order_by(mine.occurred_at.desc()).select(*cols).limit(recent))
    rfm = _latest_of(app, RFM_TABLE, brand, customer_id, "computed_at")
    out["rfm"] = (
        {
            k: rfm[k]
            for k in ("as_of", "window_days", "recency_days", "frequency", "monetary_fen", "r", "f", "m", "group")
        }
        if rfm
        else None
    )
    stage = _latest_of(app, LIFECYCLE_TABLE, brand, customer_id, "as_of")
    out["lifecycle"] = {"as_of": stage["as_of"], "stage": stage["stage"]} if stage else None
    clv = _latest_of(app, PREDICTIONS_TABLE, brand, customer_id, "predicted_at")
    out["clv"] = (
        {
            k: clv[k]
            for k in ("as_of", "p_alive", "expected_purchases", "expected_spend_fen", "clv_fen", "horizon_months")
        }
        if clv
        else None
    )
    return out
