"""Predictive CLV benchmark: fit BG/NBD + Gamma-Gamma and predict 12-month CLV for the demo brand at
1M people (the workspace of bench_fast.py), with peak memory, and the ratio against the peer
library `lifetimes` (BetaGeoFitter + GammaGammaFitter) fitted and predicting on the same summary
data in the same run.

Each phase runs in its own process so its peak memory is its own.
Usage: .venv/bin/python benchmarks/bench_clv.py [--work /tmp/siyu-bench-fast]
(build the workspace first with benchmarks/bench_fast.py). Target: fit + predict ≤ 60 s, faster than the peer.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def phase(name: str, work: Path) -> dict[str, object]:
    os.environ["SIYU_HOME"] = str(work / "home")
    out: dict[str, object] = {}
    started = time.perf_counter()
    if name == "siyu":
        import pyarrow.parquet as pq

        from siyu.bootstrap import bootstrap
        from siyu.brands.settings import brand_settings
        from siyu.clv.service import fit, predict
        from siyu.clv.summary import summary
        from siyu.metrics.facts import Facts

        app = bootstrap()
        result = fit(app, "demo", unit="week")
        fitted = time.perf_counter()
        prediction = predict(app, "demo", horizon_months=12)
        out["fit_s"] = round(fitted - started, 2)
        out["predict_s"] = round(time.perf_counter() - fitted, 2)
        out["customers"] = result.bg.customers
        out["bgnbd"] = result.as_json()["bgnbd"]
        out["average_clv_fen"] = prediction["average_clv_fen"]
        out["seconds"] = round(time.perf_counter() - started, 2)
        out["peak_gib"] = round(_peak_gib(), 2)
        # The same summary for the peer (written after timing).
        facts = Facts(app, brand_settings(app, "demo"))
        pq.write_table(app.engine.to_arrow(summary(facts, result.calibration_end, "week")), work / "summary.parquet")
        return out
    if name == "lifetimes":
        import pandas as pd
        from lifetimes import BetaGeoFitter, GammaGammaFitter

        df = pd.read_parquet(work / "summary.parquet")
        started = time.perf_counter()
        bg = BetaGeoFitter().fit(df["x"], df["t_x"], df["T"])
        rep = df[df["x"] > 0]
        gg = GammaGammaFitter().fit(rep["x"], rep["mean_spend"])
        clv = gg.customer_lifetime_value(
            bg, df["x"], df["t_x"], df["T"], df["mean_spend"].fillna(0), time=12, discount_rate=0.01, freq="W"
        )
        out["customers"] = len(df)
        out["bgnbd"] = {k: round(float(v), 4) for k, v in bg.params_.items()}
        out["average_clv"] = round(float(clv.mean()), 2)
    out["seconds"] = round(time.perf_counter() - started, 2)
    out["peak_gib"] = round(_peak_gib(), 2)
    return out


def run(name: str, work: str, timeout: int) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--phase", name, "--work", work]
    try:
        done = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"seconds": float(timeout), "timed_out": True}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/tmp/siyu-bench-fast")
    parser.add_argument("--peer-timeout", type=int, default=900)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, Path(args.work))))
        return
    if not (Path(args.work) / "ready.json").exists():
        sys.exit(f"no workspace in {args.work}: run benchmarks/bench_fast.py first")
    ours = run("siyu", args.work, 3600)
    print(f"siyu: fit {ours['fit_s']} s + predict {ours['predict_s']} s = {ours['seconds']} s for "
          f"{ours['customers']:,} customers (target ≤ 60 s), peak {ours['peak_gib']} GiB")  # fmt: skip
    print(f"  BG/NBD {ours['bgnbd']}")
    peer = run("lifetimes", args.work, args.peer_timeout)
    late = " (timed out)" if peer.get("timed_out") else ""
    print(f"lifetimes: fit + predict {peer['seconds']} s{late}, peak {peer.get('peak_gib')} GiB; "
          f"params {peer.get('bgnbd')}")  # fmt: skip
    print(f"ratio siyu / lifetimes: {float(ours['seconds']) / float(peer['seconds']):.3f}")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
