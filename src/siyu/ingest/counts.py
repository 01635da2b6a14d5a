"""What an import did to each row: accepted (new), updated (a new version), unchanged, quarantined."""

from __future__ import annotations

from dataclasses import dataclass

STATUSES = ("accepted", "updated", "unchanged", "quarantined")


@dataclass
class Counts:
    accepted: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0

    def add(self, other: Counts) -> None:
        for name in STATUSES:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in STATUSES}
