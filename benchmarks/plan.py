"""Planning benchmark: build and solve seconds by number of typical days, three strategies, one run.

For K = 2, 4, 8, 12 typical days of the shipped 33-bus case (density-peaks
clustering of the SimBench year), the same MISOCP is solved by

* ``default``: branch-and-bound on Clarabel relaxations, 2 threads (the project's strategy);
* ``SCIP`` and ``ECOS_BB`` through CVXPY, each in a child process with a time cap;

without (default) or with (``--reliability``) the case's reliability constraints.

Reported: build and solve seconds, objective, the gap proven (default only; the
others report none through CVXPY), nodes, and the difference to the default's
objective.

    .venv/bin/python benchmarks/plan.py [--ks 2 4 8 12] [--cap 300] [--solvers default SCIP ECOS_BB]
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
from adnstudy.data.mixes import feature_weights, net_load_mw
from adnstudy.data.profiles import load_profiles
from adnstudy.errors import SolveError
from adnstudy.problems.plan import build_plan_model, plan_data, solve_plan, with_reliability
from adnstudy.solve.mip import MipSettings
from adnstudy.stages.cluster import tables

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", default=str(ROOT / "cases" / "ieee33.yaml"))
    ap.add_argument("--ks", type=int, nargs="+", default=[2, 4, 8, 12])
    ap.add_argument("--cap", type=float, default=300.0, help="time cap per solve, seconds")
    ap.add_argument("--solvers", nargs="+", default=["default", "SCIP", "ECOS_BB"])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--reliability", action="store_true", help="with the case's reliability constraints")
    args = ap.parse_args()
    case = load_case(args.case)
    feeder = case_feeder(case)
    kinds = {n: s.kind for n, s in case.config.profiles.series.items()}
    # the stage's features: series weighted by the MW behind them on feeders with existing generation or load mixes
    year = day_data(load_profiles(case), kinds, feature_weights(case, feeder), net_load_mw(case, feeder))
    rows = []
    rel = "with reliability constraints" if args.reliability else "without reliability"
    print(f"# {case.name}, {rel}, gap target {case.config.solver.mip_gap}, cap {args.cap:g} s per solve")
    print(f"{'K':>3} {'cones':>6} {'solver':<8} {'build_s':>8} {'solve_s':>8} {'objective_usd':>14} {'gap':>9} {'nodes':>6} {'vs_default':>11} status")
    for k in args.ks:
        res, _ = aggregate(year, k)
        tb = tables(year, res)
        data = plan_data(case, feeder, tb["typical"], tb["weights"])
        if args.reliability:
            data = with_reliability(case, data)
        t = time.perf_counter()
        build_plan_model(data)
        build_one = time.perf_counter() - t
        cones = feeder.n_branch * data.n_snap
        ref = None
        for solver in args.solvers:
            if solver != "default" and solver.upper() not in cp.installed_solvers():
                print(f"{k:>3} {cones:>6} {solver:<8} not installed")
                continue
            row = {"k": k, "cones": cones, "solver": solver, "build_s": build_one}
            t = time.perf_counter()
            try:
                result = solve_plan(data, MipSettings(name=solver, gap=case.config.solver.mip_gap,
                                                      time_limit_s=args.cap, threads=2))
                record = result.record
                row.update(solve_s=result.timings["solve"], objective_usd=record["objective_usd"], gap=record["gap"],
                           nodes=record["nodes"], status=record["status"])
            except SolveError as exc:
                row.update(solve_s=time.perf_counter() - t, objective_usd=None, gap=None, nodes=None,
                           status=f"failed: {exc}")
            if solver == "default":
                ref = row["objective_usd"]
            diff = (row["objective_usd"] / ref - 1) if (ref and row["objective_usd"]) else None
            row["vs_default"] = diff
            rows.append(row)
            obj = f"{row['objective_usd']:,.0f}" if row["objective_usd"] else "-"
            gap = f"{row['gap']:.1e}" if row["gap"] is not None else "-"
            nodes = row["nodes"] if row["nodes"] is not None else "-"
            vs = f"{diff:+.2e}" if diff is not None else "-"
            print(f"{k:>3} {cones:>6} {solver:<8} {row['build_s']:>8.2f} {row['solve_s']:>8.1f} {obj:>14} {gap:>9} {nodes!s:>6} {vs:>11} {row['status']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
