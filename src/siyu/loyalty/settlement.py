"""Inter-brand settlement (积分互通结算): points spent in one brand that were earned in another.

From the lot moves: a redemption in brand B that took points from a lot earned in brand A owes A's
points to B's account at the program's `settlement_fen_per_point`; restoring a redemption (its
reversal) gives them back. One aggregate query, grouped by (earned in, spent in).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, aliased

from siyu.core.money import half_up_times
from siyu.loyalty.models import PointsLot, PointsMove, PointsTxn
from siyu.loyalty.programs import load_program


@dataclass(frozen=True)
class SettlementLine:
    earned_brand: str
    spent_brand: str
    points: int
    value_fen: int  # what the spending brand settles with the earning brand


def settlement(
    session: Session, program_code: str, *, start: dt.datetime | None = None, end: dt.datetime | None = None
) -> list[SettlementLine]:
    """Cross-brand spending in [start, end) (by the redemption's time), net of restorations."""
    program = load_program(session, program_code)
    rate = program.points.settlement_fen_per_point
    redeem = aliased(PointsTxn)
    spend = (
        select(
            PointsLot.brand.label("earned"),
            redeem.brand.label("spent"),
            func.sum(-PointsMove.points).label("points"),
        )
        .select_from(PointsMove)
        .join(PointsTxn, PointsTxn.id == PointsMove.txn_id)
        .join(PointsLot, PointsLot.id == PointsMove.lot_id)
        # the redemption itself, or a reversal of one (whose moves give points back: +)
        .join(redeem, redeem.id == func.coalesce(PointsTxn.reverses_id, PointsTxn.id))
        .where(
            PointsTxn.program == program_code,
            redeem.kind == "redeem",
            PointsLot.brand.is_not(None),
            redeem.brand.is_not(None),
            PointsLot.brand != redeem.brand,
        )
        .group_by(PointsLot.brand, redeem.brand)
        .order_by(PointsLot.brand, redeem.brand)
    )
    if start is not None:
        spend = spend.where(and_(redeem.created_at >= start))
    if end is not None:
        spend = spend.where(redeem.created_at < end)
    lines = []
    for earned, spent, points in session.execute(spend):
        if int(points):  # fen owed: points × rate, to the nearest fen, halves away from zero
            lines.append(SettlementLine(str(earned), str(spent), int(points), half_up_times(int(points), rate)))
    return lines
