"""Time the vectorised backward/forward sweep on the 33- and 69-bus feeders.

For 1 snapshot and 8,760 snapshots (every hour of a year, one sweep over all of
them), best of several repeats, plus the feeder build (tables → path matrix).

    .venv/bin/python benchmarks/powerflow.py [--repeat 7] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from adnstudy.config.schema import NetworkConfig
from adnstudy.network.feeder import load_feeder
from adnstudy.network.powerflow import run_powerflow


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for name in ("ieee33", "ieee69"):
        cfg = NetworkConfig(feeder=name)
        build = best_of(lambda cfg=cfg: load_feeder(cfg, Path("."), "bench"), args.repeat)
        fd = load_feeder(cfg, Path("."), "bench")
        for n_snap in (1, 8760):
            mult = rng.uniform(0.2, 1.0, size=(1, n_snap)) if n_snap > 1 else np.ones((1, 1))
            p = fd.buses["p_mw"].to_numpy()[:, None] * mult
            q = fd.buses["q_mvar"].to_numpy()[:, None] * mult
            res = run_powerflow(fd, p, q)
            seconds = best_of(lambda p=p, q=q, fd=fd: run_powerflow(fd, p, q), args.repeat)
            rows.append({
                "feeder": name, "buses": fd.n_bus, "snapshots": n_snap, "sweeps": res.iterations,
                "solve_s": seconds, "us_per_snapshot": 1e6 * seconds / n_snap, "build_s": build,
            })
    print(f"# backward/forward sweep, tol 1e-10 pu, best of {args.repeat}; {platform.processor() or platform.machine()}")
    print(f"{'feeder':<8} {'buses':>5} {'snapshots':>9} {'sweeps':>6} {'solve_s':>9} {'us/snap':>9} {'build_s':>8}")
    for r in rows:
        print(f"{r['feeder']:<8} {r['buses']:>5} {r['snapshots']:>9} {r['sweeps']:>6} {r['solve_s']:>9.4f} "
              f"{r['us_per_snapshot']:>9.1f} {r['build_s']:>8.4f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
