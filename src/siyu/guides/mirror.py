"""Copies of lake results in the store, written only where they changed.

A binding run produces per-customer answers in the engine (current bindings, home stores). The
store keeps a copy so services answer inside a unit of work; the lake keeps the previous answer so
the next run finds what changed *in the engine* and writes only those customers (10 changed
bindings among 1M write 10 rows). The store is written before the lake: a crash in between makes
the next run rewrite the same customers again, which is harmless.
"""

from __future__ import annotations

import ibis
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Table, delete, select
from sqlalchemy.orm import Session

from siyu.bootstrap import App
from siyu.lake.tables import sql_text
from siyu.store.models import Base

_CHUNK = 5_000


def changed_customers(app: App, brand: str, lake_name: str, new: pa.Table) -> list[str]:
    """Customers whose rows in `new` differ from the brand's rows in lake table `lake_name`."""
    new_rows = ibis.memtable(new)
    old = app.engine.table(lake_name)
    try:
        if old is None:
            return sorted(app.engine.to_arrow(new_rows.select("customer_id").distinct())["customer_id"].to_pylist())
        old_rows = old.filter(old.brand == brand).select(*new.column_names)
        differ = new_rows.difference(old_rows).union(old_rows.difference(new_rows))
        return sorted(app.engine.to_arrow(differ.select("customer_id").distinct())["customer_id"].to_pylist())
    finally:
        app.engine.release(new_rows)


def write_changed(session: Session, model: type[Base], brand: str, new: pa.Table, changed: list[str]) -> None:
    """Replace the store rows of the `changed` customers of `brand` with their rows in `new`.

    Bulk, because a brand's first run writes every customer (2M bindings for 1M customers): the
    rows go from Arrow columns straight to the driver (SQLite executemany of tuples, PostgreSQL
    COPY), not through ORM dictionaries; and the deletes are skipped when the store holds no row of
    the brand yet."""
    if not changed:
        return
    table = Table(model.__tablename__, Base.metadata)  # the mapped table (typed as a Table)
    rows = new.filter(pc.is_in(new["customer_id"], value_set=pa.array(changed, pa.string())))
    held = session.execute(select(table.c.brand).where(table.c.brand == brand).limit(1)).first()
    if held is not None:
        for i in range(0, len(changed), _CHUNK):
            chunk = changed[i : i + _CHUNK]
            session.execute(delete(table).where(table.c.brand == brand, table.c.customer_id.in_(chunk)))
    bulk_insert(session.connection(), model.__tablename__, rows)


def bulk_insert(connection: Connection, name: str, rows: pa.Table) -> None:
    """Insert Arrow `rows` into table `name` (columns by name) in the connection's transaction."""
    if not rows.num_rows:
        return
    columns = ", ".join(rows.column_names)
    if connection.dialect.name == "postgresql":
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY {name} ({columns}) FROM STDIN") as copy:
            for batch in rows.to_batches(_CHUNK * 10):
                for row in zip(*(c.to_pylist() for c in batch.columns), strict=True):
                    copy.write_row(row)
        return
    # SQLite: timestamps as the text SQLAlchemy's DateTime stores (naive UTC, microseconds)
    cols = [pc.strftime(c, format="%Y-%m-%d %H:%M:%S") if pa.types.is_timestamp(c.type) else c for c in rows.columns]
    marks = ", ".join("?" * len(cols))
    statement = f"INSERT INTO {name} ({columns}) VALUES ({marks})"
    table = pa.table(cols, names=rows.column_names)
    for batch in table.to_batches(_CHUNK * 10):
        connection.exec_driver_sql(statement, list(zip(*(c.to_pylist() for c in batch.columns), strict=True)))


def replace_in_lake(app: App, brand: str, lake_name: str, new: pa.Table) -> None:
    app.lake.replace(lake_name, new, f"brand = {sql_text(brand)}")
