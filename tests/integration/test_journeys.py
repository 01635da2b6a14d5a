"""Journeys over hand-worked timelines on the `jb` brand (tests/fixtures/journey_brand.py): every
trigger and step kind, wait_for both ways, re-entry, an edit while customers are in, a holdout,
pausing. One workspace per module (SQLite); each test applies its own journeys and archives them.
Times: T0 = 2026-03-01 10:00 Asia/Shanghai (02:00Z)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from fixtures.counting_engine import CountingEngine
from fixtures.journey_brand import CLUB, build, ids, land
from siyu.audiences.service import check_rule, do_create_audience
from siyu.audiences.snapshots import do_snapshot_audience, freeze_audience
from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.events.catalogue import TierChanged
from siyu.events.dispatch import run_handlers
from siyu.guides.models import GuideTask
from siyu.journeys.apply import do_apply_journey, do_set_status, load_version
from siyu.journeys.errors import JourneyError
from siyu.journeys.handler import journey_triggers
from siyu.journeys.listing import customer_journeys
from siyu.journeys.manual import enrol_customer
from siyu.journeys.models import Enrolment, EnrolmentStep, JourneyRow
from siyu.journeys.report import journey_report
from siyu.journeys.runner import run_due
from siyu.journeys.triggers import candidates
from siyu.messaging.models import OutboundMessage

T0 = dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.UTC)
USER = Actor.user("test")
DAY = dt.timedelta(days=1)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[App, Path]]:
    root = tmp_path_factory.mktemp("journeys")
    app = build(root, f"sqlite:///{root / 'store.db'}")
    yield app, root
    app.store.engine.dispose()


@pytest.fixture
def app(ws: tuple[App, Path]) -> Iterator[App]:
    yield ws[0]
    with ws[0].store.begin(USER) as uow:  # a finished test's journeys must not react to later data
        for row in uow.session.scalars(select(JourneyRow).where(JourneyRow.status != "archived")):
            do_set_status(uow, row.code, "archived")


@pytest.fixture
def root(ws: tuple[App, Path]) -> Path:
    return ws[1]


def apply(app: App, root: Path, text: str, at: dt.datetime = T0, backfill: dt.datetime | None = None) -> str:
    path = root / f"j{abs(hash(text))}.yaml"
    path.write_text(text, encoding="utf-8")
    return do_apply_journey(app, path, actor=USER, at=at, backfill_from=backfill).status


def enrolments(app: App, code: str) -> dict[str, Enrolment]:
    """customer source id → their (latest) enrolment."""
    back = {v: k for k, v in ids(app).items()}
    with app.store.unit_of_work() as s:
        rows = s.scalars(select(Enrolment).where(Enrolment.journey == code).order_by(Enrolment.id)).all()
    return {back[e.customer_id]: e for e in rows}


def outcomes(app: App, enrolment_id: int) -> list[tuple[str, str | None]]:
    with app.store.unit_of_work() as s:
        rows = s.execute(
            select(EnrolmentStep.step_id, EnrolmentStep.outcome)
            .where(EnrolmentStep.enrolment_id == enrolment_id)
            .order_by(EnrolmentStep.seq)
        ).all()
    return [(a, b) for a, b in rows]


def messages(app: App, code: str) -> list[OutboundMessage]:
    with app.store.unit_of_work() as s:
        return list(s.scalars(select(OutboundMessage).where(OutboundMessage.journey == code)))


REVIEW = """
brand: jb
code: {code}
version: 1
name: {{zh: 评价邀请, en: Review request}}
category: marketing
trigger: {{event: {{type: order_paid}}}}
re_entry: always
goal: {{event: review, within_days: 14}}
templates:
  ask: {{sms: {{template_code: SMS_1, params: {{order: "{{{{ context.order_id }}}}"}}}}}}
steps:
  - {{id: wait7, wait: {{days: 7}}}}
  - {{id: at10, wait: {{until_time: "10:00"}}}}
  - {{id: ask, send: {{channel: sms, template: ask}}}}
  - id: reviewed
    wait_for: {{event: review, match: order_id, timeout: {{days: 3}}, on_event: thanks, on_timeout: follow_up}}
  - {{id: thanks, tag: {{add: vip}}, next: done}}
  - {{id: follow_up, task: {{title: 请回访}}}}
  - {{id: done, exit: }}
"""


def test_review_request_timeline_wait_for_both_ways(app: App, root: Path) -> None:
    """O1 (c2) and O2 (c3) paid 2026-03-01 10:00/11:00 local, landing after the apply. Day 0 10:00Z:
    both enrolled, waiting 7 days (→ 03-08 10:00 / 11:00 local). Run 03-08 12:00 local: both waited;
    `at10` waits for the next 10:00 → 03-09 10:00. Run 03-09 10:00: both asked (2 SMS queued),
    both wait for a review of their order until 03-12 10:00. c2 reviews O1 on 03-10; c3 reviews
    another order, which must not release c3's wait. Run 03-10 12:00: c2 → thanks (tag vip) → done
    (exit). Run 03-12 10:00: c3 timed out → follow_up task → done (exit)."""
    assert apply(app, root, REVIEW.format(code="review")) == "created"
    land(
        app,
        root,
        "orders_r.csv",
        """brand,source,order_id,source_customer_id,status,paid_at,amount_fen
jb,crm,O1,c2,paid,2026-03-01T10:00:00+08:00,5000
jb,crm,O2,c3,paid,2026-03-01T11:00:00+08:00,5000
""",
    )
    local = dt.timezone(dt.timedelta(hours=8))
    assert run_due(app, T0 + dt.timedelta(hours=2)).enrolled == 2
    e = enrolments(app, "review")
    assert set(e) == {"c2", "c3"}
    assert json.loads(e["c2"].context)["order_id"] == "O1"
    run_due(app, dt.datetime(2026, 3, 8, 12, tzinfo=local))
    e = enrolments(app, "review")
    assert e["c2"].step_id == "at10"
    assert e["c2"].due_at.replace(tzinfo=dt.UTC) == dt.datetime(2026, 3, 9, 2, tzinfo=dt.UTC)
    run_due(app, dt.datetime(2026, 3, 9, 10, tzinfo=local))
    sent = messages(app, "review")
    assert sorted(m.idempotency_key for m in sent) == sorted(f"journey:{x.id}:ask" for x in e.values())
    assert all(m.channel == "sms" and m.category == "marketing" for m in sent)
    land(
        app,
        root,
        "events_r.csv",
        """brand,source,event_id,type,source_customer_id,occurred_at,properties
jb,crm,RV1,review,c2,2026-03-10T09:00:00+08:00,"{""order_id"": ""O1""}"
jb,crm,RV2,review,c3,2026-03-10T09:00:00+08:00,"{""order_id"": ""O-OTHER""}"
""",
    )
    run_due(app, dt.datetime(2026, 3, 10, 12, tzinfo=local))
    e = enrolments(app, "review")
    assert e["c2"].status == "exited"
    assert [s for s, _ in outcomes(app, e["c2"].id)] == ["wait7", "at10", "ask", "reviewed", "thanks", "done"]
    assert outcomes(app, e["c2"].id)[3] == ("reviewed", "event")
    assert e["c3"].status == "active" and e["c3"].step_id == "reviewed"
    run_due(app, dt.datetime(2026, 3, 12, 10, tzinfo=local))
    e = enrolments(app, "review")
    assert e["c3"].status == "exited"  # follow_up has no `next`: the step below it, `done`, exits
    steps = outcomes(app, e["c3"].id)
    assert [s for s, _ in steps[3:]] == ["reviewed", "follow_up", "done"]
    assert steps[3] == ("reviewed", "timeout") and (steps[4][1] or "").startswith("task:")
    with app.store.unit_of_work() as s:
        tasks = s.scalars(select(GuideTask).where(GuideTask.source.like("journey:review:%"))).all()
        report = journey_report(s, "review")
    assert [t.customer_id for t in tasks] == [e["c3"].customer_id]
    assert report["enrolled"] == 2 and report["exited"] == 2 and report["completed"] == 0
    assert report["steps"]["reviewed"] == {"entered": 2, "waiting": 0, "completed": 2}
    assert report["steps"]["thanks"]["entered"] == 1 and report["steps"]["follow_up"]["entered"] == 1
    assert report["sends"] == {"sms": {"sent": 0, "delivered": 0, "failed": 0, "suppressed": 0}}
    # goal: a review within 14 days — c2 (RV1) and c3 (RV2, any order) both converted
    assert report["goal"]["converted"] == 2 and report["goal"]["rate"] == 1.0
    # running again at the same time changes nothing
    assert run_due(app, dt.datetime(2026, 3, 12, 10, tzinfo=local)).transitions == 0
    assert len(messages(app, "review")) == 2


def test_only_data_after_apply_triggers_unless_backfill(app: App, root: Path) -> None:
    """O-OLD (c1, 2026-01-02) was in the lake before the apply: not enrolled. With
    --backfill-from 2026-01-01 a second journey enrols it; from 2026-02-01 it would not."""
    assert apply(app, root, REVIEW.format(code="no_backfill")) == "created"
    run_due(app, T0)
    assert "c1" not in enrolments(app, "no_backfill")
    apply(app, root, REVIEW.format(code="backfill"), backfill=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    apply(app, root, REVIEW.format(code="backfill_late"), backfill=dt.datetime(2026, 2, 1, tzinfo=dt.UTC))
    run_due(app, T0)
    assert "c1" in enrolments(app, "backfill")
    assert json.loads(enrolments(app, "backfill")["c1"].context)["order_id"] == "O-OLD"
    assert "c1" not in enrolments(app, "backfill_late")


def test_an_idle_trigger_scan_reads_the_lake_once(app: App, root: Path) -> None:
    """Nothing landed since the mark (most scans of a running worker, and the demo's later passes):
    the newest ingested_at answers it; no candidate read, no scan for unresolved rows."""
    apply(app, root, REVIEW.format(code="idle"))
    with app.store.unit_of_work() as s:
        row = s.get(JourneyRow, "idle")
        assert row is not None and row.trigger_mark is not None
        journey = load_version(s, "idle", row.version)
    counting = CountingEngine(app.engine)
    found, mark = candidates(dataclasses.replace(app, engine=counting), journey, row.trigger_mark, None, T0)
    assert (found.num_rows, mark, counting.queries) == (0, row.trigger_mark, 1)


def test_an_event_arriving_through_the_loader_enrols_within_the_cycle(app: App, root: Path) -> None:
    """The journey_triggers handler runs after a batch lands: the `sign_in` event enrols c4."""
    apply(
        app, root,
        """
brand: jb
code: signin
version: 1
name: {zh: 签到, en: Sign-in}
category: transactional
trigger: {event: {type: sign_in, where: {channel: app}}}
steps:
  - {id: hello, webhook: {url: "https://hooks.example.com/x", body: {a: 1}}}
""",
    )  # fmt: skip
    land(
        app,
        root,
        "events_s.csv",
        """brand,source,event_id,type,source_customer_id,occurred_at,properties
jb,crm,S1,sign_in,c4,2026-03-01T09:00:00+08:00,"{""channel"": ""app""}"
jb,crm,S2,sign_in,c5,2026-03-01T09:00:00+08:00,"{""channel"": ""web""}"
""",
    )
    run_handlers(app.store, [journey_triggers(app)], clock=app.clock)
    assert set(enrolments(app, "signin")) == {"c4"}  # the handler enrols at the app's clock (now)
    run_due(app, app.clock())
    assert outcomes(app, enrolments(app, "signin")["c4"].id) == [("hello", "webhook:queued")]
    [m] = messages(app, "signin")
    assert m.channel == "webhook" and m.category == "transactional"
    # queued unrendered: the dispatcher composes it at send time (siyu.messaging.enqueue)
    queued = json.loads(m.payload)
    assert queued["rendered"] is False and queued["content"]["url"] == "https://hooks.example.com/x"


def test_date_triggers_birthday_lunar_and_anniversary(app: App, root: Path) -> None:
    """Applied 2026-06-10. c1 born 1990-06-18: offset -3 → enrolled on 06-15 after 10:00 local
    (not at 09:59); c3 (07-01) on 06-28. Lunar: c1's lunar birthday is 五月廿六 (1990-05-26) →
    2026-07-10 (农历五月廿六; 07-09 is 廿五).
    Anniversary: M1 joined 2025-06-10 → enrolled on 2026-06-10 10:00 (the apply day counts)."""
    local = dt.timezone(dt.timedelta(hours=8))
    at = dt.datetime(2026, 6, 10, 8, tzinfo=local)
    template = """
brand: jb
code: {code}
version: 1
name: {{zh: 日期, en: Date}}
category: marketing
trigger: {{date: {trigger}}}
re_entry: {{after_days: 300}}
steps:
  - {{id: mark, tag: {{add: vip}}}}
"""
    apply(app, root, template.format(code="bday", trigger="{attribute: birthday, offset_days: -3, at: '10:00'}"), at)
    apply(app, root, template.format(code="lunar", trigger="{attribute: birthday, calendar: lunar}"), at)
    apply(app, root, template.format(code="anniv", trigger="{attribute: membership_anniversary}"), at)
    run_due(app, dt.datetime(2026, 6, 10, 10, 0, tzinfo=local))
    assert set(enrolments(app, "anniv")) == {"c1"}
    run_due(app, dt.datetime(2026, 6, 15, 9, 59, tzinfo=local))
    assert enrolments(app, "bday") == {}
    run_due(app, dt.datetime(2026, 6, 15, 10, 0, tzinfo=local))
    assert set(enrolments(app, "bday")) == {"c1"}
    assert enrolments(app, "bday")["c1"].entry_key == "birthday:2026-06-18"
    run_due(app, dt.datetime(2026, 6, 18, 10, 0, tzinfo=local))
    assert enrolments(app, "lunar") == {}
    run_due(app, dt.datetime(2026, 7, 9, 10, 0, tzinfo=local))
    assert enrolments(app, "lunar") == {}
    run_due(app, dt.datetime(2026, 7, 10, 10, 0, tzinfo=local))
    assert set(enrolments(app, "lunar")) == {"c1"}
    # c3 (born 07-01) entered on 06-28 (three days before), c1 once only
    assert {c: e.entry_key for c, e in enrolments(app, "bday").items()} == {
        "c1": "birthday:2026-06-18", "c3": "birthday:2026-07-01"
    }  # fmt: skip


def test_broadcast_to_an_audience_and_audience_entry(app: App, root: Path) -> None:
    """Broadcast to the members (c1 c2 c4 c5 c6) at 2026-04-01 10:00 local: nobody before, all at
    it, nobody twice. Audience entry: snapshot 1 after apply holds the members; all enter."""
    with app.store.begin(USER) as uow:
        do_create_audience(uow, "members", check_rule(app, "jb", {"membership": "member"}), replace=True)
    local = dt.timezone(dt.timedelta(hours=8))
    apply(
        app, root,
        """
brand: jb
code: spring_sale
version: 1
name: {zh: 春季大促, en: Spring sale}
category: marketing
trigger: {broadcast: {audience: members, at: "2026-04-01T10:00:00+08:00"}}
steps:
  - {id: mark, tag: {add: vip}}
""",
    )  # fmt: skip
    apply(
        app, root,
        """
brand: jb
code: joined_members
version: 1
name: {zh: 入群, en: Entered}
category: marketing
trigger: {audience: {code: members, change: enter}}
steps:
  - {id: mark, tag: {add: vip}}
""",
    )  # fmt: skip
    run_due(app, dt.datetime(2026, 4, 1, 9, 59, tzinfo=local))
    assert enrolments(app, "spring_sale") == {}
    run_due(app, dt.datetime(2026, 4, 1, 10, 0, tzinfo=local))
    assert set(enrolments(app, "spring_sale")) == {"c1", "c2", "c4", "c5", "c6"}
    run_due(app, dt.datetime(2026, 4, 2, 10, 0, tzinfo=local))
    assert len(enrolments(app, "spring_sale")) == 5
    membership = freeze_audience(app, "jb", "members")
    with app.store.begin(USER) as uow:
        do_snapshot_audience(uow, app.lake, membership)
    run_due(app, dt.datetime(2026, 4, 2, 11, 0, tzinfo=local))
    assert set(enrolments(app, "joined_members")) == {"c1", "c2", "c4", "c5", "c6"}


BRANCHY = """
brand: jb
code: branchy
version: {version}
name: {{zh: 分支, en: Branchy}}
category: marketing
trigger: {{event: {{type: visit}}}}
re_entry: {re_entry}
holdout_percent: {holdout}
templates:
  hi: {{email: {{subject: hi, body: hello}}}}
steps:
  - {{id: w, wait: {{days: 1}}}}
  - id: member
    branch: {{rule: {{membership: member}}, then: ab, else: bye}}
  - id: ab
    split: {{paths: [{{percent: 50, next: mail}}, {{percent: 50, next: tagit}}]}}
  - {{id: mail, send: {{channel: email, template: hi}}, next: bye}}
  - {{id: tagit, tag: {{add: vip}}}}
  - {{id: bye, exit: }}
"""


def test_branch_split_and_holdout(app: App, root: Path) -> None:
    """Every customer visits; after a day, members (c1 c2 c4 c5 c6) go to the split, c3 exits.
    The split is the customer's bucket of sha256(journey, customer, step) < 50 → mail; the
    holdout (50 %) walks the same path but receives nothing (`skipped:holdout`)."""
    from siyu.journeys.enrol import bucket

    apply(app, root, BRANCHY.format(version=1, re_entry="always", holdout=50))
    rows = "\n".join(f"jb,crm,V{c},visit,{c},2026-03-01T09:00:00+08:00," for c in ("c1", "c2", "c3", "c4", "c5", "c6"))
    land(
        app,
        root,
        "events_v.csv",
        "brand,source,event_id,type,source_customer_id,occurred_at,properties\n" + rows + "\n",
    )
    run_due(app, T0)
    run_due(app, T0 + DAY)
    e = enrolments(app, "branchy")
    assert outcomes(app, e["c3"].id)[1] == ("member", "else")
    by_id = {m.customer_id: m for m in messages(app, "branchy")}
    for c in ("c1", "c2", "c4", "c5", "c6"):
        steps = outcomes(app, e[c].id)
        assert steps[1] == ("member", "then")
        mail = bucket(e[c].customer_id, "branchy", "ab") < 50
        assert steps[2] == ("ab", "split:mail" if mail else "split:tagit")
        if e[c].holdout:
            assert steps[3][1] == "skipped:holdout"
            assert e[c].customer_id not in by_id
        else:
            assert (e[c].customer_id in by_id) == mail
    assert any(x.holdout for x in e.values()) and not all(x.holdout for x in e.values())


def test_re_entry_rules(app: App, root: Path) -> None:
    """once: a second manual request with another key does not enrol; after_days 10: again only
    from day 10; always: each new key enrols; the same key twice is one enrolment (idempotent)."""
    template = """
brand: jb
code: re_{name}
version: 1
name: {{zh: 重入, en: Re-entry}}
category: marketing
trigger: {{event: {{type: never_happens}}}}
re_entry: {rule}
steps:
  - {{id: w, wait: {{days: 30}}}}
"""
    for name, rule in (("once", "once"), ("after", "{after_days: 10}"), ("always", "always")):
        apply(app, root, template.format(name=name, rule=rule))
    c1 = ids(app)["c1"]
    first = enrol_customer(app, "re_once", c1, T0, key="a")
    assert first["created"] and enrol_customer(app, "re_once", c1, T0, key="a")["created"] is False
    assert enrol_customer(app, "re_once", c1, T0 + 40 * DAY, key="b")["enrolled"] is False
    assert enrol_customer(app, "re_after", c1, T0, key="a")["created"]
    assert enrol_customer(app, "re_after", c1, T0 + 9 * DAY, key="b")["enrolled"] is False
    assert enrol_customer(app, "re_after", c1, T0 + 10 * DAY, key="c")["created"]
    assert enrol_customer(app, "re_always", c1, T0, key="a")["created"]
    assert enrol_customer(app, "re_always", c1, T0, key="b")["created"]
    assert [j["journey"] for j in customer_journeys(app, "jb", c1)].count("re_always") == 2


def test_a_journey_edited_while_customers_are_in_it(app: App, root: Path) -> None:
    """v1: wait 1 day → tag. c1 enters v1; v2 (wait 1 day → send e-mail) is applied; c2 enters v2.
    After the day, c1 finishes v1 (tag, no message), c2 v2 (a message). Same file again: unchanged;
    a changed file at the same version: refused; both versions kept."""
    v1 = """
brand: jb
code: edited
version: {version}
name: {{zh: 编辑, en: Edited}}
category: marketing
trigger: {{event: {{type: never_happens}}}}
templates:
  hi: {{email: {{subject: hi, body: hello}}}}
steps:
  - {{id: w, wait: {{days: 1}}}}
  - {step}
"""
    first = v1.format(version=1, step="{id: act, tag: {add: vip}}")
    assert apply(app, root, first) == "created"
    assert apply(app, root, first) == "unchanged"
    enrol_customer(app, "edited", ids(app)["c1"], T0)
    run_due(app, T0)
    second = v1.format(version=2, step="{id: act, send: {channel: email, template: hi}}")
    with pytest.raises(JourneyError, match="raise `version:`"):
        apply(app, root, v1.format(version=1, step="{id: act, send: {channel: email, template: hi}}"))
    assert apply(app, root, second) == "updated"
    enrol_customer(app, "edited", ids(app)["c2"], T0)
    run_due(app, T0)
    run_due(app, T0 + DAY)
    e = enrolments(app, "edited")
    assert (e["c1"].version, e["c2"].version) == (1, 2)
    assert outcomes(app, e["c1"].id)[1] == ("act", "tag:+vip")
    assert [m.customer_id for m in messages(app, "edited")] == [e["c2"].customer_id]
    assert all(x.status == "completed" for x in e.values())


def test_pause_stops_steps_and_resume_runs_them(app: App, root: Path) -> None:
    apply(
        app, root,
        """
brand: jb
code: pausable
version: 1
name: {zh: 暂停, en: Pausable}
category: marketing
trigger: {event: {type: never_happens}}
steps:
  - {id: w, wait: {hours: 1}}
  - {id: act, tag: {add: vip}}
""",
    )  # fmt: skip
    enrol_customer(app, "pausable", ids(app)["c1"], T0)
    run_due(app, T0)
    with app.store.begin(USER) as uow:
        do_set_status(uow, "pausable", "paused")
    run_due(app, T0 + DAY)
    assert enrolments(app, "pausable")["c1"].status == "active"
    with app.store.begin(USER) as uow:
        do_set_status(uow, "pausable", "active")
    run_due(app, T0 + DAY)
    assert enrolments(app, "pausable")["c1"].status == "completed"


def test_validation_errors_name_file_line_and_field(root: Path) -> None:
    from siyu.journeys.definition import parse_journey

    text = REVIEW.format(code="bad").replace("timeout: {days: 3}", "timeout: {days: -3}")
    with pytest.raises(JourneyError) as error:
        parse_journey(text, "bad.yaml")
    assert "bad.yaml:17: steps.3.wait_for.timeout.days" in error.value.message
    with pytest.raises(JourneyError, match=r"bad.yaml:18: steps.4: Value error, step 'thanks' goes to 'nowhere'"):
        parse_journey(REVIEW.format(code="bad").replace("next: done", "next: nowhere"), "bad.yaml")


def test_the_ready_made_journeys_apply(app: App, root: Path) -> None:
    examples = Path(__file__).parents[2] / "src/siyu/journeys/examples"
    files = sorted(examples.glob("*.yaml"))
    assert {f.stem for f in files} == {
        "onboarding", "birthday", "tier_upgrade", "review_request", "win_back", "koc_nurture"
    }  # fmt: skip
    for f in files:  # applied to the test brand (the files name `demo`, the demo brand)
        assert apply(app, root, f.read_text(encoding="utf-8").replace("brand: demo", "brand: jb")) == "created"


def test_cli_apply_list_show_enrol_run_report(app: App, root: Path) -> None:
    from typer.testing import CliRunner

    from siyu.cli.app import app as cli

    path = root / "cli.yaml"
    path.write_text(REVIEW.format(code="cli_j"), encoding="utf-8")
    env = {"SIYU_HOME": str(app.settings.home), "SIYU_DATABASE_URL": app.settings.store_url}
    run = CliRunner().invoke

    def ok(*args: str) -> str:
        result = run(cli, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.output

    assert json.loads(ok("journey", "apply", str(path), "--json", "--now", "2026-03-01T10:00:00+08:00"))["status"] == (
        "created"
    )
    assert json.loads(ok("journey", "apply", str(path), "--json"))["status"] == "unchanged"
    assert "cli_j" in [j["code"] for j in json.loads(ok("journey", "list", "--json"))]
    assert json.loads(ok("journey", "show", "cli_j"))["versions"][0]["version"] == 1
    enrolled = json.loads(
        ok("journey", "enrol", "cli_j", "--customer", "13800000005", "--now", "2026-03-01T10:00+08:00")
    )
    assert enrolled["created"] is True
    ran = json.loads(ok("journey", "run", "--once", "--now", "2026-03-01T10:00:00+08:00", "--json"))
    assert ran["batches"] == 1
    report = json.loads(ok("journey", "report", "cli_j", "--json"))
    assert {k: report[k] for k in ("enrolled", "active", "completed", "exited")} == {
        "enrolled": 1, "active": 1, "completed": 0, "exited": 0
    }  # fmt: skip
    assert report["steps"]["wait7"] == {"entered": 1, "waiting": 1, "completed": 0}
    bad = run(cli, ["journey", "report", "nope"], env=env)
    assert bad.exit_code == 3 and "unknown_journey" in bad.output
    # preview renders the step's SMS template for the customer (h2's render_for_customer); nothing is sent
    ask = ["journey", "preview", "cli_j", "--customer", "13800000005", "--step", "ask"]
    missing = run(cli, ask, env=env)  # enrolled by hand: no order in its context, and the template needs one
    assert missing.exit_code == 2 and "order_id" in missing.output
    shown = json.loads(ok(*ask, "--context", '{"order_id": "O-77"}'))
    assert shown["params"] == {"order": "O-77"}
    not_send = run(cli, ["journey", "preview", "cli_j", "--customer", "13800000005", "--step", "wait7"], env=env)
    assert not_send.exit_code != 0 and "preview a send step" in not_send.output


def test_coupon_and_points_steps_through_the_loyalty_center(app: App, root: Path) -> None:
    """c1 is a member (M1): the coupon step issues `gift` (its code enters the context, a later
    send can use it) and the points step grants 50 points, keyed journey:{enrolment}:{step}. c3
    is no member: both steps are recorded as skipped:not_member."""
    from siyu.loyalty.models import PointsTxn
    from siyu.loyalty.programs import do_apply_program
    from siyu.loyalty.sync import sync
    from siyu.messaging.address import CustomerFacts
    from siyu.messaging.templates import render_content

    (root / "club.yaml").write_text(CLUB, encoding="utf-8")
    do_apply_program(app.store, root / "club.yaml", actor="test", at=T0)
    sync(app, "jb_club", at=T0, actor="test")
    apply(
        app, root,
        """
brand: jb
code: rewards
version: 1
name: {zh: 奖励, en: Rewards}
category: marketing
trigger: {event: {type: never_happens}}
steps:
  - {id: gift, coupon: {program: jb_club, template: gift}}
  - {id: pts, points: {program: jb_club, points: 50, reason: welcome}}
""",
    )  # fmt: skip
    enrol_customer(app, "rewards", ids(app)["c1"], T0)
    enrol_customer(app, "rewards", ids(app)["c3"], T0)
    run_due(app, T0)
    e = enrolments(app, "rewards")
    c1 = outcomes(app, e["c1"].id)
    assert c1[0][1].startswith("coupon:") and c1[1] == ("pts", "points:50")
    context = json.loads(e["c1"].context)
    assert context["coupon_code"] == c1[0][1].removeprefix("coupon:")
    # a later template reads it as docs/messaging.md says: {{ coupon.code }}
    assert context["coupon"]["code"] == context["coupon_code"] and context["coupon"]["template"] == "gift"
    sms = render_content(CustomerFacts({}, None), "sms", {"text": "券 {{ coupon.code }}"}, context, "transactional")
    assert sms["text"] == f"券 {context['coupon_code']}"
    assert outcomes(app, e["c3"].id) == [("gift", "skipped:not_member"), ("pts", "skipped:not_member")]
    with app.store.unit_of_work() as s:
        keys = s.scalars(select(PointsTxn.idempotency_key).where(PointsTxn.idempotency_key.like("journey:%"))).all()
    assert keys == [f"journey:{e['c1'].id}:pts"]


def test_tier_changed_enrols_the_accounts_customers(app: App, root: Path) -> None:
    """A TierChanged (upgrade to gold) of c1's account enrols c1 with the change as its context; a
    downgrade does not match `where: {reason: upgrade}`."""
    from siyu.loyalty.models import LoyaltyAccount
    from siyu.loyalty.programs import do_apply_program
    from siyu.loyalty.sync import sync

    (root / "club.yaml").write_text(CLUB, encoding="utf-8")
    do_apply_program(app.store, root / "club.yaml", actor="test", at=T0)
    sync(app, "jb_club", at=T0, actor="test")
    apply(app, root, """
brand: jb
code: upgraded
version: 1
name: {zh: 升级, en: Upgraded}
category: transactional
trigger: {event: {type: tier_changed, where: {reason: upgrade}}}
re_entry: always
steps:
  - {id: mark, tag: {add: vip}}
""")  # fmt: skip
    who = ids(app)
    with app.store.unit_of_work() as s:
        accounts = dict(s.execute(select(LoyaltyAccount.member_no, LoyaltyAccount.id)).all())
    later = T0 + dt.timedelta(hours=1)
    with app.store.begin(USER, now=later) as uow:
        uow.emit(TierChanged("jb", "jb_club", accounts["M1"], "regular", "gold", "upgrade"))
        uow.emit(TierChanged("jb", "jb_club", accounts["M2"], "gold", "regular", "downgrade"))
    run_handlers(app.store, [journey_triggers(app)], clock=lambda: later)
    got = enrolments(app, "upgraded")
    assert set(got) == {"c1"} and got["c1"].customer_id == who["c1"]
    assert json.loads(got["c1"].context)["new_tier"] == "gold"
