"""`siyu loyalty sync`: bring a program up to date with the lake, exactly once.

1. Enrol: canonical `memberships` rows of the program (and its `membership_programs`) become
   accounts (tier by code or name, enrol store/guide, birthday month from the customer record);
   with the `first_order` trigger, customers with a paid order enrol at their first payment; with
   `wecom_friend` / `follow`, at their first such relation.
2. Post: every paid order of a linked member earns points (base × tier × birthday-month
   multiplier + campaign bonus), redeems the points it used, redeems its coupon, and a refund
   reverses earned points in proportion and restores redeemed ones; a full refund voids the
   order's coupons. Each posting has an idempotency key derived from the order, so re-running
   after a crash or an import that changed nothing posts nothing twice.
3. Upgrade the tiers of the accounts that moved (downgrades wait for `siyu loyalty tiers evaluate`).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import ibis
import ibis.expr.types as ir
import pyarrow as pa
from sqlalchemy import select

from siyu.bootstrap import App
from siyu.core.clock import utc_now
from siyu.events.catalogue import PointsChanged
from siyu.events.outbox import append
from siyu.identity.service import MAP_TABLE, identifiers
from siyu.ingest.schema import PAID_STATUSES
from siyu.ingest.views import current
from siyu.loyalty import points
from siyu.loyalty.accounts import utc
from siyu.loyalty.earn import order_actions
from siyu.loyalty.earning import order_earning
from siyu.loyalty.enrolment import bulk_enrol
from siyu.loyalty.errors import LoyaltyError
from siyu.loyalty.linked import links_table
from siyu.loyalty.lots import proportional
from siyu.loyalty.models import LoyaltyAccount, LoyaltyProgram, OrderPosting, PointsTxn
from siyu.loyalty.program import Program
from siyu.loyalty.programs import load_program
from siyu.loyalty.sharing import sharing_customers
from siyu.loyalty.tiers import evaluate

NODE = ["brand", "source", "source_customer_id"]
CHUNK = 500
# Enrolment triggers on relations: becoming a WeCom friend, or following the brand somewhere.
RELATION_TRIGGERS = {
    "wecom_friend": ("wecom_friend",),
    "follow": ("follow_store", "follow_live", "official_account_follow", "fan"),
}


@dataclass
class SyncResult:
    enrolled: int = 0
    orders: int = 0
    earned: int = 0
    redeemed: int = 0
    reversed: int = 0
    coupons: int = 0
    upgraded: int = 0
    problems: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "enrolled": self.enrolled,
            "orders": self.orders,
            "points_earned": self.earned,
            "points_redeemed": self.redeemed,
            "points_reversed": self.reversed,
            "coupons_redeemed": self.coupons,
            "tiers_upgraded": self.upgraded,
            "problems": dict(self.problems),
        }


def _candidates(app: App, program: Program, linked: pa.Table) -> pa.Table:
    """brand, customer_id, member_no, tier, joined_at, store, guide, birthday_month, via — people
    to enrol, one row per brand customer not in `linked` yet (the earliest membership or first
    order wins)."""
    id_map = app.engine.table(MAP_TABLE)
    if id_map is None:
        return pa.table({})
    ids = id_map.select(*NODE, "customer_id")
    parts = []
    members = current(app, "memberships")
    if members is not None and "membership" in program.enrolment:
        names = (program.program, *program.membership_programs)
        m = members.filter(members.brand.isin(program.brands), members.program.isin(names), members.left_at.isnull())
        m = m.join(ids, NODE)
        parts.append(
            m.select(
                "brand",
                "customer_id",
                member_no=m.member_no,
                tier=m.tier,
                joined_at=m.joined_at,
                store=m.enrol_store,
                guide=m.enrol_guide,
                via=ibis.literal("membership"),
                _order=ibis.literal(0),
            )
        )
    orders = current(app, "orders")
    if orders is not None and "first_order" in program.enrolment:
        o = orders.filter(
            orders.brand.isin(program.brands), orders.status.isin(PAID_STATUSES), orders.paid_at.notnull()
        )
        o = o.join(ids, NODE).group_by(["brand", "customer_id"]).aggregate(joined_at=o.paid_at.min())
        parts.append(
            o.select(
                "brand",
                "customer_id",
                member_no=ibis.null("string"),
                tier=ibis.null("string"),
                joined_at="joined_at",
                store=ibis.null("string"),
                guide=ibis.null("string"),
                via=ibis.literal("first_order"),
                _order=ibis.literal(1),
            )
        )
    relations = current(app, "relations")
    for trigger, types in RELATION_TRIGGERS.items():
        if relations is None or trigger not in program.enrolment:
            continue
        r = relations.filter(relations.brand.isin(program.brands), relations.relation_type.isin(types))
        r = r.join(ids, NODE).group_by(["brand", "customer_id"]).aggregate(joined_at=r.started_at.min())
        parts.append(
            r.select(
                "brand",
                "customer_id",
                member_no=ibis.null("string"),
                tier=ibis.null("string"),
                joined_at="joined_at",
                store=ibis.null("string"),
                guide=ibis.null("string"),
                via=ibis.literal(trigger),
                _order=ibis.literal(2),
            )
        )
    if not parts:
        return pa.table({})
    union = functools.reduce(lambda a, b: a.union(b), parts)
    ranked = union.mutate(
        _rank=ibis.row_number().over(group_by=["brand", "customer_id"], order_by=["_order", "joined_at"])
    )
    people = ranked.filter(ranked._rank == 0).drop("_rank", "_order")
    known = ibis.memtable(linked.select(["brand", "customer_id"]))
    try:
        found = app.engine.to_arrow(people.anti_join(known, ["brand", "customer_id"]).select("brand", "customer_id"))
    finally:
        app.engine.release(known)
    if found.num_rows == 0:  # the usual sync: skip the identifier and birthday work over everyone
        return pa.table({})
    with sharing_customers(app, program.brands) as sharing:
        return _enrolling(app, program, people, ids, found, sharing)


def _enrolling(
    app: App, program: Program, people: ir.Table, ids: ir.Table, found: pa.Table, sharing: ir.Table
) -> pa.Table:
    """The rows of `_candidates` for the customers in `found`."""
    new = ibis.memtable(found)
    if len(program.brands) > 1:
        people = _shared_member_no(app, people, ids, sharing)
    customers = current(app, "customers")
    if customers is not None:
        born = customers.join(ids, NODE).group_by(["brand", "customer_id"]).aggregate(birthday=customers.birthday.max())
        people = people.left_join(born, ["brand", "customer_id"]).drop("brand_right", "customer_id_right")
        people = people.mutate(birthday_month=people.birthday.month())
    else:
        people = people.mutate(birthday_month=ibis.null("int32"))
    people = people.semi_join(new, ["brand", "customer_id"])  # anchors above came from everyone
    try:
        return app.engine.to_arrow(
            people.select(
                "brand", "customer_id", "member_no", "tier", "joined_at", "store", "guide", "via", "birthday_month"
            ).order_by(["joined_at", "brand", "customer_id"])
        )
    finally:
        app.engine.release(new)


def _shared_member_no(app: App, people: ir.Table, ids: ir.Table, sharing: ir.Table) -> ir.Table:
    """In a group program one person is one member across brands (积分互通): customers of
    different brands with the same phone share the member number of the earliest-joined of them,
    when they share their data across brands (`sharing`: brand, customer_id; siyu.loyalty.sharing)."""
    found = identifiers(app)
    phones = (
        found.filter(found.id_type == "phone")
        .join(ids, NODE)
        .group_by(["brand", "customer_id"])
        .aggregate(phone=found.id_value.min())
    )
    people = people.left_join(phones, ["brand", "customer_id"]).drop("brand_right", "customer_id_right")
    holders = people.filter(people.phone.notnull() & people.member_no.notnull())
    holders = holders.mutate(
        _first=ibis.row_number().over(group_by="phone", order_by=[holders.joined_at, holders.brand, holders.member_no])
    )
    anchors = holders.filter(holders._first == 0).select("phone", anchor_no=holders.member_no, anchor_brand="brand")
    people = people.left_join(anchors, "phone").drop("phone_right")
    # Joining the account of another brand's customer uses this brand's data there: only with the
    # person's `cross_brand_sharing` at this brand (siyu.loyalty.sharing); else their own account.
    shares = sharing.mutate(_shares=ibis.literal(True))
    people = people.left_join(shares, ["brand", "customer_id"]).drop("brand_right", "customer_id_right")
    people = people.mutate(_shares=people._shares.fill_null(False))
    joins = people.anchor_no.notnull() & ((people.anchor_brand == people.brand) | people._shares)
    return people.mutate(member_no=ibis.ifelse(joins, people.anchor_no, people.member_no)).drop(
        "anchor_no", "anchor_brand", "phone", "_shares"
    )


def _enrol(
    app: App, program: Program, actor: str, result: SyncResult, progress: Callable[[str], None], at: dt.datetime
) -> pa.Table:
    """Enrol the new candidates; returns the program's links afterwards (see `links_table`)."""
    with app.store.unit_of_work() as session:
        linked = links_table(session, program.program)
    people = _candidates(app, program, linked)
    if people.num_rows == 0:
        return linked
    rows = people.to_pylist()
    unknown: Counter[str] = Counter()
    for r in rows:
        tier = program.tier_named(r["tier"])
        if r["tier"] and tier is None:
            unknown[r["tier"]] += 1
        r["tier"] = tier.code if tier else None
        r["joined_at"] = utc(r["joined_at"]) if r["joined_at"] else None
    for name, n in unknown.items():
        result.problems[f"unknown tier {name!r} (enrolled in the lowest tier)"] += n
    step = 5000
    for start in range(0, len(rows), step):
        with app.store.write_unit() as session:
            result.enrolled += bulk_enrol(session, program, rows[start : start + step], actor=actor, at=at)
        progress(f"enrolled {min(start + step, len(rows))}/{len(rows)}")
    with app.store.unit_of_work() as session:
        return links_table(session, program.program)


def _post_order(session: Any, program: Program, row: dict[str, Any], actor: str, result: SyncResult) -> None:
    key = row["key"]
    account = session.get(LoyaltyAccount, row["account_id"])
    at = utc(row["paid_at"])
    where = {"brand": row["brand"], "channel": row["source"], "order_id": row["order_id"]}
    issues: list[str] = []
    if row["post_order"]:
        if row["points_used"] > 0:
            try:
                with session.begin_nested():
                    points.do_redeem(
                        session,
                        program,
                        account.id,
                        int(row["points_used"]),
                        key=f"{key}:redeem",
                        at=at,
                        actor=actor,
                        reason="points used in order 订单抵扣",
                        **where,
                    )
                result.redeemed += int(row["points_used"])
            except LoyaltyError as e:
                result.problems[e.code] += 1
                issues.append(f"{e.code}: {e.message}")
        if row["coupon_code"]:
            from siyu.loyalty import coupons

            try:
                with session.begin_nested():
                    coupons.do_redeem_coupon(
                        session,
                        program,
                        row["coupon_code"],
                        order_id=row["order_id"],
                        brand=row["brand"],
                        channel=row["source"],
                        store=row["store_code"],
                        amount_fen=int(row["amount_fen"]),
                        at=at,
                        actor=actor,
                    )
                result.coupons += 1
            except LoyaltyError as e:
                result.problems[f"coupon: {e.code}"] += 1
                issues.append(f"coupon {row['coupon_code']}: {e.code}: {e.message}")
        tier = program.tier(account.tier)
        local_month = at.astimezone(ZoneInfo(program.timezone)).month
        birthday = bool(account.birthday_month) and account.birthday_month == local_month
        earning = order_earning(
            int(row["amount_fen"]),
            per_yuan=program.points.per_yuan,
            rule_multiplier=Fraction(int(row["rule_mult_num"]), int(row["rule_mult_den"])),
            tier_multiplier=tier.points_multiplier if tier else Fraction(1),
            birthday_multiplier=program.points.birthday_multiplier if birthday else Fraction(1),
            bonus=int(row["bonus"]),
        )
        earned = earning.points
        if earned > 0:
            reason = earning.reason()
            points.do_earn(session, program, account.id, earned, key=key, at=at, actor=actor, reason=reason, **where)
            result.earned += earned
        session.add(
            OrderPosting(
                program=program.program,
                key=key,
                account_id=account.id,
                points=earned,
                posted_at=at,
                problem="; ".join(issues) or None,
            )
        )
        result.orders += 1
    if row["post_refund"]:
        _refund(session, program, row, key, at, actor, result)


def _refund(
    session: Any, program: Program, row: dict[str, Any], key: str, at: dt.datetime, actor: str, result: SyncResult
) -> None:
    """Reverse earned points in proportion to the refund, restore used points likewise; the key
    carries the refunded amount so a later, larger refund reverses only the difference."""
    refund, amount = int(row["refund_fen"]), int(row["amount_fen"])
    txns = {
        t.idempotency_key: t
        for t in session.scalars(
            select(PointsTxn).where(
                PointsTxn.program == program.program, PointsTxn.idempotency_key.in_([key, f"{key}:redeem"])
            )
        )
    }
    reversed_now = 0
    issues: list[str] = []
    for original, label in ((txns.get(key), "earn"), (txns.get(f"{key}:redeem"), "redeem")):
        if original is None:
            continue
        target = proportional(abs(original.points), refund, amount)
        delta = target - points.reversed_so_far(session, original.id)
        if delta <= 0:
            continue
        try:
            with session.begin_nested():
                points.do_reverse(
                    session,
                    program,
                    original.id,
                    key=f"{key}:refund:{refund}:{label}",
                    at=at,
                    actor=actor,
                    points=delta,
                    reason=f"refund 退款 {refund}/{amount} fen",
                )
            result.reversed += delta
            reversed_now += delta
        except LoyaltyError as e:
            result.problems[f"refund: {e.code}"] += 1
            issues.append(f"refund {label}: {e.code}: {e.message}")
    if refund >= amount:
        from siyu.loyalty import coupons

        coupons.void_for_refund(session, program, row["order_id"], at=at, actor=actor)
    # This refund amount is handled, even when nothing needed reversing.
    session.add(
        OrderPosting(
            program=program.program,
            key=f"{key}:refund:{refund}",
            account_id=row["account_id"],
            points=-reversed_now,
            posted_at=at,
            problem="; ".join(issues) or None,
        )
    )


def enrol_only(app: App, program_code: str, *, actor: str = "system", at: dt.datetime | None = None) -> int:
    """Step 1 of the sync alone (the migration enrols before loading balances)."""
    result = SyncResult()
    with app.store.unit_of_work() as session:
        program = load_program(session, program_code)
    _enrol(app, program, actor, result, lambda _: None, at or utc_now())
    return result.enrolled


def sync(
    app: App,
    program_code: str,
    *,
    at: dt.datetime | None = None,
    actor: str = "system",
    progress: Callable[[str], None] = lambda _: None,
) -> SyncResult:
    """Enrol, post new orders and refunds, upgrade tiers (see the module docstring)."""
    result = SyncResult()
    with app.store.unit_of_work() as session:
        program = load_program(session, program_code)
    links = _enrol(app, program, actor, result, progress, at or utc_now())
    with app.store.unit_of_work() as session:
        done = session.scalars(select(OrderPosting.key).where(OrderPosting.program == program_code)).all()
    actions = order_actions(app, program, links, pa.table({"key": pa.array(done, pa.string())}), until=at)
    del done
    rows = actions.to_pylist()
    touched: set[int] = set()
    for start in range(0, len(rows), CHUNK):
        with app.store.write_unit() as session:  # one chunk = one unit: postings + their event
            chunk = rows[start : start + CHUNK]
            for row in chunk:
                _post_order(session, program, row, actor, result)
                touched.add(row["account_id"])
            accounts = tuple(sorted({row["account_id"] for row in chunk}))
            brand = program.brands[0] if len(program.brands) == 1 else None
            append(session, PointsChanged(brand, program.program, accounts, "sync"), at=utc_now(), request_id=None)
        progress(f"posted {min(start + CHUNK, len(rows))}/{len(rows)} orders")
    if touched:
        now = at or dt.datetime.now(dt.UTC)
        run = evaluate(app, program_code, at=now, actor=actor, downgrade=False, account_ids=touched)
        result.upgraded = run.upgraded
    return result


def sync_all(app: App, *, actor: str = "system") -> dict[str, SyncResult]:
    """Sync every program (after One-ID ran: `siyu resolve` and the API loader call this, so
    imported and ingested orders reach the ledger without a separate step)."""
    with app.store.unit_of_work() as session:
        codes = list(session.scalars(select(LoyaltyProgram.code).order_by(LoyaltyProgram.code)))
    return {code: sync(app, code, actor=actor) for code in codes}
