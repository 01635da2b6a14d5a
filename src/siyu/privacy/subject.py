"""The data subject (个人信息主体): one person as siyu knows them, found by a key through One-ID.

A key is a customer id, a phone (any format), an e-mail or a member no. It names a person, who may
be a customer of several brands (one customer id per brand); `brand` narrows it to one. Everything
the export and the erasure touch is reached from what is collected here, by keys (customer ids,
source records, identifier values, loyalty accounts), never by scanning for clear text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ibis
import ibis.expr.types as ir
import pyarrow as pa
from sqlalchemy import select

from siyu.bootstrap import App
from siyu.core.errors import NotFoundError
from siyu.identity.normalise import mask_value, normalise_identifier, normalise_phone
from siyu.identity.service import MAP_TABLE, identifiers
from siyu.loyalty.models import AccountLink
from siyu.privacy.crypto import Keyring
from siyu.privacy.lake_columns import match_values

NODE = ["brand", "source", "source_customer_id"]
KEY_TYPES = ("phone", "email", "member_no")


@dataclass
class Subject:
    """Who a key names: customer ids, their source records, identifiers and loyalty accounts."""

    key: str
    customer_ids: list[str]
    brands: list[str]
    nodes: pa.Table  # brand, source, source_customer_id (the raw records that are this person)
    identifiers: list[tuple[str, str]]  # (id_type, normalised value)
    account_ids: list[int] = field(default_factory=list)
    ring: Keyring | None = None  # opens sealed copies of source rows (quarantine, inbox)

    def values(self, id_type: str) -> list[str]:
        return sorted({v for t, v in self.identifiers if t == id_type})

    @property
    def masked_key(self) -> str:
        kind = "phone" if normalise_phone(self.key) else "member_no"
        return self.key if self.key in self.customer_ids else mask_value(kind, self.key)


def _key_matches(key: str) -> list[tuple[str, str]]:
    """(id_type, value) pairs a key could be, normalised as One-ID normalises them."""
    out = []
    for kind in KEY_TYPES:
        found = normalise_identifier(kind, key)
        if found is not None and found[0] == kind and (kind != "email" or "@" in key):
            out.append(found)
    return out


def find_subject(app: App, key: str, brand: str | None = None) -> Subject:
    """Resolve `key` to the person: by customer id, else by phone, e-mail or member no."""
    key = key.strip()
    idmap = app.engine.table(MAP_TABLE)
    if idmap is None:
        raise NotFoundError("no identity map yet: run `siyu resolve` first (尚未运行 One-ID)")
    if brand:
        idmap = idmap.filter(idmap.brand == brand)
    # The identifier pipeline is computed once (both questions below read it); each step's answer
    # is a handful of rows, computed to Arrow.
    every = identifiers(app)
    ids = app.engine.materialise(every.filter(every.brand == brand) if brand else every, "subject_identifiers")
    try:
        return _resolve(app, key, brand, idmap, ids)
    finally:
        app.engine.drop_temporary("subject_identifiers")


def _resolve(app: App, key: str, brand: str | None, idmap: ir.Table, ids: ir.Table) -> Subject:
    by_id = app.engine.to_arrow(idmap.filter(idmap.customer_id == key).select("customer_id").distinct())
    # a sealed lake's phones and e-mails are keyed hashes (siyu.privacy.lake_columns): match both forms
    pairs = [(t, m) for t, v in _key_matches(key) for m in match_values(app.settings.pii_key, t, v)]
    if by_id.num_rows == 0 and pairs:
        wanted = ibis.memtable(pa.table({"id_type": [t for t, _ in pairs], "id_value": [v for _, v in pairs]}))
        nodes = app.engine.to_arrow(ids.semi_join(wanted, ["id_type", "id_value"]).select(*NODE).distinct())
        by_id = app.engine.to_arrow(idmap.semi_join(ibis.memtable(nodes), NODE).select("customer_id").distinct())
    records = idmap.semi_join(ibis.memtable(by_id), "customer_id")
    found = app.engine.to_arrow(records.select(*NODE, "customer_id").order_by([*NODE]))
    if found.num_rows == 0:
        shown = mask_value("phone", key) if key.isdigit() else key
        raise NotFoundError(
            f"no person found for {shown!r} (未找到此人): give a customer id, phone, e-mail or member no"
        )
    nodes = found.select(NODE)
    their_ids = ids.semi_join(ibis.memtable(nodes), NODE).select("id_type", "id_value").distinct()
    id_rows = app.engine.to_arrow(their_ids).to_pylist()
    customer_ids = sorted(set(found["customer_id"].to_pylist()))
    subject = Subject(
        key=key,
        customer_ids=customer_ids,
        brands=sorted(set(found["brand"].to_pylist())),
        nodes=nodes,
        identifiers=sorted((r["id_type"], r["id_value"]) for r in id_rows),
        ring=app.settings.pii_keyring,
    )
    with app.store.unit_of_work() as session:
        subject.account_ids = sorted(
            set(session.scalars(select(AccountLink.account_id).where(AccountLink.customer_id.in_(customer_ids))).all())
        )
    return subject
