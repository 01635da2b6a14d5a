"""One customer's view reads that customer's rows: `latest_of` gives exactly `latest` cut to their
records (an order that moved to another record is not theirs), identifiers and lookups by phone or
member number are what `identifiers(app)` says, and normalising a value stays a small expression."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import ibis
import pyarrow as pa
import pytest

from siyu.bootstrap import App, bootstrap
from siyu.config import Settings
from siyu.customers.view import customer_view, find_customer_ids
from siyu.identity.normalise import identifier_value_expr
from siyu.identity.service import identifiers, run_resolve
from siyu.ingest.importer import import_path
from siyu.ingest.views import latest, latest_for_records
from siyu.privacy.hashing import keyed_hash
from siyu.privacy.lake_columns import HASHED_KINDS

NODE = ["brand", "source", "source_customer_id"]


def _write(path: Path, name: str, text: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / name).write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """One small brand for the module: importing and resolving is the slow part."""
    tmp = tmp_path_factory.mktemp("view")
    application = bootstrap(Settings(home=tmp / "home", database_url=f"sqlite:///{tmp / 'siyu.db'}"))
    _brand(application, tmp)
    yield application
    application.store.engine.dispose()


def _brand(app: App, tmp: Path) -> None:
    _write(
        tmp / "one",
        "customers.csv",
        "brand,source,source_customer_id,phone,email\n"
        "acme,crm,a1,138 1234 5678,Ann@Example.com\n"
        "acme,pos,a2,+86 138-1234-5678,\n"
        "acme,crm,b1,+1 415 555 0100,\n",
    )
    _write(
        tmp / "one",
        "memberships.csv",
        "brand,source,member_no,source_customer_id,joined_at\nacme,crm,M9,a1,2024-01-01T00:00:00+08:00\n",
    )
    _write(
        tmp / "one",
        "orders.csv",
        "brand,source,order_id,source_customer_id,status,paid_at,amount_fen,refund_fen\n"
        "acme,crm,o1,a1,completed,2024-06-03T10:00:00+08:00,1000,0\n"
        "acme,crm,o2,a1,completed,2024-06-04T10:00:00+08:00,2000,0\n",
    )
    import_path(app, tmp / "one")
    # o2 moves to b1 in a later import: its latest version is b1's, not a1's.
    _write(
        tmp / "two",
        "orders.csv",
        "brand,source,order_id,source_customer_id,status,paid_at,amount_fen,refund_fen\n"
        "acme,crm,o2,b1,completed,2024-06-04T10:00:00+08:00,2500,0\n",
    )
    import_path(app, tmp / "two")
    run_resolve(app)


def test_one_customers_rows_are_latest_cut_to_their_records(app: App) -> None:
    for source_id in ("a1", "b1"):
        records = ibis.memtable(pa.table({"brand": ["acme"], "source": ["crm"], "source_customer_id": [source_id]}))
        everyone = latest(app.engine, "orders")
        assert everyone is not None
        mine = latest_for_records(app.engine, "orders", records)
        assert mine is not None
        cols = ["order_id", "source_customer_id", "amount_fen"]
        expected = app.engine.to_arrow(everyone.semi_join(records, NODE).select(*cols).order_by("order_id"))
        assert app.engine.to_arrow(mine.select(*cols).order_by("order_id")).to_pylist() == expected.to_pylist()
    a1 = ibis.memtable(pa.table({"brand": ["acme"], "source": ["crm"], "source_customer_id": ["a1"]}))
    mine = latest_for_records(app.engine, "orders", a1)
    assert mine is not None
    assert app.engine.to_arrow(mine.select("order_id"))["order_id"].to_pylist() == ["o1"]


def test_view_and_lookups_agree_with_identifiers(app: App) -> None:
    view = customer_view(app, "１３８１２３４５６７８", "acme", mask=False, lights=False)  # full-width digits
    assert {s["source_customer_id"] for s in view["sources"]} == {"a1", "a2"}
    assert view["orders"]["count"] == 1 and view["orders"]["amount_fen"] == 1000  # o2 moved to b1
    ids = identifiers(app)
    records = ids.filter(ids.source_customer_id.isin(["a1", "a2"]))
    expected = sorted(
        (r["id_type"], r["id_value"])
        for r in app.engine.to_arrow(records.select("id_type", "id_value").distinct()).to_pylist()
    )
    shown = sorted((i["type"], i["value"]) for i in view["identifiers"])
    # One-ID reads a sealed lake's phones and e-mails as keyed hashes; the unmasked view opens them
    key = app.settings.pii_key
    assert sorted((t, keyed_hash(key, t, v) if t in HASHED_KINDS else v) for t, v in shown) == expected
    assert ("email", "ann@example.com") in shown and ("member_no", "M9") in shown
    assert find_customer_ids(app, "M9", "acme") == [view["customer_id"]]
    assert find_customer_ids(app, "0086 13812345678", "acme") == [view["customer_id"]]
    foreign = find_customer_ids(app, "+14155550100", "acme")
    assert len(foreign) == 1 and foreign != [view["customer_id"]]
    assert find_customer_ids(app, "ann@example.com", "acme") == []  # lookups are by id, phone or member no


def test_normalising_refers_to_the_value_at_most_a_few_times() -> None:
    # Each reference is inlined into the SQL: the stepwise version repeated the phone ~60 times
    # (83 KB of SQL for one column, seconds to compile the extraction of every identifier).
    table = ibis.table({"id_type": "string", "raw_phone_value": "string"}, name="t")
    sql = ibis.to_sql(table.select(v=identifier_value_expr(table.id_type, table.raw_phone_value)), dialect="duckdb")
    assert sql.count("raw_phone_value") <= 5, sql
