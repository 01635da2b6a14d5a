"""Reachability lights (亮灯): through which channels siyu can reach a customer now.

A channel is lit when the customer holds what the channel needs (an identifier or an active
relation, below) at the end of the as-of day, and has not withdrawn consent for it.

| channel | needs |
| sms 短信 | a phone |
| email 邮件 | an e-mail address |
| wecom 企业微信 | an active `wecom_friend` relation |
| official_account 公众号 | an active `official_account_follow` relation |
| mini_program_subscription 小程序订阅消息 | an active `subscription` relation in field `mini_program` /
  `subscription` |
| douyin 抖音 | a `douyin_openid`, or an active relation in a field of platform `douyin` |
| tmall 天猫 | a `tmall_ouid`, or an active relation in a field of platform `tmall` |
| offline_store 线下门店 | a `store_code` on a customer record, or an active relation in a field of platform `offline` |

Consent comes from two places, and the latest record per customer and channel up to the end of the
as-of day wins:
- events (imported like any event): `unsubscribe` with `properties.channel`, and `consent` with
  `properties.channel` and `properties.granted` (true / false). A missing or `all` channel applies
  to every channel. Read from the lake, so an as-of day in the past sees the past;
- the consent ledger (siyu.messaging.consent) for every decision that did not come from an event:
  `siyu consent set`, the API, the unsubscribe link, an SMS "R" reply. A record names a channel, or
  a purpose whose channel is known (marketing_sms → sms, marketing_email → email, wecom → wecom).
  The ledger's customer id is the one at the time of the decision.
 No record means "not withdrawn" (the channel's own opt-in, such as a WeChat
subscription, is its relation); `{"consent": "sms"}` asks for an explicit grant.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa
from sqlalchemy import select as sql_select

from siyu.audiences.context import ID, Context, ids
from siyu.audiences.labels import CHANNELS
from siyu.audiences.profile import identified, relation_rows
from siyu.audiences.rules import Leaf
from siyu.engine.adapter import json_text
from siyu.messaging.consent import CHANNEL_PURPOSE
from siyu.messaging.ledger_models import ConsentRecord
from siyu.store.models import Field

AT = "timestamp('UTC', 6)"  # both sources' decision times, to the microsecond
PURPOSE_CHANNEL = {purpose: channel for channel, purpose in CHANNEL_PURPOSE.items()}

CONSENT_EVENTS = ("consent", "unsubscribe")
CHANNEL_IDENTIFIERS = {"sms": "phone", "email": "email", "douyin": "douyin_openid", "tmall": "tmall_ouid"}
PLATFORM_CHANNELS = {"douyin": "douyin", "tmall": "tmall", "offline_store": "offline"}
RELATION_CHANNELS = {
    "wecom": ("wecom_friend", None),
    "official_account": ("official_account_follow", None),
    "mini_program_subscription": ("subscription", ("mini_program", "subscription")),
}


def consent_latest(ctx: Context) -> ir.Table:
    """customer_id, channel, granted: the latest consent record per customer and channel."""
    if "consent" in ctx.cache:
        return ctx.cache["consent"]
    parts = [p for p in (_event_decisions(ctx), _ledger_decisions(ctx)) if p is not None]
    if not parts:
        latest = ibis.memtable(
            {ID: [], "channel": [], "granted": []}, schema={ID: "string", "channel": "string", "granted": "boolean"}
        )
    else:
        rows = parts[0] if len(parts) == 1 else ibis.union(*parts)
        ranked = rows.mutate(
            _n=ibis.row_number().over(group_by=[ID, "channel"], order_by=[ibis.desc("at"), ibis.desc("tiebreak")])
        )
        latest = ranked.filter(ranked._n == 0).select(ID, "channel", "granted")
        latest = ctx.materialise(latest, "consent")  # read by every channel: computed once
    ctx.cache["consent"] = latest
    return latest


def _event_decisions(ctx: Context) -> ir.Table | None:
    """customer_id, channel, granted, at, tiebreak from the lake's consent and unsubscribe events."""
    e = ctx.raw("events")
    if e is None:
        return None
    end = ibis.literal(ctx.end_of_as_of(), type="timestamp('UTC')")
    e = e.filter(e.type.isin(CONSENT_EVENTS) & (e.occurred_at < end))
    # `json_text`, not Ibis's JSON type: natively on every engine (on Spark the JSON type is a Python UDF).
    flag = json_text(e.properties, "granted").lower()
    rows = e.select(
        "source",
        "source_customer_id",
        "occurred_at",
        "event_id",
        channel=json_text(e.properties, "channel").fill_null("all"),
        granted=(e.type == "consent") & ~flag.isin(("false", "0", "no")).fill_null(False),
    )
    rows = ctx.resolve(rows)
    every = ibis.memtable(pa.table({"ch": list(CHANNELS)}))
    spread = rows.cross_join(every)
    spread = spread.filter((spread.channel == "all") | (spread.channel == spread.ch))
    return spread.select(
        ID,
        channel=spread.ch,
        granted=spread.granted,
        at=spread.occurred_at.cast(AT),
        tiebreak=ibis.literal("e:") + spread.event_id,
    )


def _ledger_decisions(ctx: Context) -> ir.Table | None:
    """The same from the consent ledger's records that did not come from an event (those are read
    from the lake above, with their own time)."""
    end = ctx.end_of_as_of()
    record = ConsentRecord
    query = sql_select(record.id, record.customer_id, record.purpose, record.channel, record.granted, record.at).where(
        record.brand == ctx.brand.code, record.source != "event", record.at < end
    )
    if ctx.customer_id is not None:
        query = query.where(record.customer_id == ctx.customer_id)
    with ctx.app.store.unit_of_work() as session:
        found = session.execute(query).all()
    if not found:
        return None
    ident, customer, purpose, channel, granted, at = (list(c) for c in zip(*found, strict=True))
    table = pa.table(
        {
            ID: pa.array(customer, pa.string()),
            "purpose": pa.array(purpose, pa.string()),
            "named": pa.array(channel, pa.string()),
            "granted": pa.array(granted, pa.bool_()),
            "at": pa.array([a if a.tzinfo else a.replace(tzinfo=UTC) for a in at], pa.timestamp("us", "UTC")),
            "tiebreak": pa.array([f"l:{i:020d}" for i in ident], pa.string()),
        }
    )
    purposes = ibis.memtable(pa.table({"p": list(PURPOSE_CHANNEL), "pch": list(PURPOSE_CHANNEL.values())}))
    rows = ibis.memtable(table)
    rows = rows.left_join(purposes, rows.purpose == purposes.p)
    rows = rows.mutate(channel=rows.named.fill_null(rows.pch))
    rows = rows.filter(rows.channel.notnull() & rows.channel.isin(list(CHANNELS)))
    return rows.select(ID, "channel", "granted", at=rows.at.cast(AT), tiebreak="tiebreak")


def consent(ctx: Context, leaf: Leaf) -> ir.Table:
    latest = consent_latest(ctx)
    mine = latest.filter(latest.channel == leaf.value)
    state = leaf.params.get("state", "granted")
    if state == "unknown":
        return ctx.universe.anti_join(ids(mine), ID)
    return ids(mine.filter(mine.granted if state == "granted" else ~mine.granted))


def _platform_fields(ctx: Context, platform: str) -> tuple[str, ...]:
    with ctx.app.store.unit_of_work() as session:
        rows = session.execute(sql_select(Field.code, Field.platform).where(Field.brand == ctx.brand.code)).all()
    return tuple(code for code, p in rows if p == platform or (p is None and code.startswith(platform)))


def _active_relations(ctx: Context) -> ir.Table:
    if "relations" not in ctx.cache:  # read by six channels: computed once
        rows = relation_rows(ctx, None, None).distinct()
        ctx.cache["relations"] = ctx.materialise(rows, "relations")
    return ctx.cache["relations"]


def holds(ctx: Context, channel: str) -> ir.Table:
    """Customers holding what the channel needs (before consent)."""
    parts: list[ir.Table] = []
    if channel in CHANNEL_IDENTIFIERS:
        found = identified(ctx)  # read by four channels and by identifier conditions: computed once
        parts.append(ids(found.filter(found.id_type == CHANNEL_IDENTIFIERS[channel])))
    if channel in RELATION_CHANNELS:
        rtype, fields = RELATION_CHANNELS[channel]
        active = _active_relations(ctx)
        held = active.filter(active.relation_type == rtype)
        parts.append(ids(held if fields is None else held.filter(held.field.isin(fields))))
    if channel in PLATFORM_CHANNELS:
        platform_fields = _platform_fields(ctx, PLATFORM_CHANNELS[channel])
        if platform_fields:
            active = _active_relations(ctx)
            parts.append(ids(active.filter(active.field.isin(platform_fields))))
    if channel == "offline_store":
        customers = ctx.raw("customers")
        if customers is not None:
            bound = customers.filter(customers.store_code.notnull())
            parts.append(ids(ctx.resolve(bound.select("source", "source_customer_id"))))
    return parts[0] if len(parts) == 1 else ibis.union(*parts, distinct=True)


def withdrawn(ctx: Context, channel: str) -> ir.Table:
    latest = consent_latest(ctx)
    return ids(latest.filter((latest.channel == channel) & ~latest.granted))


def lit(ctx: Context, channel: str) -> ir.Table:
    return holds(ctx, channel).anti_join(withdrawn(ctx, channel), ID)


def reachable(ctx: Context, leaf: Leaf) -> ir.Table:
    return lit(ctx, str(leaf.value))


def flags(ctx: Context, population: ir.Table) -> ir.Table:
    """population's customer_id with, per channel, `<channel>` (lit), `<channel>_holds`, `<channel>_withdrawn`."""
    out = population.select(ID)
    for ch in CHANNELS:
        for suffix, part in (("_holds", holds(ctx, ch)), ("_withdrawn", withdrawn(ctx, ch))):
            out = out.left_join(part.mutate(**{f"{ch}{suffix}": ibis.literal(True)}), ID).drop(f"{ID}_right")
    return out.select(
        ID, **{c: out[c].fill_null(False) for ch in CHANNELS for c in (f"{ch}_holds", f"{ch}_withdrawn")}
    ).mutate(**{ch: ibis._[f"{ch}_holds"] & ~ibis._[f"{ch}_withdrawn"] for ch in CHANNELS})


def counts(ctx: Context, population: ir.Table) -> dict[str, Any]:
    """How many of the population each channel reaches now, and how many no channel reaches."""
    f = flags(ctx, population)
    anyone = ibis.literal(False)
    for ch in CHANNELS:
        anyone |= f[ch]
    aggs = {ch: f[ch].cast("int64").sum() for ch in CHANNELS}
    row = ctx.app.engine.to_arrow(f.aggregate(n=f.count(), reachable=anyone.cast("int64").sum(), **aggs)).to_pylist()[0]
    n = int(row["n"])
    return {
        "customers": n,
        "reachable_any": int(row["reachable"] or 0),
        "unreachable": n - int(row["reachable"] or 0),
        "channels": {
            ch: {
                "name_zh": zh,
                "name_en": en,
                "customers": int(row[ch] or 0),
                "share": round(int(row[ch] or 0) / n, 4) if n else None,
            }
            for ch, (zh, en) in CHANNELS.items()
        },
    }
