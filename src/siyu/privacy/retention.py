"""Retention (保存期限): how long each kind of data is kept, per brand, and the run that deletes
what is past its date in the store and the lake (PIPL art. 19: no longer than necessary).

Policies live in the store (`retention_policies`: brand, entity, days); brand `*` is the default for
every brand, and an entity without a policy uses `DEFAULTS`. Quarantine rows have no brand, so only
the `*` policy applies to them. The audit trail is not subject to retention (records of
processing; its chain must stay whole). A run is one audited pass (`retention.run`, counts only);
lake deletions are followed by `Lake.purge_history`, so older versions do not keep the rows.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ibis
from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm import Session

from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.core.errors import SiyuError
from siyu.lake.tables import sql_text
from siyu.privacy.holdings import table_of
from siyu.privacy.models import RetentionPolicy
from siyu.store.uow import UnitOfWork

log = logging.getLogger(__name__)
ALL_BRANDS = "*"


@dataclass(frozen=True)
class Kind:
    """One kind of data under retention: where it is and which column dates it."""

    name: str
    where: str  # store | lake
    column: str
    default_days: int  # rows whose date is NULL (not loaded, not processed yet) never go


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("events", "lake", "occurred_at", 3 * 365),  # raw behaviour events
        Kind("messages", "lake", "sent_at", 3 * 365),  # WeCom chat archive
        Kind("quarantine_rows", "store", "started_at", 90),  # dated by their import job
        Kind("inbox", "store", "loaded_at", 30),  # API messages already in the lake
        Kind("outbound_messages", "store", "created_at", 365),
        Kind("wecom_callbacks", "store", "processed_at", 90),
    )
}


class UnknownRetentionEntityError(SiyuError):
    code = "unknown_retention_entity"
    exit_code = 2


def _kind(name: str) -> Kind:
    if name not in KINDS:
        raise UnknownRetentionEntityError(f"no retention for {name!r}: choose one of {', '.join(KINDS)} (无此数据类型)")
    return KINDS[name]


def do_set_policy(uow: UnitOfWork, brand: str, entity: str, days: int) -> None:
    """Keep `entity` of `brand` (`*` = every brand) for `days` days (audited: `retention.set`)."""
    _kind(entity)
    if not 1 <= days <= 36_500:
        raise UnknownRetentionEntityError(f"retention {days} days: must be 1–36500 (保存天数)")
    row = uow.session.get(RetentionPolicy, (brand, entity))
    before = None if row is None else row.days
    if row is None:
        uow.session.add(RetentionPolicy(brand=brand, entity=entity, days=days, updated_at=uow.now))
    else:
        row.days, row.updated_at = days, uow.now
    uow.audit("retention.set", "retention_policy", f"{brand}/{entity}", before={"days": before}, after={"days": days})


def policies(session: Session) -> dict[tuple[str, str], int]:
    return {(p.brand, p.entity): p.days for p in session.scalars(select(RetentionPolicy))}


def _brands(session: Session) -> list[str]:
    return list(session.scalars(select(table_of("brands").c.code).order_by(table_of("brands").c.code)))


def cutoffs(session: Session, now: dt.datetime) -> dict[str, dict[str, dt.datetime]]:
    """entity → brand (or `*`) → the instant before which rows go."""
    set_ = policies(session)
    out: dict[str, dict[str, dt.datetime]] = {}
    for kind in KINDS.values():
        default = set_.get((ALL_BRANDS, kind.name), kind.default_days)
        per = {ALL_BRANDS: now - dt.timedelta(days=default)}
        for brand in _brands(session):
            per[brand] = now - dt.timedelta(days=set_.get((brand, kind.name), default))
        out[kind.name] = per
    return out


def _store_condition(kind: Kind, brand: str, before: dt.datetime) -> tuple[Any, ColumnElement[bool]]:
    table = table_of(kind.name)
    if kind.name == "quarantine_rows":
        jobs = table_of("import_jobs")
        old = select(jobs.c.id).where(jobs.c.started_at < before)
        return table, table.c.job_id.in_(old)
    condition = table.c[kind.column] < before
    if brand != ALL_BRANDS and "brand" in table.c:
        condition &= table.c.brand == brand
    return table, condition


def run_retention(app: App, *, dry_run: bool = False, actor: Actor | None = None) -> dict[str, int]:
    """Delete (or with `dry_run` count) what is past its date; returns rows per entity."""
    now = app.clock()
    counts: dict[str, int] = {}
    with app.store.begin(actor or Actor.system("retention")) as uow:
        limits = cutoffs(uow.session, now)
        for kind in (k for k in KINDS.values() if k.where == "store"):
            per = limits[kind.name]
            brands = [ALL_BRANDS] if kind.name == "quarantine_rows" else [b for b in per if b != ALL_BRANDS]
            n = 0
            for brand in brands:
                table, condition = _store_condition(kind, brand, per[brand])
                if dry_run:
                    n += int(uow.session.scalar(select(func.count()).select_from(table).where(condition)) or 0)
                else:
                    result: Any = uow.session.execute(delete(table).where(condition))
                    n += int(result.rowcount)
            counts[kind.name] = n
        for kind in (k for k in KINDS.values() if k.where == "lake"):
            counts[kind.name] = _lake(app, kind, limits[kind.name], dry_run)
        uow.audit("retention.run", "retention", "all", after={"dry_run": dry_run, "deleted": counts})
    return counts


def _lake(app: App, kind: Kind, limits: dict[str, dt.datetime], dry_run: bool) -> int:
    """The lake's rows of `kind` past their brand's date: deleted in one commit, history purged."""
    if not app.lake.exists(kind.name):
        return 0
    clauses = [
        f"(brand = {sql_text(b)} AND {kind.column} < '{at.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%SZ}')"
        for b, at in limits.items()
        if b != ALL_BRANDS
    ]
    if not clauses:
        return 0
    predicate = " OR ".join(clauses)
    if dry_run:
        table = app.engine.table(kind.name)
        assert table is not None
        terms = [(table.brand == b) & (table[kind.column] < at) for b, at in limits.items() if b != ALL_BRANDS]
        return int(app.engine.scalar(table.filter(ibis.or_(*terms)).count()))
    n = app.lake.delete(kind.name, predicate)
    if n:
        app.lake.purge_history(kind.name)
    return n


def run_schedule(
    app: App, stop: threading.Event, every: dt.timedelta, run: Callable[[App], Any] = run_retention
) -> None:
    """`run_retention` every `every` until `stop` (the worker's thread); the first after one interval."""
    while not stop.wait(every.total_seconds()):
        try:
            counts = run(app)
            log.info("retention deleted %d rows", sum(counts.values()))
        except Exception as error:  # a failed pass must not end the schedule: the next one retries
            log.error("scheduled retention failed (%s)", type(error).__name__)
