"""Audiences on the hand-made brand `au` (tests/fixtures/audience_brand.py), as of 2024-06-30 in
Asia/Shanghai. Every expected set below is worked out by hand from the fixture's table: letters
are customers after One-ID (B = b1 + b2, merged by phone)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from fixtures.audience_brand import AS_OF, write_brand
from fixtures.audience_ops import export_audience
from siyu.audiences.compile import compile_rule
from siyu.audiences.context import Context
from siyu.audiences.errors import MissingDataError, PiiNotAllowedError, RuleError
from siyu.audiences.service import count_audience, parse_input, preview_audience, reach_counts
from siyu.bootstrap import App, bootstrap
from siyu.clv.service import lifecycle
from siyu.config import Settings
from siyu.identity.service import run_resolve
from siyu.ingest.importer import import_path
from siyu.metrics.materialise import materialise_layers, materialise_rfm


@pytest.fixture(scope="module")
def au(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """Audiences read the lake; one store backend is enough here (tests/integration/test_audience_store.py
    runs the store side on SQLite and PostgreSQL). Layers (May, June), RFM and lifecycle are computed."""
    root = tmp_path_factory.mktemp("au")
    app = bootstrap(Settings(home=root / "home", database_url=f"sqlite:///{root / 'store.db'}"))
    report = import_path(app, write_brand(root / "data"))
    assert report.as_json()["total"]["quarantined"] == 0
    run_resolve(app)
    materialise_layers(app, "au", "2024-05", "2024-06")  # May (as the previous period) and June
    materialise_rfm(app, "au", AS_OF)
    lifecycle(app, "au", AS_OF, store=True)
    yield app
    app.store.engine.dispose()


def who(app: App, rule: object, as_of=AS_OF) -> str:
    """The audience as sorted customer letters (a customer is named by its source records' letter)."""
    ctx = Context(app, "au", as_of)
    _, node = parse_input(rule)  # type: ignore[arg-type]
    try:
        found = compile_rule(ctx, node).join(ctx.idmap, "customer_id").select("customer_id", "source_customer_id")
        rows = app.engine.to_arrow(found).to_pylist()
    finally:
        ctx.release()
    letters = {r["source_customer_id"][0].upper() for r in rows}
    ids = {r["customer_id"] for r in rows}
    assert len(ids) == len(letters)  # each customer once, merged or not
    return "".join(sorted(letters))


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        # profile, and NOT over missing data: C and G have no city
        ("attribute.city = 上海", "AEH"),
        ("attribute.city != 上海", "BDF"),  # a known city that is not 上海: C and G are unknown, left out
        ("not attribute.city = 上海", "BCDFG"),  # NOT = everyone else, unknown city included
        ("attribute.city missing", "CG"),
        ("attribute.city in [杭州]", "B"),  # b1's city counts for the merged customer
        ("attribute.city = 火星", ""),  # empty result
        ("attribute.city = 上海 and attribute.city = 北京", ""),
        ("has phone", "ABCDE"),  # B's two phone records: one customer
        ("not has phone", "FGH"),
        ("has email", "AE"),
        # membership at the end of the as-of day: E left on 06-20
        ("member", "ABC"),
        ("tier = 金卡", "A"),
        ("points >= 300", "AB"),
        ("not member", "DEFGH"),
        # relations
        ("relation wecom_friend", "F"),
        ("relation official_account_follow", ""),  # ended 06-10
        ("relation any in douyin_store", "G"),
        # behaviour: merged customers add up their records' events and purchases
        ("did visit in mini_program >= 2 times in last 30 days", "AB"),  # B: one visit on each record
        ("did visit in mini_program from 2024-06-01 to 2024-06-30", "ABD"),  # D's 2024-05-31T16:30Z is 06-01
        ("did visit in mini_program from 2024-05-31 to 2024-05-31", "D"),  # D's 2024-05-31T15:59Z
        ("did visit in mini_program >= 2 times in last 31 days", "ABD"),
        ("did visit = 0 times in last 30 days", "EFGH"),  # C visited WeCom; "none" includes the silent
        ("did visit in wecom", "C"),
        ("spent >= ¥500 in last 90 days", "BD"),  # B only merged (¥200 + ¥400); D at 04-02 00:00 local
        ("spent >= ¥500 in last 91 days", "BDE"),  # E at 04-01 23:59:59 local
        ("spent < ¥100 in last 90 days", "CEFGH"),  # no purchase = spent nothing; E's order was refunded
        ("not bought in last 60 days", "CDEFG"),
        ("bought category 面霜 from 2024-06-01 to 2024-06-30", "AB"),  # B through b2
        ("bought category 面霜", "ABE"),
        ("bought category 精华", "B"),  # E's 精华 order was fully refunded
        ("bought price >= ¥450", "DE"),
        ("bought >= 2 times", "B"),
        ("bought in last 1 days", ""),  # the last 1 day is 06-30 alone: H bought on 06-29
        ("bought in last 2 days", "H"),
        # the shapes
        ("member and not bought in last 60 days", "C"),
        ("did visit in mini_program >= 2 times in last 30 days and not member", ""),
        ("(has phone or has email) and not attribute.city = 上海", "BCD"),
        # reachability and consent
        ("reachable sms", "ABCD"),  # E unsubscribed from SMS
        ("reachable email", "AE"),
        ("reachable wecom", "F"),
        ("reachable official_account", ""),
        ("reachable mini_program_subscription", "A"),
        ("reachable douyin", "G"),
        ("reachable tmall", ""),  # H unsubscribed from every channel
        ("reachable offline_store", "AB"),
        ("consent email", "EG"),  # G granted but has no e-mail: consent is not reachability
        ("consent sms denied", "EH"),
        ("consent sms unknown", "BCDFG"),  # A's latest SMS record is a grant
        # derived: layers (June: A, B purchased; C member_no_purchase; F, G, H basic; D, E none)
        ("layer >= purchased at 2024-06", "AB"),
        ("layer = basic at 2024-06", "FGH"),
        ("layer >= purchased", "AB"),  # latest computed month up to the as-of day
        ("layer = member_no_purchase at 2024-05", "ACE"),
        ("layer deepened at 2024-06", "A"),  # member_no_purchase → purchased
        ("layer left at 2024-06", "E"),  # left the programme: member_no_purchase → none
        ("layer unchanged at 2024-06", "BCFGH"),
        ("rfm.f >= 2", "B"),  # purchase days in 365 days: only merged B has two
        ("lifecycle = new", "AH"),  # first purchase within 30 days
        ("lifecycle = prospect", "CFG"),
    ],
)
def test_audience(au: App, rule: str, expected: str) -> None:
    assert who(au, rule) == expected


# Event-property conditions (`did` with `properties`), over the June product views of the fixture: text equals
# text (case-sensitive), true / false the JSON booleans, numbers as numbers (2 = 2.0 = "2", not 2.5).
EVENT_PROPERTY_RULES = [
    ({"did": "view_item", "from": "2024-06-01", "to": "2024-06-30"}, "ABDEH"),
    ({"did": "view_item", "properties": {"utm_source": "wechat"}}, "AB"),
    ({"did": "view_item", "properties": {"qty": 2}}, "ABD"),
    ({"did": "view_item", "properties": {"qty": 2.5}}, "E"),
    ({"did": "view_item", "properties": {"qty": 12}}, "H"),
    ({"did": "view_item", "properties": {"gift": True}}, "A"),
    ({"did": "view_item", "properties": {"gift": False}}, "B"),
    ({"did": "view_item", "properties": {"utm_source": "wechat", "qty": 2, "gift": False}}, "B"),
    ({"did": "view_item", "properties": {"utm_source": "douyin"}, "last_days": 7}, ""),  # D viewed on 06-22
    ({"not": {"did": "view_item", "properties": {"utm_source": "wechat"}}}, "CDEFGH"),
]


@pytest.mark.parametrize(("rule", "expected"), EVENT_PROPERTY_RULES)
def test_event_property_conditions(au: App, rule: dict[str, object], expected: str) -> None:
    assert who(au, rule) == expected


def test_json_and_text_agree(au: App) -> None:
    text = "did visit in mini_program >= 2 times in last 30 days and spent >= ¥500 in last 90 days"
    doc = {
        "all": [
            {"did": "visit", "field": "mini_program", "min_times": 2, "last_days": 30},
            {"spent": 50000, "last_days": 90},
        ]
    }
    assert who(au, text) == who(au, doc) == "B"
    assert count_audience(au, "au", rule=doc, as_of=AS_OF)["customers"] == 1


def test_windows_move_with_the_as_of_day(au: App) -> None:
    from datetime import date

    # as of 06-01 the last 30 days are 05-03 … 06-01: D's two visits (05-31 23:59 and 06-01 00:30)
    assert who(au, "did visit in mini_program >= 2 times in last 30 days", date(2024, 6, 1)) == "D"
    # as of 06-19, E is still a member (left 06-20)
    assert who(au, "member", date(2024, 6, 19)) == "ABCE"


def test_missing_derived_data_is_a_clear_error(au: App) -> None:
    with pytest.raises(MissingDataError, match="siyu clv"):
        who(au, "clv >= 100")
    with pytest.raises(MissingDataError, match="2023-01"):
        who(au, "layer = koc at 2023-01")
    with pytest.raises(RuleError) as info:
        who(au, {"all": [{"membership": "member"}, {"tag": "nope", "op": "exists"}]})
    assert info.value.path == "all[1].tag"


def test_reach_counts(au: App) -> None:
    whole = reach_counts(au, "au", as_of=AS_OF)
    assert (whole["customers"], whole["reachable_any"], whole["unreachable"]) == (8, 7, 1)  # H reaches nowhere
    assert {ch: c["customers"] for ch, c in whole["channels"].items()} == {
        "sms": 4,
        "email": 2,
        "wecom": 1,
        "official_account": 0,
        "mini_program_subscription": 1,
        "douyin": 1,
        "tmall": 0,
        "offline_store": 2,
    }
    assert whole["channels"]["sms"]["name_zh"] == "短信"
    members = reach_counts(au, "au", rule="member", as_of=AS_OF)
    assert members["customers"] == 3 and members["channels"]["sms"]["customers"] == 3
    assert members["channels"]["email"]["customers"] == 1
    empty = reach_counts(au, "au", rule="attribute.city = 火星", as_of=AS_OF)
    assert empty["customers"] == 0 and empty["channels"]["sms"]["share"] is None


def test_preview_masks_pii(au: App) -> None:
    out = preview_audience(au, "au", rule="has email", as_of=AS_OF)
    assert out["customers"] == 2
    by_name = {r["name"]: r for r in out["sample"]}
    assert by_name["张**"]["phone"] == "139****0001" and by_name["张**"]["email"] == "a***@example.com"
    assert by_name["钱**"]["tier"] is None  # E left the programme


def test_export_csv_parquet_and_empty(au: App, tmp_path: Path) -> None:
    out = export_audience(au, "au", tmp_path / "b.csv", rule="spent >= ¥500 in last 90 days", as_of=AS_OF)
    assert out["rows"] == 2 and out["columns"] == ["customer_id", "name", "phone", "email", "city", "tier"]
    rows = sorted(pacsv.read_csv(tmp_path / "b.csv").to_pylist(), key=lambda r: str(r["phone"]))
    assert [(r["name"], r["phone"], r["city"]) for r in rows] == [
        ("李**", "139****0002", "杭州"),
        ("赵**", "139****0004", "北京"),
    ]
    clear = export_audience(
        au,
        "au",
        tmp_path / "b.parquet",
        rule="spent >= ¥500 in last 90 days",
        as_of=AS_OF,
        unmasked=True,
        allow_unmasked=True,
        purpose="courier delivery",
    )
    assert clear["format"] == "parquet"
    assert sorted(pq.read_table(tmp_path / "b.parquet")["phone"].to_pylist()) == ["+8613900000002", "+8613900000004"]
    empty = export_audience(au, "au", tmp_path / "none.csv", rule="attribute.city = 火星", as_of=AS_OF)
    assert empty["rows"] == 0
    assert (tmp_path / "none.csv").read_text().startswith('"customer_id","name"')
    with pytest.raises(PiiNotAllowedError):
        export_audience(au, "au", tmp_path / "x.csv", rule="member", unmasked=True, allow_unmasked=False)


def test_export_carries_only_the_columns_asked(au: App, tmp_path: Path) -> None:
    """Minimum necessary: --columns picks and orders; unknown columns are refused; clear PII needs the
    permission AND a purpose; without a PII column `unmasked` reveals nothing and needs no purpose."""
    from siyu.audiences.errors import AudienceError
    from siyu.audiences.minimum import PurposeRequiredError

    out = export_audience(au, "au", tmp_path / "c.csv", rule="has email", as_of=AS_OF, columns="tier,city",
                          unmasked=True)  # fmt: skip
    assert out["columns"] == ["tier", "city"] and out["rows"] == 2
    assert out["unmasked"] is False  # nothing personal asked: neither refused nor recorded as a reveal
    assert (tmp_path / "c.csv").read_text().splitlines() == ['"tier","city"', '"金卡","上海"', ',"上海"'] or (
        (tmp_path / "c.csv").read_text().splitlines() == ['"tier","city"', ',"上海"', '"金卡","上海"']
    )  # A (金卡) and E (left the programme)
    with pytest.raises(AudienceError, match="idcard"):
        export_audience(au, "au", tmp_path / "x.csv", rule="has email", columns="phone,idcard")
    for purpose in (None, "  "):
        with pytest.raises(PurposeRequiredError):
            export_audience(au, "au", tmp_path / "x.csv", rule="has email", columns=["phone"], unmasked=True,
                            allow_unmasked=True, purpose=purpose)  # fmt: skip
    assert not (tmp_path / "x.csv").exists()
    preview = preview_audience(au, "au", rule="has email", as_of=AS_OF, columns=["customer_id", "phone"])
    assert sorted(r["phone"] for r in preview["sample"]) == ["139****0001", "139****0005"]
    assert all(set(r) == {"customer_id", "phone"} for r in preview["sample"])


@pytest.mark.parametrize(
    ("rule", "purpose", "expected"),
    [
        # SMS: E unsubscribed 06-01, H from everything 06-10; A withdrew 05-01 but granted again 06-01
        ("attribute.city = 上海", "marketing_sms", "A"),
        # e-mail: E granted 06-02, A never decided (not withdrawn); H's unsubscribe covers e-mail
        ("attribute.city = 上海", "marketing_email", "AE"),
        ("has phone", "wecom", "ABCDE"),  # nobody with a phone withdrew WeCom contact
    ],
)
def test_export_for_a_consent_purpose_leaves_out_withdrawals(
    au: App, tmp_path: Path, rule: str, purpose: str | None, expected: str
) -> None:
    out = export_audience(au, "au", tmp_path / "p.csv", rule=rule, as_of=AS_OF, columns="customer_id",
                          consent_purpose=purpose)  # fmt: skip
    ids = set(pacsv.read_csv(tmp_path / "p.csv")["customer_id"].to_pylist())
    idmap = au.engine.to_arrow(au.engine.table("identity_map")).to_pylist()  # type: ignore[arg-type]
    letters = {r["source_customer_id"][0].upper() for r in idmap if r["brand"] == "au" and r["customer_id"] in ids}
    assert "".join(sorted(letters)) == expected
    assert out["rows"] == len(expected)


def test_unknown_consent_purpose_is_refused(au: App, tmp_path: Path) -> None:
    from siyu.audiences.errors import AudienceError

    with pytest.raises(AudienceError, match="marketing_email, marketing_sms, wecom"):
        export_audience(au, "au", tmp_path / "p.csv", rule="member", consent_purpose="telepathy")


def temporary_audience_tables(app: App) -> list[str]:
    return [name for name in app.engine.temporary_tables() if name.startswith("audience_")]


@pytest.mark.parametrize(
    "rule",
    [
        "layer >= purchased at 2024-06 and has phone",
        "layer = basic at 2024-06 and not reachable tmall and did visit = 0 times in last 30 days",
        "rfm.f >= 1 and lifecycle in [new, active] and spent >= ¥300 in last 90 days and not attribute.city = 上海",
        "layer >= basic at 2024-06 and not member",
    ],
)
def test_narrowing_by_precomputed_conditions_changes_nothing(au: App, rule: str) -> None:
    """A top-level `all` with layer / RFM / lifecycle / tag conditions is evaluated among their
    customers only (a temporary table); the audience is the one of the plain plan, and the
    temporary table is gone once the count is read."""
    from siyu.audiences import compile as compiler

    ctx = Context(au, "au", AS_OF)
    _, node = parse_input(rule)
    plain = compiler._node(ctx, node).select("customer_id").semi_join(ctx.universe, "customer_id")
    expected = sorted(au.engine.to_arrow(plain)["customer_id"].to_pylist())
    narrowed = compile_rule(ctx, node)
    assert ctx.temporary  # the narrowing happened
    assert sorted(au.engine.to_arrow(narrowed)["customer_id"].to_pylist()) == expected
    ctx.release()
    assert not temporary_audience_tables(au)
    assert count_audience(au, "au", rule=rule, as_of=AS_OF)["customers"] == len(expected)
    assert not temporary_audience_tables(au)


def _customer(app: App, letter: str) -> str:
    idmap = app.engine.to_arrow(app.engine.table("identity_map")).to_pylist()  # type: ignore[arg-type]
    return next(r["customer_id"] for r in idmap if r["brand"] == "au" and r["source_customer_id"][0] == letter.lower())


def test_reachability_reads_the_consent_ledger(au: App) -> None:
    """Decisions recorded in the consent ledger (CLI, API, unsubscribe link) count for reachability and
    the consent condition beside the lake's events: the latest per customer and channel up to the
    as-of day wins, whichever source it came from. Runs last: it removes its records again."""
    from datetime import date, datetime
    from zoneinfo import ZoneInfo

    from sqlalchemy import delete

    from siyu.audiences.customer import customer_lights
    from siyu.core.actor import Actor
    from siyu.messaging.consent import ConsentChange, do_record_consents
    from siyu.messaging.ledger_models import ConsentRecord

    a, b, d, e = (_customer(au, x) for x in "ABDE")
    tz = ZoneInfo("Asia/Shanghai")
    changes = [
        # A's latest lake record (06-01) grants SMS: a withdrawal through the CLI on 06-20 is later
        ConsentChange("au", a, "marketing_sms", False, "cli", {}, at=datetime(2024, 6, 20, 9, tzinfo=tz)),
        # E unsubscribed from SMS by event on 06-01; an unsubscribe link cannot re-grant, a form can (06-25)
        ConsentChange("au", e, "marketing_sms", True, "api", {"form": "f1"}, at=datetime(2024, 6, 25, 9, tzinfo=tz)),
        # D withdraws e-mail… after the as-of day: not yet
        ConsentChange("au", d, "marketing_email", False, "cli", {}, at=datetime(2024, 7, 2, 9, tzinfo=tz)),
        # a record with its own channel: D withdraws WeCom contact by channel name on 06-05
        ConsentChange("au", d, "personalised_recommendation", False, "cli", {}, "wecom", datetime(2024, 6, 5)),
        # ledger rows that came from lake events are read from the lake, not twice: this stray one
        # (a withdrawal for B) must be ignored
        ConsentChange("au", b, "marketing_sms", False, "event", {}, at=datetime(2024, 6, 9, tzinfo=tz)),
    ]
    with au.store.begin(Actor.system("test")) as uow:
        do_record_consents(uow, changes)
    try:
        assert who(au, "reachable sms") == "BCDE"  # was ABCD
        assert who(au, "consent sms denied") == "AH"  # was EH
        assert who(au, "consent sms granted") == "E"  # was A
        assert who(au, "consent email denied") == "H"  # D's withdrawal is after 06-30
        assert who(au, "consent email denied", as_of=date(2024, 7, 3)) == "DH"
        assert who(au, "consent wecom denied") == "DH"
        lights = customer_lights(au, a, "au", AS_OF)  # the customer view compiles for one customer
        assert (lights["sms"]["on"], lights["sms"]["withdrawn"]) == (False, True)
        assert customer_lights(au, e, "au", AS_OF)["sms"]["on"] is True
    finally:
        with au.store.begin(Actor.system("test")) as uow:
            uow.session.execute(delete(ConsentRecord).where(ConsentRecord.brand == "au"))
    assert who(au, "reachable sms") == "ABCD"


def test_consent_granted_false_as_a_json_boolean_is_a_denial(au: App) -> None:
    from datetime import date

    # a1's SMS consent of 05-01 is {"granted": false} (a JSON boolean, not the text "false"); its grant
    # comes on 06-01. As of 05-31 A has denied SMS (it was read as a grant when only JSON text was compared).
    assert "A" in who(au, "consent sms denied", date(2024, 5, 31))
    assert "A" not in who(au, "consent sms", date(2024, 5, 31))
