"""Delivery receipts (回执): Aliyun's SmsReport push updates the message it names by `out_id`.

The push carries no signature, so the receipt URL carries a token derived from SIYU_PII_KEY
(`siyu messages receipt-url` prints the URL to configure in the Aliyun console). A receipt moves a
`sent` (or still `sending`) message to `delivered` or `failed` (with the carrier's err_code); a
receipt for an unknown or already final message changes nothing, so a re-pushed batch is harmless.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from typing import Any

from sqlalchemy import update

from siyu.messaging.models import OutboundMessage
from siyu.store.db import Store


def receipt_token(secret: str) -> str:
    return hmac.new(secret.encode(), b"siyu-sms-receipts-v1", hashlib.sha256).hexdigest()[:32]


def apply_sms_receipts(store: Store, reports: list[dict[str, Any]], now: dt.datetime) -> int:
    """Apply a batch of SmsReport items; returns how many messages changed."""
    changed = 0
    m = OutboundMessage
    with store.write_unit() as session:
        for r in reports:
            out_id = str(r.get("out_id") or "").partition("-")[0]  # siyu.messaging.channels.sms.out_id
            if not out_id.isdigit():
                continue
            ok = r.get("success") in (True, "true", "True", 1)
            values: dict[str, Any] = {"status": "delivered" if ok else "failed", "updated_at": now}
            if not ok:
                values["reason"] = f"receipt: {r.get('err_code', '')} {r.get('err_msg', '')}".strip()[:400]
            done = session.execute(
                update(m)
                .where(m.id == int(out_id), m.channel == "sms", m.status.in_(("sent", "sending")))
                .values(**values)
            )
            changed += int(done.rowcount or 0)  # type: ignore[attr-defined]
    return changed
