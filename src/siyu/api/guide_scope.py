"""Object-level authorisation for guide-bound keys (`siyu keys create --staff ID`, OWASP API1): such
a key sees only the customers currently bound to its guide — the workbench's 我的客户 — on every
route that names a customer; any other customer of the brand is not found (404, existence is not
revealed), exactly as another brand's customer is."""

from __future__ import annotations

from sqlalchemy import select

from siyu.api.keys import KeyInfo
from siyu.bootstrap import App
from siyu.core.errors import NotFoundError
from siyu.guides.models import CurrentBinding


def visible_customers(app: App, key: KeyInfo, customer_ids: list[str]) -> list[str]:
    """`customer_ids` less those the key may not see (none for a key not bound to a guide)."""
    if key.staff_id is None or not customer_ids:
        return customer_ids
    b = CurrentBinding
    with app.store.unit_of_work() as session:
        bound = set(
            session.scalars(
                select(b.customer_id).where(
                    b.brand == key.brand, b.staff_id == key.staff_id, b.customer_id.in_(customer_ids)
                )
            )
        )
    return [c for c in customer_ids if c in bound]


def check_guide_customer(app: App, key: KeyInfo, customer_id: str) -> None:
    if not visible_customers(app, key, [customer_id]):
        raise NotFoundError(f"no customer {customer_id!r} among this guide's customers (未找到客户)")
