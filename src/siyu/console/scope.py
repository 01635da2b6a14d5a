"""Data scopes (数据范围) of console users: a guide sees the customers that name their staff id, a
store manager those that name their store (the rules: siyu.customers.scope). Every other role sees
its whole brand (brand scope is checked by the lookups themselves)."""

from __future__ import annotations

from siyu.bootstrap import App
from siyu.console.users import User
from siyu.customers import scope

SCOPED_ROLES = frozenset({"guide", "store_manager"})


def _of(user: User) -> tuple[str | None, str | None]:
    """(store, staff) of the user's scope: a guide's staff id, else the store manager's store."""
    return (None, user.staff_id or "") if user.role == "guide" else (user.store or "", None)


def in_scope(app: App, user: User, brand: str, customer_id: str) -> bool:
    if user.role not in SCOPED_ROLES:
        return True
    store, staff = _of(user)
    return scope.in_scope(app, brand, customer_id, store=store, staff=staff)


def scoped_customers(app: App, user: User, brand: str, limit: int = 50) -> list[str]:
    """The customers of a guide / store manager (smallest ids first)."""
    store, staff = _of(user)
    return scope.scoped_ids(app, brand, store=store, staff=staff, limit=limit)
