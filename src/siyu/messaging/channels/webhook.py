"""Webhook: POST JSON to the brand's URL, signed `X-Siyu-Signature: sha256=<hex HMAC-SHA256 of the
body>` with the brand's secret, with `Idempotency-Key` so a receiver can drop a re-delivery.

2xx → sent; 408, 429 and 5xx or no answer → retry with backoff (the dispatcher's); other 4xx → failed.
The secret comes from the brand's policy at dispatch time (payload key `_secret`, never stored).
"""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx

from siyu.messaging.channels.base import Outbound, SendResult, register_channel
from siyu.messaging.settings import ChannelSettings


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookChannel:
    name = "webhook"

    def __init__(self, settings: ChannelSettings) -> None:
        self.settings = settings
        self.client = httpx.Client(timeout=10)

    def send(self, message: Outbound) -> SendResult:
        p = dict(message.payload)
        url, secret = str(p.pop("url")), str(p.pop("_secret", "") or "")
        p.pop("rendered", None)
        body = json.dumps(
            {"message_id": message.message_id, "brand": message.brand, "customer_id": message.customer_id,
             "category": message.category, "data": p},
            ensure_ascii=False, separators=(",", ":"), default=str,
        ).encode()  # fmt: skip
        headers = {"Content-Type": "application/json", "Idempotency-Key": message.idempotency_key}
        if secret:
            headers["X-Siyu-Signature"] = signature(secret, body)
        try:
            response = self.client.post(url, content=body, headers=headers)
        except httpx.HTTPError as error:
            return SendResult("retry", error=f"webhook unreachable: {type(error).__name__}")
        code = response.status_code
        if 200 <= code < 300:
            return SendResult("sent", provider_id=response.headers.get("X-Request-Id"))
        if code in (408, 429) or code >= 500:
            after = response.headers.get("Retry-After")
            return SendResult(
                "retry", error=f"webhook HTTP {code}", retry_after_s=float(after) if after and after.isdigit() else None
            )
        return SendResult("failed", error=f"webhook HTTP {code}")


register_channel("webhook", lambda settings: WebhookChannel(settings.channels))
