"""Dead-letter reasons name the error and the stage but never quote a value (they are shown to
operators and kept in the store); machinery failures are told apart from a message's own."""

from __future__ import annotations

import importlib

import duckdb
import sqlalchemy.exc
from deltalake.exceptions import CommitFailedError

from siyu.ingest.dead_letters import LoadStepError, reason, redact


def test_values_are_masked_and_type_names_kept() -> None:
    duck = (
        "Conversion Error: Failed to cast decimal value 10000000000000000000000.000000 to type INT64\n\n"
        'LINE 1: ... THEN COALESCE("t8"."o_total" ...'
    )
    assert redact(duck) == "Conversion Error: Failed to cast decimal value … to type INT64"
    assert redact("Could not convert string 'Ann Lee' to INT32") == "Could not convert string '…' to INT32"
    assert redact('Malformed JSON at byte 3 of input: unexpected character.  Input: {"phone": "1380013"') == (
        "Malformed JSON at byte … of Input: …"
    )
    assert redact("bad value for ann@example.com and 张三 in DECIMAL(38,6)") == (
        "bad value for … and … in DECIMAL(38,6)"
    )
    assert redact("") == ""


def test_reason_names_type_and_stage_and_is_short() -> None:
    assert reason("import orders", KeyError("phone")) == "KeyError in import orders: '…'"
    assert len(reason("segment mapping", ValueError("x " * 1000))) == 300


def test_machinery_failures_are_transient() -> None:
    # an engine's own errors count once the engine is loaded, as it is in a loader (and not
    # before: alone in a fresh worker process, this test would otherwise see no DuckDB errors)
    importlib.import_module("siyu.engine.duckdb")
    transient = [
        OSError(28, "No space left on device"),
        sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection")),
        duckdb.IOException("could not write"),
        duckdb.OutOfMemoryException("out of memory"),
        CommitFailedError("conflict"),
    ]
    assert all(LoadStepError("import orders", e).transient for e in transient)
    data = [duckdb.ConversionException("cast"), ValueError("x"), sqlalchemy.exc.DataError("INSERT", {}, Exception())]
    assert not any(LoadStepError("segment mapping", e).transient for e in data)
