"""Cross-brand use of a person's data in a group program respects `cross_brand_sharing` (集团内跨品牌共享).

A group program's account belongs to the brand where it was opened (`loyalty_accounts.brand`, its
home brand). A customer of another brand of the group linked to it (积分互通) shares that brand's
data with the home brand: their orders earn points in the account and count towards its tier, and
their phone is what joins them to it at enrolment. That use needs the person's consent **at the
source brand**: the latest `cross_brand_sharing` record of (that brand, that customer id) in the
consent ledger must grant it. No record means no sharing: PIPL art. 23 asks for a separate consent
before personal information goes to another handler, so sharing is opt-in, unlike marketing
channels (where no record means "not withdrawn"). The record's channel is not read.

The ledger is read as a table (every record of the purpose in the program's brands) and its
current state is computed with Ibis, so each evaluation (order sync, tier evaluation, enrolment)
sees a withdrawal at once: from then on the brand's new orders earn nothing in the account (and
spend no points of it) and leave its tier's qualifying value. What was posted before stays (the
points ledger is a financial record), and a later refund of such an order is still reversed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import ibis
import ibis.expr.types as ir
import pyarrow as pa
from sqlalchemy import select

from siyu.bootstrap import App
from siyu.messaging.ledger_models import ConsentRecord

PURPOSE = "cross_brand_sharing"


def _records(app: App, brands: Sequence[str]) -> pa.Table:
    query = select(
        ConsentRecord.id, ConsentRecord.brand, ConsentRecord.customer_id, ConsentRecord.granted, ConsentRecord.at
    ).where(ConsentRecord.purpose == PURPOSE, ConsentRecord.brand.in_(list(brands)))
    with app.store.unit_of_work() as session:
        rows = session.execute(query).all()
    ident, brand, customer, granted, at = (list(c) for c in zip(*rows, strict=True)) if rows else ([],) * 5
    return pa.table(
        {
            "id": pa.array(ident, pa.int64()),
            "brand": pa.array(brand, pa.string()),
            "customer_id": pa.array(customer, pa.string()),
            "granted": pa.array(granted, pa.bool_()),
            # SQLite keeps no offset (stored UTC)
            "at": pa.array([a if a.tzinfo else a.replace(tzinfo=dt.UTC) for a in at], pa.timestamp("us", "UTC")),
        }
    )


@contextmanager
def sharing_customers(app: App, brands: Sequence[str]) -> Iterator[ir.Table]:
    """brand, customer_id of every customer of `brands` whose latest `cross_brand_sharing` record
    grants it (by decision time, then record id). Released on exit."""
    records = ibis.memtable(_records(app, brands))
    try:
        ranked = records.mutate(
            _n=ibis.row_number().over(group_by=["brand", "customer_id"], order_by=[ibis.desc("at"), ibis.desc("id")])
        )
        yield ranked.filter((ranked._n == 0) & ranked.granted).select("brand", "customer_id")
    finally:
        app.engine.release(records)


def with_sharing(links: ir.Table, sharing: ir.Table) -> ir.Table:
    """`links` with `shares`: may the account use the linked customer's data? True for a customer of
    the account's home brand, and for one of another brand who shares (`sharing_customers`)."""
    granted = sharing.mutate(_granted=ibis.literal(True))
    out = links.left_join(granted, ["brand", "customer_id"]).drop("brand_right", "customer_id_right")
    return out.mutate(shares=(out.brand == out.home_brand) | out._granted.fill_null(False)).drop("_granted")
