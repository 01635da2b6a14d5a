"""The domain events siyu publishes (the catalogue in docs/architecture.md lists them with who
consumes them). An event says what happened, with the keys a handler needs to find the change; it
is never the only copy of the data (handlers re-read the lake or the store, so they stay idempotent).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

# An import of 1M orders must not make a 20 MB outbox row: beyond this many keys an event carries
# none and says so (`keys_complete` false); handlers then work from the import id or the lake.
MAX_KEYS = 10_000


@dataclass(frozen=True)
class DomainEvent:
    type: ClassVar[str] = "event"
    brand: str | None

    def payload(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Landed(DomainEvent):
    """Rows of one entity committed to the lake by one import (a file import or a loader batch)."""

    import_id: str
    keys: tuple[str, ...] = ()
    keys_complete: bool = True
    rows: int = 0

    @classmethod
    def of(cls, brand: str | None, import_id: str, keys: list[str], rows: int) -> _Landed:
        complete = len(keys) <= MAX_KEYS
        return cls(brand, import_id, tuple(keys) if complete else (), complete, rows)


@dataclass(frozen=True)
class OrdersLanded(_Landed):
    type: ClassVar[str] = "OrdersLanded"


@dataclass(frozen=True)
class CustomersLanded(_Landed):
    type: ClassVar[str] = "CustomersLanded"


@dataclass(frozen=True)
class MembershipsLanded(_Landed):
    type: ClassVar[str] = "MembershipsLanded"


@dataclass(frozen=True)
class EventsLanded(_Landed):
    type: ClassVar[str] = "EventsLanded"


@dataclass(frozen=True)
class IdentityResolved(DomainEvent):
    """A One-ID run finished: customers that are new, and ids merged into others (old → survivor)."""

    type: ClassVar[str] = "IdentityResolved"
    run_id: int
    new_customers: tuple[str, ...] = ()
    merged: tuple[tuple[str, str], ...] = ()
    keys_complete: bool = True


@dataclass(frozen=True)
class TierChanged(DomainEvent):
    type: ClassVar[str] = "TierChanged"
    program: str
    account_id: int
    old_tier: str | None
    new_tier: str
    reason: str


@dataclass(frozen=True)
class PointsChanged(DomainEvent):
    """Points were earned, redeemed, adjusted, reversed or expired on some accounts (one event per
    unit of work, not per ledger row: the ledger itself is the record)."""

    type: ClassVar[str] = "PointsChanged"
    program: str
    account_ids: tuple[int, ...] = ()
    kind: str = ""


@dataclass(frozen=True)
class CouponIssued(DomainEvent):
    type: ClassVar[str] = "CouponIssued"
    program: str
    template: str
    account_ids: tuple[int, ...] = ()
    codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConsentChanged(DomainEvent):
    type: ClassVar[str] = "ConsentChanged"
    customer_ids: tuple[str, ...] = ()
    channel: str | None = None
    purpose: str | None = None


@dataclass(frozen=True)
class LayersComputed(DomainEvent):
    """Relationship layers (and RFM) were materialised for a brand as of a time."""

    type: ClassVar[str] = "LayersComputed"
    what: str
    as_of: str


@dataclass(frozen=True)
class RelationsLanded(_Landed):
    type: ClassVar[str] = "RelationsLanded"


@dataclass(frozen=True)
class BindingChanged(DomainEvent):
    """A binding run changed the current guide of some customers (siyu.guides.bindings)."""

    type: ClassVar[str] = "BindingChanged"
    customer_ids: tuple[str, ...] = ()
    keys_complete: bool = True
    changed: int = 0


@dataclass(frozen=True)
class WecomContactChanged(DomainEvent):
    """WeCom callbacks changed friend or group relations (siyu.wecom.process): the contacts
    (external_userid) and the changes (`friend_added`, `friend_lost`, `friend_removed`,
    `transferred`, `group_joined`, `group_left`). The rows themselves go through the ingest inbox."""

    type: ClassVar[str] = "WecomContactChanged"
    external_userids: tuple[str, ...] = ()
    changes: tuple[str, ...] = ()


CATALOGUE: dict[str, type[DomainEvent]] = {
    cls.type: cls
    for cls in (
        OrdersLanded,
        CustomersLanded,
        MembershipsLanded,
        EventsLanded,
        IdentityResolved,
        TierChanged,
        PointsChanged,
        CouponIssued,
        ConsentChanged,
        LayersComputed,
        RelationsLanded,
        BindingChanged,
        WecomContactChanged,
    )
}

LANDED_BY_ENTITY: dict[str, type[_Landed]] = {
    "orders": OrdersLanded,
    "customers": CustomersLanded,
    "memberships": MembershipsLanded,
    "events": EventsLanded,
    "relations": RelationsLanded,
}


def decode(type_: str, payload: dict[str, Any]) -> DomainEvent:
    """An event from its outbox row (lists back to tuples; unknown keys of newer writers ignored)."""
    cls = CATALOGUE[type_]
    known = {f.name for f in fields(cls)}
    values: dict[str, Any] = {
        k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
        for k, v in payload.items()
        if k in known
    }
    return cls(**values)
