"""The WeCom callback encryption (企业微信回调加解密), as documented by WeCom:

- `msg_signature` = SHA1 of the lexically sorted, concatenated (token, timestamp, nonce, ciphertext);
- AES-256-CBC, key = base64-decode(EncodingAESKey + "="), IV = the key's first 16 bytes;
- plaintext = 16 random bytes + 4-byte big-endian length of the message + message + receiveid
  (the corp id), PKCS#7-padded to 32-byte blocks (not AES's 16), base64 on the wire.

Pure: no I/O. Written on `cryptography` rather than depending on wechatpy (see docs/libraries.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from siyu.core.errors import SiyuError

BLOCK = 32  # WeCom pads to 32-byte blocks


class CallbackCryptoError(SiyuError):
    """A callback that is not ours: bad signature, undecryptable, or for another corp."""

    code = "wecom_bad_callback"
    exit_code = 2


def signature(token: str, timestamp: str, nonce: str, ciphertext: str) -> str:
    return hashlib.sha1("".join(sorted((token, timestamp, nonce, ciphertext))).encode()).hexdigest()  # noqa: S324


def _pad(data: bytes) -> bytes:
    n = BLOCK - len(data) % BLOCK
    return data + bytes([n]) * n


def _unpad(data: bytes) -> bytes:
    n = data[-1] if data else 0
    if not 1 <= n <= BLOCK or data[-n:] != bytes([n]) * n:
        raise CallbackCryptoError("bad padding: wrong EncodingAESKey? (解密失败)")
    return data[:-n]


class WeComCrypto:
    """Sign, verify, encrypt and decrypt callbacks for one (token, EncodingAESKey, corp id)."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        try:
            key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except binascii.Error:
            key = b""
        if len(encoding_aes_key) != 43 or len(key) != 32:
            raise CallbackCryptoError(
                "EncodingAESKey must be the 43 characters WeCom shows (EncodingAESKey 应为 43 位)"
            )
        self.token = token
        self.key = key
        self.receive_id = receive_id

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16]))

    def verify(self, msg_signature: str, timestamp: str, nonce: str, ciphertext: str) -> None:
        expected = signature(self.token, timestamp, nonce, ciphertext)
        if not hmac.compare_digest(expected, msg_signature.lower()):
            raise CallbackCryptoError("bad msg_signature (签名错误)")

    def encrypt(self, message: bytes, random16: Callable[[], bytes] = lambda: os.urandom(16)) -> str:
        plain = random16() + struct.pack(">I", len(message)) + message + self.receive_id.encode()
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(_pad(plain)) + encryptor.finalize()).decode()

    def decrypt(self, ciphertext: str) -> bytes:
        try:
            raw = base64.b64decode(ciphertext, validate=True)
        except binascii.Error as exc:
            raise CallbackCryptoError("ciphertext is not base64 (密文格式错误)") from exc
        if not raw or len(raw) % 16:
            raise CallbackCryptoError("ciphertext length is not a multiple of the AES block (密文长度错误)")
        decryptor = self._cipher().decryptor()
        plain = _unpad(decryptor.update(raw) + decryptor.finalize())
        if len(plain) < 20:
            raise CallbackCryptoError("decrypted message too short (解密结果过短)")
        (length,) = struct.unpack(">I", plain[16:20])
        message, receive_id = plain[20 : 20 + length], plain[20 + length :]
        if len(message) != length or receive_id.decode(errors="replace") != self.receive_id:
            raise CallbackCryptoError("callback is for another corp id (CorpID 不匹配)")
        return message

    def verify_and_decrypt(self, msg_signature: str, timestamp: str, nonce: str, ciphertext: str) -> bytes:
        self.verify(msg_signature, timestamp, nonce, ciphertext)
        return self.decrypt(ciphertext)

    def seal(self, message: bytes, timestamp: str, nonce: str) -> tuple[str, str]:
        """(ciphertext, msg_signature) for sending a callback (the fake) or a passive reply."""
        ciphertext = self.encrypt(message)
        return ciphertext, signature(self.token, timestamp, nonce, ciphertext)
