"""Sweep benchmark: 8 plan and 8 dispatch variants of the 33-bus case, a shell loop vs ``adnstudy sweep``.

For each study the same stage runs are made twice, each as a user would:

* **serial**: one ``adnstudy <stage> case --set ...`` process after another, with the case's default threads
  (the branch-and-bound's ``solver.threads: 2``); the stages that variants share (the clustering, and for the
  market the plan of each set of bargaining powers) are run once and copied, as a careful user would;
* **sweep**: ``adnstudy sweep`` on a LocalCluster of ``--workers`` worker processes (1 thread per task on
  2 cores), sharing the same stages by itself.

Then a sweep of 16 trivial variants (the 33-bus peak power flow, ~0.15 s a stage) gives the overhead per
task: the sweep's wall time minus its cluster start, over the tasks each worker ran, minus the stage's own
seconds.

    .venv/bin/python benchmarks/sweep.py [--workers 2] [--only plan dispatch overhead] [--json PATH]

Nothing else should run on the machine meanwhile: both sides use every core.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
CASE = ROOT / "cases" / "ieee33.yaml"
ADNSTUDY = [sys.executable, "-m", "adnstudy"]

PLAN_GRID = {"candidates.max_penetration": [0.4, 0.6, 0.8, 1.0], "reliability.saidi_limit_h": [5.8, 8.0]}
FEES = [0.0, 5.0, 15.0, 40.0]
POWERS = {"symmetric": {}, "generalized": {"microgrids[mg1].bargaining_power": 2.0,
                                           "microgrids[mg3].bargaining_power": 0.5}}


def adnstudy(*args: object) -> float:
    """Run one command; its wall seconds (a failure stops the benchmark)."""
    t = time.perf_counter()
    done = subprocess.run([*ADNSTUDY, *map(str, args)], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"adnstudy {' '.join(map(str, args))}: exit {done.returncode}\n{done.stderr}")
    return time.perf_counter() - t


def flags(sets: dict[str, object]) -> list[str]:
    return [x for p, v in sets.items() for x in ("--set", f"{p}={v}")]


def sweep(path: Path, out: Path, workers: int) -> dict[str, object]:
    wall = adnstudy("sweep", path, "--out", out, "--workers", workers)
    record = json.loads((out / "sweep.json").read_text())
    table = pd.read_parquet(out / "sweep.parquet")
    assert (table["status"] == "ok").all(), table[["variant", "status", "error"]]
    return {"wall_s": wall, "record": record, "table": table}


def plan_study(work: Path, workers: int) -> dict[str, object]:
    variants = [dict(zip(PLAN_GRID, combo, strict=True))
                for combo in pd.MultiIndex.from_product(list(PLAN_GRID.values()))]
    serial = work / "plan-serial"
    t = time.perf_counter()
    stage_s = {"cluster": adnstudy("cluster", CASE, "--out", serial / "shared")}
    plans = []
    for i, sets in enumerate(variants):
        folder = serial / f"v{i}"
        shutil.copytree(serial / "shared" / "cluster", folder / "cluster")
        plans.append(adnstudy("plan", CASE, "--out", folder, *flags(sets)))
    serial_s = time.perf_counter() - t
    path = work / "plan.yaml"
    path.write_text(f"case: {CASE}\nstages: [cluster, plan]\ngrid:\n"
                    + "".join(f"  {p}: {v}\n" for p, v in PLAN_GRID.items()))
    s = sweep(path, work / "plan-sweep", workers)
    totals = [json.loads((serial / f"v{i}" / "plan" / "manifest.json").read_text())["summary"]["total_usd"]
              for i in range(len(variants))]
    gap = max(abs(a - b) / abs(b) for a, b in zip(s["table"]["plan.total_usd"], totals, strict=True))
    return {"variants": len(variants), "serial_s": serial_s, "serial_stage_s": {**stage_s, "plan": plans},
            "sweep": s, "max_rel_difference_vs_serial": gap}


def dispatch_study(work: Path, workers: int) -> dict[str, object]:
    serial = work / "dispatch-serial"
    t = time.perf_counter()
    adnstudy("cluster", CASE, "--out", serial / "shared")
    for name, sets in POWERS.items():  # the plan reads the microgrids section: one per set of powers
        shutil.copytree(serial / "shared" / "cluster", serial / name / "cluster")
        adnstudy("plan", CASE, "--out", serial / name, *flags(sets))
    dispatches = []
    for name, sets in POWERS.items():
        for fee in FEES:
            folder = serial / f"{name}-{fee}"
            for stage in ("cluster", "plan"):
                shutil.copytree(serial / name / stage, folder / stage)
            dispatches.append(adnstudy("dispatch", CASE, "--out", folder,
                                       *flags({**sets, "market.fee_usd_per_mwh": fee})))
    serial_s = time.perf_counter() - t
    s = sweep(ROOT / "cases" / "sweeps" / "ieee33_dispatch.yaml", work / "dispatch-sweep", workers)
    gains = [json.loads((serial / f"{n}-{fee}" / "dispatch" / "manifest.json").read_text())["summary"]
             ["total_gain_usd"] for n in POWERS for fee in FEES]
    gap = max(abs(a - b) / max(abs(b), 1.0) for a, b in zip(s["table"]["dispatch.total_gain_usd"], gains, strict=True))
    return {"variants": len(gains), "serial_s": serial_s, "serial_dispatch_s": dispatches, "sweep": s,
            "max_rel_difference_vs_serial": gap}


def overhead_study(work: Path, workers: int) -> dict[str, object]:
    path = work / "pf.yaml"
    path.write_text(f"case: {CASE}\nstages: [powerflow]\ngrid:\n  network.load_scale: "
                    f"{[round(0.8 + 0.025 * i, 3) for i in range(16)]}\n")
    s = sweep(path, work / "pf-sweep", workers)
    table, record = s["table"], s["record"]
    tasks = 2 * len(table)  # a stage task and a finishing task per variant
    stage = float(table["powerflow.stage_seconds"].mean())
    running = record["seconds"] - record["startup_seconds"]
    return {"variants": len(table), "tasks": tasks, "wall_s": s["wall_s"], "run_s": record["seconds"],
            "startup_s": record["startup_seconds"], "stage_s_mean": stage,
            "overhead_per_variant_s": running * workers / len(table) - stage}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--only", nargs="+", default=["overhead", "plan", "dispatch"])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="adnstudy-sweep-bench-") as tmp:
        work = Path(tmp)
        if "overhead" in args.only:
            o = overhead_study(work, args.workers)
            out["overhead"] = o
            print(f"overhead: {o['variants']} power-flow variants on {args.workers} workers: command {o['wall_s']:.1f} s "
                  f"(sweep {o['run_s']:.1f} s, of which cluster start {o['startup_s']:.1f} s), stage {o['stage_s_mean']:.3f} s, "
                  f"overhead {o['overhead_per_variant_s']:.2f} s per variant", flush=True)
        for name, study in (("plan", plan_study), ("dispatch", dispatch_study)):
            if name not in args.only:
                continue
            r = study(work, args.workers)
            s = r.pop("sweep")
            rec = s["record"]
            r["sweep_wall_s"] = s["wall_s"]
            r["sweep_record"] = rec
            r["sweep_table"] = s["table"].to_dict("records")
            r["speedup"] = r["serial_s"] / s["wall_s"]
            out[name] = r
            print(f"{name}: {r['variants']} variants; serial {r['serial_s']:.1f} s, sweep {s['wall_s']:.1f} s on "
                  f"{rec['workers']} workers ({rec['stage_runs']} stage runs for {rec['stage_uses']} variant stages, "
                  f"threads/task {sorted(set(rec['threads_per_task'].values()))}): speed-up {r['speedup']:.2f}x; "
                  f"max relative difference vs serial {r['max_rel_difference_vs_serial']:.1e}", flush=True)
            stages = [c for c in s["table"].columns if c.endswith(".stage_seconds")]
            print("  sweep stage seconds (mean): " + ", ".join(
                f"{c.split('.')[0]} {s['table'][c].mean():.1f}" for c in stages), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
