"""Materialisation (物化): the jobs that compute relationship layers and RFM and store them in the
lake (tables `layers`, `rfm`), each run recorded in the store (`materialisations`) with the inputs it
saw. They are the only writers of those tables: audiences, the customer 360 and fresh reads use
what they stored; API GETs, `siyu metrics …` and reports never write (docs/metrics.md).

`siyu metrics materialise` runs them on demand; `siyu worker` runs `scheduled` periodically. A run
whose stored result is already fresh (same key, same inputs) is skipped, so a schedule costs only
the look-up while nothing changed.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from siyu.bootstrap import App
from siyu.brands.settings import brand_settings, list_brands
from siyu.clv.service import lifecycle
from siyu.core.clock import utc_now
from siyu.core.errors import SiyuError
from siyu.metrics.facts import NoCustomersError
from siyu.metrics.fast import BadOptionError, FastMetrics
from siyu.metrics.freshness import Key, Run, fresh_run, inputs, record_run
from siyu.metrics.layers import LAYERS_TABLE, layer_ranks, store_layers
from siyu.metrics.periods import containing, period_range
from siyu.metrics.rfm import RFM_TABLE, scores, store_rfm

log = logging.getLogger(__name__)
TRIGGERS = ("command", "schedule")


@dataclass(frozen=True)
class Outcome:
    """A run that stored (`stored` True) or found its stored result fresh and skipped."""

    run: Run
    stored: bool

    def as_json(self) -> dict[str, object]:
        return self.run.as_json() | {"stored": self.stored}


def materialise_layers(
    app: App, brand: str, first: str, last: str, grain: str = "month", *, trigger: str = "command", force: bool = False
) -> list[Outcome]:
    """Store the layers at the end of every period from `first` to `last` (labels of `grain`)."""
    m = FastMetrics(app, brand, grain)  # for its period parsing and fact preparation
    periods = period_range(m.period(first), m.period(last))
    seen = inputs(app, m.settings)
    keys = [Key("layers", m.settings.code, grain=p.grain, period=p.label) for p in periods]
    runs = [None if force else fresh_run(app, key, seen) for key in keys]
    todo = [p for p, run in zip(periods, runs, strict=True) if run is None]
    if todo:
        m.prepare(todo[0], todo[-1])  # facts are read once for every period to compute
    out: list[Outcome] = []
    for period, key, run in zip(periods, keys, runs, strict=True):
        if run is not None:
            out.append(Outcome(run, stored=False))
            continue
        ranks = app.engine.materialise(layer_ranks(m.facts, period), f"facts_{m.facts.tag}_stored_ranks")
        version = store_layers(m.facts, period, ranks)
        rows = int(app.engine.to_arrow(ranks.count().name("n").as_table())["n"][0].as_py())
        out.append(Outcome(record_run(app, key, seen, LAYERS_TABLE, version, rows, trigger), stored=True))
    return out


def materialise_rfm(
    app: App, brand: str, as_of: date, window_days: int = 365, *, trigger: str = "command", force: bool = False
) -> Outcome:
    """Store the RFM scores and groups of every buyer in the window ending on `as_of`."""
    if window_days < 1:
        raise BadOptionError("--window-days must be ≥ 1 (窗口天数)")
    settings = brand_settings(app, brand)
    seen = inputs(app, settings)
    key = Key("rfm", settings.code, as_of=as_of, window_days=window_days)
    run = None if force else fresh_run(app, key, seen)
    if run is not None:
        return Outcome(run, stored=False)
    scored, _ = scores(app, settings, as_of, window_days)
    version, rows = store_rfm(app, settings, as_of, window_days, scored)
    return Outcome(record_run(app, key, seen, RFM_TABLE, version, rows, trigger), stored=True)


def materialise_for_report(app: App, brand: str, period: str, grain: str = "month", trend_periods: int = 12) -> None:
    """Store what the health report of `period` shows and later steps query (`siyu demo` calls this
    before its report): the layers of the trend's periods and the one before them, the 365-day RFM
    and the lifecycle stages as of the period's last day. The trend's periods are the report's 12
    and the one before them (the first one's "previous")."""
    m = FastMetrics(app, brand, grain)
    last = m.period(period)
    first = last
    for _ in range(trend_periods):
        first = first.previous()
    materialise_layers(app, brand, first.label, last.label, grain)
    materialise_rfm(app, brand, last.last_day)
    lifecycle(app, brand, last.last_day, store=True)


def scheduled(app: App, now: datetime | None = None) -> list[Outcome]:
    """One pass of the schedule for every brand with customers: monthly layers of the last two full
    months and RFM (365 days) as of yesterday, all in the brand's time zone. Fresh results are
    skipped; a brand whose run fails is logged and the others go on."""
    now = now or utc_now()
    out: list[Outcome] = []
    for settings in list_brands(app):
        today = now.astimezone(ZoneInfo(settings.timezone)).date()
        yesterday = today - timedelta(days=1)
        last = containing(today, "month", settings.timezone).previous()
        try:
            out += materialise_layers(app, settings.code, last.previous().label, last.label, trigger="schedule")
            out.append(materialise_rfm(app, settings.code, yesterday, trigger="schedule"))
        except NoCustomersError:
            continue  # nothing imported or resolved for this brand yet
        except SiyuError as error:
            log.warning("materialise %s failed: %s", settings.code, error.message)
    return out


def run_schedule(app: App, stop: threading.Event, every: timedelta) -> None:
    """Run `scheduled` every `every` until `stop` is set (the worker's thread). The first pass waits
    one interval too, so a worker restarted in a loop does not recompute at every start."""
    while not stop.wait(every.total_seconds()):
        try:
            stored = [o for o in scheduled(app) if o.stored]
            log.info("materialised %d results", len(stored))
        except Exception as error:  # a failed pass must not end the schedule: the next one retries
            log.error("scheduled materialisation failed (%s)", type(error).__name__)  # no message: it can quote data
