"""The binding state machine (绑定规则) as Ibis builders: claims in, effective-dated history out.

A *claim* is one row: (customer_id, scope, at, staff_id, store_code, source, kind, lock_days, force,
takeover), where kind is `bind` (an add, a scan, a store purchase with guide_code, a manual or
transfer binding), `renew` (a page visit through the guide's share) or `release` (the customer
deleted the guide). The scope is what one binding covers: `*` (first_friend), the store
(first_friend_per_store) or the guide (every_friend), so one machine serves all three modes.

Per (customer_id, scope), claims are applied in time order to the state (staff, store, source,
since, locked_until):

- bind by the current guide: renews the lock (locked_until = max(locked_until, at + lock_days));
- bind with nobody bound: binds;
- bind by another guide: binds if `force` (manual, transfer), or if `takeover` (a purchase) and the
  current lock has run out (at >= locked_until); an add never takes a customer from another guide;
- renew by the current guide: renews the lock; by anyone else: nothing;
- release by the current guide: unbinds; by anyone else: nothing.

The state is recursive, so the run steps once per claim *position* (the k-th claim of every key at
once): the number of steps is the largest number of claims of one key, and each step is one join
of the keys that have a k-th claim. Nothing iterates over rows in Python.
"""

from __future__ import annotations

from collections.abc import Callable

import ibis
import ibis.expr.types as ir

KEY = ["customer_id", "scope"]
STATE_SCHEMA = {
    "customer_id": "string",
    "scope": "string",
    "staff_id": "string",
    "store_code": "string",
    "source": "string",
    "since": "timestamp('UTC')",
    "locked_until": "timestamp('UTC')",
}
CLAIM_SCHEMA = {
    "customer_id": "string",
    "scope": "string",
    "at": "timestamp('UTC')",
    "staff_id": "string",
    "store_code": "string",
    "source": "string",
    "kind": "string",
    "lock_days": "int64",
    "force": "boolean",
    "takeover": "boolean",
}
_KIND_ORDER = {"bind": 0, "renew": 1, "release": 2}  # at one instant: bind before its release

Keep = Callable[[ir.Table, str], ir.Table]  # materialises an expression under a name


def sequenced(claims: ir.Table) -> ir.Table:
    """Claims numbered 0, 1, … in time order within their key (`_seq`); `_last` marks each key's last."""
    order = [claims.at, claims.kind.substitute(_KIND_ORDER, else_=9), claims.staff_id, claims.source]
    numbered = claims.mutate(
        _seq=ibis.row_number().over(group_by=KEY, order_by=order), _n=claims.count().over(group_by=KEY)
    )
    return numbered.mutate(_last=numbered._seq == numbered._n - 1).drop("_n")


def step(state: ir.Table, claims: ir.Table) -> ir.Table:
    """The state of every key with a claim in `claims` (one per key) after applying it."""
    s = state.rename(
        cur_staff="staff_id", cur_store="store_code", cur_source="source", cur_since="since", cur_lock="locked_until"
    )
    j = claims.left_join(s, KEY).drop("customer_id_right", "scope_right")
    until = j.at + j.lock_days.as_interval("D")
    mine = j.cur_staff.notnull() & (j.cur_staff == j.staff_id)
    unlocked = j.cur_lock.isnull() | (j.at >= j.cur_lock)
    take = (j.kind == "bind") & (j.cur_staff.isnull() | (~mine & (j.force | (j.takeover & unlocked))))
    renew = mine & (j.kind != "release")
    release = mine & (j.kind == "release")
    renewed_lock = ibis.greatest(j.cur_lock.fill_null(until), until)
    return j.select(
        "customer_id",
        "scope",
        staff_id=ibis.cases((take, j.staff_id), (release, ibis.null(str)), else_=j.cur_staff),
        store_code=ibis.cases((take, j.store_code), (release, ibis.null(str)), else_=j.cur_store),
        source=ibis.cases((take, j.source), (release, ibis.null(str)), else_=j.cur_source),
        since=ibis.cases((take, j.at), (release, ibis.null("timestamp('UTC')")), else_=j.cur_since),
        locked_until=ibis.cases(
            (take, until), (renew, renewed_lock), (release, ibis.null("timestamp('UTC')")), else_=j.cur_lock
        ),
        at=j.at,
        _seq=j._seq,
        _last=j._last,
        _changed=take | release,
    )


def empty(schema: dict[str, str]) -> ir.Table:
    return ibis.memtable(ibis.schema(schema).to_pyarrow().empty_table())


def run(claims: ir.Table, steps: int, keep: Keep) -> tuple[ir.Table, ir.Table]:
    """(final state, changes) after applying `claims` (already `sequenced`, `steps` = max _seq + 1).

    `changes` has one row per binding change: the key, `at`, `_seq` and the new staff_id, store_code,
    source (NULL staff: released). A key with a k-th claim had a (k-1)-th, so the state step k
    needs is exactly what step k-1 produced: each step joins two tables that shrink as k grows,
    and the whole run costs about one pass over the claims (not one pass over every key per step).
    The final state of a key is what the step of its last claim produced."""
    state = empty(STATE_SCHEMA)
    changes: list[ir.Table] = []
    finals: list[ir.Table] = []
    for k in range(steps):
        stepped = keep(step(state, claims.filter(claims._seq == k)), f"bind_step_{k}")
        changes.append(stepped.filter(stepped._changed).select(*KEY, "at", "_seq", "staff_id", "store_code", "source"))
        finals.append(stepped.filter(stepped._last).select(*STATE_SCHEMA))
        state = stepped.select(*STATE_SCHEMA)
    if not changes:
        none = empty(CLAIM_SCHEMA)
        return state, none.select(
            *KEY,
            "at",
            _seq=ibis.literal(0, "int64"),
            staff_id=none.staff_id,
            store_code=none.store_code,
            source=none.source,
        )
    return ibis.union(*finals), ibis.union(*changes)


def history(changes: ir.Table) -> ir.Table:
    """Effective-dated bindings [valid_from, valid_to) from the changes (valid_to NULL: current)."""
    w = ibis.window(group_by=KEY, order_by=[changes.at, changes._seq])
    with_end = changes.mutate(valid_to=changes.at.lead().over(w))
    bound = with_end.filter(with_end.staff_id.notnull())
    return bound.select(*KEY, "staff_id", "store_code", "source", valid_from=bound.at, valid_to=bound.valid_to)
