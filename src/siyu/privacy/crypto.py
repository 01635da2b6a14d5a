"""PII encryption at rest (个人信息加密存储): AES-256-GCM envelopes under a keyring.

An envelope is ``pii1:<key id>:<base64(nonce ‖ ciphertext ‖ tag)>``. The key id says which key of
the keyring sealed it, so during a rotation readers open old and new envelopes alike while
`siyu keys rotate-pii` re-seals the old ones under the current key. Each purpose (``store``,
``lake``, ``wecom/secrets``) gets its own HKDF-SHA256 subkey, so one leaked subkey opens one kind of
data only; ``context`` (table and column, brand and field) is authenticated, so a ciphertext moved
to another place does not open.

The keyring comes from ``SIYU_PII_KEY`` (one key, id ``0``) or ``SIYU_PII_KEY_FILE`` (JSON:
``{"current": "2027", "hash": "0", "keys": {"0": "…", "2027": "…"}}``). Keyed hashes
(siyu.privacy.hashing) use the ``hash`` key, which rotation never changes: a hash is a match key
stored beside every ciphertext and in tombstones, and re-keying it would break every match.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from siyu.core.errors import SiyuError

PREFIX = "pii1"
ENV_KEY_ID = "0"  # the id of SIYU_PII_KEY; name the old key "0" when moving to a key file
LEGACY_PREFIX = "v1"  # WeCom secrets sealed before the keyring: no key id, any key may open them
_NONCE = 12


class PiiKeyError(SiyuError):
    code = "pii_key_invalid"
    exit_code = 2


class PiiUnreadableError(SiyuError):
    code = "pii_unreadable"
    exit_code = 2


def _subkey(secret: str, purpose: str) -> bytes:
    info = f"siyu/{purpose}/v1".encode()  # "siyu/wecom/secrets/v1" = the key WeCom sealing always used
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret.encode())


@dataclass(frozen=True)
class Keyring:
    """Keys by id: ``current`` seals, every key opens, ``hash_id`` keys the keyed hashes."""

    keys: Mapping[str, str]
    current: str
    hash_id: str
    _aead: dict[tuple[str, str], AESGCM] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in (self.current, self.hash_id):
            if name not in self.keys:
                raise PiiKeyError(f"PII key file names key '{name}' but has no such key under \"keys\" (密钥不存在)")
        if any(":" in kid or not kid for kid in self.keys):
            raise PiiKeyError("PII key ids must be non-empty and contain no ':' (密钥编号无效)")

    @classmethod
    def single(cls, secret: str) -> Keyring:
        return cls({ENV_KEY_ID: secret}, ENV_KEY_ID, ENV_KEY_ID)

    @classmethod
    def load(cls, path: Path) -> Keyring:
        """Read a key file; its errors say what to fix, never the keys."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            reason = exc.__class__.__name__
            raise PiiKeyError(f"cannot read the PII key file {path}: {reason} (无法读取密钥文件)") from exc
        keys = data.get("keys") if isinstance(data, dict) else None
        if not isinstance(keys, dict) or not keys or not all(isinstance(v, str) and v for v in keys.values()):
            raise PiiKeyError(f'PII key file {path} needs "keys": {{"<id>": "<secret>", …}} (密钥文件格式错误)')
        current = data.get("current")
        hash_id = data.get("hash", current if len(keys) == 1 else None)
        if not isinstance(current, str) or not isinstance(hash_id, str):
            raise PiiKeyError(
                f'PII key file {path} needs "current" (the key that seals) and, with several keys, "hash" '
                "(the key of the keyed hashes, never rotated) (密钥文件需要 current 与 hash)"
            )
        return cls(dict(keys), current, hash_id)

    @property
    def hash_key(self) -> str:
        return self.keys[self.hash_id]

    def aead(self, key_id: str, purpose: str) -> AESGCM:
        found = self._aead.get((key_id, purpose))
        if found is None:
            if key_id not in self.keys:
                raise PiiUnreadableError(
                    f"data sealed with PII key '{key_id}', which the keyring no longer holds: add it back to "
                    "SIYU_PII_KEY_FILE until `siyu keys rotate-pii` has finished (缺少旧密钥)"
                )
            found = self._aead[key_id, purpose] = AESGCM(_subkey(self.keys[key_id], purpose))
        return found


def is_sealed(text: str | None) -> bool:
    return text is not None and text.startswith(PREFIX + ":")


def key_id(envelope: str) -> str | None:
    """The id of the key that sealed an envelope; None for clear text."""
    return envelope.split(":", 2)[1] if is_sealed(envelope) else None


def encrypt(ring: Keyring, purpose: str, plaintext: str, context: str = "") -> str:
    nonce = os.urandom(_NONCE)
    body = ring.aead(ring.current, purpose).encrypt(nonce, plaintext.encode(), context.encode())
    return f"{PREFIX}:{ring.current}:{base64.b64encode(nonce + body).decode()}"


def decrypt(ring: Keyring, purpose: str, envelope: str, context: str = "") -> str:
    """Open an envelope (or a legacy ``v1:`` WeCom secret); wrong key or tampering raise
    `PiiUnreadableError`, never return garbage (GCM authenticates every byte and the context)."""
    prefix, _, rest = envelope.partition(":")
    if prefix == PREFIX:
        kid, _, body = rest.partition(":")
        candidates: Iterable[str] = [kid]
    elif prefix == LEGACY_PREFIX:
        body, candidates = rest, list(ring.keys)
    else:
        raise PiiUnreadableError("not a siyu PII envelope (不是加密数据)")
    try:
        raw = base64.b64decode(body, validate=True)
    except ValueError as exc:
        raise PiiUnreadableError("damaged PII envelope (密文已损坏)") from exc
    for kid in candidates:
        try:
            return ring.aead(kid, purpose).decrypt(raw[:_NONCE], raw[_NONCE:], context.encode()).decode()
        except InvalidTag:
            continue
    raise PiiUnreadableError(
        "cannot decrypt: the data was changed or SIYU_PII_KEY / SIYU_PII_KEY_FILE is not the key that sealed it "
        "(无法解密：数据被改动或密钥不符)"
    )


def reseal(ring: Keyring, purpose: str, envelope: str, context: str = "") -> str | None:
    """The envelope under the current key, or None when it already is (rotation skips it)."""
    if key_id(envelope) == ring.current:
        return None
    return encrypt(ring, purpose, decrypt(ring, purpose, envelope, context), context)
