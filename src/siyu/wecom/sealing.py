"""Secrets at rest (企业微信密钥加密存储): AES-256-GCM under a key derived from SIYU_PII_KEY with
HKDF, so the store alone never reveals a corp secret, token or EncodingAESKey. Rotating
SIYU_PII_KEY means running `siyu wecom configure` again."""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from siyu.core.errors import SiyuError

VERSION = "v1"


class SealedSecretError(SiyuError):
    code = "wecom_secret_unreadable"
    exit_code = 2


def _key(pii_key: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"siyu/wecom/secrets/v1").derive(pii_key.encode())


def seal(pii_key: str, plaintext: str, context: str) -> str:
    """`context` (brand and field) is authenticated, so a sealed value cannot be moved to another row."""
    nonce = os.urandom(12)
    sealed = AESGCM(_key(pii_key)).encrypt(nonce, plaintext.encode(), context.encode())
    return f"{VERSION}:{base64.b64encode(nonce + sealed).decode()}"


def unseal(pii_key: str, sealed: str, context: str) -> str:
    version, _, body = sealed.partition(":")
    try:
        raw = base64.b64decode(body)
        if version != VERSION:
            raise ValueError(version)
        return AESGCM(_key(pii_key)).decrypt(raw[:12], raw[12:], context.encode()).decode()
    except (InvalidTag, ValueError) as exc:
        raise SealedSecretError(
            "cannot decrypt the stored WeCom secrets: SIYU_PII_KEY changed? run `siyu wecom configure` again "
            "(密钥无法解密，请重新配置)"
        ) from exc
