"""Customer view (客户视图): find a customer by id, phone or member no, and show what we know.

PII is masked here, at the edge where it leaves the system.
"""

from __future__ import annotations

from typing import Any

import ibis
import ibis.expr.types as ir

from siyu.audiences.customer import customer_lights, customer_tags
from siyu.bootstrap import App
from siyu.core.errors import NotFoundError, SiyuError
from siyu.customers.profile import rows_of
from siyu.identity.normalise import mask_value, normalise_identifier, normalise_phone
from siyu.identity.resolve import extract_identifiers
from siyu.identity.service import MAP_TABLE, NothingToResolveError, canonical_tables
from siyu.ingest.schema import PAID_STATUSES
from siyu.ingest.views import empty_entity, latest_for_records
from siyu.privacy.lake_columns import match_values, open_value, sealed_index

NODE = ["brand", "source", "source_customer_id"]
ENTITY_NAMES = ("customers", "identities", "memberships")


class AmbiguousCustomerError(SiyuError):
    code = "ambiguous_customer"


def _map(app: App) -> ir.Table:
    table = app.engine.table(MAP_TABLE)
    if table is None:
        raise NothingToResolveError("no identity map yet: run `siyu resolve` first (尚未运行 One-ID)")
    return table


def find_customer_ids(app: App, key: str, brand: str | None = None) -> list[str]:
    """Customer ids matching KEY: a customer id, else a phone, else a member no."""
    key = key.strip()
    idmap = _map(app)
    if brand:
        idmap = idmap.filter(idmap.brand == brand)
    found = app.engine.to_arrow(idmap.filter(idmap.customer_id == key).select("customer_id").distinct())
    if found.num_rows:
        return [str(v) for v in found["customer_id"].to_pylist()]
    ids = _identifiers_of_types(app, ("phone", "member_no"))
    phone = normalise_phone(key)
    wanted = (ids.id_type == "member_no") & (ids.id_value == key)
    if phone is not None and phone[0] == "phone":  # a sealed lake holds its keyed hash (lake_columns)
        wanted |= (ids.id_type == "phone") & ids.id_value.isin(match_values(app.settings.pii_key, *phone))
    matches = ids.filter(wanted).select(*NODE).distinct()
    customers = matches.join(idmap, NODE).select("customer_id").distinct()
    return sorted(str(v) for v in app.engine.to_arrow(customers)["customer_id"].to_pylist())


def _identifiers_of_types(app: App, types: tuple[str, ...]) -> ir.Table:
    """`identifiers(app)` of some identifier types only, cut *before* values are normalised (a
    lookup by phone normalises the phone column, not every identifier of every customer)."""
    customers, identities, memberships = canonical_tables(app)
    kept = [c for t in types for c in (t, f"{t}_hash", f"{t}_mask") if c in customers.columns]  # clear or sealed
    customers = customers.select(*NODE, *kept)
    identities = identities.filter(identities.id_type.isin(types))
    if "member_no" not in types:
        memberships = memberships.filter(ibis.literal(False))
    return extract_identifiers(customers, identities, memberships)


def _identifier_rows(app: App, records: ir.Table, mask: bool) -> list[dict[str, Any]]:
    """id_type, id_value (masked unless `mask` is False), strength, source of the identifiers of some
    source records. Their raw rows (a handful) are read first and normalised in memory: normalising
    inside one query inlines the records' rows once per identifier column, which compiled and ran for
    seconds. From a sealed lake a phone or e-mail is its keyed hash: shown by its mask column, or
    opened (the caller holds the pii scope)."""
    raw: list[ir.Table] = []
    sealed: dict[str, tuple[str | None, str, str, str]] = {}
    try:
        for entity in ENTITY_NAMES:
            rows = latest_for_records(app.engine, entity, records)
            table = None if rows is None else app.engine.to_arrow(rows)
            if table is not None:
                sealed |= {h: (*v, entity) for h, v in sealed_index(entity, table).items()}
            raw.append(empty_entity(entity) if table is None else ibis.memtable(table))
        found = extract_identifiers(*raw).select("id_type", "id_value", "strength", "source").distinct()
        result: list[dict[str, Any]] = app.engine.to_arrow(
            found.order_by(["id_type", "id_value", "source"])
        ).to_pylist()
    finally:
        app.engine.release(*raw)
    for row in result:
        value = row["id_value"]
        if value in sealed:
            shown, envelope, column, entity = sealed[value]
            clear = None if mask else open_value(app.settings.pii_keyring, entity, column, envelope)
            norm = None if clear is None else normalise_identifier(row["id_type"], clear)
            row["id_value"] = shown if norm is None else norm[1]
        elif mask:
            row["id_value"] = mask_value(row["id_type"], value)
    return result


def customer_view(
    app: App, key: str, brand: str | None = None, mask: bool = True, *, lights: bool = True
) -> dict[str, Any]:
    """What we know of one customer; identifiers are masked unless `mask=False` (PII-scoped callers).
    `lights=False` leaves out reachability (the slowest part), for callers that fetch it apart."""
    ids = find_customer_ids(app, key, brand)
    if not ids:
        raise NotFoundError(
            f"no customer found for {mask_value('phone', key) if key.isdigit() else key!r} (未找到客户)"
        )
    if len(ids) > 1:
        raise AmbiguousCustomerError(
            f"{len(ids)} customers match (one per brand?): {', '.join(ids)}; pass --brand or a customer id"
        )
    customer_id = ids[0]
    idmap = _map(app)
    records = idmap.filter(idmap.customer_id == customer_id).select(*NODE)
    sources = app.engine.to_arrow(records.order_by(NODE)).to_pylist()
    brand_code = sources[0]["brand"]

    identifier_rows = _identifier_rows(app, records, mask)
    grouped: dict[tuple[str, str], dict[str, Any]] = {}
    for row in identifier_rows:  # one customer's handful of identifiers
        entry = grouped.setdefault(
            (row["id_type"], row["id_value"]),
            {
                "type": row["id_type"],
                "value": row["id_value"],
                "strength": row["strength"],
                "sources": [],
            },
        )
        entry["sources"].append(row["source"])

    memberships: list[dict[str, Any]] = []
    member_table = latest_for_records(app.engine, "memberships", records)
    if member_table is not None:
        rows = member_table.select("source", "member_no", "program", "tier", "points_balance", "joined_at", "left_at")
        memberships = rows_of(app, rows.order_by("joined_at"))
        for m in memberships:
            m["member_no"] = mask_value("member_no", m["member_no"]) if mask else m["member_no"]

    return {
        "customer_id": customer_id,
        "brand": brand_code,
        "identifiers": list(grouped.values()),
        "sources": [{"source": s["source"], "source_customer_id": s["source_customer_id"]} for s in sources],
        "memberships": memberships,
        "orders": _order_summary(app, records),
        "tags": customer_tags(app, customer_id, brand_code),
        "lights": customer_lights(app, customer_id, brand_code) if lights else None,
        "loyalty": _loyalty(app, brand_code, customer_id, mask),
        "journeys": _journeys(app, brand_code, customer_id),
        "messages": _messages(app, brand_code, customer_id),
    }


def _journeys(app: App, brand: str, customer_id: str) -> list[dict[str, Any]]:
    """The journeys (营销旅程) the customer is or was in, newest first."""
    from siyu.journeys.listing import customer_journeys

    return customer_journeys(app, brand, customer_id)


def _messages(app: App, brand: str, customer_id: str) -> list[dict[str, Any]]:
    """The latest messages sent (or suppressed) to the customer, addresses masked (触达记录)."""
    from siyu.messaging.listing import list_messages

    with app.store.unit_of_work() as session:
        return list_messages(session, brand=brand, customer_ids=[customer_id], limit=20, ring=app.settings.pii_keyring)


def _loyalty(app: App, brand: str, customer_id: str, mask: bool) -> list[dict[str, Any]]:
    """The customer's loyalty accounts (会员中台): tier, points, lots, coupons, tier history.
    Member numbers and coupon codes (bearer codes a cashier accepts) are masked unless PII."""
    from siyu.loyalty.members import accounts_of_customer, member_summary

    with app.store.unit_of_work() as session:
        summaries = [member_summary(session, a) for a in accounts_of_customer(session, brand, customer_id)]
    if mask:
        for m in summaries:
            m["member_no"] = mask_value("member_no", m["member_no"])
            for c in m["coupons"]:
                c["code"] = mask_value("member_no", c["code"])
    return summaries


def _order_summary(app: App, records: ir.Table) -> dict[str, Any]:
    """Paid orders: count, net paid amount (amount − refunds) in fen, first and last purchase."""
    orders = latest_for_records(app.engine, "orders", records)
    empty = {"count": 0, "amount_fen": 0, "refund_fen": 0, "first_paid_at": None, "last_paid_at": None}
    if orders is None:
        return empty
    paid = orders.filter(orders.status.isin(PAID_STATUSES))
    summary = paid.aggregate(
        count=paid.count(),
        amount_fen=(paid.amount_fen - paid.refund_fen.fill_null(0)).sum().fill_null(0),
        refund_fen=paid.refund_fen.fill_null(0).sum().fill_null(0),
        first_paid_at=paid.paid_at.min(),
        last_paid_at=paid.paid_at.max(),
    )
    row = rows_of(app, summary)[0]
    return {k: (int(v) if k.endswith(("count", "_fen")) else v) for k, v in row.items()} if row["count"] else empty
