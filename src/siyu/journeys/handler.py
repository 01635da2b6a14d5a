"""The domain event handler of journeys (`journey_triggers`, run by `siyu worker` and the serve
loader every cycle): data that landed enrols the customers of event-triggered journeys in the same
cycle, and awaited events release `wait_for` steps. Tier changes come from the loyalty center's
`TierChanged` events (not the lake): each enrols the account's customers of the journey's brand.

Idempotent like every handler: a batch delivered twice finds the same entry keys already enrolled.
"""

from __future__ import annotations

import json

import pyarrow as pa

from siyu.bootstrap import App
from siyu.events.catalogue import TierChanged
from siyu.events.dispatch import Handler
from siyu.events.outbox import StoredEvent
from siyu.journeys.batch import aware
from siyu.journeys.runner import _journeys, enrol_found, match_waits, scan_triggers
from siyu.loyalty.accounts import linked_customers

JOURNEY_TRIGGERS = "journey_triggers"
LANDED = frozenset({"EventsLanded", "OrdersLanded", "MembershipsLanded", "CustomersLanded", "IdentityResolved"})


def _tier_changes(app: App, events: list[StoredEvent]) -> None:
    changes = [e for e in events if isinstance(e.event, TierChanged)]
    if not changes:
        return
    for row, journey in _journeys(app):
        trigger = journey.trigger.event
        if trigger is None or trigger.type != "tier_changed":
            continue
        rows: dict[str, list[str]] = {"customer_id": [], "entry_key": [], "props": []}
        at = []
        with app.store.unit_of_work() as session:
            for stored in changes:
                change = stored.event
                assert isinstance(change, TierChanged)
                applied, happened = aware(row.applied_at), aware(stored.at)  # SQLite hands back naive UTC
                assert happened is not None
                if applied is not None and happened < applied and row.backfill_from is None:
                    continue  # only what happens after the journey was applied
                props = {"program": change.program, "old_tier": change.old_tier or "", "new_tier": change.new_tier,
                         "reason": change.reason}  # fmt: skip
                if any(str(props.get(k)) != str(v) for k, v in trigger.where.items()):
                    continue
                for brand, customer in linked_customers(session, change.account_id):
                    if brand == journey.brand:
                        rows["customer_id"].append(customer)
                        rows["entry_key"].append(f"tier:{stored.id}")
                        rows["props"].append(json.dumps(props, ensure_ascii=False))
                        at.append(happened)
        if rows["customer_id"]:
            found = pa.table({**rows, "occurred_at": pa.array(at, pa.timestamp("us", "UTC"))})
            enrol_found(app, journey.code, found, app.clock())


def journey_triggers(app: App) -> Handler:
    def handle(events: list[StoredEvent]) -> None:
        brands = {e.event.brand for e in events if e.event.brand}
        landed = [e for e in events if e.event.type in LANDED]
        if landed:
            now = app.clock()
            scan_triggers(app, now, brands=brands or None, kinds={"event"})
            match_waits(app, now)
        _tier_changes(app, events)

    return Handler(JOURNEY_TRIGGERS, LANDED | {"TierChanged"}, handle)
