"""What compiling a rule needs: the brand, the as-of day, the brand's identity map, and the lake
tables read once per compilation. Every condition becomes a table of distinct `customer_id`s, built
from raw rows filtered by brand, type and time *before* they meet the identity map, so DuckDB runs a
whole audience as one query of semi- and anti-joins.
"""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import ibis
import ibis.expr.types as ir

from siyu.audiences.ranges import check_day
from siyu.audiences.rules import Window
from siyu.bootstrap import App
from siyu.brands.settings import BrandSettings, brand_settings
from siyu.identity.service import MAP_TABLE
from siyu.ingest.views import current
from siyu.metrics.facts import NoCustomersError

NODE = ["source", "source_customer_id"]
ID = "customer_id"
_narrowed = itertools.count()
# Small raw tables that a one-customer view reads many times (events and orders are filtered by
# type and time first, so they are better left to the engine's plan).
PROFILE_ENTITIES = ("customers", "identities", "memberships", "relations")


def empty_ids() -> ir.Table:
    return ibis.memtable({ID: []}, schema={ID: "string"})


def ids(table: ir.Table) -> ir.Table:
    """The distinct customer ids of a table with a `customer_id` column."""
    return table.select(ID).distinct()


class Context:
    """One compilation: brand settings, the as-of day (brand-local, windows end with it) and
    cached readers. `as_of` defaults to today in the brand's time zone; `customer_id` narrows the
    brand to one customer (the customer view's lights)."""

    def __init__(self, app: App, brand: str, as_of: date | None = None, customer_id: str | None = None) -> None:
        self.app = app
        self.brand: BrandSettings = brand_settings(app, brand)
        self.zone = ZoneInfo(self.brand.timezone)
        # Within the years rules allow, so that windows ending with it stay within the calendar.
        self.as_of = check_day(as_of or datetime.now(self.zone).date(), "as_of")
        idmap = app.engine.table(MAP_TABLE)
        if idmap is None:
            raise NoCustomersError("no identity map yet: run `siyu import` and `siyu resolve` first (尚未运行 One-ID)")
        self._tables: dict[str, ir.Table | None] = {}
        self.cache: dict[str, Any] = {}  # per-compilation memo for leaf helpers (e.g. consent)
        self.temporary: list[str] = []  # temporary engine tables this compilation made (see release)
        self.single = customer_id is not None
        self.customer_id = customer_id
        idmap = idmap.filter(idmap.brand == self.brand.code).select(*NODE, ID)
        if customer_id is not None:
            # One customer's view: their records once, and every raw table cut to them (see raw).
            idmap = self.materialise(idmap.filter(idmap.customer_id == customer_id), "customer")
        self.idmap = idmap
        self.universe = ids(self.idmap)

    def narrowed(self, candidates: ir.Table) -> Context:
        """The same compilation limited to `candidates` (customer ids): their identity-map records
        are computed once into a temporary table, so every later condition joins its raw rows
        against a small table instead of the whole map. Conditions are per customer, so an `all`
        evaluated among its candidates gives the same audience."""
        other = copy.copy(self)
        records = self.idmap.semi_join(candidates, ID)
        other.idmap = self.materialise(records, "candidates")
        other.universe = ids(other.idmap)
        other.cache = {}
        return other

    def materialise(self, expr: ir.Table, stem: str) -> ir.Table:
        """Compute `expr` once into a temporary table, dropped by `release`."""
        name = f"audience_{stem}_{next(_narrowed)}"
        self.temporary.append(name)
        return self.app.engine.materialise(expr, name)

    def release(self) -> None:
        """Drop the temporary tables once the results are read (a long-running API process would
        otherwise keep every audience's candidates)."""
        while self.temporary:
            self.app.engine.drop_temporary(self.temporary.pop())

    # -- reading -------------------------------------------------------------------------------------

    def raw(self, entity: str) -> ir.Table | None:
        """The brand's current rows of a raw entity table (None if never imported)."""
        if entity not in self._tables:
            table = current(self.app, entity)
            if table is not None:
                table = table.filter(table.brand == self.brand.code)
                if self.single and set(NODE) <= set(table.columns):
                    table = table.semi_join(self.idmap.select(*NODE), NODE)
                    if entity in PROFILE_ENTITIES:  # read many times: one scan, then a handful of rows
                        table = self.materialise(table, entity)
            self._tables[entity] = table
        return self._tables[entity]

    def derived(self, name: str) -> ir.Table | None:
        """A derived lake table (layers, rfm, lifecycle, clv_predictions, tag_values), brand rows only."""
        key = f"derived:{name}"
        if key not in self._tables:
            table = self.app.engine.table(name)
            self._tables[key] = None if table is None else table.filter(table.brand == self.brand.code)
        return self._tables[key]

    def resolve(self, rows: ir.Table) -> ir.Table:
        """Source rows (with source, source_customer_id) -> the same rows with their customer_id."""
        return rows.join(self.idmap, NODE)

    # -- time ----------------------------------------------------------------------------------------

    def day_start(self, day: date) -> datetime:
        """The first instant (UTC) of a brand-local day."""
        return datetime.combine(day, datetime.min.time(), self.zone).astimezone(UTC)

    def bounds(self, window: Window | None) -> tuple[datetime | None, datetime | None]:
        """[lo, hi) in UTC for a window of brand-local days; `last_days` ends with the as-of day."""
        if window is None:
            return None, None
        if window.last_days is not None:
            first = self.as_of - timedelta(days=window.last_days - 1)
            return self.day_start(first), self.day_start(self.as_of + timedelta(days=1))
        lo = self.day_start(window.start) if window.start else None
        hi = self.day_start(window.end + timedelta(days=1)) if window.end else None
        return lo, hi

    def end_of_as_of(self) -> datetime:
        return self.day_start(self.as_of + timedelta(days=1))


def in_window(col: ir.TimestampValue, lo: datetime | None, hi: datetime | None) -> ir.BooleanValue:
    cond: ir.BooleanValue = col.notnull()
    if lo is not None:
        cond &= col >= ibis.literal(lo, type="timestamp('UTC')")
    if hi is not None:
        cond &= col < ibis.literal(hi, type="timestamp('UTC')")
    return cond
