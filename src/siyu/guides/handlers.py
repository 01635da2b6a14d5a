"""Domain-event handlers of the guides domain (registered in siyu.events.subscriptions)."""

from __future__ import annotations

from sqlalchemy import select

from siyu.bootstrap import App
from siyu.events.dispatch import Handler
from siyu.events.outbox import StoredEvent
from siyu.guides.bindings import run_binding
from siyu.guides.models import GuideRulesVersion

GUIDE_BINDING = "guide_binding"


def guide_binding(app: App) -> Handler:
    """WeCom friends and orders that landed, and One-ID changes, re-run the binding of their brands.
    The run recomputes from the lake and writes only changed bindings, so a replay changes nothing.
    Only brands that applied guide rules are bound here. Share visits (EventsLanded) only extend
    locks; the next run or `siyu guides bind` picks them up."""

    def handle(events: list[StoredEvent]) -> None:
        brands = {e.event.brand for e in events if e.event.brand}
        if not brands:
            return
        with app.store.unit_of_work() as session:  # brands that applied guide rules use guides
            ruled = set(session.scalars(select(GuideRulesVersion.brand).where(GuideRulesVersion.brand.in_(brands))))
        for brand in sorted(ruled):
            run_binding(app, brand, actor="system:guide_binding")

    return Handler(GUIDE_BINDING, frozenset({"OrdersLanded", "RelationsLanded", "IdentityResolved"}), handle)
