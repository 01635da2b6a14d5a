"""The plausible range of a business timestamp (下单、事件、入会…时间), checked at every door.

A value outside it is a client bug (a device clock at year 0001, a typo of 99999), not history:
it is rejected at the API (400 / 422 naming the field) and quarantined in file imports. Keeping
such values out matters beyond tidiness: a year past 9999 cannot be represented by Python and used
to make every later read of the customer fail.

Defaults: from 1990-01-01 (before any private-domain data) to one day after now (clock drift and
time zones); `SIYU_INGEST_EARLIEST` and `SIYU_INGEST_MAX_FUTURE` change them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
MAX_FUTURE = timedelta(days=1)


@dataclass(frozen=True)
class TimeBounds:
    earliest: datetime = EARLIEST
    max_future: timedelta = MAX_FUTURE

    def latest(self, now: datetime) -> datetime:
        return now + self.max_future

    def contains(self, value: datetime, now: datetime) -> bool:
        return self.earliest <= value <= self.latest(now)

    def describe(self) -> str:
        days = self.max_future.total_seconds() / 86400
        return f"{self.earliest.date().isoformat()} … now + {days:g} day(s)"
