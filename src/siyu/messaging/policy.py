"""Per-brand message policies (触达策略) and the pure rules checked at the moment of sending.

A brand's policy is one JSON document (`siyu messages policy set --brand B …`, table
`message_policies`); a brand without one gets `BrandPolicy()` — the defaults below:

- caps (频次上限): marketing messages per customer within a rolling window, across every journey,
  optionally per channel (`{"count": 2, "days": 7}` and `{"count": 1, "days": 1, "channel": "sms"}`);
- quiet hours (免打扰): a local-time window, which may cross midnight (21:00–08:00), in the brand's
  time zone unless the policy names one; marketing sends due inside it are deferred to its end;
- webhook: the URL and HMAC secret of the brand's webhook channel.

Transactional messages skip caps and quiet hours (never consent: siyu.messaging.consent).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.core.errors import SiyuError
from siyu.messaging.ledger_models import MessagePolicy
from siyu.store.models import Brand


class InvalidPolicyError(SiyuError):
    code = "invalid_message_policy"
    exit_code = 2


@dataclass(frozen=True)
class Cap:
    count: int
    days: int
    channel: str | None = None  # None: every channel together


@dataclass(frozen=True)
class BrandPolicy:
    caps: tuple[Cap, ...] = (Cap(2, 7),)
    quiet_start: str | None = "21:00"  # local HH:MM; None with quiet_end None: no quiet hours
    quiet_end: str | None = "08:00"
    timezone: str | None = None  # None: the brand's time zone
    webhook_url: str | None = None
    webhook_secret: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> BrandPolicy:
        known = {"caps", "quiet_start", "quiet_end", "timezone", "webhook_url", "webhook_secret"}
        unknown = set(data) - known
        if unknown:
            raise InvalidPolicyError(f"unknown policy keys {sorted(unknown)}; known: {sorted(known)}")
        raw_caps = data.get("caps", [asdict(c) for c in cls.caps])
        if not isinstance(raw_caps, list):
            raise InvalidPolicyError('caps must be a list like [{"count": 2, "days": 7, "channel": null}]')
        caps = tuple(Cap(int(c["count"]), int(c["days"]), c.get("channel")) for c in raw_caps)
        policy = cls(caps=caps, **{k: data[k] for k in known - {"caps"} if k in data})  # type: ignore[arg-type]
        policy.validate()
        return policy

    def validate(self) -> None:
        for cap in self.caps:
            if cap.count < 0 or cap.days < 1:
                raise InvalidPolicyError(f"a cap needs count ≥ 0 and days ≥ 1, got {cap}")
        if (self.quiet_start is None) != (self.quiet_end is None):
            raise InvalidPolicyError("quiet hours need both --quiet-start and --quiet-end (HH:MM), or neither")
        for value in (self.quiet_start, self.quiet_end):
            if value is not None:
                _hhmm(value)
        if self.timezone:
            try:
                ZoneInfo(self.timezone)
            except Exception as error:
                raise InvalidPolicyError(f"unknown time zone {self.timezone!r} (e.g. Asia/Shanghai)") from error


def _hhmm(value: str) -> dt.time:
    try:
        return dt.time.fromisoformat(value)
    except ValueError as error:
        raise InvalidPolicyError(f"quiet hours are local HH:MM, got {value!r}") from error


def quiet_until(at: dt.datetime, zone: ZoneInfo, start: str | None, end: str | None) -> dt.datetime | None:
    """The end of the quiet window `at` falls into (aware), or None when `at` is not quiet.

    The window [start, end) is in local time; start > end crosses midnight (21:00–08:00 holds
    23:30 and 07:59, not 08:00). The end is computed in local time, so a DST change is honoured."""
    if start is None or end is None:
        return None
    s, e = _hhmm(start), _hhmm(end)
    local = at.astimezone(zone)
    t = local.time().replace(tzinfo=None)
    if s == e:
        return None
    if s < e:
        quiet = s <= t < e
        end_day = local.date()
    else:
        quiet = t >= s or t < e
        end_day = local.date() + dt.timedelta(days=1) if t >= s else local.date()
    if not quiet:
        return None
    return dt.datetime.combine(end_day, e, tzinfo=zone).astimezone(dt.UTC)


def cap_window(cap: Cap, at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """Messages planned for (at − days, at] count against a message planned at `at`."""
    return at - dt.timedelta(days=cap.days), at


def load_policy(session: Session, brand: str) -> BrandPolicy:
    row = session.get(MessagePolicy, brand)
    return BrandPolicy() if row is None else BrandPolicy.from_dict(json.loads(row.policy))


def brand_zone(session: Session, brand: str, policy: BrandPolicy, default: str = "Asia/Shanghai") -> ZoneInfo:
    if policy.timezone:
        return ZoneInfo(policy.timezone)
    tz = session.scalar(select(Brand.timezone).where(Brand.code == brand))
    return ZoneInfo(tz or default)


def save_policy(session: Session, brand: str, policy: BrandPolicy, now: dt.datetime) -> BrandPolicy | None:
    """Store `policy` for `brand`; returns the one it replaced (for the audit row)."""
    policy.validate()
    row = session.get(MessagePolicy, brand)
    before = None if row is None else BrandPolicy.from_dict(json.loads(row.policy))
    if row is None:
        session.add(MessagePolicy(brand=brand, policy=policy.to_json(), updated_at=now))
    else:
        row.policy, row.updated_at = policy.to_json(), now
    session.flush()
    return before


def masked(policy: BrandPolicy) -> dict[str, object]:
    """The policy as shown and audited: the webhook secret never leaves the store."""
    data = asdict(policy)
    if data.get("webhook_secret"):
        data["webhook_secret"] = "***"  # noqa: S105  (a mask, not a secret)
    return data
