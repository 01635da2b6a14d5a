"""The consent ledger (同意记录): per person, purpose and channel, with source, evidence and history.

A change is a new `consent_records` row (never an update); the latest row by `at` per (purpose,
channel) wins. No record means "not withdrawn" (as in audience reachability): the channel's own
opt-in (a phone given at sign-up, a WeChat follow or subscription) is the basis until withdrawn.

The send gate (`blocked_by`) for a message on channel C:
- marketing: the latest record of C's marketing purpose (sms → marketing_sms, email →
  marketing_email, wecom → wecom) or any record naming channel C; withdrawn → suppressed;
- transactional: the same, except that the `marketing_*` purposes do not apply (an unsubscribe from
  marketing mail does not stop an order receipt, a withdrawal of `wecom` or of channel C does).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.core.errors import SiyuError
from siyu.events.catalogue import ConsentChanged
from siyu.messaging.ledger_models import ConsentPurpose, ConsentRecord
from siyu.store.uow import UnitOfWork

BUILTIN_PURPOSES: dict[str, tuple[str, str]] = {
    "marketing_sms": ("营销短信", "marketing SMS"),
    "marketing_email": ("营销邮件", "marketing e-mail"),
    "wecom": ("企业微信联系", "WeCom contact"),
    "personalised_recommendation": ("个性化推荐", "personalised recommendation"),
    "cross_brand_sharing": ("集团内跨品牌共享", "sharing across brands of the group"),
}
CHANNEL_PURPOSE = {"sms": "marketing_sms", "email": "marketing_email", "wecom": "wecom"}


class UnknownPurposeError(SiyuError):
    code = "unknown_consent_purpose"
    exit_code = 2


def purposes(session: Session, brand: str) -> dict[str, tuple[str, str]]:
    declared = session.execute(
        select(ConsentPurpose.code, ConsentPurpose.name_zh, ConsentPurpose.name_en).where(ConsentPurpose.brand == brand)
    ).all()
    return {**BUILTIN_PURPOSES, **{c: (zh or c, en or c) for c, zh, en in declared}}


def check_purpose(session: Session, brand: str, purpose: str) -> None:
    known = purposes(session, brand)
    if purpose not in known:
        raise UnknownPurposeError(
            f"unknown consent purpose {purpose!r} for brand {brand} (known: {', '.join(sorted(known))}); "
            f"declare it first: siyu consent purpose add --brand {brand} {purpose} --name-zh … --name-en … "
            "(未声明的同意目的)"
        )


def do_declare_purpose(uow: UnitOfWork, brand: str, code: str, name_zh: str | None, name_en: str | None) -> bool:
    if code in BUILTIN_PURPOSES or uow.session.get(ConsentPurpose, (brand, code)) is not None:
        return False
    uow.session.add(ConsentPurpose(brand=brand, code=code, name_zh=name_zh, name_en=name_en, created_at=uow.now))
    uow.audit("consent.purpose_declared", "consent_purpose", code, brand=brand, after={"name_en": name_en})
    return True


@dataclass(frozen=True)
class ConsentChange:
    brand: str
    customer_id: str
    purpose: str
    granted: bool
    source: str  # cli | api | event | unsubscribe_link | sms_reply
    evidence: dict[str, Any]
    channel: str | None = None
    at: dt.datetime | None = None  # when the person decided; default: now
    source_key: str | None = None  # makes a replay (the same lake event, the same link) a no-op


def do_record_consents(uow: UnitOfWork, changes: list[ConsentChange]) -> int:
    """Append the changes to the ledger, audit them and emit ConsentChanged; returns rows written
    (a change whose source_key is already recorded is skipped)."""
    keys = [c.source_key for c in changes if c.source_key]
    seen: set[str] = set()
    if keys:
        seen = set(uow.session.scalars(select(ConsentRecord.source_key).where(ConsentRecord.source_key.in_(keys))))
    written: list[ConsentChange] = []
    for c in changes:
        if c.source_key and c.source_key in seen:
            continue
        check_purpose(uow.session, c.brand, c.purpose)
        if c.source_key:
            seen.add(c.source_key)
        evidence = json.dumps(c.evidence, ensure_ascii=False, default=str)
        uow.session.add(
            ConsentRecord(
                brand=c.brand, customer_id=c.customer_id, purpose=c.purpose, channel=c.channel, granted=c.granted,
                source=c.source, source_key=c.source_key, evidence=evidence, actor=str(uow.actor),
                at=(c.at or uow.now).astimezone(dt.UTC), recorded_at=uow.now.astimezone(dt.UTC),
            )
        )  # fmt: skip
        uow.audit(
            "consent.granted" if c.granted else "consent.withdrawn", "customer", c.customer_id, brand=c.brand,
            after={"purpose": c.purpose, "channel": c.channel, "source": c.source},
        )  # fmt: skip
        written.append(c)
    uow.session.flush()
    for (brand, purpose, channel), group in _grouped(written).items():
        uow.emit(ConsentChanged(brand, tuple(sorted({c.customer_id for c in group})), channel, purpose))
    return len(written)


def _grouped(changes: list[ConsentChange]) -> dict[tuple[str, str, str | None], list[ConsentChange]]:
    out: dict[tuple[str, str, str | None], list[ConsentChange]] = {}
    for c in changes:
        out.setdefault((c.brand, c.purpose, c.channel), []).append(c)
    return out


@dataclass(frozen=True)
class ConsentFact:
    """One consent record as the send gate reads it."""

    purpose: str
    channel: str | None
    granted: bool
    source: str
    at: dt.datetime
    id: int


def _applies(fact: ConsentFact, channel: str, category: str) -> bool:
    """Does this record govern a `category` send on `channel`? (the module docstring's rules)"""
    if category != "marketing" and fact.purpose.startswith("marketing_"):
        return False
    if fact.channel == channel:
        return True
    purpose = CHANNEL_PURPOSE.get(channel)
    return (
        purpose is not None
        and (category == "marketing" or not purpose.startswith("marketing_"))
        and fact.purpose == purpose
        and fact.channel is None
    )


def verdict(facts: Sequence[ConsentFact], channel: str, category: str) -> str | None:
    """Why a send must not go out given one customer's consent records, or None when it may."""
    latest = max((f for f in facts if _applies(f, channel, category)), key=lambda f: (f.at, f.id), default=None)
    if latest is None or latest.granted:
        return None
    return (
        f"consent:{latest.purpose}" + (f":{latest.channel}" if latest.channel else "") + f" withdrawn ({latest.source})"
    )


def consent_facts(session: Session, brand: str, customers: Sequence[str]) -> dict[str, list[ConsentFact]]:
    """The consent records of `customers` of `brand` (one query per 1,000 customers)."""
    out: dict[str, list[ConsentFact]] = {}
    for i in range(0, len(customers), 1000):
        rows = session.execute(
            select(
                ConsentRecord.customer_id, ConsentRecord.purpose, ConsentRecord.channel, ConsentRecord.granted,
                ConsentRecord.source, ConsentRecord.at, ConsentRecord.id,
            ).where(ConsentRecord.brand == brand, ConsentRecord.customer_id.in_(customers[i : i + 1000]))
        )  # fmt: skip
        for customer, purpose, channel, granted, source, at, id_ in rows:
            at = at if at.tzinfo else at.replace(tzinfo=dt.UTC)  # SQLite keeps no offset (stored UTC)
            out.setdefault(customer, []).append(ConsentFact(purpose, channel, granted, source, at, id_))
    return out


def blocked_by(session: Session, brand: str, customer_id: str | None, channel: str, category: str) -> str | None:
    """Why this send must not go out ("consent:marketing_sms"…), or None when it may."""
    if customer_id is None:
        return None
    return verdict(consent_facts(session, brand, [customer_id]).get(customer_id, []), channel, category)


def consent_state(session: Session, brand: str, customer_id: str) -> dict[str, Any]:
    """The current state per purpose/channel and the full history, newest first."""
    rows = session.scalars(
        select(ConsentRecord)
        .where(ConsentRecord.brand == brand, ConsentRecord.customer_id == customer_id)
        .order_by(ConsentRecord.at.desc(), ConsentRecord.id.desc())
    ).all()
    current: dict[str, dict[str, Any]] = {}
    history = []
    for r in rows:
        entry = {
            "purpose": r.purpose, "channel": r.channel, "granted": r.granted, "source": r.source,
            "evidence": json.loads(r.evidence), "at": r.at.isoformat(), "actor": r.actor,
        }  # fmt: skip
        history.append(entry)
        current.setdefault(f"{r.purpose}/{r.channel or '*'}", entry)
    return {"brand": brand, "customer_id": customer_id, "current": list(current.values()), "history": history}
