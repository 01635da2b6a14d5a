"""A local fake of the WeCom server API (企业微信 模拟服务) for tests and the demo.

It speaks the documented JSON of the endpoints siyu uses (`gettoken`, `externalcontact/*`,
`errcode` / `errmsg`), expires tokens on demand (42001), keeps WelcomeCodes single-use for 20 s,
and *sends* callbacks: signed and encrypted exactly as WeCom does, POSTed to a receiver.

Run it on its own: `python -m siyu.fakes.wecom --port 8900` (then SIYU_WECOM_API_BASE=http://127.0.0.1:8900).
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request

from siyu.wecom import xmlmsg
from siyu.wecom.crypto import WeComCrypto

WELCOME_TTL_S = 20
# transfer_result statuses (客户接替状态): 1 done, 2 waiting, 3 refused, 4 takeover at limit, 5 no record
TRANSFER_STATUS = {"succeeded": 1, "waiting": 2, "refused": 3, "limit_exceeded": 4}


def _err(code: int, msg: str) -> dict[str, Any]:
    return {"errcode": code, "errmsg": msg}


OK = {"errcode": 0, "errmsg": "ok"}


@dataclass
class FakeWeCom:
    corp_id: str = "wwfakecorp0001"
    secret: str = "fake-contact-secret"  # noqa: S105 - the fake's own test credential
    token_ttl_s: int = 7200
    clock: Any = time.time
    tokens: dict[str, float] = field(default_factory=dict)
    token_calls: int = 0
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)  # external_userid → contact
    contact_ways: dict[str, dict[str, Any]] = field(default_factory=dict)
    welcome_codes: dict[str, tuple[float, str]] = field(default_factory=dict)  # code → (issued at, external_userid)
    chatting: set[str] = field(default_factory=set)  # external_userids that already chat: 41051
    welcomes: list[dict[str, Any]] = field(default_factory=list)  # accepted send_welcome_msg bodies
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)  # msgid → add_msg_template body
    confirmed: set[str] = field(default_factory=set)  # msgids the staff member confirmed and sent
    groupchats: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # transfers[(handover, takeover, external_userid)] = (status, takeover_time); outcomes decide later ones
    transfers: dict[tuple[str, str, str], tuple[int, int]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- test controls ---------------------------------------------------------------------------
    def expire_tokens(self) -> None:
        """Every issued token now answers 42001, as WeCom does after expires_in."""
        with self.lock:
            self.tokens = dict.fromkeys(self.tokens, 0.0)

    def add_contact(
        self, external_userid: str, userid: str, *, name: str = "", unionid: str = "", state: str = ""
    ) -> str:
        """A customer adds staff member `userid`: registers the contact and returns a fresh WelcomeCode."""
        with self.lock:
            contact = self.contacts.setdefault(
                external_userid,
                {"external_userid": external_userid, "name": name, "type": 1, "unionid": unionid, "follow_user": []},
            )
            contact["follow_user"].append({"userid": userid, "state": state, "createtime": int(self.clock())})
            code = "WC" + secrets.token_hex(12)
            self.welcome_codes[code] = (self.clock(), external_userid)
            return code

    def finish_transfer(self, external_userid: str, outcome: str) -> None:
        with self.lock:
            for key, _ in list(self.transfers.items()):
                if key[2] == external_userid:
                    self.transfers[key] = (TRANSFER_STATUS[outcome], int(self.clock()))

    # -- callbacks out ---------------------------------------------------------------------------
    def callback_request(self, token: str, aes_key: str, fields: dict[str, Any]) -> tuple[dict[str, str], bytes]:
        """(query params, body) of a callback as WeCom would POST it."""
        crypto = WeComCrypto(token, aes_key, self.corp_id)
        timestamp, nonce = str(int(self.clock())), secrets.token_hex(5)
        ciphertext, signature = crypto.seal(xmlmsg.render(fields), timestamp, nonce)
        params = {"msg_signature": signature, "timestamp": timestamp, "nonce": nonce}
        return params, xmlmsg.encrypted_envelope(self.corp_id, ciphertext)

    def send_callback(
        self, url: str, token: str, aes_key: str, fields: dict[str, Any], http: httpx.Client | None = None
    ) -> httpx.Response:
        params, body = self.callback_request(token, aes_key, fields)
        if http is not None:
            return http.post(url, params=params, content=body)
        return httpx.post(url, params=params, content=body, timeout=10)

    # -- the API ---------------------------------------------------------------------------------
    def check_token(self, token: str | None) -> dict[str, Any] | None:
        if not token:
            return _err(41001, "access_token missing")
        expires = self.tokens.get(token)
        if expires is None:
            return _err(40014, "invalid access_token")
        if expires <= self.clock():
            return _err(42001, "access_token expired")
        return None


def create_fake_app(fake: FakeWeCom) -> FastAPI:
    api = FastAPI(title="fake WeCom")

    @api.get("/cgi-bin/gettoken")
    def gettoken(corpid: str = "", corpsecret: str = "") -> dict[str, Any]:
        if corpid != fake.corp_id:
            return _err(40013, "invalid corpid")
        if corpsecret != fake.secret:
            return _err(40001, "invalid credential")
        token = secrets.token_urlsafe(24)
        with fake.lock:
            fake.token_calls += 1
            fake.tokens[token] = fake.clock() + fake.token_ttl_s
        return {**OK, "access_token": token, "expires_in": fake.token_ttl_s}

    async def _body(request: Request) -> tuple[dict[str, Any], dict[str, Any] | None]:
        fake.calls.append(request.url.path.removeprefix("/cgi-bin/externalcontact/"))
        error = fake.check_token(request.query_params.get("access_token"))
        body = await request.json() if request.method == "POST" else dict(request.query_params)
        return body, error

    @api.post("/cgi-bin/externalcontact/add_contact_way")
    async def add_contact_way(request: Request) -> dict[str, Any]:
        body, error = await _body(request)
        if error:
            return error
        if len(str(body.get("state", ""))) > 30:
            return _err(40058, "state exceeds 30 characters")
        config_id = secrets.token_hex(16)
        fake.contact_ways[config_id] = body
        return {**OK, "config_id": config_id, "qr_code": f"https://wework.qpic.cn/wwpic/fake_{config_id}/0"}

    @api.get("/cgi-bin/externalcontact/get")
    async def get_contact(request: Request) -> dict[str, Any]:
        body, error = await _body(request)
        if error:
            return error
        contact = fake.contacts.get(str(body.get("external_userid")))
        if contact is None:
            return _err(84061, "not external contact")
        public = {k: v for k, v in contact.items() if k != "follow_user"}
        return {**OK, "external_contact": public, "follow_user": contact["follow_user"]}

    @api.post("/cgi-bin/externalcontact/send_welcome_msg")
    async def send_welcome_msg(request: Request) -> dict[str, Any]:
        body, error = await _body(request)
        if error:
            return error
        code = str(body.get("welcome_code", ""))
        with fake.lock:
            issued = fake.welcome_codes.pop(code, None)  # single use
        if issued is None or fake.clock() - issued[0] > WELCOME_TTL_S:
            return _err(41096, "invalid welcome_code: expired or used")
        if issued[1] in fake.chatting:
            return _err(41051, "externaluser has started chatting")
        fake.welcomes.append(body)
        return OK

    @api.post("/cgi-bin/externalcontact/add_msg_template")
    async def add_msg_template(request: Request) -> dict[str, Any]:
        body, error = await _body(request)
        if error:
            return error
        msgid = "msg" + secrets.token_hex(8)
        fake.templates[msgid] = body
        return {**OK, "fail_list": [], "msgid": msgid}

    @api.post("/cgi-bin/externalcontact/get_groupmsg_send_result")
    async def get_groupmsg_send_result(request: Request) -> dict[str, Any]:
        body, error = await _body(request)
        if error:
            return error
        template = fake.templates.get(str(body.get("msgid")))
        if template is None:
            return _err(41063, "msgid not found")
        sent = str(body.get("msgid")) in fake.confirmed
        send_list = [
            {"external_userid": e, "userid": template.get("sender"), "status": 1 if sent else 0, "send_time": 0}
            for e in template.get("external_userid", [])
        ]
        return {**OK, "next_cursor": "", "send_list": send_list}

    @api.post("/cgi-bin/externalcontact/groupchat/get")
    async def groupchat_get(request: Request) -> dict[str, Any]:
        body, error = await _body(request)
        if error:
            return error
        members = fake.groupchats.get(str(body.get("chat_id")))
        if members is None:
            return _err(701008, "chat not found")
        return {**OK, "group_chat": {"chat_id": body.get("chat_id"), "member_list": members}}

    def _transfer(body: dict[str, Any]) -> dict[str, Any]:
        handover, takeover = str(body.get("handover_userid")), str(body.get("takeover_userid"))
        customers = []
        for external in body.get("external_userid", []):
            with fake.lock:
                fake.transfers[(handover, takeover, external)] = (2, 0)
            customers.append({"external_userid": external, "errcode": 0})
        return {**OK, "customer": customers}

    def _result(body: dict[str, Any]) -> dict[str, Any]:
        handover, takeover = str(body.get("handover_userid")), str(body.get("takeover_userid"))
        customers = [
            {"external_userid": k[2], "status": status, "takeover_time": at}
            for k, (status, at) in fake.transfers.items()
            if k[0] == handover and k[1] == takeover
        ]
        return {**OK, "customer": customers, "next_cursor": ""}

    for prefix in ("", "resigned/"):

        @api.post(f"/cgi-bin/externalcontact/{prefix}transfer_customer")
        async def transfer_customer(request: Request) -> dict[str, Any]:
            body, error = await _body(request)
            return error or _transfer(body)

        @api.post(f"/cgi-bin/externalcontact/{prefix}transfer_result")
        async def transfer_result(request: Request) -> dict[str, Any]:
            body, error = await _body(request)
            return error or _result(body)

    # Test controls over HTTP, for a fake running in a process of its own (the benchmark, the demo).
    @api.post("/fake/add_contact")
    async def fake_add_contact(request: Request) -> dict[str, Any]:
        body = await request.json()
        codes = [
            fake.add_contact(str(c["external_userid"]), str(c["userid"]), name=str(c.get("name", "")))
            for c in body["contacts"]
        ]
        return {**OK, "welcome_codes": codes}

    @api.get("/fake/welcomes")
    def fake_welcomes() -> dict[str, Any]:
        return {**OK, "count": len(fake.welcomes)}

    return api


def main() -> None:  # pragma: no cover - a manual convenience
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description="fake WeCom API")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--corp-id", default=FakeWeCom.corp_id)
    parser.add_argument("--secret", default=FakeWeCom.secret)
    args = parser.parse_args()
    uvicorn.run(create_fake_app(FakeWeCom(corp_id=args.corp_id, secret=args.secret)), port=args.port)


if __name__ == "__main__":
    main()
