"""Open the configured compute engine. Backends are listed here; their differences live in their
adapters (`siyu.engine.duckdb`) and capability tables (`siyu.engine.base.Capabilities`).

Engine builtins that differ per backend (time zones, JSON checks) are in `siyu.engine.adapter`.
"""

from __future__ import annotations

from collections.abc import Callable

from siyu.engine.base import Engine
from siyu.engine.duckdb import DuckDBEngine
from siyu.lake.tables import Lake

__all__ = ["BACKENDS", "Engine", "connect"]

# Engine name (`SIYU_ENGINE`) -> how to open one: (lake, memory_limit=, temp_directory=) -> Engine.
BACKENDS: dict[str, Callable[..., Engine]] = {"duckdb": DuckDBEngine.open}


def connect(kind: str, lake: Lake, *, memory_limit: str = "4GB", temp_directory: str | None = None) -> Engine:
    """Open the configured engine (DuckDB in-process by default)."""
    open_engine = BACKENDS.get(kind)
    if open_engine is None:
        raise ValueError(f"unknown engine {kind!r}: supported engines are: {', '.join(sorted(BACKENDS))}")
    return open_engine(lake, memory_limit=memory_limit, temp_directory=temp_directory)
