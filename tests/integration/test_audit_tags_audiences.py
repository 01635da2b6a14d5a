"""Tags and audiences through the unit of work, on SQLite and PostgreSQL (brand `au`,
tests/fixtures/audience_brand.py): every change writes its audit row — actor, action, subject,
before → after — in the same transaction, bulk changes write one row of counts, an export is
audited although it changes nothing else, and a change that fails leaves neither itself nor an
audit row behind."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from fixtures.audience_brand import AS_OF, PRICE_BAND, ids_by_letter, write_brand
from fixtures.audience_ops import (
    OP,
    compute_tag,
    create_audience,
    define_group,
    define_tag,
    delete_audience,
    delete_tag,
    export_audience,
    import_tags,
    remove_tag,
    set_tag,
    snapshot_audience,
)
from siyu.audiences import service, snapshots, tag_manual, tag_rules
from siyu.audiences.errors import PiiNotAllowedError, RuleError, TagError
from siyu.audiences.models import Audience, AudienceExport, AudienceSnapshot, TagAssignment
from siyu.audiences.tags import history, tag_definition
from siyu.audit.models import AuditEntry
from siyu.audit.trail import AuditFilter, entries
from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.core.clock import utc_now
from siyu.core.errors import NotFoundError
from siyu.identity.service import run_resolve
from siyu.ingest.importer import import_path

GUIDE = Actor.user("guide007")
KEY = Actor.api_key("k-123")


@pytest.fixture
def au(app: App, tmp_path: Path) -> App:
    import_path(app, write_brand(tmp_path / "au"))
    run_resolve(app)
    return app


def audit(app: App, subject: str | None = None, action: str | None = None) -> list[dict[str, Any]]:
    """Audit rows, oldest first, as (actor, action, subject, before, after) plus the brand."""
    with app.store.unit_of_work() as session:
        rows = entries(session, AuditFilter(subject=subject, action=action))
    return [r for r in reversed(rows)]


def brief(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["actor"], r["action"], f"{r['subject_type']}:{r['subject_id']}", r["before"], r["after"]) for r in rows]


def count(app: App, model: type) -> int:
    with app.store.unit_of_work() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_tag_changes_are_audited(au: App, tmp_path: Path) -> None:
    ids = ids_by_letter(au)
    define_group(au, "au", "interest", "兴趣", "Interest")
    define_tag(au, "au", "interest", kind="manual", values=["serum"], group="interest")
    define_tag(au, "au", "interest", kind="manual", values=["serum", "mask"], group="interest", name_en="Interest")
    set_tag(au, "au", "interest", ids["F"], "serum", actor=GUIDE, reason="asked in WeCom")
    set_tag(au, "au", "interest", ids["F"], "mask", actor=GUIDE)
    remove_tag(au, "au", "interest", ids["F"], reason="wrong customer")
    definition = {"group": "interest", "name_zh": None, "kind": "manual", "value_type": "enum", "rule": None,
                  "description": None}  # fmt: skip
    assert brief(audit(au, "tag_group")) == [
        ("user:op1", "tag_group.define", "tag_group:au/interest", None, {"name_zh": "兴趣", "name_en": "Interest"})
    ]
    assert brief(audit(au, "tag")) == [
        ("user:op1", "tag.define", "tag:au/interest", None, definition | {"name_en": None, "values": ["serum"]}),
        ("user:op1", "tag.define", "tag:au/interest", definition | {"name_en": None, "values": ["serum"]},
         definition | {"name_en": "Interest", "values": ["serum", "mask"]}),
    ]  # fmt: skip
    one = f"customer_tag:au/{ids['F']}/interest"
    assert brief(audit(au, "customer_tag")) == [
        ("user:guide007", "tag.set", one, None, {"value": "serum", "reason": "asked in WeCom"}),
        ("user:guide007", "tag.set", one, {"value": "serum"}, {"value": "mask", "reason": None}),
        ("user:op1", "tag.remove", one, {"value": "mask"}, None),
    ]
    assert {r["brand"] for r in audit(au)} == {"au"}
    # the tag history is the tag's own view of the same changes, with the same actors
    assert [(h["action"], h["actor"]) for h in history(au, "au", "interest")] == [
        ("remove", "user:op1"), ("set", "user:guide007"), ("set", "user:guide007"), ("define", "user:op1"),
        ("define", "user:op1"),
    ]  # fmt: skip

    # bulk changes: one audit row of counts, not one per customer
    define_tag(au, "au", "dmp", kind="imported", values=["hi", "lo"])
    csv = tmp_path / "dmp.csv"
    csv.write_text(f"customer_id,value\n{ids['A']},hi\n{ids['B']},lo\n{ids['C']},hi\nc-nobody,hi\n")
    import_tags(au, "au", "dmp", csv, actor=KEY, reason="from the DMP")
    csv.write_text(f"customer_id,value\n{ids['D']},lo\n")
    import_tags(au, "au", "dmp", csv, actor=KEY)
    assert brief(audit(au, "tag:au/dmp", "tag.import")) == [
        ("api_key:k-123", "tag.import", "tag:au/dmp", {"customers": 0},
         {"file": "dmp.csv", "rows": 4, "customers": 3, "unmatched": 1, "reason": "from the DMP"}),
        ("api_key:k-123", "tag.import", "tag:au/dmp", {"customers": 3},
         {"file": "dmp.csv", "rows": 1, "customers": 1, "unmatched": 0, "reason": None}),
    ]  # fmt: skip
    define_tag(au, "au", "price_band", kind="rule", rule=PRICE_BAND)
    first = compute_tag(au, "au", "price_band", AS_OF)
    compute_tag(au, "au", "price_band", AS_OF, actor=Actor.system("scheduler"))
    # A mid, B mid, D high, E high, H low (tests/integration/test_tags_store.py)
    values = {"high": 2, "low": 1, "mid": 2}
    assert brief(audit(au, "tag:au/price_band", "tag.compute")) == [
        ("user:op1", "tag.compute", "tag:au/price_band", {"customers": None, "lake_version": None},
         {"customers": 5, "values": values, "lake_version": first["lake_version"], "as_of": "2024-06-30"}),
        ("system:scheduler", "tag.compute", "tag:au/price_band", {"customers": 5,
         "lake_version": first["lake_version"]}, {"customers": 5, "values": values,
         "lake_version": first["lake_version"] + 1, "as_of": "2024-06-30"}),
    ]  # fmt: skip

    deleted = delete_tag(au, "au", "dmp", reason="DMP contract ended")
    assert deleted["assignments_removed"] == 1
    [row] = audit(au, "tag:au/dmp", "tag.delete")
    assert (row["actor"], row["after"]) == ("user:op1", None)
    assert row["before"] == {"group": None, "name_zh": None, "name_en": None, "kind": "imported",
                             "value_type": "enum", "values": ["hi", "lo"], "rule": None, "description": None,
                             "assignments": 1}  # fmt: skip


def test_a_failing_tag_change_leaves_no_change_and_no_audit_row(au: App, tmp_path: Path) -> None:
    ids = ids_by_letter(au)
    define_tag(au, "au", "interest", kind="manual", values=["serum", "mask"])
    audited = count(au, AuditEntry)

    # an unknown customer: refused before the unit of work writes anything
    with pytest.raises(NotFoundError), au.store.begin(OP) as uow:
        tag_manual.do_set_tag(uow, tag_manual.known_customer(au.engine, "au", "c-nobody"), "interest", "serum")
    # two changes in one unit of work, the second invalid: the first goes too, with its audit row
    with pytest.raises(TagError), au.store.begin(OP) as uow:
        tag_manual.do_set_tag(uow, tag_manual.known_customer(au.engine, "au", ids["A"]), "interest", "serum")
        tag_manual.do_set_tag(uow, tag_manual.known_customer(au.engine, "au", ids["B"]), "interest", "caviar")
    assert (count(au, TagAssignment), count(au, AuditEntry)) == (0, audited)
    assert [h["action"] for h in history(au, "au", "interest")] == ["define"]

    # a file with a value the tag does not have: the previous import stays, unaudited attempt
    define_tag(au, "au", "dmp", kind="imported", values=["hi"])
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text(f"customer_id,value\n{ids['A']},hi\n")
    bad.write_text(f"customer_id,value\n{ids['B']},no_such_value\n")
    import_tags(au, "au", "dmp", good)
    audited = count(au, AuditEntry)
    with pytest.raises(TagError):
        import_tags(au, "au", "dmp", bad)
    assert count(au, AuditEntry) == audited
    with au.store.unit_of_work() as session:
        assert session.scalars(select(TagAssignment.customer_id).where(TagAssignment.tag_code == "dmp")).all() == [
            ids["A"]
        ]

    # a rule tag redefined while it was computed: the run is not recorded, and says why
    define_tag(au, "au", "price_band", kind="rule", rule=PRICE_BAND)
    run = tag_rules.compute_tag(au, "au", "price_band", AS_OF)
    define_tag(au, "au", "price_band", kind="rule", rule=PRICE_BAND | {"last_days": 30})
    audited = count(au, AuditEntry)
    with pytest.raises(TagError, match="redefined while it was computed"), au.store.begin(OP) as uow:
        tag_rules.do_compute_tag(uow, run)
    assert count(au, AuditEntry) == audited
    assert tag_definition(au, "au", "price_band")["computed_at"] is None


def test_audience_changes_are_audited(au: App, tmp_path: Path) -> None:
    create_audience(au, "au", "phones", "has phone", name="有手机号", actor=KEY)
    create_audience(au, "au", "phones", "has phone or has email", name="有手机号", refresh_minutes=60, replace=True)
    before = {"display_name": "有手机号", "description": None, "rule": {"identifier": "phone"}, "refresh_minutes": None}
    after = before | {"rule": {"any": [{"identifier": "phone"}, {"identifier": "email"}]}, "refresh_minutes": 60}
    assert brief(audit(au, "audience")) == [
        ("api_key:k-123", "audience.create", "audience:au/phones", None, before),
        ("user:op1", "audience.replace", "audience:au/phones", before, after),
    ]

    snap = snapshot_audience(au, "au", "phones", actor=GUIDE, as_of=AS_OF)
    [row] = audit(au, action="audience.snapshot")
    assert (row["actor"], row["subject_id"], row["before"]) == ("user:guide007", "au/phones", None)
    # A B C D E have a phone; A and E also an e-mail
    assert row["after"] == {"snapshot_id": snap["snapshot_id"], "customers": 5, "as_of": "2024-06-30",
                            "trigger": "manual"}  # fmt: skip
    # the scheduler refreshes it an hour later, as itself
    refreshed = snapshots.refresh_due(au, now=utc_now() + timedelta(minutes=61))
    assert [r["trigger"] for r in refreshed] == ["schedule"]
    assert [r["actor"] for r in audit(au, action="audience.snapshot")] == ["user:guide007", "system:scheduler"]

    columns = ["customer_id", "name", "phone", "email", "city", "tier"]
    export_audience(au, "au", tmp_path / "p.csv", "phones", actor=KEY, unmasked=True, allow_unmasked=True,
                    as_of=AS_OF, purpose="courier delivery of samples")  # fmt: skip
    export_audience(au, "au", tmp_path / "adhoc.parquet", rule="has email", as_of=AS_OF)
    assert brief(audit(au, action="audience.export")) == [
        ("api_key:k-123", "audience.export", "audience:au/phones", None,
         {"rows": 5, "columns": columns, "unmasked": True, "format": "csv", "as_of": "2024-06-30",
          "file": "p.csv", "purpose": "courier delivery of samples"}),
        ("user:op1", "audience.export", "audience:au/*", None,
         {"rows": 2, "columns": columns, "unmasked": False, "format": "parquet", "as_of": "2024-06-30",
          "file": "adhoc.parquet", "rule": {"identifier": "email"}}),
    ]  # fmt: skip

    delete_audience(au, "au", "phones", actor=GUIDE)
    [row] = audit(au, action="audience.delete")
    assert (row["actor"], row["subject_id"], row["before"], row["after"]) == ("user:guide007", "au/phones", after, None)


def test_a_failing_audience_change_leaves_no_change_and_no_audit_row(au: App, tmp_path: Path) -> None:
    create_audience(au, "au", "phones", "has phone")
    audited = count(au, AuditEntry)
    # an invalid rule on replace: refused before the unit of work, the saved rule stays
    with pytest.raises(RuleError), au.store.begin(OP) as uow:
        service.do_create_audience(uow, "phones", service.check_rule(au, "au", {"layer": "vip"}), replace=True)
    # an invalid refresh interval: refused inside it
    with pytest.raises(Exception, match="at least 5"):
        create_audience(au, "au", "phones", "member", refresh_minutes=1, replace=True)
    # a change that fails after the service wrote: rolled back with its audit row
    with pytest.raises(RuntimeError), au.store.begin(OP) as uow:
        service.do_delete_audience(uow, "au", "phones")
        raise RuntimeError("the entry point failed after the delete")
    with pytest.raises(NotFoundError):
        delete_audience(au, "au", "nobody")
    assert count(au, AuditEntry) == audited
    with au.store.unit_of_work() as session:
        saved = session.get(Audience, ("au", "phones"))
        assert saved is not None and saved.rule_json == '{"identifier": "phone"}' and saved.refresh_minutes is None

    # a snapshot rolled back after its ids reached the lake: the next snapshot to get its id (SQLite
    # reuses it) replaces those ids instead of adding to them
    with pytest.raises(RuntimeError), au.store.begin(OP) as uow:
        snapshots.do_snapshot_audience(uow, au.lake, snapshots.freeze_audience(au, "au", "phones", AS_OF))
        raise RuntimeError("the entry point failed after the snapshot")
    assert (count(au, AudienceSnapshot), count(au, AuditEntry)) == (0, audited)
    create_audience(au, "au", "emails", "has email")
    taken = snapshot_audience(au, "au", "emails", as_of=AS_OF)
    assert au.engine.to_arrow(snapshots.members(au, "au", "emails")).num_rows == taken["customers"] == 2  # A E
    audited = count(au, AuditEntry)

    # exports: refused unmasked PII writes nothing; an export that could not be recorded leaves no file
    with pytest.raises(PiiNotAllowedError):
        export_audience(au, "au", tmp_path / "x.csv", "phones", unmasked=True, allow_unmasked=False)
    with (
        pytest.raises(RuntimeError),
        service.export_audience(au, "au", tmp_path / "y.csv", "phones", as_of=AS_OF) as written,
        au.store.begin(OP) as uow,
    ):
        service.do_record_export(uow, written)
        raise RuntimeError("the audit could not be written")
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".csv", ".partial")) == []
    assert (count(au, AuditEntry), count(au, AudienceExport)) == (audited, 0)
