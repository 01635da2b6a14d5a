"""Foundation benchmark: import 1M orders and resolve ~1M source customers of the demo brand.

Each phase runs in its own process so its peak memory (max RSS) is its own. Figures are printed
with ratios against baselines measured in the same run on the same files:
- import vs. `duckdb read_csv -> parquet` (the least work that lands a CSV in columnar form);
- resolve vs. scipy's in-memory connected components over the same identifier edges.

Usage: .venv/bin/python benchmarks/bench_foundation.py [--persons 545000] [--orders 1000000] [--work DIR]
Targets (2 cores): import >= 100k order rows/s; resolve 1M source customers <= 60 s, peak <= 4 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

# Workspace of each phase: the identity phases share one (import, then baseline and resolve read it).
HOMES = {
    "generate": "generate",
    "baseline_parse": "parse",
    "import_orders": "orders",
    "import_identity": "identity",
    "baseline_cc": "identity",
    "resolve": "identity",
}


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase(name: str, data: Path, home: Path, args: argparse.Namespace) -> dict[str, float]:
    """Run one phase in this process and return its figures."""
    os.environ["SIYU_HOME"] = str(home)
    started = time.perf_counter()
    rows = 0
    if name == "generate":
        from siyu.demo.generate import generate

        summary = generate(data, customers=args.persons, seed=1)
        rows = summary.files.get("customers.csv", 0)
        orders_file = data / "orders.csv"
        # Keep exactly N orders for the import phase (header + N lines).
        orders_dir = data / "orders_only"
        orders_dir.mkdir(exist_ok=True)
        with orders_file.open() as src, (orders_dir / "orders.csv").open("w") as dst:
            for i, line in enumerate(src):
                if i > args.orders:
                    break
                dst.write(line)
    elif name == "baseline_parse":
        import duckdb

        con = duckdb.connect()
        csv = data / "orders_only" / "orders.csv"
        rows = con.execute(f"select count(*) from read_csv('{csv}', all_varchar=true)").fetchall()[0][0]
        started = time.perf_counter()
        con.execute(
            f"copy (select * from read_csv('{data / 'orders_only' / 'orders.csv'}', all_varchar=true)) "
            f"to '{home / 'baseline.parquet'}' (format parquet)"
        )
    elif name == "import_orders":
        from siyu.bootstrap import bootstrap
        from siyu.ingest.importer import import_path

        app = bootstrap()
        report = import_path(app, data / "orders_only" / "orders.csv")
        rows = report.total().accepted + report.total().quarantined
    elif name == "import_identity":
        from siyu.bootstrap import bootstrap
        from siyu.ingest.importer import import_path

        app = bootstrap()
        for entity in ("customers", "identities", "memberships"):
            rows += import_path(app, data / f"{entity}.csv").total().accepted
    elif name == "baseline_cc":
        rows = _scipy_components(home)
    elif name == "resolve":
        from siyu.bootstrap import bootstrap
        from siyu.identity.service import run_resolve

        outcome = run_resolve(bootstrap())
        rows = outcome.source_customers
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": seconds, "peak_mib": _peak_mib()}


def _scipy_components(home: Path) -> int:
    """Baseline: identifier edges -> scipy connected components (same identifiers as siyu uses)."""
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from siyu.bootstrap import bootstrap
    from siyu.identity.service import identifiers

    app = bootstrap()
    ids = identifiers(app)
    strong = ids.filter(ids.strength == "strong")
    table = app.engine.to_arrow(strong.select("brand", "source", "source_customer_id", "id_type", "id_value"))
    import pyarrow.compute as pc

    node = pc.binary_join_element_wise(table["brand"], table["source"], table["source_customer_id"], "|")
    ident = pc.binary_join_element_wise(table["brand"], table["id_type"], table["id_value"], "|")
    node_codes = pc.dictionary_encode(node).combine_chunks()
    id_codes = pc.dictionary_encode(ident).combine_chunks()
    n_nodes, n_ids = len(node_codes.dictionary), len(id_codes.dictionary)
    a = np.asarray(node_codes.indices)
    b = np.asarray(id_codes.indices) + n_nodes
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n_nodes + n_ids,) * 2)
    connected_components(graph, directed=False)
    return n_nodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=545_000, help="demo persons (≈1M source customers)")
    parser.add_argument("--orders", type=int, default=1_000_000, help="order rows to import")
    parser.add_argument("--work", type=Path, default=Path("bench-data"), help="scratch folder (deleted first)")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    args = parser.parse_args()
    data, home = args.work / "data", args.work / "home"
    if args.phase:
        sys.stdout.write(json.dumps(phase(args.phase, data, home / HOMES[args.phase], args)) + "\n")
        return

    shutil.rmtree(args.work, ignore_errors=True)
    data.mkdir(parents=True)
    results: dict[str, dict[str, float]] = {}
    for name in ("generate", "baseline_parse", "import_orders", "import_identity", "baseline_cc", "resolve"):
        (home / HOMES[name]).mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            __file__,
            "--phase",
            name,
            "--work",
            str(args.work),
            "--persons",
            str(args.persons),
            "--orders",
            str(args.orders),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode:
            sys.exit(f"phase {name} failed:\n{proc.stderr[-3000:]}")
        out = proc.stdout.strip().splitlines()[-1]
        results[name] = json.loads(out)
        r = results[name]
        print(
            f"{name:16s} {r['rows']:>10,.0f} rows  {r['seconds']:7.2f} s  peak {r['peak_mib']:7.0f} MiB",
            flush=True,
        )

    imp, base = results["import_orders"], results["baseline_parse"]
    res, cc = results["resolve"], results["baseline_cc"]
    print()
    print(
        f"import:  {imp['rows'] / imp['seconds']:>10,.0f} order rows/s (target >= 100,000); "
        f"{imp['seconds'] / base['seconds']:.1f}x the time of duckdb csv->parquet; peak {imp['peak_mib']:.0f} MiB"
    )
    print(
        f"resolve: {res['rows']:>10,.0f} source customers in {res['seconds']:.1f} s (target <= 60 s); "
        f"peak {res['peak_mib']:.0f} MiB (target <= 4096); "
        f"{res['seconds'] / cc['seconds']:.1f}x the time of scipy connected components (incl. reading identifiers)"
    )


if __name__ == "__main__":
    main()
