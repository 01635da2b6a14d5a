"""Writing and reading the audit trail. Values under PII keys are masked before they are stored:
an audit row is read by many more people than the data it describes."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from siyu.audit.models import AuditEntry
from siyu.core.actor import Actor
from siyu.identity.normalise import mask_value
from siyu.store.txid import current_txid

PII_KEYS = {"phone": "phone", "mobile": "phone", "email": "email", "name": "name", "address": "address",
            "member_no": "member_no"}  # fmt: skip


def masked(value: Any, key: str | None = None) -> Any:
    """`value` with every string under a PII key masked (138****5678), recursively."""
    if isinstance(value, dict):
        return {k: masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [masked(v, key) for v in value]
    if key in PII_KEYS and isinstance(value, str) and value:
        return mask_value(PII_KEYS[key], value)
    return value


def _text(value: Any) -> str | None:
    if value is None:
        return None
    value = masked(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def row(
    *,
    at: dt.datetime,
    actor: Actor,
    action: str,
    subject_type: str,
    subject_id: str,
    brand: str | None = None,
    before: Any = None,
    after: Any = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """One audit row as a dict, for bulk inserts."""
    return {
        "at": at, "actor_kind": actor.kind, "actor_id": actor.id, "action": action,
        "subject_type": subject_type, "subject_id": subject_id, "brand": brand,
        "before": _text(before), "after": _text(after), "request_id": request_id,
    }  # fmt: skip


def record(session: Session, **values: Any) -> None:
    record_many(session, [row(**values)])


def record_many(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(AuditEntry).values(txid=current_txid(session)), rows)


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None  # "KIND:ID" or just the id
    subject: str | None = None  # "TYPE:ID" or just the type
    action: str | None = None  # exact, or a prefix ending in "." ("coupon.")
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    brand: str | None = None
    limit: int = 1000


def entries(session: Session, f: AuditFilter) -> list[dict[str, Any]]:
    """Audit rows matching `f`, newest first."""
    t = AuditEntry
    query = select(t)
    if f.actor:
        kind, sep, ident = f.actor.partition(":")
        if sep:
            actor = Actor.parse(f.actor)
            query = query.where(t.actor_kind == actor.kind, t.actor_id == actor.id)
        else:
            query = query.where(t.actor_id == kind)
    if f.subject:
        kind, sep, ident = f.subject.partition(":")
        query = query.where(t.subject_type == kind)
        if sep:
            query = query.where(t.subject_id == ident)
    if f.action:
        query = query.where(t.action.startswith(f.action) if f.action.endswith(".") else t.action == f.action)
    if f.start:
        query = query.where(t.at >= f.start)
    if f.end:
        query = query.where(t.at < f.end)
    if f.brand:
        query = query.where(t.brand == f.brand)
    query = query.order_by(t.id.desc()).limit(f.limit)
    return [
        {
            "id": e.id,
            "at": e.at.isoformat(),
            "actor": f"{e.actor_kind}:{e.actor_id}",
            "action": e.action,
            "subject_type": e.subject_type,
            "subject_id": e.subject_id,
            "brand": e.brand,
            "before": _json(e.before),
            "after": _json(e.after),
            "request_id": e.request_id,
        }
        for e in session.scalars(query)
    ]


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
