"""Lake events that feed the consent ledger and mini-program subscriptions (handler `consent_ledger`).

| lake event          | becomes                                                                      |
| `unsubscribe`       | a withdrawal of the channel's purpose (properties.channel: sms → marketing_sms, |
|                     | email → marketing_email, wecom → wecom; missing or `all` → all three)          |
| `consent`           | the same with `properties.granted` (true / false), or `properties.purpose`     |
| `subscribe_message` | one mini-program subscription per accepted `properties.template_id`           |

Runs on EventsLanded and IdentityResolved (an event whose customer One-ID has not resolved yet is
taken on the next run). Each lake event is recorded once (`source_key` event:<brand>:<source>:<id>),
so a re-delivered batch adds nothing. Channels without a purpose (official_account…) still count
for audience reachability (siyu.audiences.reach), which reads the events directly.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.customers.profile import rows_of
from siyu.events.catalogue import EventsLanded
from siyu.events.dispatch import Handler
from siyu.events.outbox import StoredEvent
from siyu.identity.service import MAP_TABLE
from siyu.ingest.views import latest
from siyu.messaging.consent import CHANNEL_PURPOSE, ConsentChange, do_record_consents, purposes
from siyu.messaging.ledger_models import ConsentRecord, MiniProgramSubscription

CONSENT_LEDGER = "consent_ledger"
NODE = ["brand", "source", "source_customer_id"]
TYPES = ("consent", "unsubscribe", "subscribe_message")


def _falsy(value: Any) -> bool:
    return str(value).lower() in ("false", "0", "no", "reject", "refused")


def _changes(row: dict[str, Any], known: set[str]) -> list[ConsentChange]:
    props = row["properties"] if isinstance(row["properties"], dict) else json.loads(row["properties"] or "{}")
    channel = str(props.get("channel") or "all")
    granted = row["type"] == "consent" and not _falsy(props.get("granted", True))
    if props.get("purpose"):
        wanted = [str(props["purpose"])]
    elif channel == "all":
        wanted = list(CHANNEL_PURPOSE.values())
    else:
        wanted = [CHANNEL_PURPOSE[channel]] if channel in CHANNEL_PURPOSE else []
    key = f"event:{row['brand']}:{row['source']}:{row['event_id']}"
    evidence = {"event_id": row["event_id"], "source": row["source"], "field": row.get("field"), "channel": channel}
    return [
        ConsentChange(
            row["brand"],
            row["customer_id"],
            p,
            granted,
            "event",
            evidence,
            at=row["occurred_at"],
            source_key=f"{key}:{p}",
        )
        for p in wanted
        if p in known
    ]


def land(app: App, brands: set[str], import_ids: set[str] | None = None) -> int:
    """Record the consent and subscription events of `brands` (of those imports, if given) not
    recorded yet; returns rows written."""
    events, idmap = latest(app.engine, "events"), app.engine.table(MAP_TABLE)
    if events is None or idmap is None:
        return 0
    mine = events.filter(events.brand.isin(list(brands)) & events.type.isin(TYPES))
    if import_ids is not None:
        mine = mine.filter(mine._import_id.isin(list(import_ids)))
    mine = mine.join(idmap.select(*NODE, "customer_id"), NODE)
    rows = rows_of(app, mine.select(*NODE, "customer_id", "event_id", "field", "type", "occurred_at",
                                    properties=mine.properties.cast("string")))  # fmt: skip
    if not rows:
        return 0
    with app.store.begin(Actor.system(CONSENT_LEDGER)) as uow:
        s = uow.session
        known = {b: set(purposes(s, b)) for b in brands}
        changes: list[ConsentChange] = []
        subscriptions: list[MiniProgramSubscription] = []
        for row in rows:  # the consent events only, a small share of the lake
            row["properties"] = json.loads(row["properties"] or "{}")
            if row["type"] == "subscribe_message":
                subscriptions += _subscription(row)
            else:
                changes += _changes(row, known[row["brand"]])
        seen = _recorded(s, [c.source_key or "" for c in changes] + [m.source_key for m in subscriptions])
        fresh = [m for m in subscriptions if m.source_key not in seen]
        s.add_all(fresh)
        return len(fresh) + do_record_consents(uow, [c for c in changes if c.source_key not in seen])


def _recorded(session: Session, keys: list[str]) -> set[str]:
    """Which of these keys the ledger already holds (asked in chunks, never every key ever)."""
    seen: set[str] = set()
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        for column in (ConsentRecord.source_key, MiniProgramSubscription.source_key):
            seen |= {k for k in session.scalars(select(column).where(column.in_(chunk))) if k}
    return seen


def _subscription(row: dict[str, Any]) -> list[MiniProgramSubscription]:
    props = row["properties"]
    template = props.get("template_id")
    if not template or _falsy(props.get("accepted", props.get("status", "accept"))):
        return []
    key = f"event:{row['brand']}:{row['source']}:{row['event_id']}"
    return [MiniProgramSubscription(brand=row["brand"], customer_id=row["customer_id"], template_id=str(template),
                                    source_key=key, granted_at=row["occurred_at"])]  # fmt: skip


def consent_ledger(app: App) -> Handler:
    def handle(events: list[StoredEvent]) -> None:
        brands = {e.event.brand for e in events if e.event.brand}
        if not brands:
            return
        if all(isinstance(e.event, EventsLanded) for e in events):  # only what these imports landed
            land(app, brands, {e.event.import_id for e in events if isinstance(e.event, EventsLanded)})
        else:  # One-ID ran: events whose customer was unknown until now may resolve
            land(app, brands)

    return Handler(CONSENT_LEDGER, frozenset({"EventsLanded", "IdentityResolved"}), handle)
