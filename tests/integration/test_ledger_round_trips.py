"""Statements per ledger posting (a regression guard on the hot path) and the optimistic write's
guard against a writer that changed the account between its read and its write.

A posting is one read (account, key, lots) and its writes: on PostgreSQL the writes are one
statement (2 in all; 3 before the optimistic read replaced `SELECT … FOR UPDATE` + key read), on
SQLite a few plain statements (5 in all; 6 before).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from loyalty_invariants import check_ledger
from siyu.loyalty.accounts import do_enrol
from siyu.loyalty.models import LoyaltyAccount, PointsTxn
from siyu.loyalty.points import do_earn, do_redeem
from siyu.loyalty.program import Program
from siyu.loyalty.programs import do_apply_program, load_program
from siyu.store.db import Store, make_engine, open_store

DEMO = Path(__file__).parents[2] / "src/siyu/loyalty/examples/demo_group.yaml"
AT = dt.datetime(2026, 6, 1, 8, tzinfo=dt.UTC)
STATEMENTS = {"postgresql": 2, "sqlite": 5}


@pytest.fixture
def ledger(store_url: str) -> Iterator[tuple[Store, Program, int]]:
    store = open_store(store_url)
    do_apply_program(store, DEMO, actor="test", at=AT)
    with store.write_unit() as session:
        program = load_program(session, "demo_club")
        account = do_enrol(session, program, brand="demo", customer_id="c1", at=AT, actor="t", via="api").account_id
        do_earn(session, program, account, 500, key="seed", at=AT, actor="t")
    yield store, program, account
    store.engine.dispose()


def _counted(store: Store, post: Any) -> int:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    with store.write_unit() as session:
        session.connection()  # BEGIN (IMMEDIATE on SQLite) is not the posting's
        event.listen(store.engine, "before_cursor_execute", count)
        try:
            post(session)
        finally:
            event.remove(store.engine, "before_cursor_execute", count)
    return len(seen)


def test_statements_per_posting(ledger: tuple[Store, Program, int]) -> None:
    store, program, account = ledger
    expected = STATEMENTS[store.engine.dialect.name]
    earn = _counted(store, lambda s: do_earn(s, program, account, 40, key="e1", at=AT, actor="t"))
    redeem = _counted(store, lambda s: do_redeem(s, program, account, 30, key="r1", at=AT, actor="t"))
    assert (earn, redeem) == (expected, expected)
    # a replayed key is answered by the read alone
    assert _counted(store, lambda s: do_redeem(s, program, account, 30, key="r1", at=AT, actor="t")) == 1
    with store.unit_of_work() as session:
        assert session.get(LoyaltyAccount, account).balance == 510  # type: ignore[union-attr]
        check_ledger(session.connection())


@pytest.mark.postgres
def test_a_write_between_read_and_write_is_not_lost(pg_database: str) -> None:
    """Another worker redeems (and commits) just before this posting's write: the guarded write
    writes nothing, the posting is planned again under the row lock, and both redemptions count."""
    store = open_store(pg_database)
    do_apply_program(store, DEMO, actor="test", at=AT)
    with store.write_unit() as session:
        program = load_program(session, "demo_club")
        account = do_enrol(session, program, brand="demo", customer_id="c1", at=AT, actor="t", via="api").account_id
        do_earn(session, program, account, 100, key="seed-1", at=AT, actor="t")
        do_earn(session, program, account, 100, key="seed-2", at=AT, actor="t")
    other = Store(make_engine(pg_database))
    statements: list[str] = []

    def interleave(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement.split(None, 1)[0])
        if statement.startswith("WITH") and len(statements) == 2:  # our first write, not yet sent
            with other.write_unit() as session:
                do_redeem(session, program, account, 150, key="other", at=AT, actor="t")

    with store.write_unit() as session:
        event.listen(store.engine, "before_cursor_execute", interleave)
        try:
            posted = do_redeem(session, program, account, 30, key="mine", at=AT, actor="t")
        finally:
            event.remove(store.engine, "before_cursor_execute", interleave)
    # read, guarded write (nothing written), then lock, key read with the lots, write
    assert statements == ["SELECT", "WITH", "SELECT", "SELECT", "WITH"]
    assert posted.balance == 200 - 150 - 30 and not posted.replayed
    with store.unit_of_work() as session:
        assert session.get(LoyaltyAccount, account).balance == 20  # type: ignore[union-attr]
        keys = session.scalars(select(PointsTxn.idempotency_key).where(PointsTxn.kind == "redeem")).all()
        assert sorted(keys) == ["mine", "other"]
        check_ledger(session.connection())
    other.engine.dispose()
    store.engine.dispose()
