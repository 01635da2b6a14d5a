"""Validate canonical rows as one Ibis expression: typed columns plus the first problem per row.

`validate()` turns a table of raw strings into typed canonical columns (timestamps as UTC instants,
money as int64 fen) and adds `_error_field` / `_error_reason`, NULL for a good row. Every check is a
(condition, field, reason) triple, so a reason shown to the user is always tied to its column.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import ibis
import ibis.expr.types as ir

from siyu.core.clock import utc_now
from siyu.engine.adapter import is_valid_json, local_to_utc
from siyu.ingest.bounds import TimeBounds
from siyu.ingest.schema import PAID_STATUSES, RELATION_TYPE_COLUMNS, RELATION_TYPES, Entity, Kind

# A timestamp that names its offset (Z, +08:00, +0800); others are wall-clock time in the brand zone.
_OFFSET = r"(Z|z|[+-][0-9]{2}:?[0-9]{2})$"
_DIGITS = r"^[0-9]{1,15}$"  # fen and counts stay far inside int64
EARLIEST_DATE = date(1900, 1, 1)  # dates (birthdays) are not business timestamps: only plausibility

# A reason the producer of the rows attached (the Segment mapping rejects an order with a bad item
# line as a whole, and the order's other lines with it); the row is quarantined with that reason.
REJECTED = "_rejected"

Check = tuple[ir.BooleanValue, str, ir.StringValue | str]
_SNAKE = r"^[a-z][a-z0-9_]{0,63}$"
DEFAULT_BOUNDS = TimeBounds()


@dataclass(frozen=True)
class Rules:
    """What validation knows beyond the row itself: the time bounds as of `now` (None: the current
    time), and the relation types brands declared (`(brand, code)`; built-ins are always known)."""

    bounds: TimeBounds = DEFAULT_BOUNDS
    now: datetime | None = None
    relation_types: frozenset[tuple[str, str]] = frozenset()


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
        (value.re_search(r"^[0-9]+$"), "too large (at most 15 digits): " + value),
        else_=f"not {what}: " + value,
    )
    return typed, [(value.notnull() & ~ok, name, reason)]


def _instant(value: datetime) -> ir.TimestampValue:
    return ibis.literal(value.astimezone(UTC), type="timestamp('UTC')")


def _timestamp(
    value: ir.StringValue, zone: ir.StringValue, name: str, bounds: TimeBounds, now: datetime
) -> tuple[ir.TimestampValue, list[Check]]:
    typed = ibis.ifelse(
        value.re_search(_OFFSET),
        value.try_cast("timestamp('UTC')"),
        local_to_utc(value.try_cast("timestamp"), zone),
    )
    bad = value.notnull() & typed.isnull()
    outside = (typed < _instant(bounds.earliest)) | (typed > _instant(bounds.latest(now)))
    return typed, [
        (bad, name, "unparsable timestamp (expected ISO-8601): " + value),
        (outside, name, f"timestamp out of range ({bounds.describe()}) (时间超出范围): " + value),
    ]


def _date(value: ir.StringValue, name: str, now: datetime) -> tuple[ir.DateValue, list[Check]]:
    typed = ibis.ifelse(value.re_search(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"), value.try_cast("date"), None)
    latest = ibis.literal(now.date())
    outside = (typed < ibis.literal(EARLIEST_DATE)) | (typed > latest)
    return typed, [
        (value.notnull() & typed.isnull(), name, "unparsable date (YYYY-MM-DD): " + value),
        (outside, name, f"date out of range ({EARLIEST_DATE.isoformat()} … today) (日期超出范围): " + value),
    ]


def _checks(
    raw: ir.Table, entity: Entity, zone: ir.StringValue, brand: str | None, rules: Rules
) -> tuple[dict[str, ir.Value], list[Check]]:
    now = rules.now or utc_now()
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
            typed[column.name], more = _timestamp(value, zone, column.name, rules.bounds, now)
            checks += more
        elif column.kind is Kind.DATE:
            typed[column.name], more = _date(value, column.name, now)
            checks += more
        elif column.kind is Kind.DEGREES:
            ok = value.re_search(r"^-?[0-9]{1,3}([.][0-9]{1,12})?$")
            typed[column.name] = ibis.ifelse(ok, value.try_cast("float64"), ibis.null("float64"))
            checks.append((value.notnull() & ~ok, column.name, "not decimal degrees (e.g. 31.2304): " + value))
        elif column.kind is Kind.JSON:
            typed[column.name] = value
            checks.append(
                (
                    value.notnull() & ~(value.startswith("{") & is_valid_json(value).fill_null(False)),
                    column.name,
                    "not a JSON object",
                )
            )
    checks += _entity_checks(entity, typed, rules)
    if REJECTED in raw.columns:  # last, so a row's own problem is named first
        field = "order_items" if entity.name == "orders" else "order_id"
        checks.append((raw[REJECTED].notnull(), field, raw[REJECTED]))
    return typed, checks


def validate(
    raw: ir.Table, entity: Entity, zone: ir.StringValue, brand: str | None = None, rules: Rules = Rules()
) -> ir.Table:
    """Typed canonical columns + `_line` + `_valid` (False when any check fails).

    `zone` is each row's brand time zone, used for timestamps written without an offset; `brand`
    (from --brand) makes rows naming another brand fail; `rules` bound the timestamps and name the
    declared relation types. Reasons are not computed here: `explain()` does that for the failing
    rows only, which keeps the pass over every row to one evaluation of each condition.
    """
    typed, checks = _checks(raw, entity, zone, brand, rules)
    failed = ibis.or_(*[cond.fill_null(False) for cond, _, _ in checks])
    return raw.select(**typed, _line=raw["_line"], _valid=~failed)


def explain(
    raw: ir.Table, entity: Entity, zone: ir.StringValue, brand: str | None = None, rules: Rules = Rules()
) -> ir.Table:
    """`_line`, `_error_field`, `_error_reason` of the first failing check of each (bad) raw row."""
    field, reason = first_problem(raw, entity, zone, brand, rules)
    return raw.select(_line=raw["_line"], _error_field=field, _error_reason=reason)


def first_problem(
    raw: ir.Table, entity: Entity, zone: ir.StringValue, brand: str | None = None, rules: Rules = Rules()
) -> tuple[ir.StringValue, ir.StringValue]:
    """The field and reason of the first failing check of each row (both NULL for a good row)."""
    _, checks = _checks(raw, entity, zone, brand, rules)
    field = ibis.cases(*[(cond.fill_null(False), name) for cond, name, _ in checks], else_=ibis.null(str))
    reason = ibis.cases(*[(cond.fill_null(False), why) for cond, _, why in checks], else_=ibis.null(str))
    return field, reason


def _relation_type_known(c: dict[str, ir.Value], rules: Rules) -> Check:
    declared = sorted(f"{brand}\x1f{code}" for brand, code in rules.relation_types)
    known = c["relation_type"].isin(RELATION_TYPES)
    if declared:
        known |= (c["brand"] + "\x1f" + c["relation_type"]).isin(declared)
    how = (
        f"declare it in relation_types.csv (columns {', '.join(RELATION_TYPE_COLUMNS)}) or use a built-in: "
        f"{', '.join(RELATION_TYPES)} (未声明的关系类型)"
    )
    return (
        ~known,
        "relation_type",
        "unknown relation_type '" + c["relation_type"] + "' of brand " + c["brand"] + ": " + how,
    )


def _entity_checks(entity: Entity, c: dict[str, ir.Value], rules: Rules) -> list[Check]:
    checks: list[Check] = []
    for name in entity.extra_checks:
        if name == "refund_not_above_amount":
            checks.append((c["refund_fen"] > c["amount_fen"], "refund_fen", "refund greater than amount"))
        elif name == "paid_needs_paid_at":
            paid = c["status"].isin(PAID_STATUSES)
            checks.append((paid & c["paid_at"].isnull(), "paid_at", "paid order without paid_at"))
        elif name == "qty_positive":
            checks.append((c["qty"] == 0, "qty", "quantity must be a positive integer (数量须为正整数): 0"))
        elif name == "ended_not_before_started":
            checks.append((c["ended_at"] < c["started_at"], "ended_at", "relation ended before it started"))
        elif name == "closed_not_before_opened":
            checks.append((c["closed_at"] < c["opened_at"], "closed_at", "store closed before it opened"))
        elif name == "left_not_before_joined":
            checks.append((c["left_at"] < c["joined_at"], "left_at", "staff left before joining"))
        elif name == "lat_lng_range":
            checks.append((c["lat"].abs() > 90, "lat", "latitude outside -90 … 90 (纬度超出范围)"))
            checks.append((c["lng"].abs() > 180, "lng", "longitude outside -180 … 180 (经度超出范围)"))
        elif name == "relation_type_declared":
            checks.append(_relation_type_known(c, rules))
        elif name == "code_format":
            why = "code must be snake_case (e.g. douyin_fan_group): " + c["code"]
            checks.append((~c["code"].re_search(_SNAKE), "code", why))
        elif name == "event_type_format":
            checks.append(
                (
                    ~c["type"].re_search(_SNAKE),
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
