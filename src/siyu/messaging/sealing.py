"""Outbound message payloads sealed at rest: the rendered text and the address (phone, e-mail,
openid) are PII, so `outbound_messages.payload` holds an AES-GCM envelope (siyu.privacy.crypto),
opened only where a message is sent (the dispatcher, for the channel adapters) or listed masked
(siyu.messaging.listing). Rows written before sealing are clear JSON and still read;
`siyu keys rotate-pii` seals and re-seals them (siyu.privacy.rotation).
"""

from __future__ import annotations

import json
from typing import Any

from siyu.privacy.crypto import Keyring, decrypt, encrypt, is_sealed

PURPOSE, CONTEXT = "store", "outbound.payload"


def seal_payload(ring: Keyring | None, payload: dict[str, Any]) -> str:
    """The payload as stored: sealed with `ring` (None only when sealing is off)."""
    text = json.dumps(payload, ensure_ascii=False, default=str)
    return text if ring is None else encrypt(ring, PURPOSE, text, CONTEXT)


def open_payload(ring: Keyring | None, stored: str) -> dict[str, Any]:
    """The payload as written; ones stored before sealing are clear JSON."""
    if not is_sealed(stored):
        return json.loads(stored)  # type: ignore[no-any-return]
    if ring is None:
        raise ValueError("a sealed outbound message needs the PII keyring to be read")
    return json.loads(decrypt(ring, PURPOSE, stored, CONTEXT))  # type: ignore[no-any-return]
