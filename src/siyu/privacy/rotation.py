"""`siyu keys rotate-pii` (密钥轮换): re-seal every PII envelope under the keyring's current key.

No downtime: readers open envelopes of any key the keyring holds, so services keep running while
rotation works through the store in small transactions (each re-seals a chunk and commits) and the
lake one table at a time (siyu.privacy.lake_rotation: one Delta overwrite commit per table). Rows
written meanwhile are sealed under the current key already. Clear rows left from before encryption
are sealed too. Run it again after a crash: it skips what is current. When it reports nothing left,
the old key can leave the key file (never the `hash` key: keyed hashes depend on it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import InstrumentedAttribute

from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.ingest import inbox
from siyu.messaging import sealing as outbound
from siyu.messaging.models import OutboundMessage
from siyu.privacy import sealed_rows
from siyu.privacy.crypto import PREFIX, Keyring, encrypt, is_sealed, reseal
from siyu.privacy.lake_rotation import rotate_lake
from siyu.store.models import InboxMessage, QuarantineRow
from siyu.wecom.models import WecomConfig
from siyu.wecom.sealing import PURPOSE as WECOM_PURPOSE

CHUNK = 500
WECOM_SEALED = (WecomConfig.token_sealed, WecomConfig.aes_key_sealed, WecomConfig.secret_sealed)


def _stale(column: InstrumentedAttribute[Any], ring: Keyring) -> Any:
    return ~column.startswith(f"{PREFIX}:{ring.current}:")


def _quarantine(ring: Keyring, row: QuarantineRow) -> None:
    if is_sealed(row.raw):
        row.raw = reseal(ring, sealed_rows.PURPOSE, row.raw, sealed_rows.QUARANTINE) or row.raw
    else:  # clear JSON from before encryption: seal it, and add its match hashes
        row.match_hashes = sealed_rows.match_hashes(ring.hash_key, json.loads(row.raw))
        row.raw = encrypt(ring, sealed_rows.PURPOSE, row.raw, sealed_rows.QUARANTINE)


def _inbox(ring: Keyring, row: InboxMessage) -> None:
    if is_sealed(row.payload):
        row.payload = reseal(ring, inbox.PURPOSE, row.payload, inbox.CONTEXT) or row.payload
    else:
        row.payload = encrypt(ring, inbox.PURPOSE, row.payload, inbox.CONTEXT)


def _outbound(ring: Keyring, row: OutboundMessage) -> None:
    if is_sealed(row.payload):
        row.payload = reseal(ring, outbound.PURPOSE, row.payload, outbound.CONTEXT) or row.payload
    else:
        row.payload = encrypt(ring, outbound.PURPOSE, row.payload, outbound.CONTEXT)


def _wecom(ring: Keyring, row: WecomConfig) -> None:
    for field in ("token", "aes_key", "secret"):
        column = f"{field}_sealed"
        resealed = reseal(ring, WECOM_PURPOSE, getattr(row, column), f"{row.brand}/{field}")
        if resealed is not None:
            setattr(row, column, resealed)


def rotate_store(app: App, actor: Actor) -> dict[str, int]:
    """Re-seal the store's envelopes (quarantine rows, inbox payloads, outbound messages, WeCom secrets), a chunk per
    transaction; rows re-sealed per table."""
    ring = app.settings.pii_keyring
    done = {"quarantine_rows": 0, "inbox": 0, "outbound_messages": 0, "wecom_configs": 0}
    jobs: list[tuple[str, Any, Any, Any, Callable[[Keyring, Any], None]]] = [
        ("quarantine_rows", QuarantineRow, QuarantineRow.id, _stale(QuarantineRow.raw, ring), _quarantine),
        ("inbox", InboxMessage, InboxMessage.id, _stale(InboxMessage.payload, ring), _inbox),
        ("outbound_messages", OutboundMessage, OutboundMessage.id, _stale(OutboundMessage.payload, ring), _outbound),
        (
            "wecom_configs",
            WecomConfig,
            WecomConfig.brand,
            or_(*(_stale(c, ring) for c in WECOM_SEALED)),
            _wecom,
        ),
    ]
    for name, model, key, stale, reseal_row in jobs:
        after: Any = None
        while True:
            with app.store.begin(actor) as uow:
                query = select(model).where(stale).order_by(key).limit(CHUNK)
                if after is not None:  # keyset paging: a row that fails to change is not retried forever
                    query = query.where(key > after)
                rows = list(uow.session.scalars(query))
                for row in rows:
                    reseal_row(ring, row)
            if not rows:
                break
            done[name] += len(rows)
            after = getattr(rows[-1], key.key)
    return done


def rotate_pii(app: App, actor: Actor) -> dict[str, Any]:
    """Rotate store and lake to the current key; one audit row `pii.rotate` with what changed."""
    ring = app.settings.pii_keyring
    report: dict[str, Any] = {"key": ring.current, "store": rotate_store(app, actor), "lake": rotate_lake(app)}
    with app.store.begin(actor) as uow:
        uow.audit("pii.rotate", "pii_key", ring.current, after=report)
    return report
