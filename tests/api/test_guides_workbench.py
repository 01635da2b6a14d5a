"""Guide tasks and the guide workbench over real HTTP: who a task goes to when nobody is named, churn
alerts for the guide and the store manager, and a guide who sees only their own customers and tasks.

Brand `wb`: stores s1, s2; guides g1 (s1), g2 (s2), manager m1 (s1). c1 added g1 and c2 added g2
on Jan 1; c3 has no guide and bought at s1 on Jan 3 (home store s1)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from api.conftest import bearer, running
from fixtures.guides_world import World, customer_ids, rules_yaml
from siyu.api.keys import do_create_key, parse_scopes
from siyu.bootstrap import App, bootstrap
from siyu.cli.app import app as cli
from siyu.config import Settings
from siyu.core.actor import Actor
from siyu.guides.alerts import do_churn_alert, do_sop_tasks
from siyu.guides.bindings import run_binding
from siyu.guides.rulebook import do_apply_rules, rules_in_force
from siyu.guides.tasks import TaskRequest, do_create_task

SOP = "sop:\n  - {code: welcome, after_add_days: [1, 3], title: 欢迎跟进, template: 你好}\n"


@pytest.fixture(scope="module")
def wb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[App, dict[str, str], dict[str, int], str, dict]]:
    home = tmp_path_factory.mktemp("wb")
    app = bootstrap(Settings(home=home / "home", database_url=f"sqlite:///{home / 'siyu.db'}"))
    w = World()
    w.brand("wb")
    for c in ("c1", "c2", "c3"):
        w.customer("wb", c)
    w.friend("wb", "c1", "g1", 1)
    w.friend("wb", "c2", "g2", 1)
    w.order("wb", "wb-o1", "c3", 3, 1000, "s1")
    w.load(app, home / "import")
    ids = customer_ids(app, "wb")
    with app.store.begin(Actor.user("test")) as uow:
        do_apply_rules(uow, rules_yaml("wb") + SOP, "wb.yaml")
    run_binding(app, "wb")
    tasks: dict[str, int] = {}
    with app.store.begin(Actor.system("journeys")) as uow:
        for c in ("c1", "c2", "c3"):
            request = TaskRequest("wb", ids[c], "journey", f"call {c}", f"journey:test:{c}")
            tasks[c] = do_create_task(uow, request)[0]
        tasks["churn_g1"], tasks["churn_m1"] = do_churn_alert(uow, "wb", ids["c1"], "g1", key="cb-1")
    keys = {}
    with app.store.begin(Actor.system("tests")) as uow:
        for staff in ("g1", "g2", "m1", None):
            keys[staff or "none"] = do_create_key(uow, "wb", parse_scopes(["read"]), staff_id=staff)[0]
    with running(app) as url:
        yield app, ids, tasks, url, keys
    app.store.engine.dispose()


def test_a_task_without_assignee_goes_to_the_bound_guide_else_the_home_store(wb) -> None:
    app, _ids, tasks, _, _ = wb
    with app.store.unit_of_work() as session:
        from siyu.guides.tasks import list_tasks

        by_id = {t["id"]: t for t in list_tasks(session, "wb")}
    assert (by_id[tasks["c1"]]["assignee_staff_id"], by_id[tasks["c1"]]["store_code"]) == ("g1", "s1")
    assert (by_id[tasks["c2"]]["assignee_staff_id"], by_id[tasks["c2"]]["store_code"]) == ("g2", "s2")
    assert (by_id[tasks["c3"]]["assignee_staff_id"], by_id[tasks["c3"]]["store_code"]) == (None, "s1")
    churn = by_id[tasks["churn_g1"]], by_id[tasks["churn_m1"]]
    assert [(t["kind"], t["assignee_staff_id"]) for t in churn] == [("churn_alert", "g1"), ("churn_alert", "m1")]


def test_a_replayed_churn_alert_creates_nothing(wb) -> None:
    app, ids, tasks, _, _ = wb
    with app.store.begin(Actor.system("wecom")) as uow:
        again = do_churn_alert(uow, "wb", ids["c1"], "g1", key="cb-1")
    assert again == [tasks["churn_g1"], tasks["churn_m1"]]


def test_a_guide_sees_only_their_own_customers_and_tasks(wb) -> None:
    _, ids, tasks, url, keys = wb
    with httpx.Client(base_url=url, timeout=30) as c:
        mine = c.get("/api/v1/guides/me/customers", headers=bearer(keys["g1"]))
        assert mine.status_code == 200, mine.text
        assert [(r["customer_id"], r["store_code"], r["source"]) for r in mine.json()] == [
            (ids["c1"], "s1", "wecom_add")
        ]
        listed = c.get("/api/v1/guides/me/tasks", headers=bearer(keys["g1"])).json()
        assert sorted(t["id"] for t in listed if t["kind"] != "sop") == sorted([tasks["c1"], tasks["churn_g1"]])
        # the manager: their churn alert and the store's unassigned task (c3), not g1's tasks
        listed = c.get("/api/v1/guides/me/tasks", headers=bearer(keys["m1"])).json()
        assert sorted(t["id"] for t in listed) == sorted([tasks["churn_m1"], tasks["c3"]])
        # g1 cannot touch g2's task: not found, not forbidden (existence is not revealed)
        other = c.post(f"/api/v1/guides/me/tasks/{tasks['c2']}/done", json={}, headers=bearer(keys["g1"]))
        assert other.status_code == 404 and other.headers["content-type"].startswith("application/problem+json")
        huge = c.post(f"/api/v1/guides/me/tasks/{2**70}/done", json={}, headers=bearer(keys["g1"]))
        assert huge.status_code == 422  # validated, not a store overflow
        no_staff = c.get("/api/v1/guides/me/tasks", headers=bearer(keys["none"]))
        assert no_staff.status_code == 403


def test_a_guide_marks_a_task_done_then_lists_it_as_done(wb) -> None:
    _, _, tasks, url, keys = wb
    with httpx.Client(base_url=url, timeout=30) as c:
        done = c.post(
            f"/api/v1/guides/me/tasks/{tasks['c1']}/done", json={"result": "called"}, headers=bearer(keys["g1"])
        )
        assert done.status_code == 200, done.text
        assert (done.json()["status"], done.json()["result"]) == ("done", "called")
        open_now = c.get("/api/v1/guides/me/tasks", params={"status": "open"}, headers=bearer(keys["g1"])).json()
        assert [t["id"] for t in open_now if t["kind"] != "sop"] == [tasks["churn_g1"]]
    # performance counts it as done this month, and g1's other tasks as open
    from siyu.guides.performance import performance
    from siyu.metrics.periods import parse_period

    app = wb[0]
    month = parse_period(dt.datetime.now(dt.UTC).strftime("%Y-%m"), "month", "UTC")
    g1 = next(g for g in performance(app, "wb", month)["guides"] if g["staff_id"] == "g1")
    assert g1["tasks_done"] == 1 and g1["tasks_open"] >= 1


def test_sop_tasks_are_created_once_on_their_days(wb) -> None:
    app, _ids, _, _, _ = wb
    rules = None
    with app.store.unit_of_work() as session:
        rules = rules_in_force(session, "wb")
    # Jan 1 10:00 adds; at Jan 4 12:00 the day-1 task (Jan 2) is older than the 2-day catch-up
    # window, day 3 (Jan 4 10:00) is due: one task each for c1 (g1) and c2 (g2).
    now = dt.datetime(2024, 1, 4, 12, tzinfo=dt.UTC)
    with app.store.begin(Actor.system("sop"), now=now) as uow:
        assert do_sop_tasks(uow, rules) == 2
    with app.store.begin(Actor.system("sop"), now=now) as uow:
        assert do_sop_tasks(uow, rules) == 0


def test_cli_lists_and_completes_tasks(wb, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    app, _, tasks, _, _ = wb
    monkeypatch.setenv("SIYU_HOME", str(app.settings.home))
    monkeypatch.setenv("SIYU_DATABASE_URL", app.settings.database_url)
    runner = CliRunner()
    out = runner.invoke(cli, ["guides", "tasks", "list", "--brand", "wb", "--staff", "g2", "--json"])
    assert out.exit_code == 0, out.output
    assert [t["id"] for t in json.loads(out.stdout) if t["kind"] != "sop"] == [tasks["c2"]]
    done = runner.invoke(cli, ["guides", "tasks", "done", str(tasks["c2"]), "--result", "visited", "--json"])
    assert done.exit_code == 0 and json.loads(done.stdout)["status"] == "done"
    missing = runner.invoke(cli, ["guides", "tasks", "done", "999999"])
    assert missing.exit_code == 3 and "no task 999999" in missing.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("brand: wb\nversion: 2\nbinding:\n  mode: first_guide\n", encoding="utf-8")
    applied = runner.invoke(cli, ["guides", "rules", "apply", str(bad)])
    assert applied.exit_code == 2 and f"{bad}:4: binding.mode" in applied.output
    bound = runner.invoke(cli, ["guides", "bind", "--brand", "wb", "--json"])
    assert bound.exit_code == 0, bound.output
    assert json.loads(bound.stdout)[0] | {"seconds": 0, "phases": {}} == {
        "brand": "wb",
        "claims": 2,
        "steps": 1,
        "bound": 2,
        "changed_customers": 0,
        "seconds": 0,
        "phases": {},
    }


def test_stores_and_staff_are_accepted_by_the_ingest_route(wb) -> None:
    app, _, _, url, _ = wb
    with app.store.begin(Actor.system("tests")) as uow:
        ingest = do_create_key(uow, "wb", parse_scopes(["ingest"]))[0]
    rows = [
        {"store_code": "s7", "name": "Pop-up", "type": "direct", "lat": 31.2, "lng": 121.4},
        {"store_code": "s8", "name": "Nowhere", "lat": 123},
    ]
    with httpx.Client(base_url=url, timeout=30) as c:
        r = c.post("/api/v1/ingest/stores", json=rows, headers=bearer(ingest))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["counts"] == {"accepted": 1, "updated": 0, "unchanged": 0, "rejected": 1}
        assert body["rows"][1]["errors"][0]["field"] == "lat"
        r = c.post(
            "/api/v1/ingest/staff",
            json=[{"staff_id": "g9", "role": "guide", "store_code": "s7"}],
            headers=bearer(ingest),
        )
        assert r.status_code == 200 and r.json()["counts"]["accepted"] == 1


def test_a_guide_key_reaches_no_other_guides_customer_on_any_route(wb) -> None:
    """Object-level authorisation for guide-bound keys (OWASP API1): every read route with a
    customer id in its path (found in the OpenAPI document) answers 404 for another guide's
    customer (c2 is g2's), as the workbench does, and 200 for the guide's own (c1)."""
    _, ids, _, url, keys = wb
    with httpx.Client(base_url=url, timeout=30) as c:
        doc = c.get("/openapi.json").json()
        routes = [
            p for p, ops in doc["paths"].items() if "{customer_id}" in p and "get" in ops and "{program}" not in p
        ]
        assert routes  # loyalty routes need a loyalty-scoped key, which guide keys are not
        seen = {p: c.get(p.format(customer_id=ids["c2"]), headers=bearer(keys["g1"])).status_code for p in routes}
        own = {p: c.get(p.format(customer_id=ids["c1"]), headers=bearer(keys["g1"])).status_code for p in routes}
        found = {c2: c.get("/api/v1/customers", params={"customer_id": ids[c2]}, headers=bearer(keys["g1"])).json()
                 for c2 in ("c1", "c2")}  # fmt: skip
    assert seen == dict.fromkeys(routes, 404) and own == dict.fromkeys(routes, 200), (seen, own)
    assert found == {"c1": {"customers": [ids["c1"]]}, "c2": {"customers": []}}  # lookups do not reveal them either
