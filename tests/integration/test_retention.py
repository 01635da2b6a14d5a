"""Retention: hand-built dates around each cut-off; only what is past its brand's date goes, in the
store and the lake (older Delta versions included), and a dry run deletes nothing."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
from sqlalchemy import func, insert, select

from fixtures.subject_world import fill_row
from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.privacy.retention import do_set_policy, run_retention
from siyu.store.models import Base, Brand

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def _events(app: App) -> None:
    """ra keeps events 30 days (its policy), rb the default 3 years (1,095 days)."""
    at = [NOW - 31 * DAY, NOW - 29 * DAY, NOW - 1096 * DAY, NOW - 1094 * DAY]
    app.lake.append("events", pa.table({
        "brand": ["ra", "ra", "rb", "rb"], "source": ["crm"] * 4, "event_id": ["old-a", "new-a", "old-b", "new-b"],
        "type": ["visit"] * 4, "source_customer_id": ["x"] * 4, "properties": ['{"phone": "13900000009"}'] * 4,
        "occurred_at": pa.array(at, pa.timestamp("us", tz="UTC")),
    }))  # fmt: skip


def _store(app: App) -> None:
    tables = Base.metadata.tables
    with app.store.write_unit() as session:
        for code in ("ra", "rb"):
            session.add(Brand(code=code, name=code, timezone="Asia/Shanghai", created_at=NOW))
        session.flush()
        # quarantine rows: dated by their import job (default 90 days for every brand)
        for job, started in (("job-old", NOW - 91 * DAY), ("job-new", NOW - 89 * DAY)):
            job_row = fill_row("import_jobs", id=job, path=job, entity="customers", status="committed",
                               started_at=started)  # fmt: skip
            session.execute(insert(tables["import_jobs"]).values(job_row))
            raw = json.dumps({"phone": "13900000009"})
            quarantined = fill_row("quarantine_rows", job_id=job, entity="customers", raw=raw)
            session.execute(insert(tables["quarantine_rows"]).values(quarantined))
        # inbox: loaded rows after 30 days; a row never loaded stays whatever its age
        for i, loaded in enumerate((NOW - 31 * DAY, NOW - 29 * DAY, None)):
            session.execute(insert(tables["inbox"]).values(fill_row(
                "inbox", brand="ra", source="crm", kind="customers", message_id=f"m{i}",
                received_at=NOW - 40 * DAY, loaded_at=loaded)))  # fmt: skip


def _count(app: App, table: str) -> int:
    with app.store.unit_of_work() as session:
        return int(session.scalar(select(func.count()).select_from(Base.metadata.tables[table])) or 0)


def test_retention_deletes_what_is_past_its_date(sqlite_app: App) -> None:
    app = sqlite_app
    app.clock = lambda: NOW
    _store(app)
    _events(app)
    with app.store.begin(Actor.user("dpo")) as uow:
        do_set_policy(uow, "ra", "events", 30)

    dry = run_retention(app, dry_run=True)
    assert (dry["events"], dry["quarantine_rows"], dry["inbox"]) == (2, 1, 1)  # old-a, old-b; job-old; m0
    assert _count(app, "quarantine_rows") == 2 and _count(app, "inbox") == 3  # nothing deleted

    done = run_retention(app)
    assert done == dry
    events = app.engine.table("events")
    assert events is not None
    assert sorted(app.engine.to_arrow(events.select("event_id"))["event_id"].to_pylist()) == ["new-a", "new-b"]
    assert _count(app, "quarantine_rows") == 1 and _count(app, "inbox") == 2
    # the older lake versions are gone too: only the current files remain, none holds old-a
    parquet = list(app.lake.path("events").rglob("*.parquet"))
    assert all(b"old-a" not in p.read_bytes() for p in parquet)
    assert run_retention(app)["events"] == 0  # idempotent
    with app.store.unit_of_work() as session:
        audit = session.scalars(select(Base.metadata.tables["audit_log"].c.action)).all()
    assert audit.count("retention.run") == 3 and "retention.set" in audit
