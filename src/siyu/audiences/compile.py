"""Compile a validated rule into one Ibis expression: the distinct `customer_id`s of the audience.

`all` = the first positive condition semi-joined with the others, minus (anti-join) its `not`
children; `any` = a distinct union; a lone `not` = every customer of the brand minus the child.
Nothing runs until the caller counts or exports, so DuckDB plans the whole audience as one query.
Building the expression costs Python time that grows with the rule (each join looks at the whole
expression below it), so every node checks the request's time limit (`siyu.engine.timeout`).
"""

from __future__ import annotations

from collections.abc import Callable

import ibis
import ibis.expr.types as ir

from siyu.audiences import behaviour, derived, profile, reach
from siyu.audiences.context import ID, Context
from siyu.audiences.rules import Group, Leaf, Node, Not, walk
from siyu.engine.timeout import check_time

LEAVES: dict[str, Callable[[Context, Leaf], ir.Table]] = {
    "attribute": profile.attribute,
    "identifier": profile.identifier,
    "membership": profile.membership,
    "relation": profile.relation,
    "tag": derived.tag,
    "layer": derived.layer,
    "layer_change": derived.layer_change,
    "rfm_group": derived.rfm_group,
    "rfm": derived.rfm,
    "lifecycle": derived.lifecycle,
    "clv": derived.clv,
    "did": behaviour.did,
    "bought": behaviour.bought,
    "spent": behaviour.spent,
    "reachable": reach.reachable,
    "consent": reach.consent,
}
# Conditions read from derived tables keyed by customer_id alone, which may hold customers since
# merged away (or, in a one-customer context, other customers): the result is cut to the brand.
DERIVED = ("tag", "layer", "layer_change", "rfm_group", "rfm", "lifecycle", "clv")


def _node(ctx: Context, node: Node) -> ir.Table:
    check_time()
    if isinstance(node, Leaf):
        return LEAVES[node.kind](ctx, node)
    if isinstance(node, Not):
        return ctx.universe.anti_join(_node(ctx, node.child), ID)
    if node.op == "any":
        return ibis.union(*[_node(ctx, c) for c in node.children], distinct=True)
    positives = [c for c in node.children if not isinstance(c, Not)]
    negatives = [c.child for c in node.children if isinstance(c, Not)]
    result = _node(ctx, positives[0]) if positives else ctx.universe
    for child in positives[1:]:
        result = result.semi_join(_node(ctx, child), ID)
    for negative in negatives:
        result = result.anti_join(_node(ctx, negative), ID)
    return result


def compile_rule(ctx: Context, node: Node) -> ir.Table:
    """The audience of `node` as an expression with one column, `customer_id` (distinct).

    A top-level `all` with conditions on precomputed per-customer tables (tags, layers, RFM,
    lifecycle, CLV) evaluates those first, cheaply, and narrows the identity map to their customers
    before the conditions that scan raw orders and events (see `Context.narrowed`)."""
    if isinstance(node, Group) and node.op == "all":
        seeds = [c for c in node.children if isinstance(c, Leaf) and c.kind in DERIVED]
        rest = [c for c in node.children if not (isinstance(c, Leaf) and c.kind in DERIVED)]
        if seeds and rest:
            seed = _node(ctx, seeds[0])
            for child in seeds[1:]:
                seed = seed.semi_join(_node(ctx, child), ID)
            narrow = ctx.narrowed(seed)
            return _node(narrow, Group("all", tuple(rest), node.path)).semi_join(narrow.universe, ID).select(ID)
    result = _node(ctx, node).select(ID)
    if any(leaf.kind in DERIVED for leaf in walk(node)):
        result = result.semi_join(ctx.universe, ID)
    return result
