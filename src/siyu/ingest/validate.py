"""Validate canonical rows as one Ibis expression: typed columns plus the first problem per row.

`validate()` turns a table of raw strings into typed canonical columns (timestamps as UTC instants,
money as int64 fen) and adds `_error_field` / `_error_reason`, NULL for a good row. Every check is a
(condition, field, reason) triple, so a reason shown to the user is always tied to its column.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from siyu.engine.adapter import is_valid_json, local_to_utc
from siyu.ingest.schema import PAID_STATUSES, Entity, Kind

# A timestamp that names its offset (Z, +08:00, +0800); others are wall-clock time in the brand zone.
_OFFSET = r"(Z|z|[+-][0-9]{2}:?[0-9]{2})$"
_DIGITS = r"^[0-9]{1,15}$"  # fen and counts stay far inside int64

Check = tuple[ir.BooleanValue, str, ir.StringValue | str]


def _text(raw: ir.Table, name: str) -> ir.StringValue:
    """The column's text (readers trim and turn empty into NULL); a missing column is all NULL."""
    if name not in raw.columns:
        return ibis.null(str)
    return raw[name]


def _integer(value: ir.StringValue, name: str, money: bool) -> tuple[ir.IntegerValue, list[Check]]:
    # One regex per value; the engine's integer cast alone is too lenient (it rounds "12.5").
    ok = value.re_search(_DIGITS)
    typed = ibis.ifelse(ok, value.try_cast("int64"), ibis.null("int64"))
    what = "an integer number of fen (分)" if money else "a non-negative integer"
    # The reason is only computed for failing rows (the engine evaluates CASE branches lazily).
    reason = ibis.cases(
        (value.startswith("-"), f"negative {'money' if money else 'value'}: " + value),
        (value.re_search(r"^[0-9]*[.][0-9]*$"), f"must be {what}, got a decimal: " + value),
        else_=f"not {what}: " + value,
    )
    return typed, [(value.notnull() & ~ok, name, reason)]


def _timestamp(value: ir.StringValue, zone: ir.StringValue, name: str) -> tuple[ir.TimestampValue, list[Check]]:
    typed = ibis.ifelse(
        value.re_search(_OFFSET),
        value.try_cast("timestamp('UTC')"),
        local_to_utc(value.try_cast("timestamp"), zone),
    )
    bad = value.notnull() & typed.isnull()
    return typed, [(bad, name, "unparsable timestamp (expected ISO-8601): " + value)]


def _checks(
    raw: ir.Table, entity: Entity, zone: ir.StringValue, brand: str | None
) -> tuple[dict[str, ir.Value], list[Check]]:
    typed: dict[str, ir.Value] = {}
    checks: list[Check] = []
    if brand is not None:
        checks.append((raw.brand != brand, "brand", f"brand differs from --brand {brand}: " + raw.brand))
    for column in entity.columns:
        value = _text(raw, column.name)
        if column.required:
            what = "missing key" if column.name in entity.key else "missing required value"
            checks.append((value.isnull(), column.name, what))
        if column.kind is Kind.TEXT:
            typed[column.name] = value
            if column.choices:
                allowed = ", ".join(column.choices)
                checks.append(
                    (
                        value.notnull() & ~value.isin(column.choices),
                        column.name,
                        f"unknown {column.name} '" + value + f"' (expected one of: {allowed})",
                    )
                )
        elif column.kind in (Kind.FEN, Kind.INT):
            typed[column.name], more = _integer(value, column.name, money=column.kind is Kind.FEN)
            checks += more
        elif column.kind is Kind.TIMESTAMP:
            typed[column.name], more = _timestamp(value, zone, column.name)
            checks += more
        elif column.kind is Kind.DATE:
            date = ibis.ifelse(value.re_search(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"), value.try_cast("date"), None)
            typed[column.name] = date
            checks.append((value.notnull() & date.isnull(), column.name, "unparsable date (YYYY-MM-DD): " + value))
        elif column.kind is Kind.JSON:
            typed[column.name] = value
            checks.append(
                (
                    value.notnull() & ~(value.startswith("{") & is_valid_json(value).fill_null(False)),
                    column.name,
                    "not a JSON object",
                )
            )
    checks += _entity_checks(entity, typed)

    return typed, checks


def validate(raw: ir.Table, entity: Entity, zone: ir.StringValue, brand: str | None = None) -> ir.Table:
    """Typed canonical columns + `_line` + `_valid` (False when any check fails).

    `zone` is each row's brand time zone, used for timestamps written without an offset; `brand`
    (from --brand) makes rows naming another brand fail. Reasons
    are not computed here: `explain()` does that for the failing rows only, which keeps the pass
    over every row to one evaluation of each condition.
    """
    typed, checks = _checks(raw, entity, zone, brand)
    failed = ibis.or_(*[cond.fill_null(False) for cond, _, _ in checks])
    return raw.select(**typed, _line=raw["_line"], _valid=~failed)


def explain(raw: ir.Table, entity: Entity, zone: ir.StringValue, brand: str | None = None) -> ir.Table:
    """`_line`, `_error_field`, `_error_reason` of the first failing check of each (bad) raw row."""
    _, checks = _checks(raw, entity, zone, brand)
    field = ibis.cases(*[(cond.fill_null(False), name) for cond, name, _ in checks], else_=ibis.null(str))
    reason = ibis.cases(*[(cond.fill_null(False), why) for cond, _, why in checks], else_=ibis.null(str))
    return raw.select(_line=raw["_line"], _error_field=field, _error_reason=reason)


def _entity_checks(entity: Entity, c: dict[str, ir.Value]) -> list[Check]:
    checks: list[Check] = []
    for name in entity.extra_checks:
        if name == "refund_not_above_amount":
            checks.append((c["refund_fen"] > c["amount_fen"], "refund_fen", "refund greater than amount"))
        elif name == "paid_needs_paid_at":
            paid = c["status"].isin(PAID_STATUSES)
            checks.append((paid & c["paid_at"].isnull(), "paid_at", "paid order without paid_at"))
        elif name == "ended_not_before_started":
            checks.append((c["ended_at"] < c["started_at"], "ended_at", "relation ended before it started"))
        elif name == "event_type_format":
            checks.append(
                (
                    ~c["type"].re_search(r"^[a-z][a-z0-9_]{0,63}$"),
                    "type",
                    "event type must be snake_case (e.g. visit, share_click): " + c["type"],
                )
            )
        else:  # pragma: no cover - schema and checks are defined together
            raise ValueError(f"unknown check {name}")
    return checks


def row_hash(table: ir.Table, columns: tuple[str, ...]) -> ir.StringValue:
    """Content hash of a row's canonical values: equal hashes mean an unchanged re-import."""
    parts = [table[c].cast("string").fill_null("\x00") for c in columns]
    return ibis.literal("\x1f").join(parts).hexdigest("md5")
