"""Size limits of audience rules, checked before anything else reads the rule (规则规模上限).

Compiling costs grow with every condition (each one is a join the query planner must place) and
the validator and compiler recurse along the nesting, so an unbounded rule can hold a compute
engine for minutes or exhaust the stack. `check_size` walks the raw document once, iteratively,
and stops as soon as a limit is passed: a rule of a million conditions costs no more to refuse
than one just over the limit. The defaults are settings (`SIYU_RULE_MAX_*`, docs/api.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from siyu.audiences.errors import RuleError

COMBINATORS = ("all", "any", "not")


@dataclass(frozen=True)
class RuleLimits:
    """`max_depth`: nested all / any / not around a condition; `max_nodes`: conditions and
    combinators together; `max_values`: values in one list; `max_chars`: the rule's text (the
    text form, or its JSON)."""

    max_depth: int = 20
    max_nodes: int = 200
    max_values: int = 1_000
    max_chars: int = 20_000


def check_text(text: str, limits: RuleLimits) -> None:
    """A rule given as text (the text form or JSON text) is refused unread when it is too long."""
    if len(text) > limits.max_chars:
        raise RuleError(
            "$",
            f"the rule is {len(text):,} characters long; at most {limits.max_chars:,} are allowed "
            f"(SIYU_RULE_MAX_CHARS) (规则文本过长：最多 {limits.max_chars:,} 字符)",
        )


def _chars(value: Any) -> int:
    """About how many characters the value takes in JSON, without formatting it (a huge integer
    would be slow to format, and refused by Python over 4,300 digits)."""
    if isinstance(value, str):
        return len(value) + 3
    if isinstance(value, bool) or value is None:
        return 6
    if isinstance(value, int):
        return value.bit_length() * 3 // 10 + 3
    return 25


def check_size(doc: Any, limits: RuleLimits, path: str = "", *, count_chars: bool = True) -> None:
    """Refuse a rule document over any limit, naming the limit and where it was passed. Only the
    size is checked: a malformed rule under the limits is left to `parse_rule`, which says what is
    wrong. `count_chars=False` when the caller measured the rule's text already."""
    nodes = chars = 0
    # (value, path, combinator depth, is it at a rule node's place?)
    stack: list[tuple[Any, str, int, bool]] = [(doc, path, 0, True)]
    while stack:
        value, here, depth, is_node = stack.pop()
        if isinstance(value, dict):
            combinator = None
            if is_node:
                nodes += 1
                if nodes > limits.max_nodes:
                    raise _too_many(here, limits)
                combinator = next((k for k in COMBINATORS if k in value), None)
                if combinator is not None:
                    depth += 1
                    if depth > limits.max_depth:
                        raise RuleError(
                            here,
                            f"the rule nests all / any / not more than {limits.max_depth} levels deep "
                            f"(SIYU_RULE_MAX_DEPTH) (规则嵌套过深：最多 {limits.max_depth} 层)",
                        )
            chars += 2
            for key, item in value.items():
                chars += _chars(str(key))
                child = f"{here}.{key}" if here else str(key)
                if key == combinator and isinstance(item, list):  # the conditions of all / any
                    if len(item) > limits.max_nodes:
                        raise _too_many(child, limits)
                    chars += 2
                    stack.extend((c, f"{child}[{i}]", depth, True) for i, c in enumerate(item))
                elif isinstance(item, (dict, list)):
                    stack.append((item, child, depth, key == combinator))
                else:
                    chars += _chars(item)
        elif isinstance(value, list):
            if len(value) > limits.max_values:
                raise RuleError(
                    here,
                    f"{len(value):,} values in one list; at most {limits.max_values:,} are allowed "
                    f"(SIYU_RULE_MAX_VALUES) (列表取值过多：最多 {limits.max_values:,} 个)",
                )
            chars += 2
            for i, item in enumerate(value):
                if isinstance(item, (dict, list)):
                    stack.append((item, f"{here}[{i}]", depth, False))
                else:
                    chars += _chars(item)
        else:
            chars += _chars(value)
        if count_chars and chars > limits.max_chars:
            raise RuleError(
                "$",
                f"the rule is over {limits.max_chars:,} characters as JSON; at most {limits.max_chars:,} are "
                f"allowed (SIYU_RULE_MAX_CHARS) (规则过长：最多 {limits.max_chars:,} 字符)",
            )


def _too_many(path: str, limits: RuleLimits) -> RuleError:
    return RuleError(
        path,
        f"the rule has more than {limits.max_nodes} conditions and combinators; split it or save parts "
        f"as rule tags (SIYU_RULE_MAX_NODES) (规则条件过多：最多 {limits.max_nodes} 个)",
    )
