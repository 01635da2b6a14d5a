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
_ISO_START = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?"
_DIGITS = r"^[0-9]+$"
_MAX_DIGITS = 15  # fen and counts stay far inside int64

Check = tuple[ir.BooleanValue, str, ir.StringValue | str]


def _text(raw: ir.Table, name: str) -> ir.StringValue:
    """Trimmed text, empty -> NULL; a column missing from the file is all NULL."""
    if name not in raw.columns:
        return ibis.null(str)
    col = raw[name].strip()
    return ibis.ifelse(col == "", ibis.null(str), col)


def _integer(value: ir.StringValue, name: str, money: bool) -> tuple[ir.IntegerValue, list[Check]]:
    ok = value.re_search(_DIGITS) & (value.length() <= _MAX_DIGITS)
    typed = ibis.ifelse(ok, value.try_cast("int64"), ibis.null("int64"))
    noun = "money" if money else "value"
    checks: list[Check] = [
        (value.notnull() & value.startswith("-"), name, f"negative {noun}: " + value),
        (
            value.notnull() & ~value.startswith("-") & value.re_search(r"^[0-9]*\.[0-9]*$"),
            name,
            ("money must be an integer number of fen (分), got " if money else "not an integer: ") + value,
        ),
        (
            value.notnull() & ~ok,
            name,
            ("not an integer number of fen: " if money else "not an integer: ") + value,
        ),
    ]
    return typed, checks


def _timestamp(value: ir.StringValue, zone: ir.StringValue, name: str) -> tuple[ir.TimestampValue, list[Check]]:
    shaped = value.re_search(_ISO_START)
    with_offset = value.re_search(_OFFSET)
    instant = ibis.ifelse(
        with_offset,
        value.try_cast("timestamp('UTC')"),
        local_to_utc(value.try_cast("timestamp"), zone),
    )
    typed = ibis.ifelse(shaped, instant, ibis.null("timestamp('UTC')"))
    bad = value.notnull() & typed.isnull()
    return typed, [(bad, name, "unparsable timestamp (expected ISO-8601): " + value)]


def validate(raw: ir.Table, entity: Entity, zone: ir.StringValue) -> ir.Table:
    """Typed canonical columns + `_line`, `_error_field`, `_error_reason` (NULL when valid).

    `zone` is each row's brand time zone, used for timestamps written without an offset.
    """
    typed: dict[str, ir.Value] = {}
    checks: list[Check] = []
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

    error_field = ibis.cases(*[(cond.fill_null(False), field) for cond, field, _ in checks], else_=ibis.null(str))
    error_reason = ibis.cases(*[(cond.fill_null(False), reason) for cond, _, reason in checks], else_=ibis.null(str))
    return raw.select(**typed, _line=raw["_line"], _error_field=error_field, _error_reason=error_reason)


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
