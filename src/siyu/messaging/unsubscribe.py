"""Unsubscribe links (退订链接): a signed token naming brand, customer, purpose and message — no PII.

`GET {SIYU_PUBLIC_URL}/u/{token}` (siyu.api.routes.messaging) shows a one-button page; its POST (or
a mail client's RFC 8058 one-click POST) verifies the HMAC-SHA256 signature and records a withdrawal
in the consent ledger (source `unsubscribe_link`, evidence: the message id). The key is derived
from SIYU_PII_KEY, so no extra secret needs configuring; a link works until that key changes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

from siyu.core.errors import SiyuError


class BadUnsubscribeTokenError(SiyuError):
    code = "bad_unsubscribe_token"
    exit_code = 2


@dataclass(frozen=True)
class Unsubscribe:
    brand: str
    customer_id: str
    purpose: str
    message_id: int


def _key(secret: str) -> bytes:
    return hmac.new(secret.encode(), b"siyu-unsubscribe-v1", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(secret: str, u: Unsubscribe) -> str:
    body = _b64(json.dumps([u.brand, u.customer_id, u.purpose, u.message_id], separators=(",", ":")).encode())
    sig = _b64(hmac.new(_key(secret), body.encode(), hashlib.sha256).digest()[:16])
    return f"{body}.{sig}"


def read_token(secret: str, token: str) -> Unsubscribe:
    body, _, sig = token.partition(".")
    good = _b64(hmac.new(_key(secret), body.encode(), hashlib.sha256).digest()[:16])
    if not sig or not hmac.compare_digest(sig, good):
        raise BadUnsubscribeTokenError("this unsubscribe link is not valid (退订链接无效)")
    try:
        brand, customer_id, purpose, message_id = json.loads(_unb64(body))
    except (ValueError, TypeError) as error:
        raise BadUnsubscribeTokenError("this unsubscribe link is not valid (退订链接无效)") from error
    return Unsubscribe(str(brand), str(customer_id), str(purpose), int(message_id))


def unsubscribe_url(public_url: str, secret: str, u: Unsubscribe) -> str:
    return f"{public_url.rstrip('/')}/u/{make_token(secret, u)}"
