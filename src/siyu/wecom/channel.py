"""The `wecom` message channel (企业微信 1v1 群发): a customer message through the staff member the
customer is bound to, with `externalcontact/add_msg_template`. WeCom does not deliver it by itself:
the staff member confirms it in their client, so `send` answers `sent` with WeCom's msgid, and
`poll` reads `get_groupmsg_send_result` — confirmed and sent is `delivered`.

The payload names the staff member (`staff_id`, resolved by the journey / messaging side from the
binding rules, see docs/guides.md) and the customer (`external_userid`), plus `text` and optional
`image` / `link` / `miniprogram` attachments as in a welcome message.
"""

from __future__ import annotations

import threading
from typing import Any

from siyu.config import Settings
from siyu.messaging.channels.base import Outbound, SendResult, register_channel
from siyu.store.db import Store, make_engine
from siyu.wecom.client import TOKEN_ERRORS, TokenCache, WeComApiError, WeComClient
from siyu.wecom.settings import load
from siyu.wecom.welcome import ATTACHMENTS

# errcodes: 41063 msgid unknown; 45009 / 45033 API frequency limits (retry later)
RATE_LIMITED = frozenset({45009, 45033, -1})
# get_groupmsg_send_result status: 0 not sent yet, 1 sent, 2 not a friend (any more), 3 customer's daily limit
SEND_STATUS: dict[int, SendResult] = {
    1: SendResult("delivered"),
    2: SendResult("refused", error="not a friend of the staff member (客户不是好友)"),
    3: SendResult("refused", error="the customer already received a group message today (已达接收上限)"),
}


def message_body(payload: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "chat_type": "single",
        "external_userid": [str(payload["external_userid"])],
        "sender": str(payload["staff_id"]),
    }
    if payload.get("text"):
        body["text"] = {"content": str(payload["text"])}
    attachments = [{"msgtype": a, a: payload[a]} for a in ATTACHMENTS if payload.get(a)]
    if attachments:
        body["attachments"] = attachments
    return body


class WecomChannel:
    name = "wecom"

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        # Reads the brand's WeCom settings (sealed secrets) from the store; never writes it.
        self.settings = settings
        self._store = store
        self.tokens = TokenCache()
        self._clients: dict[str, WeComClient] = {}
        self._lock = threading.Lock()

    def client(self, brand: str) -> WeComClient:
        with self._lock:
            if brand not in self._clients:
                if self._store is None:
                    self._store = Store(make_engine(self.settings.store_url))
                with self._store.unit_of_work() as session:
                    corp = load(session, self.settings.pii_keyring, brand)
                self._clients[brand] = WeComClient(
                    self.settings.wecom_api_base, corp.corp_id, corp.secret, tokens=self.tokens
                )
            return self._clients[brand]

    def send(self, message: Outbound) -> SendResult:
        payload = message.payload
        missing = [k for k in ("staff_id", "external_userid") if not payload.get(k)]
        if missing:
            return SendResult("failed", error=f"wecom payload lacks {', '.join(missing)} (缺少导购或客户)")
        try:
            answer = self.client(message.brand).add_msg_template(message_body(payload))
        except WeComApiError as error:
            return _error(error)
        if answer.get("fail_list"):
            return SendResult("refused", error=f"WeCom could not send to {answer['fail_list']} (不是该员工的客户)")
        return SendResult("sent", provider_id=str(answer["msgid"]))

    def poll(self, message: Outbound, provider_id: str) -> SendResult:
        """The result of a sent message: `delivered` once the staff member confirmed and it went out."""
        try:
            answer = self.client(message.brand).get_groupmsg_send_result(provider_id, str(message.payload["staff_id"]))
        except WeComApiError as error:
            return _error(error)
        external = str(message.payload["external_userid"])
        for row in answer.get("send_list", []):
            if str(row.get("external_userid")) == external:
                return SEND_STATUS.get(int(row.get("status", 0)), SendResult("sent", provider_id=provider_id))
        return SendResult("sent", provider_id=provider_id)


def _error(error: WeComApiError) -> SendResult:
    if error.errcode in RATE_LIMITED or error.errcode in TOKEN_ERRORS:
        return SendResult("retry", error=error.message, retry_after_s=60.0)
    return SendResult("failed", error=error.message)


register_channel("wecom", WecomChannel)
