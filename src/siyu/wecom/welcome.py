"""Welcome messages (欢迎语): one per channel code, sent with the callback's WelcomeCode.

WeCom lets a WelcomeCode be used once, within 20 seconds of the add. So the welcome runs first on
the callback path, on its own threads, before the slower processing; a claim row per code (unique)
(written with the callback itself) makes it once even when WeCom redelivers the callback, to this
or another process; a send after the window is recorded as
`expired` rather than attempted; WeCom's refusals (41051: the customer already chats with the
staff member; an expired or used code) are recorded with their errcode. The latency from the
callback's arrival to the send call is stored with each send.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from siyu.store.db import Store
from siyu.store.uow import UnitOfWork
from siyu.wecom.client import WeComApiError, WeComClient
from siyu.wecom.models import WecomQrCode, WecomWelcome, WecomWelcomeSend

WINDOW = timedelta(seconds=20)
CHAT_STARTED = 41051
VARIABLES = ("name", "staff_id", "state", "store_code", "channel", "campaign")
_VARIABLE = re.compile(r"\{(" + "|".join(VARIABLES) + r")\}")
ATTACHMENTS = ("image", "link", "miniprogram")


@dataclass(frozen=True)
class WelcomeJob:
    brand: str
    welcome_code: str
    staff_id: str
    external_userid: str
    state: str
    arrived_at: datetime  # wall clock, stored
    arrived_mono: float  # monotonic, for the latency


def validate_content(content: dict[str, Any]) -> dict[str, Any]:
    """Text, plus at most the attachments WeCom takes (image, link, miniprogram)."""
    unknown = set(content) - {"text", *ATTACHMENTS}
    if unknown or not (content.get("text") or any(content.get(a) for a in ATTACHMENTS)):
        raise ValueError(f"a welcome has text and optional {', '.join(ATTACHMENTS)}; got {sorted(content)}")
    return {k: v for k, v in content.items() if v}


def do_set_welcome(uow: UnitOfWork, brand: str, state: str, content: dict[str, Any]) -> None:
    """The welcome of channel code `state` ("" = the brand's default for adds without a known code)."""
    content = validate_content(content)
    row = uow.session.get(WecomWelcome, (brand, state))
    before = None if row is None else json.loads(row.content)
    if row is None:
        row = WecomWelcome(brand=brand, state=state)
        uow.session.add(row)
    row.content = json.dumps(content, ensure_ascii=False)
    row.updated_at = uow.now
    uow.audit("wecom.welcome", "wecom_welcome", f"{brand}/{state}", brand=brand, before=before, after=content)


def render(content: dict[str, Any], variables: dict[str, str]) -> dict[str, Any]:
    """The send_welcome_msg body (without the code): `{name}` etc. replaced in every text."""

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return _VARIABLE.sub(lambda m: variables.get(m.group(1), ""), value)
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    body: dict[str, Any] = {}
    if content.get("text"):
        body["text"] = {"content": fill(content["text"])}
    attachments = [{"msgtype": a, a: fill(content[a])} for a in ATTACHMENTS if content.get(a)]
    if attachments:
        body["attachments"] = attachments
    return body


def lookup(session: Session, brand: str, state: str) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """The welcome of channel code `state` (else the brand's default) and the code's variables."""
    rows = {
        r.state: r.content
        for r in session.scalars(
            select(WecomWelcome).where(WecomWelcome.brand == brand, WecomWelcome.state.in_([state, ""]))
        )
    }
    code = session.get(WecomQrCode, (brand, state)) if state else None
    variables = {"state": state}
    if code is not None:
        variables |= {
            "store_code": code.store_code or "",
            "channel": code.channel or "",
            "campaign": code.campaign or "",
        }
    found = rows.get(state) or rows.get("")
    return (json.loads(found) if found else None), variables


def deliver(
    client: WeComClient, job: WelcomeJob, content: dict[str, Any] | None, variables: dict[str, str], now: datetime
) -> dict[str, Any]:
    """Send the welcome (no store access): the values to record for the claimed code."""
    if content is None:
        return {"status": "no_template"}
    if now - job.arrived_at > WINDOW:
        return {"status": "expired", "error": "20-second window passed before sending"}
    variables = variables | {"staff_id": job.staff_id}
    if "{name}" in json.dumps(content, ensure_ascii=False):
        try:
            variables["name"] = str(
                client.get_external_contact(job.external_userid)["external_contact"].get("name", "")
            )
        except WeComApiError:
            variables["name"] = ""
    body = {"welcome_code": job.welcome_code, **render(content, variables)}
    latency_ms = round((time.monotonic() - job.arrived_mono) * 1000)
    try:
        client.send_welcome_msg(body)
    except WeComApiError as error:
        return {"status": "failed", "errcode": error.errcode, "error": error.errmsg[:400], "latency_ms": latency_ms}
    return {"status": "sent", "latency_ms": latency_ms, "sent_at": now}


def write_outcomes(connection: Connection, outcomes: list[tuple[str, dict[str, Any]]]) -> list[None]:
    """Record sends; only a claim still `sending` is updated (the first outcome recorded wins)."""
    for code, values in outcomes:
        connection.execute(
            update(WecomWelcomeSend)
            .where(WecomWelcomeSend.welcome_code == code, WecomWelcomeSend.status == "sending")
            .values(**values)
        )
    return [None] * len(outcomes)


def do_mark_lost(session: Session, brand: str, now: datetime) -> int:
    """Claims still `sending` well after the window: the process that stored them died before it
    sent (a welcome is attempted by that process only, so it is never sent twice)."""
    result = session.execute(
        update(WecomWelcomeSend)
        .where(
            WecomWelcomeSend.brand == brand,
            WecomWelcomeSend.status == "sending",
            WecomWelcomeSend.arrived_at < now - 2 * WINDOW,
        )
        .values(status="lost", error="not sent: the receiving process stopped within the window")
    )
    return int(getattr(result, "rowcount", 0) or 0)


def send_welcome(store: Store, client: WeComClient, job: WelcomeJob, now: datetime) -> str:
    """Claim, look up, send and record one welcome (the callback path claims with the callback
    instead; see WecomRuntime). Returns the status recorded, or "duplicate" if already claimed."""
    try:
        with store.unit_of_work() as s:
            s.add(
                WecomWelcomeSend(
                    welcome_code=job.welcome_code, brand=job.brand, state=job.state or None, staff_id=job.staff_id,
                    external_userid=job.external_userid, status="sending", arrived_at=job.arrived_at,
                )
            )  # fmt: skip
            s.flush()
            content, variables = lookup(s, job.brand, job.state)
    except IntegrityError:
        return "duplicate"
    values = deliver(client, job, content, variables, now)
    with store.engine.begin() as connection:
        write_outcomes(connection, [(job.welcome_code, values)])
    return str(values["status"])
