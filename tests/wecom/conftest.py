"""WeCom tests: the fake WeCom on a loopback port (once per module), and a workspace whose
SIYU_WECOM_API_BASE points at it, with the brand `wc` configured."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from api.conftest import serving
from fixtures import wecom_wire as wire
from siyu.api.app import create_app
from siyu.bootstrap import App, bootstrap
from siyu.config import Settings
from siyu.core.actor import Actor
from siyu.fakes.wecom import FakeWeCom, create_fake_app
from siyu.wecom.runtime import WecomRuntime
from siyu.wecom.settings import CorpSettings, do_configure

BRAND = "wc"


@pytest.fixture(scope="module")
def fake_served() -> Iterator[tuple[FakeWeCom, str]]:
    fake = FakeWeCom(corp_id=wire.CORP_ID, secret=wire.SECRET)
    with serving(create_fake_app(fake)) as url:
        yield fake, url


@pytest.fixture
def fake(fake_served: tuple[FakeWeCom, str]) -> FakeWeCom:
    """The module's fake, emptied for this test."""
    served, _ = fake_served
    fresh = FakeWeCom(corp_id=wire.CORP_ID, secret=wire.SECRET)
    for name in ("tokens", "contacts", "contact_ways", "welcome_codes", "chatting", "welcomes", "templates",
                 "confirmed", "groupchats", "transfers", "calls"):  # fmt: skip
        setattr(served, name, getattr(fresh, name))
    served.token_calls, served.clock, served.token_ttl_s = 0, fresh.clock, fresh.token_ttl_s
    return served


def configure(app: App, brand: str = BRAND) -> None:
    with app.store.begin(Actor.system("tests")) as uow:
        do_configure(
            uow, app.settings.pii_keyring, CorpSettings(brand, wire.CORP_ID, wire.TOKEN, wire.AES_KEY, wire.SECRET)
        )


@pytest.fixture
def wecom_app(tmp_path: Path, fake: FakeWeCom, fake_served: tuple[FakeWeCom, str]) -> Iterator[App]:
    app = bootstrap(
        Settings(
            home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'siyu.db'}", wecom_api_base=fake_served[1]
        )
    )
    configure(app)
    yield app
    app.store.engine.dispose()


@pytest.fixture
def api(wecom_app: App) -> Iterator[tuple[str, WecomRuntime]]:
    """siyu's API over HTTP (without the background loops: tests run the processing themselves)."""
    application = create_app(wecom_app, run_loader=False)
    with serving(application) as url:
        yield url, application.state.wecom
