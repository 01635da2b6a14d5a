"""The tamper-evident audit chain: sealed rows verify; an edited, deleted or forged row is found and
named; rows written after the last seal are reported unsealed (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, text, update

from fixtures.outbox_wait import wait_until_final
from siyu.audit.chain import GENESIS, row_hash, seal, verify
from siyu.audit.models import AuditEntry
from siyu.bootstrap import App
from siyu.core.actor import Actor

AT = dt.datetime(2026, 12, 1, 8, tzinfo=dt.UTC)


def _write(app: App, n: int, start: int = 0) -> None:
    with app.store.begin(Actor.user("alice"), now=AT) as uow:
        for i in range(start, start + n):
            uow.audit("key.create", "api_key", f"k{i}", brand="b", after={"phone": "13812345678", "i": i})


def _seal(app: App) -> int:
    # another test worker's open transaction on the shared server holds rows back (siyu.store.txid)
    wait_until_final(app.store, "audit_log")
    with app.store.begin(Actor.system("test"), now=AT) as uow:
        return seal(uow.session)


def _verify(app: App):  # type: ignore[no-untyped-def]
    with app.store.unit_of_work() as s:
        return verify(s)


def test_the_chain_links_rows_in_order_and_verifies(app: App) -> None:
    _write(app, 3)
    assert _verify(app).unsealed == 3  # nothing sealed yet: not trusted, but not broken either
    assert _seal(app) == 3
    _write(app, 2, start=3)
    assert _seal(app) == 2  # continues the chain after the head
    v = _verify(app)
    assert (v.ok, v.sealed, v.unsealed, v.head_seq) == (True, 5, 0, 5)
    with app.store.unit_of_work() as s:
        rows = s.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars().all()
        # the first row hangs off the genesis, each next one off the one before, by hand
        assert rows[0].prev_hash == GENESIS
        assert [r.prev_hash for r in rows[1:]] == [r.hash for r in rows[:-1]]
        assert rows[2].hash == row_hash(rows[1].hash or "", rows[2])
        assert v.head_hash == rows[-1].hash
    assert _seal(app) == 0  # sealing again changes nothing


def test_an_edited_row_is_found(app: App) -> None:
    _write(app, 4)
    _seal(app)
    with app.store.unit_of_work() as s:  # someone with database access rewrites history
        s.execute(update(AuditEntry).where(AuditEntry.seq == 3).values(actor_id="mallory"))
    v = _verify(app)
    assert (v.ok, v.broken_at, v.sealed) == (False, 3, 2)
    assert "changed" in (v.problem or "")


def test_a_deleted_row_is_found(app: App) -> None:
    _write(app, 4)
    _seal(app)
    with app.store.unit_of_work() as s:
        s.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    v = _verify(app)
    assert (v.ok, v.broken_at) == (False, 2)
    assert "missing" in (v.problem or "")


def test_a_forged_row_with_a_made_up_hash_is_found(app: App) -> None:
    _write(app, 2)
    _seal(app)
    with app.store.unit_of_work() as s:
        head = s.execute(select(AuditEntry).where(AuditEntry.seq == 2)).scalar_one()
        s.add(AuditEntry(at=AT, actor_kind="user", actor_id="mallory", action="key.revoke", subject_type="api_key",
                         subject_id="k0", brand="b", txid=0, seq=3, prev_hash=head.hash, hash="f" * 64))  # fmt: skip
    v = _verify(app)
    assert (v.ok, v.broken_at) == (False, 3)


def test_the_loader_seals_on_its_own_schedule(app: App) -> None:
    from siyu.ingest.loader import Loader

    loader = Loader(app, handlers=[])
    _write(app, 2)
    wait_until_final(app.store, "audit_log")
    assert loader.seal_audit() == 2  # the first cycle seals
    _write(app, 1)
    wait_until_final(app.store, "audit_log")
    assert loader.seal_audit() == 0  # not due again within the interval…
    assert loader.seal_audit(every=0) == 1  # …then it catches up
    assert _verify(app).ok
