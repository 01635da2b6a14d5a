"""Which WeCom contacts (external_userid) are in an audience: the audience's customers, through the
One-ID map, to their source customers of source `wecom` (whose id is the external_userid)."""

from __future__ import annotations

from siyu.audiences.service import compiled_audience
from siyu.bootstrap import App
from siyu.identity.service import MAP_TABLE, NothingToResolveError
from siyu.wecom.process import SOURCE


def audience_contacts(app: App, brand: str, code: str) -> set[str]:
    idmap = app.engine.table(MAP_TABLE)
    if idmap is None:
        raise NothingToResolveError("no identity map yet: run `siyu resolve` first (尚未运行 One-ID)")
    with compiled_audience(app, brand, code, None, None) as (_, ids):
        wecom = idmap.filter((idmap.brand == brand) & (idmap.source == SOURCE))
        joined = wecom.semi_join(ids, wecom.customer_id == ids.customer_id).select("source_customer_id").distinct()
        return {str(v) for v in app.engine.to_arrow(joined)["source_customer_id"].to_pylist()}
