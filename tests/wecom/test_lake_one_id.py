"""What a WeCom add reports lands in the lake through the inbox and the loader, and One-ID joins the
WeCom contact to the same person's mini-program record by unionid."""

from __future__ import annotations

import httpx

from fixtures import wecom_wire as wire
from siyu.bootstrap import App
from siyu.fakes.wecom import FakeWeCom
from siyu.identity.service import MAP_TABLE
from siyu.ingest.loader import Loader
from siyu.ingest.rows import accept_rows
from siyu.ingest.views import latest
from siyu.wecom.process import process_batch
from siyu.wecom.runtime import WecomRuntime
from wecom.conftest import BRAND

T0 = 1_733_212_800


def test_contact_lands_and_joins_by_unionid(api: tuple[str, WecomRuntime], wecom_app: App, fake: FakeWeCom) -> None:
    url, runtime = api
    fake.add_contact("wmLAKE", "zhangsan", name="王芳", unionid="oUNIONLAKE")
    params, body = wire.callback(wire.contact_event("add_external_contact", "wmLAKE", "zhangsan", T0))
    assert httpx.post(f"{url}/wecom/callback/{BRAND}", params=params, content=body).status_code == 200
    assert process_batch(wecom_app, runtime.client) == 1
    mini = {"source": "mini_program", "source_customer_id": "mp-9", "unionid": "oUNIONLAKE", "name": "王芳"}
    assert accept_rows(wecom_app, "customers", [mini], BRAND, None).as_json()["counts"]["accepted"] == 1
    Loader(wecom_app).drain()

    idmap = wecom_app.engine.to_arrow(wecom_app.engine.table(MAP_TABLE)).to_pylist()  # type: ignore[union-attr]
    ids = {(r["source"], r["source_customer_id"]): r["customer_id"] for r in idmap if r["brand"] == BRAND}
    assert ids[("wecom", "wmLAKE")] == ids[("mini_program", "mp-9")]
    relations = wecom_app.engine.to_arrow(latest(wecom_app.engine, "relations")).to_pylist()  # type: ignore[arg-type]
    assert [(r["relation_type"], r["field"], r["staff_code"], r["ended_at"]) for r in relations] == [
        ("wecom_friend", "wecom", "zhangsan", None)
    ]
    events = wecom_app.engine.to_arrow(latest(wecom_app.engine, "events")).to_pylist()  # type: ignore[arg-type]
    assert [(e["type"], e["source_customer_id"]) for e in events] == [("wecom_friend_added", "wmLAKE")]
