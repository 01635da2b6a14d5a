"""Receiving callbacks (回调接收): check the signature, decrypt, and store the message raw before
WeCom gets its answer. Stored once: the hash of the decrypted content is unique per brand, so
WeCom's redeliveries (it retries when an answer is slow) are no-ops. Writes are group-committed
(siyu.wecom.group_commit), so one fsync serves many callbacks."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from siyu.store.db import Store
from siyu.wecom import xmlmsg
from siyu.wecom.crypto import CallbackCryptoError, WeComCrypto
from siyu.wecom.group_commit import GroupCommit

MAX_BODY = 64 * 1024  # a callback is a few hundred bytes; anything this large is not one


@dataclass(frozen=True)
class Received:
    brand: str
    content_hash: str
    fields: dict[str, Any]
    body: str
    received_at: datetime

    @property
    def event(self) -> str:
        return str(self.fields.get("Event") or self.fields.get("MsgType") or "")

    @property
    def change_type(self) -> str | None:
        return self.fields.get("ChangeType") or None

    @property
    def welcome_code(self) -> str | None:
        if self.fields.get("ChangeType") in ("add_external_contact", "add_half_external_contact"):
            return self.fields.get("WelcomeCode") or None
        return None


def open_callback(
    crypto: WeComCrypto, brand: str, params: dict[str, str], body: bytes, received_at: datetime
) -> Received:
    """Verify and decrypt one POSTed callback; raises CallbackCryptoError when it is not genuine."""
    if len(body) > MAX_BODY:
        raise CallbackCryptoError("callback body too large (回调过大)")
    ciphertext = xmlmsg.envelope(body).get("Encrypt", "")
    plain = crypto.verify_and_decrypt(
        params.get("msg_signature", ""), params.get("timestamp", ""), params.get("nonce", ""), ciphertext
    )
    return Received(brand, hashlib.sha256(plain).hexdigest(), xmlmsg.message(plain), plain.decode(), received_at)


def verify_url(crypto: WeComCrypto, params: dict[str, str]) -> str:
    """URL verification (验证 URL 有效性): the decrypted echostr, to be answered verbatim."""
    echostr = params.get("echostr", "")
    plain = crypto.verify_and_decrypt(
        params.get("msg_signature", ""), params.get("timestamp", ""), params.get("nonce", ""), echostr
    )
    return plain.decode()


_COLUMNS = "brand, content_hash, event, change_type, body, received_at, attempts"
_INSERT = {
    "sqlite": f"INSERT OR IGNORE INTO wecom_callbacks ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, 0)",
    "postgresql": f"INSERT INTO wecom_callbacks ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, 0) "
    "ON CONFLICT (brand, content_hash) DO NOTHING",
}
_CLAIM_COLUMNS = "welcome_code, brand, state, staff_id, external_userid, status, arrived_at"
_CLAIM = {
    "sqlite": f"INSERT OR IGNORE INTO wecom_welcome_sends ({_CLAIM_COLUMNS}) VALUES (?, ?, ?, ?, ?, 'sending', ?)",
    "postgresql": f"INSERT INTO wecom_welcome_sends ({_CLAIM_COLUMNS}) VALUES (%s, %s, %s, %s, %s, 'sending', %s) "
    "ON CONFLICT (welcome_code) DO NOTHING",
}


def db_time(dialect: str, at: datetime) -> object:
    """SQLAlchemy's SQLite DateTime text (naive UTC with microseconds); PostgreSQL takes the datetime."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if dialect == "sqlite" else at


def write_callbacks(connection: Connection, received: list[Received]) -> list[bool]:
    """Insert the callbacks; True for each one new (False: a redelivery, already stored). A new add
    with a WelcomeCode also claims its welcome in the same transaction: only the delivery that
    stored the callback sends the welcome, whichever process received the others."""
    dialect = connection.dialect.name
    new = []
    for r in received:
        at = db_time(dialect, r.received_at)
        inserted = connection.exec_driver_sql(
            _INSERT[dialect], (r.brand, r.content_hash, r.event[:64], r.change_type, r.body, at)
        ).rowcount
        new.append(inserted == 1)
        if inserted == 1 and r.welcome_code:
            f = r.fields
            claim = (
                r.welcome_code,
                r.brand,
                f.get("State") or None,
                f.get("UserID", ""),
                f.get("ExternalUserID", ""),
                at,
            )
            connection.exec_driver_sql(_CLAIM[dialect], claim)
    return new


def store_now(store: Store, received: list[Received]) -> list[bool]:
    with store.engine.begin() as connection:
        return write_callbacks(connection, received)


def callback_writer(store: Store) -> GroupCommit[Received, bool]:
    """Group commit of received callbacks; each future resolves to "new" once the row is durable."""
    return GroupCommit(store, write_callbacks, "siyu-wecom-callbacks")
