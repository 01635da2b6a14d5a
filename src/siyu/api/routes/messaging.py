"""Messaging endpoints without API keys: the unsubscribe link and the SMS delivery-receipt push."""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from siyu.api.deps import StateDep
from siyu.api.errors import ApiError
from siyu.core.actor import Actor
from siyu.core.errors import SiyuError
from siyu.messaging.consent import ConsentChange, do_record_consents
from siyu.messaging.receipts import apply_sms_receipts, receipt_token
from siyu.messaging.unsubscribe import Unsubscribe, read_token

router = APIRouter(tags=["messaging 触达"])

CONFIRM = """<!doctype html><html lang="zh-CN"><meta charset="utf-8"><title>退订 Unsubscribe</title>
<body><form method="post"><p>不再接收营销邮件？ Stop receiving marketing e-mail?</p>
<button type="submit">确认退订 Unsubscribe</button></form></body></html>"""
DONE = """<!doctype html><html lang="zh-CN"><meta charset="utf-8"><title>退订成功 Unsubscribed</title>
<body><h1>您已退订营销邮件</h1><p>You have been unsubscribed from marketing e-mail.</p></body></html>"""


def _token(state: StateDep, token: str) -> Unsubscribe:
    try:
        return read_token(state.app.settings.pii_key, token)
    except SiyuError as error:
        raise ApiError(404, error.code, error.message) from error


@router.get("/u/{token}", summary="Unsubscribe page 退订页", response_class=HTMLResponse)
def unsubscribe_page(token: str, state: StateDep) -> HTMLResponse:
    """The page the link opens: one button that POSTs. A GET never unsubscribes, because mail
    scanners open links on their own (RFC 8058); mail clients POST directly (List-Unsubscribe-Post)."""
    _token(state, token)
    return HTMLResponse(CONFIRM)


@router.post("/u/{token}", summary="Unsubscribe 退订", response_class=HTMLResponse)
def unsubscribe(token: str, request: Request, state: StateDep) -> HTMLResponse:
    """Record the withdrawal the signed link names (idempotent: a second click adds nothing)."""
    u = _token(state, token)
    with state.app.store.begin(Actor.system("unsubscribe_link")) as uow:
        do_record_consents(uow, [ConsentChange(
            u.brand, u.customer_id, u.purpose, False, "unsubscribe_link",
            {"message_id": u.message_id, "user_agent": request.headers.get("user-agent", "")[:200]},
            source_key=f"unsubscribe:{u.message_id}:{u.purpose}",
        )])  # fmt: skip
    return HTMLResponse(DONE)


@router.post("/api/v1/messaging/sms/receipts", summary="Aliyun SMS delivery receipts (SmsReport push) 短信回执")
async def sms_receipts(request: Request, state: StateDep, token: str = "") -> dict[str, Any]:
    # bytes: compare_digest refuses str with non-ASCII characters (a fuzzer's token is anything)
    if not hmac.compare_digest(token.encode(), receipt_token(state.app.settings.pii_key).encode()):
        raise ApiError(403, "bad_receipt_token", "the receipt URL's token is wrong: see `siyu messages receipt-url`")
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(422, "invalid_json", "the receipt body is not JSON (Aliyun SmsReport: a JSON array)") from None
    reports = body if isinstance(body, list) else [body]
    apply_sms_receipts(state.app.store, [r for r in reports if isinstance(r, dict)], state.app.clock())
    return {"code": 0, "msg": "成功"}
