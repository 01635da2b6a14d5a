"""Tags on the hand-made brand `au` (tests/fixtures/audience_brand.py), on SQLite and PostgreSQL:
rule tags computed into the lake (hand-computed values), manual tags with who / when / why and
their history, imported tags, tags in audiences and in the customer view."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.audience_brand import AS_OF, PRICE_BAND, ids_by_letter, write_brand
from fixtures.audience_ops import compute_tag, define_group, define_tag, delete_tag, import_tags, remove_tag, set_tag
from siyu.audiences.errors import RuleError, TagError
from siyu.audiences.service import count_audience
from siyu.audiences.tags import history, list_tags
from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.core.errors import NotFoundError
from siyu.customers.view import customer_view
from siyu.identity.service import run_resolve
from siyu.ingest.importer import import_path


@pytest.fixture
def au(app: App, tmp_path: Path) -> App:
    import_path(app, write_brand(tmp_path / "au"))
    run_resolve(app)
    return app


def values(app: App, tag: str) -> dict[str, str]:
    letters = {v: k for k, v in ids_by_letter(app).items()}
    table = app.engine.table("tag_values")
    assert table is not None
    rows = app.engine.to_arrow(table.filter(table.tag == tag).select("customer_id", "value")).to_pylist()
    return {letters[r["customer_id"]]: r["value"] for r in rows}


def test_rule_tags_computed_by_hand(au: App) -> None:
    define_group(au, "au", "price", "价格", "Price")
    define_tag(
        au, "au", "price_band", kind="rule", rule=PRICE_BAND, group="price", name_zh="价格带", name_en="Price band"
    )
    out = compute_tag(au, "au", "price_band", AS_OF)
    # average item price over 365 days (sum of item amounts / quantity, purchases only):
    # A 30000, B (20000 + 40000) / 2 = 30000 (merged), D 50000, E 60000 (the refunded order is no
    # purchase), H 8000 / 2 = 4000; C, F, G bought nothing and get no value
    assert values(au, "price_band") == {"A": "mid", "B": "mid", "D": "high", "E": "high", "H": "low"}
    assert (out["customers"], out["values"]) == (5, {"high": 2, "low": 1, "mid": 2})
    define_tag(au, "au", "top_category", kind="rule", rule={"top": "category", "last_days": 365})
    compute_tag(au, "au", "top_category", AS_OF)
    assert values(au, "top_category") == {"A": "面霜", "B": "面霜", "D": "面膜", "E": "面霜", "H": "洁面"}
    define_tag(
        au,
        "au",
        "segment",
        kind="rule",
        rule={
            "cases": [
                {"value": "vip", "when": {"membership": "tier", "op": "in", "value": ["金卡", "黑金"]}},
                {"value": "member", "when": {"membership": "member"}},
                {"value": "fan", "when": {"relation": "any"}},
            ]
        },
    )
    compute_tag(au, "au", "segment", AS_OF)  # first matching case wins; E left the programme
    assert values(au, "segment") == {"A": "vip", "B": "member", "C": "member", "F": "fan", "G": "fan", "H": "fan"}
    define_tag(au, "au", "spend_365", kind="rule", rule={"measure": "spend_fen", "last_days": 365})
    compute_tag(au, "au", "spend_365", AS_OF)
    assert values(au, "spend_365") == {"A": "30000", "B": "60000", "D": "50000", "E": "60000", "H": "8000"}

    # tags in audiences, with NOT over missing values
    def n(rule: str) -> int:
        return int(count_audience(au, "au", rule=rule, as_of=AS_OF)["customers"])

    assert n("tag.price_band in [mid, high]") == 4
    assert n("tag.price_band != low") == 4  # has a value that is not low: C, F, G have none
    assert n("not tag.price_band = low") == 7  # everyone but H
    assert n("tag.price_band missing") == 3
    assert n("tag.spend_365 >= 50000") == 3
    assert n("tag.segment = fan and reachable douyin") == 1
    with pytest.raises(RuleError) as info:
        n("member and tag.price_band = premium")
    assert info.value.path == "all[1].value"
    with pytest.raises(RuleError) as info:
        n("tag.price_band > 3")
    assert info.value.path == "op"
    assert [t["code"] for t in list_tags(au, "au")] == [
        "price_band",
        "segment",
        "spend_365",
        "top_category",
    ]  # grouped first


def test_rule_tag_errors(au: App) -> None:
    with pytest.raises(RuleError) as info:
        define_tag(au, "au", "bad", kind="rule", rule={"cases": [{"value": "x", "when": {"layer": "vip"}}]})
    assert info.value.path == "cases[0].when.layer"
    with pytest.raises(RuleError) as info:
        define_tag(au, "au", "bad", kind="rule", rule={"measure": "happiness"})
    assert info.value.path == "measure"
    with pytest.raises(TagError):
        define_tag(au, "au", "Bad Code", kind="manual", values=["x"])
    with pytest.raises(TagError):
        define_tag(au, "au", "x", kind="manual")  # enum without values
    define_tag(au, "au", "never", kind="rule", rule={"measure": "orders"})
    with pytest.raises(Exception, match="never computed"):
        count_audience(au, "au", rule="tag.never >= 1", as_of=AS_OF)


def test_manual_tags_who_when_why_and_history(au: App) -> None:
    ids = ids_by_letter(au)
    define_tag(au, "au", "interest", kind="manual", values=["serum", "mask"], name_zh="兴趣", name_en="Interest")
    define_tag(au, "au", "vip_note", kind="manual", value_type="flag")
    guide = Actor.user("guide007")
    first = set_tag(au, "au", "interest", ids["F"], "serum", actor=guide, reason="asked about serums in WeCom")
    assert first["previous"] is None and first["set_by"] == "user:guide007"
    second = set_tag(au, "au", "interest", ids["F"], "mask", actor=Actor.user("guide008"), reason="changed mind")
    assert second["previous"] == "serum"
    set_tag(au, "au", "interest", ids["B"], "serum", actor=Actor.user("op1"))
    set_tag(au, "au", "vip_note", ids["B"], actor=Actor.user("op1"), reason="big spender")
    with pytest.raises(TagError):
        set_tag(au, "au", "interest", ids["A"], "lipstick", actor=Actor.user("op1"))
    with pytest.raises(NotFoundError):
        set_tag(au, "au", "interest", "c-nobody", "serum", actor=Actor.user("op1"))
    assert count_audience(au, "au", rule="tag.interest = serum", as_of=AS_OF)["customers"] == 1
    assert count_audience(au, "au", rule="tag.vip_note and reachable sms", as_of=AS_OF)["customers"] == 1
    removed = remove_tag(au, "au", "interest", ids["F"], actor=Actor.user("guide007"), reason="wrong customer")
    assert removed["removed"] == "mask"
    rows = history(au, "au", "interest", ids["F"])
    assert [(h["action"], h["old_value"], h["new_value"], h["actor"]) for h in rows] == [
        ("remove", "mask", None, "user:guide007"),
        ("set", "serum", "mask", "user:guide008"),
        ("set", None, "serum", "user:guide007"),
    ]
    assert rows[2]["reason"] == "asked about serums in WeCom" and rows[0]["at"] >= rows[2]["at"]
    # the customer view shows tags (with who set them) and lights
    view = customer_view(au, ids["B"])
    assert {(t["tag"], t["value"], t["set_by"]) for t in view["tags"]} == {
        ("interest", "serum", "user:op1"),
        ("vip_note", "true", "user:op1"),
    }
    assert view["lights"]["sms"]["on"] is True and view["lights"]["offline_store"]["on"] is True
    assert view["lights"]["wecom"] == {
        "on": False,
        "holds": False,
        "withdrawn": False,
        "name_zh": "企业微信",
        "name_en": "WeCom",
        "reason_zh": "无有效wecom_friend关系",
        "reason_en": "no active wecom_friend relation",
    }
    deleted = delete_tag(au, "au", "interest", actor=Actor.user("op1"))
    assert deleted["assignments_removed"] == 1


def test_imported_tags_replace_the_previous_file(au: App, tmp_path: Path) -> None:
    define_tag(au, "au", "dmp_segment", kind="imported", values=["high_intent", "low_intent"])
    ids = ids_by_letter(au)
    first = tmp_path / "first.csv"
    first.write_text(
        "source,source_customer_id,value\npos,b1,high_intent\nmp,b2,high_intent\ncrm,a1,low_intent\n"
        "crm,zz9,high_intent\n"
    )
    out = import_tags(au, "au", "dmp_segment", first, actor=Actor.user("etl"))
    assert (out["rows"], out["customers"], out["unmatched"]) == (4, 2, 2)  # b1 + b2 are one customer
    assert count_audience(au, "au", rule="tag.dmp_segment = high_intent", as_of=AS_OF)["customers"] == 1
    second = tmp_path / "second.csv"
    second.write_text(f"customer_id,value\n{ids['D']},high_intent\n")
    import_tags(au, "au", "dmp_segment", second, actor=Actor.user("etl"))
    assert count_audience(au, "au", rule="tag.dmp_segment exists", as_of=AS_OF)["customers"] == 1
    bad = tmp_path / "bad.csv"
    bad.write_text(f"customer_id,value\n{ids['D']},no_such_value\n")
    with pytest.raises(TagError):
        import_tags(au, "au", "dmp_segment", bad, actor=Actor.user("etl"))
    assert history(au, "au", "dmp_segment")[0]["action"] == "import"
