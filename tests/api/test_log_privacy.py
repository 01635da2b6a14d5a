"""A real `siyu serve` (uvicorn, debug logging) is sent requests that carry phones, e-mails, member
numbers and API keys in paths, query strings, bodies and headers — lookups, loyalty reads, bad input,
a request that fails inside the server — and none of it may appear anywhere in the server's log.
What the log does say: each request with its id (also in `X-Request-Id` and problem bodies), and the
type, not the message, of an unexpected error."""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from api.conftest import bearer, free_port, new_key, serving
from siyu.api.app import create_app
from siyu.api.telemetry import loggable_path
from siyu.bootstrap import bootstrap
from siyu.config import Settings
from siyu.identity.service import run_resolve
from siyu.ingest.importer import import_path
from siyu.loyalty.programs import do_apply_program
from siyu.loyalty.sync import sync
from siyu.messaging.unsubscribe import Unsubscribe, make_token

PHONE, PHONE_2 = "13912345671", "13987654322"
EMAIL = "alice.wang@example.com"
MEMBER_NO = "M013632841"
PII_KEY = "log-test-pii-key"
FILES = {
    "customers.csv": f"""brand,source,source_customer_id,phone,email,name
pv,crm,a1,{PHONE},{EMAIL},王小丽
pv,crm,b1,{PHONE_2},,李雷
""",
    "memberships.csv": f"""brand,source,member_no,source_customer_id,program,joined_at
pv,crm,{MEMBER_NO},a1,pv_club,2026-01-01T10:00:00+08:00
""",
    "events.csv": """brand,source,event_id,field,type,source_customer_id,occurred_at,properties
pv,crm,v01,mini_program,visit,a1,2026-01-05T10:00:00+08:00,"{""sku"": ""s1""}"
""",
}
PROGRAM = """\
version: 1
program: pv_club
level: brand
brands: [pv]
timezone: Asia/Shanghai
membership_programs: [pv_club]
enrolment: [membership, api]
tiers:
  levels:
    - {code: member, threshold: 0}
points:
  expiry: {policy: never}
"""
# What must never be logged: any mainland mobile number (a whole word: a request id's hex digits may
# hold a run of 11 digits), any e-mail address, the test's own values anywhere.
PERSONAL = re.compile(
    r"(?<![0-9A-Za-z])1[3-9]\d{9}(?![0-9A-Za-z])|[\w.+-]+@[\w-]+\.[\w.-]+|" + "|".join((PHONE, PHONE_2, MEMBER_NO))
)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, Any]]:
    home = tmp_path / "home"
    # the server's own key: the lake's phones are sealed and hashed with it, so its look-ups match
    app = bootstrap(Settings(home=home, database_url=f"sqlite:///{home / 'siyu.db'}", pii_key=PII_KEY))
    data = tmp_path / "data"
    data.mkdir()
    for name, text in FILES.items():
        (data / name).write_text(text, encoding="utf-8")
    import_path(app, data, brand="pv")
    run_resolve(app)
    (tmp_path / "pv_club.yaml").write_text(PROGRAM, encoding="utf-8")
    do_apply_program(app.store, tmp_path / "pv_club.yaml", actor="test", at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    sync(app, "pv_club", actor="test")
    keys = {scope: new_key(app, "pv", scope) for scope in ("read", "read,pii", "admin,pii")}
    app.store.engine.dispose()

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIYU_")}
    env |= {"SIYU_HOME": str(home), "SIYU_PII_KEY": PII_KEY}
    log = tmp_path / "server.log"
    cmd = [sys.executable, "-m", "siyu", "serve", "--port", str(port), "--log-level", "debug"]
    with log.open("wb") as out:
        server = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield {"url": url, "keys": keys, "log": log, "server": server}
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_server_log_carries_no_personal_data(served: dict[str, Any]) -> None:
    keys, server = served["keys"], served["server"]
    read, pii, admin = (bearer(keys[s]) for s in ("read", "read,pii", "admin,pii"))
    answers: list[httpx.Response] = []
    with httpx.Client(base_url=served["url"], timeout=60) as http:
        customer_id = http.get("/api/v1/customers", params={"phone": PHONE}, headers=read).json()["customers"][0]
        for key in (PHONE, "+86 139-1234-5671", EMAIL, MEMBER_NO):
            answers.append(http.get(f"/api/v1/customers/{quote(key)}", headers=pii))
        answers.append(http.get(f"/api/v1/customers/{customer_id}", headers=pii))  # PII in the answer only
        for query in (
            {"phone": PHONE},
            {"member_no": MEMBER_NO},
            {"customer_id": EMAIL},
            {"phone": PHONE, "member_no": "1"},
        ):
            answers.append(http.get("/api/v1/customers", params=query, headers=read))
        answers.append(http.get(f"/api/v1/customers/{customer_id}/tags", headers=read))
        answers.append(http.get(f"/api/v1/nowhere/{PHONE}/{EMAIL}", headers=read))  # 404 on no route
        # Loyalty reads and writes by customer id, with member numbers in answers and bodies.
        answers.append(http.get(f"/api/v1/loyalty/pv_club/members/{customer_id}", headers=pii))
        answers.append(http.get(f"/api/v1/loyalty/pv_club/members/{customer_id}/points", headers=pii))
        answers.append(http.get(f"/api/v1/loyalty/pv_club/members/{PHONE}", headers=read))  # 404 not_a_member
        answers.append(http.post("/api/v1/loyalty/pv_club/members", json={"customer_id": PHONE_2}, headers=admin))
        answers.append(
            http.post(
                "/api/v1/loyalty/pv_club/members", json={"customer_id": "x", "member_no": MEMBER_NO}, headers=admin
            )
        )
        # Bad input quoting PII: a bad row, and rules with a phone in an event property's key and value.
        answers.append(
            http.post("/api/v1/ingest/customers", json=[{"source": "crm", "phone": PHONE, "email": 7}], headers=admin)
        )
        for properties in ({f"{PHONE}'": "x"}, {f'{EMAIL}"': PHONE}, {"phone": f"{PHONE}'"}):
            rule = {"did": "visit", "properties": properties, "last_days": 30}
            answers.append(http.post("/api/v1/audiences/count", json={"rule": rule}, headers=read))
        # Keys: a wrong one, and a right one sent the Segment way.
        answers.append(http.get("/api/v1/customers", params={"phone": PHONE}, headers=bearer(f"sk_siyu_{PHONE}")))
        answers.append(http.post("/v1/track", json={"userId": PHONE, "event": "x"}, auth=(keys["read"], "")))
        # The unsubscribe link, opened and clicked: its token is a bearer credential naming the person.
        token = make_token("log-test-pii-key", Unsubscribe("pv", customer_id, "marketing_email", 1))
        answers.append(http.get(f"/u/{token}"))
        answers.append(http.post(f"/u/{token}"))
        assert [r.status_code for r in answers[-2:]] == [200, 200]
    server.terminate()
    server.wait(timeout=30)
    log = served["log"].read_text(encoding="utf-8", errors="replace")

    assert len(log.splitlines()) >= len(answers)  # the log was captured: a line per request at least
    leaks = sorted(
        set(PERSONAL.findall(log)) | {k for k in keys.values() if k in log} | {k for k in (PHONE,) if k in log}
    )
    assert not leaks, f"personal data in the server log: {leaks}\n{log[-5000:]}"
    assert token not in log and token.split(".")[0] not in log and "/u/***" in log
    # Every answer carries its request id, problem bodies too, and the log names it.
    for r in answers:
        request_id = r.headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{16}", request_id), r.headers
        assert request_id in log
        if r.headers["content-type"].startswith("application/problem+json"):
            assert r.json()["request_id"] == request_id
    statuses = [r.status_code for r in answers]
    # A property key with a quote used to break the SQL compiler (a 500 quoting the key); it is a 422 now.
    assert {200, 401, 403, 404, 422} <= set(statuses) and 500 not in statuses, statuses
    assert "Traceback" not in log  # nothing re-raised to the server, which would log the message


def test_an_unexpected_error_is_logged_by_type_and_request_id_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A route that fails with personal data in its exception message: the answer is a 500 problem
    with the request id, and the log has the type, the request id and the frames, never the message."""
    app = bootstrap(Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'siyu.db'}"))
    api = create_app(app, run_loader=False)

    @api.get("/boom/{customer_id}")
    def boom(customer_id: str) -> None:
        raise ValueError(f"customer {customer_id} has phone {PHONE}")

    with caplog.at_level(logging.DEBUG), serving(api) as url, httpx.Client(base_url=url) as http:
        r = http.get(f"/boom/{PHONE}")
    assert r.status_code == 500 and r.json()["code"] == "internal_error"
    request_id = r.headers["x-request-id"]
    assert r.json()["request_id"] == request_id
    # the server's records (the test's own HTTP client logs the URL it called)
    log = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(("siyu", "uvicorn")))
    assert re.search(rf"unhandled ValueError \(request {request_id}\) on GET /boom/139\*\*\*\*5671", log), log
    assert PHONE not in log  # the frames show source lines, never the message or the values


@pytest.mark.parametrize(
    ("path", "params", "logged"),
    [
        ("/api/v1/customers/13912345671", {"customer_id": "13912345671"}, "/api/v1/customers/139****5671"),
        ("/api/v1/customers/%2B86%20139-1234-5671", {}, "/api/v1/customers/139****5671"),
        ("/api/v1/customers/alice%40example.com", {}, "/api/v1/customers/a***@example.com"),
        ("/api/v1/customers/M013632841", {}, "/api/v1/customers/M01***41"),
        ("/api/v1/customers/LA001", {"customer_id": "LA001"}, "/api/v1/customers/LA0***01"),  # by its parameter
        ("/api/v1/customers/ce48516efbaa38d8/tags", {"customer_id": "ce48516efbaa38d8"}, None),  # One-ID: kept
        ("/api/v1/loyalty/demo_club/coupons/K7QX2P/redeem", {"program": "demo_club", "code": "K7QX2P"},
         "/api/v1/loyalty/demo_club/coupons/K7Q***2P/redeem"),  # a coupon code is a bearer code
        ("/api/v1/metrics/fast", {}, None),
        ("/api/v1/loyalty/demo_club/points/123456/reverse", {"program": "demo_club", "txn_id": "123456"}, None),
        ("/v1/batch", {}, None),
        # an unsubscribe link's token names the person and withdraws their consent: never logged
        ("/u/eyJiIjoiZGVtbyJ9.c2ln", {"token": "eyJiIjoiZGVtbyJ9.c2ln"}, "/u/***"),
        ("/u/eyJiIjoiZGVtbyJ9.c2ln/extra", {}, "/u/***"),  # no route matched: masked all the same
    ],
)  # fmt: skip
def test_loggable_path(path: str, params: dict[str, str], logged: str | None) -> None:
    assert loggable_path({"path": path, "path_params": params}) == (logged or path)
