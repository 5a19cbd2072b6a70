"""Dispatch benchmark: stage-1 clearing of one typical day, centralised SOCP vs distributed ATC + ADMM.

For 3, 6 and 10 microgrids (MGs) on the 33-bus and the 69-bus feeders, the
day-ahead stage-1 clearing of one typical day (by default the one standing for
the most days of the year; ``--day`` picks another by its position) is solved

* centrally: one SOCP with every MG, trade reciprocity and the ADN (Clarabel);
* distributed: ATC between the ADN and the MGs, ADMM among the MGs, from the
  MGs' stand-alone schedules, with the case's penalties and tolerances.

The variants are built in memory from the shipped 33-bus case: its three MGs are
cycled as templates (nothing scaled) over distinct buses spread along the feeder,
named mg1..mgN; the 69-bus variant takes the network section of cases/ieee69.yaml.
The typical days are computed once (the profiles are the same for both feeders).

Reported per row: centralised build and solve seconds (solve includes CVXPY's
compilation), distributed setup seconds (agents built, stand-alone solves),
iterations and loop seconds, the relative objective gap
(distributed - centralised) / |centralised|, and the PCC mismatch and trade
reciprocity (MW) at the last iteration. A subproblem the solver fails on, or
``--max-iter`` reached, is reported in the row's status (not an exception); the
gap and residuals are then those of the last completed iteration.

    .venv/bin/python benchmarks/dispatch.py [--mgs 3 6 10] [--feeders ieee33 ieee69] [--day I]
        [--max-iter 500] [--json PATH]

``--stage DIR`` benchmarks the ``dispatch`` stage itself instead, on ``--case``'s
planned network (DIR holds its cluster and plan results; they are made there
first if missing): every typical day's market is solved twice in one run, by
the plain ATC + ADMM (no acceleration, the clearing started cold) and by the
stage's (Anderson-accelerated, the clearing started from the disagreement
market's state), with per day the iterations of both markets, the clearing's
loop seconds and its ratio to the centralised clearing's wall time (build and
solve); then the median and worst, and the whole stage's wall time
(``adnstudy dispatch``, tables and figures included) with the stage's settings.

    .venv/bin/python benchmarks/dispatch.py --stage /tmp/r33 [--case cases/ieee33.yaml]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from adnstudy.checks import case_feeder
from adnstudy.cluster.typical_days import aggregate, day_data
from adnstudy.config.load import Case, load_case
from adnstudy.data.mixes import feature_weights, net_load_mw
from adnstudy.data.profiles import load_profiles
from adnstudy.data.typical import TypicalDays, typical_days
from adnstudy.errors import SolveError
from adnstudy.problems.dispatch import ADNAgent, DayData, centralised_model, dispatch_days
from adnstudy.problems.microgrid import MicrogridAgent
from adnstudy.solve.conic import solve_conic
from adnstudy.solve.coordination import coordinate
from adnstudy.stages.cluster import tables

ROOT = Path(__file__).resolve().parents[1]

#: PCC buses, in order of use: end-of-lateral buses first, then mid-feeder ones (never the substation, bus 1).
#: The first three of the 33-bus list are the shipped case's.
MG_BUSES = {
    "ieee33": [18, 25, 33, 10, 14, 22, 29, 6, 16, 31],
    # the shipped 69-bus MG buses first; all on branches rated >= 0.6 MVA (the lateral ends are not)
    "ieee69": [18, 50, 62, 12, 49, 60, 10, 14, 56, 16],
}


def variant(base: Case, network_case: Case, n_mgs: int) -> Case:
    """The base case with ``n_mgs`` MGs (the base's MGs cycled as templates) on ``network_case``'s feeder."""
    feeder = network_case.config.network.feeder
    buses = MG_BUSES[feeder]
    if n_mgs > len(buses):
        raise SystemExit(f"at most {len(buses)} MGs on {feeder}")
    templates = base.config.microgrids or []
    mgs = [templates[i % len(templates)].model_copy(update={"name": f"mg{i + 1}", "bus": buses[i]})
           for i in range(n_mgs)]
    # candidates and reliability name branches of the 33-bus feeder and are not used by dispatch
    cfg = base.config.model_copy(update={
        "name": f"{feeder}_mg{n_mgs}", "network": network_case.config.network, "microgrids": mgs,
        "candidates": None, "reliability": None,
    })
    return replace(base, config=cfg)


def run_central(day: DayData) -> dict:
    t = time.perf_counter()
    c = centralised_model(day)
    build = time.perf_counter() - t
    t = time.perf_counter()
    try:
        solve_conic(c.problem, what="centralised clearing")
    except SolveError as exc:
        return {"central_build_s": build, "central_solve_s": time.perf_counter() - t, "central_obj_usd": None,
                "central_status": "failed", "central_error": str(exc)}
    return {"central_build_s": build, "central_solve_s": time.perf_counter() - t,
            "central_obj_usd": float(c.problem.value), "central_status": c.problem.status}


def run_distributed(case: Case, day: DayData, base_mva: float, max_iter: int) -> dict:
    cfg = case.config.market.coordination
    B = base_mva
    history: list[dict[str, float]] = []
    t = time.perf_counter()
    out: dict = {"dist_setup_s": None, "dist_iterations": None, "dist_s": None, "dist_obj_usd": None,
                 "pcc_mismatch_mw": None, "reciprocity_mw": None, "converged": False}
    try:
        adn = ADNAgent(day.adn)
        mgs = [MicrogridAgent(d) for d in day.mgs]
        initial = [a.solve_alone() for a in mgs]
        out["dist_setup_s"] = time.perf_counter() - t
        t = time.perf_counter()
        coordinate(adn, mgs, day.pairs, initial, hours=day.adn.hours, base_mva=B, rho_pcc=cfg.rho_pcc_usd_per_mw2h * B**2,
                         rho_trade=cfg.rho_trade_usd_per_mw2h * B**2, tol_pu=cfg.tol_mw / B,
                         tol_dual_pu=cfg.dual_tol_mw / B, tol_objective=cfg.tol_objective, max_iter=max_iter, on_iteration=history.append)
        out.update(dist_status="converged", converged=True)
    except SolveError as exc:
        msg = str(exc)
        out["dist_error"] = msg
        # the table shows what failed; the solver's message is in the JSON
        out["dist_status"] = "not converged" if "did not converge" in msg else f"failed: {msg.split(':')[0]}"
    if history:
        last = history[-1]
        out.update(dist_iterations=int(last["iteration"]), dist_s=time.perf_counter() - t,
                   dist_obj_usd=last["objective_usd"], pcc_mismatch_mw=last["pcc_mismatch_mw"],
                   reciprocity_mw=last["reciprocity_mw"], primal_residual_mw=last["primal_residual"],
                   dual_residual_mw=last["dual_residual"])
    return out


def year_typical_days(case: Case) -> TypicalDays:
    kinds = {n: s.kind for n, s in case.config.profiles.series.items()}
    feeder = case_feeder(case)
    # the stage's features: series weighted by the MW behind them on feeders with existing generation or load mixes
    year = day_data(load_profiles(case), kinds, feature_weights(case, feeder), net_load_mw(case, feeder))
    res, _ = aggregate(year, case.config.clustering.k)
    tb = tables(year, res)
    return typical_days(case, tb["typical"], tb["weights"])


def stage_benchmark(case_path: Path, out: Path) -> None:
    """Per typical day: plain vs accelerated market, then the whole dispatch stage (module docstring)."""
    from adnstudy.stages.dispatch import dispatch_inputs, dispatch_stage, solve_day

    case = load_case(case_path)
    if not (out / "plan").is_dir():
        from adnstudy.stages.cluster import cluster_stage
        from adnstudy.stages.plan import plan_stage
        cluster_stage(case, out)
        plan_stage(case, out)
    days, _, _ = dispatch_inputs(case, out)
    print(f"# {case.name}: {len(days)} typical days on the planned network; per day, plain ATC + ADMM | accelerated")
    head = (f"{'day':>3} {'dis_it':>6} {'clr_it':>6} {'clr_s':>6} {'ratio':>6} | {'dis_it':>6} {'clr_it':>6} "
            f"{'clr_s':>6} {'ratio':>6} {'ms/it':>6} {'cen_s':>6} {'gap':>9}")
    print(head)
    print("-" * len(head))
    rows = []
    for day in days:
        plain = solve_day(day, case, accelerate=False)
        fast = solve_day(day, case)
        row = {"scenario": day.scenario}
        for tag, r in (("plain", plain), ("fast", fast)):
            row.update({f"{tag}_disagreement_it": r.notrade.iterations, f"{tag}_clearing_it": r.clearing.iterations,
                        f"{tag}_clearing_s": r.clearing.seconds, f"{tag}_central_s": r.central.seconds,
                        f"{tag}_ratio": r.clearing.seconds / r.central.seconds,
                        f"{tag}_gap": (r.clearing.objective_usd - r.central.objective_usd) / abs(r.central.objective_usd)})
        rows.append(row)
        print(f"{day.scenario:>3} {row['plain_disagreement_it']:>6} {row['plain_clearing_it']:>6} "
              f"{row['plain_clearing_s']:>6.2f} {row['plain_ratio']:>6.1f} | {row['fast_disagreement_it']:>6} "
              f"{row['fast_clearing_it']:>6} {row['fast_clearing_s']:>6.2f} {row['fast_ratio']:>6.1f} "
              f"{1e3 * row['fast_clearing_s'] / row['fast_clearing_it']:>6.0f} {row['fast_central_s']:>6.2f} "
              f"{row['fast_gap']:>+9.1e}", flush=True)
    for tag in ("plain", "fast"):
        it = np.array([r[f"{tag}_clearing_it"] for r in rows])
        ratio = np.array([r[f"{tag}_ratio"] for r in rows])
        print(f"# {tag:>5}: clearing iterations median {np.median(it):g}, worst {it.max()}; distributed/centralised "
              f"wall time median {np.median(ratio):.1f}x, worst {ratio.max():.1f}x; loop "
              f"{sum(r[f'{tag}_clearing_s'] for r in rows):.1f} s")
    t = time.perf_counter()
    dispatch_stage(case, out)
    print(f"# whole dispatch stage (accelerated, tables and figures): {time.perf_counter() - t:.1f} s")


def fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", default=str(ROOT / "cases" / "ieee33.yaml"), help="base case (MG templates, market)")
    ap.add_argument("--mgs", type=int, nargs="+", default=[3, 6, 10])
    ap.add_argument("--feeders", nargs="+", choices=sorted(MG_BUSES), default=["ieee33", "ieee69"])
    ap.add_argument("--day", type=int, help="position of the typical day (default: the one with the largest weight)")
    ap.add_argument("--max-iter", type=int, default=500, help="ATC/ADMM iteration limit (the case's is 300)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--stage", type=Path, metavar="DIR",
                    help="benchmark the dispatch stage of --case in DIR (its cluster and plan results) instead")
    args = ap.parse_args()
    if args.stage is not None:
        stage_benchmark(Path(args.case), args.stage)
        return
    t_all = time.perf_counter()
    base = load_case(args.case)
    networks = {name: load_case(ROOT / "cases" / f"{name}.yaml") for name in MG_BUSES}
    td = year_typical_days(base)
    k = int(np.argmax(td.days_weight)) if args.day is None else args.day
    if not 0 <= k < td.n_days:
        raise SystemExit(f"--day must be in 0..{td.n_days - 1}")
    coord = base.config.market.coordination
    print(f"# {base.name} MGs, typical day {k} of {td.n_days} (scenario {td.scenarios[k]}, "
          f"{td.days_weight[k]:g} days); tol {coord.tol_mw:g} MW, rho {coord.rho_pcc_usd_per_mw2h:g}/"
          f"{coord.rho_trade_usd_per_mw2h:g} USD/MW2h, max_iter {args.max_iter}")
    head = (f"{'feeder':<7} {'MGs':>3} {'c_build_s':>9} {'c_solve_s':>9} {'central_usd':>12} {'d_setup_s':>9} "
            f"{'iters':>5} {'d_loop_s':>8} {'gap':>9} {'pcc_mw':>8} {'recip_mw':>8} status")
    print(head)
    print("-" * len(head))
    rows = []
    for name in args.feeders:
        for n in args.mgs:
            case = variant(base, networks[name], n)
            row: dict = {"feeder": name, "mgs": n, "day": k, "scenario": int(td.scenarios[k])}
            feeder = case_feeder(case)
            day = dispatch_days(case, feeder, td)[k]
            row.update(run_central(day))
            row.update(run_distributed(case, day, feeder.base_mva, args.max_iter))
            c, d = row["central_obj_usd"], row["dist_obj_usd"]
            row["gap"] = (d - c) / abs(c) if c is not None and d is not None and c != 0 else None
            if c is None:
                status = f"centralised {row['central_status']}; distributed {row['dist_status']}"
            elif row["dist_status"].startswith("failed") and row["dist_iterations"]:
                status = f"{row['dist_status']} (iteration {row['dist_iterations'] + 1})"
            else:
                status = row["dist_status"]
            rows.append(row)
            print(f"{name:<7} {n:>3} {row['central_build_s']:>9.2f} {row['central_solve_s']:>9.2f} "
                  f"{fmt(c, ',.2f'):>12} {fmt(row['dist_setup_s'], '.2f'):>9} {fmt(row['dist_iterations'], 'd'):>5} "
                  f"{fmt(row['dist_s'], '.1f'):>8} {fmt(row['gap'], '+.1e'):>9} "
                  f"{fmt(row['pcc_mismatch_mw'], '.1e'):>8} {fmt(row['reciprocity_mw'], '.1e'):>8} {status}",
                  flush=True)
    print(f"# total {time.perf_counter() - t_all:.1f} s")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
