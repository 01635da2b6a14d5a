"""Store tables of the WeCom domain (企业微信): per-brand configuration (secrets sealed), callbacks
as received, welcome messages and their sends, channel QR codes, the follow/group relations WeCom
told us about, and customer transfers (客户继承)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.store.models import Base

Id = BigInteger().with_variant(Integer, "sqlite")


class WecomConfig(Base):
    """One WeCom corp per brand. `*_sealed` hold AES-GCM ciphertexts (siyu.wecom.sealing)."""

    __tablename__ = "wecom_configs"
    brand: Mapped[str] = mapped_column(String(64), primary_key=True)
    corp_id: Mapped[str] = mapped_column(String(64))
    token_sealed: Mapped[str] = mapped_column(Text)
    aes_key_sealed: Mapped[str] = mapped_column(Text)
    secret_sealed: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class WecomCallback(Base):
    """A callback as decrypted, stored before it is answered; `content_hash` makes a redelivery a no-op."""

    __tablename__ = "wecom_callbacks"
    __table_args__ = (
        UniqueConstraint("brand", "content_hash", name="uq_wecom_callbacks_hash"),
        Index("ix_wecom_callbacks_pending", "processed_at", "id"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    brand: Mapped[str] = mapped_column(String(64))
    content_hash: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(64))
    change_type: Mapped[str | None] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)  # the decrypted XML
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    processed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(400))


class WecomWelcome(Base):
    """The welcome message (欢迎语) of a channel code (`state`; "" = the brand's default)."""

    __tablename__ = "wecom_welcomes"
    brand: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(30), primary_key=True)
    content: Mapped[str] = mapped_column(Text)  # JSON: text, link, miniprogram, image
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class WecomWelcomeSend(Base):
    """One send per WelcomeCode (a code is single-use and lives 20 s): the claim row is the lock."""

    __tablename__ = "wecom_welcome_sends"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    welcome_code: Mapped[str] = mapped_column(String(200), unique=True)
    brand: Mapped[str] = mapped_column(String(64))
    state: Mapped[str | None] = mapped_column(String(30))
    staff_id: Mapped[str] = mapped_column(String(64))
    external_userid: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # sending | sent | failed | expired | no_template
    errcode: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(400))
    arrived_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    latency_ms: Mapped[int | None] = mapped_column(Integer)  # callback arrival → the send call
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class WecomQrCode(Base):
    """A channel QR code (渠道活码): `state` maps adds to channel, store, guides and campaign."""

    __tablename__ = "wecom_qrcodes"
    brand: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(30), primary_key=True)
    staff_ids: Mapped[str] = mapped_column(String(2000))  # comma-separated WeCom userids
    store_code: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(64))
    campaign: Mapped[str | None] = mapped_column(String(64))
    exclusive: Mapped[bool] = mapped_column(Boolean, default=False)
    config_id: Mapped[str] = mapped_column(String(128))
    qr_code: Mapped[str] = mapped_column(String(1000))
    png: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class WecomRelation(Base):
    """A friend (`friend`: counterpart = staff userid) or group (`group`: counterpart = chat id)
    relation as WeCom reported it; effective-dated. The lake gets the same as `relations` rows."""

    __tablename__ = "wecom_relations"
    __table_args__ = (
        UniqueConstraint("brand", "kind", "external_userid", "counterpart", "started_at", name="uq_wecom_relations"),
        Index("ix_wecom_relations_counterpart", "brand", "kind", "counterpart", "ended_at"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    brand: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # friend | group
    external_userid: Mapped[str] = mapped_column(String(64))
    counterpart: Mapped[str] = mapped_column(String(128))
    state: Mapped[str | None] = mapped_column(String(30))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    ended_by: Mapped[str | None] = mapped_column(String(32))  # customer | staff | transfer | dismiss


class WecomTransfer(Base):
    """One customer handed from one staff member to another (客户继承), until WeCom says how it went."""

    __tablename__ = "wecom_transfers"
    __table_args__ = (Index("ix_wecom_transfers_open", "brand", "status"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    brand: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # on_job | resigned
    handover_userid: Mapped[str] = mapped_column(String(64))
    takeover_userid: Mapped[str] = mapped_column(String(64))
    external_userid: Mapped[str] = mapped_column(String(64))
    # requested | waiting | succeeded | refused | limit_exceeded | no_record | failed
    status: Mapped[str] = mapped_column(String(16))
    errcode: Mapped[int | None] = mapped_column(Integer)
    requested_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    takeover_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    rebound_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
