"""Fuzzing the rule language: whatever the JSON or text, validation either accepts the rule or raises
RuleError (`invalid_rule`), never another exception, and quickly (tests/fixtures/rule_strategies.py).
The HTTP side (never a 5xx) is tests/api/test_audience_rules_fuzz_api.py."""

from __future__ import annotations

import math
import re
import time
from datetime import date
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fixtures.rule_strategies import json_rules, nested_not, text_rules
from siyu.audiences.errors import RuleError
from siyu.audiences.rules import Leaf, Node, Not, Window, walk
from siyu.audiences.service import parse_input

PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")  # what may become a JSON path in SQL
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def depth_and_size(node: Node) -> tuple[int, int]:
    """(all / any / not levels, nodes) of a validated rule."""
    if isinstance(node, Leaf):
        return 0, 1
    children = [node.child] if isinstance(node, Not) else list(node.children)
    below = [depth_and_size(c) for c in children]
    return 1 + max(d for d, _ in below), 1 + sum(n for _, n in below)


def computable(value: Any) -> bool:
    """What the engine can take: 64-bit integers, finite numbers, days within 1900–2999."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return True
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, date):
        return 1900 <= value.year <= 2999
    if isinstance(value, (list, tuple)):
        return all(computable(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and PLAIN_NAME.match(k) for k in value) and all(
            computable(v) for v in value.values()
        )
    if isinstance(value, Window):
        return (value.last_days is None or 1 <= value.last_days <= 3660) and computable([value.start, value.end])
    return False


def validates_or_refuses(rule: Any) -> None:
    """Accepted within the limits and ranges, or refused with the domain error: nothing else."""
    started = time.perf_counter()
    try:
        _, node = parse_input(rule)
    except RuleError as exc:
        assert exc.code == "invalid_rule" and exc.path
    else:
        depth, size = depth_and_size(node)
        assert depth <= 20 and size <= 200
        for leaf in walk(node):
            props = leaf.params.get("properties", {})
            assert computable([leaf.value, leaf.window, {k: v for k, v in leaf.params.items() if k != "properties"}])
            assert computable(props), leaf
    assert time.perf_counter() - started < 2


@FUZZ
@given(json_rules())
@example(nested_not(100, {"identifier": "phone"}))
@example({"did": "visit", "min_times": 1e30})
@example({"did": "visit", "last_days": 1e12})
@example({"spent": 10**30, "op": ">="})
@example({"did": "visit", "properties": {"a' or 1=1 --": "x"}})
@example({"attribute": "city", "op": "in", "value": ["x"] * 200_000})
@example({"all": [{"identifier": "phone"}] * 20_000})
@example({"did": "visit", "to": "9999-12-31"})
@example({"membership": "points", "op": ">", "value": float("nan")})
def test_json_rules_validate_or_raise_rule_error(rule: Any) -> None:
    validates_or_refuses(rule)


@FUZZ
@given(text_rules())
@example("not " * 5000 + "has phone")
@example(" and ".join(["has phone"] * 500))
@example("spent >= 999999999999999999999999999999")
@example("did visit in last 999999999 days")
@example("did visit >= " + "9" * 5000 + " times")
def test_text_rules_validate_or_raise_rule_error(text: str) -> None:
    validates_or_refuses(text)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 3000))
def test_json_text_nested_deep_is_refused_not_crashed(depth: int) -> None:
    validates_or_refuses('{"not":' * depth + '{"identifier": "phone"}' + "}" * depth)
