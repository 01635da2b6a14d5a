"""Opening a store that is already at the latest revision does not load Alembic (about 1 s a process,
paid by every command); a store behind is migrated by Alembic as before."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from siyu.store.db import MIGRATIONS, _heads

# In a fresh interpreter, so that what is loaded is what opening the store loaded.
OPEN = """
import json, sys
from sqlalchemy import text
from siyu.store.db import open_store

store = open_store(sys.argv[1])
with store.engine.connect() as connection:
    version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
print(json.dumps({"alembic": "alembic" in sys.modules, "version": version}))
"""


def _open(url: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", OPEN, url], capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.splitlines()[-1]))


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def test_heads_read_from_the_scripts_are_alembics_heads() -> None:
    assert _heads() == set(ScriptDirectory.from_config(_config()).get_heads())


def test_a_store_at_the_head_opens_without_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'siyu.db'}"
    (head,) = _heads() or {None}

    assert _open(url) == {"alembic": True, "version": head}  # a new store: Alembic creates the schema
    assert _open(url) == {"alembic": False, "version": head}  # at the head: nothing to do, Alembic not loaded

    engine, cfg = create_engine(url), _config()
    with engine.begin() as connection:  # one revision behind, as after an upgrade of siyu
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "-1")
    engine.dispose()
    assert _open(url) == {"alembic": True, "version": head}  # Alembic brings it to the head again
