"""Stores, staff and chat messages import like every canonical entity: typed, bad rows quarantined
with the field and the reason, re-imports unchanged; the HTTP ingest route accepts them too."""

from __future__ import annotations

from pathlib import Path

from siyu.bootstrap import App
from siyu.ingest.importer import import_path, quarantine
from siyu.ingest.views import latest


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_stores_staff_and_messages_are_validated_and_quarantined(sqlite_app: App, tmp_path: Path) -> None:
    app = sqlite_app
    folder = tmp_path / "in"
    folder.mkdir()
    write(
        folder / "stores.csv",
        "brand,store_code,name,type,lat,lng,opened_at,closed_at\n"
        "demo,s1,Nanjing Rd,direct,31.2304,121.4737,2020-01-01,\n"  # 2 good
        "demo,s2,Franchise,franchise,,,2021-01-01,2020-06-01\n"  # 3 closed before opened
        "demo,s3,Nowhere,direct,95.5,121.1,,\n"  # 4 latitude out of range
        "demo,s4,Kiosk,popup,,,,\n"  # 5 unknown type
        "demo,s5,Text,direct,north,121,,\n",  # 6 not degrees
    )
    write(
        folder / "staff.csv",
        "brand,staff_id,name,role,store_code,status,joined_at,left_at\n"
        "demo,g1,Li,guide,s1,active,2023-01-01,\n"  # 2 good
        "demo,m1,Wang,manager,s1,active,,\n"  # 3 good
        "demo,x1,Zhao,cashier,s1,active,,\n"  # 4 unknown role
        "demo,g2,Sun,guide,s1,left,2023-05-01,2023-04-01\n",  # 5 left before joined
    )
    write(
        folder / "messages.csv",
        "brand,msgid,staff_id,external_userid,direction,sent_at,type,text\n"
        "demo,m-1,g1,wm1,in,2024-01-01T10:00:00+08:00,text,你好\n"  # 2 good
        "demo,m-2,g1,wm1,sideways,2024-01-01T10:01:00+08:00,text,hi\n"  # 3 unknown direction
        "demo,m-3,g1,,out,2024-01-01T10:01:00+08:00,text,hi\n",  # 4 missing external_userid
    )
    report = import_path(app, folder)
    counts = report.as_json()
    assert counts["stores"] == {"accepted": 1, "updated": 0, "unchanged": 0, "quarantined": 4}
    assert counts["staff"] == {"accepted": 2, "updated": 0, "unchanged": 0, "quarantined": 2}
    assert counts["messages"] == {"accepted": 1, "updated": 0, "unchanged": 0, "quarantined": 2}
    bad = {(Path(r["file"]).stem, r["line"]): (r["field"], r["reason"]) for r in quarantine(app)}
    assert bad[("stores", 3)] == ("closed_at", "store closed before it opened")
    assert bad[("stores", 4)][0] == "lat" and "latitude" in bad[("stores", 4)][1]
    assert bad[("stores", 5)][0] == "type" and "unknown type 'popup'" in bad[("stores", 5)][1]
    assert bad[("stores", 6)] == ("lat", "not decimal degrees (e.g. 31.2304): north")
    assert bad[("staff", 4)][0] == "role" and "cashier" in bad[("staff", 4)][1]
    assert bad[("staff", 5)] == ("left_at", "staff left before joining")
    assert bad[("messages", 3)][0] == "direction"
    assert bad[("messages", 4)] == ("external_userid", "missing required value")
    stores = latest(app.engine, "stores")
    assert stores is not None
    row = app.engine.to_arrow(stores).to_pylist()[0]
    assert (row["store_code"], row["lat"], row["lng"]) == ("s1", 31.2304, 121.4737)
    again = import_path(app, folder).as_json()
    assert again["stores"]["unchanged"] == 1 and again["staff"]["unchanged"] == 2


def test_manual_binding_current_guide_and_tasks_on_both_stores(app: App) -> None:
    """The store side of the guides domain on SQLite and PostgreSQL: a manual binding becomes
    current through a run (no lake data needed), tasks resolve it, a churn alert is idempotent."""
    import datetime as dt

    from siyu.core.actor import Actor
    from siyu.guides.alerts import do_churn_alert
    from siyu.guides.bindings import current_guide, do_bind_manually, run_binding
    from siyu.guides.tasks import TaskRequest, do_create_task, list_tasks

    at = dt.datetime(2024, 3, 1, 9, tzinfo=dt.UTC)
    with app.store.begin(Actor.user("ops")) as uow:
        do_bind_manually(uow, "demo", "cust-1", "g7", store_code="s7", at=at)
    result = run_binding(app, "demo")
    assert (result.bound, result.changed_customers) == (1, 1)
    with app.store.begin(Actor.system("journeys")) as uow:
        guide = current_guide(uow.session, "demo", "cust-1")
        assert guide is not None and (guide.staff_id, guide.store_code, guide.source, guide.since) == (
            "g7",
            "s7",
            "manual",
            at,
        )
        assert current_guide(uow.session, "demo", "cust-2") is None
        task_id, created = do_create_task(uow, TaskRequest("demo", "cust-1", "journey", "call", "k1"))
        alerts = do_churn_alert(uow, "demo", "cust-1", "g7", key="cb")
        assert do_churn_alert(uow, "demo", "cust-1", "g7", key="cb") == alerts
    with app.store.unit_of_work() as session:
        tasks = {t["id"]: t for t in list_tasks(session, "demo", staff_id="g7")}
    assert created and tasks[task_id]["store_code"] == "s7"
    assert [tasks[i]["kind"] for i in alerts] == ["churn_alert"]  # no staff mirror: no manager on record
