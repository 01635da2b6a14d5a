"""The unit of work: one transaction, the actor and the time it acts at, and an after-commit queue.

Every entry point (an HTTP request, a CLI command, a worker job) opens exactly one and hands it to
the `do_*` services it calls; no service commits on its own. What the change causes elsewhere
leaves in two ways, both decided inside the transaction:

- domain events (`uow.emit`) are rows of the store outbox, written in the same transaction, so a
  rollback leaves none and a commit makes them durable for the handlers in `siyu worker`;
- in-process effects (`uow.after_commit`) run once, only after the commit succeeded: waking a
  worker, sending something a later issue's outbox has already recorded. A rollback drops them.

Audit rows (`uow.audit`) are written in the same transaction as the change they describe.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from siyu.audit.trail import record
from siyu.core.actor import Actor
from siyu.events.catalogue import DomainEvent
from siyu.events.outbox import append

log = logging.getLogger(__name__)

Effect = Callable[[], None]


class UnitOfWork:
    """See the module docstring. Built by `Store.begin`; services only use its attributes."""

    def __init__(self, session: Session, *, actor: Actor, now: dt.datetime, request_id: str | None = None) -> None:
        if now.tzinfo is None:
            raise ValueError("a unit of work's time must be timezone-aware")
        self.session = session
        self.actor = actor
        self.now = now
        self.request_id = request_id
        self._effects: list[Effect] = []
        self.events: list[DomainEvent] = []

    def after_commit(self, effect: Effect) -> None:
        """Run `effect` once, after the transaction commits; never if it rolls back."""
        self._effects.append(effect)

    def emit(self, event: DomainEvent) -> None:
        """Write `event` to the outbox in this transaction (consumed at least once by handlers)."""
        append(self.session, event, at=self.now, request_id=self.request_id)
        self.events.append(event)

    def audit(
        self,
        action: str,
        subject_type: str,
        subject_id: str,
        *,
        brand: str | None = None,
        before: Any = None,
        after: Any = None,
    ) -> None:
        """An audit row for a change made in this transaction (PII in before/after is masked)."""
        record(
            self.session,
            at=self.now,
            actor=self.actor,
            action=action,
            subject_type=subject_type,
            subject_id=subject_id,
            brand=brand,
            before=before,
            after=after,
            request_id=self.request_id,
        )

    def run_effects(self) -> None:
        """Called by the store after commit. One failing effect does not stop the others: the state
        is committed, and effects must be retryable from it (they are notifications, not state)."""
        effects, self._effects = self._effects, []
        for effect in effects:
            try:
                effect()
            except Exception as error:  # logged by type only: messages can carry PII
                name = getattr(effect, "__name__", repr(effect))
                log.error("after-commit effect %s failed: %s", name, type(error).__name__)

    def discard(self) -> None:
        self._effects.clear()
        self.events.clear()
