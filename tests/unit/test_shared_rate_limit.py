"""The per-key token bucket lives in the store, so limiters of different processes share it: two
limiters on one store together admit no more than one bucket allows (tests/integration/
test_many_processes.py checks the same across two real servers on PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from siyu.api.ratelimit import RateLimiter
from siyu.bootstrap import bootstrap
from siyu.config import Settings


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_two_limiters_share_one_bucket(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}" if backend == "sqlite" else request.getfixturevalue("pg_database")
    app = bootstrap(Settings(home=tmp_path / "home", database_url=url))
    now = [1_000_000.0]  # a clock the test moves, so a slow machine refills nothing by itself
    a, b = (RateLimiter(app.store.engine, 1000, clock=lambda: now[0]) for _ in range(2))
    # 2 tokens/s, bursts of 2 s → 4 in the bucket. Blocks are 1 token at this rate, so nothing is
    # held back locally: exactly 4 of the 8 alternating requests pass, whichever process asks.
    allowed = [lim.take("k1", 2) == 0.0 for _ in range(4) for lim in (a, b)]
    assert allowed == [True] * 4 + [False] * 4
    assert b.take("k1", 2) == pytest.approx(0.5)  # a token every half second
    now[0] += 0.5
    assert (a.take("k1", 2), b.take("k1", 2)) == (0.0, pytest.approx(0.5))
    assert a.take("other", 2) == 0.0  # per key
    # a big limit takes blocks of rate/20 tokens: one store round trip serves 50 requests locally
    c = RateLimiter(app.store.engine, 1000)
    assert all(c.take("k2", 1000) == 0.0 for _ in range(50))
    assert c._local["k2"][0] == 0
    app.store.engine.dispose()
