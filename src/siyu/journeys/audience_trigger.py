"""Audience enter/leave triggers, from the audience's snapshots (`siyu audience snapshot`, also on a
schedule): who is in the newest snapshot and not in the one the journey last looked at (enter), or
the other way round (leave). The mark is the id of the last snapshot looked at."""

from __future__ import annotations

import pyarrow as pa

from siyu.audiences.snapshots import list_snapshots, members
from siyu.bootstrap import App
from siyu.journeys.definition import Journey


def latest_snapshot(app: App, brand: str, code: str) -> int:
    snaps = list_snapshots(app, brand, code)
    return int(snaps[0]["snapshot_id"]) if snaps else 0


def audience_candidates(app: App, journey: Journey, mark: str | None) -> tuple[pa.Table, str | None]:
    from siyu.journeys.sources import empty_candidates

    trigger = journey.trigger.audience
    assert trigger is not None
    snaps = list_snapshots(app, journey.brand, trigger.code)
    if not snaps:
        return empty_candidates(), mark
    newest = snaps[0]
    seen = int(mark or 0)
    if int(newest["snapshot_id"]) <= seen:
        return empty_candidates(), mark
    now_in = members(app, journey.brand, trigger.code, int(newest["snapshot_id"]))
    before = members(app, journey.brand, trigger.code, seen) if seen else None
    if trigger.change == "enter":
        moved = now_in if before is None else now_in.anti_join(before, "customer_id")
    else:
        if before is None:
            return empty_candidates(), str(newest["snapshot_id"])
        moved = before.anti_join(now_in, "customer_id")
    found = app.engine.to_arrow(moved.select("customer_id"))
    n = found.num_rows
    key = f"audience:{trigger.change}:{newest['snapshot_id']}"
    taken = newest["taken_at"]
    return (
        found.append_column("entry_key", pa.array([key] * n, pa.string()))
        .append_column("occurred_at", pa.array([taken] * n, pa.timestamp("us", "UTC")))
        .append_column("props", pa.array(["{}"] * n, pa.string())),
        str(newest["snapshot_id"]),
    )
