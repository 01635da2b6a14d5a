"""The short readable text form of audience rules (for the CLI), parsed with Lark into the JSON form.

    attribute.city in ["上海", "杭州"] and tag.price_band = high
      and layer >= purchased at 2024-06
      and did visit in mini_program >= 2 times in last 30 days
      and (bought category 面霜 from 2024-06-01 to 2024-06-30 or spent >= ¥500 in last 90 days)
      and not bought in last 60 days and reachable sms

`and` binds tighter than `or`; `not` applies to the condition or parenthesised group after it.
Money is `¥500` / `¥12.50` (yuan) or a bare integer number of fen. The text is only a spelling of
the JSON document: it is turned into JSON and validated by `siyu.audiences.rules` like any rule.

The text is refused unread over the length limit; the LALR parser and the transformer use no
recursion, so a long `a and b and …` or `not not …` cannot exhaust the stack (the size limits of
the JSON document then say what is too big).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from lark import Lark, Token
from lark.exceptions import UnexpectedInput, VisitError
from lark.visitors import Transformer_NonRecursive

from siyu.audiences.errors import RuleError
from siyu.audiences.limits import RuleLimits, check_text

GRAMMAR = r"""
?start: or_expr
?or_expr: and_expr | or_expr "or" and_expr -> any_
?and_expr: unary | and_expr "and" unary -> all_
?unary: "not" unary -> not_
      | "(" or_expr ")"
      | "all" "(" or_expr ("," or_expr)* ")" -> all_
      | "any" "(" or_expr ("," or_expr)* ")" -> any_
      | leaf

?leaf: "attribute" "." NAME test           -> attribute
     | "tag" "." NAME test?                 -> tag
     | "has" NAME                           -> identifier
     | "member"                             -> member
     | "tier" test                          -> tier
     | "points" test                        -> points
     | "relation" NAME ("in" names)?        -> relation
     | "layer" CHANGE at?                   -> layer_change
     | "layer" test at?                     -> layer
     | "rfm_group" test at?                 -> rfm_group
     | "rfm" "." NAME test at?              -> rfm
     | "lifecycle" test at?                 -> lifecycle
     | "clv" ("." NAME)? test               -> clv
     | "did" NAME ("in" names)? times? window? -> did
     | "bought" item* times? window?        -> bought
     | "spent" CMP money window?            -> spent
     | "reachable" NAME                     -> reachable
     | "consent" NAME STATE?                -> consent

test: CMP scalar            -> compare
    | "in" vlist             -> in_
    | "not" "in" vlist       -> not_in
    | "between" vlist        -> between
    | "exists"              -> exists
    | "missing"             -> missing
    | "contains" scalar     -> contains
at: "at" (PERIOD | DATE)
times: CMP INT "times"
window: "in" "last" INT "days"        -> last
      | "from" DATE ("to" DATE)?      -> span
      | "to" DATE                     -> until
item: ITEM names                      -> item
    | "price" CMP money               -> price
names: scalar | vlist
vlist: "[" scalar ("," scalar)* "]"
?scalar: STRING -> string
       | NUMBER -> number
       | INT -> number
       | DATE -> text
       | PERIOD -> text
       | NAME -> text
money: MONEY -> yuan
     | INT -> fen

CMP: ">=" | "<=" | "!=" | "=" | ">" | "<"
CHANGE: "deepened" | "declined" | "unchanged" | "entered" | "left"
STATE: "granted" | "denied" | "unknown"
ITEM: "category" | "spu" | "sku"
MONEY.2: /¥[0-9]+(\.[0-9]{1,2})?/
DATE.3: /[0-9]{4}-[0-9]{2}-[0-9]{2}/
PERIOD.2: /[0-9]{4}-(Q[1-4]|W[0-9]{2}|[0-9]{2})/
NUMBER.1: /-?[0-9]+\.[0-9]+/
INT: /[0-9]+/
NAME: /[^\W\d][\w\-]*/
STRING: /"([^"\\]|\\.)*"/

%import common.WS
%ignore WS
"""

_parser = Lark(GRAMMAR, parser="lalr", maybe_placeholders=False)
_OPS = {"=": "=", "!=": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}


def _merge(kind: str, children: list[Any]) -> dict[str, Any]:
    out: list[Any] = []
    for c in children:
        out.extend(c[kind] if isinstance(c, dict) and set(c) == {kind} else [c])
    return {kind: out}


class _ToJson(Transformer_NonRecursive[Token, Any]):
    # -- combinators -------------------------------------------------------------------------------
    def any_(self, c: list[Any]) -> dict[str, Any]:
        return _merge("any", c)

    def all_(self, c: list[Any]) -> dict[str, Any]:
        return _merge("all", c)

    def not_(self, c: list[Any]) -> dict[str, Any]:
        return {"not": c[0]}

    # -- values --------------------------------------------------------------------------------------
    def string(self, c: list[Token]) -> str:
        return str(c[0])[1:-1].replace('\\"', '"').replace("\\\\", "\\")

    def number(self, c: list[Token]) -> int | float:
        text = str(c[0])
        return float(text) if "." in text else int(text)

    def text(self, c: list[Token]) -> str:
        return str(c[0])

    def vlist(self, c: list[Any]) -> list[Any]:
        return list(c)

    def names(self, c: list[Any]) -> Any:
        return c[0]

    def yuan(self, c: list[Token]) -> int:
        return int(Decimal(str(c[0])[1:]) * 100)

    def fen(self, c: list[Token]) -> int:
        return int(str(c[0]))

    # -- tests and modifiers ---------------------------------------------------------------------------
    def compare(self, c: list[Any]) -> dict[str, Any]:
        return {"op": _OPS[str(c[0])], "value": c[1]}

    def in_(self, c: list[Any]) -> dict[str, Any]:
        return {"op": "in", "value": c[0]}

    def not_in(self, c: list[Any]) -> dict[str, Any]:
        return {"op": "not_in", "value": c[0]}

    def between(self, c: list[Any]) -> dict[str, Any]:
        return {"op": "between", "value": c[0]}

    def exists(self, _: list[Any]) -> dict[str, Any]:
        return {"op": "exists"}

    def missing(self, _: list[Any]) -> dict[str, Any]:
        return {"op": "missing"}

    def contains(self, c: list[Any]) -> dict[str, Any]:
        return {"op": "contains", "value": c[0]}

    def at(self, c: list[Token]) -> dict[str, Any]:
        text = str(c[0])
        return {"as_of": text} if c[0].type == "DATE" else {"period": text}

    def times(self, c: list[Any]) -> dict[str, Any]:
        op, n = str(c[0]), int(str(c[1]))
        if op in (">=", "="):
            out = {"min_times": n}
            return out | {"max_times": n} if op == "=" else out
        if op == ">":
            return {"min_times": n + 1}
        if op == "<=":
            return {"max_times": n}
        if op == "<":
            return {"max_times": max(n - 1, 0)}
        raise ValueError("'!=' is not a count comparison; use not (...)")

    def last(self, c: list[Token]) -> dict[str, Any]:
        return {"last_days": int(str(c[0]))}

    def span(self, c: list[Token]) -> dict[str, Any]:
        return {"from": str(c[0]), **({"to": str(c[1])} if len(c) > 1 else {})}

    def until(self, c: list[Token]) -> dict[str, Any]:
        return {"to": str(c[0])}

    def item(self, c: list[Any]) -> dict[str, Any]:
        return {str(c[0]): c[1]}

    def price(self, c: list[Any]) -> dict[str, Any]:
        op = str(c[0])
        if op in (">=", ">"):
            return {"min_price_fen": c[1] + (1 if op == ">" else 0)}
        if op in ("<=", "<"):
            return {"max_price_fen": c[1] - (1 if op == "<" else 0)}
        return {"min_price_fen": c[1], "max_price_fen": c[1]}

    # -- leaves ----------------------------------------------------------------------------------------
    @staticmethod
    def _mods(parts: list[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for p in parts:
            out |= p
        return out

    def attribute(self, c: list[Any]) -> dict[str, Any]:
        return {"attribute": str(c[0]), **c[1]}

    def tag(self, c: list[Any]) -> dict[str, Any]:
        return {"tag": str(c[0]), **(c[1] if len(c) > 1 else {})}

    def identifier(self, c: list[Any]) -> dict[str, Any]:
        return {"identifier": str(c[0])}

    def member(self, _: list[Any]) -> dict[str, Any]:
        return {"membership": "member"}

    def tier(self, c: list[Any]) -> dict[str, Any]:
        return {"membership": "tier", **c[0]}

    def points(self, c: list[Any]) -> dict[str, Any]:
        return {"membership": "points", **c[0]}

    def relation(self, c: list[Any]) -> dict[str, Any]:
        return {"relation": str(c[0]), **({"field": c[1]} if len(c) > 1 else {})}

    def _valued(self, kind: str, c: list[Any]) -> dict[str, Any]:
        test = c[0]
        if "value" not in test:
            raise ValueError(f"'{kind}' compares with a value")
        return {kind: test["value"], "op": test["op"], **self._mods(c[1:])}

    def layer(self, c: list[Any]) -> dict[str, Any]:
        return self._valued("layer", c)

    def layer_change(self, c: list[Any]) -> dict[str, Any]:
        return {"layer_change": str(c[0]), **self._mods(c[1:])}

    def rfm_group(self, c: list[Any]) -> dict[str, Any]:
        return self._valued("rfm_group", c)

    def lifecycle(self, c: list[Any]) -> dict[str, Any]:
        return self._valued("lifecycle", c)

    def rfm(self, c: list[Any]) -> dict[str, Any]:
        return {"rfm": str(c[0]), **c[1], **self._mods(c[2:])}

    def clv(self, c: list[Any]) -> dict[str, Any]:
        if isinstance(c[0], Token):
            return {"clv": str(c[0]), **c[1]}
        return {"clv": "clv_fen", **c[0]}

    def did(self, c: list[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"did": str(c[0])}
        for part in c[1:]:
            out |= part if isinstance(part, dict) else {"field": part}
        return out

    def bought(self, c: list[Any]) -> dict[str, Any]:
        items: dict[str, Any] = {}
        mods: dict[str, Any] = {}
        for part in c:
            key = next(iter(part))
            (items if key in ("category", "spu", "sku", "min_price_fen", "max_price_fen") else mods).update(part)
        return {"bought": items or True, **mods}

    def spent(self, c: list[Any]) -> dict[str, Any]:
        return {"spent": c[1], "op": _OPS[str(c[0])], **self._mods(c[2:])}

    def reachable(self, c: list[Any]) -> dict[str, Any]:
        return {"reachable": str(c[0])}

    def consent(self, c: list[Any]) -> dict[str, Any]:
        return {"consent": str(c[0]), **({"state": str(c[1])} if len(c) > 1 else {})}


def text_to_json(text: str, limits: RuleLimits | None = None) -> dict[str, Any]:
    """Parse the text form into the JSON rule document (not yet validated: see `parse_rule`)."""
    check_text(text, limits or RuleLimits())
    try:
        tree = _parser.parse(text)
    except UnexpectedInput as exc:
        near = text[max(exc.pos_in_stream or 0, 0) : (exc.pos_in_stream or 0) + 20]
        raise RuleError(
            f"text:{exc.line}:{exc.column}",
            f"cannot read the rule near {near!r} (line {exc.line}, column {exc.column}) (规则文本无法解析)",
        ) from exc
    try:
        doc = _ToJson().transform(tree)
    except VisitError as exc:
        raise RuleError("text", f"{exc.orig_exc} (规则文本无效)") from exc
    if not isinstance(doc, dict):
        raise RuleError("text", "a rule is a condition, not a bare value (规则须为条件)")
    return doc
