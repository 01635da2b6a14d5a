"""Store-bound API keys (门店密钥): `siyu keys create --store S` makes a key that sees only the
customers of store S (the store manager's rule: a source record or an order names the store) on
every customer route — another store's customer is 404, lookups leave them out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from api.conftest import bearer, running
from siyu.api.keys import do_create_key, parse_scopes
from siyu.bootstrap import App, bootstrap
from siyu.config import Settings
from siyu.core.actor import Actor
from siyu.customers.view import find_customer_ids
from siyu.identity.service import run_resolve
from siyu.ingest.importer import import_path

CUSTOMERS = """brand,source,source_customer_id,phone,store_code
sk,pos,n1,13900000001,S1
sk,pos,n2,13900000002,S2
sk,crm,n3,13900000003,
"""
ORDERS = """brand,source,order_id,source_customer_id,status,paid_at,amount_fen,refund_fen,store_code
sk,crm,o3,n3,completed,2024-06-03T10:00:00+08:00,1000,0,S1
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[App, str]]:
    folder = tmp_path_factory.mktemp("storekeys")
    (folder / "in").mkdir()
    (folder / "in" / "customers.csv").write_text(CUSTOMERS, encoding="utf-8")
    (folder / "in" / "orders.csv").write_text(ORDERS, encoding="utf-8")
    app = bootstrap(Settings(home=folder / "home", database_url=f"sqlite:///{folder / 'siyu.db'}"))
    import_path(app, folder / "in")
    run_resolve(app)
    with running(app) as url:
        yield app, url
    app.store.engine.dispose()


def _key(app: App, scopes: str, store: str | None) -> str:
    with app.store.begin(Actor.system("tests")) as uow:
        secret, _ = do_create_key(uow, "sk", parse_scopes([scopes]), store=store)
    return secret


def test_a_store_key_sees_only_its_stores_customers(served: tuple[App, str]) -> None:
    app, url = served
    ids = {p: find_customer_ids(app, p, "sk")[0] for p in ("13900000001", "13900000002", "13900000003")}
    s1 = bearer(_key(app, "admin", "S1"))
    brand_wide = bearer(_key(app, "read", None))
    with httpx.Client(base_url=url, timeout=60) as client:
        # n1 names S1 on their record, n3 through an order; n2 is S2's
        for phone in ("13900000001", "13900000003"):
            assert client.get(f"/api/v1/customers/{ids[phone]}", headers=s1).status_code == 200
            assert client.get(f"/api/v1/customers/{ids[phone]}/tags", headers=s1).status_code == 200
        other = ids["13900000002"]
        for path in (f"/api/v1/customers/{other}", f"/api/v1/customers/{other}/tags"):
            answer = client.get(path, headers=s1)
            assert answer.status_code == 404, (path, answer.text)
            assert client.get(path, headers=brand_wide).status_code == 200
        tagged = client.put(f"/api/v1/customers/{other}/tags/vip", headers=s1, json={"value": None, "reason": "x"})
        assert tagged.status_code == 404
        member = client.get(f"/api/v1/loyalty/any_program/members/{other}", headers=s1)
        assert member.status_code == 404
        found = client.get("/api/v1/customers", params={"phone": "13900000002"}, headers=s1).json()
        assert found == {"customers": []}
        mine = client.get("/api/v1/customers", params={"phone": "13900000001"}, headers=s1).json()
        assert mine == {"customers": [ids["13900000001"]]}


def test_keys_create_store_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from siyu.cli.app import app as cli

    monkeypatch.setenv("SIYU_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SIYU_DATABASE_URL", raising=False)
    runner = CliRunner()
    made = runner.invoke(cli, ["keys", "create", "--brand", "sk", "--scope", "read", "--store", "S1", "--json"])
    assert made.exit_code == 0, made.output
    listed = runner.invoke(cli, ["keys", "list", "--json"])
    assert [k["store"] for k in json.loads(listed.stdout)] == ["S1"]
