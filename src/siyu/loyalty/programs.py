"""Applying program files (`siyu loyalty apply`) and reading the applied definition back."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from siyu.core.errors import UnreadableFileError
from siyu.loyalty.audit import audit
from siyu.loyalty.errors import UnknownProgramError
from siyu.loyalty.models import (
    CouponTemplate,
    LoyaltyProgram,
    LoyaltyProgramVersion,
    MallReward,
    ProgramBrand,
)
from siyu.loyalty.program import Program, ProgramError, parse_program
from siyu.store.db import Store


@dataclass(frozen=True)
class Applied:
    program: str
    version: int
    status: str  # created | updated | unchanged


@functools.lru_cache(maxsize=64)
def _parse_spec(spec: str) -> Program:
    return Program.model_validate_json(spec)


def load_program(session: Session, code: str) -> Program:
    row = session.get(LoyaltyProgram, code)
    if row is None:
        raise UnknownProgramError(f"no loyalty program {code!r}: apply its file with `siyu loyalty apply FILE`")
    return _parse_spec(row.spec)


def programs_of_brand(session: Session, brand: str) -> list[str]:
    return list(session.scalars(select(ProgramBrand.program).where(ProgramBrand.brand == brand)))


def read_program_file(path: Path) -> Program:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UnreadableFileError(f"{path}: cannot read the program file ({e})") from e
    return parse_program(text, str(path))


def do_apply_program(store: Store, path: Path, *, actor: str, at: dt.datetime) -> Applied:
    """Validate a program file and make it the program's current version, with its coupon
    templates and mall rewards. Re-applying the same file is a no-op; a changed file needs a
    higher `version`."""
    program = read_program_file(path)
    source = path.read_text(encoding="utf-8")
    spec = program.model_dump_json(by_alias=True)
    checksum = hashlib.sha256(spec.encode()).hexdigest()
    with store.write_unit() as session:
        row = session.get(LoyaltyProgram, program.program, with_for_update=True)
        if row is not None:
            if row.checksum == checksum:
                return Applied(program.program, row.version, "unchanged")
            if program.version <= row.version:
                raise ProgramError(
                    f"{path}: version {program.version} of program {program.program!r} is already applied "
                    f"(current {row.version}) with different content; raise `version:` to apply a change"
                )
        old = _parse_spec(row.spec) if row is not None else None
        if row is None:
            row = LoyaltyProgram(code=program.program)
            session.add(row)
        row.version, row.level, row.group_code = program.version, program.level, program.group
        row.spec, row.checksum, row.applied_at, row.applied_by = spec, checksum, at, actor
        session.add(
            LoyaltyProgramVersion(
                program=program.program,
                version=program.version,
                source=source,
                checksum=checksum,
                applied_at=at,
                applied_by=actor,
            )
        )
        session.flush()
        session.execute(delete(ProgramBrand).where(ProgramBrand.program == program.program))
        session.add_all(ProgramBrand(program=program.program, brand=b) for b in program.brands)
        _sync_templates(session, program, old)
        _sync_rewards(session, program, old)
        audit(
            session,
            at=at,
            actor=actor,
            action="program.apply",
            program=program.program,
            subject=str(path),
            old={"version": old.version} if old else None,
            new={"version": program.version, "checksum": checksum},
        )
    return Applied(program.program, program.version, "created" if old is None else "updated")


def _sync_templates(session: Session, program: Program, old: Program | None) -> None:
    for spec in program.coupons:
        row = session.get(CouponTemplate, (program.program, spec.code))
        if row is None:
            row = CouponTemplate(program=program.program, code=spec.code, issued=0)
            session.add(row)
        row.kind, row.spec, row.stock = spec.kind, spec.model_dump_json(), spec.stock
        row.per_customer_limit = spec.per_customer_limit
        row.cost_bearer, row.cost_bearer_code, row.campaign = spec.cost_bearer, spec.cost_bearer_code, spec.campaign


def _sync_rewards(session: Session, program: Program, old: Program | None) -> None:
    """`stock` in the file is the total offered; the row keeps what is still available, so a
    re-apply adds or removes only the difference."""
    previous = {r.code: r for r in old.mall} if old else {}
    for spec in program.mall:
        row = session.get(MallReward, (program.program, spec.code))
        if row is None:
            row = MallReward(program=program.program, code=spec.code, stock=spec.stock)
            session.add(row)
        elif spec.stock is None:
            row.stock = None
        else:
            before = previous.get(spec.code)
            given = (before.stock or 0) if before and before.stock is not None else 0
            row.stock = spec.stock if row.stock is None else max(0, row.stock + spec.stock - given)
        row.kind, row.name_zh, row.name_en = spec.kind, spec.name_zh, spec.name_en
        row.points, row.cash_fen, row.per_member_limit = spec.points, spec.cash_fen, spec.per_member_limit
        row.coupon_template = spec.coupon


def program_summary(program: Program) -> dict[str, object]:
    summary: dict[str, object] = json.loads(program.model_dump_json(by_alias=True))
    return summary
