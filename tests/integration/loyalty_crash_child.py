"""The process test_loyalty_crash.py kills: ledger writes in a loop, one line of progress each.

    python loyalty_crash_child.py URL FIRST LAST ACCOUNTS

Op i (FIRST ≤ i < LAST) on account ACCOUNTS[i % n] at START + i minutes: every 40th is the nightly
expiry (`do_expire`, one transaction per account), every 5th an earning of 5 points, the others
redeem 7 points; the key of op i is `k{i}`. Prints `ready`, then `begin i` and `ok i TXN REPLAYED`.

Test hooks (in this script only, none in siyu): after each transaction row, and before and after
the lot moves and the balance are written (all before the commit), so the transaction has written
rows when a kill lands; with CRASH_PAUSE=S it then
sleeps up to S seconds (a wider window for kills at random moments); with CRASH_HOLD=i:n it prints
`holding i` at the n-th hook of op i and blocks (stdin is never written) until it is killed — a kill
in the middle of a transaction, for certain.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import sys
from typing import Any

from siyu.loyalty import points
from siyu.loyalty.expiry import do_expire
from siyu.loyalty.programs import load_program
from siyu.store.db import Store, make_engine

CODE = "demo_club"
START = dt.datetime(2026, 6, 1, 8, tzinfo=dt.UTC)


def op_kind(i: int) -> str:
    return "expire" if i % 40 == 39 else "earn" if i % 5 == 4 else "redeem"


def main() -> None:
    url, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    accounts = [int(a) for a in sys.argv[4].split(",")]
    hold = tuple(int(x) for x in os.environ["CRASH_HOLD"].split(":")) if os.environ.get("CRASH_HOLD") else None
    pause = float(os.environ.get("CRASH_PAUSE", "0"))
    state = {"op": first, "calls": 0}

    def hook() -> None:
        state["calls"] += 1
        if hold == (state["op"], state["calls"]):
            print(f"holding {state['op']}", flush=True)
            sys.stdin.read()  # never returns: the parent kills us here
        if pause:
            import time

            time.sleep(random.uniform(0, pause))

    real_txn, real_save = points._Account.txn, points._Account.save

    def txn(self: Any, *args: Any, **kw: Any) -> int:
        txn_id = real_txn(self, *args, **kw)
        hook()
        return txn_id

    def save(self: Any, session: Any) -> list[int]:
        hook()
        ids = real_save(self, session)
        hook()  # every row written, not yet committed
        return ids

    points._Account.txn, points._Account.save = txn, save  # type: ignore[method-assign]

    store = Store(make_engine(url))
    with store.unit_of_work() as session:
        program = load_program(session, CODE)
    print("ready", flush=True)
    for i in range(first, last):
        state["op"], state["calls"] = i, 0
        account, at, kind = accounts[i % len(accounts)], START + dt.timedelta(minutes=i), op_kind(i)
        print(f"begin {i}", flush=True)
        if kind == "expire":
            do_expire(store, CODE, at=at, batch=1)
            print(f"ok {i} 0 0", flush=True)
            continue
        with store.write_unit() as session:
            if kind == "earn":
                posted = points.do_earn(session, program, account, 5, key=f"k{i}", at=at, actor="crash")
            else:
                posted = points.do_redeem(session, program, account, 7, key=f"k{i}", at=at, actor="crash")
        print(f"ok {i} {posted.txn_id} {int(posted.replayed)}", flush=True)
    store.engine.dispose()


if __name__ == "__main__":
    main()
