"""Tags (标签): groups and definitions, manual tags set by operators or guides (who, when, why),
imported tags, and the history of every change. Rule tags are computed in batch by
`siyu.audiences.tag_rules` into the lake table `tag_values`; manual tags are set and removed in
`siyu.audiences.tag_manual`, imported ones replaced by `siyu.audiences.tag_import`; everything but
computed values is store state.

Every change is a `do_*` function taking the caller's unit of work: it writes a `tag_history` row
(the tag's own view of its changes) and an audit row (`tag.*`), in the same transaction.
"""

from __future__ import annotations

import json
import re
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from siyu.audiences.errors import MissingDataError, RuleError, TagError
from siyu.audiences.labels import TAG_KINDS
from siyu.audiences.models import TagAssignment, TagDefinition, TagGroup, TagHistory
from siyu.audiences.tag_checks import rule_values, validate_tag_rule
from siyu.bootstrap import App
from siyu.brands.settings import brand_in
from siyu.core.errors import NotFoundError
from siyu.store.uow import UnitOfWork

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


def subject(brand: str, code: str) -> str:
    """A whole tag's subject id in the audit trail."""
    return f"{brand}/{code}"


def _audited(definition: dict[str, Any]) -> dict[str, Any]:
    """What the audit trail keeps of a definition: what it means, not when it was last computed."""
    return {k: definition[k] for k in ("group", "name_zh", "name_en", "kind", "value_type", "values", "rule",
                                       "description")}  # fmt: skip


def do_define_group(
    uow: UnitOfWork, brand: str, code: str, name_zh: str | None = None, name_en: str | None = None
) -> dict[str, Any]:
    """Create or rename a tag group (标签组). Audited: `tag_group.define`, before → after."""
    check_code(code, "tag group")
    brand_in(uow.session, brand)
    group = uow.session.get(TagGroup, (brand, code))
    before = None if group is None else {"name_zh": group.name_zh, "name_en": group.name_en}
    if group is None:
        group = TagGroup(brand=brand, code=code, created_at=uow.now)
        uow.session.add(group)
    group.name_zh, group.name_en = name_zh or group.name_zh, name_en or group.name_en
    after = {"name_zh": group.name_zh, "name_en": group.name_en}
    if after != before:
        uow.audit("tag_group.define", "tag_group", subject(brand, code), brand=brand, before=before, after=after)
    return {"brand": brand, "code": code, **after}


def do_define_tag(
    uow: UnitOfWork,
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
) -> dict[str, Any]:
    """Create or redefine a tag. Rule tags carry a `rule` (see docs/audiences.md); their enum values
    follow from it. Redefining keeps manual assignments whose value is still allowed.
    Audited: `tag.define`, the definition before → after."""

    check_code(code, "tag")
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
    session = uow.session
    brand_in(session, brand)
    if group is not None and session.get(TagGroup, (brand, group)) is None:
        raise TagError(f"unknown tag group {group!r}: create it with `siyu tags group` (未知标签组)")
    d = session.get(TagDefinition, (brand, code))
    before = None if d is None else _audited(_definition(d))
    if d is None:
        d = TagDefinition(brand=brand, code=code, created_at=uow.now)
        session.add(d)
    elif d.kind != kind:
        raise TagError(f"tag {code!r} is a {d.kind} tag; delete it before redefining it as {kind} (类型不可更改)")
    d.kind, d.value_type, d.group_code = kind, value_type, group
    d.values_json = json.dumps(values or [], ensure_ascii=False)
    d.rule_json = json.dumps(rule, ensure_ascii=False) if rule is not None else None
    d.name_zh, d.name_en, d.description, d.updated_at = name_zh, name_en, description, uow.now
    session.add(
        TagHistory(
            brand=brand, tag_code=code, action="define", actor=str(uow.actor), at=uow.now, new_value=kind,
            reason=description,
        )
    )  # fmt: skip
    session.flush()
    out = _definition(d)
    uow.audit("tag.define", "tag", subject(brand, code), brand=brand, before=before, after=_audited(out))
    return out


def find_tag(session: Session, brand: str, code: str, path: str | None = None) -> dict[str, Any]:
    """One tag's definition, read in the caller's transaction; unknown tags raise NotFoundError
    (or RuleError at `path` in a rule)."""
    d = session.get(TagDefinition, (brand, code))
    if d is None:
        known = ", ".join(session.scalars(select(TagDefinition.code).where(TagDefinition.brand == brand)).all())
        message = f"unknown tag {code!r} of brand {brand!r}; known: {known or 'none'} (未知标签)"
        if path is not None:
            raise RuleError(path, message)
        raise NotFoundError(message)
    return _definition(d)


def tag_definition(app: App, brand: str, code: str, path: str | None = None) -> dict[str, Any]:
    """One tag's definition (a read of its own); see `find_tag`."""
    with app.store.unit_of_work() as session:
        return find_tag(session, brand, code, path)


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


def do_delete_tag(uow: UnitOfWork, brand: str, code: str, *, reason: str | None = None) -> dict[str, Any]:
    """Delete a tag with its manual / imported assignments (computed values stay in older lake
    versions). Audited: `tag.delete`, before = the definition and how many assignments it had."""
    session = uow.session
    definition = find_tag(session, brand, code)
    removed = int(
        session.execute(
            delete(TagAssignment).where(TagAssignment.brand == brand, TagAssignment.tag_code == code)
        ).rowcount  # type: ignore[attr-defined]
        or 0
    )
    session.execute(delete(TagDefinition).where(TagDefinition.brand == brand, TagDefinition.code == code))
    session.add(
        TagHistory(
            brand=brand, tag_code=code, action="delete", actor=str(uow.actor), at=uow.now, reason=reason,
            old_value=f"{removed} assignments",
        )
    )  # fmt: skip
    before = _audited(definition) | {"assignments": removed}
    uow.audit("tag.delete", "tag", subject(brand, code), brand=brand, before=before)
    return {"brand": brand, "code": code, "deleted": True, "assignments_removed": removed}


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
