"""Messages as people see them (`siyu messages list`, the customer view): PII masked.

The address (phone, e-mail, openid) is masked; the rendered text is kept (it is what the customer
was told), except that an unsubscribe link is shortened — it is a bearer token for one click.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.identity.normalise import mask_value
from siyu.loyalty.accounts import utc
from siyu.messaging.compose import ADDRESS
from siyu.messaging.models import OutboundMessage
from siyu.messaging.sealing import open_payload
from siyu.privacy.crypto import Keyring


def _summary(row: OutboundMessage, ring: Keyring | None) -> dict[str, Any]:
    payload = open_payload(ring, row.payload)
    key, id_type = ADDRESS.get(row.channel, ("to", None))
    address = payload.get(key)
    content = payload if payload.get("rendered") else payload.get("content", {})
    return {
        "id": row.id,
        "brand": row.brand,
        "customer_id": row.customer_id,
        "channel": row.channel,
        "category": row.category,
        "journey": row.journey,
        "step_id": row.step_id,
        "status": row.status,
        "reason": row.reason,
        "to": mask_value(id_type or "url", str(address)) if address and row.channel != "webhook" else address,
        "subject": content.get("subject") or content.get("template_code") or content.get("template_id"),
        "text": content.get("text"),
        "segments": content.get("segments"),
        "attempts": row.attempts,
        "provider_id": row.provider_id,
        "not_before": utc(row.not_before).isoformat(),
        "sent_at": utc(row.sent_at).isoformat() if row.sent_at else None,
        "created_at": utc(row.created_at).isoformat(),
    }


def list_messages(
    session: Session,
    *,
    brand: str | None = None,
    customer_ids: list[str] | None = None,
    journey: str | None = None,
    limit: int = 100,
    ring: Keyring | None,
) -> list[dict[str, Any]]:
    """Newest first, addresses masked; `ring` (the settings' pii_keyring) opens sealed payloads."""
    m = OutboundMessage
    q = select(m).order_by(m.created_at.desc(), m.id.desc()).limit(limit)
    if brand:
        q = q.where(m.brand == brand)
    if customer_ids is not None:
        q = q.where(m.customer_id.in_(customer_ids))
    if journey:
        q = q.where(m.journey == journey)
    return [_summary(r, ring) for r in session.scalars(q)]
