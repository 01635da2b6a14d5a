"""Writing-transaction ids, for tables read in commit-safe order (the outbox, the audit chain).

Ids from a sequence do not commit in order. On PostgreSQL a row records the id of its writing
transaction, and a reader takes only rows whose writer is older than every transaction still running
(`txid < xmin` of its snapshot): any row that becomes visible later sorts after everything already
read. SQLite has one writer at a time, so ids commit in order and txid is 0.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Text, func, literal
from sqlalchemy.orm import Session


def current_txid(session: Session) -> Any:
    """SQL for the id of the transaction writing the row (0 on SQLite)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.pg_current_xact_id().cast(Text).cast(BigInteger)
    return literal(0)


def visible_horizon(session: Session) -> Any:
    """SQL for the bound below which writers are final (committed or rolled back) for every reader;
    None on SQLite, where everything visible is final."""
    if session.get_bind().dialect.name == "postgresql":
        return func.pg_snapshot_xmin(func.pg_current_snapshot()).cast(Text).cast(BigInteger)
    return None
