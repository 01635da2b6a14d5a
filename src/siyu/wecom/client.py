"""The WeCom server API (企业微信服务端 API) over httpx: access token cached until shortly before it
expires and fetched again once when WeCom says it is expired or invalid (42001 / 40014 / 41001);
every other non-zero `errcode` becomes a `WeComApiError` carrying it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from siyu.core.errors import SiyuError

TOKEN_ERRORS = frozenset({42001, 40014, 41001})  # expired, invalid, missing access_token
EARLY_S = 300  # renew this long before WeCom's expires_in runs out (clock skew, slow requests)


class WeComApiError(SiyuError):
    code = "wecom_api_error"

    def __init__(self, path: str, errcode: int, errmsg: str) -> None:
        super().__init__(f"WeCom {path} failed: errcode {errcode} {errmsg} (企业微信接口错误)")
        self.errcode = errcode
        self.errmsg = errmsg


class TokenCache:
    """Access tokens by (API base, corp id, secret): one per process, shared by every client, so
    the welcome path never waits for gettoken once the first call fetched it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str]) -> str | None:
        with self._lock:
            found = self._tokens.get(key)
        return found[0] if found and found[1] > self.clock() else None

    def put(self, key: tuple[str, str, str], token: str, expires_in: int) -> None:
        with self._lock:
            self._tokens[key] = (token, self.clock() + max(expires_in - EARLY_S, expires_in / 2))

    def drop(self, key: tuple[str, str, str], token: str) -> None:
        with self._lock:
            if self._tokens.get(key, ("",))[0] == token:
                del self._tokens[key]


class WeComClient:
    def __init__(
        self,
        api_base: str,
        corp_id: str,
        secret: str,
        *,
        tokens: TokenCache | None = None,
        http: httpx.Client | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.base = api_base.rstrip("/")
        self.corp_id = corp_id
        self._secret = secret
        self._key = (self.base, corp_id, secret)
        self.tokens = tokens or TokenCache()
        self.http = http or httpx.Client(timeout=timeout)
        self.token_fetches = 0

    def _checked(self, path: str, response: httpx.Response) -> dict[str, Any]:
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        errcode = int(body.get("errcode", 0))
        if errcode:
            raise WeComApiError(path, errcode, str(body.get("errmsg", "")))
        return body

    def access_token(self) -> str:
        token = self.tokens.get(self._key)
        if token is None:
            path = "/cgi-bin/gettoken"
            body = self._checked(
                path, self.http.get(self.base + path, params={"corpid": self.corp_id, "corpsecret": self._secret})
            )
            self.token_fetches += 1
            token = str(body["access_token"])
            self.tokens.put(self._key, token, int(body.get("expires_in", 7200)))
        return token

    def call(
        self, method: str, path: str, *, json: dict[str, Any] | None = None, params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """One API call; on a token error the token is fetched again and the call repeated once."""
        for attempt in (1, 2):
            token = self.access_token()
            response = self.http.request(
                method, self.base + path, params={**(params or {}), "access_token": token}, json=json
            )
            try:
                return self._checked(path, response)
            except WeComApiError as error:
                if error.errcode not in TOKEN_ERRORS or attempt == 2:
                    raise
                self.tokens.drop(self._key, token)
        raise AssertionError("unreachable")

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", "/cgi-bin/externalcontact/" + path, json=body)

    # The endpoints siyu uses (客户联系 API), named as WeCom names them.
    def add_contact_way(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.post("add_contact_way", body)

    def get_external_contact(self, external_userid: str) -> dict[str, Any]:
        return self.call("GET", "/cgi-bin/externalcontact/get", params={"external_userid": external_userid})

    def send_welcome_msg(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.post("send_welcome_msg", body)

    def add_msg_template(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.post("add_msg_template", body)

    def get_groupmsg_send_result(self, msgid: str, userid: str) -> dict[str, Any]:
        return self.post("get_groupmsg_send_result", {"msgid": msgid, "userid": userid, "limit": 1000})

    def groupchat_get(self, chat_id: str) -> dict[str, Any]:
        return self.post("groupchat/get", {"chat_id": chat_id, "need_name": 0})

    def transfer_customer(self, resigned: bool, body: dict[str, Any]) -> dict[str, Any]:
        return self.post("resigned/transfer_customer" if resigned else "transfer_customer", body)

    def transfer_result(self, resigned: bool, body: dict[str, Any]) -> dict[str, Any]:
        return self.post("resigned/transfer_result" if resigned else "transfer_result", body)

    def close(self) -> None:
        self.http.close()
