"""Erasure tombstones (删除墓碑): an erased person is not resurrected by the next import.

`tombstone_hashes` are what erasure records (keyed hashes, `siyu.privacy.hashing.keyed_hash`);
`erased_lines` is the import's check over the whole file at once: the engine computes the same
keyed hash of each row's source record and of its identifiers (normalised as One-ID normalises
them) in one Ibis pass, and Arrow matches them against the brand's tombstones. Rows that match
are quarantined with reason `erased`.
"""

from __future__ import annotations

from collections.abc import Iterable

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.engine.base import Engine
from siyu.identity.normalise import identifier_value_expr, phone_expr
from siyu.ingest.schema import IDENTIFIER_TYPES, Entity
from siyu.privacy.hashing import keyed_hash
from siyu.privacy.lake_columns import is_hash
from siyu.privacy.models import ErasureTombstone

RECORD = "record"  # kind of a source record's tombstone: value `brand/source/source_customer_id`
ERASED_REASON = "erased"


def record_value(brand: str, source: str, source_customer_id: str) -> str:
    return f"{brand}/{source}/{source_customer_id}"


def tombstone_hashes(
    pii_key: str, records: Iterable[tuple[str, str, str]], identifiers: Iterable[tuple[str, str]]
) -> list[tuple[str, str]]:
    """(kind, hash) pairs for a person's source records and normalised identifiers."""
    out = {(RECORD, keyed_hash(pii_key, RECORD, record_value(*r))) for r in records}
    # from a sealed lake a phone or e-mail already is its keyed hash (siyu.privacy.lake_columns)
    out |= {(kind, value if is_hash(kind, value) else keyed_hash(pii_key, kind, value)) for kind, value in identifiers}
    return sorted(out)


def all_tombstones(session: Session) -> list[tuple[str, str]]:
    """(brand, hash) of every tombstone: erasures are few, an import reads them once per file."""
    return [(b, h) for b, h in session.execute(select(ErasureTombstone.brand, ErasureTombstone.hash))]


@ibis.udf.scalar.python  # type: ignore[untyped-decorator]
def _keyed(key: str, kind: str, value: str) -> str:
    """The engine's call of the one keyed hash (siyu.privacy.hashing), so import and erasure agree."""
    return keyed_hash(key, kind, value) if value is not None and kind is not None else None


def _candidates(rows: ir.Table, entity: Entity, present: set[str], key: ir.StringValue) -> list[ir.StringValue]:
    """The keyed hashes a row of `entity` could match: its source record, its identifiers (only the
    columns the file has: the others are NULL)."""
    out: list[ir.StringValue] = []
    if {"brand", "source", "source_customer_id"} <= set(entity.column_names):
        record = rows.brand.concat("/", rows.source, "/", rows.source_customer_id)
        out.append(_keyed(key, ibis.literal(RECORD), record))
    if entity.name == "customers":
        for id_type in (t for t in IDENTIFIER_TYPES if t in present):
            kind = ibis.literal(id_type)
            value = phone_expr(rows[id_type]) if id_type == "phone" else identifier_value_expr(kind, rows[id_type])
            out.append(_keyed(key, kind, value))
    if entity.name == "identities":
        out.append(_keyed(key, rows.id_type, identifier_value_expr(rows.id_type, rows.id_value)))
    if entity.name == "memberships":
        member_no = identifier_value_expr(ibis.literal("member_no"), rows.member_no)
        out.append(_keyed(key, ibis.literal("member_no"), member_no))
    if entity.name == "messages":
        out.append(_keyed(key, ibis.literal("external_userid"), rows.external_userid))
    return out


def erased_lines(
    engine: Engine, rows: ir.Table, entity: Entity, present: set[str], pii_key: str, tombstones: list[tuple[str, str]]
) -> pa.Array:
    """`_line` of the rows naming an erased person. The engine computes every candidate hash of
    every row in one pass; Arrow matches (brand, hash) against the tombstones, a set lookup."""
    candidates = _candidates(rows, entity, present, ibis.literal(pii_key))
    if not candidates:
        return pa.array([], pa.int64())
    hashed = engine.to_arrow(rows.select("_line", "brand", *(h.name(f"_h{i}") for i, h in enumerate(candidates))))
    stones = pa.array([f"{b}|{h}" for b, h in tombstones], pa.string())
    hit = pa.array([False] * hashed.num_rows, pa.bool_())
    for i in range(len(candidates)):
        pairs = pc.binary_join_element_wise(hashed["brand"], hashed[f"_h{i}"], "|")
        hit = pc.or_(hit, pc.fill_null(pc.is_in(pairs, value_set=stones), False))
    return hashed.filter(hit)["_line"].combine_chunks()
