"""Property-based tests of the points ledger (siyu.loyalty.points, siyu.loyalty.expiry).

Hypothesis drives random sequences of earn / redeem / adjust / reverse (full and partial) /
nightly expiry / replayed requests on two accounts while the clock moves, against a real SQLite
store (a fresh copy of a migrated template per example). After every step the invariants of
tests/loyalty_invariants.py are checked by SQL over the ledger tables, the ledger must be
append-only, and every balance must match a model kept from the outcomes alone:

- earn +p; redeem −p after the due lots expired (refused with nothing changed when short);
- reverse of a debit +n; of a credit −n (policy `negative`), less under `clamp`, never more;
- `do_expire` takes exactly the points of the due lots and leaves none due behind.

A separate rule checks reverse ∘ apply = identity: applying an earn, redeem or adjustment and then
reversing it (at once or in parts) restores every balance, debt and lot.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, multiple, rule
from sqlalchemy import text
from sqlalchemy.orm import Session

from loyalty_invariants import Ledger, assert_append_only, check_ledger, instant, read_ledger
from siyu.loyalty.accounts import do_enrol
from siyu.loyalty.errors import InsufficientPointsError, ReversalError
from siyu.loyalty.expiry import do_expire
from siyu.loyalty.points import Posted, do_adjust, do_earn, do_redeem, do_reverse
from siyu.loyalty.program import Expiry, Program
from siyu.loyalty.programs import do_apply_program, load_program
from siyu.store.db import Store, make_engine, open_store

DEMO = Path(__file__).parents[2] / "src/siyu/loyalty/examples/demo_group.yaml"
CODE = "demo_club"
START = dt.datetime(2026, 12, 30, 12, tzinfo=dt.UTC)  # close to a year end in Shanghai
ACCOUNTS = (1, 2)


@dataclass(frozen=True)
class Applied:
    """A request that was applied: enough to re-send it or reverse it."""

    txn_id: int
    kind: str  # earn | redeem | adjust | reverse
    account: int
    points: int  # as asked (reverse: as asked, None = all left)
    key: str
    original: int | None = None


def make_template(directory: Path) -> Path:
    """A migrated SQLite store with the demo program applied and two members enrolled."""
    path = directory / "template.db"
    store = open_store(f"sqlite:///{path}")
    do_apply_program(store, DEMO, actor="test", at=START)
    with store.write_unit() as session:
        program = load_program(session, CODE)
        for n in ACCOUNTS:
            do_enrol(session, program, brand="demo", customer_id=f"c{n}", at=START, actor="test", via="api")
    store.engine.dispose()
    return path


class LedgerMachine(RuleBasedStateMachine):
    template: ClassVar[Path]
    txns = Bundle("txns")

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="ledger-"))
        shutil.copy(self.template, self.dir / "store.db")
        self.store = Store(make_engine(f"sqlite:///{self.dir / 'store.db'}"))
        with self.store.unit_of_work() as session:
            self.program: Program = load_program(session, CODE)
        self.now = START
        self.serial = 0
        self.balance = dict.fromkeys(ACCOUNTS, 0)
        self.ledger = check_ledger(self.store.engine)

    def teardown(self) -> None:
        self.store.engine.dispose()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- helpers ----------------------------------------------------------------------------------

    def key(self, kind: str) -> str:
        self.serial += 1
        return f"{kind}-{self.serial}"

    def read(self) -> Ledger:
        with self.store.engine.connect() as connection:
            return read_ledger(connection)

    def lots(self, account: int) -> list[tuple[int, dt.datetime | None, int]]:
        with self.store.engine.connect() as connection:
            rows = connection.execute(
                text("SELECT id, expires_at, remaining FROM points_lots WHERE account_id = :a AND remaining > 0"),
                {"a": account},
            )
            return [(int(i), None if e is None else instant(e), int(r)) for i, e, r in rows]

    def due(self, account: int) -> int:
        return sum(r for _, e, r in self.lots(account) if e is not None and e <= self.now)

    def held(self, account: int) -> int:
        return sum(r for _, _, r in self.lots(account))

    def unchanged(self, before: Ledger) -> None:
        after = self.read()
        assert after == before, "a refused or replayed request changed the ledger"

    # -- setup ------------------------------------------------------------------------------------

    @initialize(
        policy=st.sampled_from(["negative", "clamp", "reject"]),
        expiry=st.sampled_from(
            [
                Expiry(policy="fixed_calendar", years=0),
                Expiry(policy="fixed_calendar", years=1),
                Expiry(policy="rolling", months=1),
                Expiry(policy="rolling", months=3),
                Expiry(policy="never"),
            ]
        ),
    )
    def configure(self, policy: str, expiry: Expiry) -> None:
        points = self.program.points.model_copy(update={"reversal_exceeds_balance": policy, "expiry": expiry})
        self.program = self.program.model_copy(update={"points": points})

    # -- the clock --------------------------------------------------------------------------------

    @rule(hours=st.one_of(st.just(0), st.integers(1, 72), st.integers(24 * 20, 24 * 400)))
    def advance(self, hours: int) -> None:
        self.now += dt.timedelta(hours=hours)

    # -- writes -----------------------------------------------------------------------------------

    @rule(
        target=txns,
        account=st.sampled_from(ACCOUNTS),
        points=st.integers(1, 500),
        expires_in=st.one_of(st.none(), st.integers(1, 24 * 200)),
    )
    def earn(self, account: int, points: int, expires_in: int | None) -> Applied:
        key = self.key("earn")
        expires_at = None if expires_in is None else self.now + dt.timedelta(hours=expires_in)
        with self.store.write_unit() as session:
            posted = do_earn(
                session, self.program, account, points, key=key, at=self.now, actor="t", expires_at=expires_at
            )
        self.balance[account] += points
        assert (posted.points, posted.balance, posted.replayed) == (points, self.balance[account], False)
        return Applied(posted.txn_id, "earn", account, points, key)

    @rule(target=txns, account=st.sampled_from(ACCOUNTS), points=st.integers(1, 600))
    def redeem(self, account: int, points: int) -> Applied | object:
        return self._debit("redeem", account, points)

    @rule(target=txns, account=st.sampled_from(ACCOUNTS), points=st.integers(-400, 400).filter(bool))
    def adjust(self, account: int, points: int) -> Applied | object:
        if points < 0:
            return self._debit("adjust", account, -points)
        key = self.key("adjust")
        with self.store.write_unit() as session:
            posted = do_adjust(session, self.program, account, points, key=key, at=self.now, actor="t", reason="fix")
        self.balance[account] += points
        assert (posted.points, posted.balance) == (points, self.balance[account])
        return Applied(posted.txn_id, "adjust", account, points, key)

    def _debit(self, kind: str, account: int, points: int) -> Applied | object:
        """A redemption (or negative adjustment): due lots expire first, then it takes or is refused."""
        key = self.key(kind)
        due = self.due(account)
        before = self.read()
        try:
            with self.store.write_unit() as session:
                if kind == "redeem":
                    posted = do_redeem(session, self.program, account, points, key=key, at=self.now, actor="t")
                else:
                    posted = do_adjust(
                        session, self.program, account, -points, key=key, at=self.now, actor="t", reason="fix"
                    )
        except InsufficientPointsError:
            assert self.balance[account] - due < points, "refused although the balance covered it"
            self.unchanged(before)
            return multiple()
        self.balance[account] -= due + points
        assert self.balance[account] >= 0 or before.accounts[account][1] > 0, "overdrawn"
        assert (posted.points, posted.balance) == (-points, self.balance[account])
        assert self.due(account) == 0, "a redemption left due points unexpired"
        return Applied(posted.txn_id, kind, account, points if kind == "redeem" else -points, key)

    @rule(target=txns, applied=txns, part=st.one_of(st.none(), st.integers(1, 600)))
    def reverse(self, applied: Applied, part: int | None) -> Applied | object:
        if applied.kind == "reverse":
            return multiple()
        key = self.key("reverse")
        held = self.held(applied.account)
        before = self.read()
        left = abs(applied.points) - sum(abs(t[4]) for t in before.txns if t[3] == "reverse" and t[6] == applied.txn_id)
        try:
            with self.store.write_unit() as session:
                posted = do_reverse(session, self.program, applied.txn_id, key=key, at=self.now, actor="t", points=part)
        except ReversalError:
            n = left if part is None else part
            policy = self.program.points.reversal_exceeds_balance
            credit = applied.points > 0 and applied.kind != "redeem"
            assert n <= 0 or n > left or (policy == "reject" and credit and held < n), "wrongly refused"
            self.unchanged(before)
            return multiple()
        n = left if part is None else part
        assert 0 < n <= left
        if applied.kind == "redeem" or applied.points < 0:  # a debit reversed: the points come back
            assert posted.points == n
        elif self.program.points.reversal_exceeds_balance == "clamp":
            assert -n <= posted.points <= 0 and (posted.points == -n or held < n)
        else:
            assert posted.points == -n
        self.balance[applied.account] += posted.points
        assert posted.balance == self.balance[applied.account]
        return Applied(posted.txn_id, "reverse", applied.account, n, key, original=applied.txn_id)

    @rule(batch=st.sampled_from([1, 2, 50_000]))
    def expire(self, batch: int) -> None:
        due = {a: self.due(a) for a in ACCOUNTS}
        lots = sum(1 for a in ACCOUNTS for _, e, _ in self.lots(a) if e is not None and e <= self.now)
        run = do_expire(self.store, CODE, at=self.now, batch=batch)
        assert (run.accounts, run.points, run.lots) == (sum(1 for d in due.values() if d), sum(due.values()), lots)
        for a in ACCOUNTS:
            self.balance[a] -= due[a]
            assert self.due(a) == 0
        # running it again at the same instant finds nothing and changes nothing
        before = self.read()
        assert do_expire(self.store, CODE, at=self.now, batch=batch) == type(run)(0, 0, 0)
        self.unchanged(before)

    @rule(applied=txns)
    def replay(self, applied: Applied) -> None:
        """A request re-sent with its key is answered from the ledger and changes nothing."""
        before = self.read()
        with self.store.write_unit() as session:
            posted = self._send(session, applied)
        assert posted.replayed and posted.txn_id == applied.txn_id
        self.unchanged(before)

    def _send(self, session: Session, a: Applied) -> Posted:
        p, at = self.program, self.now
        if a.kind == "earn":
            return do_earn(session, p, a.account, a.points, key=a.key, at=at, actor="t")
        if a.kind == "redeem":
            return do_redeem(session, p, a.account, a.points, key=a.key, at=at, actor="t")
        if a.kind == "adjust":
            return do_adjust(session, p, a.account, a.points, key=a.key, at=at, actor="t", reason="fix")
        assert a.original is not None
        return do_reverse(session, p, a.original, key=a.key, at=at, actor="t", points=a.points)

    # -- reverse ∘ apply = identity ---------------------------------------------------------------

    @rule(
        account=st.sampled_from(ACCOUNTS),
        kind=st.sampled_from(["earn", "redeem", "adjust+", "adjust-"]),
        points=st.integers(1, 300),
        parts=st.lists(st.integers(1, 300), max_size=2),
    )
    def apply_then_reverse(self, account: int, kind: str, points: int, parts: list[int]) -> None:
        self.expire(50_000)  # so the apply below has nothing due to expire on the way
        before = self.read()
        key = self.key("apply")
        try:
            with self.store.write_unit() as session:
                if kind == "earn":
                    posted = do_earn(session, self.program, account, points, key=key, at=self.now, actor="t")
                elif kind == "redeem":
                    posted = do_redeem(session, self.program, account, points, key=key, at=self.now, actor="t")
                else:
                    signed = points if kind == "adjust+" else -points
                    posted = do_adjust(
                        session, self.program, account, signed, key=key, at=self.now, actor="t", reason="fix"
                    )
        except InsufficientPointsError:
            self.unchanged(before)
            return
        left = points
        for part in [*parts, points]:
            n = min(part, left)
            if n == 0:
                break
            with self.store.write_unit() as session:
                do_reverse(session, self.program, posted.txn_id, key=self.key("undo"), at=self.now, actor="t", points=n)
            left -= n
        after = self.read()
        assert after.accounts == before.accounts, f"{kind} {points} then reversed: balance or debt changed"
        assert {i: after.lots[i] for i in before.lots} == before.lots, f"{kind} {points} then reversed: lots changed"
        assert all(after.lots[i] == 0 for i in after.lots.keys() - before.lots.keys())

    # -- after every step -------------------------------------------------------------------------

    @invariant()
    def ledger_invariants(self) -> None:
        ledger = check_ledger(self.store.engine)
        assert_append_only(self.ledger, ledger)
        assert {a: b for a, (b, _) in ledger.accounts.items()} == self.balance
        self.ledger = ledger


@pytest.fixture(scope="module", autouse=True)
def _template() -> Iterator[None]:
    directory = Path(tempfile.mkdtemp(prefix="ledger-template-"))
    LedgerMachine.template = make_template(directory)
    yield
    shutil.rmtree(directory, ignore_errors=True)


LedgerMachine.TestCase.settings = settings(
    max_examples=60,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestLedger = LedgerMachine.TestCase


def test_reversing_an_earning_that_paid_a_debt_owes_it_again(tmp_path: Path) -> None:
    """Earn 100, spend it, reverse the earning (policy `negative`: 100 owed), cancel the spend (the
    lot holds 100 again, still 100 owed). Earning 40 now pays 40 of the debt; reversing those 40
    must owe them again, not take 40 from the other lot: apply then reverse is the identity."""
    machine_dir = tmp_path
    shutil.copy(LedgerMachine.template, machine_dir / "store.db")
    store = Store(make_engine(f"sqlite:///{machine_dir / 'store.db'}"))
    with store.unit_of_work() as session:
        program = load_program(session, CODE)
    at = START

    def run(fn: Callable[[Session], Posted]) -> Posted:
        with store.write_unit() as session:
            return fn(session)

    earned = run(lambda s: do_earn(s, program, 1, 100, key="e1", at=at, actor="t"))
    spent = run(lambda s: do_redeem(s, program, 1, 100, key="r1", at=at, actor="t"))
    run(lambda s: do_reverse(s, program, earned.txn_id, key="x1", at=at, actor="t"))
    run(lambda s: do_reverse(s, program, spent.txn_id, key="x2", at=at, actor="t"))
    before = check_ledger(store.engine)
    assert before.accounts[1] == (0, 100) and sorted(before.lots.values()) == [100]
    paid = run(lambda s: do_earn(s, program, 1, 40, key="e2", at=at, actor="t"))
    assert paid.balance == 40 and check_ledger(store.engine).accounts[1] == (40, 60)
    undone = run(lambda s: do_reverse(s, program, paid.txn_id, key="x3", at=at, actor="t", points=15))
    assert undone.points == -15 and check_ledger(store.engine).accounts[1] == (25, 75)
    run(lambda s: do_reverse(s, program, paid.txn_id, key="x4", at=at, actor="t"))
    after = check_ledger(store.engine)
    assert after.accounts == before.accounts
    assert {i: after.lots[i] for i in before.lots} == before.lots
    store.engine.dispose()


def test_points_given_back_to_an_expired_lot_expire_again_at_the_same_instant(tmp_path: Path) -> None:
    """A redemption reversed after its lot expired gives the points back to that lot: they are due
    at once. Expiring them again at the same instant — by the nightly run or on the way of a
    redemption — must not collide with the key of the first expiry."""
    shutil.copy(LedgerMachine.template, tmp_path / "store.db")
    store = Store(make_engine(f"sqlite:///{tmp_path / 'store.db'}"))
    with store.unit_of_work() as session:
        program = load_program(session, CODE)
    at, due = START, START + dt.timedelta(days=10)
    later = due + dt.timedelta(hours=1)

    def run(fn: Callable[[Session], Posted]) -> Posted:
        with store.write_unit() as session:
            return fn(session)

    spent = {}
    for a in ACCOUNTS:  # lot A: 100 due at `due`, lot B: 50 by policy; 30 spent from A
        run(lambda s, a=a: do_earn(s, program, a, 100, key=f"a{a}", at=at, actor="t", expires_at=due))
        run(lambda s, a=a: do_earn(s, program, a, 50, key=f"b{a}", at=at, actor="t"))
        spent[a] = run(lambda s, a=a: do_redeem(s, program, a, 30, key=f"r{a}", at=at, actor="t")).txn_id
    assert do_expire(store, CODE, at=later).points == 140
    run(lambda s: do_reverse(s, program, spent[1], key="x1", at=later, actor="t"))  # A of 1 holds 30, due
    run(lambda s: do_reverse(s, program, spent[2], key="x2", at=later, actor="t", points=10))  # A of 2: 10
    # account 2: a redemption expires A on the way, twice at the same instant
    assert run(lambda s: do_redeem(s, program, 2, 5, key="r2b", at=later, actor="t")).balance == 45
    assert run(lambda s: do_reverse(s, program, spent[2], key="x2b", at=later, actor="t")).balance == 65
    assert run(lambda s: do_redeem(s, program, 2, 5, key="r2c", at=later, actor="t")).balance == 40
    # account 1: the nightly run again at the same instant
    assert do_expire(store, CODE, at=later).points == 30
    ledger = check_ledger(store.engine)
    assert ledger.accounts == {1: (50, 0), 2: (40, 0)}
    assert sum(1 for t in ledger.txns if t[3] == "expire") == 5
    store.engine.dispose()
