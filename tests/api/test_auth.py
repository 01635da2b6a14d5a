"""The auth matrix over HTTP: missing / wrong / revoked key, wrong scope, wrong brand, rate limits."""

from __future__ import annotations

import base64

import httpx

from api.conftest import KeyMaker, bearer
from siyu.api.keys import do_create_key, do_revoke_key, parse_scopes
from siyu.bootstrap import App
from siyu.core.actor import Actor

ROWS = [{"source": "crm", "source_customer_id": "u1"}]


def _basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def _problem(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert (body["status"], body["code"]) == (status, code)
    assert body["type"].endswith(code) and body["title"] and body["detail"]


def test_missing_wrong_and_revoked_keys(app: App, client: httpx.Client, make_key: KeyMaker) -> None:
    r = client.post("/api/v1/ingest/customers", json=ROWS)
    _problem(r, 401, "unauthorized")
    assert "Bearer" in r.headers["www-authenticate"]
    _problem(client.post("/api/v1/ingest/customers", json=ROWS, headers=bearer("sk_siyu_nope")), 401, "unauthorized")
    _problem(client.post("/v1/track", json={"userId": "u", "event": "X"}, headers=_basic("nope")), 401, "unauthorized")

    with app.store.begin(Actor.system("tests")) as uow:
        secret, info = do_create_key(uow, "demo", parse_scopes(["ingest"]))
    with app.store.begin(Actor.user("admin")) as uow:
        do_revoke_key(uow, info.id)
    _problem(client.post("/api/v1/ingest/customers", json=ROWS, headers=bearer(secret)), 401, "unauthorized")


def test_scopes(client: httpx.Client, make_key: KeyMaker) -> None:
    ingest, read, admin = make_key("demo", "ingest"), make_key("demo", "read"), make_key("demo", "admin")
    # An ingest key cannot read; a read key cannot write.
    _problem(client.get("/api/v1/customers", params={"phone": "13800000001"}, headers=bearer(ingest)), 403, "forbidden")
    _problem(client.get("/api/v1/metrics/fast", params={"period": "2026-10"}, headers=bearer(ingest)), 403, "forbidden")
    _problem(client.post("/api/v1/ingest/customers", json=ROWS, headers=bearer(read)), 403, "forbidden")
    _problem(client.post("/v1/track", json={"userId": "u", "event": "X"}, headers=_basic(read)), 403, "forbidden")
    # Basic (Segment style) and Bearer both carry a key; admin may write.
    assert client.post("/api/v1/ingest/customers", json=ROWS, headers=_basic(ingest)).status_code == 200
    assert client.post("/api/v1/ingest/customers", json=ROWS, headers=bearer(admin)).status_code == 200
    # Data-subject rights need admin and pii: neither alone will do (pii is never implied by admin).
    pii = make_key("demo", "read,pii")
    for route in ("/api/v1/subjects/export", "/api/v1/subjects/erase"):
        body = {"key": "13800000001", "reason": "request #1"}
        _problem(client.post(route, json=body), 401, "unauthorized")
        for key in (read, admin, pii):
            _problem(client.post(route, json=body, headers=bearer(key)), 403, "forbidden")


def test_rate_limit(client: httpx.Client, make_key: KeyMaker) -> None:
    key = make_key("demo", "ingest", rate_limit=1)  # 1 request/s, bursts of 2
    # The limit is checked with the key, before the body: bodies that fail validation at once keep the
    # requests quick, so the bucket cannot refill between them however loaded the machine is.
    bad = {"not": "a list of rows"}
    statuses = [client.post("/api/v1/ingest/customers", json=bad, headers=bearer(key)).status_code for _ in range(2)]
    assert statuses == [422, 422]  # allowed through the limit, refused for their body
    r = client.post("/api/v1/ingest/customers", json=ROWS, headers=bearer(key))
    _problem(r, 429, "rate_limited")
    assert int(r.headers["retry-after"]) >= 1
    other = make_key("demo", "ingest")  # limits are per key
    assert client.post("/api/v1/ingest/customers", json=ROWS, headers=bearer(other)).status_code == 200


def test_operations_endpoints(client: httpx.Client, make_key: KeyMaker) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready").json()
    assert ready["status"] == "ready" and ready["inbox_pending"] == 0
    key = make_key("demo", "ingest")
    client.post("/api/v1/ingest/customers", json=ROWS, headers=bearer(key))
    metrics = client.get("/metrics").text
    assert 'siyu_ingest_messages_total{kind="customers"} 1.0' in metrics
    assert "siyu_inbox_pending 1.0" in metrics
    assert client.get("/openapi.json").json()["paths"]["/v1/batch"]["post"]["requestBody"]
    docs = client.get("/docs").text
    assert "/docs-assets/swagger-ui-bundle.js" in docs and "cdn" not in docs  # no CDN: works offline
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
