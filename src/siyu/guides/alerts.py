"""Tasks the guides domain raises itself: churn alerts (删人提醒), SOP follow-ups (SOP 任务) and
sensitive words in chats (敏感词). Each is idempotent on a key derived from what caused it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from siyu.guides.models import CurrentBinding, StaffMember
from siyu.guides.rules import GuideRules
from siyu.guides.tasks import TaskRequest, do_create_task
from siyu.store.uow import UnitOfWork


def store_managers(uow: UnitOfWork, brand: str, store_code: str | None) -> list[str]:
    if store_code is None:
        return []
    q = select(StaffMember.staff_id).where(
        StaffMember.brand == brand,
        StaffMember.store_code == store_code,
        StaffMember.role == "manager",
        StaffMember.status.is_distinct_from("left"),
    )
    return sorted(uow.session.scalars(q))


def do_churn_alert(
    uow: UnitOfWork, brand: str, customer_id: str, staff_id: str, *, key: str | None = None
) -> list[int]:
    """The customer deleted guide `staff_id` (WeCom del_follow_user): one `churn_alert` task for the
    guide and one for each manager of the guide's store (none: a store-level task). `key` names the
    cause (e.g. the callback's hash); default: the customer, the guide and the day. Returns task ids."""
    guide = uow.session.get(StaffMember, (brand, staff_id))
    store = guide.store_code if guide else None
    cause = key or f"{customer_id}:{staff_id}:{uow.now.date().isoformat()}"
    title = f"客户删除了导购 {staff_id} · customer deleted guide {staff_id}"
    ids = []
    targets: list[str | None] = [staff_id, *store_managers(uow, brand, store)]
    if len(targets) == 1:
        targets.append(None)  # no manager on record: the store's queue
    for target in targets:
        request = TaskRequest(
            brand=brand,
            customer_id=customer_id,
            kind="churn_alert",
            title=title,
            idempotency_key=f"churn_alert:{brand}:{cause}:{target or 'store'}",
            assignee_staff_id=target,
            store_code=store,
            source=f"wecom:del_follow_user:{staff_id}",
            due_at=uow.now + dt.timedelta(days=1),
        )
        if target is None and store is None:
            continue
        ids.append(do_create_task(uow, request)[0])
    return ids


def do_sop_tasks(uow: UnitOfWork, rules: GuideRules, catch_up: dt.timedelta = dt.timedelta(days=2)) -> int:
    """SOP tasks due by now for customers bound through an add: for each rule and each day N, a task
    for the bound guide due at `since + N days`. Tasks due more than `catch_up` ago are not created
    (applying a new rule does not flood guides with history). Returns how many were created."""
    created = 0
    now = uow.now
    for rule in rules.sop:
        for days in rule.after_add_days:
            lo, hi = now - catch_up - dt.timedelta(days=days), now - dt.timedelta(days=days)
            rows = uow.session.execute(
                select(
                    CurrentBinding.customer_id, CurrentBinding.staff_id, CurrentBinding.store_code, CurrentBinding.since
                ).where(
                    CurrentBinding.brand == rules.brand,
                    CurrentBinding.source.in_(("wecom_add", "scan")),
                    CurrentBinding.since > lo,
                    CurrentBinding.since <= hi,
                )
            ).all()
            for customer_id, staff_id, store, since in rows:
                since = since if since.tzinfo else since.replace(tzinfo=dt.UTC)
                request = TaskRequest(
                    brand=rules.brand,
                    customer_id=customer_id,
                    kind="sop",
                    title=rule.title,
                    body=rule.template,
                    idempotency_key=f"sop:{rules.brand}:{rule.code}:{days}:{customer_id}:{staff_id}:{since.isoformat()}",
                    assignee_staff_id=staff_id,
                    store_code=store,
                    source=f"sop:{rule.code}:day{days}",
                    due_at=since + dt.timedelta(days=days),
                )
                created += do_create_task(uow, request)[1]
    return created
