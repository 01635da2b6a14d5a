"""Chat compliance (会话存档监控): sensitive words in chat messages raise tasks for store managers.

The engine narrows the messages to those containing any sensitive word (one scan, in Ibis); the
Aho–Corasick automaton (pyahocorasick) then names the words in those few texts for the alert. Each
hit is a `sensitive_word` task per manager of the staff member's store (none on record: a
store-level task), idempotent on the message id, so scanning again creates nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import ahocorasick
import ibis

from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.guides.alerts import store_managers
from siyu.guides.models import StaffMember
from siyu.guides.rulebook import rules_in_force
from siyu.guides.tasks import TaskRequest, do_create_task
from siyu.ingest.views import current
from siyu.metrics.facts import utc


@dataclass
class ScanResult:
    brand: str
    flagged_messages: int
    tasks_created: int


def words_in(text: str, words: tuple[str, ...]) -> list[str]:
    """The sensitive words found in `text`, in order of first appearance, each once."""
    automaton = ahocorasick.Automaton()
    for word in words:
        automaton.add_word(word, word)
    automaton.make_automaton()
    found: dict[str, None] = {}
    for _, word in automaton.iter(text):
        found.setdefault(word, None)
    return list(found)


def scan_messages(app: App, brand: str, since: dt.datetime, actor: str = "system:compliance") -> ScanResult:
    """Flag the brand's chat messages sent since `since` that contain a sensitive word."""
    with app.store.unit_of_work() as session:
        words = rules_in_force(session, brand).sensitive_words
    messages = current(app, "messages")
    if not words or messages is None:
        return ScanResult(brand, 0, 0)
    m = messages.filter((messages.brand == brand) & (messages.sent_at >= utc(since)) & messages.text.notnull())
    m = m.filter(ibis.or_(*[m.text.contains(w) for w in words]))
    hits = app.engine.to_arrow(m.select("msgid", "staff_id", "external_userid", "direction", "sent_at", "text"))
    created = 0
    with app.store.begin(Actor.parse(actor)) as uow:
        for row in hits.to_pylist():  # only the flagged messages: the engine filtered them
            found = words_in(row["text"], words)
            staff = uow.session.get(StaffMember, (brand, row["staff_id"]))
            store = staff.store_code if staff else None
            targets: list[str | None] = [*store_managers(uow, brand, store)] or [None]
            for target in targets:
                request = TaskRequest(
                    brand=brand,
                    customer_id=f"wecom:{row['external_userid']}",
                    kind="sensitive_word",
                    title=f"敏感词 sensitive words: {', '.join(found)} ({row['staff_id']})",
                    body=row["text"],
                    idempotency_key=f"sensitive_word:{brand}:{row['msgid']}:{target or 'store'}",
                    assignee_staff_id=target,
                    store_code=store,
                    source=f"messages:{row['msgid']}",
                    due_at=uow.now + dt.timedelta(days=1),
                )
                if target is None and store is None:
                    continue
                created += do_create_task(uow, request)[1]
    return ScanResult(brand, hits.num_rows, created)
