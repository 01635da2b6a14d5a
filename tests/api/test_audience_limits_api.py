"""Audience requests cannot tie up the server (docs/api.md "Limits"): oversized or out-of-range rules
answer 422 `invalid_rule` before anything compiles, audience work past its time limit answers 503
with Retry-After, and it runs on engines of its own, so customer reads never wait behind it. Also:
a key sees only its own brand's customers' tags."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from api.conftest import bearer, new_key, running, serving
from siyu.api.app import create_app
from siyu.bootstrap import App

AS_OF = {"as_of": "2024-06-30"}


def key(app: App, brand: str = "au", scopes: str = "read") -> dict[str, str]:
    return bearer(new_key(app, brand, scopes))


def tuned(app: App, **settings: Any) -> App:
    """The same workspace served with other settings."""
    return replace(app, settings=app.settings.model_copy(update=settings))


@pytest.fixture(scope="module")
def au_url(au_app: App) -> Iterator[str]:
    with running(au_app) as url:
        yield url


def count(client: httpx.Client, rule: Any, headers: dict[str, str], **params: str) -> httpx.Response:
    return client.post("/api/v1/audiences/count", params={**AS_OF, **params}, json={"rule": rule}, headers=headers)


def deep_not(depth: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"identifier": "phone"}
    for _ in range(depth):
        doc = {"not": doc}
    return doc


BAD_RULES = [
    # Each answered 500 before (the exception) or held an engine for minutes.
    ({"all": [{"did": "visit", "field": "mini_program", "min_times": 2, "last_days": 30}] * 20_000}, "MAX_NODES"),
    ({"attribute": "city", "op": "in", "value": [f"c{i}" for i in range(200_000)]}, "MAX_VALUES"),
    (deep_not(100), "MAX_DEPTH"),  # RecursionError
    ("not " * 5000 + "has phone", "MAX_CHARS"),  # RecursionError
    (" and ".join(["has phone"] * 500), "MAX_NODES"),  # RecursionError
    ("spent >= 999999999999999999999999999999", "int64"),  # TypeError
    ({"did": "visit", "min_times": 10**30}, "2,147,483,647"),  # TypeError
    ("did visit in last 999999999 days", "3,660"),  # OverflowError
    ({"did": "visit", "to": "9999-12-31"}, "2999-12-31"),  # OverflowError
    ({"did": "visit", "properties": {"a' or 1=1 --": "x"}}, "property name"),  # sqlglot TokenError
    ({"tag": "score", "op": "between", "value": ["a", 1]}, "number"),
]


def test_bad_rules_answer_422_before_anything_compiles(au_app: App, au_url: str) -> None:
    read, admin = key(au_app), key(au_app, scopes="admin")
    with httpx.Client(base_url=au_url, timeout=60) as c:
        for rule, limit in BAD_RULES:
            started = time.monotonic()
            r = count(c, rule, read)
            assert r.status_code == 422, (rule if len(str(rule)) < 200 else limit, r.text)
            assert r.json()["code"] == "invalid_rule" and limit in r.json()["detail"]
            assert time.monotonic() - started < 5  # refused on sight (the first took 12 minutes)
        created = c.post("/api/v1/audiences", json={"code": "deep", "rule": deep_not(50)}, headers=admin)
        assert created.status_code == 422 and "SIYU_RULE_MAX_DEPTH" in created.json()["detail"]
        r = count(c, "has phone", read, as_of="9999-12-31")  # OverflowError at the end of the as-of day
        assert r.status_code == 422 and r.json()["code"] == "invalid_rule"
        assert count(c, {"did": "visit", "properties": {"utm_source": "wx"}}, read).json()["customers"] == 0
        assert count(c, "has phone", read).json()["customers"] == 5  # A B C D E


def test_audience_work_past_the_time_limit_answers_503(au_app: App) -> None:
    read = key(au_app)
    with running(tuned(au_app, api_audience_timeout=0.001)) as url, httpx.Client(base_url=url, timeout=60) as c:
        r = count(c, {"all": [{"did": "visit", "min_times": 2}, {"not": {"bought": True}}]}, read)
        assert r.status_code == 503 and r.json()["code"] == "compute_timeout", r.text
        assert r.headers["Retry-After"] == "1" and "SIYU_API_AUDIENCE_TIMEOUT" in r.json()["detail"]
        cid = c.get("/api/v1/customers", params={"phone": "13900000001"}, headers=read).json()["customers"][0]
        assert c.get(f"/api/v1/customers/{cid}", headers=read).status_code == 200


def test_busy_audience_engines_leave_customer_reads_alone(au_app: App) -> None:
    read = key(au_app)
    api = create_app(tuned(au_app, api_audience_engines=1, api_engine_wait=0.5), run_loader=False)
    with serving(api) as url, httpx.Client(base_url=url, timeout=60) as c:
        cid = c.get("/api/v1/customers", params={"phone": "13900000001"}, headers=read).json()["customers"][0]
        held = api.state.siyu.audiences.borrow()  # a long audience request holds the only audience engine
        next(held)
        try:
            started = time.monotonic()
            assert c.get(f"/api/v1/customers/{cid}", headers=read).status_code == 200
            assert c.get(f"/api/v1/customers/{cid}/tags", headers=read).status_code == 200
            assert time.monotonic() - started < 20  # no wait for the audience engine (a 360 takes a few s here)
            busy = count(c, "has phone", read)
            assert busy.status_code == 503 and busy.json()["code"] == "engine_busy"
            assert busy.headers["Retry-After"] == "1"
        finally:
            held.close()
        assert count(c, "has phone", read).json()["customers"] == 5


def test_a_key_sees_only_its_brands_customer_tags(au_app: App, au_url: str) -> None:
    read, other = key(au_app), key(au_app, brand="fx")
    with httpx.Client(base_url=au_url, timeout=60) as c:
        cid = c.get("/api/v1/customers", params={"phone": "13900000001"}, headers=read).json()["customers"][0]
        assert c.get(f"/api/v1/customers/{cid}/tags", headers=read).status_code == 200
        r = c.get(f"/api/v1/customers/{cid}/tags", headers=other)  # was 200 []
        assert r.status_code == 404 and r.json()["code"] == "not_found"
        assert c.get("/api/v1/customers/nobody/tags", headers=read).status_code == 404


def test_rule_limits_are_settings(au_app: App) -> None:
    read = key(au_app)
    small = tuned(au_app, rule_max_depth=2, rule_max_nodes=3, rule_max_values=2, rule_max_chars=120)
    with running(small) as url, httpx.Client(base_url=url, timeout=60) as c:
        assert count(c, {"any": [{"not": {"identifier": "phone"}}]}, read).status_code == 200
        for rule, limit in [
            ({"any": [{"not": {"not": {"identifier": "phone"}}}]}, "nests all / any / not more than 2 levels"),
            ({"any": [{"identifier": "phone"}] * 3}, "more than 3 conditions"),
            ({"attribute": "city", "op": "in", "value": ["a", "b", "c"]}, "at most 2 are allowed"),
            (json.dumps({"attribute": "city", "value": "x" * 120}), "at most 120 are allowed"),
        ]:
            r = count(c, rule, read)
            assert r.status_code == 422 and r.json()["code"] == "invalid_rule", r.text
            assert limit in r.json()["detail"]
