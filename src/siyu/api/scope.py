"""What a store-bound API key (门店密钥, `siyu keys create --store`) may see: the customers of its
store only, by the store manager's rule (siyu.customers.scope). Another store's customer is answered
404, as if it did not exist (a 403 would say who exists). Keys without a store see their brand."""

from __future__ import annotations

from siyu.api.keys import KeyInfo
from siyu.bootstrap import App
from siyu.core.errors import NotFoundError
from siyu.customers.scope import in_scope


def check_customer(app: App, key: KeyInfo, customer_id: str) -> None:
    """Raise NotFoundError unless the key may see the customer (always, for a key without a store)."""
    if key.store is not None and not in_scope(app, key.brand, customer_id, store=key.store):
        raise NotFoundError(f"no customer {customer_id!r} in brand {key.brand} (未找到客户)")


def visible(app: App, key: KeyInfo, customer_ids: list[str]) -> list[str]:
    """The ids the key may see, in their order."""
    if key.store is None:
        return customer_ids
    return [c for c in customer_ids if in_scope(app, key.brand, c, store=key.store)]
