"""PII envelopes: round trip, wrong key, tampering, rotation keyring, legacy WeCom secrets."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from siyu.config import Settings
from siyu.privacy.crypto import Keyring, PiiKeyError, PiiUnreadableError, decrypt, encrypt, key_id, reseal
from siyu.wecom.sealing import SealedSecretError, seal, unseal

RING = Keyring.single("k-one")


def test_round_trip_names_the_key_and_hides_the_value() -> None:
    sealed = encrypt(RING, "store", "13800138000", "quarantine_rows.raw")
    assert sealed.startswith("pii1:0:") and "13800138000" not in sealed
    assert key_id(sealed) == "0"
    assert decrypt(RING, "store", sealed, "quarantine_rows.raw") == "13800138000"
    assert encrypt(RING, "store", "13800138000") != encrypt(RING, "store", "13800138000")  # fresh nonce


def test_wrong_key_purpose_or_context_is_refused() -> None:
    sealed = encrypt(RING, "store", "张三", "a")
    with pytest.raises(PiiUnreadableError):
        decrypt(Keyring.single("k-two"), "store", sealed, "a")
    with pytest.raises(PiiUnreadableError):
        decrypt(RING, "lake", sealed, "a")  # another purpose has another subkey
    with pytest.raises(PiiUnreadableError):
        decrypt(RING, "store", sealed, "b")  # moved to another column


def test_tampering_is_detected() -> None:
    sealed = encrypt(RING, "store", "alice@example.com")
    head, body = sealed.rsplit(":", 1)
    raw = bytearray(base64.b64decode(body))
    raw[15] ^= 1
    with pytest.raises(PiiUnreadableError):
        decrypt(RING, "store", f"{head}:{base64.b64encode(bytes(raw)).decode()}")
    with pytest.raises(PiiUnreadableError):
        decrypt(RING, "store", head + ":not base64!")


def test_rotation_keyring_reads_old_and_seals_new(tmp_path: Path) -> None:
    old = encrypt(RING, "store", "13800138000")
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"current": "2027", "hash": "0", "keys": {"0": "k-one", "2027": "k-new"}}))
    ring = Keyring.load(path)
    assert decrypt(ring, "store", old) == "13800138000"  # the old key id still opens
    new = reseal(ring, "store", old)
    assert new is not None and key_id(new) == "2027" and decrypt(ring, "store", new) == "13800138000"
    assert reseal(ring, "store", new) is None  # already current: rotation skips it
    with pytest.raises(PiiUnreadableError, match="no longer holds"):
        decrypt(Keyring({"2027": "k-new"}, "2027", "2027"), "store", old)
    # the hash key stays the old SIYU_PII_KEY, so keyed hashes and tokens survive the rotation
    assert Settings(pii_key_file=path).pii_key == "k-one"


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        {"current": "a"},
        {"current": "b", "keys": {"a": "s3cret-a"}},
        {"current": "a", "keys": {"a": "s3cret-a", "b": "s3cret-b"}},
    ],
)
def test_bad_key_files_say_what_to_fix(tmp_path: Path, content: object) -> None:
    path = tmp_path / "keys.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(PiiKeyError) as err:
        Keyring.load(path)
    assert "s3cret" not in str(err.value)  # never echoes a key


def test_wecom_secrets_use_the_keyring_and_old_v1_secrets_still_open() -> None:
    # What siyu.wecom.sealing wrote before the keyring existed (v1: HKDF of SIYU_PII_KEY, no key id).
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"siyu/wecom/secrets/v1").derive(b"k-one")
    nonce = os.urandom(12)
    legacy = "v1:" + base64.b64encode(nonce + AESGCM(key).encrypt(nonce, b"corp-secret", b"acme/secret")).decode()
    assert unseal(RING, legacy, "acme/secret") == "corp-secret"
    fresh = seal(RING, "corp-secret", "acme/secret")
    assert key_id(fresh) == "0" and unseal(RING, fresh, "acme/secret") == "corp-secret"
    with pytest.raises(SealedSecretError):
        unseal(RING, fresh, "other/secret")
