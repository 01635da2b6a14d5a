"""Materialisation on the hand-made brand `fx` (numbers worked out in tests/integration/test_fast_metrics.py):
the job stores layers and RFM and records each run with the inputs it saw; reads use a stored result
only while those inputs are unchanged, and never write."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fixtures.fast_brand import write_brand
from siyu.bootstrap import App, with_own_engine
from siyu.brands.settings import do_update_brand
from siyu.core.actor import Actor
from siyu.identity.service import run_resolve
from siyu.ingest.importer import import_path
from siyu.metrics.fast import BadOptionError, FastMetrics
from siyu.metrics.materialise import (
    materialise_for_report,
    materialise_layers,
    materialise_rfm,
    run_schedule,
    scheduled,
)
from siyu.metrics.rfm import rfm
from siyu.store.models import MaterialisationRun

JUNE_30 = date(2024, 6, 30)


def _runs(app: App) -> int:
    with app.store.unit_of_work() as session:
        return int(session.scalar(select(func.count()).select_from(MaterialisationRun)) or 0)


@pytest.fixture
def fx(app: App, tmp_path: Path) -> App:
    """On SQLite and PostgreSQL: the runs live in the store."""
    import_path(app, write_brand(tmp_path / "fx"))
    run_resolve(app)
    return app


def test_layers_are_stored_once_and_read_while_fresh(fx: App) -> None:
    computed = FastMetrics(fx, "fx").fast(FastMetrics(fx, "fx").period("2024-06"))
    assert computed["layers_materialised_at"] is None
    assert fx.lake.version("layers") is None  # the read wrote nothing

    out = materialise_layers(fx, "fx", "2024-05", "2024-06")
    assert [(o.run.key.period, o.run.rows, o.stored) for o in out] == [("2024-05", 13, True), ("2024-06", 13, True)]
    version = fx.lake.version("layers")
    stored = fx.engine.table("layers")
    assert stored is not None
    rows = fx.engine.to_arrow(stored.filter(stored.period == "2024-06")).to_pylist()
    assert len(rows) == 13  # every customer, `none` included (14 source records, c1+c2 merged)
    assert sum(r["layer"] == "koc" for r in rows) == 2  # A and J

    # Same inputs: the job skips, the read uses the stored layers and gets the same numbers.
    again = materialise_layers(fx, "fx", "2024-06", "2024-06")
    assert [o.stored for o in again] == [False] and fx.lake.version("layers") == version
    m = FastMetrics(fx, "fx")
    read = m.fast(m.period("2024-06"))
    assert read["layers_materialised_at"] == out[1].run.materialised_at.isoformat()
    assert read | {"layers_materialised_at": None} == computed

    # --force replaces the period's rows, never duplicates them.
    forced = materialise_layers(fx, "fx", "2024-06", "2024-06", force=True)
    assert forced[0].stored and forced[0].run.lake_version == version + 1
    stored = fx.engine.table("layers")
    assert stored is not None
    assert fx.engine.to_arrow(stored.filter(stored.period == "2024-06")).num_rows == 13
    assert _runs(fx) == 3


def test_changed_inputs_make_stored_layers_stale(fx: App) -> None:
    materialise_layers(fx, "fx", "2024-06", "2024-06")
    # A settings change: reviews no longer count, so J is no longer KOC (test_same_numbers_on_every_store).
    with fx.store.begin(Actor.user("tests")) as uow:
        do_update_brand(uow, "fx", koc_reviews=False)
    m = FastMetrics(fx, "fx")
    read = m.fast(m.period("2024-06"))
    assert read["layers"]["koc"] == 1 and read["layers_materialised_at"] is None
    # A lake change (One-ID rewrites the identity map): stale as well, until the job runs again.
    with fx.store.begin(Actor.user("tests")) as uow:
        do_update_brand(uow, "fx", koc_reviews=True)
    run_resolve(fx)
    m = FastMetrics(fx, "fx")
    assert m.fast(m.period("2024-06"))["layers_materialised_at"] is None
    assert [o.stored for o in materialise_layers(fx, "fx", "2024-06", "2024-06")] == [True]
    m = FastMetrics(fx, "fx")
    assert m.fast(m.period("2024-06"))["layers_materialised_at"] is not None


def test_rfm_is_stored_and_read_while_fresh(fx: App) -> None:
    computed = rfm(fx, "fx", JUNE_30)
    assert computed["materialised_at"] is None and fx.lake.version("rfm") is None
    out = materialise_rfm(fx, "fx", JUNE_30)
    assert out.stored and out.run.rows == 9 and out.run.lake_table == "rfm"
    stored = fx.engine.table("rfm")
    assert stored is not None
    scores = {
        r["monetary_fen"]: (r["r"], r["f"], r["m"], r["group"])
        for r in fx.engine.to_arrow(stored).to_pylist()
        if r["monetary_fen"] in (26000, 16000, 6000)
    }
    assert scores[26000] == (2, 5, 5, "important_retention")  # A
    assert scores[16000] == (4, 3, 4, "important_value")  # D
    read = rfm(fx, "fx", JUNE_30)
    assert read["materialised_at"] == out.run.materialised_at.isoformat()
    assert read | {"materialised_at": None} == computed
    assert not materialise_rfm(fx, "fx", JUNE_30).stored  # fresh: skipped
    assert rfm(fx, "fx", JUNE_30, window_days=30)["materialised_at"] is None  # another window: computed
    with pytest.raises(BadOptionError):
        materialise_rfm(fx, "fx", JUNE_30, window_days=0)


def test_schedule_stores_the_last_two_full_months_and_yesterdays_rfm(fx: App) -> None:
    # 2024-07-01T01:00Z is July 1st in Asia/Shanghai: the full months are May and June, yesterday June 30.
    now = datetime(2024, 7, 1, 1, tzinfo=UTC)
    first = scheduled(fx, now)
    assert [(o.run.key.kind, o.run.key.period, o.run.key.as_of, o.stored) for o in first] == [
        ("layers", "2024-05", None, True),
        ("layers", "2024-06", None, True),
        ("rfm", None, JUNE_30, True),
    ]
    assert {o.run.trigger for o in first} == {"schedule"}
    assert [o.stored for o in scheduled(fx, now)] == [False, False, False]  # nothing changed: nothing written
    assert rfm(fx, "fx", JUNE_30)["materialised_at"] is not None


def test_the_worker_schedule_runs_until_stopped(fx: App) -> None:
    stop = threading.Event()
    every = timedelta(seconds=0.2)  # later passes find everything fresh and store nothing
    worker = threading.Thread(target=run_schedule, args=(with_own_engine(fx), stop, every))
    worker.start()
    deadline = time.monotonic() + 300
    while _runs(fx) < 3:  # layers of the last two full months and yesterday's RFM, whatever today is
        assert worker.is_alive() and time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(1)
    stop.set()
    worker.join(timeout=60)
    assert not worker.is_alive() and _runs(fx) == 3


def test_materialise_for_report_stores_what_the_report_shows(fx: App) -> None:
    materialise_for_report(fx, "fx", "2024-06")
    with fx.store.unit_of_work() as session:
        periods = session.scalars(select(MaterialisationRun.period).where(MaterialisationRun.kind == "layers")).all()
    assert sorted(periods) == [f"2023-{m:02d}" for m in range(6, 13)] + [f"2024-{m:02d}" for m in range(1, 7)]
    assert rfm(fx, "fx", JUNE_30)["materialised_at"] is not None
    assert fx.lake.version("lifecycle") is not None
