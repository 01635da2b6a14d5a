"""Security headers on every answer over real HTTP: data answers may load and frame nothing, the
HTML docs only same-origin, and customer reads are never cached."""

from __future__ import annotations

import httpx

from api.conftest import bearer, new_key, running
from siyu.bootstrap import App


def test_every_kind_of_answer_carries_the_headers(sqlite_app: App) -> None:
    key = new_key(sqlite_app, "acme", "read")
    with running(sqlite_app) as url, httpx.Client(base_url=url, timeout=30) as client:
        health = client.get("/health")
        docs = client.get("/docs")
        refused = client.get("/api/v1/customers", params={"phone": "13800000000"})  # no key: 401
        read = client.get("/api/v1/customers", params={"phone": "13800000000"}, headers=bearer(key))
    for answer in (health, docs, refused, read):
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert "strict-transport-security" not in answer.headers  # plain HTTP: HSTS would mean nothing
    assert health.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    csp = docs.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "http" not in csp  # no CDN origin
    assert refused.status_code == 401 and refused.headers["cache-control"] == "no-store"
    assert read.status_code == 404 and read.headers["cache-control"] == "no-store"  # an authorised read: nobody
    assert "cache-control" not in health.headers or health.headers["cache-control"] != "no-store"
