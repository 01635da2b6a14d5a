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


def check_guide_customer(app: App, key: KeyInfo, customer_id: str) -> None:
    if key.staff_id is None:
        return
    b = CurrentBinding
    with app.store.unit_of_work() as session:
        bound = session.scalar(
            select(b.customer_id).where(b.brand == key.brand, b.staff_id == key.staff_id, b.customer_id == customer_id)
        )
    if bound is None:
        raise NotFoundError(f"no customer {customer_id!r} among this guide's customers (未找到客户)")
