"""Audience snapshots (快照): the membership frozen at a moment — ids in the lake table
`audience_members`, bookkeeping in the store — what journeys and coupon bulk-issuance take as input
(`members`); comparison of two audiences, live or frozen (`diff_audiences`); and the scheduled
refresh (`refresh_due`, run by cron / a worker)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa
from sqlalchemy import select

from siyu.audiences.context import ID, Context
from siyu.audiences.errors import AudienceError
from siyu.audiences.models import Audience, AudienceSnapshot
from siyu.audiences.service import compile_audience, compiled_audience, get_audience
from siyu.bootstrap import App
from siyu.core.clock import utc_now
from siyu.core.errors import NotFoundError

MEMBERS_TABLE = "audience_members"


def snapshot_audience(
    app: App, brand: str, code: str, *, actor: str = "system", trigger: str = "manual", as_of: date | None = None
) -> dict[str, Any]:
    """Freeze the audience's membership now: ids to the lake, bookkeeping to the store."""
    audience = get_audience(app, brand, code)
    with compiled_audience(app, brand, code, None, as_of) as (ctx, expr):
        data = app.engine.to_arrow(expr.order_by(ID))
        now = utc_now()
        with app.store.unit_of_work() as session:
            snap = AudienceSnapshot(
                brand=brand,
                audience_code=code,
                taken_at=now,
                as_of=ctx.as_of.isoformat(),
                customers=data.num_rows,
                rule_json=json.dumps(audience["rule"], ensure_ascii=False),
                trigger=trigger,
                actor=actor,
            )
            session.add(snap)
            session.flush()
            snapshot_id = snap.id
        n = data.num_rows
        version = app.lake.append(
            MEMBERS_TABLE,
            pa.table(
                {
                    "brand": pa.array([brand] * n, pa.string()),
                    "audience": pa.array([code] * n, pa.string()),
                    "snapshot_id": pa.array([snapshot_id] * n, pa.int64()),
                    "customer_id": data[ID],
                    "taken_at": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
                }
            ),
        )
        with app.store.unit_of_work() as session:
            snap_row = session.get(AudienceSnapshot, snapshot_id)
            a = session.get(Audience, (brand, code))
            assert snap_row is not None and a is not None
            snap_row.lake_version = version
            a.last_snapshot_at, a.last_count = now, n
        return {
            "brand": brand,
            "audience": code,
            "snapshot_id": snapshot_id,
            "taken_at": now,
            "as_of": ctx.as_of.isoformat(),
            "customers": n,
            "trigger": trigger,
        }


def list_snapshots(app: App, brand: str, code: str) -> list[dict[str, Any]]:
    with app.store.unit_of_work() as session:
        rows = session.scalars(
            select(AudienceSnapshot)
            .where(AudienceSnapshot.brand == brand, AudienceSnapshot.audience_code == code)
            .order_by(AudienceSnapshot.id.desc())
        ).all()
        return [
            {
                "snapshot_id": s.id,
                "taken_at": s.taken_at,
                "as_of": s.as_of,
                "customers": s.customers,
                "trigger": s.trigger,
                "actor": s.actor,
            }
            for s in rows
        ]


def members(app: App, brand: str, code: str, snapshot_id: int | None = None) -> ir.Table:
    """customer_id of a snapshot (default: the latest) — the input of journeys and coupon bulk-issuance."""
    snaps = list_snapshots(app, brand, code)
    if not snaps:
        raise NotFoundError(f"audience {code!r} has no snapshot yet: run `siyu audience snapshot` (尚无快照)")
    wanted = snapshot_id if snapshot_id is not None else snaps[0]["snapshot_id"]
    if wanted not in {s["snapshot_id"] for s in snaps}:
        raise NotFoundError(f"audience {code!r} has no snapshot {wanted} (未找到快照)")
    table = app.engine.table(MEMBERS_TABLE)
    assert table is not None
    return table.filter((table.brand == brand) & (table.snapshot_id == wanted)).select(ID)


def _side(app: App, brand: str, ref: str, as_of: date | None) -> tuple[Context | None, ir.Table]:
    """`code` (live) or `code@snapshot_id`."""
    code, _, snap = ref.partition("@")
    if snap:
        if not snap.isdigit():
            raise AudienceError(f"{ref!r}: a snapshot is code@<number> (快照编号)")
        return None, members(app, brand, code, int(snap))
    return compile_audience(app, brand, code, None, as_of)


def diff_audiences(app: App, brand: str, a: str, b: str, as_of: date | None = None) -> dict[str, Any]:
    """Overlap of two audiences (each live, or `code@snapshot_id`): sizes, both, only in each, Jaccard."""
    (ctx_a, left), (ctx_b, right) = _side(app, brand, a, as_of), _side(app, brand, b, as_of)
    both = left.semi_join(right, ID)
    try:
        row = app.engine.to_arrow(
            ibis.memtable({"k": [1]}).select(
                a=left.count().as_scalar(), b=right.count().as_scalar(), both=both.count().as_scalar()
            )
        ).to_pylist()[0]
    finally:
        for ctx in (ctx_a, ctx_b):
            if ctx is not None:
                ctx.release()
    n_a, n_b, n_both = int(row["a"]), int(row["b"]), int(row["both"])
    union = n_a + n_b - n_both
    return {
        "brand": brand,
        "a": {"audience": a, "customers": n_a},
        "b": {"audience": b, "customers": n_b},
        "both": n_both,
        "only_a": n_a - n_both,
        "only_b": n_b - n_both,
        "union": union,
        "jaccard": round(n_both / union, 6) if union else None,
    }


def refresh_due(app: App, now: datetime | None = None, actor: str = "scheduler") -> list[dict[str, Any]]:
    """Snapshot every audience whose refresh interval has passed (run by cron / a worker every few
    minutes: `siyu audience refresh`)."""
    now = now or utc_now()
    with app.store.unit_of_work() as session:
        due = [
            (a.brand, a.code)
            for a in session.scalars(select(Audience).where(Audience.refresh_minutes.is_not(None)))
            if a.last_snapshot_at is None
            or _aware(a.last_snapshot_at) + timedelta(minutes=a.refresh_minutes or 0) <= now
        ]
    return [snapshot_audience(app, brand, code, actor=actor, trigger="schedule") for brand, code in due]


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes for timezone-aware columns; they are UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
