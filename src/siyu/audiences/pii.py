"""The columns of previews and exports, with PII masked in the engine (vectorised, never a Python
loop over rows): phone 138****5678, e-mail a***@example.com, name 王**. Same shapes as
`siyu.identity.normalise.mask_value`, which masks single values in the customer view.

The audience is computed once into a temporary table, and only its customers' source records are
read for the columns, so an export costs one audience evaluation plus a scan of the profile tables.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from siyu.audiences.context import ID, NODE, Context
from siyu.identity.resolve import extract_identifiers
from siyu.ingest.schema import ENTITIES
from siyu.metrics.layers import active_at
from siyu.privacy.lake_columns import is_sealed_table


def mask_phone(col: ir.StringValue) -> ir.StringValue:
    digits = ibis.ifelse(col.startswith("+86"), col.substr(3), col)
    return digits.substr(0, 3) + "****" + digits.right(4)


def mask_email(col: ir.StringValue) -> ir.StringValue:
    return col.substr(0, 1) + "***@" + col.re_extract(r"@(.*)$", 1)


def mask_name(col: ir.StringValue) -> ir.StringValue:
    return col.substr(0, 1) + "**"


def _empty(entity: str) -> ir.Table:
    return ibis.memtable(pa.table({n: pa.array([], pa.string()) for n in ENTITIES[entity].column_names}))


def profile_columns(ctx: Context, audience: ir.Table, unmasked: bool = False) -> ir.Table:
    """customer_id, name, phone, email, city, tier for the audience (one row per customer; where a
    merged customer has several values, the smallest is shown)."""
    members = ctx.materialise(audience.select(ID).distinct(), "members")
    records = ctx.materialise(ctx.idmap.semi_join(members, ID), "records")
    mine = {e: ctx.raw(e) for e in ("customers", "identities", "memberships")}
    # The audience's own source records, once each (identifier extraction reads them per column).
    picked = {e: (_empty(e) if t is None else ctx.materialise(t.semi_join(records, NODE), e)) for e, t in mine.items()}
    if any(is_sealed_table(picked["customers"], col) for col in ("phone", "email", "name")):
        contact, person = _sealed_contact(picked, records, unmasked)
    else:
        found = extract_identifiers(picked["customers"], picked["identities"], picked["memberships"])
        found = found.filter(found.id_type.isin(("phone", "email"))).join(records, NODE)
        contact = found.group_by(ID).agg(
            phone=found.id_value.min(where=found.id_type == "phone"),
            email=found.id_value.min(where=found.id_type == "email"),
        )
        c = picked["customers"].join(records, NODE)
        person = c.group_by(ID).agg(name=c["name"].min(), city=c.city.min())
        if not unmasked:
            contact = contact.mutate(phone=mask_phone(contact.phone), email=mask_email(contact.email))
            person = person.mutate(name=mask_name(person["name"]))
    m = picked["memberships"]
    if mine["memberships"] is not None:
        end = ibis.literal(ctx.end_of_as_of(), type="timestamp('UTC')")
        m = m.filter(active_at(m, "joined_at", "left_at", end)).join(records, NODE)
        tier = m.group_by(ID).agg(tier=m.tier.max())
    else:
        tier = ibis.memtable({ID: [], "tier": []}, schema={ID: "string", "tier": "string"})
    out = members
    for part in (contact, person, tier):
        out = out.left_join(part, ID).drop(f"{ID}_right")
    return out.select(ID, "name", "phone", "email", "city", "tier")


def _sealed_contact(picked: dict[str, ir.Table], records: ir.Table, unmasked: bool) -> tuple[ir.Table, ir.Table]:
    """Phone, e-mail and name from a sealed lake (siyu.privacy.lake_columns): their mask columns, or
    for an unmasked export their envelopes tagged with where they came from (`open_tagged` opens them
    as the export streams)."""
    c = picked["customers"].join(records, NODE)
    i = picked["identities"].join(records, NODE)

    def kept(table: ir.Table, col: str, tag: str) -> ir.StringValue:
        return (tag + "|" + table[f"{col}_enc"]) if unmasked else table[f"{col}_mask"]

    parts = [
        c.filter(c[f"{kind}_hash"].notnull()).select(
            ID, id_type=ibis.literal(kind), value=kept(c, kind, f"customers.{kind}")
        )
        for kind in ("phone", "email")
        if is_sealed_table(c, kind)
    ]
    if "id_value_hash" in i.columns:
        parts.append(
            i.filter(i.id_value_hash.notnull() & i.id_type.isin(("phone", "email"))).select(
                ID, "id_type", value=kept(i, "id_value", "identities.id_value")
            )
        )
    if not parts:  # the lake has no phone or e-mail column at all
        empty = {
            ID: pa.array([], pa.string()),
            "id_type": pa.array([], pa.string()),
            "value": pa.array([], pa.string()),
        }
        parts.append(ibis.memtable(pa.table(empty)))
    found = ibis.union(*parts, distinct=False) if len(parts) > 1 else parts[0]
    contact = found.group_by(ID).agg(
        phone=found.value.min(where=found.id_type == "phone"), email=found.value.min(where=found.id_type == "email")
    )
    name = kept(c, "name", "customers.name") if is_sealed_table(c, "name") else ibis.null(str)
    person = c.group_by(ID).agg(name=name.min(), city=c.city.min())
    return contact, person
