"""What every part of the Segment mapping shares: values read out of the JSON payloads as text, and
rows written as canonical text (what a canonical file holds, so the importer validates them)."""

from __future__ import annotations

from collections.abc import Callable

import ibis
import ibis.expr.types as ir

from siyu.ingest.schema import ENTITIES, Kind
from siyu.ingest.validate import REJECTED

# The lake's current rows of an entity, or None (see `segment_to_canonical`).
Existing = Callable[[str], ir.Table | None]

ISO = "%Y-%m-%dT%H:%M:%S.%fZ"


# -- reading JSON ---------------------------------------------------------------------------------


def scalar(j: ir.JSONValue) -> ir.StringValue:
    """A JSON scalar as text (numbers and booleans as written), trimmed; NULL for null, "", objects, arrays."""
    raw = j.cast("string")
    text = ibis.coalesce(j.str, ibis.ifelse(raw.re_search(r"^[-0-9tf]"), raw, ibis.null(str)))
    return text.strip().nullif("")


def get(j: ir.JSONValue, *names: str) -> ir.StringValue:
    """The first of `names` present in the object `j`, as `scalar` reads it."""
    return ibis.coalesce(*[scalar(j[n]) for n in names]) if len(names) > 1 else scalar(j[names[0]])


def raw_json(j: ir.JSONValue) -> ir.StringValue:
    """The JSON text of a value (a string keeps its quotes), NULL when absent or null."""
    return j.cast("string").nullif("null")


def json_object(pairs: dict[str, ir.StringValue], rest: ir.JSONValue) -> ir.StringValue:
    """A JSON object: `pairs` (key → JSON text; NULL ones, and keys `rest` has, left out) followed
    by the members of the object `rest`."""
    text = rest.cast("string")
    inner = ibis.ifelse(text.startswith("{"), text.substr(1, text.length() - 2), ibis.null(str)).nullif("")
    members = [ibis.ifelse(rest[key].isnull(), f'"{key}":' + value, ibis.null(str)) for key, value in pairs.items()]
    return "{" + ibis.literal(",").join([*members, inner]) + "}"


def iso(ts: ir.TimestampValue) -> ir.StringValue:
    return ts.strftime(ISO)


# -- writing canonical text -----------------------------------------------------------------------


def output(
    table: ir.Table, entity: str, values: dict[str, ir.Value], line: ir.Value, rejected: ir.Value | None = None
) -> ir.Table:
    """Exactly the entity's canonical columns as text (missing ones NULL), plus `_line` (and, for
    orders and their items, `_rejected`: why the importer must quarantine the row, or NULL)."""
    columns = {c: values.get(c, ibis.null(str)).cast("string") for c in ENTITIES[entity].column_names}
    extra = {} if rejected is None else {REJECTED: rejected.cast("string")}
    return table.select(**columns, _line=line.cast("int64"), **extra)


def as_text(table: ir.Table, entity: str) -> dict[str, ir.StringValue]:
    """A lake table's typed canonical columns back as canonical text (the inverse of validation)."""
    out: dict[str, ir.StringValue] = {}
    for column in ENTITIES[entity].columns:
        sealed = f"{column.name}_enc"
        if sealed in table.columns:  # a sealed lake's PII stays sealed: the importer opens and seals it anew
            clear = table[column.name].cast("string") if column.name in table.columns else ibis.null(str)
            out[column.name] = table[sealed].coalesce(clear)
            continue
        if column.name not in table.columns:
            out[column.name] = ibis.null(str)
            continue
        value = table[column.name]
        is_ts = column.kind is Kind.TIMESTAMP and value.type().is_timestamp()
        out[column.name] = iso(value) if is_ts else value.cast("string")
    return out
