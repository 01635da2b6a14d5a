"""Applying journey files (`siyu journey apply`) and reading applied versions back.

Every applied version is kept: an enrolment finishes on the version it entered with, new ones
enter the current version. Re-applying the same file changes nothing; a changed file needs a
higher `version:`.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.core.errors import UnreadableFileError
from siyu.journeys.definition import Journey, parse_journey
from siyu.journeys.errors import JourneyError, JourneyStateError, UnknownJourneyError
from siyu.journeys.models import JourneyRow, JourneyVersion
from siyu.journeys.triggers import initial_mark
from siyu.store.uow import UnitOfWork


@dataclass(frozen=True)
class Applied:
    journey: str
    version: int
    status: str  # created | updated | unchanged


@functools.lru_cache(maxsize=256)
def _parse_spec(spec: str) -> Journey:
    return Journey.model_validate_json(spec)


def load_version(session: Session, code: str, version: int) -> Journey:
    row = session.get(JourneyVersion, (code, version))
    if row is None:
        raise UnknownJourneyError(f"no version {version} of journey {code!r} (未找到旅程版本)")
    return _parse_spec(row.spec)


def find_journey(session: Session, code: str, *, lock: bool = False) -> JourneyRow:
    row = session.get(JourneyRow, code, with_for_update=lock)
    if row is None:
        raise UnknownJourneyError(f"no journey {code!r}: apply its file with `siyu journey apply FILE` (未找到旅程)")
    return row


def read_journey_file(path: Path) -> tuple[Journey, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UnreadableFileError(f"{path}: cannot read the journey file ({e})") from e
    return parse_journey(text, str(path)), text


def do_apply_journey(
    app: App, path: Path, *, actor: Actor, at: dt.datetime, backfill_from: dt.datetime | None = None
) -> Applied:
    """Validate a journey file and make it the journey's current version. Only data that lands
    after the first apply triggers it, unless `backfill_from` (then occurrences since that time)."""
    journey, source = read_journey_file(path)
    spec = journey.model_dump_json(by_alias=True, exclude_none=True)
    checksum = hashlib.sha256(spec.encode()).hexdigest()
    mark = initial_mark(app, journey, at)  # a lake read, before the transaction
    with app.store.begin(actor, now=at) as uow:
        row = uow.session.get(JourneyRow, journey.code, with_for_update=True)
        if row is not None:
            if row.brand != journey.brand:
                raise JourneyError(f"{path}: journey {journey.code!r} belongs to brand {row.brand!r}")
            current = uow.session.get(JourneyVersion, (journey.code, row.version))
            if current is not None and current.checksum == checksum and backfill_from is None:
                return Applied(journey.code, row.version, "unchanged")
            if journey.version <= row.version and (current is None or current.checksum != checksum):
                raise JourneyError(
                    f"{path}: version {journey.version} of journey {journey.code!r} is already applied "
                    f"(current {row.version}) with different content; raise `version:` to apply a change "
                    "(内容已变更，请提高 version)"
                )
        old_version = None if row is None else row.version
        if row is None:
            row = JourneyRow(code=journey.code, brand=journey.brand, status="active")
            uow.session.add(row)
        if row.version is None or journey.version > row.version:
            uow.session.add(
                JourneyVersion(
                    journey=journey.code, version=journey.version, spec=spec, source=source, checksum=checksum,
                    applied_at=at, applied_by=str(actor),
                )
            )  # fmt: skip
        kind_changed = row.trigger_kind != journey.trigger.kind
        row.version, row.trigger_kind, row.applied_at = journey.version, journey.trigger.kind, at
        if old_version is None or kind_changed or backfill_from is not None:
            row.trigger_mark = None if backfill_from is not None else mark
            row.backfill_from = backfill_from
        uow.session.flush()
        uow.audit(
            "journey.apply", "journey", journey.code, brand=journey.brand,
            before=None if old_version is None else {"version": old_version},
            after={"version": journey.version, "checksum": checksum},
        )  # fmt: skip
    return Applied(journey.code, journey.version, "created" if old_version is None else "updated")


def do_set_status(uow: UnitOfWork, code: str, status: str) -> dict[str, object]:
    """pause | resume (→ active) | archive. A paused journey enrols nobody and runs no steps; an
    archived one is paused for good (its enrolments stay for the report)."""
    row = find_journey(uow.session, code, lock=True)
    if row.status == "archived" and status != "archived":
        raise JourneyStateError(f"journey {code!r} is archived; apply it under a new code (旅程已归档)")
    before = row.status
    row.status = status
    uow.audit("journey.status", "journey", code, brand=row.brand, before={"status": before}, after={"status": status})
    return {"journey": code, "status": status, "previous": before}


def list_journeys(session: Session) -> list[dict[str, object]]:
    rows = session.scalars(select(JourneyRow).order_by(JourneyRow.brand, JourneyRow.code))
    out = []
    for r in rows:
        spec = load_version(session, r.code, r.version)
        out.append(
            {
                "code": r.code, "brand": r.brand, "version": r.version, "status": r.status,
                "category": spec.category, "trigger": r.trigger_kind, "name_zh": spec.name.zh, "name_en": spec.name.en,
            }
        )  # fmt: skip
    return out


def show_journey(session: Session, code: str) -> dict[str, object]:
    row = find_journey(session, code)
    versions = session.scalars(
        select(JourneyVersion).where(JourneyVersion.journey == code).order_by(JourneyVersion.version)
    )
    spec = load_version(session, code, row.version)
    return {
        "code": code, "brand": row.brand, "status": row.status, "version": row.version,
        "versions": [{"version": v.version, "applied_at": v.applied_at, "by": v.applied_by} for v in versions],
        "definition": spec.model_dump(mode="json", by_alias=True, exclude_none=True),
    }  # fmt: skip
