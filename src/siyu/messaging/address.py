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
from siyu.privacy.lake_columns import open_value

NODE = ["brand", "source", "source_customer_id"]
ADDRESS_TYPES = ("phone", "email", "openid", "unionid", "external_userid")
PROFILE_COLUMNS = ("name", "gender", "birthday", "province", "city", "store_code")
EXPIRY_HORIZON = dt.timedelta(days=30)


@dataclass(frozen=True)
class CustomerFacts:
    profile: dict[str, Any]
    loyalty: dict[str, Any] | None
    addresses: dict[str, str] = field(default_factory=dict)


def _records(app: App, brand: str, customer_ids: Sequence[str]) -> ibis.Table | None:
    """The source records (NODE) of the customers, with their customer_id."""
    idmap = app.engine.table(MAP_TABLE)
    if idmap is None:
        return None
    return idmap.filter((idmap.brand == brand) & idmap.customer_id.isin(list(customer_ids))).select(
        *NODE, "customer_id"
    )


def _addresses(app: App, records: ibis.Table) -> dict[str, dict[str, str]]:
    """Per customer, the first (by value) normalised phone, e-mail, openid… of its source records.

    Each customer's handful of values, normalised in Python with the One-ID rules: the vectorised
    extraction (siyu.identity.resolve) compiles to a query DuckDB takes seconds to plan.
    A sealed lake's phones and e-mails are opened here: sending needs the address (no reveal is
    recorded for it, as none is for the dispatcher opening a sealed payload)."""
    ring = app.settings.pii_keyring
    customers, identities, _ = canonical_tables(app)
    columns = {c: stored for c in ADDRESS_TYPES if (stored := _stored(customers, c)) is not None}
    found: dict[str, list[tuple[str, str]]] = {}
    for row in rows_of(app, customers.join(records, NODE).select("customer_id", *columns.values())):
        mine = found.setdefault(row["customer_id"], [])
        for t, stored in columns.items():
            value = open_value(ring, "customers", t, row[stored])
            if value not in (None, ""):
                mine.append((t, str(value)))
    ids = identities.join(records, NODE)
    sealed = "id_value_enc" if "id_value_enc" in identities.columns else "id_value"
    picked = ids.filter(ids.id_type.isin(ADDRESS_TYPES)).select("customer_id", "id_type", *{"id_value", sealed})
    for row in rows_of(app, picked):
        # a sealed row's envelope, else (other types, masked phones, a clear lake) the value itself
        clear = open_value(ring, "identities", "id_value", row[sealed]) if sealed != "id_value" else None
        found.setdefault(row["customer_id"], []).append((str(row["id_type"]), str(clear or row["id_value"])))
    out: dict[str, dict[str, str]] = {}
    for customer_id, values in found.items():
        mine_out = out.setdefault(customer_id, {})
        for id_type, value in sorted({n for t, v in values if "*" not in v and (n := normalise_identifier(t, v))}):
            mine_out.setdefault(id_type, value)
    return out


def _stored(table: ibis.Table, column: str) -> str | None:
    """Where `column` is kept: ``<column>_enc`` in a sealed lake (siyu.privacy.lake_columns), else itself."""
    if f"{column}_enc" in table.columns:
        return f"{column}_enc"
    return column if column in table.columns else None


def _profiles(app: App, records: ibis.Table, addresses: dict[str, dict[str, str]]) -> dict[str, dict[str, Any]]:
    """Per customer: the newest non-empty value of each profile column among its 5 newest source
    rows (a sealed name is opened for the template), and its phone and e-mail masked."""
    newest: dict[str, list[dict[str, Any]]] = {}
    customers = latest(app.engine, "customers")
    stored: dict[str, str] = {}
    if customers is not None:
        stored = {c: s for c in PROFILE_COLUMNS if (s := _stored(customers, c)) is not None}
        mine = customers.join(records, NODE)
        mine = mine.mutate(_n=ibis.row_number().over(group_by="customer_id", order_by=ibis.desc("ingested_at")))
        mine = mine.filter(mine._n < 5)
        for row in rows_of(app, mine.order_by("customer_id", "_n").select("customer_id", *stored.values())):
            newest.setdefault(row.pop("customer_id"), []).append(row)
    ring = app.settings.pii_keyring
    out: dict[str, dict[str, Any]] = {}
    for customer_id in {*newest, *addresses}:
        profile: dict[str, Any] = {"customer_id": customer_id, **dict.fromkeys(PROFILE_COLUMNS)}
        for row in newest.get(customer_id, []):
            for k, s in stored.items():
                v = open_value(ring, "customers", k, row[s]) if s != k else row[s]
                if profile.get(k) is None and v not in (None, ""):
                    profile[k] = v
        mine_addresses = addresses.get(customer_id, {})
        profile["phone"] = mask_value("phone", mine_addresses["phone"]) if "phone" in mine_addresses else None
        profile["email"] = mask_value("email", mine_addresses["email"]) if "email" in mine_addresses else None
        out[customer_id] = profile
    return out


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
    return customer_facts_many(app, brand, [customer_id])[customer_id]


def customer_facts_many(app: App, brand: str, customer_ids: Sequence[str]) -> dict[str, CustomerFacts]:
    """The facts of several customers of a brand with the same few lake reads as one (the
    dispatcher reads a claimed batch's at once)."""
    wanted = list(dict.fromkeys(customer_ids))
    records = _records(app, brand, wanted) if wanted else None
    addresses = {} if records is None else _addresses(app, records)
    profiles = {} if records is None else _profiles(app, records, addresses)
    now = app.clock()
    members = _members(app, brand, wanted)
    return {
        c: CustomerFacts(
            profiles.get(c) or {"customer_id": c, **dict.fromkeys(PROFILE_COLUMNS), "phone": None, "email": None},
            loyalty_facts(app, brand, c, now) if c in members else None,
            addresses.get(c, {}),
        )
        for c in wanted
    }


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
