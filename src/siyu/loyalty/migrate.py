"""Migration from a legacy loyalty system: opening balances and points lots.

Members come from the canonical `memberships` file (imported with `siyu import`, enrolled by the
sync). Their points arrive either as lots with expiry in a `points_lots` file (CSV: brand,
member_no, points, earned_at, expires_at [, lot_id]) or, for members without lots in that file,
as one opening lot of `memberships.points_balance` expiring by the program's policy. Every lot is
posted with an idempotency key, so re-running a migration changes nothing; bad rows are reported
with their line and reason and do not stop the good ones.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.bootstrap import App
from siyu.core.errors import UnreadableFileError
from siyu.identity.service import MAP_TABLE
from siyu.ingest.views import current
from siyu.loyalty import points
from siyu.loyalty.accounts import account_by_member_no, account_of, utc
from siyu.loyalty.models import LoyaltyAccount, PointsTxn
from siyu.loyalty.program import Program
from siyu.loyalty.programs import load_program

LOT_COLUMNS = ("brand", "member_no", "points", "earned_at", "expires_at")


@dataclass
class Migration:
    lots: int = 0
    opening: int = 0
    points: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)


def _when(text: str, line: int, name: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError as e:
        raise ValueError(f"{name} {text!r} is not an ISO date/time") from e
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _legacy_members(app: App, program: Program) -> dict[tuple[str, str], str]:
    """(brand, legacy member_no) → customer_id of the program's memberships rows. In a group
    program a person's memberships of several brands share one account under the number of the
    earliest (sync._shared_member_no), so the other brands' legacy numbers name no account: they
    are found through the customer's link instead."""
    members = current(app, "memberships")
    id_map = app.engine.table(MAP_TABLE)
    if members is None or id_map is None:
        return {}
    names = (program.program, *program.membership_programs)
    m = members.filter(members.brand.isin(program.brands), members.program.isin(names))
    m = m.join(
        id_map.select("brand", "source", "source_customer_id", "customer_id"), ["brand", "source", "source_customer_id"]
    )
    rows = app.engine.to_arrow(m.select("brand", "member_no", "customer_id")).to_pylist()
    return {(r["brand"], r["member_no"]): r["customer_id"] for r in rows}


def _account(
    session: Session, program: str, legacy: dict[tuple[str, str], str], brand: str, member_no: str
) -> LoyaltyAccount | None:
    account = account_by_member_no(session, program, member_no)
    if account is None and (customer_id := legacy.get((brand, member_no))) is not None:
        account = account_of(session, program, brand=brand, customer_id=customer_id)
    return account


def import_points_lots(app: App, program_code: str, path: Path, *, actor: str, result: Migration) -> set[str]:
    """Post every valid row of a points_lots CSV as a lot; returns the member numbers it covered."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as e:
        raise UnreadableFileError(f"{path}: cannot open ({e})") from e
    covered: set[str] = set()
    with app.store.unit_of_work() as session:
        legacy = _legacy_members(app, load_program(session, program_code))
    with handle, app.store.write_unit() as session:
        program = load_program(session, program_code)
        reader = csv.DictReader(handle)
        missing = [c for c in LOT_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise UnreadableFileError(
                f"{path}:1: missing column(s) {', '.join(missing)} (need {', '.join(LOT_COLUMNS)})"
            )
        seen: Counter[str] = Counter()
        for line, row in enumerate(reader, start=2):
            try:
                n = int(row["points"])
                if n <= 0:
                    raise ValueError(f"points {row['points']!r} must be a positive whole number")
                earned = _when(row["earned_at"], line, "earned_at")
                expires = _when(row["expires_at"], line, "expires_at") if row["expires_at"].strip() else None
                if expires is not None and expires <= earned:
                    raise ValueError("expires_at is not after earned_at")
                if row["brand"] not in program.brands:
                    raise ValueError(f"brand {row['brand']!r} is not in program {program_code}")
                account = _account(session, program_code, legacy, row["brand"], row["member_no"].strip())
                if account is None:
                    raise ValueError(f"member_no {row['member_no']!r} is not enrolled (import memberships first)")
            except (ValueError, KeyError) as e:
                result.rejected.append((line, str(e)))
                continue
            # Without a lot_id, a lot is known by its content (and how often that content repeats
            # for the member), so a re-exported file with rows reordered or inserted posts nothing twice.
            content = f"{row['member_no'].strip()}|{n}|{earned.isoformat()}|{expires.isoformat() if expires else ''}"
            seen[content] += 1
            lot_id = (row.get("lot_id") or "").strip() or (
                hashlib.sha256(content.encode()).hexdigest()[:16] + f"-{seen[content]}"
            )
            posted = points.do_earn(
                session,
                program,
                account.id,
                n,
                key=f"migration:lot:{row['brand']}:{account.member_no}:{lot_id}",
                at=earned,
                actor=actor,
                brand=row["brand"],
                reason="migrated lot 迁移积分批次",
                expires_at=expires or dt.datetime(9999, 12, 31, tzinfo=dt.UTC),
            )
            # the legacy number as written: the account may hold other brands' legacy balances too
            covered.add(row["member_no"].strip())
            if not posted.replayed:
                result.lots += 1
                result.points += n
    return covered


def import_opening_balances(
    app: App, program_code: str, *, at: dt.datetime, actor: str, skip: set[str], result: Migration
) -> None:
    """One opening lot per enrolled member from `memberships.points_balance` (not for `skip`)."""
    members = current(app, "memberships")
    if members is None:
        return
    with app.store.unit_of_work() as session:
        program = load_program(session, program_code)
        done = set(
            session.scalars(
                select(PointsTxn.idempotency_key).where(
                    PointsTxn.program == program_code, PointsTxn.idempotency_key.startswith("migration:opening:")
                )
            )
        )
    legacy = _legacy_members(app, program)
    names = (program.program, *program.membership_programs)
    rows = app.engine.to_arrow(
        members.filter(
            members.brand.isin(program.brands),
            members.program.isin(names),
            members.points_balance > 0,
            members.left_at.isnull(),
        ).select("brand", "member_no", "points_balance", "joined_at")
    ).to_pylist()
    todo = [
        r for r in rows if r["member_no"] not in skip and f"migration:opening:{r['brand']}:{r['member_no']}" not in done
    ]
    for start in range(0, len(todo), 1000):
        with app.store.write_unit() as session:
            for r in todo[start : start + 1000]:
                account = _account(session, program_code, legacy, r["brand"], r["member_no"])
                if account is None:
                    continue
                points.do_earn(
                    session,
                    program,
                    account.id,
                    int(r["points_balance"]),
                    key=f"migration:opening:{r['brand']}:{r['member_no']}",
                    at=max(at, utc(r["joined_at"])) if r["joined_at"] else at,
                    actor=actor,
                    brand=r["brand"],
                    reason="opening balance 期初积分 (legacy system)",
                )
                result.opening += 1
                result.points += int(r["points_balance"])
