"""FAST+ on the hand-made brand `fx` (tests/fixtures/fast_brand.py): every expected number below is
computed by hand from that file, customer by customer."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from fixtures.fast_brand import write_brand
from siyu.bootstrap import App
from siyu.brands.settings import do_update_brand
from siyu.core.actor import Actor
from siyu.identity.service import run_resolve
from siyu.ingest.importer import import_path
from siyu.metrics.clv_matrix import clv_matrix
from siyu.metrics.fast import FastMetrics
from siyu.metrics.labels import LAYERS
from siyu.metrics.rfm import rfm


def _update_brand(app: App, code: str, **changes: object) -> None:
    with app.store.begin(Actor.user("tests")) as uow:
        do_update_brand(uow, code, **changes)  # type: ignore[arg-type]


def load(app: App, folder: Path) -> App:
    report = import_path(app, write_brand(folder))
    assert report.as_json()["total"]["quarantined"] == 0
    run_resolve(app)
    return app


@pytest.fixture
def fx(sqlite_app: App, tmp_path: Path) -> App:
    """Metrics read the lake; the store only holds brand settings, so one store backend is enough
    here and `test_same_numbers_on_every_store` covers PostgreSQL."""
    return load(sqlite_app, tmp_path / "fx")


def test_same_numbers_on_every_store(app: App, tmp_path: Path) -> None:
    load(app, tmp_path / "fx")
    _update_brand(app, "fx", koc_reviews=False)
    m = FastMetrics(app, "fx")
    r = m.fast(m.period("2024-06"))
    assert r["capital"] == 10
    assert (r["layers"]["koc"], r["layers"]["repurchase"]) == (1, 3)


def ranks_by_source_customer(m: FastMetrics, label: str) -> dict[str, str]:
    """source_customer_id -> layer at the end of the period (for readable assertions)."""
    ranks = m.ranks(m.period(label))
    idmap = m.facts._idmap
    rows = m.app.engine.to_arrow(ranks.join(idmap, "customer_id").select("source_customer_id", "rank")).to_pylist()
    return {r["source_customer_id"]: LAYERS[r["rank"]] for r in rows}


def test_layers_follow_every_rule(fx: App) -> None:
    m = FastMetrics(fx, "fx")
    june = ranks_by_source_customer(m, "2024-06")
    assert june == {
        "a1": "koc",  # 2 days (06-03 twice, 06-10) + B bought through SH1
        "b1": "basic",
        "c1": "repurchase",  # merged with c2: 06-01 local (2024-05-31T17:00Z) and 06-20
        "c2": "repurchase",
        "d1": "purchased",  # the 06-10 order predates the 06-15 join
        "e1": "purchased",  # refunded and unpaid orders are no purchase; partial refund is
        "f1": "none",  # WeCom friendship ended 06-20
        "g1": "basic",  # left the programme 06-25, still follows the official account
        "h1": "basic",  # placeholder phone: not merged with h2
        "h2": "basic",
        "i1": "repurchase",  # own share click: no propagation
        "j1": "koc",  # positive review of a purchased order
        "k1": "none",
        "l1": "none",
    }
    may = ranks_by_source_customer(m, "2024-05")
    assert may == {
        "a1": "purchased",
        "b1": "basic",
        "c1": "member_no_purchase",  # the 2024-05-31T17:00Z order is in June in Asia/Shanghai
        "c2": "member_no_purchase",
        "d1": "none",
        "e1": "member_no_purchase",
        "f1": "basic",
        "g1": "member_no_purchase",
        "h1": "basic",
        "h2": "basic",
        "i1": "member_no_purchase",
        "j1": "member_no_purchase",
        "k1": "none",
        "l1": "none",
    }


def test_fast_json_for_june(fx: App) -> None:
    m = FastMetrics(fx, "fx")
    r = m.fast(m.period("2024-06"))
    assert (r["brand"], r["period"], r["timezone"], r["previous_period"]) == (
        "fx",
        "2024-06",
        "Asia/Shanghai",
        "2024-05",
    )
    assert r["capital"] == 10
    assert r["layers"] == {"basic": 4, "member_no_purchase": 0, "purchased": 2, "repurchase": 2, "koc": 2}
    assert r["capital_by_field"] == {"douyin_store": 1, "jd_store": 1, "official_account": 1, "tmall_store": 1}

    conv = r["conversion"]
    assert (conv["base"], conv["deepened"], conv["rate"]) == (10, 5, 0.5)
    assert (conv["new_entrants"], conv["new_member_entrants"]) == (1, 1)
    assert {(t["from"], t["to"]): t["customers"] for t in conv["transitions"]} == {
        ("purchased", "koc"): 1,  # A
        ("basic", "basic"): 3,  # B, H1, H2
        ("member_no_purchase", "repurchase"): 2,  # C, I
        ("none", "purchased"): 1,  # D
        ("member_no_purchase", "purchased"): 1,  # E
        ("basic", "none"): 1,  # F
        ("member_no_purchase", "basic"): 1,  # G
        ("member_no_purchase", "koc"): 1,  # J
    }

    conn = r["connection"]
    assert {f: (c["visitors"], c["holders"], c["rate"]) for f, c in conn.items() if c["visitors"]} == {
        "tmall_store": (2, 1, 0.5),  # B holds, K does not (two visits, one visitor)
        "wecom": (1, 0, 0.0),  # F's friendship ended before the period end
        "mini_program": (1, 1, 1.0),  # A at 00:30 local on June 1st; L's 23:00 May 31st visit is May
    }
    assert r["connection_overall"] == {"visitors": 4, "holders": 2, "rate": 0.5}

    clv = r["clv"]
    # transaction: A 26000, B 20000, C 10000, D 16000, E 6000, I 10000, J 6000 = 94000 over 10
    # propagation: A 20000 (B's order), G 11000 (L's order, last click) = 31000
    assert clv["window_days"] == 365
    assert (clv["customers"], clv["transaction_fen"], clv["propagation_fen"], clv["average_fen"]) == (
        10,
        9400,
        3100,
        12500,
    )
    assert clv["by_layer"] == {
        "basic": 7750,  # (20000 + 11000 + 0 + 0) / 4
        "member_no_purchase": None,
        "purchased": 11000,  # (16000 + 6000) / 2
        "repurchase": 10000,
        "koc": 26000,  # (46000 + 6000) / 2
    }


def test_attribution_window_last_click_and_self_purchase(fx: App) -> None:
    m = FastMetrics(fx, "fx")
    rows = fx.engine.to_arrow(m.facts.attributed.select("order_id", "sharer")).to_pylist()
    sharers = {r["order_id"]: r["sharer"] for r in rows}
    ids = {r["source_customer_id"]: r["customer_id"] for r in fx.engine.to_arrow(m.facts._idmap).to_pylist()}
    # oK1 is 8 days after the click, oI1 is I's own share, oL1 goes to the last click (G's SH3).
    assert sharers == {"oB1": ids["a1"], "oL1": ids["g1"]}


def test_review_koc_is_a_brand_setting(fx: App) -> None:
    _update_brand(fx, "fx", koc_reviews=False)
    m = FastMetrics(fx, "fx")
    layers = m.fast(m.period("2024-06"))["layers"]
    assert (layers["koc"], layers["repurchase"]) == (1, 3)  # J is no longer KOC


def test_shorter_attribution_window_drops_late_purchases(fx: App) -> None:
    # B clicked 06-06 12:00 and bought 06-08 12:00 (2 days): a 1-day window loses it, and A with it.
    _update_brand(fx, "fx", attribution_days=1)
    m = FastMetrics(fx, "fx")
    r = m.fast(m.period("2024-06"))
    assert (r["layers"]["koc"], r["layers"]["repurchase"]) == (1, 3)
    # L clicked G's share 06-07 08:00 and bought 06-09 12:00: also outside 1 day.
    assert r["clv"]["propagation_fen"] == 0


def test_first_period_has_no_conversion_rate(fx: App) -> None:
    m = FastMetrics(fx, "fx")
    r = m.fast(m.period("2024-01"))
    # End of January: members A, G, I, J (no purchase), G follows the official account.
    assert r["layers"] == {"basic": 0, "member_no_purchase": 4, "purchased": 0, "repurchase": 0, "koc": 0}
    assert r["conversion"]["rate"] is None
    assert (r["conversion"]["base"], r["conversion"]["new_entrants"], r["conversion"]["new_member_entrants"]) == (
        0,
        4,
        4,
    )


def test_week_quarter_year_grains(fx: App) -> None:
    q2 = FastMetrics(fx, "fx", grain="quarter")
    r = q2.fast(q2.period("2024-Q2"))
    # Q2 ends with June, so the layers are June's except that purchase days span April–June:
    # A has 05-10, 06-03, 06-10 (3 days, still KOC); nobody else gains a day.
    assert r["period"] == "2024-Q2" and r["previous_period"] == "2024-Q1"
    assert r["layers"] == {"basic": 4, "member_no_purchase": 0, "purchased": 2, "repurchase": 2, "koc": 2}
    week = FastMetrics(fx, "fx", grain="week")
    w = week.fast(week.period("2024-W23"))  # Mon 2024-06-03 .. Sun 06-09, layers at 06-10 00:00
    # purchased: A (06-03 only; its propagation needs repurchase), E (06-07), I (06-05)
    # member_no_purchase: C, G (leaves 06-25), J (06-02 is the week before); basic: B, F (until 06-20), H1, H2
    assert w["layers"] == {"basic": 4, "member_no_purchase": 3, "purchased": 3, "repurchase": 0, "koc": 0}
    year = FastMetrics(fx, "fx", grain="year")
    assert year.fast(year.period("2024"))["capital"] == 10


def test_trend_reuses_layers_and_matches_single_periods(fx: App) -> None:
    m = FastMetrics(fx, "fx")
    trend = m.trend(m.period("2024-05"), m.period("2024-06"))
    assert [p["period"] for p in trend["periods"]] == ["2024-05", "2024-06"]
    single = FastMetrics(fx, "fx").fast(m.period("2024-06"))
    assert trend["periods"][1] == single
    assert trend["periods"][0]["capital"] == 10  # A B C E F G H1 H2 I J


def test_clv_matrix_cells(fx: App) -> None:
    m = FastMetrics(fx, "fx")
    result = clv_matrix(m, m.period("2024-06"))
    # Positive transaction values, sorted: 6000 E, 6000 J, 10000 C, 10000 I, 16000 D, 20000 B, 26000 A;
    # nearest rank: 1/3 → 3rd value 10000, 2/3 → 5th value 16000. Propagation: 11000 G, 20000 A → median 11000.
    assert result["thresholds"] == {"purchase_fen": [10000, 16000], "propagation_fen": [11000]}
    cells = {(c["layer"], c["purchase_tier"], c["propagation_tier"]): (c["customers"], c["average_clv_fen"])
             for c in result["cells"]}  # fmt: skip
    assert cells == {
        ("basic", "none", "none"): (2, 0),  # H1, H2
        ("basic", "none", "low"): (1, 11000),  # G
        ("basic", "high", "none"): (1, 20000),  # B
        ("purchased", "low", "none"): (1, 6000),  # E
        ("purchased", "mid", "none"): (1, 16000),  # D
        ("repurchase", "low", "none"): (2, 10000),  # C, I
        ("koc", "low", "none"): (1, 6000),  # J
        ("koc", "high", "high"): (1, 46000),  # A
    }


def test_rfm_scores_and_groups(fx: App) -> None:
    result = rfm(fx, "fx", date(2024, 6, 30))
    assert result["customers"] == 9
    assert result["averages"] == {"r": round(24 / 9, 4), "f": round(21 / 9, 4), "m": round(24 / 9, 4)}
    groups = {g["group"]: (g["customers"], g["monetary_fen"]) for g in result["groups"]}
    assert groups == {
        "important_value": (1, 16000),  # D
        "important_development": (0, 0),
        "important_retention": (1, 26000),  # A
        "important_winback": (2, 31000),  # B, L
        "general_value": (3, 26000),  # C, I, J
        "general_development": (1, 7000),  # K
        "general_retention": (0, 0),
        "general_winback": (1, 6000),  # E
    }
    assert fx.lake.version("rfm") is None  # a read: the scores are stored by `siyu metrics materialise`


def test_declared_relation_types_count_for_the_basic_layer_when_they_are_connections(fx: App, tmp_path: Path) -> None:
    folder = tmp_path / "declared"
    folder.mkdir()
    (folder / "relation_types.csv").write_text(
        "brand,code,name_zh,name_en,field,connection\n"
        "fx,douyin_fan_group,抖音粉丝群,Douyin fan group,douyin_store,\n"  # empty connection = true
        "fx,follow,关注,Follow,,false\n"
        "fx,fan,粉丝,Fan,,false\n"  # a built-in the brand does not count
    )
    (folder / "relations.csv").write_text(
        "brand,source,field,relation_type,source_customer_id,started_at\n"
        "fx,crm,douyin_store,douyin_fan_group,k1,2024-06-01T00:00:00+08:00\n"
        "fx,crm,douyin_store,follow,l1,2024-06-01T00:00:00+08:00\n"
    )
    assert import_path(fx, folder).as_json()["total"]["quarantined"] == 0  # before: both relations quarantined
    june = ranks_by_source_customer(FastMetrics(fx, "fx"), "2024-06")
    # k1 holds a declared connection; l1's `follow` is declared as no connection; h1's only relation
    # is a Douyin `fan`, which fx declared not to count (h2 still follows the JD store).
    assert (june["k1"], june["l1"], june["h1"], june["h2"]) == ("basic", "none", "none", "basic")
