"""Read API over HTTP on the hand-made brand `fx` (tests/fixtures/fast_brand.py): customer lookup and
360 with and without the `pii` scope, brand isolation, and FAST+ / RFM equal to the CLI's JSON."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from api.conftest import KeyMaker, bearer, running
from fixtures.fast_brand import write_brand
from siyu.bootstrap import App
from siyu.cli.app import app as cli
from siyu.identity.service import run_resolve
from siyu.ingest.importer import import_path


@pytest.fixture
def fx_url(app: App, tmp_path: Path) -> object:
    import_path(app, write_brand(tmp_path / "fx"))
    run_resolve(app)
    with running(app) as url:
        yield url


def test_customer_lookup_and_360(fx_url: str, make_key: KeyMaker) -> None:
    read, pii, other = make_key("fx", "read"), make_key("fx", "read,pii"), make_key("demo", "read")
    with httpx.Client(base_url=fx_url, timeout=60) as client:
        # C has two source records (POS and mini-program) merged by phone; any phone format finds it.
        found = client.get("/api/v1/customers", params={"phone": "138-0000-0003"}, headers=bearer(read)).json()
        assert len(found["customers"]) == 1
        cid = found["customers"][0]
        by_member = client.get("/api/v1/customers", params={"member_no": "M3"}, headers=bearer(read)).json()
        assert by_member["customers"] == [cid]

        view = client.get(f"/api/v1/customers/{cid}", headers=bearer(read)).json()
        assert sorted((s["source"], s["source_customer_id"]) for s in view["sources"]) == [("mp", "c2"), ("pos", "c1")]
        phones = [i["value"] for i in view["identifiers"] if i["type"] == "phone"]
        assert phones == ["138****0003"]  # masked without the pii scope
        assert view["memberships"][0]["member_no"] != "M3"
        # C's orders: 2024-05-31T17:00Z (June 1st local) and June 20 (see the fixture).
        assert len(view["recent_orders"]) == 2 and view["orders"]["count"] == 2
        assert {"layer_history", "recent_events", "rfm", "lifecycle", "clv"} <= set(view)

        full = client.get(f"/api/v1/customers/{cid}", headers=bearer(pii)).json()
        assert [i["value"] for i in full["identifiers"] if i["type"] == "phone"] == ["+8613800000003"]
        assert full["memberships"][0]["member_no"] == "M3"

        # Another brand's key sees nothing of fx.
        r = client.get(f"/api/v1/customers/{cid}", headers=bearer(other))
        assert r.status_code == 404 and r.json()["code"] == "not_found"
        assert client.get("/api/v1/customers", params={"phone": "13800000003"}, headers=bearer(other)).json() == {
            "customers": []
        }
        r = client.get("/api/v1/customers", params={"phone": "1", "member_no": "2"}, headers=bearer(read))
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "customer_id|phone|member_no"


def _cli_json(app: App, *args: str) -> object:
    env = {"SIYU_HOME": str(app.settings.home), "SIYU_DATABASE_URL": app.settings.store_url}
    result = CliRunner().invoke(cli, [*args, "--json"], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_metrics_equal_the_cli(app: App, fx_url: str, make_key: KeyMaker) -> None:
    key = make_key("fx", "read")
    with httpx.Client(base_url=fx_url, timeout=120) as client:
        fast = client.get("/api/v1/metrics/fast", params={"period": "2024-06"}, headers=bearer(key))
        assert fast.status_code == 200, fast.text
        body = fast.json()
        assert body["capital"] == 10  # hand-computed in tests/integration/test_fast_metrics.py
        assert body == _cli_json(app, "metrics", "fast", "--brand", "fx", "--period", "2024-06")

        trend = client.get("/api/v1/metrics/trend", params={"from": "2024-05", "to": "2024-06"}, headers=bearer(key))
        assert trend.json() == _cli_json(
            app, "metrics", "trend", "--brand", "fx", "--from", "2024-05", "--to", "2024-06"
        )

        rfm = client.get("/api/v1/metrics/rfm", params={"as_of": "2024-06-30"}, headers=bearer(key)).json()
        assert rfm == _cli_json(app, "metrics", "rfm", "--brand", "fx", "--as-of", "2024-06-30")

        bad = client.get("/api/v1/metrics/fast", params={"period": "2024-13"}, headers=bearer(key))
        assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
        bad = client.get("/api/v1/metrics/rfm", params={"as_of": "June"}, headers=bearer(key))
        assert bad.status_code == 400 and bad.json()["code"] == "bad_date"


def _stored_as_before_the_bounds(app: App, entity: str, key_column: str, key: str, column: str) -> None:
    """Append two rows of customer C (mp/c2) with `column` in years 12026 and -1 (2 BC), as the lake held
    them before import bounds existed (a Segment message's clock-skew correction, or a file's typo)."""
    template = app.engine.to_arrow(app.engine.table(entity)).slice(0, 1)
    rows = pa.concat_tables([template, template])
    for name, values in ((key_column, [key, key + "-bc"]), ("source", ["mp"] * 2), ("source_customer_id", ["c2"] * 2)):
        rows = rows.set_column(rows.schema.get_field_index(name), name, pa.array(values))
    micros_per_year = 365_2425 * 864 * 10**5  # 365.2425 days
    far = [(12026 - 1970) * micros_per_year, -(1970 + 2) * micros_per_year]
    index = rows.schema.get_field_index(column)
    rows = rows.set_column(index, column, pa.array(far, pa.int64()).cast(rows.schema.field(column).type))
    app.lake.append(entity, rows)


def test_customer_view_survives_timestamps_python_cannot_hold(app: App, fx_url: str, make_key: KeyMaker) -> None:
    _stored_as_before_the_bounds(app, "events", "event_id", "e-far", "occurred_at")
    _stored_as_before_the_bounds(app, "orders", "order_id", "o-far", "paid_at")
    key = make_key("fx", "read")
    with httpx.Client(base_url=fx_url, timeout=60) as client:
        cid = client.get("/api/v1/customers", params={"phone": "13800000003"}, headers=bearer(key)).json()
        r = client.get(f"/api/v1/customers/{cid['customers'][0]}", headers=bearer(key))
        assert r.status_code == 200, r.text  # was 500: OverflowError: date value out of range
        view = r.json()
    far_events = [e for e in view["recent_events"] if e["event_id"].startswith("e-far")]
    assert len(far_events) == 2 and all(e["occurred_at"] is None for e in far_events)
    far_orders = [o for o in view["recent_orders"] if o["order_id"].startswith("o-far")]
    assert len(far_orders) == 2 and all(o["paid_at"] is None for o in far_orders)
    assert view["orders"]["count"] == 4 and view["orders"]["last_paid_at"] is None  # the max is year 12026
