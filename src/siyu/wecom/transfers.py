"""Customer inheritance (客户继承): hand a staff member's WeCom customers to another — on the job
(`transfer_customer`, the customer may refuse within 24 h) or after they left
(`resigned/transfer_customer`). WeCom answers later; `poll` reads `transfer_result` and, for each
customer taken over, writes the rebinding: the old `wecom_friend` relation ends with
`ended_by = transfer` and a new one starts with the takeover staff member, both at WeCom's
takeover time (effective-dated), through the ingest inbox like every other relation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.core.errors import SiyuError
from siyu.ingest.inbox import as_utc
from siyu.wecom.client import WeComClient
from siyu.wecom.models import WecomRelation, WecomTransfer
from siyu.wecom.process import FRIEND_FIELD, Plan, land, relation_row

BATCH = 100  # WeCom takes at most 100 customers per transfer call
# transfer_result status codes → ours
STATUS = {1: "succeeded", 2: "waiting", 3: "refused", 4: "limit_exceeded", 5: "no_record"}
OPEN = ("requested", "waiting")


class TransferError(SiyuError):
    code = "wecom_transfer_invalid"
    exit_code = 2


def customers_of(app: App, brand: str, staff_id: str) -> list[str]:
    """external_userids whose WeCom friend relation with `staff_id` is open."""
    with app.store.unit_of_work() as s:
        return list(
            s.scalars(
                select(WecomRelation.external_userid)
                .where(
                    WecomRelation.brand == brand, WecomRelation.kind == "friend", WecomRelation.counterpart == staff_id,
                    WecomRelation.ended_at.is_(None),
                )
                .order_by(WecomRelation.external_userid)
            )
        )  # fmt: skip


@dataclass
class TransferOutcome:
    requested: int = 0
    refused_now: dict[str, int] = field(default_factory=dict)  # external_userid → errcode


def do_transfer(
    app: App,
    client: WeComClient,
    brand: str,
    handover: str,
    takeover: str,
    externals: Sequence[str],
    resigned: bool,
    by: Actor,
) -> TransferOutcome:
    if handover == takeover:
        raise TransferError("--from and --to are the same staff member (交接双方相同)")
    outcome = TransferOutcome()
    kind = "resigned" if resigned else "on_job"
    for start in range(0, len(externals), BATCH):
        chunk = list(externals[start : start + BATCH])
        body: dict[str, Any] = {"handover_userid": handover, "takeover_userid": takeover, "external_userid": chunk}
        answer = client.transfer_customer(resigned, body)
        codes = {str(c["external_userid"]): int(c.get("errcode", 0)) for c in answer.get("customer", [])}
        with app.store.begin(by) as uow:
            for ext in chunk:
                errcode = codes.get(ext, 0)
                uow.session.add(
                    WecomTransfer(
                        brand=brand, kind=kind, handover_userid=handover, takeover_userid=takeover, external_userid=ext,
                        status="failed" if errcode else "requested", errcode=errcode or None, requested_at=uow.now,
                    )
                )  # fmt: skip
                if errcode:
                    outcome.refused_now[ext] = errcode
                else:
                    outcome.requested += 1
            uow.audit(
                "wecom.transfer", "wecom_transfer", f"{handover}->{takeover}", brand=brand,
                after={"kind": kind, "customers": len(chunk)},
            )  # fmt: skip
    return outcome


def poll(app: App, client: WeComClient, brand: str, by: Actor) -> dict[str, int]:
    """Ask WeCom how the open transfers went; rebind the customers taken over. Counts by status."""
    with app.store.unit_of_work() as s:
        pairs = s.execute(
            select(WecomTransfer.kind, WecomTransfer.handover_userid, WecomTransfer.takeover_userid)
            .where(WecomTransfer.brand == brand, WecomTransfer.status.in_(OPEN))
            .distinct()
        ).all()
    for kind, handover, takeover in pairs:
        results: dict[str, tuple[str, datetime | None]] = {}
        cursor = ""
        while True:
            body = {"handover_userid": handover, "takeover_userid": takeover, "cursor": cursor}
            answer = client.transfer_result(kind == "resigned", body)
            for c in answer.get("customer", []):
                at = int(c.get("takeover_time") or 0)
                results[str(c["external_userid"])] = (
                    STATUS.get(int(c["status"]), "failed"),
                    datetime.fromtimestamp(at, UTC) if at else None,
                )
            cursor = str(answer.get("next_cursor") or "")
            if not cursor:
                break
        _record(app, brand, handover, takeover, results, by)
    with app.store.unit_of_work() as s:
        rows = s.execute(select(WecomTransfer.status).where(WecomTransfer.brand == brand)).scalars().all()
    counts: dict[str, int] = {}
    for status in rows:
        counts[status] = counts.get(status, 0) + 1
    return counts


def _record(
    app: App, brand: str, handover: str, takeover: str, results: dict[str, tuple[str, datetime | None]], by: Actor
) -> None:
    plan = Plan(brand)
    with app.store.unit_of_work() as s:
        open_rows = s.scalars(
            select(WecomTransfer).where(
                WecomTransfer.brand == brand, WecomTransfer.handover_userid == handover,
                WecomTransfer.takeover_userid == takeover, WecomTransfer.status.in_(OPEN),
            )
        ).all()  # fmt: skip
        old = {
            r.external_userid: as_utc(r.started_at)
            for r in s.scalars(
                select(WecomRelation).where(
                    WecomRelation.brand == brand, WecomRelation.kind == "friend",
                    WecomRelation.counterpart == handover, WecomRelation.ended_at.is_(None),
                )
            )
        }  # fmt: skip
    done = []
    for row in open_rows:
        status, at = results.get(row.external_userid, (row.status, None))
        if status == "succeeded" and at is not None:
            ext = row.external_userid
            if ext in old:
                plan.rows["relations"].append(relation_row(brand, "friend", ext, handover, old[ext], at, "transfer"))
            plan.rows["relations"].append(relation_row(brand, "friend", ext, takeover, at, None, None))
            props = {"from_staff_id": handover, "to_staff_id": takeover, "kind": row.kind}
            plan.event(f"transfer:{row.id}", "wecom_transfer", ext, at, FRIEND_FIELD, props)
        done.append((row.id, status, at))
    land(app, plan)  # inbox first: a crash before the store update re-lands the same rows harmlessly
    with app.store.begin(by) as uow:
        for transfer_id, status, at in done:
            current = uow.session.get(WecomTransfer, transfer_id)
            if current is None or current.status not in OPEN:
                continue
            current.status = status
            if status == "succeeded" and at is not None:
                current.takeover_at, current.rebound_at = at, uow.now
                for rel in uow.session.scalars(
                    select(WecomRelation).where(
                        WecomRelation.brand == brand, WecomRelation.kind == "friend",
                        WecomRelation.external_userid == current.external_userid, WecomRelation.counterpart == handover,
                        WecomRelation.ended_at.is_(None),
                    )
                ):  # fmt: skip
                    rel.ended_at, rel.ended_by = at, "transfer"
                uow.session.add(
                    WecomRelation(
                        brand=brand, kind="friend", external_userid=current.external_userid, counterpart=takeover,
                        state=None, started_at=at,
                    )
                )  # fmt: skip
        uow.audit("wecom.transfer.result", "wecom_transfer", f"{handover}->{takeover}", brand=brand,
                  after={s: sum(1 for _, x, _ in done if x == s) for s in {x for _, x, _ in done}})  # fmt: skip


def status_rows(app: App, brand: str) -> list[dict[str, Any]]:
    with app.store.unit_of_work() as s:
        rows = s.scalars(select(WecomTransfer).where(WecomTransfer.brand == brand).order_by(WecomTransfer.id)).all()
        return [
            {
                "external_userid": r.external_userid, "kind": r.kind, "from": r.handover_userid,
                "to": r.takeover_userid, "status": r.status, "errcode": r.errcode,
                "takeover_at": as_utc(r.takeover_at).isoformat() if r.takeover_at else None,
            }
            for r in rows
        ]  # fmt: skip
