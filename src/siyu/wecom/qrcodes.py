"""Channel QR codes (渠道活码): a `state` (≤ 30 characters, unique per brand) that WeCom hands back
in every add made through the code, mapped here to channel, store, guides and campaign. The code
is created with `externalcontact/add_contact_way`; the PNG poster is rendered locally (segno)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import segno
from sqlalchemy import select

from siyu.core.errors import SiyuError
from siyu.store.uow import UnitOfWork
from siyu.wecom.client import WeComClient
from siyu.wecom.models import WecomQrCode

MAX_STATE = 30  # WeCom's limit on `state`


class QrCodeError(SiyuError):
    code = "wecom_qrcode_invalid"
    exit_code = 2


@dataclass(frozen=True)
class QrCodeRequest:
    brand: str
    state: str
    staff_ids: tuple[str, ...]
    store_code: str | None = None
    channel: str | None = None
    campaign: str | None = None
    exclusive: bool = False


def check(uow: UnitOfWork, request: QrCodeRequest) -> None:
    if not request.state or len(request.state) > MAX_STATE:
        raise QrCodeError(f"state must be 1–{MAX_STATE} characters, got {len(request.state)} (state 最长 30 个字符)")
    if not request.staff_ids:
        raise QrCodeError("give at least one staff member: --staff USERID[,USERID…] (至少一名员工)")
    if uow.session.get(WecomQrCode, (request.brand, request.state)) is not None:
        raise QrCodeError(
            f"state '{request.state}' already exists for brand {request.brand}: choose another (state 已存在)"
        )


def contact_way_body(request: QrCodeRequest) -> dict[str, Any]:
    return {
        "type": 1 if len(request.staff_ids) == 1 else 2,  # 1 single member, 2 several
        "scene": 2,  # a QR code
        "state": request.state,
        "user": list(request.staff_ids),
        "skip_verify": True,
        "remark": f"siyu {request.channel or ''} {request.store_code or ''}".strip()[:30],
    }


def poster_png(qr_code: str) -> bytes:
    """The QR code of the code's URL as a PNG (poster), rendered locally: nothing is downloaded."""
    out = io.BytesIO()
    segno.make(qr_code, error="m").save(out, scale=10, border=4, kind="png")
    return out.getvalue()


def write_poster(qr_code: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(poster_png(qr_code))
    return path


def do_create_qrcode(uow: UnitOfWork, client: WeComClient, request: QrCodeRequest, poster_dir: Path) -> WecomQrCode:
    """Register the state, create the code at WeCom and keep config_id, qr_code and the poster path.
    WeCom is called inside the transaction, so a refusal stores nothing; the state is checked first."""
    check(uow, request)
    answer = client.add_contact_way(contact_way_body(request))
    png = write_poster(str(answer["qr_code"]), poster_dir / request.brand / f"{request.state}.png")
    row = WecomQrCode(
        brand=request.brand, state=request.state, staff_ids=",".join(request.staff_ids), store_code=request.store_code,
        channel=request.channel, campaign=request.campaign, exclusive=request.exclusive,
        config_id=str(answer["config_id"]), qr_code=str(answer["qr_code"]), png=str(png), created_at=uow.now,
    )  # fmt: skip
    uow.session.add(row)
    uow.audit(
        "wecom.qrcode.create",
        "wecom_qrcode",
        f"{request.brand}/{request.state}",
        brand=request.brand,
        after=public(row),
    )
    return row


def public(row: WecomQrCode) -> dict[str, Any]:
    return {
        "state": row.state, "config_id": row.config_id, "qr_code": row.qr_code, "png": row.png,
        "staff": row.staff_ids.split(","), "store_code": row.store_code, "channel": row.channel,
        "campaign": row.campaign, "exclusive": row.exclusive,
    }  # fmt: skip


def list_codes(uow: UnitOfWork, brand: str) -> list[dict[str, Any]]:
    rows = uow.session.scalars(select(WecomQrCode).where(WecomQrCode.brand == brand).order_by(WecomQrCode.state))
    return [public(r) for r in rows]
