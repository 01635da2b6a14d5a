"""Store engine and units of work: SQLite (WAL) by default, PostgreSQL in production.

`Store.begin(actor)` opens the unit of work every entry point uses for a change (siyu.store.uow):
one transaction, its actor and time, audit rows, outbox events and after-commit effects.
`Store.unit_of_work()` is the bare session, for reads and for the ledger's own hot path.

Opening the store applies pending Alembic migrations, so a fresh workspace is ready to use.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.orm import Session, sessionmaker

from siyu.core.actor import Actor
from siyu.core.clock import utc_now
from siyu.store.uow import UnitOfWork

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Deleted rows are overwritten in the file, not left in free pages (erasure: siyu.privacy).
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True)


# A script's header, as script.py.mako writes it; a merge (a tuple) or any other form leaves the check to Alembic.
_REVISION = re.compile(r"""^revision = ['"](\w+)['"]$""", re.MULTILINE)
_DOWN_REVISION = re.compile(r"""^down_revision = (?:None|['"](\w+)['"])$""", re.MULTILINE)


def _heads() -> set[str] | None:
    """The latest revisions, read from the scripts' headers; None when a header is not the plain form."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (MIGRATIONS / "versions").glob("*.py"):
        header = script.read_text(encoding="utf-8")
        revision, down = _REVISION.findall(header), _DOWN_REVISION.findall(header)
        if len(revision) != 1 or len(down) != 1:
            return None
        revisions.add(revision[0])
        parents.add(down[0])  # "" for the first
    return revisions - parents or None


def _applied(engine: Engine) -> set[str] | None:
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return set(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest Alembic revision. A store already there is told by its
    alembic_version row alone: Alembic (about 1 s of imports and script loading) runs only to change it."""
    from siyu.store.migrations import env_models  # every table on Base.metadata, as Alembic's env.py has it

    assert env_models.REGISTERED
    heads = _heads()
    if heads is not None and _applied(engine) == heads:
        return
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")


class Store:
    """The transactional store. `unit_of_work()` commits on success and rolls back on any error."""

    def __init__(self, engine: Engine, clock: Callable[[], dt.datetime] = utc_now) -> None:
        self.engine = engine
        self.clock = clock
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def begin(
        self,
        actor: Actor,
        *,
        now: dt.datetime | None = None,
        request_id: str | None = None,
        write: bool = True,
    ) -> Iterator[UnitOfWork]:
        """The unit of work of one entry point (see siyu.store.uow). Commits when the block ends
        without an error, then runs the after-commit effects; rolls back and drops them otherwise.
        `write` takes the write lock up front on SQLite (see `write_unit`)."""
        unit = self.write_unit() if write else self.unit_of_work()
        with unit as session:
            uow = UnitOfWork(session, actor=actor, now=now or self.clock(), request_id=request_id)
            try:
                yield uow
            except BaseException:
                uow.discard()
                raise
        uow.run_effects()

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def write_unit(self) -> Iterator[Session]:
        """A unit of work that takes the write lock up front. On SQLite a transaction that reads
        and then writes can fail with "database is locked" when another writer committed in
        between (WAL snapshots cannot be upgraded); BEGIN IMMEDIATE waits its turn instead.
        PostgreSQL needs nothing: writers lock the rows they change (`SELECT … FOR UPDATE`)."""
        with self.unit_of_work() as session:
            if self.engine.dialect.name == "sqlite":
                session.connection().exec_driver_sql("BEGIN IMMEDIATE")
            yield session


def open_store(url: str, clock: Callable[[], dt.datetime] = utc_now) -> Store:
    engine = make_engine(url)
    migrate(engine)
    return Store(engine, clock)
