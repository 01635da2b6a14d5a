"""The state every step of the demo generator shares: the random generator, the scales and the calendar.

`people` and `activity` take it from `generate`; it lives on its own so neither needs `generate`.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

DAY = 86400


class BrandState:
    """The generation state: random generator, rate scales and calendar (times in wall-clock epoch seconds)."""

    def __init__(
        self, persons: int, seed: int, months: int, end: dt.date, brand: str, order_scale: float, visit_scale: float
    ) -> None:
        self.rng = np.random.default_rng(seed)
        self.order_scale = order_scale  # multiplies every person's purchase rate
        self.visit_scale = visit_scale  # multiplies every record's visit rate
        self.n = persons
        self.brand = brand
        # Times are "wall-clock epoch seconds": Shanghai local time counted as if it were UTC, so
        # calendar arithmetic needs no zone; files get the +08:00 offset written next to them.
        start_month = end.year * 12 + end.month - months
        start = dt.date(start_month // 12, start_month % 12 + 1, 1)
        self.t0 = int(dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC).timestamp())
        self.t1 = int(dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC).timestamp())
        self.days = (self.t1 - self.t0) // DAY

    def day_weights(self) -> np.ndarray:
        """Seasonality of purchases: 618 (Jun 1–18) and Double 11 (Nov 1–11) peaks, year-end lift."""
        days = (np.arange(self.days) * DAY + self.t0).astype("datetime64[s]").astype("datetime64[D]")
        month = days.astype("datetime64[M]").astype(int) % 12 + 1
        dom = (days - days.astype("datetime64[M]")).astype(int) + 1
        w = np.ones(self.days)
        w[(month == 6) & (dom <= 18)] *= 3.0
        w[(month == 6) & (dom == 18)] *= 3.0
        w[(month == 11) & (dom <= 11)] *= 4.0
        w[(month == 11) & (dom == 11)] *= 4.0
        w[(month == 12) & (dom >= 15)] *= 1.5
        weights: np.ndarray = w / w.sum()
        return weights

    def times(self, n: int, lo: np.ndarray | int | None = None, hi: np.ndarray | int | None = None) -> np.ndarray:
        lo = self.t0 if lo is None else lo
        hi = self.t1 if hi is None else hi
        lo_a = np.broadcast_to(np.asarray(lo, dtype=np.int64), (n,))
        hi_a = np.maximum(np.broadcast_to(np.asarray(hi, dtype=np.int64), (n,)), lo_a + 1)
        return lo_a + (self.rng.random(n) * (hi_a - lo_a)).astype(np.int64)
