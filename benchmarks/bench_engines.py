"""Engine benchmark (issue 18 item 8): FAST+ for one month, a six-condition audience and One-ID on demo brands
of growing size, on DuckDB and on Spark local mode in the same run. Prints each time, the Spark / DuckDB ratio,
how each time grows with the data (time at the larger size / time at the smallest), and checks that both
engines give the same numbers (FAST+ capital and conversion, the audience's count, One-ID's customers).

Per size: the demo brand is generated, imported (events in parts, so the import's memory stays bounded) and
resolved once by DuckDB into --work/<size>, which is kept: later runs skip it. Then each engine runs in its own
process, which starts the engine (for Spark: the JVM and the SparkSession, reported apart as `start`) before
anything is timed; each measurement is kept in --work/<size>/<engine>.json, so a rerun after an interruption
measures only what is missing (--remeasure measures again). One-ID runs last as it rewrites the identity map
(stable ids: both engines write the same map).

Memory: --memory is DuckDB's limit and Spark's driver heap (local mode: the executors live in the driver), so
with Python's share a phase peaks a few GiB above it; each phase's peak RSS (its whole process tree, the JVM
included, sampled every 2 s) is printed.

Usage: .venv/bin/python benchmarks/bench_engines.py [--sizes 1000000,3000000] [--work DIR] [--memory 6GB]
       [--spark-master local[2]] [--shuffle-partitions 8] [--remeasure]
Spark local on 2 cores is expected to be slower than DuckDB; what matters is identical numbers and growth
close to linear.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
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
EVENT_PARTS = 3  # per million customers: the events file is imported in parts of about 10M rows


def split_events(csv: Path, parts: int) -> list[Path]:
    """Move `csv` into `parts` folders of one events.csv each (header repeated), to import one by one."""
    with csv.open() as src:
        header = src.readline()
        lines = sum(1 for _ in src)
    per = lines // parts + 1
    folders = []
    with csv.open() as src:
        src.readline()
        for i in range(parts):
            folder = csv.parent / "events_parts" / f"part{i}"
            folder.mkdir(parents=True, exist_ok=True)
            with (folder / csv.name).open("w") as dst:
                dst.write(header)
                for _, line in zip(range(per), src, strict=False):
                    dst.write(line)
            folders.append(folder)
    csv.unlink()
    return folders


def setup(home: Path, data: Path, size: int) -> dict[str, object]:
    """Generate, import and resolve the demo brand, and store June's layers (the audience reads them)."""
    from siyu.bootstrap import bootstrap
    from siyu.demo.generate import generate
    from siyu.identity.service import run_resolve
    from siyu.ingest.importer import import_path
    from siyu.metrics.materialise import materialise_layers

    started = time.perf_counter()
    summary = generate(data, customers=size, seed=3)
    generated = time.perf_counter() - started
    parts = split_events(data / "events.csv", max(1, round(EVENT_PARTS * size / 1_000_000)))
    app = bootstrap()
    import_path(app, data)
    for folder in parts:
        import_path(app, folder)
    customers = run_resolve(app).customers
    materialise_layers(app, BRAND, PERIOD, PERIOD)
    rows = {k: v for k, v in summary.files.items() if k != "truth.csv"}
    return {
        "rows": rows,
        "customers": customers,
        "generate_s": round(generated, 1),
        "seconds": round(time.perf_counter() - started, 1),
    }


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


def tree_rss_gib(root: int) -> float:
    """Resident memory of process `root` and all its descendants (Spark's JVM is a grandchild), from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        parents[int(stat.parent.name)] = int(fields[1])
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, ppid in parents.items() if ppid in tree} - tree
        tree |= more
        grew = bool(more)
    pages = 0
    for pid in tree:
        try:
            pages += int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except (OSError, IndexError):
            continue
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**30


def run_phase(args: argparse.Namespace, phase: str, size: int, engine: str = "duckdb") -> dict[str, object]:
    """One phase in its own process; its peak memory is that process tree's largest sampled RSS (every 2 s)."""
    env = dict(os.environ, SIYU_HOME=str(Path(args.work) / str(size) / "home"), SIYU_ENGINE=engine)
    env.pop("SIYU_DATABASE_URL", None)
    env["SIYU_ENGINE_MEMORY_LIMIT"] = args.memory
    env["SIYU_SPARK_MASTER"] = args.spark_master
    env["SIYU_SPARK_CONF"] = f"spark.ui.enabled=false,spark.sql.shuffle.partitions={args.shuffle_partitions}"
    cmd = [sys.executable, __file__, "--phase", phase, "--size", str(size), "--work", args.work]
    peak = 0.0
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as child:
        sampled = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not sampled.wait(2):
                peak = max(peak, tree_rss_gib(child.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        stdout, stderr = child.communicate()
        sampled.set()
        sampler.join()
    if child.returncode:
        sys.exit(f"{phase} {size} on {engine} failed:\n{stderr[-3000:]}")
    out = dict(json.loads(stdout.strip().splitlines()[-1]))
    out["peak_gib"] = round(peak, 2)
    return out


def _cell(results: dict[tuple[int, str], dict[str, object]], size: int, engine: str, work: str) -> float | None:
    got = results.get((size, engine))
    return None if got is None else float(got[work])  # type: ignore[arg-type]


def _fmt(value: float | None, width: int, spec: str = ".2f", unit: str = "") -> str:
    return f"{'—':>{width}}" if value is None else f"{format(value, spec) + unit:>{width}}"


def report(sizes: list[int], results: dict[tuple[int, str], dict[str, object]]) -> None:
    """Times, Spark / DuckDB, and growth: each time over the same work's time at the previous size (with the
    data's growth beside it: linear growth has the two equal). A measurement that did not finish shows —."""
    print(f"\n{'customers':>10} {'work':<9} {'duckdb s':>9} {'spark s':>9} {'spark/duck':>10} "
          f"{'data grew':>9} {'duck grew':>9} {'spark grew':>10}")  # fmt: skip
    for i, size in enumerate(sizes):
        before = sizes[i - 1] if i else None
        for work in WORKS:
            d, s = _cell(results, size, "duckdb", work), _cell(results, size, "pyspark", work)
            d0 = _cell(results, before, "duckdb", work) if before else None
            s0 = _cell(results, before, "pyspark", work) if before else None
            ratio = s / d if d and s else None
            grew = size / before if before else None
            d_grew = d / d0 if d and d0 else None
            s_grew = s / s0 if s and s0 else None
            print(
                f"{size:>10,} {work:<9} {_fmt(d, 9)} {_fmt(s, 9)} {_fmt(ratio, 10, '.1f', '×')} "
                f"{_fmt(grew, 9, '.1f', '×')} {_fmt(d_grew, 9, '.2f', '×')} {_fmt(s_grew, 10, '.2f', '×')}"
            )
    for size in sizes:
        parts = [
            f"{e} start {results[(size, e)]['start']} s, peak {results[(size, e)].get('peak_gib', '?')} GiB"
            for e in ENGINES
            if (size, e) in results
        ]
        print(f"at {size:,}: " + "; ".join(parts) + " (start is not in the times above)")
    for size in sizes:
        numbers = [results[(size, e)]["numbers"] for e in ENGINES if (size, e) in results]
        if len(numbers) < len(ENGINES):
            print(f"numbers at {size:,}: only one engine finished: {numbers}")
            continue
        same = "same" if numbers[0] == numbers[1] else "DIFFERENT"
        print(
            f"numbers at {size:,}: {same} on both engines: {numbers[0]}"
            + ("" if same == "same" else f" vs {numbers[1]}")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,3000000", help="demo customers per run, comma-separated")
    parser.add_argument("--work", default="/work/bench-data/engines")
    parser.add_argument("--memory", default="6GB", help="DuckDB's memory limit and Spark's driver heap")
    parser.add_argument("--spark-master", default="local[2]")
    parser.add_argument("--shuffle-partitions", type=int, default=8)
    parser.add_argument("--remeasure", action="store_true", help="measure again what an earlier run measured")
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
    try:
        for size in sizes:
            marker = Path(args.work) / str(size) / "ready.json"
            if not marker.exists():
                print(f"building the {size:,}-customer workspace (once) …", flush=True)
                built = run_phase(args, "setup", size)
                marker.write_text(json.dumps(built))
            built = json.loads(marker.read_text())
            print(f"{size:,}: {built}", flush=True)
            for engine in ENGINES:
                kept = Path(args.work) / str(size) / f"{engine}.json"
                if args.remeasure or not kept.exists():
                    kept.write_text(json.dumps(run_phase(args, "measure", size, engine)))
                results[(size, engine)] = json.loads(kept.read_text())
                print(f"  {engine}: {results[(size, engine)]}", flush=True)
    finally:
        report(sizes, results)


if __name__ == "__main__":
    main()
