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

from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.customers.profile import rows_of
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


def land(app: App, brands: set[str]) -> int:
    """Record the consent and subscription events of `brands` not recorded yet; returns rows written."""
    events, idmap = latest(app.engine, "events"), app.engine.table(MAP_TABLE)
    if events is None or idmap is None:
        return 0
    mine = events.filter(events.brand.isin(list(brands)) & events.type.isin(TYPES))
    mine = mine.join(idmap.select(*NODE, "customer_id"), NODE)
    rows = rows_of(app, mine.select(*NODE, "customer_id", "event_id", "field", "type", "occurred_at",
                                    properties=mine.properties.cast("string")))  # fmt: skip
    if not rows:
        return 0
    written = 0
    with app.store.begin(Actor.system(CONSENT_LEDGER)) as uow:
        s = uow.session
        keys = select(ConsentRecord.source_key).where(ConsentRecord.source_key.like("event:%"))
        seen = {k for k in s.scalars(keys) if k} | set(s.scalars(select(MiniProgramSubscription.source_key)))
        changes: list[ConsentChange] = []
        for row in rows:  # the consent events only, a small share of the lake
            row["properties"] = json.loads(row["properties"] or "{}")
            key = f"event:{row['brand']}:{row['source']}:{row['event_id']}"
            if row["type"] == "subscribe_message":
                written += _subscription(uow, row, key, seen)
                continue
            known = set(purposes(s, row["brand"]))
            changes += [c for c in _changes(row, known) if c.source_key not in seen]
        written += do_record_consents(uow, changes)
    return written


def _subscription(uow: Any, row: dict[str, Any], key: str, seen: set[str]) -> int:
    props = row["properties"]
    template = props.get("template_id")
    if not template or key in seen or _falsy(props.get("accepted", props.get("status", "accept"))):
        return 0
    uow.session.add(MiniProgramSubscription(brand=row["brand"], customer_id=row["customer_id"],
                    template_id=str(template), source_key=key, granted_at=row["occurred_at"]))  # fmt: skip
    return 1


def consent_ledger(app: App) -> Handler:
    def handle(events: list[StoredEvent]) -> None:
        brands = {e.event.brand for e in events if e.event.brand}
        if brands:
            land(app, brands)

    return Handler(CONSENT_LEDGER, frozenset({"EventsLanded", "IdentityResolved"}), handle)
