"""Engine benchmark (issue 18 item 8): FAST+ for one month, a six-condition audience and One-ID on demo brands
of growing size, on DuckDB and on Spark local mode in the same run. Prints each time, the Spark / DuckDB ratio,
how each time grows with the data (time at the larger size / time at the smallest), and checks that both
engines give the same numbers (FAST+ capital and conversion, the audience's count, One-ID's customers).

Per size: the demo brand is generated, imported and resolved once by DuckDB into --work/<size> (kept and reused
by later runs); then each engine runs in its own process, which starts the engine (for Spark: the JVM and the
SparkSession, reported apart as `start`) before anything is timed. One-ID runs last as it rewrites the
identity map (stable ids: both engines write the same map).

Usage: .venv/bin/python benchmarks/bench_engines.py [--sizes 1000000,3000000] [--work DIR]
       [--spark-master local[2]] [--shuffle-partitions 8]
Spark local on 2 cores is expected to be slower than DuckDB; what matters is identical numbers and growth
close to linear.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

BRAND = "demo"
AS_OF = "2026-10-31"  # the demo data ends on 2026-10-31
PERIOD = "2026-06"
# Six conditions: profile, identifier, relationship layer, two behaviours and a "did not buy".
RULE = (
    f"attribute.city in [上海, 北京, 杭州, 深圳, 广州] and has phone and layer >= basic at {PERIOD} "
    "and did visit in mini_program >= 2 times in last 90 days and bought category 面霜 in last 365 days "
    "and not bought in last 30 days"
)
ENGINES = ("duckdb", "pyspark")
WORKS = ("fast", "audience", "one_id")


def setup(home: Path, data: Path, size: int) -> dict[str, object]:
    """Generate, import and resolve the demo brand, and store June's layers (the audience reads them)."""
    from siyu.bootstrap import bootstrap
    from siyu.demo.generate import generate
    from siyu.identity.service import run_resolve
    from siyu.ingest.importer import import_path
    from siyu.metrics.materialise import materialise_layers

    started = time.perf_counter()
    summary = generate(data, customers=size, seed=3)
    app = bootstrap()
    import_path(app, data)
    customers = run_resolve(app).customers
    materialise_layers(app, BRAND, PERIOD, PERIOD)
    rows = {k: v for k, v in summary.files.items() if k != "truth.csv"}
    return {"rows": rows, "customers": customers, "seconds": round(time.perf_counter() - started, 1)}


def measure() -> dict[str, object]:
    """Each work once on the engine of SIYU_ENGINE, after starting it."""
    from datetime import date

    import ibis

    from siyu.audiences.service import count_audience
    from siyu.bootstrap import bootstrap
    from siyu.identity.service import run_resolve
    from siyu.metrics.fast import FastMetrics

    started = time.perf_counter()
    app = bootstrap()
    app.engine.scalar(ibis.literal(1) + 1)
    out: dict[str, object] = {"start": round(time.perf_counter() - started, 2)}

    def timed(name: str, work):  # type: ignore[no-untyped-def]
        began = time.perf_counter()
        result = work()
        out[name] = round(time.perf_counter() - began, 2)
        return result

    m = FastMetrics(app, BRAND)
    fast = timed("fast", lambda: m.fast(m.period(PERIOD)))
    audience = timed("audience", lambda: count_audience(app, BRAND, rule=RULE, as_of=date.fromisoformat(AS_OF)))
    one_id = timed("one_id", lambda: run_resolve(app))
    out["numbers"] = {
        "capital": fast["capital"],
        "conversion": fast["conversion"]["rate"],
        "audience": audience["customers"],
        "customers": one_id.customers,
    }
    return out


def run_phase(args: argparse.Namespace, phase: str, size: int, engine: str = "duckdb") -> dict[str, object]:
    env = dict(os.environ, SIYU_HOME=str(Path(args.work) / str(size) / "home"), SIYU_ENGINE=engine)
    env.pop("SIYU_DATABASE_URL", None)
    env["SIYU_SPARK_MASTER"] = args.spark_master
    env["SIYU_SPARK_CONF"] = f"spark.ui.enabled=false,spark.sql.shuffle.partitions={args.shuffle_partitions}"
    cmd = [sys.executable, __file__, "--phase", phase, "--size", str(size), "--work", args.work]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        sys.exit(f"{phase} {size} on {engine} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def report(sizes: list[int], results: dict[tuple[int, str], dict[str, object]]) -> None:
    smallest = sizes[0]
    print(f"\n{'customers':>10} {'work':<9} {'duckdb s':>9} {'spark s':>9} {'spark/duck':>10} "
          f"{'duck growth':>11} {'spark growth':>12}")  # fmt: skip
    for size in sizes:
        for work in WORKS:
            d = float(results[(size, "duckdb")][work])  # type: ignore[arg-type]
            s = float(results[(size, "pyspark")][work])  # type: ignore[arg-type]
            d0 = float(results[(smallest, "duckdb")][work])  # type: ignore[arg-type]
            s0 = float(results[(smallest, "pyspark")][work])  # type: ignore[arg-type]
            print(f"{size:>10,} {work:<9} {d:>9.2f} {s:>9.2f} {s / d:>9.1f}× {d / d0:>10.2f}× {s / s0:>11.2f}×")
    for size in sizes:
        starts = [results[(size, e)]["start"] for e in ENGINES]
        print(f"engine start at {size:,}: duckdb {starts[0]} s, spark {starts[1]} s (not in the times above)")
    print(f"data grows {sizes[-1] / smallest:.1f}× from {smallest:,} to {sizes[-1]:,} customers")
    for size in sizes:
        numbers = [results[(size, e)]["numbers"] for e in ENGINES]
        same = "same" if numbers[0] == numbers[1] else "DIFFERENT"
        print(
            f"numbers at {size:,}: {same} on both engines: {numbers[0]}"
            + ("" if same == "same" else f" vs {numbers[1]}")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,3000000", help="demo customers per run, comma-separated")
    parser.add_argument("--work", default="/tmp/siyu-bench-engines")
    parser.add_argument("--spark-master", default="local[2]")
    parser.add_argument("--shuffle-partitions", type=int, default=8)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "setup":
        folder = Path(args.work) / str(args.size)
        print(json.dumps(setup(folder / "home", folder / "data", args.size)))
        return
    if args.phase == "measure":
        print(json.dumps(measure()))
        return
    sizes = sorted(int(s) for s in args.sizes.split(","))
    results: dict[tuple[int, str], dict[str, object]] = {}
    for size in sizes:
        marker = Path(args.work) / str(size) / "ready.json"
        if not marker.exists():
            print(f"building the {size:,}-customer workspace (once) …", flush=True)
            built = run_phase(args, "setup", size)
            marker.write_text(json.dumps(built))
        built = json.loads(marker.read_text())
        print(f"{size:,}: {built['rows']}, {built['customers']:,} customers after One-ID", flush=True)
        for engine in ENGINES:
            results[(size, engine)] = run_phase(args, "measure", size, engine)
            print(f"  {engine}: {results[(size, engine)]}", flush=True)
    report(sizes, results)


if __name__ == "__main__":
    main()
