"""PII encryption cost (docs/privacy.md, "Encryption at rest"): import and One-ID of the demo brand
with encryption on and off in the same run (`SIYU_PII_ENCRYPTION=off` exists only for this
comparison; on, the lake's phone, e-mail and name columns are sealed with keyed hashes beside them,
siyu.privacy.lake_columns, and One-ID matches on the hashes), their ratio, whether both give the same
identity map, and the cost of the per-value sealing alone.

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
from siyu.identity.service import run_resolve
from siyu.ingest.importer import import_path
from siyu.ingest.views import latest
from siyu.privacy import lake_columns


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
    """The per-value work of the lake columns alone: the clear lake's customers and identities,
    normalised by the engine (siyu.privacy.lake_columns.prepare), then sealed (AES-GCM + keyed hash
    + mask per value, Python over Arrow batches)."""
    app = bootstrap(Settings(home=home, pii_key="bench-key"))
    ring = app.settings.pii_keyring
    cells, spent = 0, 0.0
    for entity in ("customers", "identities"):
        table = latest(app.engine, entity)
        assert table is not None
        prepared = app.engine.to_arrow(lake_columns.prepare(entity, table))
        if entity == "identities":
            cells += sum(1 for t in prepared["id_type"].to_pylist() if t in lake_columns.IDENTITY_TYPES)
        else:
            cells += sum(len(prepared[c]) - prepared[c].null_count for c in lake_columns.SEALED[entity])
        started = time.perf_counter()
        lake_columns.seal_table(ring, ring.hash_key, entity, prepared)
        spent += time.perf_counter() - started
    return {"cells": cells, "seal_s": round(spent, 2), "us_per_cell": round(spent / max(cells, 1) * 1e6, 2)}


def _same_customers(work: Path) -> bool:
    """One-ID on keyed hashes gives exactly the identity map it gives on clear values."""
    maps = []
    for mode in ("off", "on"):
        app = bootstrap(Settings(home=work / f"home-{mode}", pii_key="bench-key"))
        table = app.engine.table("identity_map")
        assert table is not None
        maps.append(app.engine.to_arrow(table.select("source", "source_customer_id", "customer_id").order_by(
            ["source", "source_customer_id"])))  # fmt: skip
    return maps[0].equals(maps[1])


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
    off, on = figures["encryption_off"], figures["encryption_on"]
    assert isinstance(off, dict) and isinstance(on, dict)
    figures["ratio_on_to_off"] = {k: round(on[k] / off[k], 2) for k in ("import_s", "resolve_s")}
    figures["same_customers"] = _same_customers(work)
    figures["lake_seal_alone"] = _seal_cost(work / "home-off")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
