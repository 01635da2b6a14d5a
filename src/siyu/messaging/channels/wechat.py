"""WeChat official-account template messages (公众号模板消息, `cgi-bin/message/template/send`) and
mini-program subscribe messages (小程序订阅消息, `cgi-bin/message/subscribe/send`).

Both fetch `cgi-bin/token` (client_credential) and cache it until shortly before `expires_in`.
Documented errcodes: 40001 / 42001 / 40014 (invalid or expired token) → refresh once and resend;
45009 / 45047 (rate or quota limit) and -1 (system busy) → retry later; 43101 (the user refused or
holds no subscription) and 43004 (not following) → refused; anything else → failed with the code.

Payload: `openid`, `template_id`, `data` ({key: value or {"value": …}}), optional `url` (OA) /
`page` (mini-program). Whether the customer holds an unused subscription is the dispatcher's check.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from siyu.messaging.channels.base import Outbound, SendResult, register_channel
from siyu.messaging.settings import ChannelSettings

EXPIRED = {40001, 42001, 40014}
LATER = {45009, 45047, -1}
REFUSED = {43101, 43004}


class TokenCache:
    """One access token per AppID, refreshed 5 minutes before it expires or when WeChat says so."""

    def __init__(self, client: httpx.Client, base: str, appid: str, secret: str) -> None:
        self.client, self.base, self.appid, self.secret = client, base.rstrip("/"), appid, secret
        self._token: str | None = None
        self._until = 0.0
        self._lock = threading.Lock()
        self.fetches = 0

    def get(self, *, refresh: bool = False) -> str:
        with self._lock:
            if refresh or self._token is None or time.monotonic() >= self._until:
                response = self.client.get(
                    f"{self.base}/cgi-bin/token",
                    params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
                )
                body = response.json()
                if "access_token" not in body:
                    raise TokenError(int(body.get("errcode", -1)), str(body.get("errmsg", "")))
                self.fetches += 1
                self._token = str(body["access_token"])
                self._until = time.monotonic() + max(0, int(body.get("expires_in", 7200)) - 300)
            return self._token


class TokenError(Exception):
    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"{errcode} {errmsg}")
        self.errcode = errcode


def _data(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, dict) else {"value": v} for k, v in raw.items()}


class _WechatChannel:
    name = ""
    path = ""

    def __init__(self, settings: ChannelSettings, appid: str | None, secret: str | None) -> None:
        self.client = httpx.Client(timeout=10)
        self.tokens = TokenCache(self.client, settings.wechat_api_base, appid or "", secret or "")
        self.base = settings.wechat_api_base.rstrip("/")

    def body(self, message: Outbound) -> dict[str, Any]:
        raise NotImplementedError

    def send(self, message: Outbound) -> SendResult:
        try:
            for attempt in range(2):
                token = self.tokens.get(refresh=attempt > 0)
                answer = self.client.post(f"{self.base}{self.path}", params={"access_token": token},
                                          json=self.body(message)).json()  # fmt: skip
                code = int(answer.get("errcode", 0))
                if code in EXPIRED and attempt == 0:
                    continue  # the cached token was revoked or expired early: one refresh
                break
        except TokenError as error:
            return SendResult("retry" if error.errcode in LATER else "failed", error=f"token: {error}")
        except (httpx.HTTPError, ValueError) as error:
            return SendResult("retry", error=f"wechat unreachable: {type(error).__name__}")
        if code == 0:
            return SendResult("sent", provider_id=str(answer.get("msgid", "")))
        if code in LATER:
            return SendResult("retry", error=f"errcode {code}", retry_after_s=60.0)
        if code in REFUSED:
            return SendResult("refused", error=f"errcode {code}: {answer.get('errmsg', '')}"[:300])
        return SendResult("failed", error=f"errcode {code}: {answer.get('errmsg', '')}"[:300])


class OfficialAccountChannel(_WechatChannel):
    name = "oa"
    path = "/cgi-bin/message/template/send"

    def __init__(self, settings: ChannelSettings) -> None:
        super().__init__(settings, settings.wechat_oa_appid, settings.wechat_oa_secret)

    def body(self, message: Outbound) -> dict[str, Any]:
        p = message.payload
        body: dict[str, Any] = {
            "touser": p["openid"],
            "template_id": p["template_id"],
            "data": _data(p.get("data", {})),
        }
        if p.get("url"):
            body["url"] = p["url"]
        return body


class MiniProgramChannel(_WechatChannel):
    name = "miniprogram"
    path = "/cgi-bin/message/subscribe/send"

    def __init__(self, settings: ChannelSettings) -> None:
        super().__init__(settings, settings.wechat_mp_appid, settings.wechat_mp_secret)

    def body(self, message: Outbound) -> dict[str, Any]:
        p = message.payload
        body: dict[str, Any] = {
            "touser": p["openid"],
            "template_id": p["template_id"],
            "data": _data(p.get("data", {})),
        }
        if p.get("page"):
            body["page"] = p["page"]
        return body


register_channel("oa", lambda settings: OfficialAccountChannel(settings.channels))
register_channel("miniprogram", lambda settings: MiniProgramChannel(settings.channels))
