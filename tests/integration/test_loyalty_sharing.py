"""Group loyalty respects `cross_brand_sharing` (siyu.loyalty.sharing). SQLite only: the ledger's
PostgreSQL read (aware timestamps) is exercised by test_loyalty_sync's PostgreSQL run, whose P
shares through the same records.

The hand-made group of tests/fixtures/loyalty_brand.py plus one more person, U, in both brands:

U  u1 (la) and u2 (lb), same phone 13900000006; LA004 joined 2026-01-05, LB004 joined 2026-01-06.
   UA la 2026-02-10 12:00 local: 10,000 fen 洁面 → 100 points; UB lb 2026-02-11 12:00: 10,000 精华 → 100.
   u2 never granted `cross_brand_sharing` at lb → u2 is not joined to LA004 (the phone is not
   used across brands): two accounts, LA004 (la) and LB004 (lb), each earning its own brand's order.
P  p2 granted it at lb (`build` records it) → one account LA001 for la and lb; B1 (lb) earns in it.
   Qualifying growth of LA001 as of SYNC_AT (12 months since enrolment, the program's launch
   day does not apply): A0 10,000 + A1 30,000 + B1 net 15,000 fen → 550.
   After p2 withdraws: 400 (la only); a new lb order B2 (10,000 fen) earns nothing in LA001.
   Granted again: B2 earns 100 on the next sync, growth 400 + 150 + 100 = 650.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from fixtures.loyalty_brand import SYNC_AT, backend_url, build, reimport, share
from siyu.bootstrap import App
from siyu.loyalty.linked import links_table
from siyu.loyalty.models import AccountLink, LoyaltyAccount, OrderPosting
from siyu.loyalty.programs import load_program
from siyu.loyalty.sync import sync
from siyu.loyalty.tiers import qualifying_values

U_ROWS = {  # appended to the fixture's files
    "customers.csv": """la,crm,u1,13900000006,
lb,crm,u2,13900000006,
""",
    "memberships.csv": """la,crm,LA004,u1,la_club,2026-01-05T10:00:00+08:00,,,
lb,crm,LB004,u2,lb_club,2026-01-06T10:00:00+08:00,,,
""",
    "orders.csv": """la,crm,UA,u1,completed,2026-02-10T12:00:00+08:00,10000,0,
lb,crm,UB,u2,completed,2026-02-11T12:00:00+08:00,10000,0,
""",
    "order_items.csv": """la,crm,UA,1,CL-1,CL,洁面,1,10000,10000
lb,crm,UB,1,SE-1,SE,精华,1,10000,10000
""",
}
B2 = """brand,source,order_id,source_customer_id,status,paid_at,amount_fen,refund_fen,points_used
lb,crm,B2,p2,completed,2026-04-10T10:00:00+08:00,10000,0,
"""


@pytest.fixture(scope="module", params=["sqlite"])
def group(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[App, Path]]:
    root = tmp_path_factory.mktemp(f"share_{request.param}")
    with backend_url(request.param, root) as url:
        app = build(root, url, extra=U_ROWS)
        sync(app, "lg_club", at=SYNC_AT, actor="test")
        yield app, root
        app.store.engine.dispose()


def _accounts(app: App) -> dict[str, tuple[int, list[str], int]]:
    """member_no → (account id, brands linked, balance)."""
    with app.store.unit_of_work() as s:
        rows = s.execute(select(LoyaltyAccount.member_no, LoyaltyAccount.id, LoyaltyAccount.balance)).all()
        links = s.execute(select(AccountLink.account_id, AccountLink.brand)).all()
    return {no: (i, sorted(b for a, b in links if a == i), bal) for no, i, bal in rows}


def _growth(app: App) -> dict[str, int]:
    with app.store.unit_of_work() as s:
        program = load_program(s, "lg_club")
        links = links_table(s, "lg_club")
    values = qualifying_values(app, program, links, SYNC_AT)
    return {no: values.get(i, 0) for no, (i, _, _) in _accounts(app).items()}


def test_sharing_joins_accounts_and_earns_across_brands_only_with_consent(group: tuple[App, Path]) -> None:
    app, _ = group
    found = _accounts(app)
    # P shares: one account for both brands (balance 425 worked out in test_loyalty_sync)
    assert found["LA001"][1:] == (["la", "lb"], 425)
    assert "LB001" not in found
    # U does not: u2's phone does not join them to LA004; each brand's order earns in its own account
    assert found["LA004"][1:] == (["la"], 100)
    assert found["LB004"][1:] == (["lb"], 100)
    growth = _growth(app)
    assert (growth["LA001"], growth["LA004"], growth["LB004"]) == (550, 100, 100)


def test_withdrawal_takes_effect_on_the_next_evaluation(group: tuple[App, Path]) -> None:
    app, root = group
    share(app, "lb", "p2", granted=False)
    # the tier's qualifying value leaves B1 out at once: la's A0 and A1 only
    assert _growth(app)["LA001"] == 400
    reimport(app, root / "b2", B2)
    result = sync(app, "lg_club", at=SYNC_AT, actor="test")
    assert result.orders == 0 and result.earned == 0
    with app.store.unit_of_work() as s:
        assert s.scalar(select(OrderPosting.key).where(OrderPosting.key == "order:lb:crm:B2")) is None
    assert _accounts(app)["LA001"][2] == 425  # what was earned before the withdrawal stays
    share(app, "lb", "p2", granted=True)  # granted again: B2 earns 100 on the next sync
    assert sync(app, "lg_club", at=SYNC_AT, actor="test").earned == 100
    assert _growth(app)["LA001"] == 650
