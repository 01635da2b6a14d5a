"""PII in the store: quarantine rows and WeCom secrets sealed (a raw scan of the store file finds no
clear phone, name or secret), masked by default, revealed only with a purpose and audited, found by
keyed hash, and re-sealed by `rotate-pii` while old envelopes keep opening."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from siyu.audit.models import AuditEntry
from siyu.bootstrap import App, bootstrap
from siyu.config import Settings
from siyu.core.actor import Actor
from siyu.core.clock import utc_now
from siyu.ingest import inbox
from siyu.ingest.importer import import_path, quarantine
from siyu.messaging.dispatch import Dispatcher
from siyu.messaging.enqueue import SendRequest, do_enqueue
from siyu.messaging.listing import list_messages
from siyu.messaging.models import OutboundMessage
from siyu.messaging.sealing import open_payload
from siyu.privacy.crypto import Keyring, key_id
from siyu.privacy.hashing import keyed_hash
from siyu.privacy.lake_columns import open_rows
from siyu.privacy.reveal import RevealPurposeError
from siyu.privacy.rotation import rotate_pii
from siyu.privacy.sealed_rows import QUARANTINE, open_row
from siyu.store.models import QuarantineRow
from siyu.wecom.settings import CorpSettings, do_configure, load

PHONE, NAME, SECRET = "13912345678", "欧阳娜娜", "corp-secret-Zq81"
API_PHONE = "13511112222"  # sent through the ingest API: waits in the inbox
OUT_PHONE, OUT_EMAIL = "13822223333", "lin.out@example.com"  # addresses of outbound messages
ADMIN = Actor.user("ops")


def _scan(home: Path) -> bytes:
    """Every byte SQLite holds for the store: the database and its write-ahead log."""
    return b"".join(p.read_bytes() for p in home.glob("siyu.db*"))


def _workspace(home: Path, key_file: Path | None = None) -> App:
    settings = Settings(home=home, pii_key="k-old", pii_key_file=key_file)
    return bootstrap(settings)


@pytest.fixture
def seeded(tmp_path: Path) -> App:
    app = _workspace(tmp_path / "home")
    data = tmp_path / "customers.csv"
    data.write_text(
        "brand,source,source_customer_id,phone,email,name,birthday\n"
        f"acme,pos,c1,{PHONE},nana@example.com,{NAME},1990/01/01\n"  # bad birthday: quarantined
        "acme,pos,c2,13700000001,,李四,1991-02-03\n",
        encoding="utf-8",
    )
    import_path(app, data)
    wecom = CorpSettings("acme", "ww1", "tok-123456", "a" * 43, SECRET)
    with app.store.begin(ADMIN) as uow:
        do_configure(uow, app.settings.pii_keyring, wecom)
    sent = {"brand": "acme", "source": "app", "source_customer_id": "a1", "phone": API_PHONE}
    ring = app.settings.pii_sealing_ring
    inbox.record(app.store, "acme", "app", "customers", [inbox.Message("m1", json.dumps(sent))], utc_now(), ring)
    # A quarantine row from before encryption (clear JSON, no hashes) must stay readable.
    with app.store.begin(ADMIN) as uow:
        job = uow.session.scalars(select(QuarantineRow)).one().job_id
        legacy = {"brand": "acme", "source": "pos", "source_customer_id": "c9", "phone": "13600000009"}
        uow.session.add(QuarantineRow(job_id=job, entity="customers", file="old.csv", line=7, field="birthday",
                                      reason="old", raw=json.dumps(legacy)))  # fmt: skip
    # Two rendered outbound messages: their addresses and text are sealed too (siyu.messaging.sealing).
    with app.store.begin(ADMIN) as uow:
        for channel, content in (("sms", {"phone": OUT_PHONE, "text": f"{NAME}您好"}),
                                 ("email", {"to": OUT_EMAIL, "subject": "Hi", "text": "您好"})):  # fmt: skip
            do_enqueue(uow, SendRequest("acme", None, channel, "transactional", f"t:{channel}", content), app=app)
    return app


def test_store_holds_no_clear_pii_and_shows_it_masked(seeded: App) -> None:
    app = seeded
    app.store.engine.dispose()
    scanned = _scan(app.settings.home)
    assert PHONE.encode() not in scanned and NAME.encode() not in scanned and SECRET.encode() not in scanned
    assert b"nana@example.com" not in scanned and API_PHONE.encode() not in scanned
    new = next(r for r in quarantine(app) if r["line"] == 2)
    assert new["raw"]["phone"] == "139****5678" and new["raw"]["email"] == "n***@example.com"  # type: ignore[index]
    assert new["raw"]["birthday"] == "1990-**-**" and new["raw"]["source_customer_id"] == "c1"  # type: ignore[index]
    with app.store.unit_of_work() as session:
        stored = session.scalars(select(QuarantineRow).where(QuarantineRow.line == 2)).one()
        found = select(QuarantineRow.line).where(
            QuarantineRow.match_hashes.contains(keyed_hash(app.settings.pii_key, "phone", "+86" + PHONE))
        )
        assert list(session.scalars(found)) == [2]  # erasure finds the row without opening it
        assert key_id(stored.raw) == "0"
        assert load(session, app.settings.pii_keyring, "acme").secret == SECRET
        waiting = inbox.pending(session, 10, app.settings.pii_keyring)  # the loader reads it in clear
        assert [json.loads(m.payload)["phone"] for m in waiting] == [API_PHONE]
        assert OUT_PHONE.encode() not in scanned and OUT_EMAIL.encode() not in scanned
        listed = list_messages(session, brand="acme", ring=app.settings.pii_keyring)  # masked, opened to mask
        assert sorted(m["to"] for m in listed) == ["138****3333", "l***@example.com"]
        claimed = Dispatcher(app).claim(utc_now())  # the dispatcher opens them for the channel adapters
        assert sorted(c.payload.get("phone") or c.payload["to"] for c in claimed) == [OUT_PHONE, OUT_EMAIL]


def test_reveal_needs_a_purpose_and_is_audited(seeded: App) -> None:
    with pytest.raises(RevealPurposeError):
        quarantine(seeded, reveal=(ADMIN, "  "))
    rows = quarantine(seeded, reveal=(ADMIN, "fix birthdays and re-import"))
    assert {r["raw"]["phone"] for r in rows} == {PHONE, "13600000009"}  # type: ignore[index]
    assert next(r for r in rows if r["line"] == 2)["raw"]["name"] == NAME  # type: ignore[index]
    with seeded.store.unit_of_work() as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "pii.reveal")).one()
    assert (entry.actor_id, entry.subject_type) == ("ops", "quarantine_rows")
    assert json.loads(entry.after or "{}")["purpose"] == "fix birthdays and re-import"


def new_only_ring() -> Keyring:
    return Keyring({"2027": "k-new"}, "2027", "2027")


def test_rotate_pii_reseals_the_store_and_old_keys_read_meanwhile(seeded: App, tmp_path: Path) -> None:
    key_file = tmp_path / "keys.json"
    key_file.write_text(json.dumps({"current": "2027", "hash": "0", "keys": {"0": "k-old", "2027": "k-new"}}))
    app = _workspace(seeded.settings.home, key_file)
    assert {str(r["raw"]["phone"]) for r in quarantine(app)} == {"139****5678", "136****0009"}  # type: ignore[index]
    report = rotate_pii(app, ADMIN)
    assert report == {
        "key": "2027",
        "store": {"quarantine_rows": 2, "inbox": 1, "outbound_messages": 2, "wecom_configs": 1},
        "lake": {"customers": 1, "identities": 0},  # c2's sealed phone and name (a new Delta version)
    }
    again = rotate_pii(app, ADMIN)
    assert again["store"] == {
        "quarantine_rows": 0, "inbox": 0, "outbound_messages": 0, "wecom_configs": 0,
    } and again["lake"] == {"customers": 0, "identities": 0}  # fmt: skip
    lake = app.engine.to_arrow(app.engine.table("customers")).to_pylist()
    assert [key_id(r["phone_enc"]) for r in lake] == ["2027"] and lake[0]["phone_hash"] == keyed_hash(
        "k-old", "phone", "+8613700000001"
    )  # the hash keeps the hash key
    assert open_rows(new_only_ring(), "customers", lake)[0]["name"] == "李四"
    new_only = new_only_ring()  # the old key is no longer needed to read
    with app.store.unit_of_work() as session:
        rows = session.scalars(select(QuarantineRow)).all()
        assert {key_id(r.raw) for r in rows} == {"2027"}
        assert {open_row(new_only, r.raw, QUARANTINE)["phone"] for r in rows} == {PHONE, "13600000009"}
        legacy = next(r for r in rows if r.line == 7)
        assert legacy.match_hashes == keyed_hash("k-old", "phone", "+8613600000009")  # hashes keep the hash key
        assert load(session, new_only, "acme").secret == SECRET
        assert json.loads(inbox.pending(session, 10, new_only)[0].payload)["phone"] == API_PHONE
        sent = session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)).all()
        assert [open_payload(new_only, m.payload).get("phone") for m in sent] == [OUT_PHONE, None]
        rotations = session.scalars(select(AuditEntry).where(AuditEntry.action == "pii.rotate")).all()
    assert [json.loads(r.after or "{}")["key"] for r in rotations] == ["2027", "2027"]
