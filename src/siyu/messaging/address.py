"""What a message needs to know about its customer: profile and loyalty for the template, and the
address of each channel (phone, e-mail, openid…), read from the lake (One-ID) and the loyalty store.

The addresses are clear values: they go into the message payload, which is PII, masked whenever it
is shown (siyu.messaging.listing) and never logged.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import ibis
from sqlalchemy import select

from siyu.bootstrap import App
from siyu.customers.profile import rows_of
from siyu.identity.normalise import mask_value, normalise_identifier
from siyu.identity.service import MAP_TABLE, canonical_tables
from siyu.ingest.views import latest
from siyu.loyalty.accounts import utc

NODE = ["brand", "source", "source_customer_id"]
ADDRESS_TYPES = ("phone", "email", "openid", "unionid", "external_userid")
PROFILE_COLUMNS = ("name", "gender", "birthday", "province", "city", "store_code")
EXPIRY_HORIZON = dt.timedelta(days=30)


@dataclass(frozen=True)
class CustomerFacts:
    profile: dict[str, Any]
    loyalty: dict[str, Any] | None
    addresses: dict[str, str] = field(default_factory=dict)


def _records(app: App, brand: str, customer_id: str) -> ibis.Table | None:
    idmap = app.engine.table(MAP_TABLE)
    if idmap is None:
        return None
    return idmap.filter((idmap.brand == brand) & (idmap.customer_id == customer_id)).select(*NODE)


def _addresses(app: App, records: ibis.Table) -> dict[str, str]:
    """The first (by value) normalised phone, e-mail, openid… of the customer's source records.

    One customer's handful of values, normalised in Python with the One-ID rules: the vectorised
    extraction (siyu.identity.resolve) compiles to a query DuckDB takes seconds to plan, per send."""
    customers, identities, _ = canonical_tables(app)
    columns = [c for c in ADDRESS_TYPES if c in customers.columns]
    found: list[tuple[str, str]] = []
    for row in rows_of(app, customers.semi_join(records, NODE).select(*columns)):
        found += [(t, str(row[t])) for t in columns if row[t] not in (None, "")]
    ids = identities.semi_join(records, NODE)
    for row in rows_of(app, ids.filter(ids.id_type.isin(ADDRESS_TYPES)).select("id_type", "id_value")):
        found.append((str(row["id_type"]), str(row["id_value"])))
    out: dict[str, str] = {}
    for id_type, value in sorted({n for t, v in found if "*" not in v and (n := normalise_identifier(t, v))}):
        out.setdefault(id_type, value)
    return out


def _profile(app: App, records: ibis.Table, customer_id: str, addresses: dict[str, str]) -> dict[str, Any]:
    profile: dict[str, Any] = {"customer_id": customer_id, **dict.fromkeys(PROFILE_COLUMNS)}
    customers = latest(app.engine, "customers")
    if customers is not None:
        mine = customers.semi_join(records, NODE)
        rows = rows_of(app, mine.order_by(ibis.desc("ingested_at")).select(*PROFILE_COLUMNS).limit(5))
        for row in rows:  # the newest non-empty value of each column
            for k, v in row.items():
                if profile.get(k) is None and v not in (None, ""):
                    profile[k] = v
    profile["phone"] = mask_value("phone", addresses["phone"]) if "phone" in addresses else None
    profile["email"] = mask_value("email", addresses["email"]) if "email" in addresses else None
    return profile


def loyalty_facts(app: App, brand: str, customer_id: str, now: dt.datetime) -> dict[str, Any] | None:
    from siyu.loyalty.members import accounts_of_customer
    from siyu.loyalty.points import open_lots
    from siyu.loyalty.programs import load_program

    with app.store.unit_of_work() as session:
        accounts = accounts_of_customer(session, brand, customer_id)
        if not accounts:
            return None
        account = accounts[0]
        tier = load_program(session, account.program).tier(account.tier)
        horizon = now + EXPIRY_HORIZON
        expiring = [lot for lot in open_lots(session, account.id) if lot.expires_at and utc(lot.expires_at) <= horizon]
        return {
            "program": account.program,
            "member_no": mask_value("member_no", account.member_no),
            "tier": account.tier,
            "tier_name_zh": tier.name_zh if tier else None,
            "tier_name_en": tier.name_en if tier else None,
            "balance": account.balance,
            "expiring_points": sum(lot.remaining for lot in expiring),
            "expiring_at": min(utc(lot.expires_at) for lot in expiring).isoformat() if expiring else None,  # type: ignore[arg-type]
        }


def customer_facts(app: App, brand: str, customer_id: str) -> CustomerFacts:
    records = _records(app, brand, customer_id)
    addresses = {} if records is None else _addresses(app, records)
    profile = (
        {"customer_id": customer_id, **dict.fromkeys(PROFILE_COLUMNS)}
        if records is None
        else _profile(app, records, customer_id, addresses)
    )
    return CustomerFacts(profile, loyalty_facts(app, brand, customer_id, app.clock()), addresses)


def customer_facts_many(app: App, brand: str, customer_ids: Sequence[str]) -> dict[str, CustomerFacts]:
    """`customer_facts` of many customers of one brand (a dispatcher's batch): three engine queries
    for all of them instead of four per message."""
    ids = list(dict.fromkeys(customer_ids))
    addresses: dict[str, list[tuple[str, str]]] = {c: [] for c in ids}
    profiles: dict[str, dict[str, Any]] = {c: {"customer_id": c, **dict.fromkeys(PROFILE_COLUMNS)} for c in ids}
    idmap = app.engine.table(MAP_TABLE)
    if idmap is not None and ids:
        records = idmap.filter((idmap.brand == brand) & idmap.customer_id.isin(ids)).select("customer_id", *NODE)
        customers, identities, _ = canonical_tables(app)
        columns = [c for c in ADDRESS_TYPES if c in customers.columns]
        for row in rows_of(app, customers.join(records, NODE).select("customer_id", *columns)):
            addresses[row["customer_id"]] += [(t, str(row[t])) for t in columns if row[t] not in (None, "")]
        mine = identities.join(records, NODE)
        for row in rows_of(
            app, mine.filter(mine.id_type.isin(ADDRESS_TYPES)).select("customer_id", "id_type", "id_value")
        ):
            addresses[row["customer_id"]].append((str(row["id_type"]), str(row["id_value"])))
        latest_rows = latest(app.engine, "customers")
        if latest_rows is not None:
            newest = latest_rows.join(records, NODE).order_by(ibis.desc("ingested_at"))
            for row in rows_of(app, newest.select("customer_id", *PROFILE_COLUMNS)):
                profile = profiles[row.pop("customer_id")]
                for k, v in row.items():  # the newest non-empty value of each column
                    if profile.get(k) is None and v not in (None, ""):
                        profile[k] = v
    now = app.clock()
    members = _members(app, brand, ids)
    out: dict[str, CustomerFacts] = {}
    for c in ids:
        found: dict[str, str] = {}
        normalised = {n for t, v in addresses[c] if "*" not in v and (n := normalise_identifier(t, v))}
        for id_type, value in sorted(normalised):
            found.setdefault(id_type, value)
        profile = profiles[c]
        profile["phone"] = mask_value("phone", found["phone"]) if "phone" in found else None
        profile["email"] = mask_value("email", found["email"]) if "email" in found else None
        out[c] = CustomerFacts(profile, loyalty_facts(app, brand, c, now) if c in members else None, found)
    return out


def _members(app: App, brand: str, customer_ids: Sequence[str]) -> set[str]:
    """Which of the customers have a loyalty account (one query per 1,000): only theirs are read."""
    from siyu.loyalty.models import AccountLink

    out: set[str] = set()
    with app.store.unit_of_work() as session:
        for i in range(0, len(customer_ids), 1000):
            chunk = customer_ids[i : i + 1000]
            out.update(
                session.scalars(
                    select(AccountLink.customer_id).where(
                        AccountLink.brand == brand, AccountLink.customer_id.in_(chunk)
                    )
                )
            )
    return out
