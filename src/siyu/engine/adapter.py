"""Engine-specific builtins, declared once. Everything else is portable Ibis.

DuckDB's `timezone(zone, naive)` reads a naive timestamp as wall-clock time in `zone` and returns
the instant. On Spark the same capability is `to_utc_timestamp(naive, zone)`.
"""

# No `from __future__ import annotations`: Ibis reads the UDF's annotations as data types.
import ibis
import ibis.expr.datatypes as dt


@ibis.udf.scalar.builtin(name="timezone")  # type: ignore[untyped-decorator]
def _duckdb_local_to_instant(zone: dt.String(), ts: dt.Timestamp()) -> dt.Timestamp(timezone="UTC"):  # type: ignore[valid-type]
    ...


def local_to_utc(ts: ibis.Value, zone: ibis.Value) -> ibis.Value:
    """A naive wall-clock timestamp in `zone` -> the UTC instant."""
    return _duckdb_local_to_instant(zone, ts)


@ibis.udf.scalar.builtin(name="json_valid")  # type: ignore[untyped-decorator]
def _duckdb_json_valid(text: dt.String()) -> dt.Boolean():  # type: ignore[valid-type]
    ...


def is_valid_json(text: ibis.Value) -> ibis.Value:
    """True when `text` parses as JSON (DuckDB `json_valid`; Spark: `from_json` is not null)."""
    return _duckdb_json_valid(text)


@ibis.udf.scalar.builtin(name="timezone")  # type: ignore[untyped-decorator]
def _duckdb_instant_to_local(zone: dt.String(), ts: dt.Timestamp(timezone="UTC")) -> dt.Timestamp():  # type: ignore[valid-type]
    ...


def utc_to_local(ts: ibis.Value, zone: str) -> ibis.Value:
    """A UTC instant -> naive wall-clock time in `zone` (Spark: `from_utc_timestamp(ts, zone)`)."""
    return _duckdb_instant_to_local(ibis.literal(zone), ts)
