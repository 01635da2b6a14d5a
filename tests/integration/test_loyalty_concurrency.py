"""Concurrent redemptions on one account never overdraw it, never lose an update and apply each
idempotency key once.

One account holds 3,000 points in five lots (one of them already past its expiry, so the first
redemption expires it on the way). 16 threads, each with its own engine, redeem 7 points at a
time with unique keys, re-send keys they already used, and all send the same few shared keys at
once, until refused with InsufficientPointsError; two more threads earn meanwhile. Afterwards:

- no balance in the ledger ever went below zero, and what is left cannot pay another 7;
- successful redemptions × 7 = 3,000 + earned − expired − balance, and Σ txns = balance = Σ lots;
- every key has at most one transaction; each was answered "applied" exactly once and "replayed"
  with the same transaction otherwise;
- every invariant of tests/loyalty_invariants.py holds.

PostgreSQL (row locks, READ COMMITTED) is the case that matters; SQLite (one writer at a time via
BEGIN IMMEDIATE) runs the same test.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import text

from loyalty_invariants import check_ledger
from siyu.loyalty.accounts import do_enrol
from siyu.loyalty.errors import InsufficientPointsError
from siyu.loyalty.expiry import do_expire
from siyu.loyalty.points import do_earn, do_redeem
from siyu.loyalty.program import Program
from siyu.loyalty.programs import do_apply_program, load_program
from siyu.store.db import Store, make_engine, open_store

DEMO = Path(__file__).parents[2] / "src/siyu/loyalty/examples/demo_group.yaml"
CODE = "demo_club"
START = dt.datetime(2026, 6, 1, 8, tzinfo=dt.UTC)
LOTS = (800, 700, 600, 500, 400)  # 3,000 points
EXPIRED = 150  # a sixth lot, due before the redemptions start
REDEEMERS = 16
EARNERS = 2
EARNS = 30  # per earner, 5 points each
PRICE = 7
SHARED = 6  # keys every redeemer sends at the same moment


@dataclass
class Outcome:
    applied: list[tuple[str, int]] = field(default_factory=list)  # (key, txn id) answered as new
    replayed: list[tuple[str, int]] = field(default_factory=list)
    refused: int = 0
    errors: list[BaseException] = field(default_factory=list)


def _setup(url: str) -> tuple[Program, int]:
    store = open_store(url)
    do_apply_program(store, DEMO, actor="test", at=START)
    with store.write_unit() as session:
        program = load_program(session, CODE)
        account = do_enrol(session, program, brand="demo", customer_id="c1", at=START, actor="t", via="api").account_id
        for i, points in enumerate(LOTS):
            expires = None if i == 0 else START + dt.timedelta(days=30 * i)
            do_earn(session, program, account, points, key=f"seed-{i}", at=START, actor="t", expires_at=expires)
        do_earn(session, program, account, EXPIRED, key="seed-due", at=START, actor="t", expires_at=START)
    store.engine.dispose()
    return program, account


def _run(url: str) -> None:
    program, account = _setup(url)
    at = START + dt.timedelta(hours=1)
    barrier = threading.Barrier(REDEEMERS + EARNERS)
    earners_done = threading.Event()
    earners_left = [EARNERS]
    lock = threading.Lock()
    outcomes = [Outcome() for _ in range(REDEEMERS + EARNERS)]

    def redeemer(n: int) -> None:
        out = outcomes[n]
        store = Store(make_engine(url))
        try:
            barrier.wait()
            sent: list[str] = []
            i = 0
            while True:
                if i < SHARED:
                    key = f"shared-{i}"
                elif i % 5 == 0 and sent:
                    key = sent[(i * 7919) % len(sent)]  # an earlier key re-sent: must be replayed
                else:
                    key = f"r{n}-{i}"
                try:
                    with store.write_unit() as session:
                        posted = do_redeem(session, program, account, PRICE, key=key, at=at, actor=f"t{n}")
                except InsufficientPointsError:
                    out.refused += 1
                    if earners_done.is_set():
                        return
                    time.sleep(0.002)
                    continue  # the same key again: refused requests leave no trace
                (out.replayed if posted.replayed else out.applied).append((key, posted.txn_id))
                assert posted.balance >= 0
                sent.append(key)
                i += 1
        except BaseException as e:
            out.errors.append(e)
        finally:
            store.engine.dispose()

    def earner(n: int) -> None:
        out = outcomes[REDEEMERS + n]
        store = Store(make_engine(url))
        try:
            barrier.wait()
            for i in range(EARNS):
                for key in [f"e{n}-{i}"] + ([f"e{n}-{i - 1}"] if i % 4 == 3 else []):
                    with store.write_unit() as session:
                        posted = do_earn(session, program, account, 5, key=key, at=at, actor=f"e{n}")
                    (out.replayed if posted.replayed else out.applied).append((key, posted.txn_id))
                time.sleep(0.003)
        except BaseException as e:
            out.errors.append(e)
        finally:
            store.engine.dispose()
            with lock:
                earners_left[0] -= 1
                if not earners_left[0]:
                    earners_done.set()

    threads = [threading.Thread(target=redeemer, args=(n,)) for n in range(REDEEMERS)]
    threads += [threading.Thread(target=earner, args=(n,)) for n in range(EARNERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a worker hung"
    errors = [e for o in outcomes for e in o.errors]
    assert not errors, f"workers failed: {errors[:3]!r}"

    engine = make_engine(url)
    try:
        ledger = check_ledger(engine)
        with engine.connect() as c:
            rows = c.execute(
                text("SELECT idempotency_key, id, kind, points FROM points_txns WHERE account_id = :a"), {"a": account}
            ).all()
            lowest = c.execute(
                text("SELECT MIN(balance_after) FROM points_txns WHERE account_id = :a"), {"a": account}
            ).scalar_one()
    finally:
        engine.dispose()
    txn_of = {key: txn_id for key, txn_id, _, _ in rows}
    kinds = Counter(kind for _, _, kind, _ in rows)
    balance, debt = ledger.accounts[account]

    # never overdrawn, and the rest cannot pay another redemption
    assert lowest >= 0 and debt == 0
    assert 0 <= balance < PRICE
    # every redemption and earning applied exactly once: answered "applied" once, replays the same txn
    applied = Counter(key for o in outcomes for key, _ in o.applied)
    assert all(n == 1 for n in applied.values()), [k for k, n in applied.items() if n > 1][:5]
    assert {k for k, _, kind, _ in rows if kind in ("earn", "redeem")} == set(applied) | {
        f"seed-{i}" for i in range(len(LOTS))
    } | {"seed-due"}
    for o in outcomes:
        for key, txn_id in o.applied + o.replayed:
            assert txn_of[key] == txn_id, f"{key} answered with txn {txn_id}, ledger has {txn_of[key]}"
    assert all(any(k == f"shared-{i}" for o in outcomes for k, _ in o.applied) for i in range(SHARED))
    assert sum(len(o.replayed) for o in outcomes[:REDEEMERS]) >= REDEEMERS * (SHARED - 1)
    # no lost update: the points add up
    earned = kinds["earn"] - len(LOTS) - 1
    assert earned == EARNERS * EARNS
    assert kinds["expire"] == 1 and sum(p for _, _, kind, p in rows if kind == "expire") == -EXPIRED
    redemptions = kinds["redeem"]
    assert redemptions * PRICE == sum(LOTS) + 5 * earned - balance
    assert redemptions == sum(1 for o in outcomes for k, _ in o.applied if not k.startswith("e"))
    assert sum(p for *_, p in rows) == balance

    # the nightly run counts what it expired (on PostgreSQL too, where INSERT … SELECT has no rowcount)
    store = Store(make_engine(url))
    try:
        with store.write_unit() as session:
            do_earn(session, program, account, 40, key="late", at=at, actor="t", expires_at=at + dt.timedelta(days=1))
        run = do_expire(store, CODE, at=at + dt.timedelta(days=2), batch=1)
        assert (run.accounts, run.points, run.lots) == (1, 40, 1)
        check_ledger(store.engine)
    finally:
        store.engine.dispose()


@pytest.mark.postgres
def test_concurrent_redemptions_postgresql(pg_database: str) -> None:
    _run(pg_database)


def test_concurrent_redemptions_sqlite(tmp_path: Path) -> None:
    _run(f"sqlite:///{tmp_path / 'store.db'}")
