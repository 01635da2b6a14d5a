"""The console's tests share one small workspace per session: a 150-person demo brand (generated,
imported, resolved, the demo loyalty program run, layers and RFM materialised) with one console
user per role, served once by a real uvicorn."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import ibis
import pytest

from api.conftest import running, serving
from console.seed import Tasks, seed_guides, seed_journey
from fixtures import wecom_wire as wire
from siyu.bootstrap import App, bootstrap
from siyu.config import Settings
from siyu.console.users import do_create_user
from siyu.core.actor import Actor
from siyu.demo.generate import generate
from siyu.demo.loyalty import run as run_loyalty
from siyu.fakes.wecom import FakeWeCom, create_fake_app
from siyu.identity.service import run_resolve
from siyu.ingest.importer import import_path
from siyu.ingest.views import latest
from siyu.metrics.materialise import materialise_for_report

PASSWORD = "console-test-pw"
END = dt.date(2024, 6, 30)
PERIOD = "2024-06"
BRAND = "demo"


@dataclass(frozen=True)
class Workspace:
    app: App
    url: str
    users: dict[str, str]  # role → e-mail
    guide: str  # the guide user's staff id
    store: str
    own_customer: str  # a customer of that guide
    other_customer: str  # a customer of another guide only
    other_guide: str
    tasks: Tasks  # guide tasks: the guide's own, another guide's, the store's


def _pick_scope(app: App) -> tuple[str, str, str, str, str]:
    """A guide with customers, a store, one of the guide's customers and one nobody in it has."""
    from siyu.console.scope import scoped_customers
    from siyu.console.users import User

    customers = latest(app.engine, "customers")
    assert customers is not None
    guided = customers.filter(customers.guide_code.notnull())
    rows = app.engine.to_arrow(
        guided.group_by(["guide_code", "store_code"])
        .agg(n=guided.count())
        .order_by([ibis.desc("n"), "guide_code"])
        .limit(2)
    ).to_pylist()
    guide, store = rows[0]["guide_code"], rows[0]["store_code"]
    other_guide = rows[1]["guide_code"]
    mine = sorted(
        set(scoped_customers(app, User("g", "g", "guide", BRAND, None, guide), BRAND, limit=1000))
        & set(scoped_customers(app, User("s", "s", "store_manager", BRAND, store, None), BRAND, limit=1000))
    )
    theirs = scoped_customers(app, User("o", "o", "guide", BRAND, None, other_guide), BRAND, limit=1000)
    others = sorted(set(theirs) - set(mine))
    assert mine and others
    return guide, store, mine[0], others[0], other_guide


def make_users(app: App, guide: str, store: str) -> dict[str, str]:
    users = {}
    with app.store.begin(Actor.system("tests")) as uow:
        for role in ("group_admin", "brand_admin", "analyst", "operator", "store_manager", "guide", "auditor"):
            email = f"{role}@example.com"
            do_create_user(
                uow, email, role, PASSWORD,
                brand=None if role in ("group_admin", "auditor") else BRAND,
                store=store if role == "store_manager" else None,
                staff_id=guide if role == "guide" else None,
            )  # fmt: skip
            users[role] = email
    return users


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    folder = tmp_path_factory.mktemp("console")
    fake = FakeWeCom(corp_id=wire.CORP_ID, secret=wire.SECRET)  # channel codes are created through it
    with serving(create_fake_app(fake)) as wecom_url:
        settings = Settings(
            home=folder / "home", database_url=f"sqlite:///{folder / 'siyu.db'}", console_secure_cookie=False,
            env="dev", wecom_api_base=wecom_url,
        )  # fmt: skip
        yield from _workspace(folder, bootstrap(settings))


def _workspace(folder: Path, app: App) -> Iterator[Workspace]:
    summary = generate(folder / "demo", customers=150, seed=3, months=13, end=END)
    import_path(app, folder / "demo")
    run_resolve(app)
    run_loyalty(app, summary.end)
    materialise_for_report(app, BRAND, PERIOD)
    guide, store, own, other, other_guide = _pick_scope(app)
    seed_journey(app, BRAND)
    tasks = seed_guides(app, BRAND, guide, other_guide, store, own, folder / "staff")
    users = make_users(app, guide, store)
    with running(app) as url:
        yield Workspace(app, url, users, guide, store, own, other, other_guide, tasks)
    app.store.engine.dispose()


def login(url: str, email: str, password: str = PASSWORD) -> httpx.Client:
    """A client signed in as `email` (its session cookie set), with `.csrf` for posts."""
    client = httpx.Client(base_url=url, timeout=60)
    page = client.get("/console/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    answer = client.post("/console/login", data={"email": email, "password": password, "csrf": token.group(1)})
    assert answer.status_code == 303, answer.text[:500]
    home = client.get(answer.headers["location"])
    found = re.search(r'name="csrf" value="([^"]+)"', home.text) or re.search(r'"X-CSRF-Token": "([^"]+)"', home.text)
    assert found is not None
    client.csrf = found.group(1)  # type: ignore[attr-defined]
    return client


def csrf_of(client: httpx.Client) -> str:
    return str(client.csrf)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def clients(workspace: Workspace) -> Iterator[dict[str, httpx.Client]]:
    signed_in = {role: login(workspace.url, email) for role, email in workspace.users.items()}
    yield signed_in
    for c in signed_in.values():
        c.close()


def screenshots_dir() -> Path:
    path = Path(__file__).resolve().parents[2] / "build" / "console-screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path
