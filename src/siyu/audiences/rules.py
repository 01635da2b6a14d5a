"""The audience rule language (人群规则): a JSON document validated into typed nodes.

A rule is a tree. Inner nodes are `{"all": [...]}`, `{"any": [...]}` and `{"not": {...}}`; a leaf
is an object whose *kind key* says what it tests (see docs/audiences.md for every kind):

    {"attribute": "city", "op": "in", "value": ["上海", "杭州"]}      named subject + op + value
    {"tag": "price_band", "op": "=", "value": "high"}
    {"layer": "purchased", "op": ">=", "period": "2024-06"}           the kind key holds the value
    {"did": "visit", "field": "mini_program", "min_times": 2, "last_days": 30}
    {"bought": {"category": "面霜"}, "from": "2024-06-01", "to": "2024-06-30"}
    {"spent": 50000, "op": ">=", "last_days": 90}                      money in fen

Validation is structural and needs no data; what needs the store or the lake (does the tag exist,
was the period's layer computed) is checked when the rule is compiled, with the same node paths.
Every error names the offending node, e.g. `all[2].any[0].op`. The rule's size is checked first
(`siyu.audiences.limits`), and every number and date has a range the engine can compute with
(`siyu.audiences.ranges`), so a rule that validates compiles without overflow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from siyu.audiences.errors import rule_error, short_value
from siyu.audiences.labels import CHANNELS, LAYER_CHANGES
from siyu.audiences.limits import RuleLimits, check_size
from siyu.audiences.ranges import (
    MAX_LAST_DAYS,
    MAX_TIMES,
    MAX_WINDOW_DAYS,
    check_day,
    check_fen,
    check_number,
    check_period,
    check_whole,
)
from siyu.clv.service import STAGES
from siyu.ingest.schema import IDENTIFIER_TYPES, RELATION_TYPES
from siyu.metrics.labels import LAYERS, RFM_GROUPS

OP_ALIASES = {"eq": "=", "==": "=", "ne": "!=", "<>": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
TEXT_OPS = ("=", "!=", "in", "not_in", "exists", "missing", "contains")
ORDER_OPS = ("=", "!=", ">", ">=", "<", "<=", "between", "exists", "missing")
SET_OPS = ("=", "!=", "in", "not_in")
PRESENCE_OPS = ("exists", "missing")
NO_VALUE_OPS = ("exists", "missing")
LIST_OPS = ("in", "not_in", "between")
ORDERED = (">", ">=", "<", "<=", "between")

# Profile attributes (from the latest `customers` rows) and how they compare.
ATTRIBUTES = {
    "gender": "text",
    "province": "text",
    "city": "text",
    "store_code": "text",
    "guide_code": "text",
    "source": "text",
    "birthday": "date",
    "created_at": "date",
    "birthday_month": "number",
}
MEMBERSHIP = {"member": "presence", "tier": "text", "program": "text", "points": "number", "joined_at": "date"}
RFM_SCORES = {s: "number" for s in ("r", "f", "m", "recency_days", "frequency", "monetary_fen")}
CLV_VALUES = {s: "number" for s in ("clv_fen", "p_alive", "expected_purchases", "expected_spend_fen")}
RFM_GROUP_KEYS = tuple(names[0] for names in RFM_GROUPS.values())
CONSENT_STATES = ("granted", "denied", "unknown")
ITEM_KEYS = ("category", "spu", "sku", "min_price_fen", "max_price_fen")
_SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
_CODE = re.compile(r"^[\w\-.]{1,64}$")
# Event property keys become JSON paths in the engine's SQL: plain names only.
PROPERTY_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Window:
    """A time window in brand-local days: the last N days up to and including the as-of day, or
    [from, to] (both inclusive; either may be open)."""

    last_days: int | None = None
    start: date | None = None
    end: date | None = None


@dataclass(frozen=True)
class Leaf:
    kind: str
    subject: str | None
    op: str
    value: Any
    path: str
    window: Window | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Group:
    op: str  # all | any
    children: tuple[Node, ...]
    path: str


@dataclass(frozen=True)
class Not:
    child: Node
    path: str


Node = Leaf | Group | Not


@dataclass(frozen=True)
class Kind:
    """How one leaf kind is written: named subjects (`subjects`: name -> value type; None = any
    code) or a value held in the kind key (`value_type`), the ops and extra keys it allows."""

    subjects: dict[str, str] | None = None
    value_type: str | None = None
    params: tuple[str, ...] = ()
    window: bool = False
    named: bool = True


KINDS: dict[str, Kind] = {
    "attribute": Kind(subjects=ATTRIBUTES),
    "tag": Kind(subjects=None, value_type="any"),
    "identifier": Kind(subjects={t: "presence" for t in IDENTIFIER_TYPES}),
    "membership": Kind(subjects=MEMBERSHIP),
    "relation": Kind(subjects={t: "presence" for t in (*RELATION_TYPES, "any")}, params=("field", "active")),
    "layer": Kind(value_type="layer", params=("period", "grain"), named=False),
    "layer_change": Kind(value_type="change", params=("period", "grain", "from", "to"), named=False),
    "rfm_group": Kind(value_type="rfm_group", params=("as_of", "window_days"), named=False),
    "rfm": Kind(subjects=RFM_SCORES, params=("as_of", "window_days")),
    "lifecycle": Kind(value_type="stage", params=("as_of",), named=False),
    "clv": Kind(subjects=CLV_VALUES),
    "did": Kind(subjects=None, params=("field", "min_times", "max_times", "properties"), window=True),
    "bought": Kind(
        value_type="items", params=("min_times", "max_times", "source", "store_code"), window=True, named=False
    ),
    "spent": Kind(value_type="fen", window=True, named=False),
    "reachable": Kind(value_type="channel", named=False),
    "consent": Kind(value_type="channel", params=("state",), named=False),
}
CHOICES = {
    "layer": LAYERS,
    "change": tuple(LAYER_CHANGES),
    "rfm_group": RFM_GROUP_KEYS,
    "stage": STAGES,
    "channel": tuple(CHANNELS),
}
WINDOW_KEYS = ("last_days", "from", "to")


def join_path(path: str, part: str | int) -> str:
    """`all[2]` + `op` -> `all[2].op`; `all` + 2 -> `all[2]`; the root is the empty path."""
    if isinstance(part, int):
        return f"{path}[{part}]"
    return f"{path}.{part}" if path else part


def parse_rule(doc: Any, path: str = "", limits: RuleLimits | None = None, *, count_chars: bool = True) -> Node:
    """Validate a rule document (already parsed from JSON) into nodes; raises RuleError. The size
    limits are checked first (`count_chars=False` when the caller measured the rule's text)."""
    check_size(doc, limits or RuleLimits(), path, count_chars=count_chars)
    return _parse(doc, path)


def _parse(doc: Any, path: str) -> Node:
    if not isinstance(doc, dict) or not doc:
        raise rule_error(path, "a rule node must be a non-empty JSON object", "规则节点必须是非空对象")
    combinators = [k for k in ("all", "any", "not") if k in doc]
    if combinators:
        key = combinators[0]
        if len(doc) != 1:
            extra = sorted(set(doc) - {key})
            raise rule_error(
                join_path(path, extra[0]),
                f"'{key}' stands alone; unexpected key {extra[0]!r}",
                f"'{key}' 节点不能有其他键",
            )
        here = join_path(path, key)
        if key == "not":
            return Not(_parse(doc["not"], here), here)
        children = doc[key]
        if not isinstance(children, list) or not children:
            raise rule_error(here, f"'{key}' needs a non-empty list of conditions", f"'{key}' 需要非空条件列表")
        return Group(key, tuple(_parse(c, join_path(here, i)) for i, c in enumerate(children)), here)
    kinds = [k for k in doc if k in KINDS]
    if len(kinds) != 1:
        known = ", ".join(["all", "any", "not", *KINDS])
        what = "no condition kind" if not kinds else f"several condition kinds ({', '.join(kinds)})"
        raise rule_error(path, f"{what}: a leaf has exactly one of {known}", "叶子节点须且仅须有一种条件类型")
    return _leaf(kinds[0], doc, path)


def _leaf(kind_name: str, doc: dict[str, Any], path: str) -> Leaf:
    kind = KINDS[kind_name]
    allowed = {kind_name, "op", "value", *kind.params, *(WINDOW_KEYS if kind.window else ())}
    for key in doc:
        if key not in allowed:
            raise rule_error(
                join_path(path, key),
                f"unknown key {key!r} for a {kind_name!r} condition; allowed: {', '.join(sorted(allowed))}",
                "该条件不支持此键",
            )
    raw_op = doc.get("op")
    op = OP_ALIASES.get(raw_op, raw_op) if isinstance(raw_op, str) else raw_op
    window = _window(doc, path) if kind.window else None
    params = {k: doc[k] for k in kind.params if k in doc}
    _check_params(kind_name, params, path)
    if kind_name == "did":
        return _did(doc, path, window, params)
    if kind_name == "bought":
        return _bought(doc, path, window, params)
    if kind.named:
        subject = doc[kind_name]
        here = join_path(path, kind_name)
        if not isinstance(subject, str) or not subject:
            raise rule_error(here, f"{kind_name!r} needs a name", "需要名称")
        if kind.subjects is not None and subject not in kind.subjects:
            raise rule_error(
                here, f"unknown {kind_name} {short_value(subject)}; known: {', '.join(kind.subjects)}", "未知名称"
            )
        if kind.subjects is None and not _CODE.match(subject):
            raise rule_error(here, f"invalid {kind_name} code {short_value(subject)}", "代码格式无效")
        vtype = kind.subjects[subject] if kind.subjects is not None else "any"
        if "value" not in doc and op is None:
            op = "exists"
        op, value = _op_value(vtype, op, doc.get("value"), "value" in doc, path, "value")
        return Leaf(kind_name, subject, op, value, path, window, params)
    # The kind key holds the value.
    vtype = kind.value_type or "any"
    if "value" in doc:
        raise rule_error(join_path(path, "value"), f"put the value in {kind_name!r} itself", "值应写在条件键中")
    default = "in" if isinstance(doc[kind_name], list) else ">=" if vtype == "fen" else "="
    op, value = _op_value(vtype, op if op is not None else default, doc[kind_name], True, path, kind_name)
    if kind_name in ("layer_change", "reachable", "consent") and op != "=":
        raise rule_error(join_path(path, "op"), f"{kind_name!r} takes no op", "此条件不支持 op")
    return Leaf(kind_name, None, op, value, path, window, params)


def _op_value(vtype: str, op: Any, value: Any, has_value: bool, path: str, value_key: str) -> tuple[str, Any]:
    here = join_path(path, value_key)
    ops = {
        "text": TEXT_OPS,
        "number": ORDER_OPS,
        "date": ORDER_OPS,
        "presence": PRESENCE_OPS,
        "fen": ORDER_OPS[:6],
        "any": tuple(dict.fromkeys(TEXT_OPS + ORDER_OPS)),
        "layer": (*SET_OPS, ">", ">=", "<", "<="),
    }.get(vtype, SET_OPS)
    if op is None:
        op = "in" if isinstance(value, list) else "="
    if op not in ops:
        raise rule_error(
            join_path(path, "op"), f"op {op!r} is not allowed here; use one of {', '.join(ops)}", "不支持的运算符"
        )
    if op in NO_VALUE_OPS:
        if has_value:
            raise rule_error(here, f"op {op!r} takes no value", "此运算符不需要值")
        return op, None
    if not has_value:
        raise rule_error(here, f"op {op!r} needs a value", "缺少值")
    if op in LIST_OPS:
        if not isinstance(value, list) or not value:
            raise rule_error(here, f"op {op!r} needs a non-empty list", "需要非空列表")
        if op == "between" and len(value) != 2:
            raise rule_error(here, "'between' needs [low, high]", "between 需要 [下限, 上限]")
        return op, [_scalar(_compared(vtype, op), v, join_path(here, i)) for i, v in enumerate(value)]
    return op, _scalar(_compared(vtype, op), value, here)


def _compared(vtype: str, op: str) -> str:
    """A tag (any value) compared by order is a numeric tag: its values must be numbers."""
    return "number" if vtype == "any" and op in ORDERED else vtype


def _scalar(vtype: str, value: Any, path: str) -> Any:
    if isinstance(value, (list, dict)) or value is None:
        raise rule_error(path, "expected a single value", "需要单个值")
    if vtype == "fen":
        return check_fen(value, path)
    if vtype == "number":
        return check_number(value, path)
    if vtype == "date":
        return check_day(value, path)
    if vtype in CHOICES:
        if value not in CHOICES[vtype]:
            raise rule_error(
                path, f"unknown {vtype} {short_value(value)}; known: {', '.join(CHOICES[vtype])}", "未知取值"
            )
        return value
    if vtype == "any" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return check_number(value, path)
    return str(value)


def _window(doc: dict[str, Any], path: str) -> Window | None:
    last = doc.get("last_days")
    start, end = (_scalar("date", doc[k], join_path(path, k)) if k in doc else None for k in ("from", "to"))
    if last is not None:
        check_whole(last, 1, MAX_LAST_DAYS, join_path(path, "last_days"), "last_days", "天数")
        if start or end:
            raise rule_error(
                join_path(path, "last_days"), "use last_days or from/to, not both", "last_days 与 from/to 不能同时使用"
            )
    if start and end and start > end:
        raise rule_error(join_path(path, "to"), f"'to' {end} is before 'from' {start}", "结束日期早于开始日期")
    if last is None and start is None and end is None:
        return None
    return Window(last, start, end)


def _check_params(kind: str, params: dict[str, Any], path: str) -> None:
    for key in ("min_times", "max_times"):
        if key in params:
            check_whole(params[key], 0, MAX_TIMES, join_path(path, key), key, "次数")
    if (
        params.get("min_times") is not None
        and params.get("max_times") is not None
        and params["min_times"] > params["max_times"]
    ):
        raise rule_error(join_path(path, "max_times"), "max_times is below min_times", "最大次数小于最小次数")
    for key in ("field", "source", "store_code"):
        v = params.get(key)
        if v is not None and not (
            isinstance(v, str) or (isinstance(v, list) and v and all(isinstance(x, str) for x in v))
        ):
            raise rule_error(join_path(path, key), f"{key} must be a code or a list of codes", "须为代码或代码列表")
    if "active" in params and not isinstance(params["active"], bool):
        raise rule_error(join_path(path, "active"), "active must be true or false", "active 须为布尔值")
    if "window_days" in params:
        check_whole(
            params["window_days"], 0, MAX_WINDOW_DAYS, join_path(path, "window_days"), "window_days", "窗口天数"
        )
    if "as_of" in params:
        params["as_of"] = _scalar("date", params["as_of"], join_path(path, "as_of"))
    if "state" in params and params["state"] not in CONSENT_STATES:
        raise rule_error(join_path(path, "state"), f"state must be one of {', '.join(CONSENT_STATES)}", "授权状态无效")
    for key in ("from", "to"):
        if key in params:
            params[key] = _scalar("layer", params[key], join_path(path, key))
    if "grain" in params and params["grain"] not in ("month", "week", "quarter", "year"):
        raise rule_error(join_path(path, "grain"), "grain must be month, week, quarter or year", "周期粒度无效")
    if "period" in params:
        check_period(params["period"], join_path(path, "period"))
    if "properties" in params:
        _properties(params["properties"], join_path(path, "properties"))


def _properties(props: Any, path: str) -> None:
    if not isinstance(props, dict):
        raise rule_error(path, "properties is an object of simple values", "properties 须为简单键值对象")
    for key, value in props.items():
        here = join_path(path, key) if PROPERTY_KEY.match(key) else path
        if not PROPERTY_KEY.match(key):
            raise rule_error(
                here,
                f"property name {short_value(key)}: letters, digits and _ only, starting with a letter or _, "
                "at most 64 characters",
                "属性名只能包含字母、数字和下划线",
            )
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            check_number(value, here)
        elif not isinstance(value, (str, bool)):
            raise rule_error(here, "a property value is a string, a number or true / false", "属性值须为简单值")


def _did(doc: dict[str, Any], path: str, window: Window | None, params: dict[str, Any]) -> Leaf:
    event = doc["did"]
    if not isinstance(event, str) or not _SNAKE.match(event):
        raise rule_error(
            join_path(path, "did"),
            f"an event type is a snake_case name, got {short_value(event)}",
            "事件类型须为 snake_case",
        )
    if "op" in doc or "value" in doc:
        key = "op" if "op" in doc else "value"
        raise rule_error(
            join_path(path, key),
            "'did' counts with min_times / max_times, not op / value",
            "行为条件用 min_times / max_times",
        )
    return Leaf("did", event, ">=", params.get("min_times", 1), path, window, params)


def _bought(doc: dict[str, Any], path: str, window: Window | None, params: dict[str, Any]) -> Leaf:
    items = doc["bought"]
    here = join_path(path, "bought")
    if items is True:
        items = {}
    if not isinstance(items, dict):
        raise rule_error(here, '\'bought\' is true or an item filter such as {"category": "面霜"}', "购买条件格式错误")
    for key, v in items.items():
        if key not in ITEM_KEYS:
            raise rule_error(
                join_path(here, key), f"unknown item filter {key!r}; use {', '.join(ITEM_KEYS)}", "未知商品筛选"
            )
        if key.endswith("_fen"):
            _scalar("fen", v, join_path(here, key))
        elif not (isinstance(v, str) or (isinstance(v, list) and v and all(isinstance(x, str) for x in v))):
            raise rule_error(join_path(here, key), f"{key} must be a value or a list of values", "须为值或值列表")
    if "op" in doc:
        raise rule_error(
            join_path(path, "op"), "'bought' counts with min_times / max_times, not op", "购买条件用 min_times"
        )
    return Leaf("bought", None, ">=", dict(items), path, window, params)


def walk(node: Node) -> list[Leaf]:
    """Every leaf of a rule, in document order."""
    if isinstance(node, Leaf):
        return [node]
    if isinstance(node, Not):
        return walk(node.child)
    return [leaf for child in node.children for leaf in walk(child)]
