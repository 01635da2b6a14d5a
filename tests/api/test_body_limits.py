"""The 8 MiB body cap holds on every route (loyalty routes used to skip it), and points are strict integers."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from api.conftest import KeyMaker, bearer
from siyu.api.gzip import MAX_BODY

OVER = MAX_BODY + 2 * 1024 * 1024  # 10 MiB
ROUTES = [  # one POST of each router that takes a body
    "/api/v1/loyalty/demo_club/members/c1/points/redeem",
    "/api/v1/loyalty/demo_club/members",
    "/api/v1/loyalty/demo_club/coupons/issue",
    "/api/v1/audiences",
    "/api/v1/ingest/customers",
    "/v1/batch",
]


def _padded_json() -> bytes:
    """A valid JSON object of OVER bytes: whitespace, so only its size is wrong."""
    head = b'{"points": 1, "idempotency_key": "k1"'
    return head + b" " * (OVER - len(head) - 1) + b"}"


@pytest.mark.parametrize("path", ROUTES)
def test_a_body_over_the_cap_is_413_on_every_route(client: httpx.Client, make_key: KeyMaker, path: str) -> None:
    key = make_key("demo", "admin")
    headers = {**bearer(key), "Content-Type": "application/json"}
    r = client.post(path, content=_padded_json(), headers=headers)
    assert r.status_code == 413, r.text[:500]
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "payload_too_large"


def test_a_chunked_body_over_the_cap_is_413(client: httpx.Client, make_key: KeyMaker) -> None:
    """No Content-Length: counted as it arrives."""
    body = _padded_json()

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 1024 * 1024):
            yield body[i : i + 1024 * 1024]

    headers = {**bearer(make_key("demo", "admin")), "Content-Type": "application/json"}
    r = client.post(ROUTES[0], content=chunks(), headers=headers)
    assert r.status_code == 413, r.text[:500]
    assert r.json()["code"] == "payload_too_large"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (ROUTES[0], {"points": True, "idempotency_key": "k1"}),
        (ROUTES[0], {"points": "7", "idempotency_key": "k1"}),
        (ROUTES[0], {"points": 7.0, "idempotency_key": "k1"}),
        ("/api/v1/loyalty/demo_club/members/c1/points/adjust", {"points": "7", "reason": "r", "idempotency_key": "k"}),
        ("/api/v1/loyalty/demo_club/points/1/reverse", {"points": True, "idempotency_key": "k1"}),
        ("/api/v1/loyalty/demo_club/coupons/C1/redeem", {"order_id": "o1", "amount_fen": "100"}),
        ("/api/v1/loyalty/demo_club/mall/mug/redeem", {"customer_id": "c1", "quantity": True, "idempotency_key": "k"}),
    ],
)
def test_points_and_fen_are_strict_integers(
    client: httpx.Client, make_key: KeyMaker, path: str, body: dict[str, object]
) -> None:
    r = client.post(path, json=body, headers=bearer(make_key("demo", "admin")))
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_request"
    assert {e["field"] for e in r.json()["errors"]} <= {"points", "amount_fen", "quantity"}
