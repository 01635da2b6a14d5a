"""Minimum necessary (最小必要, PIPL art. 6) for previews and exports: only the columns asked for,
clear PII only with a stated purpose, and — for an export made for a consent purpose — without the
customers who withdrew that consent.

The consent filter reuses the reachability code's latest decision per customer and channel
(`siyu.audiences.reach.consent_latest`: lake events and the consent ledger), as one anti-join.
"""

from __future__ import annotations

from collections.abc import Sequence

import ibis.expr.types as ir

from siyu.audiences.context import ID, Context
from siyu.audiences.errors import AudienceError, PiiNotAllowedError
from siyu.audiences.reach import PURPOSE_CHANNEL, consent_latest

COLUMNS = ("customer_id", "name", "phone", "email", "city", "tier")  # the default, in this order
PII = frozenset({"name", "phone", "email"})  # masked unless asked for in clear
PURPOSE_MAX = 500


class PurposeRequiredError(AudienceError):
    """Clear PII was asked without saying what for."""

    code = "purpose_required"


def pick_columns(asked: Sequence[str] | str | None) -> list[str]:
    """The columns to carry, in the order asked ("a,b" or a list); none asked → all of COLUMNS."""
    if asked is None:
        return list(COLUMNS)
    names = [c.strip() for c in (asked.split(",") if isinstance(asked, str) else asked)]
    names = [c for c in names if c]
    unknown = [c for c in names if c not in COLUMNS]
    if unknown or not names:
        raise AudienceError(
            f"columns {', '.join(unknown) or '(none)'}: choose among {', '.join(COLUMNS)} "
            f"(未知或为空的列，可选: {', '.join(COLUMNS)})"
        )
    return list(dict.fromkeys(names))  # each once


def check_unmasked(columns: Sequence[str], unmasked: bool, allowed: bool, purpose: str | None) -> bool:
    """Whether clear PII is written: only when asked, when a PII column is carried at all, when the
    caller may (`allowed`), and with a stated purpose — refused otherwise."""
    if not unmasked or not PII & set(columns):
        return False
    if not allowed:
        raise PiiNotAllowedError("unmasked PII export was asked but not allowed for this caller (无权导出明文个人信息)")
    if not (purpose or "").strip():
        raise PurposeRequiredError(
            "unmasked PII needs a stated purpose: pass --purpose TEXT / purpose=… (明文个人信息须说明用途)"
        )
    if len(purpose or "") > PURPOSE_MAX:
        raise AudienceError(f"purpose: at most {PURPOSE_MAX} characters (用途最多 {PURPOSE_MAX} 字)")
    return True


def consent_channel(purpose: str | None) -> str | None:
    """The channel whose consent a purpose reads (marketing_sms → sms …); None for no purpose."""
    if purpose is None:
        return None
    if purpose not in PURPOSE_CHANNEL:
        known = ", ".join(sorted(PURPOSE_CHANNEL))
        raise AudienceError(f"consent purpose {purpose!r}: choose {known} (未知的同意用途，可选: {known})")
    return PURPOSE_CHANNEL[purpose]


def without_withdrawn(ctx: Context, audience: ir.Table, channel: str) -> ir.Table:
    """The audience less the customers whose latest consent for `channel` is a withdrawal (no record
    means not withdrawn, as for reachability)."""
    latest = consent_latest(ctx)
    withdrawn = latest.filter((latest.channel == channel) & ~latest.granted).select(ID)
    return audience.anti_join(withdrawn, ID)
