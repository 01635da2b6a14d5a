"""Open the configured compute engine. Backends are listed here; their differences live in their
adapters (`siyu.engine.duckdb`, `siyu.engine.pyspark`) and capability tables (`siyu.engine.base.Capabilities`).

An adapter is imported only when its engine is opened: PySpark is an optional extra (`pip install
siyu[spark]`), so a DuckDB-only install never imports it.

Engine builtins that differ per backend (time zones, JSON checks) are in `siyu.engine.adapter`.
"""

from __future__ import annotations

import importlib
import sys

from siyu.core.errors import SiyuError
from siyu.engine.base import Engine
from siyu.lake.tables import Lake

__all__ = ["BACKENDS", "Engine", "EngineUnavailableError", "UnknownEngineError", "connect", "transient_errors"]

# Engine name (`SIYU_ENGINE`) -> "module:class" of its adapter, whose `open(lake, memory_limit=,
# temp_directory=, **settings)` returns the Engine.
BACKENDS: dict[str, str] = {
    "duckdb": "siyu.engine.duckdb:DuckDBEngine",
    "pyspark": "siyu.engine.pyspark:PySparkEngine",
}


class UnknownEngineError(SiyuError, ValueError):
    code = "unknown_engine"
    exit_code = 2


class EngineUnavailableError(SiyuError):
    code = "engine_unavailable"
    exit_code = 2


def connect(
    kind: str,
    lake: Lake,
    *,
    memory_limit: str = "4GB",
    temp_directory: str | None = None,
    spark_master: str = "local[*]",
    spark_conf: str = "",
) -> Engine:
    """Open the configured engine (DuckDB in-process by default). The `spark_*` settings are read by the
    PySpark engine only."""
    target = BACKENDS.get(kind)
    if target is None:
        raise UnknownEngineError(
            f"unknown engine {kind!r} (SIYU_ENGINE): supported engines are: {', '.join(sorted(BACKENDS))}"
            " · 未知的计算引擎"
        )
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EngineUnavailableError(
            f"SIYU_ENGINE={kind} needs {exc.name}: install it with `pip install 'siyu[spark]'` (and a Java 17 "
            f"runtime), or use SIYU_ENGINE=duckdb · 计算引擎 {kind} 未安装"
        ) from exc
    engine: Engine = getattr(module, class_name).open(
        lake,
        memory_limit=memory_limit,
        temp_directory=temp_directory,
        spark_master=spark_master,
        spark_conf=spark_conf,
    )
    return engine


def transient_errors() -> tuple[type[BaseException], ...]:
    """The errors of every engine loaded in this process that mean the machinery failed, not the data
    (an engine never loaded raised none)."""
    found: list[type[BaseException]] = []
    for target in BACKENDS.values():
        module_name, class_name = target.split(":")
        if module_name in sys.modules:
            found.extend(getattr(sys.modules[module_name], class_name).capabilities.transient_errors)
    return tuple(found)
