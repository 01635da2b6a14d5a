"""The tamper-evident audit chain (审计链): each sealed row carries the hash of the one before it.

Rows are written by many transactions at once, so a writer cannot know its predecessor without
serialising every audited change behind one lock. Instead a sealing job (`siyu audit seal`, run by
`siyu worker`) chains the rows that are final — in commit-safe order, below the visible horizon
(siyu.store.txid) — one sealer at a time. `siyu audit verify` recomputes the chain: an edited row
breaks its own hash, a deleted row leaves a gap, a row slipped in later is not sealed (or breaks the
hash that follows it). Rows written since the last seal are listed as unsealed, not trusted yet.

Keep the head hash that verify prints somewhere else (a ticket, a log archive): an attacker who can
rewrite the whole table can recompute a whole chain, but not one that matches a head kept outside.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import and_, func, select, text, update
from sqlalchemy.orm import Session

from siyu.audit.models import AuditEntry
from siyu.store.txid import visible_horizon

GENESIS = "0" * 64
CHUNK = 5_000


def _instant(value: dt.datetime) -> str:
    # SQLite hands back naive UTC; PostgreSQL an aware value: the same instant, the same text
    value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def row_hash(prev_hash: str, r: Any) -> str:
    """sha256 over the previous hash and every audited field of the row, in a fixed layout."""
    fields = [r.id, r.seq, _instant(r.at), r.actor_kind, r.actor_id, r.action, r.subject_type, r.subject_id,
              r.brand, r.before, r.after, r.request_id]  # fmt: skip
    body = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


_COLUMNS = (AuditEntry.id, AuditEntry.at, AuditEntry.actor_kind, AuditEntry.actor_id, AuditEntry.action,
            AuditEntry.subject_type, AuditEntry.subject_id, AuditEntry.brand, AuditEntry.before,
            AuditEntry.after, AuditEntry.request_id)  # fmt: skip


@dataclass(frozen=True)
class _Sealing:
    id: int
    seq: int
    at: dt.datetime
    actor_kind: str
    actor_id: str
    action: str
    subject_type: str
    subject_id: str
    brand: str | None
    before: str | None
    after: str | None
    request_id: str | None


def seal(session: Session, *, limit: int = 100_000) -> int:
    """Chain up to `limit` final, unsealed rows after the current head; returns how many."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext('siyu.audit.seal'))"))  # one sealer
    # (PostgreSQL sorts NULLs first when descending: only sealed rows can be the head)
    last = select(AuditEntry.seq, AuditEntry.hash).where(AuditEntry.seq.is_not(None))
    head = session.execute(last.order_by(AuditEntry.seq.desc()).limit(1)).first()
    seq, prev = (head.seq, head.hash) if head is not None and head.seq is not None else (0, GENESIS)
    query = select(*_COLUMNS).where(AuditEntry.seq.is_(None))
    horizon = visible_horizon(session)
    if horizon is not None:
        query = query.where(AuditEntry.txid < horizon)
    sealed = 0
    while sealed < limit:
        rows = session.execute(query.order_by(AuditEntry.txid, AuditEntry.id).limit(min(CHUNK, limit - sealed))).all()
        if not rows:
            break
        changes = []
        for r in rows:
            seq += 1
            item = _Sealing(seq=seq, **r._asdict())
            digest = row_hash(prev, item)
            changes.append({"id": r.id, "seq": seq, "prev_hash": prev, "hash": digest})
            prev = digest
        session.execute(update(AuditEntry), changes)
        sealed += len(rows)
    return sealed


@dataclass(frozen=True)
class Verdict:
    ok: bool
    sealed: int
    unsealed: int
    head_seq: int
    head_hash: str
    broken_at: int | None = None  # the first seq that does not verify
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify(session: Session) -> Verdict:
    """Recompute the chain from the first sealed row; reads only."""
    unsealed = int(session.scalar(select(func.count()).where(AuditEntry.seq.is_(None))) or 0)
    prev, expected, count = GENESIS, 1, 0
    while True:
        rows = session.execute(
            select(*_COLUMNS, AuditEntry.seq, AuditEntry.prev_hash, AuditEntry.hash)
            .where(and_(AuditEntry.seq.is_not(None), AuditEntry.seq >= expected))
            .order_by(AuditEntry.seq)
            .limit(CHUNK)
        ).all()
        if not rows:
            return Verdict(True, count, unsealed, expected - 1, prev)
        for r in rows:
            if r.seq != expected:
                return Verdict(False, count, unsealed, expected - 1, prev, expected,
                               f"row {expected} of the chain is missing (next is {r.seq}) 审计记录缺失")  # fmt: skip
            if r.prev_hash != prev or row_hash(prev, r) != r.hash:
                problem = f"row {expected} (audit id {r.id}) was changed after it was sealed 审计记录被篡改"
                return Verdict(False, count, unsealed, expected - 1, prev, expected, problem)
            prev, expected, count = r.hash, expected + 1, count + 1
