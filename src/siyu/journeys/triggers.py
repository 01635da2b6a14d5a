"""Who a journey's trigger enrols now: candidate selection over the lake (Ibis), then one
set-based insert (siyu.journeys.enrol).

Only what lands after the journey was applied triggers it. For event triggers the journey keeps a
high-water mark of the lake's `ingested_at`: each scan takes the rows ingested after it. A row whose
customer One-ID has not placed yet holds the mark just before it (it is looked at again once
resolved; the unique entry key keeps a re-scan from enrolling twice). Date triggers remember the
last local day they enrolled for; a broadcast runs once.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from siyu.bootstrap import App
from siyu.brands.settings import brand_settings
from siyu.ingest.views import current
from siyu.journeys.definition import DateTrigger, Journey
from siyu.journeys.sources import empty_candidates, identity_map, occurrences, unresolved

# An unresolved row stops holding the mark once rows this much newer have landed: a source record
# that never resolves (bad data) must not make every later scan re-read everything.
GIVE_UP = dt.timedelta(days=1)


def zone_of(app: App, journey: Journey) -> ZoneInfo:
    return ZoneInfo(journey.timezone or brand_settings(app, journey.brand).timezone)


def initial_mark(app: App, journey: Journey, at: dt.datetime) -> str | None:
    """The mark a newly applied journey starts from: everything already in the lake is "before"."""
    trigger = journey.trigger
    if trigger.event is not None:
        rows = occurrences(app, journey.brand, trigger.event.type, {})
        if rows is None:
            return None
        latest = _scalar(app, rows.ingested_at.max())
        return None if latest is None else _iso(latest)
    if trigger.date is not None:  # dates from the apply day on
        return (at.astimezone(zone_of(app, journey)).date() - dt.timedelta(days=1)).isoformat()
    if trigger.audience is not None:
        from siyu.journeys.audience_trigger import latest_snapshot

        return str(latest_snapshot(app, journey.brand, trigger.audience.code))
    return None


def _scalar(app: App, expr: ir.Scalar) -> Any:
    """An engine scalar with missing values as None (an empty max comes back as NaT)."""
    value = app.engine.scalar(expr)
    if value is None or value != value:  # NaT / NaN are not equal to themselves
        return None
    return value.to_pydatetime() if hasattr(value, "to_pydatetime") else value


def _iso(value: Any) -> str:
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.isoformat() if isinstance(value, dt.datetime) else str(value)


def _parse(mark: str) -> dt.datetime:
    return dt.datetime.fromisoformat(mark)


Candidates = tuple[pa.Table, str | None]  # (customer_id, entry_key, occurred_at, props), the new mark


def event_candidates(
    app: App, journey: Journey, mark: str | None, backfill_from: dt.datetime | None, once_per_customer: bool
) -> Candidates:
    trigger = journey.trigger.event
    assert trigger is not None
    rows = occurrences(app, journey.brand, trigger.type, trigger.where)
    if rows is None:
        return empty_candidates(), mark
    if mark is not None:
        rows = rows.filter(rows.ingested_at > _parse(mark))
    elif backfill_from is not None:
        rows = rows.filter(rows.occurred_at >= backfill_from)
    newest = _scalar(app, rows.ingested_at.max())
    if newest is None:  # nothing resolved landed since the mark: no candidates, the mark stays
        return empty_candidates(), mark  # (most scans of a running worker: skips the reads below)
    new_mark = _iso(newest)
    if once_per_customer:  # the earliest occurrence per customer in this scan
        rows = rows.mutate(_n=ibis.row_number().over(group_by="customer_id", order_by=["occurred_at", "occurrence"]))
        rows = rows.filter(rows._n == 0).drop("_n")
    found = app.engine.to_arrow(
        rows.select("customer_id", entry_key=rows.occurrence, occurred_at=rows.occurred_at, props=rows.props)
    )
    waiting = unresolved(app, journey.brand, trigger.type)
    if waiting is not None and new_mark is not None:
        cutoff = _parse(new_mark) - GIVE_UP
        lo = waiting.filter(waiting.ingested_at > cutoff)
        if mark is not None:
            lo = lo.filter(lo.ingested_at > _parse(mark))
        oldest = _scalar(app, lo.ingested_at.min())
        if oldest is not None:
            held = _iso(oldest - dt.timedelta(microseconds=1))
            new_mark = held if mark is None or held > mark else mark
    return found, new_mark


def _anniversaries(app: App, journey: Journey, trigger: DateTrigger) -> ir.Table | None:
    """customer_id with `date` (the attribute's Gregorian date) of the brand's customers."""
    idmap = identity_map(app, journey.brand)
    if idmap is None:
        return None
    if trigger.attribute == "birthday":
        rows = current(app, "customers")
        if rows is None:
            return None
        rows = rows.filter((rows.brand == journey.brand) & rows.birthday.notnull())
        rows = rows.mutate(date=rows.birthday.cast("date"))
    else:
        rows = current(app, "memberships")
        if rows is None:
            return None
        rows = rows.filter((rows.brand == journey.brand) & rows.left_at.isnull())
        # the local joining day (China has no daylight saving: one offset for the whole table)
        offset = dt.datetime.now(zone_of(app, journey)).utcoffset() or dt.timedelta(0)
        local = rows.joined_at + ibis.interval(seconds=int(offset.total_seconds()))
        rows = rows.mutate(date=local.date())
    resolved = rows.join(idmap, ["source", "source_customer_id"]).select("customer_id", "date")
    # one date per customer (merged records may disagree: the earliest wins)
    return resolved.group_by("customer_id").agg(date=resolved.date.min())


def date_candidates(app: App, journey: Journey, mark: str | None, now: dt.datetime) -> Candidates:
    """Customers whose date (shifted by offset_days) falls on a local day after the mark and up to
    today, once today's local `at` time has passed."""
    trigger = journey.trigger.date
    assert trigger is not None
    zone = zone_of(app, journey)
    local = now.astimezone(zone)
    hours, minutes = (int(x) for x in trigger.at.split(":"))
    today = local.date() if local.time() >= dt.time(hours, minutes) else local.date() - dt.timedelta(days=1)
    first = _parse_day(mark) + dt.timedelta(days=1) if mark else today
    if first > today:
        return empty_candidates(), mark
    people = _anniversaries(app, journey, trigger)
    if people is None:
        return empty_candidates(), today.isoformat()
    out = []
    years: tuple[int, ...] | None = None
    day = first
    while day <= today:  # a loop over calendar days (normally one), each an engine query
        target = day - dt.timedelta(days=trigger.offset_days)  # the anniversary this day is offset from
        if trigger.calendar == "lunar":
            # a lunar birthday: birth dates whose lunar month/day is the target's (one per year)
            if years is None:  # the birth years present (few), so only those lunar years are worked out
                years = tuple(app.engine.to_arrow(people.select(y=people.date.year()).distinct())["y"].to_pylist())
            hits = people.filter(people.date.isin(_same_lunar_day(target, years))).select("customer_id")
        else:
            hits = people.filter((people.date.month() == target.month) & (people.date.day() == target.day))
            hits = hits.select("customer_id")
        if trigger.attribute == "membership_anniversary":  # the joining day itself is no anniversary
            hits = people.filter(people.date.year() < target.year).semi_join(hits, "customer_id").select("customer_id")
        key = f"{trigger.attribute}:{target.isoformat()}"
        occurred = dt.datetime.combine(day, dt.time(hours, minutes), zone).astimezone(dt.UTC)
        found = app.engine.to_arrow(hits)
        if found.num_rows:
            out.append(
                found.append_column("entry_key", pa.array([key] * found.num_rows))
                .append_column("occurred_at", pa.array([occurred] * found.num_rows, pa.timestamp("us", "UTC")))
                .append_column("props", pa.array([json.dumps({"date": target.isoformat()})] * found.num_rows))
            )
        day += dt.timedelta(days=1)
    return (pa.concat_tables(out) if out else empty_candidates()), today.isoformat()


def _same_lunar_day(day: dt.date, years: tuple[int, ...]) -> list[dt.date]:
    """The Gregorian dates in `years` that fall on `day`'s lunar month and day. A 30th in a short
    month falls on its last day; a leap month counts as its month (闰月按本月计)."""
    from lunar_python import LunarMonth, Solar

    lunar = Solar.fromYmd(day.year, day.month, day.day).getLunar()
    month, dom = abs(lunar.getMonth()), lunar.getDay()
    found = []
    for year in years:
        if not 1900 <= year <= 2099:
            continue
        first = LunarMonth.fromYm(year, month)
        solar = Solar.fromJulianDay(first.getFirstJulianDay() + min(dom, first.getDayCount()) - 1)
        found.append(dt.date(solar.getYear(), solar.getMonth(), solar.getDay()))
    return found


def _parse_day(mark: str) -> dt.date:
    return dt.date.fromisoformat(mark)


def broadcast_candidates(app: App, journey: Journey, mark: str | None, now: dt.datetime) -> Candidates:
    """The audience's members, once, when the broadcast time has come."""
    from siyu.audiences.service import compiled_audience

    trigger = journey.trigger.broadcast
    assert trigger is not None
    if mark == "done" or now < trigger.at:
        return empty_candidates(), mark
    zone = zone_of(app, journey)
    with compiled_audience(app, journey.brand, trigger.audience, None, now.astimezone(zone).date()) as (_, expr):
        found = app.engine.to_arrow(expr.select("customer_id"))
    n = found.num_rows
    key = f"broadcast:{trigger.at.isoformat()}"
    found = (
        found.append_column("entry_key", pa.array([key] * n, pa.string()))
        .append_column("occurred_at", pa.array([trigger.at] * n, pa.timestamp("us", "UTC")))
        .append_column("props", pa.array(["{}"] * n, pa.string()))
    )
    return found, "done"


def candidates(
    app: App, journey: Journey, mark: str | None, backfill_from: dt.datetime | None, now: dt.datetime
) -> Candidates:
    """(customer_id, entry_key, occurred_at, props) to enrol now, and the trigger's next mark."""
    once = journey.re_entry != "always"
    if journey.trigger.event is not None:
        return event_candidates(app, journey, mark, backfill_from, once)
    if journey.trigger.date is not None:
        if mark is None and backfill_from is not None:
            mark = (backfill_from.astimezone(zone_of(app, journey)).date() - dt.timedelta(days=1)).isoformat()
        return date_candidates(app, journey, mark, now)
    if journey.trigger.broadcast is not None:
        return broadcast_candidates(app, journey, mark, now)
    from siyu.journeys.audience_trigger import audience_candidates

    return audience_candidates(app, journey, mark)
