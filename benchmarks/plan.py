"""Planning benchmark: the MISOCP by number of typical days, the project's strategies against SCIP and ECOS_BB, one run.

For K = 2, 4, 8, 12 typical days of the shipped 33-bus case (density-peaks
clustering of the SimBench year), with and without the case's reliability
constraints, the same MISOCP is solved by

* ``default``: outer approximation — HiGHS MILP master over the investments,
  one Clarabel SOCP block per typical day — with branch-and-bound's root
  (relaxation and rounding) on a thread beside it, 2 threads (the project's strategy);
* ``branch_and_bound``: the project's branch-and-bound on Clarabel relaxations, 2 threads (the strategy before);
* ``ECOS_BB`` and ``SCIP`` through CVXPY, each in a child process with a time cap.

SCIP's cap is, by default, 1.1 × ECOS_BB's time on the same row (at least
10 s): the comparison is with the *faster* of the two, and a SCIP run cut off
there is slower than ECOS_BB whatever it would have taken.

Reported per solve: seconds (CVXPY's compilation included for every strategy),
objective, the proven gap (the project's strategies; CVXPY reports none for the
others), iterations or nodes, and the objective's difference to the default's.
Then, per K: the default's lead over the faster of ECOS_BB and SCIP against the
targets, the growth of its time with K, and its seconds by phase.

    .venv/bin/python benchmarks/plan.py [--ks 2 4 8 12] [--reliability both|with|without] [--cap 300]
        [--scip-cap auto|SECONDS] [--solvers default branch_and_bound ECOS_BB SCIP] [--case PATH] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cvxpy as cp

from adnstudy.checks import case_feeder
from adnstudy.cluster.typical_days import aggregate, day_data
from adnstudy.config.load import load_case
from adnstudy.config.schema import own_strategy
from adnstudy.data.mixes import feature_weights, net_load_mw
from adnstudy.data.profiles import load_profiles
from adnstudy.errors import SolveError
from adnstudy.problems.plan import build_plan_model, plan_data, solve_plan, with_reliability
from adnstudy.solve.mip import MipSettings
from adnstudy.stages.cluster import tables

ROOT = Path(__file__).resolve().parents[1]
#: The issue's targets: (reliability, K) -> (seconds the default must stay under, lead over the faster other solver)
TARGETS = {(True, 8): (5.0, 10.0), (True, 12): (None, 10.0), (False, 8): (2.0, None), (False, 12): (None, 5.0)}


def solve_row(data, solver: str, cap: float, gap: float) -> dict:
    t = time.perf_counter()
    try:
        result = solve_plan(data, MipSettings(name=solver, gap=gap, time_limit_s=cap, threads=2))
    except SolveError as exc:
        return {"solve_s": time.perf_counter() - t, "objective_usd": None, "gap": None, "search": None,
                "status": f"failed: {exc}"}
    rec = result.record
    search = rec.get("iterations") if rec.get("iterations") is not None else rec.get("nodes")
    return {"solve_s": result.timings["solve"], "objective_usd": rec["objective_usd"], "gap": rec.get("gap"),
            "search": search, "status": rec["status"], "phases": rec.get("seconds_by_phase"),
            "block_solves": rec.get("block_solves")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", default=str(ROOT / "cases" / "ieee33.yaml"))
    ap.add_argument("--ks", type=int, nargs="+", default=[2, 4, 8, 12])
    ap.add_argument("--cap", type=float, default=300.0, help="time cap per solve, seconds")
    ap.add_argument("--scip-cap", default="auto", help="SCIP's cap: 'auto' (1.1 x ECOS_BB's time, >= 10 s) or seconds")
    ap.add_argument("--solvers", nargs="+", default=["default", "branch_and_bound", "ECOS_BB", "SCIP"])
    ap.add_argument("--reliability", choices=["both", "with", "without"], default="both")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    t_all = time.perf_counter()
    case = load_case(args.case)
    feeder = case_feeder(case)
    kinds = {n: s.kind for n, s in case.config.profiles.series.items()}
    # the stage's features: series weighted by the MW behind them on feeders with existing generation or load mixes
    year = day_data(load_profiles(case), kinds, feature_weights(case, feeder), net_load_mw(case, feeder))
    gap = case.config.solver.mip_gap
    modes = {"both": [False, True], "with": [True], "without": [False]}[args.reliability]
    rows = []
    print(f"# {case.name}, gap target {gap}, cap {args.cap:g} s per solve, SCIP cap {args.scip_cap}")
    head = (f"{'rel':>3} {'K':>3} {'cones':>6} {'solver':<16} {'solve_s':>8} {'objective_usd':>14} {'gap':>9} "
            f"{'it/nodes':>8} {'vs_default':>11} status")
    print(head)
    print("-" * len(head))
    for reliable in modes:
        for k in args.ks:
            res, _ = aggregate(year, k)
            tb = tables(year, res)
            data = plan_data(case, feeder, tb["typical"], tb["weights"])
            if reliable:
                data = with_reliability(case, data)
            build_plan_model(data)  # warm CVXPY's imports and caches outside the timings
            cones = feeder.n_branch * data.n_snap
            by: dict[str, dict] = {}
            for solver in args.solvers:
                if not own_strategy(solver) and solver.upper() not in cp.installed_solvers():
                    print(f"{'yes' if reliable else 'no':>3} {k:>3} {cones:>6} {solver:<16} not installed")
                    continue
                cap = args.cap
                if solver.upper() == "SCIP" and "ECOS_BB" in by:
                    cap = (max(10.0, 1.1 * by["ECOS_BB"]["solve_s"]) if args.scip_cap == "auto"
                           else float(args.scip_cap))
                row = {"reliability": reliable, "k": k, "cones": cones, "solver": solver, "cap_s": cap,
                       **solve_row(data, solver, cap, gap)}
                ref = by.get("default", {}).get("objective_usd")
                row["vs_default"] = (row["objective_usd"] / ref - 1) if (ref and row["objective_usd"]) else None
                by[solver] = row
                rows.append(row)
                obj = f"{row['objective_usd']:,.0f}" if row["objective_usd"] else "-"
                g = f"{row['gap']:.1e}" if row["gap"] is not None else "-"
                vs = f"{row['vs_default']:+.2e}" if row["vs_default"] is not None else "-"
                status = row["status"] if row["objective_usd"] or row["solve_s"] < cap else f"time cap {cap:.0f} s"
                print(f"{'yes' if reliable else 'no':>3} {k:>3} {cones:>6} {solver:<16} {row['solve_s']:>8.1f} "
                      f"{obj:>14} {g:>9} {row['search'] if row['search'] is not None else '-'!s:>8} {vs:>11} "
                      f"{status}", flush=True)
    summary(rows, args.ks, modes)
    print(f"# total {time.perf_counter() - t_all:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str))


def summary(rows: list[dict], ks: list[int], modes: list[bool]) -> None:
    """The default against the faster of ECOS_BB and SCIP, its growth with K, and its phases."""
    print("\n# the default strategy: lead over the faster of ECOS_BB and SCIP, growth with K, seconds by phase")
    print(f"{'rel':>3} {'K':>3} {'default_s':>9} {'bnb_s':>7} {'other':<8} {'other_s':>8} {'lead':>6} "
          f"{'s/K':>6} {'x K=2':>6} {'start_s':>7} {'blocks_s':>8} {'master_s':>8} target")
    for reliable in modes:
        first = None
        for k in ks:
            by = {r["solver"]: r for r in rows if r["reliability"] == reliable and r["k"] == k}
            d = by.get("default")
            if d is None:
                continue
            # a run that crashed gave no plan and counts for nothing; one stopped at its cap counts with its
            # seconds (it is at least that slow)
            others = [r for s, r in by.items() if s.upper() in ("ECOS_BB", "SCIP")
                      and not str(r["status"]).startswith("failed: SCIP ended")]
            # a capped or failed run counts with its seconds: it is at least that slow
            fastest = min(others, key=lambda r: r["solve_s"]) if others else None
            lead = fastest["solve_s"] / d["solve_s"] if fastest else None
            first = first or d["solve_s"]
            ph = d.get("phases") or {}
            limit, need = TARGETS.get((reliable, k), (None, None))
            verdict = []
            if limit is not None:
                verdict.append(f"< {limit:g} s {'met' if d['solve_s'] < limit else 'NOT met'}")
            if need is not None and lead is not None:
                verdict.append(f">= {need:g}x {'met' if lead >= need else 'NOT met'}")
            bnb = by.get("branch_and_bound", {}).get("solve_s")
            print(f"{'yes' if reliable else 'no':>3} {k:>3} {d['solve_s']:>9.2f} "
                  f"{bnb if bnb is None else format(bnb, '.1f')!s:>7} "
                  f"{fastest['solver'] if fastest else '-':<8} {fastest['solve_s'] if fastest else float('nan'):>8.1f} "
                  f"{lead if lead is not None else float('nan'):>6.1f} {d['solve_s'] / k:>6.2f} "
                  f"{d['solve_s'] / first:>6.2f} {ph.get('start', float('nan')):>7.2f} "
                  f"{ph.get('blocks', float('nan')):>8.2f} {ph.get('master', float('nan')):>8.2f} {'; '.join(verdict)}")


if __name__ == "__main__":
    main()
