"""Journeys over real HTTP: list, report, an idempotent enrolment, pause; the customer view lists
the journeys; another brand's key sees nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx

from api.conftest import bearer, new_key, running
from fixtures.journey_brand import build, ids
from siyu.api.keys import do_create_key
from siyu.core.actor import Actor
from siyu.journeys.apply import do_apply_journey

JOURNEY = """
brand: jb
code: api_j
version: 1
name: {zh: 接口, en: API}
category: marketing
trigger: {event: {type: never_happens}}
steps:
  - {id: w, wait: {days: 1}}
"""


def test_journeys_api(tmp_path: Path) -> None:
    app = build(tmp_path, f"sqlite:///{tmp_path / 'store.db'}")
    path = tmp_path / "j.yaml"
    path.write_text(JOURNEY, encoding="utf-8")
    do_apply_journey(app, path, actor=Actor.user("t"), at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
    read, admin, other = new_key(app, "jb", "read"), new_key(app, "jb", "admin"), new_key(app, "zz", "admin")
    c1 = ids(app)["c1"]
    with running(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        listed = http.get("/api/v1/journeys", headers=bearer(read)).json()
        assert [j["code"] for j in listed["journeys"]] == ["api_j"]
        assert http.get("/api/v1/journeys", headers=bearer(other)).json() == {"journeys": []}
        body = {"customer": c1, "key": "req-1"}
        assert http.post("/api/v1/journeys/api_j/enrolments", json=body, headers=bearer(read)).status_code == 403
        first = http.post("/api/v1/journeys/api_j/enrolments", json=body, headers=bearer(admin))
        again = http.post("/api/v1/journeys/api_j/enrolments", json=body, headers=bearer(admin))
        assert first.status_code == again.status_code == 200
        assert first.json()["created"] is True and again.json()["created"] is False
        assert first.json()["enrolment_id"] == again.json()["enrolment_id"]
        report = http.get("/api/v1/journeys/api_j/report", headers=bearer(read)).json()
        assert (report["enrolled"], report["active"], report["steps"]["w"]["entered"]) == (1, 1, 1)
        assert set(report["goal"]) >= {"converted", "rate", "holdout_size", "holdout_converted", "holdout_rate",
                                        "uplift", "ci95"}  # fmt: skip
        missing = http.get("/api/v1/journeys/api_j/report", headers=bearer(other))
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")
        view = http.get(f"/api/v1/customers/{c1}", headers=bearer(read)).json()
        assert [(j["journey"], j["status"]) for j in view["journeys"]] == [("api_j", "active")]
        # a key bound to a store or a guide enrols only the customers it may see (c1 is neither's)
        for store, staff in (("st_other", None), (None, "g_other")):
            with app.store.begin(Actor.system("t")) as uow:
                secret, _ = do_create_key(uow, "jb", frozenset({"admin"}), store=store, staff_id=staff)
            body = {"customer": c1, "key": "x"}
            got = http.post("/api/v1/journeys/api_j/enrolments", json=body, headers=bearer(secret))
            assert got.status_code == 404, (store, staff, got.text)
        paused = http.post("/api/v1/journeys/api_j/pause", headers=bearer(admin))
        assert paused.json()["status"] == "paused"
    app.store.engine.dispose()
