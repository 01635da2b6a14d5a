"""Rows of personal data kept in the store as one sealed JSON text (quarantine rows' raw data):
the text is an envelope of siyu.privacy.crypto (purpose ``store``), and beside it the keyed hashes
of the row's phones and e-mails, so erasure and look-ups find a person's rows without opening any.

Rows written before encryption (clear JSON) still read; `siyu keys rotate-pii` seals them.
"""

from __future__ import annotations

import json
from typing import Any

from siyu.identity.normalise import mask_value, normalise_identifier
from siyu.privacy.crypto import Keyring, decrypt, encrypt, is_sealed
from siyu.privacy.hashing import keyed_hash

PURPOSE = "store"
QUARANTINE = "quarantine_rows.raw"  # the authenticated context of a quarantine row's envelope
# Columns of the canonical schema (and Segment traits) that hold personal information.
PII_COLUMNS = {"phone": "phone", "mobile": "phone", "email": "email", "name": "name", "address": "address",
               "birthday": "birthday", "id_value": "id_value", "external_userid": "id", "unionid": "id",
               "openid": "id", "member_no": "member_no"}  # fmt: skip
MATCHED = ("phone", "email")  # the kinds a person is looked up by (siyu.privacy.hashing)


def seal(ring: Keyring | None, row: dict[str, Any], context: str) -> str:
    """The row as JSON, sealed under the current key; clear JSON when encryption is off (`ring` None)."""
    text = json.dumps(row, ensure_ascii=False)
    return text if ring is None else encrypt(ring, PURPOSE, text, context)


def open_row(ring: Keyring, stored: str, context: str) -> dict[str, Any]:
    opened = decrypt(ring, PURPOSE, stored, context) if is_sealed(stored) else stored
    loaded: dict[str, Any] = json.loads(opened)
    return loaded


def match_hashes(hash_key: str, row: dict[str, Any]) -> str:
    """Space-separated keyed hashes of the row's normalised phones and e-mails ('' when none)."""
    found: set[tuple[str, str]] = set()
    for column, kind in (("phone", "phone"), ("mobile", "phone"), ("email", "email")):
        if isinstance(row.get(column), str):
            found.add((kind, row[column]))
    if row.get("id_type") in MATCHED and isinstance(row.get("id_value"), str):
        found.add((row["id_type"], row["id_value"]))
    hashes = set()
    for kind, raw in found:
        normal = normalise_identifier(kind, raw)
        if normal is not None and normal[0] in MATCHED:
            hashes.add(keyed_hash(hash_key, normal[0], normal[1]))
    return " ".join(sorted(hashes))


def masked(row: dict[str, Any]) -> dict[str, Any]:
    """The row for display without a reveal: PII columns masked (138****5678, a***@x.com)."""
    kind_of_value = str(row.get("id_type") or "id")
    out = {}
    for column, value in row.items():
        kind = PII_COLUMNS.get(column)
        if kind is None or not isinstance(value, str) or not value:
            out[column] = value
        elif kind == "birthday":
            out[column] = value[:4] + "-**-**"
        else:
            out[column] = mask_value(kind_of_value if kind == "id_value" else kind, value)
    return out
