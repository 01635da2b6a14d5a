"""Manual tags (手工标签): set and removed one customer at a time by an operator or a guide in
conversation — who, when and why are kept on the assignment, in `tag_history` and in the audit
trail (`tag.set`, `tag.remove`; subject `customer_tag` `<brand>/<customer_id>/<tag>`).

Whether the customer exists is a read of the lake's identity map; it is done by `known_customer`
before the unit of work opens, so the store transaction only holds store reads and writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from siyu.audiences.errors import TagError
from siyu.audiences.models import TagAssignment, TagHistory
from siyu.audiences.tags import FLAG, find_tag
from siyu.core.errors import NotFoundError
from siyu.engine.connect import Engine
from siyu.identity.service import MAP_TABLE
from siyu.store.uow import UnitOfWork
from siyu.store.upsert import insert_ignoring


@dataclass(frozen=True)
class KnownCustomer:
    """A customer id found in the brand's identity map (made only by `known_customer`)."""

    brand: str
    id: str


def known_customer(engine: Engine, brand: str, customer_id: str) -> KnownCustomer:
    """The customer, if the brand's identity map has them; NotFoundError otherwise."""
    idmap = engine.table(MAP_TABLE)
    found = (
        0
        if idmap is None
        else engine.to_arrow(
            idmap.filter((idmap.brand == brand) & (idmap.customer_id == customer_id)).select("customer_id").limit(1)
        ).num_rows
    )
    if not found:
        raise NotFoundError(f"no customer {customer_id!r} in brand {brand!r} (未找到客户)")
    return KnownCustomer(brand, customer_id)


def subject(brand: str, customer_id: str, code: str) -> str:
    """One customer's tag as a subject id of the audit trail."""
    return f"{brand}/{customer_id}/{code}"


def _coerce(definition: dict[str, Any], value: Any) -> tuple[str, float | None]:
    """A value for the tag's type as (text, number)."""
    vtype = definition["value_type"]
    if vtype == "flag":
        return FLAG, None
    if value is None or value == "":
        raise TagError(f"tag {definition['code']!r} needs a value (缺少标签值)")
    if vtype == "number":
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise TagError(f"tag {definition['code']!r} is numeric, got {value!r} (需要数值)") from exc
        return (str(int(number)) if number.is_integer() else str(number)), number
    if str(value) not in definition["values"]:
        raise TagError(
            f"tag {definition['code']!r} has no value {value!r}; values: "
            f"{', '.join(definition['values'])} (标签无此取值)"
        )
    return str(value), None


def do_set_tag(
    uow: UnitOfWork, customer: KnownCustomer, code: str, value: Any = None, *, reason: str | None = None
) -> dict[str, Any]:
    """Set a manual tag on a customer. Audited: `tag.set`, value before → after (with the reason)."""
    brand, actor = customer.brand, str(uow.actor)
    definition = find_tag(uow.session, brand, code)
    if definition["kind"] != "manual":
        raise TagError(
            f"tag {code!r} is a {definition['kind']} tag; only manual tags are set by hand (仅手工标签可手动设置)"
        )
    text, number = _coerce(definition, value)
    key = (brand, code, customer.id)
    values = {"value": text, "number": number, "origin": "manual", "set_by": actor, "set_at": uow.now, "reason": reason}
    a = uow.session.get(TagAssignment, key, with_for_update=True)
    old = None if a is None else a.value
    if a is None:
        # Two transactions may set the same tag at once (two journey workers, two enrolments of one
        # customer): insert or skip, then lock the row that stands and set it over.
        inserted = uow.session.execute(
            insert_ignoring(uow.session, TagAssignment, ["brand", "tag_code", "customer_id"])
            .values(brand=brand, tag_code=code, customer_id=customer.id, **values)
            .returning(TagAssignment.customer_id)
        ).first()
        a = uow.session.get(TagAssignment, key, with_for_update=True, populate_existing=True)
        assert a is not None
        old = None if inserted is not None else a.value
    for name, value in values.items():
        setattr(a, name, value)
    uow.session.add(
        TagHistory(
            brand=brand, tag_code=code, customer_id=customer.id, action="set", old_value=old, new_value=text,
            actor=actor, at=uow.now, reason=reason,
        )
    )  # fmt: skip
    uow.audit(
        "tag.set", "customer_tag", subject(brand, customer.id, code), brand=brand,
        before=None if old is None else {"value": old}, after={"value": text, "reason": reason},
    )  # fmt: skip
    return {
        "brand": brand,
        "tag": code,
        "customer_id": customer.id,
        "value": text,
        "previous": old,
        "set_by": actor,
        "set_at": uow.now,
        "reason": reason,
    }


def do_remove_tag(
    uow: UnitOfWork, brand: str, code: str, customer_id: str, *, reason: str | None = None
) -> dict[str, Any]:
    """Remove a manual tag from a customer. Audited: `tag.remove`, before = the value it had."""
    find_tag(uow.session, brand, code)
    a = uow.session.get(TagAssignment, (brand, code, customer_id))
    if a is None:
        raise NotFoundError(f"customer {customer_id!r} has no tag {code!r} (客户无此标签)")
    old, actor = a.value, str(uow.actor)
    uow.session.delete(a)
    uow.session.add(
        TagHistory(
            brand=brand, tag_code=code, customer_id=customer_id, action="remove", old_value=old, actor=actor,
            at=uow.now, reason=reason,
        )
    )  # fmt: skip
    uow.audit("tag.remove", "customer_tag", subject(brand, customer_id, code), brand=brand, before={"value": old})
    return {"brand": brand, "tag": code, "customer_id": customer_id, "removed": old, "by": actor, "at": uow.now}
