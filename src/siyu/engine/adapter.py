"""Builtins that every engine has but spells its own way, as portable functions plus one spelling per engine.

Domain code calls `local_to_utc`, `utc_to_local` and `is_valid_json`. Each builds a placeholder call
(`siyu_local_to_utc(…)`) that no engine knows; before an engine compiles an expression it rewrites the
placeholders into its own spelling (`spell`, with the engine's `Capabilities.builtins`). So an expression is
built once, without knowing the engine, and runs on any engine that spells every builtin it uses.

| builtin | DuckDB | Spark |
| --- | --- | --- |
| naive wall-clock time in a zone -> UTC instant | `timezone(zone, ts)` | `to_utc_timestamp(ts, zone)` |
| UTC instant -> naive wall-clock time in a zone | `timezone(zone, ts)` | `from_utc_timestamp(ts, zone)` |
| text parses as JSON | `json_valid(text)` | `get_json_object(text, '$') IS NOT NULL` |
| a top-level JSON value as text | `json_extract_string(text, '$.key')` if valid | `get_json_object(text, '$.key')` |
"""

# No `from __future__ import annotations`: Ibis reads the UDF's annotations as data types.
import re
from collections.abc import Callable, Mapping
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.operations as ops
import ibis.expr.types as ir

Spelling = Callable[..., ir.Value]


class UnspelledBuiltinError(NotImplementedError):
    """An expression uses a portable builtin the engine has no spelling for (a gap in its capability table)."""


# -- the portable placeholders (what domain code builds) -------------------------------------------------


@ibis.udf.scalar.builtin(name="siyu_local_to_utc")  # type: ignore[untyped-decorator]
def _local_to_utc(ts: dt.Timestamp(), zone: dt.String()) -> dt.Timestamp(timezone="UTC"):  # type: ignore[valid-type]
    ...


@ibis.udf.scalar.builtin(name="siyu_utc_to_local")  # type: ignore[untyped-decorator]
def _utc_to_local(ts: dt.Timestamp(timezone="UTC"), zone: dt.String()) -> dt.Timestamp():  # type: ignore[valid-type]
    ...


@ibis.udf.scalar.builtin(name="siyu_json_valid")  # type: ignore[untyped-decorator]
def _json_valid(text: dt.String()) -> dt.Boolean():  # type: ignore[valid-type]
    ...


@ibis.udf.scalar.builtin(name="siyu_json_text")  # type: ignore[untyped-decorator]
def _json_text(text: dt.String(), path: dt.String()) -> dt.String():  # type: ignore[valid-type]
    ...


PORTABLE = frozenset({"siyu_local_to_utc", "siyu_utc_to_local", "siyu_json_valid", "siyu_json_text"})
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def local_to_utc(ts: ibis.Value, zone: ibis.Value) -> ibis.Value:
    """A naive wall-clock timestamp in `zone` -> the UTC instant."""
    return _local_to_utc(ts, zone)


def utc_to_local(ts: ibis.Value, zone: str) -> ibis.Value:
    """A UTC instant -> naive wall-clock time in `zone`."""
    return _utc_to_local(ts, ibis.literal(zone))


def is_valid_json(text: ibis.Value) -> ibis.Value:
    """True when `text` parses as JSON (NULL for NULL)."""
    return _json_valid(text)


def json_text(text: ibis.Value, key: str) -> ibis.Value:
    """The value at top-level `key` of the JSON object in `text`, as text (a number as its digits); NULL
    when absent or when `text` is not JSON. Natively on every engine (Ibis's JSON type needs a Python UDF
    on Spark)."""
    if not _KEY.fullmatch(key):
        raise ValueError(f"json_text: {key!r} is not a plain key")
    return _json_text(text, ibis.literal(f"$.{key}"))


def spell(expr: ir.Expr, spellings: Mapping[str, Spelling], engine: str) -> ir.Expr:
    """`expr` with every portable builtin replaced by the engine's own spelling of it."""

    def rewrite(node: Any, kwargs: dict[str, Any] | None) -> Any:
        node = node.__recreate__(kwargs) if kwargs else node
        if isinstance(node, ops.ScalarUDF) and node.__func_name__ in PORTABLE:
            spelling = spellings.get(node.__func_name__)
            if spelling is None:
                raise UnspelledBuiltinError(f"the {engine} engine has no spelling of {node.__func_name__}")
            return spelling(*(arg.to_expr() for arg in node.__args__)).op()
        return node

    return expr.op().replace(rewrite).to_expr()


# -- DuckDB ---------------------------------------------------------------------------------------------


@ibis.udf.scalar.builtin(name="timezone")  # type: ignore[untyped-decorator]
def _duckdb_local_to_instant(zone: dt.String(), ts: dt.Timestamp()) -> dt.Timestamp(timezone="UTC"):  # type: ignore[valid-type]
    ...


@ibis.udf.scalar.builtin(name="timezone")  # type: ignore[untyped-decorator]
def _duckdb_instant_to_local(zone: dt.String(), ts: dt.Timestamp(timezone="UTC")) -> dt.Timestamp():  # type: ignore[valid-type]
    ...


@ibis.udf.scalar.builtin(name="json_valid")  # type: ignore[untyped-decorator]
def _duckdb_json_valid(text: dt.String()) -> dt.Boolean():  # type: ignore[valid-type]
    ...


@ibis.udf.scalar.builtin(name="json_extract_string")  # type: ignore[untyped-decorator]
def _duckdb_json_text(text: dt.String(), path: dt.String()) -> dt.String():  # type: ignore[valid-type]
    ...


def _duckdb_json_text_or_null(text: ir.Value, path: ir.Value) -> ir.Value:
    # json_extract_string raises on text that is not JSON (failing the whole query); Spark answers NULL.
    return ibis.ifelse(_duckdb_json_valid(text), _duckdb_json_text(text, path), ibis.null("string"))


DUCKDB_BUILTINS: Mapping[str, Spelling] = {
    "siyu_json_text": _duckdb_json_text_or_null,
    "siyu_local_to_utc": lambda ts, zone: _duckdb_local_to_instant(zone, ts),
    "siyu_utc_to_local": lambda ts, zone: _duckdb_instant_to_local(zone, ts),
    "siyu_json_valid": _duckdb_json_valid,
}


# -- Spark ----------------------------------------------------------------------------------------------
# Spark's session time zone is UTC (set by the adapter), so its TIMESTAMP values are UTC instants.


@ibis.udf.scalar.builtin(name="to_utc_timestamp")  # type: ignore[untyped-decorator]
def _spark_to_utc(ts: dt.Timestamp(), zone: dt.String()) -> dt.Timestamp(timezone="UTC"):  # type: ignore[valid-type]
    ...


@ibis.udf.scalar.builtin(name="from_utc_timestamp")  # type: ignore[untyped-decorator]
def _spark_from_utc(ts: dt.Timestamp(timezone="UTC"), zone: dt.String()) -> dt.Timestamp():  # type: ignore[valid-type]
    ...


@ibis.udf.scalar.builtin(name="get_json_object")  # type: ignore[untyped-decorator]
def _spark_json_path(text: dt.String(), path: dt.String()) -> dt.String():  # type: ignore[valid-type]
    ...


def _spark_json_valid(text: ir.Value) -> ir.Value:
    # Spark has no json_valid: get_json_object yields NULL for text that does not parse. NULL in, NULL out.
    return ibis.ifelse(text.isnull(), ibis.null("boolean"), _spark_json_path(text, "$").notnull())


SPARK_BUILTINS: Mapping[str, Spelling] = {
    "siyu_json_text": _spark_json_path,
    "siyu_local_to_utc": _spark_to_utc,
    "siyu_utc_to_local": _spark_from_utc,
    "siyu_json_valid": _spark_json_valid,
}
