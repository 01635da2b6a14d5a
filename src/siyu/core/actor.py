"""Who did it: every state change names its actor (a person, an API key or the system)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ActorKind = Literal["user", "api_key", "system"]
KINDS: tuple[ActorKind, ...] = ("user", "api_key", "system")
# The textual form kept by older rows ("api-key:ID", "cli:NAME") maps onto the kinds.
_PREFIXES: dict[str, ActorKind] = {"user": "user", "cli": "user", "api-key": "api_key", "api_key": "api_key"}


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    id: str

    @classmethod
    def user(cls, name: str) -> Actor:
        return cls("user", name)

    @classmethod
    def api_key(cls, key_id: str) -> Actor:
        return cls("api_key", key_id)

    @classmethod
    def system(cls, name: str) -> Actor:
        return cls("system", name)

    @classmethod
    def parse(cls, text: str) -> Actor:
        """`api-key:ID`, `cli:NAME`, `user:NAME`, `system:NAME`; anything else is a system component."""
        prefix, sep, rest = text.partition(":")
        if sep and prefix in _PREFIXES:
            return cls(_PREFIXES[prefix], rest)
        if sep and prefix == "system":
            return cls("system", rest)
        return cls("system", text)

    def __str__(self) -> str:
        return {"user": "user", "api_key": "api-key", "system": "system"}[self.kind] + ":" + self.id
