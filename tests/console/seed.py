"""What the journeys and guides pages show in the console's session workspace: the demo
onboarding journey with customers walked through its first steps, the guide bindings, a few guide
tasks (the guide user's own, another guide's, an unassigned one of the store) and WeCom configured
against the fake (channel codes are created through it)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from fixtures import wecom_wire as wire
from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.guides.bindings import do_bind_manually, run_binding
from siyu.guides.tasks import TaskRequest, do_create_task
from siyu.identity.service import MAP_TABLE
from siyu.ingest.importer import import_path
from siyu.ingest.views import latest
from siyu.journeys import runner
from siyu.journeys.apply import do_apply_journey
from siyu.wecom.settings import CorpSettings, do_configure

ONBOARDING = Path(runner.__file__).parent / "examples" / "onboarding.yaml"
START = dt.datetime(2024, 6, 3, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai, a Monday
ENROLLED = 40


@dataclass(frozen=True)
class Tasks:
    own: int  # the guide user's
    others: int  # another guide's, in another store
    store: int  # unassigned, at the store manager's store


def seed_journey(app: App, brand: str) -> None:
    do_apply_journey(app, ONBOARDING, actor=Actor.system("tests"), at=START)
    idmap = app.engine.table(MAP_TABLE)
    assert idmap is not None
    ids = idmap.filter(idmap.brand == brand).select("customer_id").distinct().order_by("customer_id")
    customers = app.engine.to_arrow(ids.limit(ENROLLED))["customer_id"].to_pylist()
    found = pa.table(
        {
            "customer_id": pa.array(customers, pa.string()),
            "entry_key": pa.array([f"console-test:{c}" for c in customers], pa.string()),
            "occurred_at": pa.array([START] * len(customers), pa.timestamp("us", "UTC")),
            "props": pa.array(["{}"] * len(customers), pa.string()),
        }
    )
    runner.enrol_found(app, "onboarding", found, START)
    runner.run_due(app, START)  # welcome sent → waiting 7 days


def staff_file(app: App, brand: str, folder: Path) -> Path:
    """The demo has no staff file: one guide per guide code of its customers, at their store."""
    customers = latest(app.engine, "customers")
    assert customers is not None
    guided = customers.filter(
        (customers.brand == brand) & customers.guide_code.notnull() & customers.store_code.notnull()
    )
    pairs = guided.group_by("guide_code").aggregate(store_code=guided.store_code.min()).order_by("guide_code")
    rows = app.engine.to_arrow(pairs).to_pylist()
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["brand,staff_id,role,name,store_code,status"]
    lines += [f"{brand},{r['guide_code']},guide,导购{r['guide_code']},{r['store_code']},active" for r in rows]
    (folder / "staff.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def seed_guides(app: App, brand: str, guide: str, other_guide: str, store: str, customer: str, folder: Path) -> Tasks:
    import_path(app, staff_file(app, brand, folder))
    with app.store.begin(Actor.system("tests")) as uow:  # the guide's own customer is bound to them
        do_bind_manually(uow, brand, customer, guide, store_code=store, at=START)
    run_binding(app, brand)
    made = []
    requests = [
        TaskRequest(brand, customer, "manual", "请回访：确认尺码", "console-own", assignee_staff_id=guide,
                    store_code=store, body="客户上周咨询了 42 码", due_at=START + dt.timedelta(days=1)),
        TaskRequest(brand, None, "churn_alert", "别的导购的任务", "console-other", assignee_staff_id=other_guide,
                    store_code="ELSEWHERE"),
        TaskRequest(brand, None, "sop", "门店任务：整理会员资料", "console-store", store_code=store),
    ]  # fmt: skip
    with app.store.begin(Actor.system("tests")) as uow:
        for request in requests:
            made.append(do_create_task(uow, request)[0])
        do_configure(
            uow, app.settings.pii_keyring, CorpSettings(brand, wire.CORP_ID, wire.TOKEN, wire.AES_KEY, wire.SECRET)
        )
    return Tasks(*made)
