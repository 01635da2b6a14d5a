"""Rules that are too big, too deep or out of range are refused as `invalid_rule` (RuleError) before
anything compiles, cheaply, with a message naming the limit — never a RecursionError, TypeError,
OverflowError or a SQL tokenizer error from deeper down (siyu.audiences.limits, rules, text)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from siyu.audiences.errors import RuleError
from siyu.audiences.limits import RuleLimits
from siyu.audiences.rules import PROPERTY_KEY, parse_rule
from siyu.audiences.service import parse_input

LEAF = {"identifier": "phone"}


def nested(kind: str, depth: int, leaf: dict[str, Any] = LEAF) -> dict[str, Any]:
    doc = leaf
    for _ in range(depth):
        doc = {"not": doc} if kind == "not" else {kind: [doc]}
    return doc


def refused(rule: Any, limits: RuleLimits | None = None) -> RuleError:
    with pytest.raises(RuleError) as info:
        parse_input(rule, limits)
    assert info.value.code == "invalid_rule"
    assert "(" in info.value.message  # bilingual: the Chinese text follows in parentheses
    return info.value


# The cases of the hardening issue: each answered 500 (the exception in the comment) before.
@pytest.mark.parametrize(
    ("rule", "path", "words"),
    [
        (nested("not", 100), ".".join(["not"] * 20), "SIYU_RULE_MAX_DEPTH"),  # RecursionError (after 11 s)
        ("not " * 5000 + "has phone", "$", "SIYU_RULE_MAX_CHARS"),  # RecursionError in the transformer
        (" and ".join(["has phone"] * 500), "all", "SIYU_RULE_MAX_NODES"),  # RecursionError
        ('{"not": ' * 900 + '{"identifier": "phone"}' + "}" * 900, ".".join(["not"] * 20), "SIYU_RULE_MAX_DEPTH"),
        ('{"not":' * 2000 + "{}" + "}" * 2000, "$", "cannot be read"),  # past the JSON parser's stack
        ("spent >= 999999999999999999999999999999", "spent", "int64"),  # TypeError in ibis
        ({"spent": 10**30}, "spent", "int64"),
        ({"did": "visit", "min_times": 1e30}, "min_times", "2,147,483,647"),
        ("did visit >= 99999999999999 times", "min_times", "2,147,483,647"),  # TypeError
        ("did visit in last 999999999 days", "last_days", "3,660"),  # OverflowError
        ({"did": "visit", "last_days": 1e12}, "last_days", "3,660"),
        ({"did": "visit", "properties": {"a' or 1=1 --": "x"}}, "properties", "property name"),  # TokenError
        ({"did": "visit", "properties": {"a.b": "x"}}, "properties", "property name"),
        ({"did": "visit", "properties": {"k": 10**40}}, "properties.k", "64 bits"),
        ({"membership": "points", "op": ">", "value": 10**30}, "value", "64 bits"),  # TypeError
        ({"membership": "points", "op": ">", "value": float("nan")}, "value", "finite"),
        ({"rfm": "r", "op": ">=", "value": float("inf")}, "value", "finite"),
        ({"did": "visit", "from": "0001-01-01"}, "from", "1900-01-01"),  # OverflowError
        ({"did": "visit", "to": "9999-12-31"}, "to", "2999-12-31"),  # OverflowError
        ({"rfm": "r", "op": ">", "value": 1, "as_of": "9999-12-31"}, "as_of", "2999-12-31"),
        ({"rfm": "r", "op": ">", "value": 1, "window_days": 10**30}, "window_days", "36,500"),
        ({"rfm": "r", "op": ">", "value": 1, "window_days": True}, "window_days", "whole number"),
        ({"layer": "purchased", "period": "9999-12"}, "period", "2999"),  # OverflowError in the period
        ({"layer": "purchased", "period": "0001-01"}, "period", "1900"),
        ({"bought": {"max_price_fen": 10**20}}, "bought.max_price_fen", "fen"),
        ("bought price < ¥0", "bought.max_price_fen", "fen"),
        ({"tag": "band", "op": "between", "value": ["a", 1]}, "value[0]", "number"),  # ibis type error
        ({"tag": "band", "op": ">", "value": "high"}, "value", "number"),
        ({"attribute": "city", "op": "in", "value": ["x"] * 200_000}, "value", "SIYU_RULE_MAX_VALUES"),
        ({"all": [LEAF] * 20_000}, "all", "SIYU_RULE_MAX_NODES"),  # held an engine for 12 minutes
        ('{"not":' * 3000 + "{}" + "}" * 3000, "$", "SIYU_RULE_MAX_CHARS"),
    ],
)
def test_bad_rules_are_invalid_rule_errors(rule: Any, path: str, words: str) -> None:
    error = refused(rule)
    assert error.path == path
    assert words in error.message


def test_limits_are_checked_before_any_work() -> None:
    # 20,000 conditions (560 KB) held an engine at 100 % CPU for 12 minutes; 200,000 values took 80 s.
    huge = {"all": [{"did": "visit", "field": "mini_program", "min_times": 2, "last_days": 30}] * 20_000}
    values = {"attribute": "city", "op": "in", "value": [f"city{i}" for i in range(200_000)]}
    for rule in (huge, values, nested("not", 100_000)):
        started = time.perf_counter()
        refused(rule)
        assert time.perf_counter() - started < 0.5


def test_limits_are_the_given_ones() -> None:
    small = RuleLimits(max_depth=2, max_nodes=4, max_values=3, max_chars=200)
    assert parse_rule(nested("any", 2), limits=small)
    assert "more than 2 levels" in refused(nested("any", 3), small).message
    assert "more than 4 conditions" in refused({"all": [LEAF] * 4}, small).message  # 5 nodes with the all
    assert parse_rule({"all": [LEAF] * 3}, limits=small)
    assert "at most 3" in refused({"attribute": "city", "op": "in", "value": ["a"] * 4}, small).message
    assert "200" in refused({"attribute": "city", "value": "x" * 200}, small).message
    assert "200" in refused("attribute.city = " + "x" * 200, small).message
    # Defaults: 20 levels, 200 nodes, 1,000 values, 20,000 characters are accepted.
    assert parse_rule(nested("not", 20))
    assert parse_rule({"all": [LEAF] * 199})
    assert parse_rule({"attribute": "city", "op": "in", "value": ["上海"] * 1000})
    assert "SIYU_RULE_MAX_DEPTH" in refused(nested("not", 21)).message
    assert "SIYU_RULE_MAX_NODES" in refused({"all": [LEAF] * 200}).message


def test_text_form_limits_apply_to_its_text_not_its_json() -> None:
    # Six lists of 1,000 values: 18,000 characters of text, about 24,000 as JSON.
    text = " or ".join(["attribute.city in [" + ", ".join(["x"] * 1000) + "]"] * 6)
    assert len(text) < 20_000
    doc, _ = parse_input(text)
    assert len(json.dumps(doc)) > 20_000
    # A deep `not` chain within the text limit is transformed without recursion, then refused by depth.
    error = refused("not " * 3000 + "has phone", RuleLimits(max_chars=100_000))
    assert "SIYU_RULE_MAX_DEPTH" in error.message


@pytest.mark.parametrize("key", ["utm_source", "_k", "K9", "a" * 64])
def test_plain_property_names_are_accepted(key: str) -> None:
    leaf = parse_rule({"did": "visit", "properties": {key: "x"}})
    assert PROPERTY_KEY.match(key) and leaf is not None


@pytest.mark.parametrize(
    "rule",
    [
        {"spent": 2**63 - 1},
        {"did": "visit", "min_times": 2**31 - 1, "last_days": 3660},
        {"did": "visit", "from": "1900-01-01", "to": "2999-12-31"},
        {"membership": "points", "op": "<", "value": -(2**63)},
        {"clv": "p_alive", "op": ">=", "value": 0.5},
        {"tag": "band", "op": "between", "value": [1, 2.5]},
        {"tag": "band", "op": "=", "value": "high"},
        {"layer": "purchased", "period": "2024-06"},
    ],
)
def test_edges_of_the_ranges_are_accepted(rule: dict[str, Any]) -> None:
    assert parse_rule(rule) is not None
