"""Binding modes, locks, release and re-add, manual bindings and sales credit, on hand-worked
timelines (January 2024; locks: add 10 days, share visit 20, purchase 30)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from fixtures.guides_world import RELATIONS, World, customer_ids, day, iso, rules_yaml
from siyu.bootstrap import App, bootstrap
from siyu.config import Settings
from siyu.core.actor import Actor
from siyu.events.outbox import StoredEvent, after
from siyu.guides.bindings import HISTORY_TABLE, current_guide, do_bind_manually, run_binding
from siyu.guides.credit import credited, paid_orders
from siyu.guides.handlers import guide_binding
from siyu.guides.rulebook import do_apply_rules, rules_in_force
from siyu.ingest.importer import import_path

MODES = {"ff": "first_friend", "ps": "first_friend_per_store", "ef": "every_friend", "ex": "every_friend"}
COMMISSION = "[{category: '*', tiers: [{from_fen: 0, rate_bp: 100}, {from_fen: 4000, rate_bp: 300}]}]"
CREDITS = {"cn": "none", "cb": "bound_guide", "co": "order_guide"}


def build(world: World) -> None:
    w = world
    for b in (*MODES, *CREDITS, "hx", "ls"):
        w.brand(b)
    # -- ff: first friend overall ---------------------------------------------------------------
    for c in ("c1", "c2", "c3", "c4"):
        w.customer("ff", c)
    # c1: Jan 1 adds g1 (locked to Jan 11); Jan 5 buys from g2 at s2: locked, stays g1; Jan 15 buys
    # from g2 again: lock ran out, g2 takes over (purchase lock to Feb 14); Jan 20 adds g3: an add
    # never takes a customer from another guide.
    w.friend("ff", "c1", "g1", 1)
    w.order("ff", "ff-o1", "c1", 5, 1000, "s2", "g2")
    w.order("ff", "ff-o2", "c1", 15, 1000, "s2", "g2")
    w.friend("ff", "c1", "g3", 20)
    # c2: Jan 1 adds g1 (lock to Jan 11); Jan 8 visits g1's share page (lock to Jan 28); Jan 20 buys
    # from g2: still locked, stays g1.
    w.friend("ff", "c2", "g1", 1)
    w.share_visit("ff", "ff-e1", "c2", "g1", 8)
    w.order("ff", "ff-o3", "c2", 20, 500, "s2", "g2")
    # c3: adds g1 Jan 1, deletes g1 Jan 10 (released), re-adds g1 Jan 15: bound again from Jan 15.
    w.friend("ff", "c3", "g1", 1, end=10)
    w.friend("ff", "c3", "g1", 15)
    # c4: adds g1 Jan 1; a manual binding to g2 on Jan 3 overrides the lock (test adds it).
    w.friend("ff", "c4", "g1", 1)
    # -- ps: first friend per store: c1 adds g1 (s1) Jan 1, g2 (s2) Jan 2, g1b (s1) Jan 3 -----------
    w.customer("ps", "c1")
    w.friend("ps", "c1", "g1", 1)
    w.friend("ps", "c1", "g2", 2)
    w.friend("ps", "c1", "g1b", 3)
    # -- ef: every friend: c1 adds g1 Jan 1, g2 Jan 2 (deletes g2 Jan 5); buys from g3 at s3 Jan 6 -----
    w.customer("ef", "c1")
    w.friend("ef", "c1", "g1", 1)
    w.friend("ef", "c1", "g2", 2, end=5)
    w.order("ef", "ef-o1", "c1", 6, 800, "s3", "g3")
    # -- ex: exclusive channel codes (every_friend, which would otherwise bind each guide) ---------
    # c1: Jan 1 adds g1 through an exclusive code; Jan 2 adds g2, Jan 6 buys from g3 at s3: neither
    # binds (g1's exclusive friendship lasts). c2: the same add, deletes g1 Jan 4 (the window ends);
    # Jan 5 adds g2: binds. c3: ordinary adds of g1 then g2: both bound (the contrast).
    for c in ("c1", "c2", "c3"):
        w.customer("ex", c)
    w.exclusive_add("ex", "ex-e1", "c1", "g1", 1)
    w.friend("ex", "c1", "g2", 2)
    w.order("ex", "ex-o1", "c1", 6, 800, "s3", "g3")
    w.exclusive_add("ex", "ex-e2", "c2", "g1", 1, end=4)
    w.friend("ex", "c2", "g2", 5)
    w.friend("ex", "c3", "g1", 1)
    w.friend("ex", "c3", "g2", 2)
    # -- hx: bound by the event handler when a new relation lands (the test imports it) -------------
    w.customer("hx", "c1")
    w.friend("hx", "c1", "g1", 1, end=2)
    # -- ls: store by location: c1 next to s1 (and to s9, closed in 2021); c2 in Shenzhen (no store
    # within 10 km); c3 next to s1 but bought at s2 (a purchase says more than a location)
    w.files["stores"].append("ls,s9,Closed,direct,sh,31.231,121.471,2020-01-01T00:00:00Z,2021-01-01T00:00:00Z")
    for c in ("c1", "c2", "c3"):
        w.customer("ls", c)
    w.located("ls", "ls-e1", "c1", 31.231, 121.471, 2)
    w.located("ls", "ls-e2", "c2", 22.54, 114.06, 2)
    w.located("ls", "ls-e3", "c3", 31.231, 121.471, 2)
    w.order("ls", "ls-o1", "c3", 3, 100, "s2")
    # -- sales credit: c1 added g1 (s1) Jan 1; c2 has no guide ------------------------------------
    for b in CREDITS:
        w.customer(b, "c1")
        w.customer(b, "c2")
        w.friend(b, "c1", "g1", 1)
        w.order(b, f"{b}-o1", "c1", 3, 1000, "s2", "g2")  # store order with guide_code (g2 locked out)
        w.order(b, f"{b}-o2", "c1", 4, 2000, "s1")  # store order, no guide_code
        w.order(b, f"{b}-o3", "c1", 5, 3000, source="tmall")  # online order
        w.order(b, f"{b}-o4", "c2", 6, 4000, "s3")  # store order of an unbound customer
    # chats of g1 in co: turn 1 (Jan 2 10:00 in → 10:01 out) 60 s; turn 2 (Jan 3 10:00 in, 10:02 in
    # → 10:05 out) 300 s: median 180 s
    for n, (direction, at) in enumerate(
        (
            ("in", "2024-01-02T10:00:00Z"),
            ("out", "2024-01-02T10:01:00Z"),
            ("in", "2024-01-03T10:00:00Z"),
            ("in", "2024-01-03T10:02:00Z"),
            ("out", "2024-01-03T10:05:00Z"),
        )
    ):
        w.message("co", f"m{n}", "g1", "wm1", direction, at, "可以返现给你" if n == 1 else "好的")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[App, dict[str, dict[str, str]]]]:
    home = tmp_path_factory.mktemp("guides")
    app = bootstrap(Settings(home=home, database_url=f"sqlite:///{home / 'siyu.db'}"))
    w = World()
    build(w)
    w.load(app, home / "import")
    ids = {b: customer_ids(app, b) for b in (*MODES, *CREDITS, "hx", "ls")}
    with app.store.begin(Actor.user("test")) as uow:
        for b, mode in MODES.items():
            do_apply_rules(uow, rules_yaml(b, mode), f"{b}.yaml")
        for b, credit in CREDITS.items():
            do_apply_rules(
                uow, rules_yaml(b, credit=credit, commission=COMMISSION, sensitive_words="[返现, 转账]"), f"{b}.yaml"
            )
        do_apply_rules(uow, rules_yaml("hx"), "hx.yaml")
        do_bind_manually(uow, "ff", ids["ff"]["c4"], "g2", at=day(3))
    for b in (*MODES, *CREDITS, "ls"):
        run_binding(app, b)
    yield app, ids
    app.store.engine.dispose()


def guide(app: App, brand: str, customer: str, store: str | None = None) -> tuple[str, str | None, str] | None:
    with app.store.unit_of_work() as session:
        g = current_guide(session, brand, customer, store)
    return None if g is None else (g.staff_id, g.store_code, g.source)


def history(app: App, brand: str, customer: str) -> list[tuple[str, str, str, int, int | None]]:
    t = app.engine.table(HISTORY_TABLE)
    assert t is not None
    rows = app.engine.to_arrow(t.filter((t.brand == brand) & (t.customer_id == customer))).to_pylist()
    out = [
        (r["scope"], r["staff_id"], r["source"], r["valid_from"].day, r["valid_to"] and r["valid_to"].day) for r in rows
    ]
    return sorted(out, key=lambda r: (r[3], r[0]))


def test_first_friend_purchase_takes_over_only_after_the_lock(world) -> None:
    app, ids = world
    c1 = ids["ff"]["c1"]
    assert guide(app, "ff", c1) == ("g2", "s2", "purchase")
    assert history(app, "ff", c1) == [("*", "g1", "wecom_add", 1, 15), ("*", "g2", "purchase", 15, None)]
    with app.store.unit_of_work() as session:
        g = current_guide(session, "ff", c1)
    assert g is not None and g.locked_until == day(15).replace(month=2, day=14)  # Jan 15 + 30 days


def test_a_share_visit_extends_the_lock(world) -> None:
    app, ids = world
    # Jan 8 + 20 days = Jan 28 > Jan 20: g2's purchase cannot take c2
    assert guide(app, "ff", ids["ff"]["c2"]) == ("g1", "s1", "wecom_add")


def test_delete_releases_and_a_re_add_binds_again(world) -> None:
    app, ids = world
    c3 = ids["ff"]["c3"]
    assert history(app, "ff", c3) == [("*", "g1", "wecom_add", 1, 10), ("*", "g1", "wecom_add", 15, None)]
    assert guide(app, "ff", c3) == ("g1", "s1", "wecom_add")


def test_a_manual_binding_overrides_the_lock(world) -> None:
    app, ids = world
    c4 = ids["ff"]["c4"]
    assert guide(app, "ff", c4) == ("g2", "s2", "manual")
    assert history(app, "ff", c4) == [("*", "g1", "wecom_add", 1, 3), ("*", "g2", "manual", 3, None)]


def test_first_friend_per_store_keeps_one_guide_per_store(world) -> None:
    app, ids = world
    c1 = ids["ps"]["c1"]
    # s1: g1 (Jan 1) keeps it against g1b (Jan 3); s2: g2 (Jan 2)
    assert history(app, "ps", c1) == [("s1", "g1", "wecom_add", 1, None), ("s2", "g2", "wecom_add", 2, None)]
    assert guide(app, "ps", c1, store="s1") == ("g1", "s1", "wecom_add")
    assert guide(app, "ps", c1) == ("g2", "s2", "wecom_add")  # no store asked: the latest binding


def test_every_friend_binds_each_guide_until_deleted(world) -> None:
    app, ids = world
    c1 = ids["ef"]["c1"]
    assert history(app, "ef", c1) == [
        ("g1", "g1", "wecom_add", 1, None),
        ("g2", "g2", "wecom_add", 2, 5),
        ("g3", "g3", "purchase", 6, None),
    ]
    assert guide(app, "ef", c1) == ("g3", "s3", "purchase")


def test_an_exclusive_channel_code_prevents_double_attribution(world) -> None:
    app, ids = world
    assert history(app, "ex", ids["ex"]["c1"]) == [("g1", "g1", "wecom_add", 1, None)]
    assert history(app, "ex", ids["ex"]["c2"]) == [("g1", "g1", "wecom_add", 1, 4), ("g2", "g2", "wecom_add", 5, None)]
    assert history(app, "ex", ids["ex"]["c3"]) == [
        ("g1", "g1", "wecom_add", 1, None),
        ("g2", "g2", "wecom_add", 2, None),
    ]


def credit_rows(app: App, brand: str) -> dict[str, tuple[str | None, str | None, str]]:
    with app.store.unit_of_work() as session:
        rules = rules_in_force(session, brand)
    orders = paid_orders(app, brand)
    hist = app.engine.table(HISTORY_TABLE)
    assert orders is not None and hist is not None
    t = app.engine.to_arrow(credited(orders, hist.filter(hist.brand == brand), rules)).to_pylist()
    return {r["order_id"].split("-")[1]: (r["credited_staff"], r["credited_store"], r["credit_via"]) for r in t}


def test_sales_credit_none(world) -> None:
    app, _ = world
    assert credit_rows(app, "cn") == {
        "o1": (None, "s2", "none"),
        "o2": (None, "s1", "none"),
        "o3": (None, None, "none"),
        "o4": (None, "s3", "none"),
    }


def test_sales_credit_bound_guide(world) -> None:
    app, _ = world
    assert credit_rows(app, "cb") == {
        "o1": ("g1", "s2", "bound_guide"),  # g2 wrote the order, but g1 is bound (lock to Jan 11)
        "o2": ("g1", "s1", "bound_guide"),
        "o3": ("g1", "s1", "bound_guide"),  # online: the bound guide's store (线上订单归属门店)
        "o4": (None, "s3", "none"),
    }


def test_sales_credit_order_guide_else_bound_else_store(world) -> None:
    app, _ = world
    assert credit_rows(app, "co") == {
        "o1": ("g2", "s2", "order_guide"),
        "o2": ("g1", "s1", "bound_guide"),
        "o3": ("g1", "s1", "bound_guide"),
        "o4": (None, "s3", "store"),
    }


def test_a_rerun_changes_nothing_and_emits_no_event(world) -> None:
    app, _ = world
    result = run_binding(app, "ff")
    assert result.changed_customers == 0 and result.bound == 4


def test_binding_changed_event_names_the_customers(world) -> None:
    app, ids = world
    with app.store.unit_of_work() as session:
        events: list[StoredEvent] = [e for e in after(session, -1, -1, 10_000) if e.event.type == "BindingChanged"]
    ef = [e.event for e in events if e.event.brand == "ef"]
    assert len(ef) == 1 and ef[0].customer_ids == (ids["ef"]["c1"],)  # type: ignore[attr-defined]


def test_apply_rules_errors_name_file_and_line(tmp_path: Path) -> None:
    from siyu.guides.rules import RulesError, parse_rules

    text = "brand: demo\nversion: 1\nbinding:\n  mode: first_friend\n  locks:\n    add: -3\n"
    with pytest.raises(RulesError) as e:
        parse_rules(text, "rules.yaml")
    assert "rules.yaml:6: binding.locks.add" in e.value.message


def test_landed_relations_rebind_through_the_event_handler(world, tmp_path: Path) -> None:
    app, ids = world
    assert guide(app, "hx", ids["hx"]["c1"]) is None  # added g1 on Jan 1, deleted g1 on Jan 2
    f = tmp_path / "relations.csv"
    f.write_text(RELATIONS + f"hx,wecom,wecom,wecom_friend,c1,{iso(4)},,g2\n")
    import_path(app, f)
    with app.store.unit_of_work() as session:
        landed = [e for e in after(session, -1, -1, 10_000) if e.event.type == "RelationsLanded"]
    handler = guide_binding(app)
    assert "RelationsLanded" in handler.types
    handler.handle([e for e in landed if e.event.brand == "hx"])
    assert guide(app, "hx", ids["hx"]["c1"]) == ("g2", "s2", "wecom_add")


def test_guide_performance_for_january(world) -> None:
    from siyu.guides.performance import performance
    from siyu.metrics.periods import parse_period

    app, _ = world
    data = performance(app, "co", parse_period("2024-01", "month", "UTC"))
    guides = {g["staff_id"]: g for g in data["guides"]}
    g1, g2 = guides["g1"], guides["g2"]
    assert (g1["store_code"], g1["new_friends"], g1["lost_friends"], g1["bound_customers"]) == ("s1", 1, 0, 1)
    # g1: o2 (2000, bound) + o3 (3000, online, bound) = 5000 ≥ 4000: tier 300 bp → 150 fen
    assert (g1["attributed_orders"], g1["attributed_fen"], g1["commission_fen"]) == (2, 5000, 150)
    # g2: o1 (1000, its guide_code): tier 100 bp → 10 fen
    assert (g2["attributed_orders"], g2["attributed_fen"], g2["commission_fen"]) == (1, 1000, 10)
    assert g1["reply_p50_s"] == 180.0 and g2["reply_p50_s"] is None
    assert g1["capital"] == 1  # c1 bought in January: in a relationship layer at the month's end
    stores = {s["store_code"]: s for s in data["stores"]}
    assert stores["s1"]["attributed_fen"] == 5000 and stores["s1"]["guides"] == 3  # g1, g1b, m1
    assert stores["s2"]["attributed_fen"] == 1000


def test_sensitive_words_raise_one_task_per_message_for_the_store_manager(world) -> None:
    from siyu.guides.compliance import scan_messages, words_in
    from siyu.guides.models import GuideTask

    app, _ = world
    result = scan_messages(app, "co", day(1))
    assert (result.flagged_messages, result.tasks_created) == (1, 1)  # m1 "可以返现给你", to m1 (s1's manager)
    assert scan_messages(app, "co", day(1)).tasks_created == 0  # once per message
    with app.store.unit_of_work() as session:
        task = session.scalars(select(GuideTask).where(GuideTask.kind == "sensitive_word")).one()
        assert (task.assignee_staff_id, task.store_code, task.body) == ("m1", "s1", "可以返现给你")
    assert words_in("转账还是返现？再返现", ("返现", "转账")) == ["转账", "返现"]


def test_nearest_open_store_within_the_radius(world) -> None:
    from siyu.guides.location import nearest_stores
    from siyu.guides.models import CustomerStore
    from siyu.guides.rules import GuideRules

    app, ids = world
    ls = ids["ls"]
    with app.store.unit_of_work() as session:
        homes = {
            r.customer_id: (r.store_code, r.source)
            for r in session.scalars(select(CustomerStore).where(CustomerStore.brand == "ls"))
        }
    assert homes == {ls["c1"]: ("s1", "location"), ls["c3"]: ("s2", "purchase")}  # c2: none within 10 km
    near = nearest_stores(app, "ls", GuideRules.model_construct(brand="ls", version=1))
    assert near is not None
    rows = {r["customer_id"]: r for r in app.engine.to_arrow(near).to_pylist()}
    # c1 → s1: Δlat 0.001° = 0.1112 km, Δlng 0.001° × cos 31.23° = 0.0951 km → √(0.1112² + 0.0951²) ≈ 0.146 km
    assert rows[ls["c1"]]["store_code"] == "s1" and abs(rows[ls["c1"]]["distance_km"] - 0.146) < 0.002
    assert ls["c2"] not in rows
