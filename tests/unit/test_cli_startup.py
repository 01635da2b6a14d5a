"""`siyu --help` (and `siyu <group> --help`) must answer at once: building the command tree loads typer,
rich and siyu's light modules only. The compute stack (Ibis, DuckDB, SQLAlchemy, Alembic, pandas, …)
and the server are imported by the commands that use them, when they run."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "ibis",
    "duckdb",
    "sqlalchemy",
    "alembic",
    "pandas",
    "pyarrow",
    "deltalake",
    "scipy",
    "numpy",
    "fastapi",
    "uvicorn",
)

# In a fresh interpreter (the tests' own process has imported everything already): build the command
# tree and write the help of every group and command, as `siyu … --help` does.
PROBE = """
import json, sys
import typer.main
from siyu.cli.app import app

def helps(command, ctx):
    yield command.get_help(ctx)
    for name, sub in getattr(command, "commands", {}).items():
        yield from helps(sub, type(ctx)(sub, info_name=name, parent=ctx))

root = typer.main.get_command(app)
texts = list(helps(root, root.context_class(root, info_name="siyu")))
loaded = sorted({name.split(".")[0] for name in sys.modules})
print(json.dumps({"helps": len(texts), "loaded": loaded}))
"""


def test_the_command_tree_and_its_help_import_no_heavy_module() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["helps"] > 50  # every group and command (85 today), so the probe did walk the tree
    assert sorted(set(out["loaded"]) & set(HEAVY)) == []
