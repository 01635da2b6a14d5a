"""Freshness of stored results (物化新鲜度): which inputs a materialisation saw, and whether a stored
result may stand in for a computation now.

A stored result is fresh when the latest run of its key (brand, kind, grain/period or as-of/window)
saw exactly the inputs of now: the versions of every lake table facts are built from, and the
brand's FAST+ settings. Lake versions only grow, so any import, resolve or settings change since
makes it stale, and the read computes in memory instead. Reads only look here; the materialise job
(`siyu.metrics.materialise`) is the one writer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import ColumnElement, select

from siyu.bootstrap import App
from siyu.brands.settings import BrandSettings
from siyu.core.clock import utc_now
from siyu.identity.service import MAP_TABLE
from siyu.ingest.schema import ENTITIES
from siyu.store.models import MaterialisationRun

# Every lake table a fact can be built from: more than any one metric reads, which costs only a
# stored result that could have been reused, never a stale one.
# Stores, staff and chat messages (the guides domain) feed no fact: a chat export must not make every
# stored FAST+ result stale.
INPUT_TABLES = (MAP_TABLE, *sorted(set(ENTITIES) - {"stores", "staff", "messages"}))


@dataclass(frozen=True)
class Key:
    """What a run computed: layers of (grain, period), or RFM of (as_of, window_days)."""

    kind: str  # layers | rfm
    brand: str
    grain: str | None = None
    period: str | None = None
    as_of: date | None = None
    window_days: int | None = None


@dataclass(frozen=True)
class Run:
    key: Key
    lake_table: str
    lake_version: int
    rows: int
    trigger: str
    materialised_at: datetime

    def as_json(self) -> dict[str, object]:
        k = self.key
        out: dict[str, object] = {"kind": k.kind, "brand": k.brand}
        if k.kind == "layers":
            out |= {"grain": k.grain, "period": k.period}
        else:
            out |= {"as_of": k.as_of.isoformat() if k.as_of else None, "window_days": k.window_days}
        return out | {
            "lake_table": self.lake_table,
            "lake_version": self.lake_version,
            "rows": self.rows,
            "trigger": self.trigger,
            "materialised_at": self.materialised_at.isoformat(),
        }


def inputs(app: App, settings: BrandSettings) -> str:
    """The inputs of a computation for `settings.code` now, as canonical JSON."""
    versions = {name: app.lake.version(name) for name in INPUT_TABLES}
    return json.dumps({"lake": versions, "brand": settings.as_json()}, sort_keys=True)


def _where(key: Key) -> list[ColumnElement[bool]]:
    r = MaterialisationRun
    # `== None` is SQL `IS NULL`: one filter shape for both kinds, every column of the index.
    return [
        r.brand == key.brand,
        r.kind == key.kind,
        r.grain == key.grain,
        r.period == key.period,
        r.as_of == key.as_of,
        r.window_days == key.window_days,
    ]


def _run(key: Key, row: MaterialisationRun) -> Run:
    at = row.materialised_at
    # SQLite hands timestamps back naive; they were written in UTC.
    at = at if at.tzinfo else at.replace(tzinfo=utc_now().tzinfo)
    return Run(key, row.lake_table, row.lake_version, row.rows, row.trigger, at)


def fresh_run(app: App, key: Key, seen: str) -> Run | None:
    """The latest run of `key` if it saw the inputs `seen` (see `inputs`), else None."""
    with app.store.unit_of_work() as session:
        row = session.scalars(
            select(MaterialisationRun).where(*_where(key)).order_by(MaterialisationRun.id.desc()).limit(1)
        ).first()
        if row is None or row.inputs != seen:
            return None
        return _run(key, row)


def record_run(app: App, key: Key, seen: str, lake_table: str, lake_version: int, rows: int, trigger: str) -> Run:
    """Record a run after its lake commit: a crash in between leaves a result no read trusts."""
    now = utc_now()
    with app.store.unit_of_work() as session:
        session.add(
            MaterialisationRun(
                kind=key.kind, brand=key.brand, grain=key.grain, period=key.period, as_of=key.as_of,
                window_days=key.window_days, inputs=seen, lake_table=lake_table, lake_version=lake_version,
                rows=rows, trigger=trigger, materialised_at=now,
            )
        )  # fmt: skip
    return Run(key, lake_table, lake_version, rows, trigger, now)
