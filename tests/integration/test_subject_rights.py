"""Data-subject rights: export completeness (every table that can hold a person is in the export).

The world: tests/fixtures/subject_world.py (P = phone 13900000001, 李雷; Q = the other person)."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.subject_world import EMAIL, NAME, OTHER_NAME, PHONE, build
from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.ingest.schema import DECLARATIONS, ENTITIES
from siyu.privacy.inventory import LAKE, LAKE_EXCLUDED, STORE, STORE_EXCLUDED
from siyu.privacy.subject import find_subject
from siyu.privacy.subject_export import export_subject
from siyu.store.migrations import env_models  # noqa: F401  (registers every table)
from siyu.store.models import Base

OPERATOR = Actor.user("dpo")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    root = tmp_path_factory.mktemp("subject")
    app = build(root, f"sqlite:///{root / 'store.db'}")
    yield app
    app.store.engine.dispose()


def test_inventory_places_every_store_table_and_lake_table(world: App) -> None:
    covered = {h.table for h in STORE}
    assert not covered & set(STORE_EXCLUDED)
    # every table the models declare is either a holding or excluded with a reason
    assert set(Base.metadata.tables) - set(STORE_EXCLUDED) == covered
    lake_covered = {h.table for h in LAKE}
    assert not lake_covered & set(LAKE_EXCLUDED)
    assert set(ENTITIES) - set(DECLARATIONS) <= lake_covered | set(LAKE_EXCLUDED)
    on_disk = {p.name for p in world.lake.root.iterdir() if (p / "_delta_log").is_dir()}
    assert on_disk <= lake_covered | set(LAKE_EXCLUDED), on_disk - lake_covered - set(LAKE_EXCLUDED)


def test_a_key_is_resolved_through_one_id(world: App) -> None:
    by_email = find_subject(world, " " + EMAIL.upper())  # e-mails match case-insensitively
    assert by_email.brands == ["la"]  # only p1 (la) has the e-mail; p2 (lb) shares the phone
    assert ("external_userid", "wmLiLei") in by_email.identifiers  # from a WeCom record One-ID linked


def test_export_holds_every_table_that_holds_the_person(world: App, tmp_path: Path) -> None:
    out = tmp_path / "person.zip"
    result = export_subject(world, PHONE, out, actor=OPERATOR)
    with zipfile.ZipFile(out) as archive:
        names = set(archive.namelist())
        document = json.loads(archive.read("subject.json"))
        text = b"".join(archive.read(n) for n in names).decode("utf-8")
    expected = {f"store/{h.table}" for h in STORE} | {f"lake/{h.table}" for h in LAKE}
    assert names == {"subject.json"} | {f"{t}.csv" for t in expected}
    # P has rows in every table of the inventory: none is silently left out
    empty = sorted(t for t in expected if not document["tables 数据表"][t]["rows"])
    assert empty == [], empty
    assert sorted(result["customer_ids"]) == sorted(document["subject 主体"]["customer_ids"])
    assert len(result["customer_ids"]) == 2  # one person, a customer in la and in lb
    assert result["tables"] == {t: len(document["tables 数据表"][t]["rows"]) for t in expected}
    assert NAME in text and PHONE in text
    assert OTHER_NAME not in text  # Q's rows stay out
    header = archive_header(out, "lake/orders.csv")
    assert "金额(分) amount_fen" in header and "来源客户编号 source_customer_id" in header


def archive_header(path: Path, name: str) -> str:
    with zipfile.ZipFile(path) as archive:
        return archive.read(name).decode("utf-8-sig").splitlines()[0]
