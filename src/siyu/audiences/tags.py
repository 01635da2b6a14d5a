"""Tags (标签): groups and definitions, manual tags set by operators or guides (who, when, why),
imported tags, and the history of every change. Rule tags are computed in batch by
`siyu.audiences.tag_rules` into the lake table `tag_values`; everything else is store state.

Every change goes through one function here, in one unit of work, with a `tag_history` row.
"""

from __future__ import annotations

import json
import re
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa
from sqlalchemy import delete, select

from siyu.audiences.errors import MissingDataError, RuleError, TagError
from siyu.audiences.labels import TAG_KINDS
from siyu.audiences.models import TagAssignment, TagDefinition, TagGroup, TagHistory
from siyu.bootstrap import App
from siyu.brands.settings import brand_settings
from siyu.core.clock import utc_now
from siyu.core.errors import NotFoundError

TAG_VALUES_TABLE = "tag_values"
VALUE_TYPES = ("enum", "number", "flag")
FLAG = "true"
_CODE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
VALUES_SCHEMA = {"customer_id": "string", "value": "string", "number": "float64"}


def _definition(d: TagDefinition) -> dict[str, Any]:
    return {
        "brand": d.brand,
        "code": d.code,
        "group": d.group_code,
        "name_zh": d.name_zh,
        "name_en": d.name_en,
        "kind": d.kind,
        "value_type": d.value_type,
        "values": json.loads(d.values_json) if d.values_json else [],
        "rule": json.loads(d.rule_json) if d.rule_json else None,
        "description": d.description,
        "computed_at": d.computed_at,
        "computed_customers": d.computed_customers,
        "updated_at": d.updated_at,
    }


def check_code(code: str, what: str) -> None:
    if not _CODE.match(code):
        raise TagError(f"{what} code {code!r}: use lower-case letters, digits, _ and - (代码格式无效)")


def define_group(
    app: App, brand: str, code: str, name_zh: str | None = None, name_en: str | None = None
) -> dict[str, Any]:
    """Create or rename a tag group (标签组)."""
    check_code(code, "tag group")
    brand_settings(app, brand)
    with app.store.unit_of_work() as session:
        group = session.get(TagGroup, (brand, code))
        if group is None:
            group = TagGroup(brand=brand, code=code, created_at=utc_now())
            session.add(group)
        group.name_zh, group.name_en = name_zh or group.name_zh, name_en or group.name_en
    return {"brand": brand, "code": code, "name_zh": group.name_zh, "name_en": group.name_en}


def define_tag(
    app: App,
    brand: str,
    code: str,
    *,
    kind: str,
    value_type: str = "enum",
    values: list[str] | None = None,
    rule: dict[str, Any] | None = None,
    group: str | None = None,
    name_zh: str | None = None,
    name_en: str | None = None,
    description: str | None = None,
    actor: str = "system",
) -> dict[str, Any]:
    """Create or redefine a tag. Rule tags carry a `rule` (see docs/audiences.md); their enum values
    follow from it. Redefining keeps manual assignments whose value is still allowed."""
    from siyu.audiences.tag_rules import rule_values, validate_tag_rule

    check_code(code, "tag")
    brand_settings(app, brand)
    if kind not in TAG_KINDS:
        raise TagError(f"tag kind {kind!r}: use one of {', '.join(TAG_KINDS)} (标签类型)")
    if value_type not in VALUE_TYPES:
        raise TagError(f"value type {value_type!r}: use one of {', '.join(VALUE_TYPES)} (取值类型)")
    if kind == "rule":
        if rule is None:
            raise TagError(f"rule tag {code!r} needs a rule (规则标签需要规则)")
        value_type = validate_tag_rule(rule)
        values = rule_values(rule)
    elif rule is not None:
        raise TagError(f"only rule tags have a rule; {code!r} is {kind} (只有规则标签有规则)")
    if value_type == "enum" and kind != "rule" and not values:
        raise TagError(f"enum tag {code!r} needs its values, e.g. --values high,mid,low (枚举标签需要取值)")
    now = utc_now()
    with app.store.unit_of_work() as session:
        if group is not None and session.get(TagGroup, (brand, group)) is None:
            raise TagError(f"unknown tag group {group!r}: create it with `siyu tags group` (未知标签组)")
        d = session.get(TagDefinition, (brand, code))
        if d is None:
            d = TagDefinition(brand=brand, code=code, created_at=now)
            session.add(d)
        elif d.kind != kind:
            raise TagError(f"tag {code!r} is a {d.kind} tag; delete it before redefining it as {kind} (类型不可更改)")
        d.kind, d.value_type, d.group_code = kind, value_type, group
        d.values_json = json.dumps(values or [], ensure_ascii=False)
        d.rule_json = json.dumps(rule, ensure_ascii=False) if rule is not None else None
        d.name_zh, d.name_en, d.description, d.updated_at = name_zh, name_en, description, now
        session.add(
            TagHistory(
                brand=brand, tag_code=code, action="define", actor=actor, at=now, new_value=kind, reason=description
            )
        )
        session.flush()
        return _definition(d)


def tag_definition(app: App, brand: str, code: str, path: str | None = None) -> dict[str, Any]:
    """One tag's definition; unknown tags raise NotFoundError (or RuleError at `path` in a rule)."""
    with app.store.unit_of_work() as session:
        d = session.get(TagDefinition, (brand, code))
        if d is None:
            known = ", ".join(session.scalars(select(TagDefinition.code).where(TagDefinition.brand == brand)).all())
            message = f"unknown tag {code!r} of brand {brand!r}; known: {known or 'none'} (未知标签)"
            if path is not None:
                raise RuleError(path, message)
            raise NotFoundError(message)
        return _definition(d)


def list_tags(app: App, brand: str) -> list[dict[str, Any]]:
    with app.store.unit_of_work() as session:
        groups = {g.code: g for g in session.scalars(select(TagGroup).where(TagGroup.brand == brand)).all()}
        rows = session.scalars(
            select(TagDefinition)
            .where(TagDefinition.brand == brand)
            .order_by(TagDefinition.group_code.asc().nulls_last(), TagDefinition.code)
        ).all()
        out = []
        for d in rows:
            item = _definition(d)
            g = groups.get(d.group_code or "")
            item["group_name_zh"], item["group_name_en"] = (g.name_zh, g.name_en) if g else (None, None)
            out.append(item)
        return out


def delete_tag(app: App, brand: str, code: str, *, actor: str, reason: str | None = None) -> dict[str, Any]:
    """Delete a tag with its manual / imported assignments (computed values stay in older lake versions)."""
    tag_definition(app, brand, code)
    with app.store.unit_of_work() as session:
        removed = session.execute(
            delete(TagAssignment).where(TagAssignment.brand == brand, TagAssignment.tag_code == code)
        ).rowcount  # type: ignore[attr-defined]
        session.execute(delete(TagDefinition).where(TagDefinition.brand == brand, TagDefinition.code == code))
        session.add(
            TagHistory(
                brand=brand,
                tag_code=code,
                action="delete",
                actor=actor,
                at=utc_now(),
                reason=reason,
                old_value=f"{removed} assignments",
            )
        )
    return {"brand": brand, "code": code, "deleted": True, "assignments_removed": int(removed or 0)}


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


def check_customer(app: App, brand: str, customer_id: str) -> None:
    """Raise NotFoundError unless the customer id is one of the brand's (a key sees only its brand)."""
    from siyu.identity.service import MAP_TABLE

    idmap = app.engine.table(MAP_TABLE)
    found = (
        0
        if idmap is None
        else app.engine.to_arrow(
            idmap.filter((idmap.brand == brand) & (idmap.customer_id == customer_id)).select("customer_id").limit(1)
        ).num_rows
    )
    if not found:
        raise NotFoundError(f"no customer {customer_id!r} in brand {brand!r} (未找到客户)")


def set_tag(
    app: App, brand: str, code: str, customer_id: str, value: Any = None, *, actor: str, reason: str | None = None
) -> dict[str, Any]:
    """Set a manual tag on a customer (a guide in conversation, an operator): who, when, why."""
    definition = tag_definition(app, brand, code)
    if definition["kind"] != "manual":
        raise TagError(
            f"tag {code!r} is a {definition['kind']} tag; only manual tags are set by hand (仅手工标签可手动设置)"
        )
    text, number = _coerce(definition, value)
    check_customer(app, brand, customer_id)
    now = utc_now()
    with app.store.unit_of_work() as session:
        a = session.get(TagAssignment, (brand, code, customer_id))
        old = None if a is None else a.value
        if a is None:
            a = TagAssignment(brand=brand, tag_code=code, customer_id=customer_id)
            session.add(a)
        a.value, a.number, a.origin, a.set_by, a.set_at, a.reason = text, number, "manual", actor, now, reason
        session.add(
            TagHistory(
                brand=brand,
                tag_code=code,
                customer_id=customer_id,
                action="set",
                old_value=old,
                new_value=text,
                actor=actor,
                at=now,
                reason=reason,
            )
        )
    return {
        "brand": brand,
        "tag": code,
        "customer_id": customer_id,
        "value": text,
        "previous": old,
        "set_by": actor,
        "set_at": now,
        "reason": reason,
    }


def remove_tag(
    app: App, brand: str, code: str, customer_id: str, *, actor: str, reason: str | None = None
) -> dict[str, Any]:
    tag_definition(app, brand, code)
    now = utc_now()
    with app.store.unit_of_work() as session:
        a = session.get(TagAssignment, (brand, code, customer_id))
        if a is None:
            raise NotFoundError(f"customer {customer_id!r} has no tag {code!r} (客户无此标签)")
        old = a.value
        session.delete(a)
        session.add(
            TagHistory(
                brand=brand,
                tag_code=code,
                customer_id=customer_id,
                action="remove",
                old_value=old,
                actor=actor,
                at=now,
                reason=reason,
            )
        )
    return {"brand": brand, "tag": code, "customer_id": customer_id, "removed": old, "by": actor, "at": now}


def history(
    app: App, brand: str, code: str | None = None, customer_id: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Tag changes, newest first: definitions, manual sets and removals, imports, rule-tag runs."""
    with app.store.unit_of_work() as session:
        q = select(TagHistory).where(TagHistory.brand == brand)
        if code:
            q = q.where(TagHistory.tag_code == code)
        if customer_id:
            q = q.where(TagHistory.customer_id == customer_id)
        rows = session.scalars(q.order_by(TagHistory.id.desc()).limit(limit)).all()
        return [
            {
                "tag": h.tag_code,
                "customer_id": h.customer_id,
                "action": h.action,
                "old_value": h.old_value,
                "new_value": h.new_value,
                "actor": h.actor,
                "at": h.at,
                "reason": h.reason,
            }
            for h in rows
        ]


def _assignments(app: App, brand: str, code: str) -> pa.Table:
    with app.store.unit_of_work() as session:
        rows = session.execute(
            select(TagAssignment.customer_id, TagAssignment.value, TagAssignment.number).where(
                TagAssignment.brand == brand, TagAssignment.tag_code == code
            )
        ).all()
    return pa.table(
        {
            "customer_id": pa.array([r[0] for r in rows], pa.string()),
            "value": pa.array([r[1] for r in rows], pa.string()),
            "number": pa.array([r[2] for r in rows], pa.float64()),
        }
    )


def tag_rows(app: App, brand: str, code: str, definition: dict[str, Any]) -> ir.Table:
    """customer_id, value (text), number of one tag: computed values for rule tags (lake), current
    assignments for manual and imported tags (store)."""
    if definition["kind"] != "rule":
        return ibis.memtable(_assignments(app, brand, code))
    if definition["computed_at"] is None:
        raise MissingDataError(
            f"rule tag {code!r} was never computed: run `siyu tags compute --brand {brand} {code}` (规则标签尚未计算)"
        )
    table = app.engine.table(TAG_VALUES_TABLE)
    if table is None:
        return ibis.memtable({k: [] for k in VALUES_SCHEMA}, schema=VALUES_SCHEMA)
    return table.filter((table.brand == brand) & (table.tag == code)).select(*VALUES_SCHEMA)


def customer_tags(app: App, customer_id: str, brand: str | None = None) -> list[dict[str, Any]]:
    """Every tag one customer carries, with where it came from (rule / manual / import) and, for
    manual and imported tags, who set it, when and why."""
    out: list[dict[str, Any]] = []
    with app.store.unit_of_work() as session:
        q = select(TagDefinition)
        if brand:
            q = q.where(TagDefinition.brand == brand)
        defs = {(d.brand, d.code): _definition(d) for d in session.scalars(q).all()}
        aq = select(TagAssignment).where(TagAssignment.customer_id == customer_id)
        for a in session.scalars(aq).all():
            d = defs.get((a.brand, a.tag_code))
            if d is not None:
                out.append(
                    {
                        "tag": a.tag_code,
                        "group": d["group"],
                        "name_zh": d["name_zh"],
                        "name_en": d["name_en"],
                        "value": a.value,
                        "kind": d["kind"],
                        "origin": a.origin,
                        "set_by": a.set_by,
                        "set_at": a.set_at,
                        "reason": a.reason,
                    }
                )
    table = app.engine.table(TAG_VALUES_TABLE)
    if table is not None and defs:
        rows = app.engine.to_arrow(
            table.filter(table.customer_id == customer_id).select("brand", "tag", "value", "computed_at")
        ).to_pylist()
        for r in rows:
            d = defs.get((r["brand"], r["tag"]))
            if d is not None and d["kind"] == "rule":
                out.append(
                    {
                        "tag": r["tag"],
                        "group": d["group"],
                        "name_zh": d["name_zh"],
                        "name_en": d["name_en"],
                        "value": r["value"],
                        "kind": "rule",
                        "origin": "rule",
                        "set_by": None,
                        "set_at": r["computed_at"],
                        "reason": None,
                    }
                )
    return sorted(out, key=lambda t: (t["group"] or "", t["tag"]))
