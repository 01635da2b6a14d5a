"""Aliyun RPC-style request signing (签名机制, signature version 1.0, HMAC-SHA1).

1. Every parameter but Signature, sorted by name; names and values percent-encoded per RFC 3986
   (UTF-8, uppercase hex, space → %20, `*` → %2A, `~` kept) and joined as `k=v&…`;
2. StringToSign = METHOD + "&" + encode("/") + "&" + encode(canonicalised query);
3. Signature = Base64(HMAC-SHA1(AccessKeySecret + "&", StringToSign)).

The fake gateway (siyu.fakes.aliyun_sms) verifies with the same functions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote


def percent_encode(value: str) -> str:
    return quote(value, safe="-_.~")


def string_to_sign(method: str, params: dict[str, str]) -> str:
    canonical = "&".join(
        f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items()) if k != "Signature"
    )
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical)}"


def sign(method: str, params: dict[str, str], secret: str) -> str:
    digest = hmac.new(f"{secret}&".encode(), string_to_sign(method, params).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()
