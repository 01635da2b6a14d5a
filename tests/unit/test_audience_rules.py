"""The audience rule language: JSON validation with error paths, and the text form parsed into the
same JSON (siyu.audiences.rules, siyu.audiences.text). No data needed."""

from __future__ import annotations

from datetime import date

import pytest

from siyu.audiences.errors import RuleError
from siyu.audiences.rules import Group, Leaf, Not, Window, parse_rule, walk
from siyu.audiences.text import text_to_json


def error_path(doc: object) -> str:
    with pytest.raises(RuleError) as info:
        parse_rule(doc)
    assert "(" in info.value.message  # bilingual: the Chinese text follows in parentheses
    return info.value.path


def test_nested_rule_parses_into_typed_nodes() -> None:
    node = parse_rule(
        {
            "all": [
                {"attribute": "city", "op": "in", "value": ["上海", "杭州"]},
                {"any": [{"layer": "purchased", "op": ">="}, {"not": {"identifier": "phone"}}]},
                {"did": "visit", "field": "mini_program", "min_times": 2, "last_days": 30},
                {"spent": 50000, "from": "2024-06-01", "to": "2024-06-30"},
            ]
        }
    )
    assert isinstance(node, Group) and node.op == "all"
    leaves = walk(node)
    assert [leaf.kind for leaf in leaves] == ["attribute", "layer", "identifier", "did", "spent"]
    assert [leaf.path for leaf in leaves] == ["all[0]", "all[1].any[0]", "all[1].any[1].not", "all[2]", "all[3]"]
    did = leaves[3]
    assert (did.subject, did.value, did.window) == ("visit", 2, Window(last_days=30))
    assert leaves[4].op == ">=" and leaves[4].window == Window(None, date(2024, 6, 1), date(2024, 6, 30))
    assert isinstance(node.children[1], Group) and isinstance(node.children[1].children[1], Not)
    assert leaves[2].op == "exists"  # an identifier without op means "has it"


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        ({"all": [{"tag": "x"}, {"any": [{"layer": "vip"}]}]}, "all[1].any[0].layer"),
        ({"all": [{"tag": "x"}, {"any": [{"attribute": "city", "op": "like", "value": "上"}]}]}, "all[1].any[0].op"),
        ({"all": [{"attribute": "shoe_size", "op": "=", "value": 42}]}, "all[0].attribute"),
        ({"all": []}, "all"),
        ({"not": {"did": "Visit Page"}}, "not.did"),
        ({"any": [{"spent": 99.5}]}, "any[0].spent"),
        ({"any": [{"bought": {"colour": "red"}}]}, "any[0].bought.colour"),
        ({"all": [{"did": "visit", "last_days": 0}]}, "all[0].last_days"),
        ({"all": [{"did": "visit", "from": "2024-06-30", "to": "2024-06-01"}]}, "all[0].to"),
        ({"all": [{"did": "visit", "min_times": 3, "max_times": 2}]}, "all[0].max_times"),
        ({"all": [{"reachable": "fax"}]}, "all[0].reachable"),
        ({"all": [{"attribute": "city", "op": "in", "value": []}]}, "all[0].value"),
        ({"all": [{"attribute": "city", "op": "exists", "value": "x"}]}, "all[0].value"),
        ({"all": [{"tag": "t", "op": "="}]}, "all[0].value"),
        ({"all": [{"membership": "tier", "colour": 1}]}, "all[0].colour"),
        ({"all": [{"layer": "koc", "tag": "x"}]}, "all[0]"),
        ({"all": [{"all": [{"tag": "x"}], "any": []}]}, "all[0].any"),
        ([], "$"),
    ],
)
def test_invalid_rules_point_at_the_offending_node(doc: object, path: str) -> None:
    assert error_path(doc) == path


def test_text_form_reads_like_the_issue() -> None:
    text = (
        'attribute.city in ["上海", "杭州"] and tag.price_band = high and layer >= purchased at 2024-06 '
        "and did visit in mini_program >= 2 times in last 30 days "
        "and (bought category 面霜 from 2024-06-01 to 2024-06-30 or spent >= ¥500 in last 90 days) "
        "and not bought in last 60 days and reachable sms"
    )
    assert text_to_json(text) == {
        "all": [
            {"attribute": "city", "op": "in", "value": ["上海", "杭州"]},
            {"tag": "price_band", "op": "=", "value": "high"},
            {"layer": "purchased", "op": ">=", "period": "2024-06"},
            {"did": "visit", "field": "mini_program", "min_times": 2, "last_days": 30},
            {
                "any": [
                    {"bought": {"category": "面霜"}, "from": "2024-06-01", "to": "2024-06-30"},
                    {"spent": 50000, "op": ">=", "last_days": 90},
                ]
            },
            {"not": {"bought": True, "last_days": 60}},
            {"reachable": "sms"},
        ]
    }
    parse_rule(text_to_json(text))


@pytest.mark.parametrize(
    ("text", "doc"),
    [
        ("has phone", {"identifier": "phone"}),
        (
            "member and tier in [金卡, 黑金]",
            {"all": [{"membership": "member"}, {"membership": "tier", "op": "in", "value": ["金卡", "黑金"]}]},
        ),
        ("points >= 1000", {"membership": "points", "op": ">=", "value": 1000}),
        ("layer deepened at 2024-06", {"layer_change": "deepened", "period": "2024-06"}),
        ("rfm.f >= 2 at 2024-06-30", {"rfm": "f", "op": ">=", "value": 2, "as_of": "2024-06-30"}),
        ("lifecycle in [at_risk, lapsed]", {"lifecycle": ["at_risk", "lapsed"], "op": "in"}),
        ("clv.p_alive < 0.5", {"clv": "p_alive", "op": "<", "value": 0.5}),
        ("clv >= 10000", {"clv": "clv_fen", "op": ">=", "value": 10000}),
        ("relation wecom_friend in wecom", {"relation": "wecom_friend", "field": "wecom"}),
        ("consent sms denied", {"consent": "sms", "state": "denied"}),
        ("spent < ¥12.50", {"spent": 1250, "op": "<"}),
        ("did visit = 0 times in last 7 days", {"did": "visit", "min_times": 0, "max_times": 0, "last_days": 7}),
        ("bought price >= ¥300 spu [FC, SE]", {"bought": {"min_price_fen": 30000, "spu": ["FC", "SE"]}}),
        (
            "all(has phone, any(member, has email))",
            {"all": [{"identifier": "phone"}, {"any": [{"membership": "member"}, {"identifier": "email"}]}]},
        ),
        (
            "has phone or has email and member",
            {"any": [{"identifier": "phone"}, {"all": [{"identifier": "email"}, {"membership": "member"}]}]},
        ),
    ],
)
def test_text_form_examples(text: str, doc: dict) -> None:
    assert text_to_json(text) == doc
    parse_rule(doc)


def test_text_errors_say_where() -> None:
    with pytest.raises(RuleError) as info:
        text_to_json("attribute.city = 上海 and and member")
    assert info.value.path == "text:1:25"
    assert "line 1, column 25" in info.value.message and "无法解析" in info.value.message


def test_leaf_defaults() -> None:
    leaf = parse_rule({"spent": 50000})
    assert isinstance(leaf, Leaf) and leaf.op == ">=" and leaf.window is None
    assert parse_rule({"layer": ["purchased", "koc"]}) == Leaf("layer", None, "in", ["purchased", "koc"], "")
    bought = parse_rule({"bought": True, "last_days": 60})
    assert isinstance(bought, Leaf) and bought.value == {} and bought.window == Window(last_days=60)
