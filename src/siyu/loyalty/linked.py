"""Which source records belong to which loyalty account: the store's account links joined to One-ID.

Orders (and every other lake table) name a customer by its source node (brand, source,
source_customer_id); the store links accounts to One-ID customers (brand, customer_id). The links
are resolved to nodes in a query of their own, and the orders then join the result on the full node
key only. Why not one query: the links are an in-memory table without statistics, and given the
orders, the identity map and the links in one join, DuckDB joined the orders with the links first,
on `brand = brand AND paid_at >= enrolled_at` — 202M intermediate rows and 9.5 GB spilled for the
5,082-member demo. A two-table equi-join has no such plan.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from siyu.bootstrap import App
from siyu.identity.service import MAP_TABLE
from siyu.loyalty.models import AccountLink, LoyaltyAccount
from siyu.loyalty.sharing import sharing_customers, with_sharing

NODE = ["brand", "source", "source_customer_id"]
IN_CHUNK = 5_000  # ids per IN (…) list: well below SQLite's and PostgreSQL's parameter limits


def links_table(session: Session, program: str, account_ids: Collection[int] | None = None) -> pa.Table:
    """brand, customer_id, account_id, enrolled_at, home_brand (the account's brand of enrolment)
    of every linked customer of the program (of `account_ids` only, when given)."""
    query = (
        select(
            AccountLink.brand,
            AccountLink.customer_id,
            AccountLink.account_id,
            LoyaltyAccount.enrolled_at,
            LoyaltyAccount.brand,
        )
        .join(LoyaltyAccount, LoyaltyAccount.id == AccountLink.account_id)
        .where(AccountLink.program == program)
    )
    rows = (
        session.execute(query).all()
        if account_ids is None
        else rows_of(session, query, AccountLink.account_id, account_ids)
    )
    brand, customer_id, account_id, enrolled_at, home = zip(*rows, strict=True) if rows else ((),) * 5
    return pa.table(
        {
            "brand": pa.array(brand, pa.string()),
            "customer_id": pa.array(customer_id, pa.string()),
            "account_id": pa.array(account_id, pa.int64()),
            # naive (SQLite) values are UTC, aware ones are converted: what `accounts.utc` does, per column
            "enrolled_at": pa.array(enrolled_at, pa.timestamp("us", tz="UTC")),
            "home_brand": pa.array(home, pa.string()),
        }
    )


def rows_of(session: Session, query: Select[*tuple[Any, ...]], column: Any, ids: Collection[int]) -> list[Any]:
    """The rows of `query` whose `column` is one of `ids`, in IN (…) lists of IN_CHUNK."""
    wanted = sorted(ids)
    return [
        row
        for start in range(0, len(wanted), IN_CHUNK)
        for row in session.execute(query.where(column.in_(wanted[start : start + IN_CHUNK])))
    ]


@contextmanager
def linked_nodes(app: App, links: pa.Table) -> Iterator[ir.Table | None]:
    """brand, source, source_customer_id, account_id, enrolled_at, shares of every source record of
    a linked customer (None when nothing is linked or One-ID never ran); join it on NODE only.
    `shares`: may the account use the record's data now — false for a customer of another brand
    than the account's who does not share across brands (siyu.loyalty.sharing). The in-memory
    tables are released on exit (DuckDB keeps registered Arrow data otherwise)."""
    id_map = app.engine.table(MAP_TABLE)
    if id_map is None or links.num_rows == 0:
        yield None
        return
    linked = ibis.memtable(links)
    try:
        with sharing_customers(app, _cross_brands(links)) as sharing:
            usable = with_sharing(linked, sharing)
            nodes = id_map.select(*NODE, "customer_id").join(usable, ["brand", "customer_id"])
            found = ibis.memtable(app.engine.to_arrow(nodes.select(*NODE, "account_id", "enrolled_at", "shares")))
    finally:
        app.engine.release(linked)
    try:
        yield found
    finally:
        app.engine.release(found)


def _cross_brands(links: pa.Table) -> list[str]:
    """The brands of links to another brand's account (whose consents are read)."""
    other = pc.not_equal(links["brand"], links["home_brand"])
    return sorted(set(pc.filter(links["brand"], other).to_pylist()))
