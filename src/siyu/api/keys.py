"""API keys (API 密钥): created once, shown once, stored only as a SHA-256 hash, bound to a brand.

Scopes: `ingest` (write events and rows), `read` (customers, metrics, loyalty balances), `loyalty`
(enrol members, redeem points, issue and redeem coupons, points-mall orders), `admin` (everything of its
brand), and `pii`, which adds unmasked phone / e-mail / name to whatever the key may read. A key is
a 256-bit random secret, so a plain SHA-256 (not a slow password hash) is the right digest: nothing
to brute-force, and verification stays cheap on the ingest path.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from siyu.bootstrap import App
from siyu.core.errors import NotFoundError, SiyuError
from siyu.ingest import registry
from siyu.store.models import ApiKey
from siyu.store.uow import UnitOfWork

SCOPES = ("ingest", "read", "loyalty", "admin", "pii")
# The scopes `admin` includes; `pii` is only ever granted explicitly.
ADMIN_INCLUDES = frozenset({"ingest", "read", "loyalty"})
KEY_PREFIX = "sk_siyu_"
# A revoked key keeps working in a process for at most this long (verified keys are cached).
CACHE_SECONDS = 2.0


class BadScopeError(SiyuError):
    code = "bad_scope"
    exit_code = 2


@dataclass(frozen=True)
class KeyInfo:
    id: str
    brand: str
    scopes: frozenset[str]
    source: str | None
    rate_limit: int | None
    staff_id: str | None = None  # a guide workbench key: only this staff member's customers and tasks
    store: str | None = None  # a store-bound key: only this store's customers (the store manager's scope)

    def allows(self, scope: str) -> bool:
        """`admin` includes `ingest`, `read` and `loyalty`; `pii` is only ever granted explicitly."""
        return scope in self.scopes or (scope in ADMIN_INCLUDES and "admin" in self.scopes)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_scopes(values: list[str]) -> frozenset[str]:
    """Scopes from repeated options and/or comma-separated lists: `--scope read --scope pii`, `read,pii`."""
    scopes = frozenset(s.strip() for v in values for s in v.split(",") if s.strip())
    unknown = sorted(scopes - set(SCOPES))
    if unknown or not scopes & {"ingest", "read", "loyalty", "admin"}:
        raise BadScopeError(
            f"--scope {','.join(sorted(scopes)) or '(none)'}: choose ingest, read, loyalty or admin "
            "(plus pii if needed)"
            f"{'; unknown: ' + ', '.join(unknown) if unknown else ''} (权限范围无效)"
        )
    return scopes


def do_create_key(
    uow: UnitOfWork,
    brand: str,
    scopes: frozenset[str],
    source: str | None = None,
    name: str | None = None,
    rate_limit: int | None = None,
    *,
    default_timezone: str = "Asia/Shanghai",
    staff_id: str | None = None,
    store: str | None = None,
) -> tuple[str, KeyInfo]:
    """A new key for `brand` (registered if new). Returns the secret — the only time it exists."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = str(uuid.uuid4())
    registry.ensure_brands(uow.session, [brand], default_timezone)
    key = ApiKey(
        id=key_id,
        brand=brand,
        scopes=" ".join(sorted(scopes)),
        source=source,
        key_hash=digest(secret),
        prefix=secret[: len(KEY_PREFIX) + 4],
        name=name,
        rate_limit=rate_limit,
        created_at=uow.now,
        staff_id=staff_id,
        store_code=store,
    )
    uow.session.add(key)
    uow.audit("key.create", "api_key", key_id, brand=brand, after=_audited(key))
    return secret, KeyInfo(key_id, brand, scopes, source, rate_limit, staff_id, store)


def do_revoke_key(uow: UnitOfWork, key_id: str) -> dict[str, Any]:
    key = uow.session.get(ApiKey, key_id)
    if key is None:
        raise NotFoundError(f"no API key with id {key_id!r} (密钥不存在); see `siyu keys list`")
    if key.revoked_at is None:
        before = _audited(key)
        key.revoked_at = uow.now
        uow.audit("key.revoke", "api_key", key_id, brand=key.brand, before=before, after=_audited(key))
    return _public(key)


def _audited(key: ApiKey) -> dict[str, Any]:
    """What the audit trail keeps of a key: never the secret or its hash. Its name is a label, kept
    as `label` (the trail masks values under `name`, a person's name)."""
    kept = {k: v for k, v in _public(key).items() if k not in ("id", "brand", "created_at", "name")}
    return {**kept, "label": key.name}


def list_keys(app: App, brand: str | None = None) -> list[dict[str, Any]]:
    with app.store.unit_of_work() as session:
        query = select(ApiKey).order_by(ApiKey.created_at)
        if brand:
            query = query.where(ApiKey.brand == brand)
        return [_public(k) for k in session.scalars(query)]


def _public(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "brand": key.brand,
        "scopes": key.scopes.split(),
        "source": key.source,
        "prefix": key.prefix,
        "name": key.name,
        "rate_limit": key.rate_limit,
        "staff_id": key.staff_id,
        "store": key.store_code,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    }


class KeyVerifier:
    """Looks secrets up by hash, with a short cache so the ingest path does not query per request."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._cache: dict[str, tuple[float, KeyInfo | None]] = {}

    def verify(self, secret: str) -> KeyInfo | None:
        hashed = digest(secret)
        now = time.monotonic()
        hit = self._cache.get(hashed)
        if hit and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        with self.app.store.unit_of_work() as session:
            key = session.scalar(select(ApiKey).where(ApiKey.key_hash == hashed, ApiKey.revoked_at.is_(None)))
            info = (
                KeyInfo(
                    key.id,
                    key.brand,
                    frozenset(key.scopes.split()),
                    key.source,
                    key.rate_limit,
                    key.staff_id,
                    key.store_code,
                )
                if key
                else None
            )
        if len(self._cache) > 10_000:  # unknown secrets must not grow the cache without bound
            self._cache.clear()
        self._cache[hashed] = (now, info)
        return info
