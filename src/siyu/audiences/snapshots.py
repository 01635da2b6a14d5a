"""Audience snapshots (快照): the membership frozen at a moment — ids in the lake table
`audience_members`, bookkeeping in the store — what journeys and coupon bulk-issuance take as input
(`members`); comparison of two audiences, live or frozen (`diff_audiences`); and the scheduled
refresh (`refresh_due`, run by cron / a worker). Taking a snapshot is two steps: `freeze_audience`
computes the members (a lake read), `do_snapshot_audience` records them in the caller's unit of work."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa
from sqlalchemy import select

from siyu.audiences.context import ID, Context
from siyu.audiences.errors import AudienceError
from siyu.audiences.models import Audience, AudienceSnapshot
from siyu.audiences.service import compile_audience, compiled_audience, find_audience, get_audience, subject
from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.core.clock import utc_now
from siyu.core.errors import NotFoundError
from siyu.lake.tables import Lake, sql_text
from siyu.store.uow import UnitOfWork

MEMBERS_TABLE = "audience_members"


@dataclass(frozen=True)
class Membership:
    """An audience's members computed now (by `freeze_audience`), to be recorded by `do_snapshot_audience`."""

    brand: str
    audience: str
    rule: dict[str, Any]  # the rule as it was when the members were computed
    as_of: date
    ids: pa.Array  # customer_id, sorted


def freeze_audience(app: App, brand: str, code: str, as_of: date | None = None) -> Membership:
    """Compute the audience's members now (a lake read, before the unit of work opens)."""
    audience = get_audience(app, brand, code)
    with compiled_audience(app, brand, None, audience["rule"], as_of) as (ctx, expr):
        data = app.engine.to_arrow(expr.order_by(ID))
        return Membership(brand, code, audience["rule"], ctx.as_of, data[ID].combine_chunks())


def do_snapshot_audience(
    uow: UnitOfWork, lake: Lake, members: Membership, *, trigger: str = "manual"
) -> dict[str, Any]:
    """Freeze the membership: bookkeeping to the store, ids to the lake table `audience_members`.
    Audited: `audience.snapshot` with the size. The ids are written while the transaction is open
    (they carry the snapshot's id); should it then roll back, the next snapshot that gets the same
    id replaces them, and `members` only reads snapshots the store knows."""
    brand, code, n, now = members.brand, members.audience, len(members.ids), uow.now
    a = find_audience(uow.session, brand, code)
    snap = AudienceSnapshot(
        brand=brand, audience_code=code, taken_at=now, as_of=members.as_of.isoformat(), customers=n,
        rule_json=json.dumps(members.rule, ensure_ascii=False), trigger=trigger, actor=str(uow.actor),
    )  # fmt: skip
    uow.session.add(snap)
    uow.session.flush()
    table = pa.table(
        {
            "brand": pa.array([brand] * n, pa.string()),
            "audience": pa.array([code] * n, pa.string()),
            "snapshot_id": pa.array([snap.id] * n, pa.int64()),
            "customer_id": members.ids,
            "taken_at": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
        }
    )
    snap.lake_version = lake.replace(MEMBERS_TABLE, table, f"brand = {sql_text(brand)} AND snapshot_id = {snap.id}")
    a.last_snapshot_at, a.last_count = now, n
    after = {"snapshot_id": snap.id, "customers": n, "as_of": members.as_of.isoformat(), "trigger": trigger}
    uow.audit("audience.snapshot", "audience", subject(brand, code), brand=brand, after=after)
    return {
        "brand": brand,
        "audience": code,
        "snapshot_id": snap.id,
        "taken_at": now,
        "as_of": members.as_of.isoformat(),
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


def due_audiences(app: App, now: datetime) -> list[tuple[str, str]]:
    """(brand, code) of every audience whose refresh interval has passed at `now`."""
    with app.store.unit_of_work() as session:
        return [
            (a.brand, a.code)
            for a in session.scalars(select(Audience).where(Audience.refresh_minutes.is_not(None)))
            if a.last_snapshot_at is None
            or _aware(a.last_snapshot_at) + timedelta(minutes=a.refresh_minutes or 0) <= now
        ]


def refresh_due(app: App, now: datetime | None = None) -> list[dict[str, Any]]:
    """Snapshot every audience whose refresh interval has passed (run by cron / a worker every few
    minutes: `siyu audience refresh`). The members are computed first, then recorded in one unit of
    work of the scheduler (`system:scheduler`)."""
    now = now or utc_now()
    frozen = [freeze_audience(app, brand, code) for brand, code in due_audiences(app, now)]
    with app.store.begin(Actor.system("scheduler"), now=now) as uow:
        return [do_snapshot_audience(uow, app.lake, m, trigger="schedule") for m in frozen]


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes for timezone-aware columns; they are UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
