"""Erasure tombstones (删除墓碑): an erased person is not resurrected by the next import.

`tombstone_hashes` are what erasure records (keyed hashes, `siyu.privacy.hashing.keyed_hash`);
`erased_lines` is the import's check, one Ibis expression over the whole file: the same keyed
hash of each row's source record and of its identifiers (normalised as One-ID normalises them),
matched against the brand's tombstones. Rows that match are quarantined with reason `erased`.
"""

from __future__ import annotations

from collections.abc import Iterable

import ibis
import ibis.expr.types as ir
from sqlalchemy import select
from sqlalchemy.orm import Session

from siyu.identity.normalise import identifier_value_expr, phone_expr
from siyu.ingest.schema import IDENTIFIER_TYPES, Entity
from siyu.privacy.hashing import keyed_hash
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
    out |= {(kind, keyed_hash(pii_key, kind, value)) for kind, value in identifiers}
    return sorted(out)


def all_tombstones(session: Session) -> list[tuple[str, str]]:
    """(brand, hash) of every tombstone: erasures are few, an import reads them once per file."""
    return [(b, h) for b, h in session.execute(select(ErasureTombstone.brand, ErasureTombstone.hash))]


@ibis.udf.scalar.python  # type: ignore[untyped-decorator]
def _keyed(key: str, kind: str, value: str) -> str:
    """The engine's call of the one keyed hash (siyu.privacy.hashing), so import and erasure agree."""
    return keyed_hash(key, kind, value) if value is not None and kind is not None else None


def _candidates(rows: ir.Table, entity: Entity, key: ir.StringValue) -> list[ir.StringValue]:
    """The keyed hashes a row of `entity` could match: its source record, its identifiers."""
    names = set(entity.column_names)
    out: list[ir.StringValue] = []
    if {"brand", "source", "source_customer_id"} <= names:
        record = rows.brand.concat("/", rows.source, "/", rows.source_customer_id)
        out.append(_keyed(key, ibis.literal(RECORD), record))
    for id_type in IDENTIFIER_TYPES:
        if id_type in names and entity.name == "customers":
            value = (
                phone_expr(rows[id_type])
                if id_type == "phone"
                else identifier_value_expr(ibis.literal(id_type), rows[id_type])
            )
            out.append(_keyed(key, ibis.literal(id_type), value))
    if entity.name == "identities":
        out.append(_keyed(key, rows.id_type, identifier_value_expr(rows.id_type, rows.id_value)))
    if entity.name == "memberships":
        out.append(
            _keyed(key, ibis.literal("member_no"), identifier_value_expr(ibis.literal("member_no"), rows.member_no))
        )
    if entity.name == "messages":
        out.append(_keyed(key, ibis.literal("external_userid"), rows.external_userid))
    return out


def erased_lines(rows: ir.Table, entity: Entity, pii_key: str, tombstones: list[tuple[str, str]]) -> ir.Table:
    """`_line` and `_error_field` of the rows naming an erased person (empty when nothing is erased)."""
    key = ibis.literal(pii_key)
    stones = ibis.memtable({"brand": [b for b, _ in tombstones], "_stone": [h for _, h in tombstones]})
    hashed = [rows.select("_line", "brand", _hash=h) for h in _candidates(rows, entity, key)]
    if not hashed:
        return rows.select("_line").limit(0).mutate(_error_field=ibis.literal("brand"))
    every = ibis.union(*hashed)
    hit = every.join(stones, [every.brand == stones.brand, every._hash == stones._stone])
    return hit.select("_line").distinct().mutate(_error_field=ibis.literal("source_customer_id"))
