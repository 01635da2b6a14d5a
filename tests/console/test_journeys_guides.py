"""The journeys and guides pages over plain HTTP: what they show is what the services answer
(journey_report, performance, list_tasks, the bindings), pause / resume and marking a task done
are audited, channel codes are created at (the fake) WeCom and their PNG served, and a guide or a
store manager sees only their own tasks and customers."""

from __future__ import annotations

import json
import re

import httpx
from sqlalchemy import select

from console.conftest import BRAND, PERIOD, Workspace, csrf_of, login
from siyu.audit.models import AuditEntry
from siyu.guides.models import CurrentBinding, GuideTask
from siyu.guides.performance import performance
from siyu.journeys.report import journey_report
from siyu.metrics.periods import parse_period


def _graph(html: str) -> dict[str, object]:
    found = re.search(r'<script type="application/json" id="journey-graph-data">(.*?)</script>', html, re.S)
    assert found is not None
    return dict(json.loads(found.group(1)))


def test_journey_list_and_page_show_the_report(workspace: Workspace, clients: dict[str, httpx.Client]) -> None:
    with workspace.app.store.unit_of_work() as session:
        report = journey_report(session, "onboarding")
    assert report["enrolled"] == 40 and report["steps"]["wait_7d"]["waiting"] > 0
    listing = clients["analyst"].get("/console/journeys?brand=demo")
    assert listing.status_code == 200
    row = re.search(r'href="/console/journeys/onboarding\?brand=demo">onboarding</a>.*?</tr>', listing.text, re.S)
    assert row is not None
    cells = re.findall(r"<td>([^<]*)</td>", row.group(0))
    assert cells[-3:] == [str(report["enrolled"]), str(report["active"]), str(report["completed"])]
    page = clients["analyst"].get("/console/journeys/onboarding?brand=demo")
    assert page.status_code == 200
    graph = _graph(page.text)
    nodes = {n["id"]: n for n in graph["nodes"]}  # type: ignore[attr-defined]
    steps = ["welcome", "welcome_mail", "wait_7d", "bought", "gift_coupon", "gift_sms", "done"]
    assert list(nodes) == steps  # `done` exits: no end
    for step, counts in report["steps"].items():
        assert (nodes[step]["entered"], nodes[step]["waiting"]) == (counts["entered"], counts["waiting"]), step
    assert {(e["source"], e["target"], e["label"]) for e in graph["edges"]} >= {  # type: ignore[attr-defined]
        ("bought", "done", "then"),
        ("bought", "gift_coupon", "else"),
        ("welcome", "welcome_mail", ""),
        ("welcome_mail", "wait_7d", ""),
    }
    assert nodes["bought"]["column"] == 3 and nodes["done"]["column"] == 4
    goal = report["goal"]
    assert goal["holdout_size"] > 0 and goal["ci95"] is not None
    assert "95% 置信区间" in page.text and f"{goal['holdout_size']:,}" in page.text
    assert "暂停" not in page.text  # an analyst may not pause
    fragment = clients["analyst"].get("/console/journeys/onboarding/steps?brand=demo")
    assert _graph(fragment.text) == graph and "<html" not in fragment.text


def test_pause_and_resume_are_audited(workspace: Workspace, clients: dict[str, httpx.Client]) -> None:
    client = clients["operator"]
    paused = client.post("/console/journeys/onboarding/pause?brand=demo", data={"csrf": csrf_of(client)})
    assert paused.status_code == 200 and "已暂停" in paused.text and "恢复" in paused.text
    resumed = client.post("/console/journeys/onboarding/resume?brand=demo", data={"csrf": csrf_of(client)})
    assert resumed.status_code == 200 and "运行中" in resumed.text
    with workspace.app.store.unit_of_work() as session:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "journey.status", AuditEntry.subject_id == "onboarding")
        ).all()
    assert [((r.actor_kind, r.actor_id, json.loads(r.after or "{}")["status"])) for r in rows][-2:] == [
        ("user", "operator@example.com", "paused"), ("user", "operator@example.com", "active")
    ]  # fmt: skip
    assert client.post("/console/journeys/no_such/pause?brand=demo", data={"csrf": csrf_of(client)}).status_code == 404


def test_performance_page_shows_the_service_figures(workspace: Workspace, clients: dict[str, httpx.Client]) -> None:
    expected = performance(workspace.app, BRAND, parse_period(PERIOD))
    assert expected["stores"]
    page = clients["brand_admin"].get(f"/console/guides?brand=demo&period={PERIOD}")
    assert page.status_code == 200
    table = page.text.split('id="stores"')[1].split("</table>")[0]
    assert table.count("<tr>") == len(expected["stores"]) + 1  # + the header
    store = next(s for s in expected["stores"] if s["store_code"] == workspace.store)
    assert f"<td>{workspace.store}</td><td>{store['guides']}</td>" in table
    mine = clients["store_manager"].get(f"/console/guides?brand=demo&period={PERIOD}").text
    codes = set(re.findall(r"<tr><td>([^<]+)</td><td>\d+</td>", mine.split('id="stores"')[1].split("</table>")[0]))
    assert codes == {workspace.store}  # a store manager sees only their store


def _task(workspace: Workspace, task_id: int) -> GuideTask:
    with workspace.app.store.unit_of_work() as session:
        task = session.get(GuideTask, task_id)
        assert task is not None
        return task


def test_a_guide_does_own_tasks_only(workspace: Workspace) -> None:
    guide = login(workspace.url, workspace.users["guide"])
    bench = guide.get("/console/workbench?brand=demo")
    assert bench.status_code == 200
    shown = {int(i) for i in re.findall(r'data-task="(\d+)"', bench.text)}
    assert workspace.tasks.own in shown and not shown & {workspace.tasks.others, workspace.tasks.store}
    with workspace.app.store.unit_of_work() as session:
        bound = session.scalars(
            select(CurrentBinding.customer_id).where(
                CurrentBinding.brand == BRAND, CurrentBinding.staff_id == workspace.guide
            )
        ).all()
    listed = re.findall(r'<li><a href="/console/customers/([^?"]+)\?', bench.text.split('id="workbench-customers"')[1])
    assert bound and sorted(listed) == sorted(bound)
    other = guide.post(
        f"/console/guides/tasks/{workspace.tasks.others}/done?brand=demo",
        data={"csrf": csrf_of(guide), "back": "workbench"},
    )
    assert other.status_code == 404 and _task(workspace, workspace.tasks.others).status == "open"
    done = guide.post(
        f"/console/guides/tasks/{workspace.tasks.own}/done?brand=demo",
        data={"csrf": csrf_of(guide), "result": "已回访", "back": "workbench"},
    )
    assert done.status_code == 303 and done.headers["location"] == "/console/workbench?brand=demo"
    task = _task(workspace, workspace.tasks.own)
    assert (task.status, task.result) == ("done", "已回访")
    with workspace.app.store.unit_of_work() as session:
        audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "task.done")).all()
    assert [(a.subject_id, a.actor_kind, a.actor_id) for a in audit] == [
        (str(workspace.tasks.own), "user", "guide@example.com")
    ]
    guide.close()


def test_a_store_manager_sees_their_stores_tasks(workspace: Workspace, clients: dict[str, httpx.Client]) -> None:
    bench = clients["store_manager"].get("/console/workbench?brand=demo")
    shown = {int(i) for i in re.findall(r'data-task="(\d+)"', bench.text)}
    assert workspace.tasks.store in shown and workspace.tasks.others not in shown
    listed = clients["store_manager"].get("/console/guides/tasks?brand=demo&status=open")
    shown = {int(i) for i in re.findall(r'data-task="(\d+)"', listed.text)}
    assert workspace.tasks.store in shown and workspace.tasks.others not in shown
    everything = clients["brand_admin"].get("/console/guides/tasks?brand=demo&status=open")
    assert {workspace.tasks.store, workspace.tasks.others} <= {
        int(i) for i in re.findall(r'data-task="(\d+)"', everything.text)
    }


def test_channel_codes_are_created_at_wecom_and_shown(workspace: Workspace, clients: dict[str, httpx.Client]) -> None:
    client = clients["operator"]
    form = {"state": "sh_counter", "staff": f"{workspace.guide}, {workspace.other_guide}",
            "store_code": workspace.store, "channel": "counter", "exclusive": "true",
            "csrf": csrf_of(client)}  # fmt: skip
    created = client.post("/console/guides/qrcodes?brand=demo", data=form)
    assert created.status_code == 200, created.text[-500:]
    assert 'data-state="sh_counter"' in created.text and "已记入审计" in created.text
    again = client.post("/console/guides/qrcodes?brand=demo", data=form)
    assert again.status_code == 400 and "already exists" in again.text
    png = clients["analyst"].get("/console/guides/qrcodes/sh_counter.png?brand=demo")
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert clients["analyst"].get("/console/guides/qrcodes/nope.png?brand=demo").status_code == 404
    assert 'data-state="sh_counter"' in clients["store_manager"].get("/console/guides/qrcodes?brand=demo").text
