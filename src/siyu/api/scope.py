"""Which customers an API key may see (object-level authorisation, OWASP API1).

A key sees its brand's customers, narrowed when it is bound:
- to a store (门店密钥, `siyu keys create --store`): the customers of that store, by the console store
  manager's rule (siyu.customers.scope);
- to a guide (导购密钥, `--staff`): the customers bound to that guide now (the workbench's 我的客户).

Any other customer is not found (404), exactly as another brand's: a 403 would say who exists. Routers
of customer routes apply `check_customer` through `siyu.api.deps.CustomerScope`; look-ups that answer
a list leave the others out with `visible`.
"""

from __future__ import annotations

from sqlalchemy import select

from siyu.api.keys import KeyInfo
from siyu.bootstrap import App
from siyu.core.errors import NotFoundError
from siyu.customers.scope import in_scope
from siyu.guides.models import CurrentBinding


def narrowed(key: KeyInfo) -> bool:
    """Whether the key sees less than its whole brand."""
    return key.store is not None or key.staff_id is not None


def visible(app: App, key: KeyInfo, customer_ids: list[str]) -> list[str]:
    """The ids the key may see, in their order."""
    if key.store is not None:
        customer_ids = [c for c in customer_ids if in_scope(app, key.brand, c, store=key.store)]
    if key.staff_id is not None and customer_ids:
        b = CurrentBinding
        with app.store.unit_of_work() as session:
            bound = set(
                session.scalars(
                    select(b.customer_id).where(
                        b.brand == key.brand, b.staff_id == key.staff_id, b.customer_id.in_(customer_ids)
                    )
                )
            )
        customer_ids = [c for c in customer_ids if c in bound]
    return customer_ids


def check_customer(app: App, key: KeyInfo, customer_id: str) -> None:
    """Raise NotFoundError unless the key may see the customer (always, for a key bound to nothing)."""
    if narrowed(key) and not visible(app, key, [customer_id]):
        raise NotFoundError(f"no customer {customer_id!r} in brand {key.brand} that this key may see (未找到客户)")
