"""Secrets at rest (企业微信密钥加密存储): corp secret, token and EncodingAESKey are PII-keyring
envelopes (siyu.privacy.crypto, purpose ``wecom/secrets``), so the store alone never reveals them.
Secrets sealed before the keyring (``v1:…``, no key id) still open; `siyu keys rotate-pii` re-seals
them under the current key."""

from __future__ import annotations

from siyu.core.errors import SiyuError
from siyu.privacy.crypto import Keyring, PiiUnreadableError, decrypt, encrypt

PURPOSE = "wecom/secrets"


class SealedSecretError(SiyuError):
    code = "wecom_secret_unreadable"
    exit_code = 2


def seal(ring: Keyring, plaintext: str, context: str) -> str:
    """`context` (brand and field) is authenticated, so a sealed value cannot be moved to another row."""
    return encrypt(ring, PURPOSE, plaintext, context)


def unseal(ring: Keyring, sealed: str, context: str) -> str:
    try:
        return decrypt(ring, PURPOSE, sealed, context)
    except PiiUnreadableError as exc:
        raise SealedSecretError(
            f"cannot decrypt the stored WeCom secrets ({exc}): restore the PII key that sealed them, or run "
            "`siyu wecom configure` again (密钥无法解密，请重新配置)"
        ) from exc
