"""PII columns of the lake's raw tables (湖仓原始表的个人信息列): sealed on landing, matched on keyed hashes.

When an import lands `customers` rows, each PII column ``<col>`` (phone, email, name) is replaced by

- ``<col>_enc``: the value as an AES-GCM envelope (siyu.privacy.crypto, purpose ``lake``, context
  ``customers.<col>``), opened only to send a message or through an audited reveal;
- ``<col>_hash``: the keyed hash (siyu.privacy.hashing) of the value *as One-ID normalises it*
  (`siyu.identity.normalise.identifier_value_expr`, the very expression One-ID ran on clear values),
  so hash equality is normalised equality and One-ID, look-ups and erasure match on it;
- ``<col>_mask``: what people see (138****5678, a***@example.com, 王**). A phone column holding an
  already masked platform value (138****5678) keeps it here and has no hash: One-ID reads it as the
  weak `phone_masked`, as before. A value that is no phone at all has neither hash nor mask.

`identities` rows of type phone or email get the same three columns for ``id_value``; ``id_value``
itself (part of the row key) becomes the keyed hash, or for an unusable phone ``x`` + the keyed hash
of the raw text (never an identifier). Other identifier types (unionid, openid, member no …) are
platform pseudonyms and stay clear.

The normalised values are computed by the engine in the same pass that streams the rows to the lake
(`prepare`); the crypto is a Python loop over each Arrow batch (`seal_batch`), because neither
DuckDB nor Arrow has AES-GCM or HMAC kernels. It is kept tight: one AESGCM object per key, one HMAC
state per kind copied per value.

With `SIYU_PII_ENCRYPTION=off` (benchmarks only) nothing is sealed and the columns stay as they were;
every reader here accepts both layouts, told apart by the presence of ``<col>_hash``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Iterator
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from siyu.engine.connect import Engine
from siyu.identity.normalise import identifier_value_expr, mask_value, normalise_identifier
from siyu.privacy.crypto import PREFIX, Keyring, decrypt, is_sealed

PURPOSE = "lake"
# entity -> sealed column -> the kind its keyed hash is made under (siyu.privacy.hashing)
SEALED: dict[str, dict[str, str]] = {"customers": {"phone": "phone", "email": "email", "name": "name"}}
IDENTITY_TYPES = ("phone", "email")  # `identities` rows whose id_value is sealed
KEYED = ("identities",)  # entities whose row key holds PII: sealed before the import compares keys
HASHED_KINDS = ("phone", "email")  # identifier types whose One-ID value is a keyed hash in a sealed lake
_NORM = "_norm_"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def context(entity: str, column: str) -> str:
    return f"{entity}.{column}"


def is_sealed_table(table: ir.Table, column: str) -> bool:
    """Whether `table` (a raw lake table) holds `column` sealed (``<column>_hash``) rather than clear."""
    return f"{column}_hash" in table.columns


CLEAR_LAKE_WARNING = (
    "the lake's {entity} table holds PII in clear (written before lake encryption): rows are landed clear "
    "until `siyu keys rotate-pii` seals the table (湖仓表仍为明文，请运行 siyu keys rotate-pii)"
)


def sealed_columns(entity: str) -> list[str]:
    return ["id_value"] if entity == "identities" else list(SEALED.get(entity, {}))


def clear_rows(table: ir.Table, entity: str) -> ir.BooleanValue | None:
    """Rows of a raw table holding PII in clear: written before lake encryption (or with it off)."""
    columns = [c for c in sealed_columns(entity) if c in table.columns]
    if entity == "customers" and columns:
        return ibis.or_(*(table[c].notnull() for c in columns))
    if entity == "identities":
        pii = table.id_type.isin(IDENTITY_TYPES)
        if "id_value_enc" not in table.columns:
            return pii
        return pii & table.id_value_enc.isnull() & ~((table.id_type == "phone") & table.id_value.contains("*"))
    return None


def holds_clear(engine: Engine, entity: str) -> bool:
    """Whether the raw table of `entity` holds PII in clear (then imports keep it clear, never mixing
    clear and hashed values One-ID could not link, until `siyu keys rotate-pii` seals it)."""
    table = engine.table(entity) if entity in SEALED or entity in KEYED else None
    if table is None:
        return False
    found = clear_rows(table, entity)
    return found is not None and engine.to_arrow(table.filter(found).select("_import_id").limit(1)).num_rows > 0


def is_hash(id_type: str, value: str | None) -> bool:
    """Whether an identifier value from One-ID is a keyed hash (a sealed lake) rather than a clear value.
    Clear phones start with '+', clear e-mails hold '@': neither is 64 hex digits."""
    return id_type in HASHED_KINDS and value is not None and bool(_HEX64.match(value))


def display(id_type: str, value: str | None) -> str:
    """A One-ID value for people: masked when clear, a short tag of the hash when it is one."""
    if is_hash(id_type, value):
        assert value is not None
        return f"#{value[:10]}"
    return mask_value(id_type, value)


def match_values(hash_key: str, id_type: str, normalised: str) -> list[str]:
    """The values a normalised identifier may have in One-ID's output: itself (a clear lake) and its
    keyed hash (a sealed lake). Look-ups compare with both, so they work on either layout."""
    from siyu.privacy.hashing import keyed_hash

    return [normalised, keyed_hash(hash_key, id_type, normalised)] if id_type in HASHED_KINDS else [normalised]


def with_hashed(hash_key: str, blocklist: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The One-ID blocklist (type, normalised value; type ``*`` = any) plus the keyed hash of each
    placeholder phone or e-mail, which is what a sealed lake's identifiers hold."""
    from siyu.privacy.hashing import keyed_hash

    out = set(blocklist)
    for id_type, value in blocklist:
        for kind in HASHED_KINDS if id_type == "*" else (id_type,) if id_type in HASHED_KINDS else ():
            out.add((kind, keyed_hash(hash_key, kind, value)))
    return out


def prepare(entity: str, table: ir.Table) -> ir.Table:
    """`table` plus the One-ID normalised value of each sealed column (``_norm_<col>``), computed by
    the engine in the same pass as the rest of the landing."""
    if entity == "customers":
        extra = {}
        for col, kind in SEALED[entity].items():
            if col in table.columns:
                value = table[col].cast("string")
                norm = identifier_value_expr(ibis.literal(kind), value) if kind in HASHED_KINDS else value.strip()
                extra[_NORM + col] = norm.nullif("")
        return table.mutate(**extra) if extra else table
    if entity == "identities":
        return table.mutate(**{_NORM + "id_value": identifier_value_expr(table.id_type, table.id_value)})
    return table


class _Sealer:
    """Seals values of one column: AES-GCM under the current key, HMAC under the hash key."""

    def __init__(self, ring: Keyring, hash_key: str, ctx: str) -> None:
        self.ring = ring
        self.aead = ring.aead(ring.current, PURPOSE)
        self.head = f"{PREFIX}:{ring.current}:"
        self.ctx = ctx.encode()
        self.mac = hmac.new(hash_key.encode(), digestmod=hashlib.sha256)
        self._kinds: dict[str, hmac.HMAC] = {}

    def enc(self, value: str) -> str:
        nonce = os.urandom(12)
        return self.head + base64.b64encode(nonce + self.aead.encrypt(nonce, value.encode(), self.ctx)).decode()

    def hash(self, kind: str, value: str) -> str:
        # = siyu.privacy.hashing.keyed_hash(key, kind, value): HMAC of "kind:value"
        base = self._kinds.get(kind)
        if base is None:
            base = self._kinds[kind] = self.mac.copy()
            base.update(f"{kind}:".encode())
        h = base.copy()
        h.update(value.encode())
        return h.hexdigest()


def _normalised(kind: str, value: str) -> str | None:
    """One-ID's normalisation in Python (siyu.identity.normalise), for the rare value opened on landing."""
    if kind not in HASHED_KINDS:
        return value.strip() or None
    found = normalise_identifier(kind, value)
    return found[1] if found is not None and found[0] == kind else None


def _mask(kind: str, norm: str) -> str:
    return norm[:1] + "**" if kind == "name" else mask_value(kind, norm)


Cell = str | None


def _seal_customer_column(
    s: _Sealer, kind: str, values: list[Cell], norms: list[Cell]
) -> list[tuple[Cell, Cell, Cell]]:
    """(envelope, keyed hash, mask) of each value of one customers column."""
    out: list[tuple[Cell, Cell, Cell]] = []
    for value, norm in zip(values, norms, strict=True):
        if value is None or not value.strip():
            out.append((None, None, None))
            continue
        if is_sealed(value):  # a Segment update keeping the lake's old value: opened, normalised here
            value = decrypt(s.ring, PURPOSE, value, s.ctx.decode())
            norm = _normalised(kind, value)
        if norm is not None:
            out.append((s.enc(value), s.hash(kind, norm), _mask(kind, norm)))
        else:  # an already masked phone stays readable as the weak phone_masked; junk gets no mask
            out.append((s.enc(value), None, value.strip() if kind == "phone" and "*" in value else None))
    return out


def _seal_identities(
    s: _Sealer, types: list[str], values: list[str], norms: list[Cell]
) -> list[tuple[str, Cell, Cell, Cell]]:
    """(key value, envelope, keyed hash, mask) of each identities row."""
    out: list[tuple[str, Cell, Cell, Cell]] = []
    for id_type, value, norm in zip(types, values, norms, strict=True):
        if id_type not in IDENTITY_TYPES or (id_type == "phone" and "*" in value):
            out.append((value, None, None, None))
        elif norm is not None:
            digest = s.hash(id_type, norm)
            out.append((digest, s.enc(value), digest, mask_value(id_type, norm)))
        else:  # not a usable phone: a key that is no identifier (One-ID drops it, as it dropped the text)
            out.append(("x" + s.hash(f"raw:{id_type}", value), s.enc(value), None, None))
    return out


def _columns(rows: list[tuple[Cell, ...]], width: int) -> list[pa.Array]:
    if not rows:
        return [pa.array([], pa.string()) for _ in range(width)]
    return [pa.array(list(column), pa.string()) for column in zip(*rows, strict=True)]


def _replace(table: pa.Table, column: str, new: dict[str, pa.Array]) -> pa.Table:
    at = table.column_names.index(column)
    table = table.remove_column(at)
    for offset, (name, values) in enumerate(new.items()):
        table = table.add_column(at + offset, name, values)
    return table


def seal_table(ring: Keyring, hash_key: str, entity: str, table: pa.Table) -> pa.Table:
    """`prepare`d rows of `entity` with their PII columns sealed (see the module docstring)."""
    if entity == "customers":
        for col, kind in SEALED[entity].items():
            if col not in table.column_names:
                continue
            sealer = _Sealer(ring, hash_key, context(entity, col))
            values = table[col].cast(pa.string()).to_pylist()
            sealed = _seal_customer_column(sealer, kind, values, table[_NORM + col].to_pylist())
            enc, hashes, masks = _columns(list(sealed), 3)
            table = table.drop_columns([_NORM + col])
            table = _replace(table, col, {f"{col}_enc": enc, f"{col}_hash": hashes, f"{col}_mask": masks})
    elif entity == "identities":
        sealer = _Sealer(ring, hash_key, context(entity, "id_value"))
        rows = _seal_identities(
            sealer, table["id_type"].to_pylist(), table["id_value"].to_pylist(), table[_NORM + "id_value"].to_pylist()
        )
        key, enc, hashes, masks = _columns(list(rows), 4)
        table = table.drop_columns([_NORM + "id_value"])
        table = _replace(table, "id_value", {"id_value": key, "id_value_enc": enc, "id_value_hash": hashes,
                                             "id_value_mask": masks})  # fmt: skip
    return table


def seal_batches(ring: Keyring, hash_key: str, entity: str, reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
    """The stream of `prepare`d batches, sealed batch by batch (never all rows in memory)."""
    first = seal_table(ring, hash_key, entity, reader.schema.empty_table())

    def sealed() -> Iterator[pa.RecordBatch]:
        for batch in reader:
            yield from seal_table(ring, hash_key, entity, pa.Table.from_batches([batch])).to_batches()

    return pa.RecordBatchReader.from_batches(first.schema, sealed())


def drop_prepared(table: ir.Table) -> ir.Table:
    """`table` without `prepare`'s helper columns (encryption off: the clear layout is landed)."""
    extra = [c for c in table.columns if c.startswith(_NORM)]
    return table.drop(*extra) if extra else table


def open_value(ring: Keyring, entity: str, column: str, envelope: str | None) -> str | None:
    """The clear value of one sealed lake cell; a clear cell (a lake written unsealed) as it is."""
    if envelope is None or not is_sealed(envelope):
        return envelope
    return decrypt(ring, PURPOSE, envelope, context(entity, column))


def sealed_index(entity: str, rows: pa.Table) -> dict[str, tuple[str | None, str, str]]:
    """keyed hash -> (mask, envelope, column) of the sealed cells of a handful of raw rows (one
    customer's), so a One-ID value that is a hash can be shown masked or, for a PII caller, opened."""
    columns = ["id_value"] if entity == "identities" else list(SEALED.get(entity, {}))
    out: dict[str, tuple[str | None, str, str]] = {}
    for col in columns:
        if f"{col}_hash" not in rows.column_names:
            continue
        for h, m, e in zip(*(rows[f"{col}_{p}"].to_pylist() for p in ("hash", "mask", "enc")), strict=True):
            if h is not None and e is not None:
                out.setdefault(h, (m, e, col))
    return out


def open_rows(ring: Keyring, entity: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A person's raw rows with each sealed column opened back into its clear column (a data-subject
    export: the person's own copy, in the shape they gave it)."""
    sealed = ["id_value"] if entity == "identities" else list(SEALED.get(entity, {}))
    if not rows or not any(f"{c}_enc" in rows[0] for c in sealed):
        return rows
    helpers = {f"{c}_{p}" for c in sealed for p in ("hash", "mask")}
    out = []
    for row in rows:
        opened: dict[str, Any] = {}
        for k, v in row.items():
            if k in helpers or (k in sealed and f"{k}_enc" in row):
                continue  # the clear value takes the place of its _enc column
            if k.endswith("_enc") and k[:-4] in sealed:
                col = k[:-4]
                opened[col] = row.get(col) if v is None and col == "id_value" else open_value(ring, entity, col, v)
            else:
                opened[k] = v
        out.append(opened)
    return out


def open_tagged(ring: Keyring, reader: pa.RecordBatchReader, columns: tuple[str, ...]) -> pa.RecordBatchReader:
    """A stream whose `columns` hold ``<table>.<column>|<envelope>`` (an unmasked audience export from a
    sealed lake), with each opened and normalised as One-ID normalises it; other cells pass as they are."""
    from siyu.identity.normalise import normalise_identifier

    def one(name: str, cell: str | None) -> str | None:
        if cell is None or "|" not in cell:
            return cell
        where, _, envelope = cell.partition("|")
        entity, _, column = where.partition(".")
        clear = open_value(ring, entity, column, envelope)
        if clear is None or name == "name":
            return clear
        norm = normalise_identifier(name, clear)
        return norm[1] if norm is not None else clear

    def opened() -> Iterator[pa.RecordBatch]:
        for batch in reader:
            arrays = [
                pa.array([one(n, v) for v in batch.column(n).to_pylist()], pa.string())
                if n in columns
                else batch.column(n)
                for n in batch.schema.names
            ]
            yield pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)

    present = tuple(c for c in columns if c in reader.schema.names)
    schema = pa.schema([pa.field(f.name, pa.string()) if f.name in present else f for f in reader.schema])
    return pa.RecordBatchReader.from_batches(schema, opened())
