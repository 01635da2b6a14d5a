"""A fake Aliyun SMS gateway (dysmsapi `SendSms`, RPC style) for tests and the demo.

It checks what the real one checks that matters here — Action, Version, the signature (HMAC-SHA1
over the canonicalised query, siyu.messaging.channels.aliyun), PhoneNumbers, SignName,
TemplateCode, TemplateParam JSON — and answers in Aliyun's JSON (`Code`, `Message`, `BizId`,
`RequestId`). It also refuses a second message with an OutId it has already accepted (answering the
first BizId), so tests count one message per OutId; the real service documents OutId as an
external serial number echoed in receipts, not as a deduplication key (docs/messaging.md).

`received` keeps every accepted message; `receipts_for()` builds the SmsReport push body.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from siyu.messaging.channels.aliyun import sign


@dataclass
class FakeSmsGateway:
    access_key_id: str = "fake-id"
    access_key_secret: str = "fake-secret"  # noqa: S105  (the fake's own, published)
    received: list[dict[str, str]] = field(default_factory=list)
    requests: int = 0
    by_out_id: dict[str, str] = field(default_factory=dict)
    fail_next: list[str] = field(default_factory=list)  # Aliyun codes to answer next, e.g. BUSINESS_LIMIT
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, params: dict[str, str]) -> dict[str, Any]:
        request_id = str(uuid.uuid4()).upper()
        if params.get("Action") != "SendSms" or params.get("Version") != "2017-05-25":
            return {"Code": "InvalidAction.NotFound", "Message": "Specified api is not found", "RequestId": request_id}
        if params.get("AccessKeyId") != self.access_key_id:
            return {"Code": "InvalidAccessKeyId.NotFound", "Message": "Specified access key is not found.",
                    "RequestId": request_id}  # fmt: skip
        if sign("POST", params, self.access_key_secret) != params.get("Signature"):
            return {"Code": "SignatureDoesNotMatch", "Message": "Specified signature is not matched.",
                    "RequestId": request_id}  # fmt: skip
        phone = params.get("PhoneNumbers", "")
        if not (phone.isdigit() and len(phone) == 11 and phone.startswith("1")):
            return {"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "非法手机号", "RequestId": request_id}
        try:
            json.loads(params.get("TemplateParam") or "{}")
        except ValueError:
            return {"Code": "isv.INVALID_JSON_PARAM", "Message": "JSON参数不合法", "RequestId": request_id}
        with self.lock:
            self.requests += 1
            if self.fail_next:
                code = self.fail_next.pop(0)
                return {"Code": code, "Message": "触发流控" if "LIMIT" in code else code, "RequestId": request_id}
            out_id = params.get("OutId", "")
            if out_id and out_id in self.by_out_id:
                return {"Code": "OK", "Message": "OK", "BizId": self.by_out_id[out_id], "RequestId": request_id}
            biz_id = f"{uuid.uuid4().int % 10**18}^0"
            if out_id:
                self.by_out_id[out_id] = biz_id
            self.received.append({**params, "BizId": biz_id})
        return {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": request_id}

    def receipts_for(self, success: bool = True, err_code: str = "DELIVERED") -> list[dict[str, Any]]:
        """The SmsReport push body Aliyun POSTs to the receipt URL, for everything received."""
        now = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M:%S")
        return [
            {"phone_number": r["PhoneNumbers"], "send_time": now, "report_time": now, "success": success,
             "err_code": err_code, "err_msg": "用户接收成功" if success else "失败", "sms_size": "1",
             "biz_id": r["BizId"], "out_id": r.get("OutId", "")}
            for r in self.received
        ]  # fmt: skip


def create_app(gateway: FakeSmsGateway) -> FastAPI:
    api = FastAPI(title="fake Aliyun SMS")

    @api.post("/")
    async def send(request: Request) -> JSONResponse:
        form = await request.form()
        params = {k: str(v) for k, v in form.items()}
        params.update({k: v for k, v in request.query_params.items()})
        if gateway.delay:
            import asyncio

            await asyncio.sleep(gateway.delay)
        return JSONResponse(gateway.answer(params))

    return api


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="fake Aliyun SMS gateway")
    parser.add_argument("--port", type=int, default=9101)
    args = parser.parse_args()
    uvicorn.run(create_app(FakeSmsGateway()), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
