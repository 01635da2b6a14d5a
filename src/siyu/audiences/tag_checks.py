"""The shape of a rule tag's rule (see siyu.audiences.tag_rules for what each form computes): pure
checks, used when a tag is defined and when it is computed."""

from __future__ import annotations

from typing import Any

from siyu.audiences.errors import RuleError
from siyu.audiences.rules import ITEM_KEYS, Window, parse_rule

MEASURES = ("spend_fen", "orders", "avg_order_fen", "avg_item_price_fen", "items", "days_since_purchase", "events")
TOPS = ("category", "spu")


def validate_tag_rule(rule: dict[str, Any]) -> str:
    """Check a tag rule's shape; returns its value type (enum or number). Paths as in audience rules."""
    if not isinstance(rule, dict):
        raise RuleError("$", "a tag rule is a JSON object with cases, measure or top (标签规则格式错误)")
    forms = [k for k in ("cases", "measure", "top") if k in rule]
    if len(forms) != 1:
        raise RuleError("$", "a tag rule has exactly one of cases, measure, top (须且仅须有一种规则)")
    if forms[0] == "cases":
        cases = rule["cases"]
        if not isinstance(cases, list) or not cases:
            raise RuleError("cases", "cases is a non-empty list of {value, when} (需要非空列表)")
        for i, case in enumerate(cases):
            if not isinstance(case, dict) or set(case) != {"value", "when"} or not str(case["value"]):
                raise RuleError(f"cases[{i}]", 'each case is {"value": …, "when": <audience rule>} (格式错误)')
            parse_rule(case["when"], f"cases[{i}].when")
        return "enum"
    if forms[0] == "top":
        if rule["top"] not in TOPS:
            raise RuleError("top", f"top is one of {', '.join(TOPS)} (取值无效)")
        window(rule)
        return "enum"
    if rule["measure"] not in MEASURES:
        raise RuleError("measure", f"unknown measure {rule['measure']!r}; known: {', '.join(MEASURES)} (未知指标)")
    if rule["measure"] == "events" and not isinstance(rule.get("event"), str):
        raise RuleError("event", 'the events measure needs an event type, e.g. "event": "visit" (缺少事件类型)')
    for key in rule.get("items") or {}:
        if key not in ITEM_KEYS:
            raise RuleError(f"items.{key}", f"unknown item filter; use {', '.join(ITEM_KEYS)} (未知商品筛选)")
    window(rule)
    bands = rule.get("bands")
    if bands is None:
        return "number"
    if not isinstance(bands, list) or not bands:
        raise RuleError("bands", "bands is a non-empty list (需要非空列表)")
    for i, band in enumerate(bands):
        last = i == len(bands) - 1
        if not isinstance(band, dict) or "value" not in band or ("below" not in band and not last):
            raise RuleError(
                f"bands[{i}]", 'each band is {"value": …, "below": n}; only the last may omit below (格式错误)'
            )
    return "enum"


def window(rule: dict[str, Any]) -> Window | None:
    days = rule.get("last_days")
    if days is None:
        return None
    if not isinstance(days, int) or isinstance(days, bool) or days < 1:
        raise RuleError("last_days", "last_days must be a whole number ≥ 1 (天数须为正整数)")
    return Window(last_days=days)


def rule_values(rule: dict[str, Any]) -> list[str]:
    if "cases" in rule:
        return list(dict.fromkeys(str(c["value"]) for c in rule["cases"]))
    if "bands" in rule:
        return [str(b["value"]) for b in rule["bands"]]
    return []
