"""Import canonical files into the lake: validate, quarantine, classify, commit atomically.

One file is one unit: its new and changed rows land in a single Delta commit, so an interrupted
import leaves either the whole file or nothing. Re-importing a file appends nothing (every row is
`unchanged`); a row whose key exists with different content is appended as a newer version.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.bootstrap import App
from siyu.config import Settings
from siyu.core.actor import Actor
from siyu.core.clock import utc_now
from siyu.core.errors import SiyuError, UnreadableFileError
from siyu.engine.connect import Engine
from siyu.ingest import registry
from siyu.ingest.counts import Counts
from siyu.ingest.landed import LandedKeys
from siyu.ingest.readers import ChunkedFile, RawFile, entity_of, open_chunks, peek_columns
from siyu.ingest.schema import DECLARATIONS, ENTITIES, IMPORT_ORDER, Entity
from siyu.ingest.validate import Rules, explain, row_hash, validate
from siyu.ingest.views import latest
from siyu.lake.layout import sort_keys
from siyu.privacy import lake_columns, sealed_rows
from siyu.privacy.reveal import do_reveal
from siyu.privacy.tombstones import ERASED_REASON, all_tombstones, erased_lines
from siyu.store.models import ImportJob, QuarantineRow

Progress = Callable[[str], None]


@dataclass
class FileReport:
    path: Path
    entity: str
    counts: Counts
    encoding: str
    warnings: list[str] = field(default_factory=list)


@dataclass
class ImportReport:
    files: list[FileReport] = field(default_factory=list)

    def by_entity(self) -> dict[str, Counts]:
        out: dict[str, Counts] = {}
        for report in self.files:
            out.setdefault(report.entity, Counts()).add(report.counts)
        return out

    def total(self) -> Counts:
        total = Counts()
        for report in self.files:
            total.add(report.counts)
        return total

    @property
    def warnings(self) -> list[str]:
        return [w for report in self.files for w in report.warnings]

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {name: counts.as_dict() for name, counts in self.by_entity().items()}
        out["total"] = self.total().as_dict()
        out["warnings"] = self.warnings
        return out


def entity_files(path: Path) -> list[Path]:
    """The file itself, or a folder's entity files in dependency order (other files are ignored)."""
    if path.is_file():
        entity_of(path)  # fail early on a name that is not an entity
        return [path]
    if not path.is_dir():
        raise UnreadableFileError(f"{path}: no such file or folder (路径不存在)")
    found: dict[str, list[Path]] = {}
    for child in sorted(path.iterdir()):
        try:
            entity, _ = entity_of(child)
        except SiyuError:
            continue
        found.setdefault(entity, []).append(child)
    files = [f for entity in IMPORT_ORDER for f in found.get(entity, [])]
    if not files:
        raise UnreadableFileError(
            f"{path}: no entity files found (expected names like orders.csv, events.jsonl) (未找到可导入的文件)"
        )
    return files


def import_path(app: App, path: Path, brand: str | None = None, progress: Progress | None = None) -> ImportReport:
    """Import one entity file or a folder of them.

    Every file's header is checked before anything is written; then files are read and committed
    one at a time (each atomically), so memory holds one file, not the whole folder.
    """
    files = entity_files(path)
    for f in files:
        _check_header(f, peek_columns(f), ENTITIES[entity_of(f)[0]], brand)
    report = ImportReport()
    for f in files:
        if progress:
            progress(f"read {f.name}")
        chunked = open_chunks(f, app.settings.import_chunk_rows)
        if progress:
            progress(f"import {f.name}")
        report.files.append(import_chunked(app, chunked, brand))
    return report


def _check_header(path: Path, columns: list[str], entity: Entity, brand: str | None) -> None:
    names = set(columns)
    missing = [c.name for c in entity.columns if c.required and c.name not in names]
    if brand and "brand" in missing:
        missing.remove("brand")
    if missing:
        hint = " (or pass --brand)" if "brand" in missing else ""
        raise UnreadableFileError(
            f"{path}: not a canonical {entity.name} file: missing column(s) {', '.join(missing)}{hint} "
            f"(缺少必填列); see docs/import-schema.md"
        )


def _with_brand(table: pa.Table, brand: str | None) -> pa.Table:
    """Fill missing brands from --brand (rows naming another brand fail validation)."""
    if brand is None:
        return table
    if "brand" not in table.column_names:
        return table.append_column("brand", pa.array([brand] * table.num_rows, pa.string()))
    index = table.column_names.index("brand")
    return table.set_column(index, "brand", pc.fill_null(table["brand"], brand))


@dataclass
class Checked:
    """Rows of one file after validation: `good` (typed, hashed, one per key) and `bad` (quarantine)."""

    good: ir.Table
    bad: pa.Table  # _line, _error_field, _error_reason
    ignored: list[str]  # unknown columns
    _memtables: tuple[ir.Table, ...]

    def release(self, engine: Engine) -> None:
        engine.release(*self._memtables)

    def holding(self, table: ir.Table) -> Checked:
        """The same, also releasing `table` (a memtable made from these rows)."""
        return Checked(self.good, self.bad, self.ignored, (*self._memtables, table))


def check(app: App, raw: RawFile, brand: str | None) -> Checked:
    """Validate every row of `raw` in one pass; the last of repeated keys wins (earlier ones are bad)."""
    entity = ENTITIES[raw.entity]
    rules = _rules(app)
    rows, explained = _validated(app, raw, brand, rules)
    checked = ibis.memtable(rows)
    good, bad = _settled(app, entity, checked, explained, set(raw.table.column_names))
    return Checked(good, bad, _ignored(entity, raw.table.column_names), (checked,))


def _rules(app: App) -> Rules:
    # One `now` for validate() and explain(), so explain() finds the problem validate() saw.
    return Rules(app.settings.time_bounds, utc_now(), registry.declared_relation_types(app))


def _ignored(entity: Entity, columns: list[str]) -> list[str]:
    known = set(entity.column_names) | {"_line"}
    # `_`-prefixed columns are siyu's own bookkeeping (e.g. the inbox message a row came from).
    return [c for c in columns if c not in known and not c.startswith("_")]


def _validated(app: App, raw: RawFile, brand: str | None, rules: Rules) -> tuple[pa.Table, pa.Table]:
    """Typed values, validity and content hash of every row (one pass, straight to Arrow), and the
    reasons of the invalid rows (`_line`, `_error_field`, `_error_reason`)."""
    entity = ENTITIES[raw.entity]
    engine = app.engine
    source = ibis.memtable(_with_brand(raw.table, brand))
    zones = registry.brand_timezones(app)
    default_zone = ibis.literal(app.settings.timezone)
    zone = source.brand.substitute(zones, else_=default_zone) if zones else default_zone
    checked_rows = validate(source, entity, zone, brand, rules)
    rows = engine.to_arrow(checked_rows.mutate(_row_hash=row_hash(checked_rows, entity.column_names)))
    bad_lines = ibis.memtable(rows.filter(pc.invert(rows["_valid"])).select(["_line"]))
    explained = engine.to_arrow(explain(source.semi_join(bad_lines, "_line"), entity, zone, brand, rules))
    engine.release(source, bad_lines)
    return rows, explained


def _settled(
    app: App, entity: Entity, checked: ir.Table, explained: pa.Table, present: set[str]
) -> tuple[ir.Table, pa.Table]:
    """The valid rows once repeated keys (last line wins) and erased people are taken out, and every
    quarantined row with its reason, by line."""
    good, bad = _split_duplicates(app.engine, entity, checked)
    good, bad = _drop_erased(app, entity, present, good, bad)
    return good, pa.concat_tables([explained, bad.cast(explained.schema)]).sort_by("_line")


def check_chunks(app: App, chunked: ChunkedFile, brand: str | None, stage: Path) -> Checked:
    """`check` over a file read chunk by chunk: each chunk's validated rows go to a Parquet file in
    `stage`, and repeated keys are then found over all of them (a key repeated across chunks too)."""
    entity = ENTITIES[chunked.entity]
    rules = _rules(app)
    parts, reasons, present, ignored = [], [], set[str](), list[str]()
    for number, raw in enumerate(chunked.chunks()):
        if number == 0:
            _check_header(raw.path, raw.table.column_names, entity, brand)
        rows, explained = _validated(app, raw, brand, rules)
        parts.append(str(stage / f"part-{number:06d}.parquet"))
        pq.write_table(rows, parts[-1])
        reasons.append(explained)
        present |= set(raw.table.column_names)
        ignored += [c for c in _ignored(entity, raw.table.column_names) if c not in ignored]
    checked = app.engine.parquet(parts)
    good, bad = _settled(app, entity, checked, pa.concat_tables(reasons), present)
    return Checked(good, bad, ignored, ())


def _drop_erased(
    app: App, entity: Entity, present: set[str], good: ir.Table, bad: pa.Table
) -> tuple[ir.Table, pa.Table]:
    """Rows naming an erased person (siyu.privacy.tombstones) are quarantined `erased`, not landed."""
    with app.store.unit_of_work() as session:
        stones = all_tombstones(session)
    if not stones or entity.name in DECLARATIONS:
        return good, bad
    lines = erased_lines(app.engine, good, entity, present, app.settings.pii_key, stones)
    if len(lines) == 0:
        return good, bad
    erased = pa.table({
        "_line": lines, "_error_field": pa.array(["source_customer_id"] * len(lines), pa.string()),
        "_error_reason": pa.array([ERASED_REASON] * len(lines), pa.string()),
    })  # fmt: skip
    kept = good.filter(~good._line.isin(lines.to_pylist()))  # the erased lines: few
    return kept, pa.concat_tables([bad, erased.cast(bad.schema)])


def import_file(app: App, raw: RawFile, brand: str | None) -> FileReport:
    """Validate, classify and commit one file held in memory (see the module docstring)."""
    checked = check(app, raw, brand)
    try:
        return _commit(app, raw, checked, lambda lines: raw.table.filter(pc.is_in(raw.table["_line"], lines)))
    finally:
        checked.release(app.engine)


def import_chunked(app: App, chunked: ChunkedFile, brand: str | None) -> FileReport:
    """Validate, classify and commit one file read in chunks of `chunked.rows` rows: memory holds
    one chunk while reading, then the engine works over the staged chunks (spilling to disk as it
    must), and the file still lands in one Delta commit — a failure before it leaves nothing."""
    stage_root = app.settings.home / "tmp"
    stage_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="import-", dir=stage_root) as stage:
        checked = check_chunks(app, chunked, brand, Path(stage))
        raw = RawFile(chunked.path, chunked.entity, chunked.format, chunked.encoding, pa.table({}))
        return _commit(app, raw, checked, chunked.pick)


def _commit(app: App, raw: RawFile, checked: Checked, originals: Callable[[pa.Array], pa.Table]) -> FileReport:
    entity = ENTITIES[raw.entity]
    engine = app.engine
    ring = app.settings.pii_sealing_ring
    warnings: list[str] = []
    if ring is not None and lake_columns.holds_clear(engine, entity.name):
        ring = None  # never mix layouts in one table: it stays clear until rotate-pii seals it
        warnings.append(lake_columns.CLEAR_LAKE_WARNING.format(entity=entity.name))
    good, bad = checked.good, checked.bad
    if checked.ignored:
        warnings.append(f"{raw.path.name}: ignored unknown column(s): {', '.join(checked.ignored)} (忽略未知列)")

    if entity.name in DECLARATIONS:  # declarations go to the store, not the lake
        counts, more = registry.apply_declarations(app, entity.name, engine.to_arrow(good.drop("_valid")))
        warnings += more
        new_rows = None
    else:
        if entity.name in lake_columns.KEYED and ring is not None:  # the key holds PII: seal before comparing
            sealed = lake_columns.seal_table(
                ring, app.settings.pii_key, entity.name, engine.to_arrow(lake_columns.prepare(entity.name, good))
            )
            good = ibis.memtable(sealed)
            checked = checked.holding(good)
        classified = classify(app, entity, good)
        counts = _count(engine.to_arrow(classified._outcome.value_counts()))
        new_rows = classified.filter(classified._outcome != "unchanged").drop("_outcome", "_valid")
    counts.quarantined = bad.num_rows

    job_id = str(uuid.uuid4())
    with app.store.unit_of_work() as session:
        session.add(
            ImportJob(
                id=job_id,
                path=str(raw.path.resolve()),
                entity=entity.name,
                status="running",
                started_at=utc_now(),
                **counts.as_dict(),
            )
        )
        session.add_all(_quarantine_rows(job_id, raw.entity, raw.path, bad, originals, app.settings))
        brands = engine.to_arrow(good.select("brand").distinct())["brand"].to_pylist()
        registry.ensure_brands(session, brands, app.settings.timezone)
        for column in entity.field_columns:
            pairs = engine.to_arrow(good.select("brand", column).filter(good[column].notnull()).distinct())
            warnings += registry.register_seen_fields(session, pairs.to_pylist(), column, raw.path.name)

    version = None
    landed = LandedKeys(entity)
    if new_rows is not None and counts.accepted + counts.updated:
        stamped = new_rows.mutate(
            ingested_at=ibis.literal(utc_now()).cast("timestamp('UTC')"),
            _import_id=ibis.literal(job_id),
            _file=ibis.literal(raw.path.name),
        )
        if order := sort_keys(entity.name, stamped.columns):  # time-clustered files: windows skip row groups
            stamped = stamped.order_by(order)
        # Streamed from the engine into one Delta commit: the new rows are never all in memory.
        # PII columns are sealed batch by batch on the way (siyu.privacy.lake_columns).
        if entity.name in lake_columns.SEALED and ring is not None:
            stream = lake_columns.seal_batches(
                ring, app.settings.pii_key, entity.name, engine.batches(lake_columns.prepare(entity.name, stamped))
            )
        else:
            stream = engine.batches(stamped)
        batches = landed.watch(stream)
        version = app.lake.append(entity.name, batches, metadata={"siyu.import_id": job_id, "siyu.file": raw.path.name})

    # The job's commit and its *Landed events are one transaction. A crash between the lake commit
    # and this one leaves the job `running` and no event: handlers that must not miss rows (the
    # loyalty posting) also run on a schedule and find them by anti-join.
    with app.store.begin(Actor.system("import")) as uow:
        job = uow.session.get(ImportJob, job_id)
        assert job is not None
        job.status, job.finished_at, job.lake_version = "committed", uow.now, version
        job.message = "\n".join(warnings) or None
        for event in landed.events(job_id):
            uow.emit(event)
    return FileReport(path=raw.path, entity=entity.name, counts=counts, encoding=raw.encoding, warnings=warnings)


def _split_duplicates(engine: Engine, entity: Entity, checked: ir.Table) -> tuple[ir.Table, pa.Table]:
    """Valid rows with a key repeated in the file: the last line wins, earlier ones are quarantined."""
    key = list(entity.key)
    valid = checked.filter(checked._valid)
    repeated = valid.group_by(key).aggregate(_n=valid.count(), _last_line=valid._line.max())
    repeated = engine.to_arrow(repeated.filter(repeated._n > 1).drop("_n"))
    if repeated.num_rows == 0:
        return valid, pa.table({"_line": pa.array([], pa.int64()), "_error_field": pa.array([], pa.string()),
                                "_error_reason": pa.array([], pa.string())})  # fmt: skip
    marked = valid.left_join(ibis.memtable(repeated), key).drop(*[f"{k}_right" for k in key])
    superseded = marked._last_line.notnull() & (marked._line != marked._last_line)
    dups = marked.filter(superseded).select(
        "_line",
        _error_field=ibis.literal(entity.key[-1]),
        _error_reason="duplicate key in file; superseded by line " + marked._last_line.cast("string"),
    )
    return marked.filter(~superseded).drop("_last_line"), engine.to_arrow(dups)


def classify(app: App, entity: Entity, good: ir.Table) -> ir.Table:
    """accepted (new key) / updated (key known, content changed) / unchanged."""
    current = latest(app.engine, entity.name)
    key = list(entity.key)
    if current is None:
        return good.mutate(_outcome=ibis.literal("accepted"))
    known = current.select(*key, _old_hash=current._row_hash)
    joined = good.left_join(known, key).drop(*[f"{k}_right" for k in key])
    outcome = ibis.cases(
        (joined._old_hash.isnull(), "accepted"),
        (joined._old_hash == joined._row_hash, "unchanged"),
        else_="updated",
    )
    return joined.mutate(_outcome=outcome).drop("_old_hash")


def _count(value_counts: pa.Table) -> Counts:
    counts = Counts()
    for status, n in zip(value_counts.column(0).to_pylist(), value_counts.column(1).to_pylist(), strict=True):
        setattr(counts, status, int(n))
    return counts


def _quarantine_rows(
    job_id: str,
    entity: str,
    path: Path,
    bad: pa.Table,
    pick: Callable[[pa.Array], pa.Table],
    settings: Settings,
) -> list[QuarantineRow]:
    if bad.num_rows == 0:
        return []
    found = pick(bad["_line"].combine_chunks() if isinstance(bad["_line"], pa.ChunkedArray) else bad["_line"])
    indices = pc.index_in(bad["_line"], value_set=found["_line"])
    originals = found.take(indices).drop_columns(["_line"]).to_pylist()
    ring = settings.pii_sealing_ring
    return [
        QuarantineRow(
            job_id=job_id,
            entity=entity,
            file=str(path),
            line=line,
            field=fld,
            reason=reason,
            # an erased person's line is not kept: file, line and reason say enough
            raw=sealed_rows.seal(ring, {} if reason == ERASED_REASON else original, sealed_rows.QUARANTINE),
            match_hashes=sealed_rows.match_hashes(settings.pii_key, {} if reason == ERASED_REASON else original),
        )
        for line, fld, reason, original in zip(
            bad["_line"].to_pylist(),
            bad["_error_field"].to_pylist(),
            bad["_error_reason"].to_pylist(),
            originals,
            strict=True,
        )
    ]


def quarantine(
    app: App, include_history: bool = False, limit: int | None = None, reveal: tuple[Actor, str] | None = None
) -> list[dict[str, object]]:
    """Quarantined rows of committed imports; by default only the latest import of each file.

    The raw rows are stored sealed (siyu.privacy.sealed_rows); they are shown with PII masked unless
    `reveal` = (who, purpose), which opens them through the audited reveal (siyu.privacy.reveal)."""
    ring = app.settings.pii_keyring
    with app.store.unit_of_work() as session:
        found = _quarantined(session, include_history, limit)
    rows = [
        {
            "entity": row.entity,
            "file": row.file,
            "line": row.line,
            "field": row.field,
            "reason": row.reason,
            "raw": row.raw,
            "job_id": row.job_id,
            "imported_at": started.isoformat(),
        }
        for row, started in found
    ]

    def opened() -> list[dict[str, Any]]:
        return [{**r, "raw": sealed_rows.open_row(ring, str(r["raw"]), sealed_rows.QUARANTINE)} for r in rows]

    if reveal is None:
        return [{**r, "raw": sealed_rows.masked(r["raw"])} for r in opened()]
    actor, purpose = reveal
    with app.store.begin(actor) as uow:
        ids = sorted({f"{r['job_id']}" for r in rows})
        return do_reveal(uow, opened, purpose=purpose, subject_type="quarantine_rows", subject_ids=ids)


def _quarantined(session: Session, include_history: bool, limit: int | None) -> list[Any]:
    jobs = session.scalars(
        select(ImportJob).where(ImportJob.status == "committed").order_by(ImportJob.started_at.desc())
    ).all()
    seen: set[str] = set()
    job_ids = []
    for job in jobs:
        if include_history or job.path not in seen:
            job_ids.append(job.id)
        seen.add(job.path)
    query = (
        select(QuarantineRow, ImportJob.started_at)
        .join(ImportJob, ImportJob.id == QuarantineRow.job_id)
        .where(QuarantineRow.job_id.in_(job_ids))
        .order_by(ImportJob.started_at, QuarantineRow.file, QuarantineRow.line)
    )
    if limit:
        query = query.limit(limit)
    return list(session.execute(query).all())
