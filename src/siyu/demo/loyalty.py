"""The demo's loyalty program (演示会员中台): the group program `demo_club` over brands `demo` and
`demo_b`, run the way a brand would: apply the YAML, migrate members and opening balances, post
the orders, issue coupons, redeem in the mall, expire, evaluate tiers."""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import case, func, literal, select

from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.identity.service import MAP_TABLE
from siyu.loyalty.coupons import do_issue_bulk
from siyu.loyalty.errors import LoyaltyError
from siyu.loyalty.expiry import do_expire
from siyu.loyalty.mall import do_mall_cancel, do_mall_redeem
from siyu.loyalty.migrate import Migration, import_opening_balances
from siyu.loyalty.models import AccountLink, LoyaltyAccount, PointsTxn
from siyu.loyalty.programs import do_apply_program, load_program
from siyu.loyalty.settlement import settlement
from siyu.loyalty.sync import enrol_only, sync
from siyu.loyalty.tiers import evaluate
from siyu.messaging.consent import ConsentChange, do_record_consents

PROGRAM = "demo_club"
ACTOR = "demo"


def program_file() -> Path:
    return Path(str(resources.files("siyu.loyalty") / "examples" / "demo_group.yaml"))


def _sharing_consents(app: App, at: dt.datetime) -> int:
    """Four in five demo_b customers agreed, at the group club's sign-up, to share their data with
    the group's other brand (`cross_brand_sharing`); the rest did not, so their demo_b membership
    stays an account of its own (siyu.loyalty.sharing)."""
    ids = app.engine.table(MAP_TABLE)
    if ids is None:
        return 0
    found = app.engine.to_arrow(ids.filter(ids.brand == "demo_b").select("customer_id").distinct())
    evidence = {"form": "group club sign-up 集团会员注册"}
    changes = [
        ConsentChange("demo_b", c, "cross_brand_sharing", True, "api", evidence, at=at, source_key=f"demo:share:{c}")
        for c in sorted(found["customer_id"].to_pylist())
        if zlib.crc32(c.encode()) % 5
    ]
    with app.store.begin(Actor.system(ACTOR)) as uow:
        return do_record_consents(uow, changes)


def run(app: App, end: dt.date, step: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Run the demo program up to the day after `end` (the data's last day); returns its numbers."""
    at = dt.datetime(end.year, end.month, end.day, 16, tzinfo=dt.UTC)  # next local midnight
    do_apply_program(app.store, program_file(), actor=ACTOR, at=at)
    with app.store.unit_of_work() as session:
        program = load_program(session, PROGRAM)
    step("enrol 入会")
    _sharing_consents(app, at)
    enrolled = enrol_only(app, PROGRAM, actor=ACTOR, at=at)
    assert program.start is not None
    launch = dt.datetime(program.start.year, program.start.month, program.start.day, tzinfo=dt.UTC) - dt.timedelta(
        hours=8
    )
    migration = Migration()
    import_opening_balances(app, PROGRAM, at=launch, actor=ACTOR, skip=set(), result=migration)
    step("orders 订单积分")
    synced = sync(app, PROGRAM, at=at, actor=ACTOR)
    step("coupons 发券")
    with app.store.unit_of_work() as session:
        accounts = list(
            session.execute(
                select(LoyaltyAccount.id, LoyaltyAccount.brand, LoyaltyAccount.enrol_store, LoyaltyAccount.balance)
                .where(LoyaltyAccount.program == PROGRAM)
                .order_by(LoyaltyAccount.id)
            )
            .tuples()
            .all()
        )
    welcome = [a for a, brand, _, _ in accounts if brand == "demo_b"]
    east = [a for a, _, store, _ in accounts if store in program.stores]
    issued = do_issue_bulk(app.store, PROGRAM, "welcome20", welcome, key="demo-welcome", at=at, actor=ACTOR)
    issued_east = do_issue_bulk(app.store, PROGRAM, "east_store50", east, key="demo-east", at=at, actor=ACTOR)
    step("mall 积分商城")
    richest = sorted(accounts, key=lambda a: -a[3])[:30]
    mall_orders = []
    with app.store.write_unit() as session:
        for account_id, *_ in richest:
            try:
                with session.begin_nested():
                    mall_orders.append(
                        do_mall_redeem(
                            session, program, "mug", account_id, key=f"demo-mug-{account_id}", at=at, actor=ACTOR
                        )
                    )
            except LoyaltyError:
                continue
        if mall_orders:
            do_mall_cancel(session, program, mall_orders[0].id, at=at, actor=ACTOR)
    step("expiry 过期")
    expired = do_expire(app.store, PROGRAM, at=at, actor=ACTOR)
    tiers = evaluate(app, PROGRAM, at=at, actor=ACTOR)
    with app.store.unit_of_work() as session:
        by_tier = dict(
            session.execute(
                select(LoyaltyAccount.tier, func.count())
                .where(LoyaltyAccount.program == PROGRAM)
                .group_by(LoyaltyAccount.tier)
            )
            .tuples()
            .all()
        )
        outstanding = session.scalar(
            select(func.coalesce(func.sum(LoyaltyAccount.balance), 0)).where(LoyaltyAccount.program == PROGRAM)
        )
        txns = session.scalar(select(func.count()).select_from(PointsTxn).where(PointsTxn.program == PROGRAM))
        # The ledger by kind: opening lots (migration) + earn + redeem + reverse + expire + adjust
        # adds up to the outstanding balance exactly.
        opening = PointsTxn.idempotency_key.startswith("migration:")
        kind = case((opening, literal("opening")), else_=PointsTxn.kind)
        by_kind: dict[str, int] = dict(
            session.execute(select(kind, func.sum(PointsTxn.points)).where(PointsTxn.program == PROGRAM).group_by(kind))
            .tuples()
            .all()
        )
        cross = settlement(session, PROGRAM)
        per_account = (
            select(AccountLink.account_id)
            .where(AccountLink.program == PROGRAM)
            .group_by(AccountLink.account_id)
            .having(func.count(func.distinct(AccountLink.brand)) > 1)
            .subquery()
        )
        shared = int(session.scalar(select(func.count()).select_from(per_account)) or 0)
    return {
        "program": PROGRAM,
        "members": enrolled,
        "cross_brand_members": shared,
        "orders_posted": synced.orders,
        "ledger": {k: int(by_kind.get(k) or 0) for k in ("opening", "earn", "redeem", "reverse", "expire", "adjust")},
        "coupons_issued": issued.issued + issued_east.issued,
        "mall_redemptions": len(mall_orders),
        "expired_accounts": expired.accounts,
        "tiers": {t.code: by_tier.get(t.code, 0) for t in program.tiers.levels},
        "tier_changes": {"upgraded": synced.upgraded + tiers.upgraded, "downgraded": tiers.downgraded},
        "points_outstanding": int(outstanding or 0),
        "ledger_transactions": int(txns or 0),
        "settlement": [
            {"earned_brand": x.earned_brand, "spent_brand": x.spent_brand, "points": x.points, "value_fen": x.value_fen}
            for x in cross
        ],
    }
