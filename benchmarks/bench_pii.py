"""PII encryption cost (docs/privacy.md, "Encryption at rest"): import and One-ID of the demo brand
with encryption on and off (`SIYU_PII_ENCRYPTION=off` exists only for this comparison), and the
cost of sealing every PII value of the landed customers and identities (AES-GCM + keyed hash of the
normalised value, siyu.privacy.crypto), which is the per-value work the lake columns add.

Every 20th customer row gets an unparsable birthday, so the quarantine (sealed in the store) has
work to do.

Usage: .venv/bin/python benchmarks/bench_pii.py [--persons 20000] [--work DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import tempfile
import time
from pathlib import Path

from siyu.bootstrap import bootstrap
from siyu.config import Settings
from siyu.identity.normalise import normalise_identifier
from siyu.identity.service import run_resolve
from siyu.ingest.importer import import_path
from siyu.ingest.views import latest
from siyu.privacy.crypto import encrypt
from siyu.privacy.hashing import keyed_hash

PII = ("phone", "email", "name", "birthday")


def _spoil_birthdays(customers: Path) -> int:
    with customers.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    column = rows[0].index("birthday")
    for i in range(20, len(rows), 20):
        rows[i][column] = "1990/01/01"
    with customers.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    return len(range(20, len(rows), 20))


def _run(data: Path, home: Path, encryption: bool) -> dict[str, float]:
    app = bootstrap(Settings(home=home, pii_key="bench-key", pii_encryption=encryption))
    started = time.perf_counter()
    report = import_path(app, data)
    imported = time.perf_counter() - started
    started = time.perf_counter()
    outcome = run_resolve(app)
    resolved = time.perf_counter() - started
    total = report.as_json()["total"]
    return {"import_s": round(imported, 2), "resolve_s": round(resolved, 2), "rows": total["accepted"],
            "quarantined": total["quarantined"], "customers": outcome.customers}  # fmt: skip


def _seal_cost(home: Path) -> dict[str, float]:
    app = bootstrap(Settings(home=home, pii_key="bench-key"))
    ring = app.settings.pii_keyring
    customers = app.engine.to_arrow(latest(app.engine, "customers"))
    identities = app.engine.to_arrow(latest(app.engine, "identities"))
    cells = [(c, v) for c in PII if c in customers.column_names for v in customers[c].to_pylist() if v]
    cells += [(t, v) for t, v in zip(identities["id_type"].to_pylist(), identities["id_value"].to_pylist(),
                                      strict=True) if t in ("phone", "email")]  # fmt: skip
    started = time.perf_counter()
    for kind, value in cells:
        text = str(value)
        encrypt(ring, "lake", text, kind)
        normal = normalise_identifier(kind, text) if kind in ("phone", "email") else (kind, text)
        if normal is not None:
            keyed_hash(ring.hash_key, normal[0], normal[1])
    spent = time.perf_counter() - started
    return {"cells": len(cells), "seal_and_hash_s": round(spent, 2), "us_per_cell": round(spent / len(cells) * 1e6, 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--persons", type=int, default=20_000)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="siyu-bench-pii-"))
    data = work / "data"
    if not data.exists():
        from siyu.demo.generate import generate

        generate(data, customers=args.persons, seed=1)
        (data / "truth.csv").unlink()
        _spoil_birthdays(data / "customers.csv")
    figures: dict[str, object] = {}
    for mode in ("off", "on"):
        home = work / f"home-{mode}"
        shutil.rmtree(home, ignore_errors=True)
        figures[f"encryption_{mode}"] = _run(data, home, mode == "on")
    figures["lake_seal_projection"] = _seal_cost(work / "home-on")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
