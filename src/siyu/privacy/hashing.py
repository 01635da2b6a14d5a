"""Keyed hashes of personal identifiers (HMAC-SHA256 under ``SIYU_PII_KEY``).

One function, so One-ID merge records, erasure tombstones and encrypted-column match keys all
hash a value the same way: ``keyed_hash(key, "phone", "13800000000")`` is the hash of the
*normalised* value of that kind, never of raw input.
"""

from __future__ import annotations

import hashlib
import hmac


def keyed_hash(pii_key: str | bytes, kind: str, value: str) -> str:
    """Hex HMAC-SHA256 of ``kind:value``; the same as One-ID's merge-record ``id_hash``."""
    key = pii_key.encode() if isinstance(pii_key, str) else pii_key
    return hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
