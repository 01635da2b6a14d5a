"""`siyu subject erase`: erase a person everywhere (PIPL art. 47, 删除权), and prove it.

1. Store, one transaction: tombstones (keyed hashes of their source records and identifiers),
   their rows deleted table by table (siyu.privacy.inventory), their loyalty accounts
   pseudonymised when no other customer still links them (the points ledger, lots and coupons
   keep their amounts under the pseudonymous account), their consent records kept as proof under
   their pseudonym with the evidence hashed, and the audit row `subject.erase`.
2. Lake: their raw rows deleted, their orders and computed per-customer metrics kept with the
   identifiers replaced by a pseudonym (financial records; results already computed stay the
   same), then every touched table's history purged (`Lake.purge_history`: vacuum with retention
   0 and the commit log cut at a checkpoint), so no older version or log statistic keeps them.

Store first: if the lake step is interrupted, the person can still be found through the lake's
identity map and `erase` run again; every step is idempotent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, insert, select, update

from siyu.bootstrap import App
from siyu.core.actor import Actor
from siyu.core.errors import SiyuError
from siyu.lake.tables import sql_text
from siyu.privacy.hashing import keyed_hash
from siyu.privacy.holdings import StoreKeys, callback_rows, json_rows, store_keys, table_of
from siyu.privacy.inventory import LAKE, STORE, Holding
from siyu.privacy.models import ErasureTombstone
from siyu.privacy.subject import Subject, find_subject
from siyu.privacy.tombstones import tombstone_hashes
from siyu.store.uow import UnitOfWork

PSEUDONYM_PREFIX = "erased-"


class ErasureReasonError(SiyuError):
    code = "erasure_reason_required"
    exit_code = 2


@dataclass
class ErasureReport:
    customer_ids: list[str]
    store: dict[str, int] = field(default_factory=dict)  # table → rows deleted or pseudonymised
    lake: dict[str, int] = field(default_factory=dict)
    purged_files: int = 0
    tombstones: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "customer_ids": self.customer_ids,
            "store": self.store,
            "lake": self.lake,
            "purged_files": self.purged_files,
            "tombstones": self.tombstones,
        }


def pseudonym(pii_key: str, kind: str, value: str) -> str:
    """A stable stand-in for an erased id: the same id gets the same pseudonym (so an interrupted
    erasure resumes consistently), and only the holder of the PII key could test a guess."""
    return PSEUDONYM_PREFIX + keyed_hash(pii_key, f"pseudonym:{kind}", value)[:16]


def _nodes(subject: Subject) -> list[tuple[str, str, str]]:
    return [(r["brand"], r["source"], r["source_customer_id"]) for r in subject.nodes.to_pylist()]


def do_erase_store(uow: UnitOfWork, subject: Subject, pii_key: str, reason: str) -> ErasureReport:
    """The store half of an erasure, in the caller's unit of work."""
    report = ErasureReport(subject.customer_ids)
    session = uow.session
    keys = store_keys(session, subject)
    nodes = _nodes(subject)
    for brand in subject.brands:
        mine = [n for n in nodes if n[0] == brand]
        stones = tombstone_hashes(pii_key, mine, subject.identifiers)
        query = select(ErasureTombstone.kind, ErasureTombstone.hash).where(ErasureTombstone.brand == brand)
        known = {(k, h) for k, h in session.execute(query)}
        new = [{"brand": brand, "kind": k, "hash": h, "erased_at": uow.now} for k, h in stones if (k, h) not in known]
        if new:
            session.execute(insert(ErasureTombstone), new)
        report.tombstones += len(stones)
    # children before parents (steps before enrolments, links before accounts)
    for holding in sorted(STORE, key=lambda h: h.link != "enrolment"):
        if holding.fate == "delete":
            report.store[holding.table] = _delete_rows(session, holding, subject, keys)
    report.store["loyalty_accounts"] = _pseudonymise_accounts(session, subject.account_ids, pii_key)
    report.store["consent_records"] = _pseudonymise_consents(session, subject.customer_ids, pii_key)
    for customer_id in subject.customer_ids:
        uow.audit("subject.erase", "data_subject", customer_id, after={"reason": reason, "rows": report.store})
    return report


def _delete_rows(session: Any, holding: Holding, subject: Subject, keys: StoreKeys) -> int:
    table = table_of(holding.table)
    if holding.link in ("record_json", "callback_xml"):
        rows = (json_rows if holding.link == "record_json" else callback_rows)(session, holding, subject)
        ids = [r["id"] for r in rows]
        return int(session.execute(delete(table).where(table.c.id.in_(ids))).rowcount) if ids else 0
    values = keys.values[holding.link]
    if not values:
        return 0
    return int(session.execute(delete(table).where(table.c[holding.column].in_(values))).rowcount)


def _pseudonymise_accounts(session: Any, account_ids: list[int], pii_key: str) -> int:
    """Accounts no customer links any more keep their ledger under a pseudonymous member no."""
    links, accounts = table_of("loyalty_account_links"), table_of("loyalty_accounts")
    still_linked = set(session.scalars(select(links.c.account_id).where(links.c.account_id.in_(account_ids))))
    orphaned = [a for a in account_ids if a not in still_linked]
    for account_id in orphaned:
        session.execute(
            update(accounts)
            .where(accounts.c.id == account_id)
            .values(
                member_no=pseudonym(pii_key, "account", str(account_id)),
                birthday_month=None,
                enrol_store=None,
                enrol_guide=None,
            )
        )
    return len(orphaned)


def _pseudonymise_consents(session: Any, customer_ids: list[str], pii_key: str) -> int:
    """The consent ledger keeps the proof that consent was given or withdrawn (what, when, how,
    by whom recorded) after an erasure, under the customer's pseudonym — the one their computed
    metrics keep. The evidence (form, page, IP, user agent, message id) becomes its keyed hash:
    evidence the brand still holds elsewhere can be matched to it, nobody can read it from here."""
    table = table_of("consent_records")
    rows = session.execute(
        select(table.c.id, table.c.customer_id, table.c.evidence).where(table.c.customer_id.in_(customer_ids))
    ).all()
    for id_, customer_id, evidence in rows:
        proof = json.dumps({"evidence_hash": keyed_hash(pii_key, "consent_evidence", evidence)})
        session.execute(
            update(table)
            .where(table.c.id == id_)
            .values(customer_id=pseudonym(pii_key, "customer", customer_id), evidence=proof)
        )
    return len(rows)


def _node_predicate(nodes: list[tuple[str, str, str]]) -> str:
    return " OR ".join(
        f"(brand = {sql_text(b)} AND source = {sql_text(s)} AND source_customer_id = {sql_text(c)})"
        for b, s, c in nodes
    )


def _in(column: str, values: list[str]) -> str:
    return f"{column} IN ({', '.join(sql_text(v) for v in values)})"


def erase_lake(app: App, subject: Subject, report: ErasureReport) -> None:
    """The lake half: delete or pseudonymise, then purge every touched table's history."""
    key = app.settings.pii_key
    nodes = _nodes(subject)
    for holding in LAKE:
        if holding.fate == "keep" or not app.lake.exists(holding.table):
            continue
        n = 0
        if holding.link == "node" and holding.fate == "delete":
            n = app.lake.delete(holding.table, _node_predicate(nodes))
        elif holding.link == "node":  # orders: the financial record stays, its customer does not
            for b, s, c in nodes:
                alias = pseudonym(key, "record", f"{b}/{s}/{c}")
                n += app.lake.update(holding.table, {"source_customer_id": alias}, _node_predicate([(b, s, c)]))
        elif holding.link == "external_userid":
            values = subject.values("external_userid")
            n = app.lake.delete(holding.table, _in(holding.column, values)) if values else 0
        elif holding.table == "identity_merges":
            ids = subject.customer_ids
            n = app.lake.delete(holding.table, f"{_in('survivor_id', ids)} OR {_in('merged_id', ids)}")
        elif holding.fate == "delete":
            n = app.lake.delete(holding.table, _in(holding.column, subject.customer_ids))
        else:  # computed metrics per customer: same rows, pseudonymous id
            for customer_id in subject.customer_ids:
                alias = pseudonym(key, "customer", customer_id)
                n += app.lake.update(holding.table, {holding.column: alias}, _in(holding.column, [customer_id]))
        report.lake[holding.table] = n
        report.purged_files += len(app.lake.purge_history(holding.table))


def erase_subject(app: App, key: str, *, reason: str, actor: Actor, brand: str | None = None) -> ErasureReport:
    """Erase the person `key` names (see the module docstring); `reason` is required and audited."""
    if not reason.strip():
        raise ErasureReasonError("an erasure needs a reason (删除原因), e.g. --reason 'customer request 2026-12-01'")
    subject = find_subject(app, key, brand)
    with app.store.begin(actor) as uow:
        report = do_erase_store(uow, subject, app.settings.pii_key, reason.strip())
    _checkpoint_store(app)
    erase_lake(app, subject, report)
    return report


def _checkpoint_store(app: App) -> None:
    """SQLite: move the write-ahead log into the database file and truncate it, so the log's older
    frames (the rows as they were before) are gone too; secure_delete has zeroed them in the file.
    PostgreSQL keeps dead tuples until VACUUM (docs/privacy.md)."""
    if app.store.engine.dialect.name == "sqlite":
        with app.store.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
