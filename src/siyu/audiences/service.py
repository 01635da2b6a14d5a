"""Audiences (人群): create, count, preview, export, and reach counts per channel, called by the CLI
and the API (snapshots, diff and the scheduled refresh are in `siyu.audiences.snapshots`). Reads are
plain functions returning plain dicts; changes are `do_*` functions taking the caller's unit of work
and writing an audit row (`audience.*`). What reads the lake — checking a rule, writing an export
file — runs before the unit of work opens, so the store transaction stays short.

An audience's rule is compiled afresh on every use, so a count is always current.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import ibis.expr.types as ir
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.audiences import reach
from siyu.audiences.compile import compile_rule
from siyu.audiences.context import ID, Context
from siyu.audiences.errors import AudienceError, RuleError
from siyu.audiences.limits import RuleLimits, check_text
from siyu.audiences.minimum import check_unmasked, consent_channel, pick_columns, without_withdrawn
from siyu.audiences.models import Audience, AudienceExport
from siyu.audiences.pii import profile_columns
from siyu.audiences.rules import Node, parse_rule
from siyu.audiences.tags import check_code
from siyu.audiences.text import text_to_json
from siyu.bootstrap import App
from siyu.config import Settings
from siyu.core.errors import NotFoundError
from siyu.core.output import atomic_output, output_format
from siyu.privacy.lake_columns import open_tagged
from siyu.store.uow import UnitOfWork

FORMATS = {".csv": "csv", ".parquet": "parquet"}  # export extension → format
RuleInput = dict[str, Any] | str


def rule_limits(settings: Settings) -> RuleLimits:
    return RuleLimits(
        max_depth=settings.rule_max_depth,
        max_nodes=settings.rule_max_nodes,
        max_values=settings.rule_max_values,
        max_chars=settings.rule_max_chars,
    )


def parse_input(rule: RuleInput, limits: RuleLimits | None = None) -> tuple[dict[str, Any], Node]:
    """A rule as a JSON document (dict or JSON text) or in the text form -> (document, nodes).
    Text is measured before it is read, a document before it is validated (`limits`)."""
    limits = limits or RuleLimits()
    if not isinstance(rule, str):
        return rule, parse_rule(rule, limits=limits)
    text = rule.strip()
    if text.startswith("{"):
        check_text(text, limits)
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RuleError(
                "$", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno} (JSON 无效)"
            ) from exc
        except (RecursionError, ValueError) as exc:  # nested past the stack; an integer of 4,300+ digits
            raise RuleError("$", f"JSON that cannot be read: {type(exc).__name__} (JSON 无法读取)") from exc
    else:
        doc = text_to_json(text, limits)
    return doc, parse_rule(doc, limits=limits, count_chars=False)


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


def subject(brand: str, code: str | None) -> str:
    """An audience as a subject id of the audit trail (`<brand>/*` for an ad-hoc rule)."""
    return f"{brand}/{code or '*'}"


def _audited(a: Audience) -> dict[str, Any]:
    """What the audit trail keeps of an audience: its definition, not its last snapshot. The trail
    masks values under `name` as a person's name, so the audience's name is `display_name` there."""
    return {"display_name": a.name, "description": a.description, "rule": json.loads(a.rule_json),
            "refresh_minutes": a.refresh_minutes}  # fmt: skip


@dataclass(frozen=True)
class CheckedRule:
    """A rule that parsed and compiled against the brand's data (made only by `check_rule`)."""

    brand: str
    doc: dict[str, Any]


def check_rule(app: App, brand: str, rule: RuleInput) -> CheckedRule:
    """Parse and compile the rule, so a bad tag or a missing period fails now. It reads the lake,
    so entry points call it before their unit of work opens."""
    doc, node = parse_input(rule, rule_limits(app.settings))
    ctx = Context(app, brand)
    try:
        compile_rule(ctx, node)
    finally:
        ctx.release()
    return CheckedRule(brand, doc)


def do_create_audience(
    uow: UnitOfWork,
    code: str,
    rule: CheckedRule,
    *,
    name: str | None = None,
    description: str | None = None,
    refresh_minutes: int | None = None,
    replace: bool = False,
) -> dict[str, Any]:
    """Save an audience of the rule's brand. Audited: `audience.create`, or `audience.replace` with
    the definition before → after."""
    check_code(code, "audience")
    if refresh_minutes is not None and refresh_minutes < 5:
        raise AudienceError(f"refresh every {refresh_minutes} minutes: at least 5 (刷新间隔至少 5 分钟)")
    brand = rule.brand
    a = uow.session.get(Audience, (brand, code))
    if a is not None and not replace:
        raise AudienceError(f"audience {code!r} exists; pass replace (--replace) to change it (人群已存在)")
    before = None if a is None else _audited(a)
    if a is None:
        a = Audience(brand=brand, code=code, created_by=str(uow.actor), created_at=uow.now)
        uow.session.add(a)
    a.name, a.description, a.refresh_minutes = name, description, refresh_minutes
    a.rule_json, a.updated_at = json.dumps(rule.doc, ensure_ascii=False), uow.now
    uow.session.flush()
    action = "audience.create" if before is None else "audience.replace"
    uow.audit(action, "audience", subject(brand, code), brand=brand, before=before, after=_audited(a))
    return _public(a)


def find_audience(session: Session, brand: str, code: str) -> Audience:
    """The audience, read in the caller's transaction; NotFoundError names the brand's audiences."""
    a = session.get(Audience, (brand, code))
    if a is None:
        known = ", ".join(session.scalars(select(Audience.code).where(Audience.brand == brand)).all())
        raise NotFoundError(f"no audience {code!r} in brand {brand!r}; known: {known or 'none'} (未找到人群)")
    return a


def get_audience(app: App, brand: str, code: str) -> dict[str, Any]:
    with app.store.unit_of_work() as session:
        return _public(find_audience(session, brand, code))


def list_audiences(app: App, brand: str) -> list[dict[str, Any]]:
    with app.store.unit_of_work() as session:
        rows = session.scalars(select(Audience).where(Audience.brand == brand).order_by(Audience.code)).all()
        return [_public(a) for a in rows]


def do_delete_audience(uow: UnitOfWork, brand: str, code: str) -> dict[str, Any]:
    """Delete a saved audience (its snapshots stay). Audited: `audience.delete`, before = the definition."""
    a = find_audience(uow.session, brand, code)
    before = _audited(a)
    uow.session.delete(a)
    uow.audit("audience.delete", "audience", subject(brand, code), brand=brand, before=before)
    return {"brand": brand, "code": code, "deleted": True}


def compile_audience(
    app: App, brand: str, code: str | None, rule: RuleInput | None, as_of: date | None
) -> tuple[Context, ir.Table]:
    if (code is None) == (rule is None):
        raise AudienceError("give an audience code or a rule, not both (人群代码或规则二选一)")
    doc = get_audience(app, brand, code)["rule"] if code is not None else rule
    assert doc is not None
    _, node = parse_input(doc, rule_limits(app.settings))
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
    columns: Sequence[str] | str | None = None,
) -> dict[str, Any]:
    """The size and a sample of customers (smallest ids first, so a preview is reproducible), PII masked,
    with only the `columns` asked for (siyu.audiences.minimum.COLUMNS by default)."""
    picked = pick_columns(columns)
    with compiled_audience(app, brand, code, rule, as_of) as (ctx, expr):
        sample = expr.order_by(ID).limit(limit)
        rows = app.engine.to_arrow(profile_columns(ctx, sample).order_by(ID).select(*picked)).to_pylist()
        return {
            "brand": brand,
            "audience": code,
            "as_of": ctx.as_of.isoformat(),
            "customers": _count(app, expr),
            "sample": rows,
        }


@dataclass(frozen=True)
class ExportedFile:
    """An audience written to a file by `export_audience`, to be recorded by `do_record_export`."""

    brand: str
    audience: str | None  # None for an ad-hoc rule
    rule: dict[str, Any] | None  # the ad-hoc rule
    as_of: date
    path: Path
    file_format: str
    rows: int
    columns: list[str]
    unmasked: bool
    seconds: float
    purpose: str | None = None  # why clear PII was asked (kept in the audit row)
    consent_purpose: str | None = None  # customers who withdrew it were left out


@contextmanager
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
    force: bool = False,
    columns: Sequence[str] | str | None = None,
    purpose: str | None = None,
    consent_purpose: str | None = None,
) -> Iterator[ExportedFile]:
    """Write the audience (customer_id, name, phone, email, city, tier) as CSV or Parquet, streamed
    from the engine, and yield what was written. PII is masked unless `unmasked` is asked *and* the
    caller is allowed (`allow_unmasked`: the API grants it by key scope; the CLI to the workspace's
    operator). Every export is recorded: callers record it inside the block; the file appears at
    `path` only when the block ends without an error — an export that was not recorded did not happen.
    The format is the extension's; an existing file is replaced only with `force` (siyu.core.output):

        with export_audience(app, …) as export, app.store.begin(actor) as uow:
            do_record_export(uow, export)

    Minimum necessary (siyu.audiences.minimum): only `columns` (default all six); clear PII also
    needs a `purpose`; with `consent_purpose` (marketing_sms …) customers who withdrew it are left out.
    """
    fmt = output_format(path, FORMATS, file_format)
    picked = pick_columns(columns)
    unmasked = check_unmasked(picked, unmasked, allow_unmasked, purpose)
    channel = consent_channel(consent_purpose)
    started = time.perf_counter()
    doc = None if rule is None else parse_input(rule, rule_limits(app.settings))[0]
    # written beside the target and moved into place once recorded
    with atomic_output(path, force=force) as partial:
        with compiled_audience(app, brand, code, rule, as_of) as (ctx, expr):
            if channel is not None:
                expr = without_withdrawn(ctx, expr, channel)
            reader = app.engine.batches(profile_columns(ctx, expr, unmasked=unmasked).select(*picked), rows=200_000)
            if unmasked:  # a sealed lake's envelopes, opened as they stream (siyu.privacy.lake_columns)
                reader = open_tagged(app.settings.pii_keyring, reader, ("name", "phone", "email"))
            rows = _write(reader, partial, fmt)
            exported = ExportedFile(
                brand=brand, audience=code, rule=doc, as_of=ctx.as_of, path=path, file_format=fmt, rows=rows,
                columns=list(reader.schema.names), unmasked=unmasked, seconds=round(time.perf_counter() - started, 3),
                purpose=purpose if unmasked else None, consent_purpose=consent_purpose,
            )  # fmt: skip
        yield exported


def _write(reader: Any, path: Path, fmt: str) -> int:
    """Stream the batches to the file; returns the number of rows."""
    rows = 0
    writer: Any = None
    try:
        for batch in reader:
            if writer is None:
                writer = (
                    pq.ParquetWriter(path, batch.schema) if fmt == "parquet" else pacsv.CSVWriter(path, batch.schema)
                )
            writer.write_batch(batch)
            rows += batch.num_rows
        if writer is None:
            empty = reader.schema.empty_table()
            (pq.write_table if fmt == "parquet" else pacsv.write_csv)(empty, path)
    finally:
        if writer is not None:
            writer.close()
    return rows


def do_record_export(uow: UnitOfWork, export: ExportedFile) -> dict[str, Any]:
    """Record an export in the export log and the audit trail (`audience.export`: what, how many rows,
    which columns, whether PII was unmasked) — audited although it changes nothing else."""
    uow.session.add(
        AudienceExport(
            brand=export.brand, audience_code=export.audience, actor=str(uow.actor), at=uow.now,
            path=str(export.path), file_format=export.file_format, rows=export.rows, unmasked=export.unmasked,
        )
    )  # fmt: skip
    after = {"rows": export.rows, "columns": export.columns, "unmasked": export.unmasked,
             "format": export.file_format, "as_of": export.as_of.isoformat(), "file": export.path.name}  # fmt: skip
    if export.rule is not None:
        after["rule"] = export.rule
    if export.purpose is not None:
        after["purpose"] = export.purpose
    if export.consent_purpose is not None:
        after["consent_purpose"] = export.consent_purpose
    uow.audit("audience.export", "audience", subject(export.brand, export.audience), brand=export.brand, after=after)
    return {
        "brand": export.brand,
        "audience": export.audience,
        "as_of": export.as_of.isoformat(),
        "path": str(export.path),
        "format": export.file_format,
        "rows": export.rows,
        "unmasked": export.unmasked,
        "columns": export.columns,
        "seconds": export.seconds,
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
