"""Audiences (人群): create, count, preview, export, and reach counts per channel. Plain functions
returning plain dicts, called by the CLI and the API (snapshots, diff and the scheduled refresh are
in `siyu.audiences.snapshots`).

An audience's rule is compiled afresh on every use, so a count is always current.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import ibis.expr.types as ir
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sqlalchemy import select

from siyu.audiences import reach
from siyu.audiences.compile import compile_rule
from siyu.audiences.context import ID, Context
from siyu.audiences.errors import AudienceError, PiiNotAllowedError, RuleError
from siyu.audiences.models import Audience, AudienceExport
from siyu.audiences.pii import profile_columns
from siyu.audiences.rules import Node, parse_rule
from siyu.audiences.tags import check_code
from siyu.audiences.text import text_to_json
from siyu.bootstrap import App
from siyu.core.clock import utc_now
from siyu.core.errors import NotFoundError
from siyu.core.output import atomic_output, output_format

FORMATS = {".csv": "csv", ".parquet": "parquet"}  # export extension → format
RuleInput = dict[str, Any] | str


def parse_input(rule: RuleInput) -> tuple[dict[str, Any], Node]:
    """A rule as a JSON document (dict or JSON text) or in the text form -> (document, nodes)."""
    if isinstance(rule, str):
        text = rule.strip()
        if text.startswith("{"):
            try:
                doc = json.loads(text)
            except json.JSONDecodeError as exc:
                raise RuleError(
                    "$", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno} (JSON 无效)"
                ) from exc
        else:
            doc = text_to_json(text)
    else:
        doc = rule
    return doc, parse_rule(doc)


def _public(a: Audience) -> dict[str, Any]:
    return {
        "brand": a.brand,
        "code": a.code,
        "name": a.name,
        "description": a.description,
        "rule": json.loads(a.rule_json),
        "refresh_minutes": a.refresh_minutes,
        "created_by": a.created_by,
        "created_at": a.created_at,
        "updated_at": a.updated_at,
        "last_snapshot_at": a.last_snapshot_at,
        "last_count": a.last_count,
    }


def create_audience(
    app: App,
    brand: str,
    code: str,
    rule: RuleInput,
    *,
    name: str | None = None,
    description: str | None = None,
    refresh_minutes: int | None = None,
    actor: str = "system",
    replace: bool = False,
) -> dict[str, Any]:
    """Validate and compile the rule (so a bad tag or a missing period fails now), then save it."""
    check_code(code, "audience")
    doc, node = parse_input(rule)
    ctx = Context(app, brand)
    try:
        compile_rule(ctx, node)
    finally:
        ctx.release()
    if refresh_minutes is not None and refresh_minutes < 5:
        raise AudienceError(f"refresh every {refresh_minutes} minutes: at least 5 (刷新间隔至少 5 分钟)")
    now = utc_now()
    with app.store.unit_of_work() as session:
        a = session.get(Audience, (brand, code))
        if a is not None and not replace:
            raise AudienceError(f"audience {code!r} exists; pass replace (--replace) to change it (人群已存在)")
        if a is None:
            a = Audience(brand=brand, code=code, created_by=actor, created_at=now)
            session.add(a)
        a.name, a.description, a.refresh_minutes = name, description, refresh_minutes
        a.rule_json, a.updated_at = json.dumps(doc, ensure_ascii=False), now
        session.flush()
        return _public(a)


def get_audience(app: App, brand: str, code: str) -> dict[str, Any]:
    with app.store.unit_of_work() as session:
        a = session.get(Audience, (brand, code))
        if a is None:
            known = ", ".join(session.scalars(select(Audience.code).where(Audience.brand == brand)).all())
            raise NotFoundError(f"no audience {code!r} in brand {brand!r}; known: {known or 'none'} (未找到人群)")
        return _public(a)


def list_audiences(app: App, brand: str) -> list[dict[str, Any]]:
    with app.store.unit_of_work() as session:
        rows = session.scalars(select(Audience).where(Audience.brand == brand).order_by(Audience.code)).all()
        return [_public(a) for a in rows]


def delete_audience(app: App, brand: str, code: str) -> dict[str, Any]:
    get_audience(app, brand, code)
    with app.store.unit_of_work() as session:
        a = session.get(Audience, (brand, code))
        session.delete(a)
    return {"brand": brand, "code": code, "deleted": True}


def compile_audience(
    app: App, brand: str, code: str | None, rule: RuleInput | None, as_of: date | None
) -> tuple[Context, ir.Table]:
    if (code is None) == (rule is None):
        raise AudienceError("give an audience code or a rule, not both (人群代码或规则二选一)")
    doc = get_audience(app, brand, code)["rule"] if code is not None else rule
    assert doc is not None
    _, node = parse_input(doc)
    ctx = Context(app, brand, as_of)
    return ctx, compile_rule(ctx, node)


@contextmanager
def compiled_audience(
    app: App, brand: str, code: str | None, rule: RuleInput | None, as_of: date | None
) -> Iterator[tuple[Context, ir.Table]]:
    """The compiled audience; its temporary tables are dropped when the block ends."""
    ctx, expr = compile_audience(app, brand, code, rule, as_of)
    try:
        yield ctx, expr
    finally:
        ctx.release()


def audience_ids(
    app: App, brand: str, code: str | None = None, rule: RuleInput | None = None, as_of: date | None = None
) -> ir.Table:
    """The live audience as an Ibis table of customer_id (for journeys and coupons). It may use
    temporary tables of the engine's connection: read it before the connection is reused at length."""
    return compile_audience(app, brand, code, rule, as_of)[1]


def _count(app: App, expr: ir.Table) -> int:
    return int(app.engine.to_arrow(expr.count().name("n").as_table())["n"][0].as_py())


def count_audience(
    app: App, brand: str, code: str | None = None, rule: RuleInput | None = None, as_of: date | None = None
) -> dict[str, Any]:
    started = time.perf_counter()
    with compiled_audience(app, brand, code, rule, as_of) as (ctx, expr):
        n = _count(app, expr)
        return {
            "brand": brand,
            "audience": code,
            "as_of": ctx.as_of.isoformat(),
            "customers": n,
            "seconds": round(time.perf_counter() - started, 3),
        }


def preview_audience(
    app: App,
    brand: str,
    code: str | None = None,
    rule: RuleInput | None = None,
    as_of: date | None = None,
    limit: int = 20,
) -> dict[str, Any]:
    """The size and a sample of customers (smallest ids first, so a preview is reproducible), PII masked."""
    with compiled_audience(app, brand, code, rule, as_of) as (ctx, expr):
        sample = expr.order_by(ID).limit(limit)
        rows = app.engine.to_arrow(profile_columns(ctx, sample).order_by(ID)).to_pylist()
        return {
            "brand": brand,
            "audience": code,
            "as_of": ctx.as_of.isoformat(),
            "customers": _count(app, expr),
            "sample": rows,
        }


def export_audience(
    app: App,
    brand: str,
    path: Path,
    code: str | None = None,
    rule: RuleInput | None = None,
    *,
    file_format: str | None = None,
    unmasked: bool = False,
    allow_unmasked: bool = False,
    as_of: date | None = None,
    actor: str = "system",
    force: bool = False,
) -> dict[str, Any]:
    """Write the audience (customer_id, name, phone, email, city, tier) as CSV or Parquet, streamed
    from the engine. PII is masked unless `unmasked` is asked *and* the caller is allowed
    (`allow_unmasked`: the API grants it by key scope; the CLI to the workspace's operator).
    The format is the extension's; an existing file is replaced only with `force`; the file appears
    complete or not at all (`siyu.core.output`). Every export is recorded (who, when, rows, unmasked)."""
    fmt = output_format(path, FORMATS, file_format)
    if unmasked and not allow_unmasked:
        raise PiiNotAllowedError("unmasked PII export was asked but not allowed for this caller (无权导出明文个人信息)")
    started = time.perf_counter()
    with atomic_output(path, force=force) as tmp, compiled_audience(app, brand, code, rule, as_of) as (ctx, expr):
        reader = app.engine.batches(profile_columns(ctx, expr, unmasked=unmasked), rows=200_000)
        rows = 0
        writer: Any = None
        try:
            for batch in reader:
                if writer is None:
                    writer = (
                        pq.ParquetWriter(tmp, batch.schema) if fmt == "parquet" else pacsv.CSVWriter(tmp, batch.schema)
                    )
                writer.write_batch(batch)
                rows += batch.num_rows
            if writer is None:
                empty = reader.schema.empty_table()
                (pq.write_table if fmt == "parquet" else pacsv.write_csv)(empty, tmp)
        finally:
            if writer is not None:
                writer.close()
        day, columns = ctx.as_of, list(reader.schema.names)
    with app.store.unit_of_work() as session:  # once the file is in place
        session.add(
            AudienceExport(
                brand=brand,
                audience_code=code,
                actor=actor,
                at=utc_now(),
                path=str(path),
                file_format=fmt,
                rows=rows,
                unmasked=unmasked,
            )
        )
    return {
        "brand": brand,
        "audience": code,
        "as_of": day.isoformat(),
        "path": str(path),
        "format": fmt,
        "rows": rows,
        "unmasked": unmasked,
        "columns": columns,
        "seconds": round(time.perf_counter() - started, 3),
    }


def reach_counts(
    app: App, brand: str, code: str | None = None, rule: RuleInput | None = None, as_of: date | None = None
) -> dict[str, Any]:
    """Per channel, how many of the audience (or of the whole brand) can be reached now (亮灯)."""
    if code is None and rule is None:
        ctx = Context(app, brand, as_of)
        population = ctx.universe
    else:
        ctx, population = compile_audience(app, brand, code, rule, as_of)
    try:
        return {"brand": brand, "audience": code, "as_of": ctx.as_of.isoformat()} | reach.counts(ctx, population)
    finally:
        ctx.release()
