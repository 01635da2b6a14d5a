"""Per-brand WeCom configuration (`siyu wecom configure`): corp id, callback token, EncodingAESKey
and the customer-contact secret (客户联系 Secret). Secrets are sealed in the store and never
printed; `masked` is what `siyu wecom show` prints."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from siyu.core.errors import NotFoundError
from siyu.privacy.crypto import Keyring
from siyu.store.uow import UnitOfWork
from siyu.wecom.crypto import WeComCrypto
from siyu.wecom.models import WecomConfig
from siyu.wecom.sealing import seal, unseal


@dataclass(frozen=True)
class CorpSettings:
    brand: str
    corp_id: str
    token: str
    aes_key: str
    secret: str

    def crypto(self) -> WeComCrypto:
        return WeComCrypto(self.token, self.aes_key, self.corp_id)


def _mask(value: str) -> str:
    return f"{value[:2]}…{value[-2:]} ({len(value)} chars)" if len(value) > 6 else "****"


def do_configure(uow: UnitOfWork, ring: Keyring, settings: CorpSettings) -> bool:
    """Store (or replace) a brand's WeCom configuration; True when it is new. Audited without secrets."""
    settings.crypto()  # refuses a malformed EncodingAESKey before anything is stored
    row = uow.session.get(WecomConfig, settings.brand)
    created = row is None
    sealed = {f: seal(ring, getattr(settings, f), f"{settings.brand}/{f}") for f in ("token", "aes_key", "secret")}
    if row is None:
        row = WecomConfig(brand=settings.brand)
        uow.session.add(row)
    row.corp_id = settings.corp_id
    row.token_sealed, row.aes_key_sealed, row.secret_sealed = sealed["token"], sealed["aes_key"], sealed["secret"]
    row.updated_at = uow.now
    uow.audit(
        "wecom.configure", "wecom_config", settings.brand, brand=settings.brand, after={"corp_id": settings.corp_id}
    )
    return created


def load(session: Session, ring: Keyring, brand: str) -> CorpSettings:
    row = session.get(WecomConfig, brand)
    if row is None:
        raise NotFoundError(
            f"WeCom is not configured for brand '{brand}': run siyu wecom configure --brand {brand} … (未配置企业微信)"
        )
    return CorpSettings(
        brand=brand,
        corp_id=row.corp_id,
        token=unseal(ring, row.token_sealed, f"{brand}/token"),
        aes_key=unseal(ring, row.aes_key_sealed, f"{brand}/aes_key"),
        secret=unseal(ring, row.secret_sealed, f"{brand}/secret"),
    )


def masked(settings: CorpSettings) -> dict[str, str]:
    return {
        "brand": settings.brand,
        "corp_id": settings.corp_id,
        "token": _mask(settings.token),
        "aes_key": _mask(settings.aes_key),
        "secret": _mask(settings.secret),
    }
