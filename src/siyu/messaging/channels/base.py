"""The channel port: what the dispatcher hands an adapter, and what the adapter answers.

Adapters (e-mail, SMS, WeCom, official account, mini-program, webhook) register a factory by channel
name; the dispatcher looks them up. An adapter never touches the store: it sends and reports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol


@dataclass(frozen=True)
class Outbound:
    message_id: int
    idempotency_key: str  # pass to the provider where it has one (SMS OutId, Message-ID, webhook header)
    brand: str
    customer_id: str | None
    channel: str
    category: str
    payload: dict[str, Any]  # rendered content and address (to / phone / external_userid / openid / url)


@dataclass(frozen=True)
class SendResult:
    # sent: the provider accepted it · delivered: and confirmed delivery · failed: final, with error ·
    # refused: the customer/provider refused (e.g. no subscription) · retry: transient, try again later
    status: Literal["sent", "delivered", "failed", "refused", "retry"]
    provider_id: str | None = None
    error: str | None = None
    retry_after_s: float | None = None


class Channel(Protocol):
    name: str

    def send(self, message: Outbound) -> SendResult: ...


ChannelFactory = Callable[[Any], Channel]  # called with siyu.config.Settings
_FACTORIES: dict[str, ChannelFactory] = {}


def register_channel(name: str, factory: ChannelFactory) -> None:
    _FACTORIES[name] = factory


def channel_factory(name: str) -> ChannelFactory:
    if name not in _FACTORIES:
        raise KeyError(f"no channel adapter registered for '{name}' (known: {', '.join(sorted(_FACTORIES))})")
    return _FACTORIES[name]
