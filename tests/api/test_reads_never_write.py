"""Reads never write (architecture rule): every GET route of the API and of the console, and the
CLI's metrics and report reads, leave every lake table's version and every store table's row count
as they were — both before anything is materialised (computed in memory) and after (read from the
stored results).

The GET routes come from the application itself (its OpenAPI paths, plus the routes left out of the
schema such as /docs), so a new one is covered as soon as it exists: give it a query value below if
it needs one, and the test fails until it answers 200.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from deltalake import DeltaTable
from fastapi import FastAPI
from sqlalchemy import inspect, text
from starlette.routing import Route
from typer.testing import CliRunner

from api.conftest import bearer, new_key, serving
from api.console_reads import call_console_gets
from fixtures.audience_ops import create_audience
from fixtures.fast_brand import write_brand
from siyu.api.app import create_app
from siyu.api.keys import do_create_key, parse_scopes
from siyu.bootstrap import App
from siyu.cli.app import app as cli
from siyu.core.actor import Actor
from siyu.customers.view import find_customer_ids
from siyu.identity.service import run_resolve
from siyu.ingest.importer import import_path
from siyu.journeys.apply import do_apply_journey
from siyu.loyalty.programs import do_apply_program
from siyu.messaging.unsubscribe import Unsubscribe, make_token
from siyu.metrics.materialise import materialise_layers, materialise_rfm

PROGRAM = """\
version: 1
program: fx_club
level: brand
brands: [fx]
timezone: Asia/Shanghai
enrolment: [membership, api]
tiers:
  levels:
    - {code: member, threshold: 0}
points:
  expiry: {policy: never}
mall:
  - {code: mug, name_zh: 马克杯, name_en: Mug, kind: item, points: 300, stock: 2}
"""
JOURNEY = """\
brand: fx
code: phones
version: 1
name: {zh: 测试, en: Test}
category: transactional
trigger: {event: {type: sign_in}}
steps:
  - {id: done, exit: }
"""
# Values for the routes' required parameters (path parameters are filled in by the fixture's ids).
QUERY = {
    "/api/v1/customers": {"phone": "13800000001"},
    "/api/v1/metrics/fast": {"period": "2024-06"},
    "/api/v1/metrics/trend": {"from": "2024-05", "to": "2024-06"},
    "/api/v1/metrics/rfm": {"as_of": "2024-06-30"},
    "/api/v1/audiences/diff": {"a": "phones", "b": "phones"},
}
# The one write a GET may make: an export is audited (who, when, rows) by design (STYLE §10).
AUDIT = {"/api/v1/audiences/{code}/export": {"audience_exports": 1, "audit_log": 1}}
CLI_READS = [
    ["metrics", "fast", "--brand", "fx", "--period", "2024-06"],
    ["metrics", "trend", "--brand", "fx", "--from", "2024-05", "--to", "2024-06", "--json"],
    ["metrics", "rfm", "--brand", "fx", "--as-of", "2024-06-30", "--json"],
    ["metrics", "clv-matrix", "--brand", "fx", "--period", "2024-06", "--json"],
]
GUIDE_WORKBENCH = "/api/v1/guides/me/"
# The reads that use stored layers / RFM once they are materialised.
STORED_READERS = ("/api/v1/metrics/", "/api/v1/customers/{customer_id}")


def lake_versions(app: App) -> dict[str, int]:
    root = app.settings.lake_dir
    return {p.name: int(DeltaTable(str(p)).version()) for p in sorted(root.iterdir()) if (p / "_delta_log").is_dir()}


# Request bookkeeping, not data: every request spends a token of its key's rate-limit bucket, which
# is kept in the store so that all server processes share it (siyu.api.ratelimit).
BOOKKEEPING = ("rate_buckets",)


def store_rows(app: App) -> dict[str, int]:
    engine = app.store.engine
    names = [n for n in inspect(engine).get_table_names() if n not in BOOKKEEPING]
    with engine.connect() as connection:
        return {name: int(connection.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one()) for name in names}


def get_routes(api: FastAPI) -> list[str]:
    # FastAPI keeps included routers as opaque entries of `api.routes`; its schema lists their paths.
    documented = {path for path, operations in api.openapi()["paths"].items() if "get" in operations}
    top = {r.path for r in api.routes if isinstance(r, Route) and "GET" in (r.methods or ())}
    return sorted(documented | top)


def state(app: App) -> tuple[dict[str, int], dict[str, int]]:
    return lake_versions(app), store_rows(app)


@dataclass
class Seeded:
    app: App
    url: str
    secret: str
    paths: dict[str, str]  # GET route -> a real path for it
    guide_secret: str = ""  # a key bound to a staff member: the guide workbench routes need one


@pytest.fixture
def seeded(app: App, tmp_path: Path) -> Iterator[Seeded]:
    """Brand fx with One-ID, an audience, a loyalty program with one member, and a read key."""
    import_path(app, write_brand(tmp_path / "fx"))
    run_resolve(app)
    create_audience(app, "fx", "phones", "has phone")
    program = tmp_path / "fx_club.yaml"
    program.write_text(PROGRAM, encoding="utf-8")
    do_apply_program(app.store, program, actor="test", at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    journey = tmp_path / "phones.yaml"  # a journey under the audience's code: {code} serves both routes
    journey.write_text(JOURNEY, encoding="utf-8")
    do_apply_journey(app, journey, actor=Actor.system("tests"), at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    secret = new_key(app, "fx", "read,loyalty,admin,pii")
    with app.store.begin(Actor.system("tests")) as uow:
        guide_secret = do_create_key(uow, "fx", parse_scopes(["read"]), staff_id="g1")[0]
    customer_id = find_customer_ids(app, "13800000001", "fx")[0]  # A
    api = create_app(app, run_loader=False)
    token = make_token(app.settings.pii_key, Unsubscribe("fx", customer_id, "marketing_email", 1))
    ids = {"customer_id": customer_id, "code": "phones", "program": "fx_club", "token": token}
    with serving(api) as url:
        with httpx.Client(base_url=url, timeout=120) as client:
            enrolled = client.post("/api/v1/loyalty/fx_club/members", json={"customer_id": customer_id},
                                   headers=bearer(secret))  # fmt: skip
            assert enrolled.status_code == 201, enrolled.text
        yield Seeded(app, url, secret, {route: route.format(**ids) for route in get_routes(api)}, guide_secret)


def call_gets(s: Seeded, only: tuple[str, ...] = ("/",)) -> None:
    with httpx.Client(base_url=s.url, timeout=120, headers=bearer(s.secret)) as client:
        for route, path in s.paths.items():
            if not route.startswith(only):
                continue
            lake, store = state(s.app)
            guide = route.startswith(GUIDE_WORKBENCH)
            r = client.get(path, params=QUERY.get(route, {}), headers=bearer(s.guide_secret) if guide else None)
            assert r.status_code == 200, f"GET {route}: {r.status_code} {r.text[:300]} (add its parameters to QUERY)"
            expected = {name: n + AUDIT.get(route, {}).get(name, 0) for name, n in store.items()}
            assert state(s.app) == (lake, expected), f"GET {route} wrote"


def run_cli_reads(app: App, reads: list[list[str]]) -> None:
    env = {"SIYU_HOME": str(app.settings.home), "SIYU_DATABASE_URL": app.settings.store_url}
    for args in reads:
        before = state(app)
        result = CliRunner().invoke(cli, args, env=env)
        assert result.exit_code == 0, f"siyu {' '.join(args)}: {result.output}"
        assert state(app) == before, f"siyu {' '.join(args)} wrote"


def test_reads_never_write(seeded: Seeded, tmp_path: Path) -> None:
    app = seeded.app
    assert {"/api/v1/metrics/fast", "/api/v1/customers/{customer_id}", "/api/v1/loyalty/{program}/mall",
            "/health", "/docs"} <= set(seeded.paths)  # fmt: skip
    report = ["report", "--brand", "fx", "--period", "2024-06", "--out", str(tmp_path / "report.html")]
    # Nothing materialised yet: every read computes in memory.
    call_gets(seeded)
    run_cli_reads(app, [*CLI_READS, report])
    assert "layers" not in lake_versions(app) and "rfm" not in lake_versions(app)

    # Materialised: the reads of layers and RFM now use the stored results, and still write nothing.
    materialise_layers(app, "fx", "2024-05", "2024-06")
    materialise_rfm(app, "fx", dt.date(2024, 6, 30))
    with httpx.Client(base_url=seeded.url, timeout=120, headers=bearer(seeded.secret)) as client:
        fast = client.get("/api/v1/metrics/fast", params=QUERY["/api/v1/metrics/fast"]).json()
        assert fast["layers_materialised_at"] is not None
    call_gets(seeded, STORED_READERS)
    # The console's pages too (tests/api/console_reads.py); once, over the stored results (what
    # they read in production), where the overview and the 360 are quickest.
    call_console_gets(seeded, state)
    run_cli_reads(app, CLI_READS[:3])
