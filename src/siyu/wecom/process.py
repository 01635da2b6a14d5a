"""Processing stored callbacks (回调处理), after they were answered: what WeCom reported becomes
source customers (source `wecom`, identifiers `external_userid` and `unionid`), `relations` rows
(`wecom_friend` in field `wecom`; `group_member` in field `wecom_group`) and `events` rows, written
through the ingest inbox — the path the HTTP ingest API uses — so the loader lands them in the lake
and One-ID joins them to the customer's other records. The store keeps WeCom's own view of the
relations (`wecom_relations`) to end exactly the relation that started, and churn alerts
(删人提醒) become guide tasks.

Idempotent: a batch is planned from the store without writing, its rows recorded in the inbox
(rows already there are skipped), and only then the store changes and the callbacks are stamped
processed in one transaction. A crash in between re-plans the same rows.

One processor at a time per workspace: every `siyu serve` and `siyu worker` runs the loop, and two
of them would plan the same pending callbacks, call WeCom for the same contacts and race on the
order of a customer's starts and ends. A batch runs under the named lock `wecom-callbacks`
(siyu.store.locks: a PostgreSQL advisory lock, released by the server if the holder dies; a file
lock on SQLite); a process that finds it taken answers "nothing done" and waits for the next wake.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.events.catalogue import WecomContactChanged
from siyu.guides.alerts import store_managers
from siyu.guides.models import StaffMember
from siyu.guides.tasks import TaskRequest, do_create_task
from siyu.ingest.inbox import as_utc
from siyu.ingest.rows import accept_rows
from siyu.ingest.schema import ENTITIES
from siyu.store.locks import exclusive
from siyu.store.uow import UnitOfWork
from siyu.wecom import xmlmsg
from siyu.wecom.client import WeComApiError, WeComClient
from siyu.wecom.models import WecomCallback, WecomQrCode, WecomRelation, WecomTransfer
from siyu.wecom.welcome import do_mark_lost

log = logging.getLogger("siyu.wecom")
SOURCE = "wecom"
FRIEND_FIELD, GROUP_FIELD = "wecom", "wecom_group"
MAX_ATTEMPTS = 5
PROCESSING_LOCK = "wecom-callbacks"
CHANGES = {  # event type → WecomContactChanged change
    "wecom_friend_added": "friend_added", "wecom_friend_lost": "friend_lost",
    "wecom_friend_removed": "friend_removed", "wecom_group_joined": "group_joined", "wecom_group_left": "group_left",
}  # fmt: skip
FAIL_REASONS = {"customer_refused": "refused", "customer_limit_exceed": "limit_exceeded"}


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def is_external(userid: str) -> bool:
    return userid.startswith(("wo", "wm"))  # WeCom's external_userid prefixes; staff userids are free text


@dataclass
class Plan:
    """What one batch of callbacks changes; built without writing anything."""

    brand: str
    rows: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"customers": [], "relations": [], "events": []}
    )
    starts: list[WecomRelation] = field(default_factory=list)
    ends: dict[tuple[str, str, str, datetime], tuple[datetime, str]] = field(default_factory=dict)
    tasks: list[TaskRequest] = field(default_factory=list)
    transfer_failures: list[tuple[str, str, str]] = field(default_factory=list)  # (ext, takeover, status)
    # (kind, external_userid, counterpart) → (started_at, state) of the open relation, as the batch goes
    open: dict[tuple[str, str, str], tuple[datetime, str | None] | None] = field(default_factory=dict)

    def customer(self, contact: dict[str, Any], external_userid: str, at: datetime) -> None:
        self.rows["customers"].append(
            {
                "brand": self.brand, "source": SOURCE, "source_customer_id": external_userid,
                "external_userid": external_userid, "unionid": contact.get("unionid") or None,
                "name": contact.get("name") or None, "created_at": iso(at),
            }
        )  # fmt: skip

    def event(
        self, event_id: str, type_: str, external_userid: str, at: datetime, fld: str, props: dict[str, Any]
    ) -> None:
        self.rows["events"].append(
            {
                "brand": self.brand, "source": SOURCE, "event_id": event_id, "type": type_,
                "source_customer_id": external_userid, "occurred_at": iso(at), "field": fld,
                "properties": {k: v for k, v in props.items() if v not in (None, "")},
            }
        )  # fmt: skip


def relation_row(
    brand: str, kind: str, ext: str, staff: str | None, started: datetime, ended: datetime | None, by: str | None
) -> dict[str, Any]:
    return {
        "brand": brand, "source": SOURCE, "field": FRIEND_FIELD if kind == "friend" else GROUP_FIELD,
        "relation_type": "wecom_friend" if kind == "friend" else "group_member", "source_customer_id": ext,
        "started_at": iso(started), "ended_at": iso(ended) if ended else None,
        "staff_code": staff if kind == "friend" else None, "ended_by": by,
    }  # fmt: skip


class Planner:
    def __init__(self, session: Session, plan: Plan, client: Callable[[], WeComClient]) -> None:
        self.s = session
        self.plan = plan
        self.client = client

    def _open(self, kind: str, ext: str, counterpart: str) -> tuple[datetime, str | None] | None:
        key = (kind, ext, counterpart)
        if key not in self.plan.open:
            row = self.s.execute(
                select(WecomRelation.started_at, WecomRelation.state)
                .where(
                    WecomRelation.brand == self.plan.brand, WecomRelation.kind == kind,
                    WecomRelation.external_userid == ext, WecomRelation.counterpart == counterpart,
                    WecomRelation.ended_at.is_(None),
                )
                .order_by(WecomRelation.started_at.desc())
                .limit(1)
            ).first()  # fmt: skip
            self.plan.open[key] = None if row is None else (as_utc(row[0]), row[1])
        return self.plan.open[key]

    def start(self, kind: str, ext: str, counterpart: str, at: datetime, state: str | None) -> None:
        if self._open(kind, ext, counterpart) is not None:
            return  # already related (a redelivery, or an add we saw before)
        self.plan.open[(kind, ext, counterpart)] = (at, state)
        self.plan.starts.append(
            WecomRelation(
                brand=self.plan.brand,
                kind=kind,
                external_userid=ext,
                counterpart=counterpart,
                state=state,
                started_at=at,
            )
        )
        self.plan.rows["relations"].append(relation_row(self.plan.brand, kind, ext, counterpart, at, None, None))

    def end(self, kind: str, ext: str, counterpart: str, at: datetime, by: str) -> str | None:
        """End the open relation; returns the state (channel code) it started with."""
        found = self._open(kind, ext, counterpart)
        if found is None:
            return None
        started, state = found
        self.plan.open[(kind, ext, counterpart)] = None
        self.plan.ends[(kind, ext, counterpart, started)] = (at, by)
        self.plan.rows["relations"].append(relation_row(self.plan.brand, kind, ext, counterpart, started, at, by))
        return state

    def contact(self, ext: str) -> dict[str, Any]:
        try:
            return dict(self.client().get_external_contact(ext).get("external_contact", {}))
        except WeComApiError as error:  # e.g. 84061: not (or no longer) a contact of any staff member
            log.info("externalcontact/get %s: errcode %s", ext, error.errcode)
            return {}

    def customer(self, ext: str, at: datetime) -> None:
        """The source customer row, from WeCom's current contact details. When WeCom has none (a group
        member who is nobody's friend) and we already know the customer, no row: a bare one would
        replace the known unionid and undo One-ID's link."""
        contact = self.contact(ext)
        if not contact and (any(k[1] == ext for k in self.plan.open) or self._known(ext)):
            return
        self.plan.customer(contact, ext, at)

    def _known(self, ext: str) -> bool:
        found = self.s.scalar(
            select(WecomRelation.id)
            .where(WecomRelation.brand == self.plan.brand, WecomRelation.external_userid == ext)
            .limit(1)
        )
        return found is not None

    def code(self, state: str | None) -> WecomQrCode | None:
        return self.s.get(WecomQrCode, (self.plan.brand, state)) if state else None

    def callback(self, cb_hash: str, f: dict[str, Any]) -> None:
        at = datetime.fromtimestamp(int(f.get("CreateTime") or 0), UTC)
        event, change = f.get("Event", ""), f.get("ChangeType", "")
        ext, userid = str(f.get("ExternalUserID", "")), str(f.get("UserID", ""))
        eid = cb_hash[:40]
        if event == "change_external_contact" and ext:
            self._contact_change(eid, change, ext, userid, at, f)
        elif event == "change_external_chat":
            self._chat_change(eid, change, str(f.get("ChatId", "")), at, f)
        # change_external_tag (the corp's tag library changed) and anything else: stored, nothing to land

    def _contact_change(self, eid: str, change: str, ext: str, userid: str, at: datetime, f: dict[str, Any]) -> None:
        plan = self.plan
        props: dict[str, Any] = {"staff_id": userid}
        if change in ("add_external_contact", "add_half_external_contact"):
            state = f.get("State") or None
            code = self.code(state)
            props |= {"state": state, "half": change == "add_half_external_contact"}
            if code is not None:
                props |= {
                    "channel": code.channel, "store_code": code.store_code, "campaign": code.campaign,
                    "exclusive": code.exclusive,
                }  # fmt: skip
            self.customer(ext, at)
            self.start("friend", ext, userid, at, state)
            plan.event(eid, "wecom_friend_added", ext, at, FRIEND_FIELD, props)
        elif change == "edit_external_contact":
            self.customer(ext, at)
            plan.event(eid, "wecom_contact_edited", ext, at, FRIEND_FIELD, props)
        elif change == "del_external_contact":  # the staff member deleted the customer
            by = "transfer" if f.get("Source") == "DELETE_BY_TRANSFER" else "staff"
            self.end("friend", ext, userid, at, by)
            plan.event(eid, "wecom_friend_removed", ext, at, FRIEND_FIELD, props | {"by": by})
        elif change == "del_follow_user":  # the customer deleted the staff member: churn alert
            state = self.end("friend", ext, userid, at, "customer")
            code = self.code(state)
            plan.event(eid, "wecom_friend_lost", ext, at, FRIEND_FIELD, props | {"state": state})
            plan.tasks.append(
                TaskRequest(
                    brand=plan.brand, customer_id=None, kind="churn_alert",
                    title=f"客户删除了你 · customer {ext} deleted you on WeCom",
                    idempotency_key=f"wecom:churn:{plan.brand}:{eid}", assignee_staff_id=userid,
                    store_code=code.store_code if code else None,
                    body=json.dumps({"external_userid": ext, "deleted_at": iso(at)}), source="wecom:del_follow_user",
                    due_at=at,
                )
            )  # fmt: skip
        elif change == "transfer_fail":
            status = FAIL_REASONS.get(str(f.get("FailReason")), "failed")
            plan.transfer_failures.append((ext, userid, status))
            plan.event(eid, "wecom_transfer_failed", ext, at, FRIEND_FIELD, props | {"reason": f.get("FailReason")})

    def _chat_change(self, eid: str, change: str, chat_id: str, at: datetime, f: dict[str, Any]) -> None:
        joined: list[str] = []
        left: list[str] = []
        if change == "create":
            try:
                members = self.client().groupchat_get(chat_id)["group_chat"]["member_list"]
            except WeComApiError as error:
                log.info("groupchat/get %s: errcode %s", chat_id, error.errcode)
                members = []
            joined = [str(m["userid"]) for m in members if int(m.get("type", 0)) == 2]
        elif change == "update" and f.get("UpdateDetail") in ("add_member", "del_member"):
            ids = [m for m in f.get("MemChangeList", []) if is_external(m)]
            (joined if f["UpdateDetail"] == "add_member" else left).extend(ids)
        elif change == "dismiss":
            left = list(
                self.s.scalars(
                    select(WecomRelation.external_userid).where(
                        WecomRelation.brand == self.plan.brand, WecomRelation.kind == "group",
                        WecomRelation.counterpart == chat_id, WecomRelation.ended_at.is_(None),
                    )
                )
            )  # fmt: skip
            left += [k[1] for k, v in self.plan.open.items() if k[0] == "group" and k[2] == chat_id and v]
        for n, ext in enumerate(dict.fromkeys(joined)):
            self.customer(ext, at)
            self.start("group", ext, chat_id, at, None)
            self.plan.event(f"{eid}:{n}", "wecom_group_joined", ext, at, GROUP_FIELD, {"chat_id": chat_id})
        for n, ext in enumerate(dict.fromkeys(left)):
            by = "dismiss" if change == "dismiss" else "left"
            if self.end("group", ext, chat_id, at, by) is not None:
                self.plan.event(f"{eid}:-{n}", "wecom_group_left", ext, at, GROUP_FIELD, {"chat_id": chat_id, "by": by})


def _apply(app: App, plan: Plan, ids: list[int]) -> None:
    with app.store.begin(Actor.system("wecom")) as uow:
        s = uow.session
        for rel in plan.starts:
            exists = s.scalar(
                select(WecomRelation.id).where(
                    WecomRelation.brand == rel.brand, WecomRelation.kind == rel.kind,
                    WecomRelation.external_userid == rel.external_userid, WecomRelation.counterpart == rel.counterpart,
                    WecomRelation.started_at == rel.started_at,
                )
            )  # fmt: skip
            if exists is None:
                s.add(rel)
        s.flush()
        for (kind, ext, counterpart, started), (ended, by) in plan.ends.items():
            s.execute(
                update(WecomRelation)
                .where(
                    WecomRelation.brand == plan.brand, WecomRelation.kind == kind, WecomRelation.external_userid == ext,
                    WecomRelation.counterpart == counterpart, WecomRelation.started_at == started,
                    WecomRelation.ended_at.is_(None),
                )
                .values(ended_at=ended, ended_by=by)
            )  # fmt: skip
        for ext, takeover, status in plan.transfer_failures:
            s.execute(
                update(WecomTransfer)
                .where(
                    WecomTransfer.brand == plan.brand, WecomTransfer.external_userid == ext,
                    WecomTransfer.takeover_userid == takeover, WecomTransfer.status.in_(("requested", "waiting")),
                )
                .values(status=status)
            )  # fmt: skip
        for task in plan.tasks:
            do_create_task(uow, task)
            if task.kind == "churn_alert" and task.assignee_staff_id:
                _alert_managers(uow, task)
        s.execute(update(WecomCallback).where(WecomCallback.id.in_(ids)).values(processed_at=uow.now, error=None))
        do_mark_lost(s, plan.brand, uow.now)
        changed = [e for e in plan.rows["events"] if e["type"] in CHANGES]
        if changed:
            uow.emit(
                WecomContactChanged(
                    plan.brand,
                    tuple(sorted({str(e["source_customer_id"]) for e in changed})),
                    tuple(sorted({CHANGES[str(e["type"])] for e in changed})),
                )
            )


def land(app: App, plan: Plan) -> None:
    """Record the plan's canonical rows in the ingest inbox (the loader lands them in the lake).
    A key repeated within the batch (a relation that started and ended) keeps its last version."""
    for entity in ("customers", "relations", "events"):
        key = ENTITIES[entity].key
        rows = list({tuple(str(r.get(k)) for k in key): r for r in plan.rows[entity]}.values())
        if not rows:
            continue
        report = accept_rows(app, entity, rows, plan.brand, SOURCE)
        rejected = [r for r in report.rows if r["outcome"] == "rejected"]
        if rejected:
            log.warning("wecom %s rows rejected for %s: %s", entity, plan.brand, rejected[:3])


def process_batch(app: App, clients: Callable[[str], WeComClient], limit: int = 200) -> int:
    """Process up to `limit` pending callbacks of one brand (the oldest first); returns how many
    (0 as well when another process holds the processing lock: it is doing the work)."""
    with exclusive(app.store.engine, app.settings.home, PROCESSING_LOCK) as mine:
        return _process_batch(app, clients, limit) if mine else 0


def _process_batch(app: App, clients: Callable[[str], WeComClient], limit: int) -> int:
    with app.store.unit_of_work() as s:
        first = s.execute(
            select(WecomCallback.brand)
            .where(WecomCallback.processed_at.is_(None), WecomCallback.attempts < MAX_ATTEMPTS)
            .order_by(WecomCallback.id)
            .limit(1)
        ).scalar()
        if first is None:
            return 0
        pending = s.execute(
            select(WecomCallback.id, WecomCallback.content_hash, WecomCallback.body)
            .where(
                WecomCallback.brand == first,
                WecomCallback.processed_at.is_(None),
                WecomCallback.attempts < MAX_ATTEMPTS,
            )
            .order_by(WecomCallback.id)
            .limit(limit)
        ).all()
        plan = Plan(first)
        planner = Planner(s, plan, lambda: clients(first))
        try:
            for _, content_hash, body in pending:
                planner.callback(content_hash, xmlmsg.message(body.encode()))
        except Exception as exc:
            _failed(app, [p[0] for p in pending], exc)
            raise
    ids = [p[0] for p in pending]
    try:
        land(app, plan)
        _apply(app, plan, ids)
    except Exception as exc:
        _failed(app, ids, exc)
        raise
    return len(ids)


def _failed(app: App, ids: list[int], exc: Exception) -> None:
    log.warning("wecom callbacks %s failed: %s", ids[:5], exc)
    with app.store.unit_of_work() as s:
        s.execute(
            update(WecomCallback)
            .where(WecomCallback.id.in_(ids))
            .values(attempts=WecomCallback.attempts + 1, error=str(exc)[:400])
        )


def _alert_managers(uow: UnitOfWork, task: TaskRequest) -> None:
    """删人提醒 reaches the guide's store managers too (each once): the guide's store from the staff
    table, else the channel code's store."""
    guide = uow.session.get(StaffMember, (task.brand, task.assignee_staff_id))
    store = guide.store_code if guide and guide.store_code else task.store_code
    for manager in store_managers(uow, task.brand, store):
        if manager != task.assignee_staff_id:
            key = f"{task.idempotency_key}:manager:{manager}"
            do_create_task(uow, replace(task, assignee_staff_id=manager, store_code=store, idempotency_key=key))
