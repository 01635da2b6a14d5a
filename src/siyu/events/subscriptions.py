"""Who consumes which domain events: the handlers `siyu worker` and the `siyu serve` loader run.

| handler           | consumes                          | does                                              |
| ----------------- | --------------------------------- | ------------------------------------------------- |
| `loyalty_posting` | OrdersLanded, IdentityResolved    | `siyu loyalty sync` of the programs of the brands |
| `journey_triggers`| *Landed, IdentityResolved, TierChanged | enrol event-triggered journeys; release wait_for |
| `consent_ledger`  | EventsLanded, IdentityResolved    | consent events → the consent ledger (messaging)    |
| `guide_binding`   | OrdersLanded, RelationsLanded, IdentityResolved | `siyu guides bind` of the brands     |

Journeys, guides and referral subscribe here the same way. Every handler is idempotent: it re-reads
the lake and the store, so a batch delivered twice (after a crash) changes nothing the second time.
"""

from __future__ import annotations

from sqlalchemy import select

from siyu.bootstrap import App
from siyu.events.dispatch import Handler
from siyu.events.outbox import StoredEvent
from siyu.guides.handlers import guide_binding
from siyu.loyalty.models import ProgramBrand
from siyu.loyalty.sync import sync

LOYALTY_POSTING = "loyalty_posting"


def loyalty_posting(app: App) -> Handler:
    """Orders that landed, and customers One-ID just created or merged, reach the points ledger: the
    sync anti-joins the brand's orders against its postings, so it posts each order exactly once."""

    def handle(events: list[StoredEvent]) -> None:
        brands = {e.event.brand for e in events if e.event.brand}
        if not brands:
            return
        with app.store.unit_of_work() as session:
            programs = sorted(set(session.scalars(select(ProgramBrand.program).where(ProgramBrand.brand.in_(brands)))))
        for program in programs:
            sync(app, program, actor="system:loyalty_posting")

    return Handler(LOYALTY_POSTING, frozenset({"OrdersLanded", "IdentityResolved"}), handle)


def handlers(app: App) -> list[Handler]:
    from siyu.journeys.handler import journey_triggers
    from siyu.messaging.consent_events import consent_ledger

    return [loyalty_posting(app), journey_triggers(app), consent_ledger(app), guide_binding(app)]
