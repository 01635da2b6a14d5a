"""Data-subject rights: export completeness (every table that can hold a person is in the export).

The world: tests/fixtures/subject_world.py (P = phone 13900000001, 李雷; Q = the other person)."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import JSON, String, Text, select

from api.conftest import bearer, new_key, running
from fixtures.loyalty_brand import backend_url
from fixtures.subject_world import EMAIL, EXTERNAL, IP, NAME, OTHER_NAME, PHONE, build, write_files
from siyu.audit.models import AuditEntry
from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.core.errors import NotFoundError
from siyu.ingest.importer import import_path, quarantine
from siyu.ingest.schema import DECLARATIONS, ENTITIES
from siyu.loyalty.models import LoyaltyAccount, PointsTxn
from siyu.privacy.erasure import erase_subject
from siyu.privacy.hashing import keyed_hash
from siyu.privacy.inventory import FREE_TEXT_EXEMPT, LAKE, LAKE_EXCLUDED, STORE, STORE_EXCLUDED
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
    # …and every free-text column of an excluded table (where a person's phone, name or WeCom id
    # could be written) is exempt with its own reason
    free_text = {
        f"{name}.{c.name}"
        for name in STORE_EXCLUDED
        for c in Base.metadata.tables[name].columns
        if isinstance(c.type, Text | JSON) or (isinstance(c.type, String) and (c.type.length or 10**6) >= 200)
    }
    assert free_text - set(FREE_TEXT_EXEMPT) == set(), "place these in siyu.privacy.inventory"
    assert set(FREE_TEXT_EXEMPT) <= free_text  # no stale exemption
    assert all(reason.strip() for reason in {**STORE_EXCLUDED, **FREE_TEXT_EXEMPT}.values())
    lake_covered = {h.table for h in LAKE}
    assert not lake_covered & set(LAKE_EXCLUDED)
    assert set(ENTITIES) - set(DECLARATIONS) <= lake_covered | set(LAKE_EXCLUDED)
    on_disk = {p.name for p in world.lake.root.iterdir() if (p / "_delta_log").is_dir()}
    assert on_disk <= lake_covered | set(LAKE_EXCLUDED), on_disk - lake_covered - set(LAKE_EXCLUDED)


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


def test_subject_routes_over_http(world: App) -> None:
    """admin + pii, the key's brand only, a reason for erasure; the export streams the zip."""
    la, lb = new_key(world, "la", "admin,pii"), new_key(world, "lb", "admin,pii")
    with running(world) as url, httpx.Client(base_url=url, timeout=120) as client:
        r = client.post("/api/v1/subjects/export", json={"key": EMAIL}, headers=bearer(la))
        assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(r.content)) as archive:
            assert json.loads(archive.read("subject.json"))["subject 主体"]["brands"] == ["la"]
        # lb holds no one with this e-mail: a key of another brand finds nobody
        r = client.post("/api/v1/subjects/export", json={"key": EMAIL}, headers=bearer(lb))
        assert (r.status_code, r.json()["code"]) == (404, "not_found")
        r = client.post("/api/v1/subjects/erase", json={"key": EMAIL}, headers=bearer(la))
        assert r.status_code == 422  # no reason
        r = client.post("/api/v1/subjects/erase", json={"key": EMAIL, "reason": ""}, headers=bearer(la))
        assert r.status_code == 422
        r = client.post("/api/v1/subjects/erase", json={"key": EMAIL, "reason": "   "}, headers=bearer(la))
        assert (r.status_code, r.json()["code"]) == (422, "erasure_reason_required")
    with world.store.unit_of_work() as session:
        actors = session.scalars(select(AuditEntry.actor_id).where(AuditEntry.action == "subject.export")).all()
    assert any(a for a in actors if a != "dpo")  # the API export is audited under its key


def _erase_and_scan(app: App, root: Path) -> None:
    """Erase P by phone; then neither P's phone nor name is anywhere in the lake's files, and every
    other person (Q) is untouched; the financial records stay with their amounts."""
    paid_before = _net_paid(app)
    key = app.settings.pii_key  # the lake keeps P's phone, e-mail and name sealed, with keyed hashes beside
    traces = [keyed_hash(key, "phone", "+86" + PHONE), keyed_hash(key, "email", EMAIL), keyed_hash(key, "name", NAME)]
    assert all(t.encode() in _lake_bytes(app) for t in traces)  # so their absence below means erased
    sealed = _lake_bytes(app, "customers", "identities", "identity_index", "identity_merges")
    assert PHONE.encode() not in sealed and NAME.encode() not in sealed and EMAIL.encode() not in sealed
    report = erase_subject(app, PHONE, reason="customer request (客户申请) #42", actor=OPERATOR)
    assert len(report.customer_ids) == 2
    assert report.lake["customers"] == 2 and report.lake["events"] == 1 and report.lake["messages"] == 1
    assert report.lake["orders"] == 3  # A0, A1, B1 (and BAD1 never landed): kept, pseudonymised
    for path in app.lake.root.rglob("*"):  # every Parquet file, every log and checkpoint
        if path.is_file():
            data = path.read_bytes()
            assert PHONE.encode() not in data and NAME.encode() not in data, path
            assert EMAIL.encode() not in data and EXTERNAL.encode() not in data, path
            assert not any(t.encode() in data for t in traces), path  # nor their hashes (nor ciphertexts: rows gone)
    assert IP not in _store_text(app)  # consent evidence is kept as a keyed hash only
    assert keyed_hash(key, "name", OTHER_NAME).encode() in _lake_bytes(app)  # Q's sealed row stays
    assert _net_paid(app) == paid_before  # the orders' amounts are kept
    with pytest.raises(NotFoundError):
        find_subject(app, PHONE)
    with app.store.unit_of_work() as session:
        erased = session.scalars(select(AuditEntry).where(AuditEntry.action == "subject.erase")).all()
        assert {r.subject_id for r in erased} == set(report.customer_ids)
        account = session.scalars(select(LoyaltyAccount).where(LoyaltyAccount.balance == 500)).all()
        assert sorted(a.member_no.startswith("erased-") for a in account) == [False, True]  # P's, not Q's
        # P's consent records stay as proof (purpose, decision, time, source) under P's pseudonym,
        # the evidence (with P's IP) only as its keyed hash
        consents = Base.metadata.tables["consent_records"]
        kept = session.execute(select(consents).where(consents.c.customer_id.startswith("erased-"))).mappings().all()
        assert sorted((r["purpose"], r["granted"], r["source"]) for r in kept if r["source"] == "api") == [
            ("marketing_sms", True, "api")
        ]
        assert len({r["customer_id"] for r in kept}) == 1 and len(kept) == 2  # p1's two records
        assert all(set(json.loads(r["evidence"])) == {"evidence_hash"} for r in kept)
        assert not session.execute(select(consents).where(consents.c.customer_id.in_(report.customer_ids))).first()
        # the WeCom callback naming P is gone, Q's stays
        bodies = session.scalars(select(Base.metadata.tables["wecom_callbacks"].c.body)).all()
        assert len(bodies) == 1 and "wmOther" in bodies[0]
        txns = session.scalars(select(PointsTxn)).all()
        assert len(txns) == 2 and {t.points for t in txns} == {500}  # the ledger keeps its amounts


def _lake_bytes(app: App, *tables: str) -> bytes:
    """Every Parquet file of the lake, or of some tables."""
    roots = [app.lake.root / t for t in tables] if tables else [app.lake.root]
    return b"".join(p.read_bytes() for r in roots for p in r.rglob("*.parquet"))


def _net_paid(app: App) -> int:
    orders = app.engine.table("orders")
    assert orders is not None
    return int(app.engine.scalar(orders.amount_fen.sum()))


def _store_text(app: App) -> str:
    """Every value of every store table as text (what a raw scan of the store would see)."""
    parts = []
    with app.store.unit_of_work() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)).all():
                parts.append("|".join(str(v) for v in row))
    return "\n".join(parts)


def test_erasure_leaves_no_trace_sqlite(world: App, tmp_path: Path) -> None:
    def store_bytes() -> bytes:  # the database file and its write-ahead log, byte by byte
        return b"".join(p.read_bytes() for p in world.lake.root.parent.parent.glob("store.db*"))

    before = store_bytes()  # the scan sees them before (inbox payload, quarantined line)
    assert PHONE.encode() in before and NAME.encode() in before and EXTERNAL.encode() in before
    _erase_and_scan(world, tmp_path)
    after = store_bytes()
    assert PHONE.encode() not in after and NAME.encode() not in after and EXTERNAL.encode() not in after


def test_reimport_of_an_erased_person_is_quarantined_erased(world: App, tmp_path: Path) -> None:
    folder = write_files(tmp_path / "all")
    again = tmp_path / "again"
    again.mkdir()
    for name in ("customers.csv", "orders.csv", "messages.csv"):
        (again / name).write_bytes((folder / name).read_bytes())
    report = import_path(world, again).as_json()
    rows = [r for r in quarantine(world) if r["reason"] == "erased"]
    # customers p1, p2 (their source records and their phone); orders A0, A1, B1 (by record);
    # chat m1 (by external user id). Q's and everyone else's rows are unchanged.
    assert sorted((r["entity"], r["line"]) for r in rows) == [
        ("customers", 2),
        ("customers", 3),
        ("messages", 2),
        ("orders", 2),
        ("orders", 3),
        ("orders", 4),
    ]  # fmt: skip (file lines: the header is line 1)
    assert report["customers"]["quarantined"] == 2 and report["customers"]["unchanged"] == 4
    assert all(r["raw"] == {} for r in rows)  # the erased person's lines are not kept either
    # a new source record carrying P's phone (in another format) is caught by the phone's tombstone,
    # which erasure took from the sealed lake's keyed hash as it is (not hashed again)
    newcomer = tmp_path / "newcomer"
    newcomer.mkdir()
    (newcomer / "customers.csv").write_text("brand,source,source_customer_id,phone\nla,shop,z9,+86 139 0000 0001\n")
    assert import_path(world, newcomer).as_json()["customers"]["quarantined"] == 1


@pytest.mark.postgres
def test_erasure_leaves_no_trace_postgresql(tmp_path: Path) -> None:
    with backend_url("postgresql", tmp_path) as url:
        app = build(tmp_path, url)
        try:
            before = _store_text(app)  # the scan sees them before (inbox payload, quarantined line)
            assert PHONE in before and NAME in before
            _erase_and_scan(app, tmp_path)
            after = _store_text(app)
            assert PHONE not in after and NAME not in after and EMAIL not in after and EXTERNAL not in after
        finally:
            app.store.engine.dispose()
