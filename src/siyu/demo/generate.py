"""Synthetic demo brand (演示品牌): people across 8 channels, written as canonical CSV files.

Everything is vectorised with numpy / pyarrow compute (1M people in about a minute) and
deterministic for a seed. Besides the canonical files it writes `truth.csv` (source,
source_customer_id, person_id): which records are the same real person, to measure One-ID.

What makes it realistic (and what tests rely on):
- a person has records in 1–4 sources; phones appear in varied formats; the WeChat family
  (mini-program, WeCom, official account) shares a unionid, sometimes only via `identities.csv`;
  Tmall records often carry a masked phone only; crm / pos records carry the member no;
- placeholder phones (13800000000 …) and a junk e-mail sit on many unrelated records;
- members join over time; orders follow per-person purchase rates with 618 and Double 11 peaks,
  refunds and unpaid orders; relations start and end in every field; visits, shares followed by
  attributed purchases (a few self-purchases too), reviews; one field (`douyin_live`) is used in
  events without being declared in `fields.csv`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.csv as pacsv

from siyu.demo import activity, guides, people
from siyu.demo import catalog as cat
from siyu.demo.state import BrandState

DEFAULT_END = dt.date(2026, 10, 31)
Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class DemoSummary:
    out_dir: Path
    persons: int
    files: dict[str, int]  # file name -> data rows written
    end: dt.date  # last day of generated activity

    @property
    def last_full_month(self) -> str:
        """The latest calendar month fully covered by the data, e.g. '2026-10'."""
        after = self.end + dt.timedelta(days=1)
        month_end = after if after.day == 1 else self.end.replace(day=1)
        last = month_end - dt.timedelta(days=1)
        return f"{last.year:04d}-{last.month:02d}"

    @property
    def last_month_span(self) -> tuple[dt.datetime, dt.datetime]:
        """[start, end) of `last_full_month` in Shanghai time (the demo brand's zone)."""
        year, month = (int(x) for x in self.last_full_month.split("-"))
        zone = ZoneInfo("Asia/Shanghai")
        start = dt.datetime(year, month, 1, tzinfo=zone)
        return start, dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=zone)


def _write(out: Path, name: str, columns: Mapping[str, Any]) -> int:
    table = pa.table({k: (v if isinstance(v, pa.Array | pa.ChunkedArray) else pa.array(v)) for k, v in columns.items()})
    pacsv.write_csv(table, out / name)
    return int(table.num_rows)


def generate(
    out_dir: Path,
    customers: int = 20_000,
    seed: int = 0,
    months: int = 24,
    end: dt.date | None = None,
    brand: str = "demo",
    progress: Progress | None = None,
    order_scale: float = 1.0,
    visit_scale: float = 1.0,
) -> DemoSummary:
    """Write the demo brand's canonical CSV files and truth.csv into `out_dir`.

    `order_scale` / `visit_scale` multiply purchase and visit rates (benchmarks use them to reach a
    brand's order and event volumes without more people)."""

    def step(stage: str, fraction: float) -> None:
        if progress:
            progress(stage, fraction)

    out_dir.mkdir(parents=True, exist_ok=True)
    state = BrandState(customers, seed, months, end or DEFAULT_END, brand, order_scale, visit_scale)
    files: dict[str, int] = {}
    files["fields.csv"] = _write(out_dir, "fields.csv", cat.fields_table(brand))
    step("people", 0.05)
    recs = people.records(state)
    customer_columns = people.customers_columns(state, recs)
    files["customers.csv"] = _write(out_dir, "customers.csv", customer_columns)
    files["identities.csv"] = _write(out_dir, "identities.csv", people.identities_columns(state, recs))
    files["truth.csv"] = _write(out_dir, "truth.csv", people.truth_columns(recs))
    step("memberships", 0.25)
    files["memberships.csv"] = _write(out_dir, "memberships.csv", people.memberships_columns(state, recs))
    step("orders", 0.4)
    orders, items, shares = activity.orders_and_shares(state, recs)
    files["orders.csv"] = _write(out_dir, "orders.csv", orders)
    files["order_items.csv"] = _write(out_dir, "order_items.csv", items)
    step("relations", 0.7)
    files["relations.csv"] = _write(out_dir, "relations.csv", activity.relations(state, recs))
    step("events", 0.8)
    files["events.csv"] = _write(out_dir, "events.csv", activity.events(state, recs, orders, shares))
    step("guides", 0.95)
    for name, columns in guides.files(state, recs, customer_columns["external_userid"]).items():
        files[name] = _write(out_dir, name, columns)
    step("done", 1.0)
    return DemoSummary(out_dir=out_dir, persons=customers, files=files, end=end or DEFAULT_END)
