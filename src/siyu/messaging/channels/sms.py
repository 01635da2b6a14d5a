"""SMS through Aliyun `SendSms` (dysmsapi 2017-05-25), RPC style, signed (siyu.messaging.channels.aliyun).

Payload: `phone`, `template_code`, `sign_name` (else SIYU_SMS_SIGN_NAME), `params` (TemplateParam).
`OutId` carries our message id (`out_id`): Aliyun echoes it in the delivery receipt (SmsReport), which is how a
receipt finds its message; the fake gateway also refuses a second send with the same OutId.

Answers (documented codes): `OK` → sent (BizId is the provider id); flow control
(`isv.BUSINESS_LIMIT_CONTROL`, `Throttling.User`, `isp.SYSTEM_ERROR`) and HTTP 5xx → retry;
anything else (invalid number, template, signature, balance) → failed with the code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid

import httpx

from siyu.messaging.channels.aliyun import sign
from siyu.messaging.channels.base import Outbound, SendResult, register_channel
from siyu.messaging.settings import ChannelSettings

TRANSIENT = {"isv.BUSINESS_LIMIT_CONTROL", "Throttling.User", "Throttling", "isp.SYSTEM_ERROR", "ServiceUnavailable"}


def out_id(message: Outbound) -> str:
    """`<message id>-<12 hex of the idempotency key>`: the receipt finds the row by the id; the hash
    keeps two stores (a staging and a production siyu on one Aliyun account) from colliding."""
    return f"{message.message_id}-{hashlib.sha256(message.idempotency_key.encode()).hexdigest()[:12]}"


class AliyunSmsChannel:
    name = "sms"

    def __init__(self, settings: ChannelSettings) -> None:
        self.settings = settings
        self.client = httpx.Client(timeout=10)

    def params(self, message: Outbound, now: dt.datetime | None = None) -> dict[str, str]:
        s, p = self.settings, message.payload
        now = now or dt.datetime.now(dt.UTC)
        params = {
            "AccessKeyId": s.sms_access_key_id or "",
            "Action": "SendSms",
            "Format": "JSON",
            "RegionId": "cn-hangzhou",
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": uuid.uuid4().hex,
            "SignatureVersion": "1.0",
            "Timestamp": now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": "2017-05-25",
            "PhoneNumbers": str(p["phone"]).removeprefix("+86"),  # mainland numbers without the country code
            "SignName": str(p.get("sign_name") or s.sms_sign_name or ""),
            "TemplateCode": str(p.get("template_code", "")),
            "TemplateParam": json.dumps(p.get("params", {}), ensure_ascii=False, separators=(",", ":")),
            "OutId": out_id(message),
        }
        params["Signature"] = sign("POST", params, s.sms_access_key_secret or "")
        return params

    def send(self, message: Outbound) -> SendResult:
        try:
            response = self.client.post(self.settings.sms_api_base.rstrip("/") + "/", data=self.params(message))
        except httpx.HTTPError as error:
            return SendResult("retry", error=f"sms gateway unreachable: {type(error).__name__}")
        if response.status_code >= 500:
            return SendResult("retry", error=f"sms gateway HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            return SendResult("retry", error=f"sms gateway answered HTTP {response.status_code}, not JSON")
        code = str(body.get("Code", ""))
        if code == "OK":
            return SendResult("sent", provider_id=str(body.get("BizId") or ""))
        if code in TRANSIENT:
            return SendResult("retry", error=code, retry_after_s=60.0)
        return SendResult("failed", error=f"{code}: {body.get('Message', '')}"[:300])


register_channel("sms", lambda settings: AliyunSmsChannel(settings.channels))
