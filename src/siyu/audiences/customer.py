"""What the customer view (客户视图) shows of tags and reachability: the customer's tags with where
they came from, and one light per channel with the reason when it is off."""

from __future__ import annotations

from datetime import date
from typing import Any

import ibis

from siyu.audiences import reach
from siyu.audiences.context import Context
from siyu.audiences.labels import CHANNELS
from siyu.audiences.reach import CHANNEL_IDENTIFIERS, RELATION_CHANNELS
from siyu.audiences.tags import customer_tags
from siyu.bootstrap import App

NEEDS: dict[str, tuple[str, str]] = {
    **{ch: (f"无{t}", f"no {t}") for ch, t in CHANNEL_IDENTIFIERS.items()},
    **{ch: (f"无有效{r}关系", f"no active {r} relation") for ch, (r, _) in RELATION_CHANNELS.items()},
    "offline_store": ("未绑定门店", "no store binding or offline relation"),
}


def customer_lights(app: App, customer_id: str, brand: str, as_of: date | None = None) -> dict[str, Any]:
    """{channel: {on, holds, withdrawn, name_zh, name_en, reason_zh, reason_en}} for one customer."""
    ctx = Context(app, brand, as_of, customer_id=customer_id)
    try:
        # One labelled row per flag the customer has, as one union: the same parts as `flags`, without
        # its chain of 16 left joins, whose nesting made compiling the query the slow part.
        parts = [
            part.select(flag=ibis.literal(f"{ch}{suffix}"))
            for ch in CHANNELS
            for suffix, part in (("_holds", reach.holds(ctx, ch)), ("_withdrawn", reach.withdrawn(ctx, ch)))
        ]
        found = app.engine.to_arrow(ibis.union(*parts, distinct=True))["flag"].to_pylist()
    finally:
        ctx.release()
    row = dict.fromkeys(found, True)
    out: dict[str, Any] = {}
    for ch, (zh, en) in CHANNELS.items():
        holds, withdrawn = bool(row.get(f"{ch}_holds")), bool(row.get(f"{ch}_withdrawn"))
        on = holds and not withdrawn
        if on:
            reason = ("可触达", "reachable")
        elif not holds:
            reason = NEEDS.get(ch, ("不满足触达条件", "nothing to reach them by"))
        else:
            reason = ("已退订或撤回授权", "unsubscribed or consent withdrawn")
        out[ch] = {
            "on": on,
            "holds": holds,
            "withdrawn": withdrawn,
            "name_zh": zh,
            "name_en": en,
            "reason_zh": reason[0],
            "reason_en": reason[1],
        }
    return out


__all__ = ["customer_lights", "customer_tags"]
