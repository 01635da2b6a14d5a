"""The person's rows, table by table, found through `siyu.privacy.inventory` (by keys only).

`lake_rows` builds Ibis expressions over the lake; `store_keys` reads the store keys that lead from
one table to the next (customer → loyalty account → points transaction, enrolment → steps).
Both the export and the erasure use them, so they always agree on what "the person's rows" are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa
from sqlalchemy import Table, or_, select
from sqlalchemy.orm import Session

from siyu.bootstrap import App
from siyu.ingest.inbox import CONTEXT as INBOX_CONTEXT
from siyu.privacy import sealed_rows
from siyu.privacy.crypto import decrypt, is_sealed
from siyu.privacy.inventory import Holding
from siyu.privacy.subject import NODE, Subject
from siyu.store.models import Base
from siyu.wecom.crypto import CallbackCryptoError
from siyu.wecom.xmlmsg import message

JSON_SCAN_CHUNK = 1000


@dataclass
class StoreKeys:
    """The person's keys in the store, each the values of one `Link`."""

    values: dict[str, list[Any]] = field(default_factory=dict)


def table_of(name: str) -> Table:
    return Base.metadata.tables[name]


def store_keys(session: Session, subject: Subject) -> StoreKeys:
    """Customer ids, accounts, transactions, enrolments and external user ids of the person."""
    keys = StoreKeys()
    keys.values["customer"] = list(subject.customer_ids)
    keys.values["account"] = list(subject.account_ids)
    txns = table_of("points_txns")
    keys.values["txn"] = list(session.scalars(select(txns.c.id).where(txns.c.account_id.in_(subject.account_ids))))
    enrolments = table_of("journey_enrolments")
    keys.values["enrolment"] = list(
        session.scalars(select(enrolments.c.id).where(enrolments.c.customer_id.in_(subject.customer_ids)))
    )
    keys.values["external_userid"] = subject.values("external_userid")
    accounts = table_of("loyalty_accounts")
    keys.values["audit_subject"] = [
        f"{program}/{account}"
        for program, account in session.execute(
            select(accounts.c.program, accounts.c.id).where(accounts.c.id.in_(subject.account_ids))
        )
    ]
    return keys


def _names_record(row: dict[str, Any], brand: str, nodes: set[tuple[str, str, str]]) -> bool:
    """A canonical row or a Segment message naming one of the person's source records."""
    source = str(row.get("source") or "")
    for key in ("source_customer_id", "userId", "anonymousId"):
        value = row.get(key)
        if value is not None and (str(row.get("brand") or brand), source, str(value)) in nodes:
            return True
    return False


def json_rows(session: Session, holding: Holding, subject: Subject) -> list[dict[str, Any]]:
    """Rows of a table keeping JSON copies of source rows (quarantine, inbox) that name the person.
    The JSON is parsed and matched on its key fields, a chunk at a time."""
    table = table_of(holding.table)
    nodes = {tuple(r.values()) for r in subject.nodes.to_pylist()}
    query = select(table).order_by(table.c.id)
    if "brand" in table.c:
        query = query.where(table.c.brand.in_(subject.brands))
    found = []
    for row in session.execute(query.execution_options(yield_per=JSON_SCAN_CHUNK)).mappings():
        try:
            text = _opened(holding, row[holding.column], subject)
            data = json.loads(text)
        except ValueError:
            continue
        brand = str(row.get("brand") or "")
        if isinstance(data, dict) and _names_record(data, brand, nodes):
            found.append({**row, holding.column: text})  # the person's copy is theirs to read in clear
    return found


def callback_rows(session: Session, holding: Holding, subject: Subject) -> list[dict[str, Any]]:
    """Stored WeCom callbacks naming one of the person's external user ids: narrowed by the id in
    the text, then confirmed on the parsed XML's `ExternalUserID` or `MemChangeList`."""
    wanted = set(subject.values("external_userid"))
    if not wanted:
        return []
    table = table_of(holding.table)
    body = table.c[holding.column]
    query = (
        select(table)
        .where(table.c.brand.in_(subject.brands), or_(*(body.contains(v, autoescape=True) for v in sorted(wanted))))
        .order_by(table.c.id)
    )
    found = []
    for row in session.execute(query.execution_options(yield_per=JSON_SCAN_CHUNK)).mappings():
        try:
            fields = message(str(row[holding.column]).encode())
        except CallbackCryptoError:
            continue
        named = {str(fields.get("ExternalUserID") or "")} | set(fields.get("MemChangeList") or [])
        if named & wanted:
            found.append(dict(row))
    return found


def _opened(holding: Holding, stored: str, subject: Subject) -> str:
    """The JSON text of a sealed copy (siyu.privacy.crypto; copies stored before sealing are clear)."""
    if not is_sealed(stored):
        return stored
    if subject.ring is None:
        raise ValueError("sealed rows need the PII keyring")
    context = {"quarantine_rows": sealed_rows.QUARANTINE, "inbox": INBOX_CONTEXT}.get(holding.table, "")
    return decrypt(subject.ring, sealed_rows.PURPOSE, stored, context)


def store_rows(session: Session, holding: Holding, subject: Subject, keys: StoreKeys) -> list[dict[str, Any]]:
    """The person's rows of one store table."""
    if holding.link == "record_json":
        return json_rows(session, holding, subject)
    if holding.link == "callback_xml":
        return callback_rows(session, holding, subject)
    table = table_of(holding.table)
    values = keys.values[holding.link]
    if not values and holding.link != "audit_subject":
        return []
    query = select(table).where(table.c[holding.column].in_(values))
    if holding.link == "audit_subject":  # subject ids as siyu.audit writers spell them
        query = select(table).where(
            or_(
                table.c.subject_type.in_(("customer", "data_subject")) & table.c.subject_id.in_(subject.customer_ids),
                (table.c.subject_type == "loyalty_account") & table.c.subject_id.in_(values),
                *(
                    (table.c.subject_type == "customer_tag") & table.c.subject_id.startswith(f"{b}/{c}/")
                    for b in subject.brands
                    for c in subject.customer_ids
                ),
            )
        )
    return [dict(r) for r in session.execute(query.order_by(*table.primary_key.columns)).mappings()]


def _nodes_table(subject: Subject) -> ir.Table:
    return ibis.memtable(subject.nodes)


def lake_rows(app: App, holding: Holding, subject: Subject) -> ir.Table | None:
    """The person's rows of one lake table (every version), or None when the table does not exist."""
    table = app.engine.table(holding.table)
    if table is None:
        return None
    if holding.link == "node":
        return table.semi_join(_nodes_table(subject), NODE)
    if holding.link == "order":
        orders = app.engine.table("orders")
        if orders is None:
            return table.limit(0)
        theirs = orders.semi_join(_nodes_table(subject), NODE).select("brand", "source", "order_id").distinct()
        return table.semi_join(theirs, ["brand", "source", "order_id"])
    if holding.link == "external_userid":
        values = subject.values("external_userid")
        return table.filter(table[holding.column].isin(values)) if values else table.limit(0)
    ids = subject.customer_ids
    if holding.table == "identity_merges":
        return table.filter(table.survivor_id.isin(ids) | table.merged_id.isin(ids))
    return table.filter(table[holding.column].isin(ids))


def order_keys(app: App, subject: Subject) -> pa.Table:
    """brand, source, order_id of the person's orders (any version)."""
    orders = app.engine.table("orders")
    if orders is None:
        return pa.table({c: pa.array([], pa.string()) for c in ("brand", "source", "order_id")})
    return app.engine.to_arrow(
        orders.semi_join(_nodes_table(subject), NODE).select("brand", "source", "order_id").distinct()
    )
