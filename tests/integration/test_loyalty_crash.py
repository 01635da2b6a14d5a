"""kill -9 of a process writing to the points ledger leaves every write whole or absent.

tests/integration/loyalty_crash_child.py redeems, earns and runs the nightly expiry in a loop on
three accounts (SQLite and PostgreSQL). It is SIGKILLed eight times and restarted each time from
the first operation it had not acknowledged (so the one in flight is re-sent with its key): every
other time at a random moment while it works slowly, the other times while it is blocked inside a
transaction that has already written rows (its transaction row, or lot moves).
After every kill and at the end:

- every invariant of tests/loyalty_invariants.py holds (balances, lots, moves, chain, actors);
- every acknowledged operation is in the ledger with the acknowledged transaction; the one held
  inside its transaction is not; nothing else is (the keys with a transaction are exactly the ops
  acknowledged, plus at most the one in flight);
- at the end every op is applied exactly once and the balances add up: 2,000 seeded + 5 per earning
  − 7 per redemption − what expired.

Only the timing is random; the assertions are exact.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from loyalty_crash_child import START, op_kind
from sqlalchemy import text

from loyalty_invariants import check_ledger
from siyu.loyalty.accounts import do_enrol
from siyu.loyalty.points import do_earn
from siyu.loyalty.programs import do_apply_program, load_program
from siyu.store.db import make_engine, open_store

CHILD = Path(__file__).with_name("loyalty_crash_child.py")
DEMO = Path(__file__).parents[2] / "src/siyu/loyalty/examples/demo_group.yaml"
CODE = "demo_club"
OPS = 200
KILLS = 8
SEED_LOTS = 20  # of 100 points per account; the first five expire during the run
WAIT = 60.0  # seconds: a guard against hanging


def _seed(url: str) -> list[int]:
    store = open_store(url)
    do_apply_program(store, DEMO, actor="test", at=START)
    with store.write_unit() as session:
        program = load_program(session, CODE)
        accounts = []
        for n in range(3):
            account = do_enrol(
                session, program, brand="demo", customer_id=f"c{n}", at=START, actor="t", via="api"
            ).account_id
            for lot in range(SEED_LOTS):
                expires = START + dt.timedelta(minutes=(10, 45, 80, 120, 160)[lot]) if lot < 5 else None
                do_earn(session, program, account, 100, key=f"seed-{n}-{lot}", at=START, actor="t", expires_at=expires)
            accounts.append(account)
    store.engine.dispose()
    return accounts


class Child:
    def __init__(self, url: str, first: int, accounts: list[int], env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), url, str(first), str(OPS), ",".join(map(str, accounts))],
            env={**os.environ, **env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, prefix: str) -> str:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            found = next((line for line in self.lines if line.startswith(prefix)), None)
            if found is not None:
                return found
            if self.proc.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.002)
        raise AssertionError(f"child never printed {prefix!r}: {self.lines[-20:]}")

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.reader.join(timeout=30)

    def acknowledged(self) -> dict[int, int]:
        """op → txn id (0 for an expiry run), for every `ok` line."""
        done = {}
        for line in self.lines:
            if line.startswith("ok "):
                _, i, txn, _ = line.split()
                done[int(i)] = int(txn)
        return done


def _ledger_keys(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        check_ledger(engine)
        with engine.connect() as c:
            rows = c.execute(text("SELECT idempotency_key, id FROM points_txns WHERE idempotency_key LIKE 'k%'"))
            return {key: int(txn) for key, txn in rows}
    finally:
        engine.dispose()


def test_kill_minus_nine_leaves_every_write_whole_or_absent(store_url: str) -> None:
    accounts = _seed(store_url)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    acked: dict[int, int] = {}
    held_kills = 0
    for k in range(KILLS):
        first = max(acked, default=-1) + 1
        held = None
        if k % 2:  # block inside the transaction of an op a little ahead, then kill
            op = next(i for i in range(first + rng.randrange(0, 12), OPS) if op_kind(i) != "expire")
            held = (op, rng.choice([1, 3]))  # account locked, nothing written | every row written, not committed
            child = Child(store_url, first, accounts, {"CRASH_HOLD": f"{held[0]}:{held[1]}"})
            child.wait_for(f"holding {op}")
        else:  # kill at a random moment while it works with pauses inside its transactions
            child = Child(store_url, first, accounts, {"CRASH_PAUSE": "0.03"})
            child.wait_for("ready")
            time.sleep(rng.uniform(0.05, 0.6))
        child.kill()
        assert not any("Traceback" in line for line in child.lines), (seed, child.lines[-30:])
        now = child.acknowledged()
        acked.update(now)
        keys = _ledger_keys(store_url)
        for i, txn in acked.items():
            if op_kind(i) != "expire":
                assert keys.get(f"k{i}") == txn, f"seed {seed}: op {i} acknowledged as txn {txn}, ledger: {keys}"
        in_flight = max(acked, default=-1) + 1
        unacked = {key for key in keys if int(key[1:]) not in acked}
        assert unacked <= {f"k{in_flight}"}, f"seed {seed}: unacknowledged ops in the ledger: {unacked}"
        if held is not None:
            held_kills += 1
            assert max(acked, default=-1) == held[0] - 1, f"seed {seed}: ops after {held[0]} acknowledged"
            assert f"k{held[0]}" not in keys, f"seed {seed}: op {held[0]} was killed inside its transaction"
    assert held_kills == KILLS // 2

    # a last run, not killed, finishes the work; the op in flight at the last kill is re-sent
    first = max(acked, default=-1) + 1
    child = Child(store_url, first, accounts, {})
    child.wait_for(f"ok {OPS - 1} ")
    assert child.proc.wait(timeout=WAIT) == 0, child.lines[-30:]
    acked.update(child.acknowledged())
    assert set(acked) == set(range(OPS))
    keys = _ledger_keys(store_url)
    assert keys == {f"k{i}": acked[i] for i in range(OPS) if op_kind(i) != "expire"}

    engine = make_engine(store_url)
    try:
        with engine.connect() as c:
            balances = dict(c.execute(text("SELECT id, balance FROM loyalty_accounts")).all())
            expired = dict(
                c.execute(
                    text("SELECT account_id, -SUM(points) FROM points_txns WHERE kind = 'expire' GROUP BY account_id")
                ).all()
            )
            kinds = dict(c.execute(text("SELECT kind, COUNT(*) FROM points_txns GROUP BY kind")).all())
    finally:
        engine.dispose()
    for n, account in enumerate(accounts):
        ops = [op_kind(i) for i in range(OPS) if i % len(accounts) == n]
        expected = 100 * SEED_LOTS + 5 * ops.count("earn") - 7 * ops.count("redeem") - int(expired[account])
        assert balances[account] == expected
        assert 0 < int(expired[account]) <= 500
    assert kinds["redeem"] == sum(op_kind(i) == "redeem" for i in range(OPS))
    assert kinds["earn"] == sum(op_kind(i) == "earn" for i in range(OPS)) + 3 * SEED_LOTS
