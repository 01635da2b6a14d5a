"""Enrolling customers: re-entry rules, holdout, and one set-based insert per batch.

The unique (journey, customer, entry_key) makes enrolling idempotent: the same event, day or
manual request enrols once however often it is looked at. Re-entry rules on top:
`once` — never again after any enrolment; `after_days: N` — again once N days passed since the
last entry; `always` — every new entry key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
from sqlalchemy import func, select

from siyu.journeys.batch import ENROLMENTS, insert_log
from siyu.journeys.definition import Journey
from siyu.journeys.models import Enrolment
from siyu.store.uow import UnitOfWork
from siyu.store.upsert import insert_ignoring_many

CHUNK = 1000  # bound parameters per IN list / insert round


def bucket(customer_id: str, journey: str, salt: str) -> int:
    """0–99, the same for a customer and journey every time (holdout, split)."""
    digest = hashlib.sha256(f"{journey}\x1f{customer_id}\x1f{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def in_holdout(customer_id: str, journey: Journey) -> bool:
    return journey.holdout_percent > 0 and bucket(customer_id, journey.code, "holdout") < journey.holdout_percent


def _last_entries(uow: UnitOfWork, code: str, customers: Sequence[str]) -> dict[str, dt.datetime]:
    last: dict[str, dt.datetime] = {}
    for i in range(0, len(customers), CHUNK):
        rows = uow.session.execute(
            select(Enrolment.customer_id, func.max(Enrolment.entered_at))
            .where(Enrolment.journey == code, Enrolment.customer_id.in_(customers[i : i + CHUNK]))
            .group_by(Enrolment.customer_id)
        )
        last.update({c: (t if t.tzinfo else t.replace(tzinfo=dt.UTC)) for c, t in rows})
    return last


def enrol(uow: UnitOfWork, journey: Journey, found: pa.Table) -> list[int]:
    """Enrol the candidates `found` (customer_id, entry_key, occurred_at, props) into the
    journey's current version; returns the new enrolment ids (re-entry rules and repeats skipped)."""
    if found.num_rows == 0:
        return []
    customers = list(dict.fromkeys(found["customer_id"].to_pylist()))
    last = {} if journey.re_entry == "always" else _last_entries(uow, journey.code, customers)
    days = journey.reentry_days
    first = journey.steps[0].id
    rows: list[dict[str, Any]] = []
    taken: set[str] = set()
    for customer, key, props in zip(
        found["customer_id"].to_pylist(), found["entry_key"].to_pylist(), found["props"].to_pylist(), strict=True
    ):
        if journey.re_entry != "always":
            if customer in taken:
                continue
            before = last.get(customer)
            if before is not None and (days is None or uow.now - before < dt.timedelta(days=days)):
                continue
            taken.add(customer)
        context = _context(props)
        rows.append(
            {
                "journey": journey.code, "version": journey.version, "brand": journey.brand,
                "customer_id": customer, "entry_key": key, "status": "active",
                "holdout": in_holdout(customer, journey), "step_id": first, "step_seq": 1, "due_at": uow.now,
                "context": json.dumps(context, ensure_ascii=False, default=str), "entered_at": uow.now,
            }
        )  # fmt: skip
    conn = uow.session.connection()  # Core, set-based: the ORM's bulk path costs more than the rows
    new = [
        int(r[0]) for r in insert_ignoring_many(conn, ENROLMENTS, rows, ["journey", "customer_id", "entry_key"], ["id"])
    ]
    insert_log(conn, [
        {"enrolment_id": e, "seq": 1, "journey": journey.code, "step_id": first, "entered_at": uow.now} for e in new
    ])  # fmt: skip
    return new


def _context(props: str | None) -> dict[str, Any]:
    try:
        value = json.loads(props) if props else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
