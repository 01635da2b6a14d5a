"""A fake WeChat API (official account and mini-program) for tests and the demo.

`GET /cgi-bin/token` (client_credential) issues tokens that expire after `expires_in`;
`POST /cgi-bin/message/template/send` and `/cgi-bin/message/subscribe/send` check the token
(40001 invalid, 42001 expired), the openid (40003) and answer `{"errcode": 0, "errmsg": "ok",
"msgid": …}`. Subscribe messages need a subscription the test granted with `subscribe(openid,
template_id)` — each is used once, else 43101 (user refused / no subscription). `fail_next` injects
errcodes (e.g. 45009 rate limited).
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request


@dataclass
class FakeWechat:
    apps: dict[str, str] = field(default_factory=lambda: {"wx-oa": "oa-secret", "wx-mp": "mp-secret"})
    expires_in: int = 7200
    tokens: dict[str, float] = field(default_factory=dict)  # token → expiry (monotonic)
    token_requests: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)
    subscriptions: dict[tuple[str, str], int] = field(default_factory=dict)
    fail_next: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def subscribe(self, openid: str, template_id: str) -> None:
        key = (openid, template_id)
        self.subscriptions[key] = self.subscriptions.get(key, 0) + 1

    def revoke_tokens(self) -> None:
        """Expire every issued token now (WeChat answers 42001 to the next use)."""
        self.tokens = dict.fromkeys(self.tokens, 0.0)

    def token(self, appid: str, secret: str) -> dict[str, Any]:
        if self.apps.get(appid) != secret:
            return {"errcode": 40013 if appid not in self.apps else 40125, "errmsg": "invalid appid or secret"}
        with self.lock:
            self.token_requests += 1
            token = uuid.uuid4().hex
            self.tokens[token] = time.monotonic() + self.expires_in
        return {"access_token": token, "expires_in": self.expires_in}

    def send(self, kind: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if token not in self.tokens:
                return {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"}
            if self.tokens[token] <= time.monotonic():
                return {"errcode": 42001, "errmsg": "access_token expired"}
            if self.fail_next:
                code = self.fail_next.pop(0)
                return {"errcode": code, "errmsg": {45009: "reach max api daily quota limit"}.get(code, "error")}
            openid, template_id = str(body.get("touser", "")), str(body.get("template_id", ""))
            if not openid.startswith("o"):
                return {"errcode": 40003, "errmsg": "invalid openid"}
            if kind == "subscribe":
                left = self.subscriptions.get((openid, template_id), 0)
                if left <= 0:
                    return {"errcode": 43101, "errmsg": "user refuse to accept the msg"}
                self.subscriptions[(openid, template_id)] = left - 1
            msgid = len(self.sent) + 1
            self.sent.append({"kind": kind, "msgid": msgid, **body})
        return {"errcode": 0, "errmsg": "ok", "msgid": msgid}


def create_app(fake: FakeWechat) -> FastAPI:
    api = FastAPI(title="fake WeChat API")

    @api.get("/cgi-bin/token")
    def token(grant_type: str, appid: str, secret: str) -> dict[str, Any]:
        if grant_type != "client_credential":
            return {"errcode": 40002, "errmsg": "invalid grant_type"}
        return fake.token(appid, secret)

    @api.post("/cgi-bin/message/template/send")
    async def template_send(request: Request, access_token: str = "") -> dict[str, Any]:
        return fake.send("template", access_token, await request.json())

    @api.post("/cgi-bin/message/subscribe/send")
    async def subscribe_send(request: Request, access_token: str = "") -> dict[str, Any]:
        return fake.send("subscribe", access_token, await request.json())

    return api


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="fake WeChat API")
    parser.add_argument("--port", type=int, default=9102)
    args = parser.parse_args()
    uvicorn.run(create_app(FakeWechat()), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
