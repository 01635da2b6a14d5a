"""Fuzzing `POST /api/v1/audiences/count` over real HTTP on the brand `au`: whatever rule a read key
sends — JSON or text, plausible or nasty (tests/fixtures/rule_strategies.py) — the answer is never a
5xx: a count, or a problem+json naming what is wrong."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from api.conftest import bearer, new_key, running
from fixtures.audience_ops import set_tag
from fixtures.rule_strategies import json_rules, text_rules, valid_rules
from siyu.bootstrap import App

# Up to a few seconds per example that compiles (identifier extraction is slow); under a minute in all.
HTTP_FUZZ = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
EXPECTED = {
    200: None,
    404: {"not_found"},
    409: {"missing_data"},
    413: {"payload_too_large"},  # a generated rule can exceed the 8 MiB body cap: refused at once, as it must be
    422: {"invalid_rule", "invalid_request", "invalid_tag", "invalid_audience"},
}


@pytest.fixture(scope="module")
def fuzz_client(au_app: App) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    cid = au_app.engine.to_arrow(au_app.engine.table("identity_map").select("customer_id").limit(1))[0][0].as_py()
    set_tag(au_app, "au", "band", cid, "high")
    set_tag(au_app, "au", "score", cid, 7.5)
    headers = bearer(new_key(au_app, "au", "read")) | {"Content-Type": "application/json"}
    with running(au_app) as url, httpx.Client(base_url=url, timeout=120) as client:
        yield client, headers


def post(fuzz_client: tuple[httpx.Client, dict[str, str]], rule: Any) -> None:
    client, headers = fuzz_client
    body = json.dumps({"rule": rule}, allow_nan=True)  # NaN / Infinity as Python's JSON reader takes them
    r = client.post("/api/v1/audiences/count", params={"as_of": "2024-06-30"}, content=body, headers=headers)
    assert r.status_code < 500, (r.status_code, r.text[:500])
    assert r.status_code in EXPECTED, r.text[:500]
    if r.status_code == 200:
        assert isinstance(r.json()["customers"], int)
    else:
        problem = r.json()
        assert problem["code"] in EXPECTED[r.status_code] and problem["detail"], problem


@HTTP_FUZZ
@given(st.one_of(valid_rules(max_leaves=4), json_rules(max_leaves=4)))
@example({"all": [{"did": "visit", "field": "mini_program", "min_times": 2, "last_days": 30}] * 20_000})
@example({"tag": "score", "op": "between", "value": [1, 10]})
@example({"did": "visit", "min_times": 1e30})
def test_count_never_answers_5xx_for_json_rules(fuzz_client: tuple[httpx.Client, dict[str, str]], rule: Any) -> None:
    post(fuzz_client, rule)


@HTTP_FUZZ
@given(st.one_of(text_rules(max_leaves=5), json_rules(max_leaves=3).map(lambda r: json.dumps(r, allow_nan=True))))
@example("not " * 5000 + "has phone")
@example("spent >= 999999999999999999999999999999")
def test_count_never_answers_5xx_for_text_rules(fuzz_client: tuple[httpx.Client, dict[str, str]], text: str) -> None:
    post(fuzz_client, text)
