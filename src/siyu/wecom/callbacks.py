"""Receiving callbacks (回调接收): check the signature, decrypt, and store the message raw before
WeCom gets its answer. Stored once: the hash of the decrypted content is unique per brand, so
WeCom's redeliveries (it retries when an answer is slow) are no-ops. Writes are group-committed —
callbacks that arrive while a commit is in flight share the next one — so one fsync serves many."""

from __future__ import annotations

import hashlib
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from siyu.store.db import Store
from siyu.wecom import xmlmsg
from siyu.wecom.crypto import CallbackCryptoError, WeComCrypto

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


def _row(dialect: str, r: Received) -> tuple[object, ...]:
    at: object = r.received_at
    if dialect == "sqlite":  # SQLAlchemy's SQLite DateTime text: naive UTC with microseconds
        at = r.received_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return (r.brand, r.content_hash, r.event[:64], (r.change_type or None), r.body, at)


def store_now(store: Store, received: list[Received]) -> None:
    dialect = store.engine.dialect.name
    with store.engine.begin() as connection:
        connection.exec_driver_sql(_INSERT[dialect], [_row(dialect, r) for r in received])


class CallbackWriter:
    """Group commit of received callbacks; `submit` resolves once the row is durable."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._queue: queue.SimpleQueue[tuple[Received, Future[None]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, received: Received) -> Future[None]:
        done: Future[None] = Future()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="siyu-wecom-callbacks", daemon=True)
                self._thread.start()
        self._queue.put((received, done))
        return done

    def _run(self) -> None:
        while True:
            waiting = [self._queue.get()]
            while True:
                try:
                    waiting.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                store_now(self.store, [r for r, _ in waiting])
            except Exception as exc:  # nothing committed: every waiting request answers 5xx, WeCom retries
                for _, done in waiting:
                    done.set_exception(exc)
            else:
                for _, done in waiting:
                    done.set_result(None)
