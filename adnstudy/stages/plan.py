"""``adnstudy plan``: RES siting and sizing over the typical days, verified by AC power flow.

Reads ``cluster/typical`` and ``cluster/weights``; writes ``investment``,
``bus``, ``branch``, ``cost`` (``docs/results.md``), two figures and a manifest
with the solve record (status, bound, gap, nodes, seconds) and the AC check.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import cvxpy as cp
import numpy as np
import pandas as pd

from adnstudy.config.load import Case
from adnstudy.config.references import case_feeder
from adnstudy.errors import SolveError
from adnstudy.formulation.reliability import reliability_matrices
from adnstudy.formulation.verify import verify_against_ac
from adnstudy.problems.plan import (
    COST_SCALE,
    RELAXABLE,
    PlanData,
    PlanModel,
    build_plan_model,
    coarse_data,
    plan_data,
    round_plan,
    with_reliability,
)
from adnstudy.reliability.evaluate import ReliabilityResult, evaluate, reliability_tables
from adnstudy.results.store import StageWriter, manifest_digest, read_table
from adnstudy.solve.bnb import (
    CLARABEL_FINAL_OPTIONS,
    CLARABEL_OPTIONS,
    OK,
    IntegerInfeasible,
    branch_and_bound,
)
from adnstudy.solve.native import solve_native

log = logging.getLogger(__name__)

RELAX_HINT = {
    "voltage": "the voltage limits cannot be met: widen network.v_min_pu / v_max_pu or the substation "
    "range network.v_substation_range_pu (the 33-bus base case reaches 0.913 pu at 1.0 pu)",
    "current": "the branch ratings cannot be met: raise rating_a or network.branch_rating_factor",
    "substation": "the substation import/export limits cannot be met: raise network.p_import_max_mw / p_export_max_mw",
    "caps": "the feeder-wide caps leave no feasible plan: raise candidates.max_penetration or candidates.budget_usd",
    "reliability": "the reliability constraint (reliability.saidi_limit_h / eens_limit_mwh) cannot be met even "
    "with every candidate built and islanding: relax the limit, add switches, or add candidates",
}


def load_plan_inputs(case: Case, out_dir: Path) -> PlanData:
    case.require("plan")
    feeder = case_feeder(case)
    typical = read_table(out_dir, "cluster", "typical", case)
    weights = read_table(out_dir, "cluster", "weights", case)
    return plan_data(case, feeder, typical, weights)


def diagnose_infeasible(data: PlanData) -> str:
    """Name the constraint family whose removal makes the continuous relaxation feasible."""
    for family in RELAXABLE:
        model = build_plan_model(data, relax=frozenset({family}))
        try:
            model.problem.solve(solver="CLARABEL", **CLARABEL_OPTIONS)
        except cp.SolverError:
            continue
        if model.problem.status in OK:
            return RELAX_HINT[family]
    return "no single constraint family explains it; check the loads, ratings and voltage limits together"


def coarse_patterns(data: PlanData) -> list[list[np.ndarray]]:
    """Integer patterns from the relaxation of the one-day (weighted mean) model; none if it fails."""
    coarse = build_plan_model(coarse_data(data))
    try:
        coarse.problem.solve(solver="CLARABEL", **CLARABEL_OPTIONS)
    except cp.SolverError:
        return []
    if coarse.problem.status not in OK:
        return []
    return round_plan(coarse, coarse.rounding_inputs())


def solve_plan(
    data: PlanData, *, solver: str, gap: float, time_limit: float | None, threads: int, verbose: bool = False
) -> tuple[PlanModel, dict[str, Any], dict[str, float]]:
    """Solve the MISOCP; return a relaxed model holding the plan's full solution, the solve record, timings."""
    import time

    timings: dict[str, float] = {}
    t = time.perf_counter()
    if solver.lower() == "default":
        models = [build_plan_model(data) for _ in range(max(1, threads))]
        timings["build"] = time.perf_counter() - t
        pool = iter(models)
        t = time.perf_counter()
        initial = coarse_patterns(data) if data.n_days > 1 else None
        try:
            res = branch_and_bound(
                lambda: next(pool), rounding=round_plan, gap=gap, time_limit=time_limit, threads=threads,
                progress=(lambda row: log.info("B&B %s", row)) if verbose else None, initial=initial,
            )
        except IntegerInfeasible as exc:
            limits = {k: v for k, v in data.reliability_limits.items() if v is not None} if data.reliability else {}
            if limits:
                named = ", ".join(f"{k} <= {v:g}" for k, v in limits.items())
                raise SolveError(
                    f"the planning model has no feasible 0-1 plan ({exc}); the likely cause is the reliability "
                    f"constraint ({named}): islands succeed only as whole areas, so the relaxation's partial islands "
                    "reach limits no real plan can; relax reliability.saidi_limit_h / eens_limit_mwh"
                ) from None
            raise SolveError(f"the planning model has no feasible 0-1 plan: {exc}; check min_mw, modules and caps") from None
        except SolveError as exc:
            if "relaxation could not be solved" in str(exc):
                status = models[0].problem.status
                if status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
                    raise SolveError(f"the planning model is infeasible (Clarabel: {status}): {diagnose_infeasible(data)}") from None
            raise
        timings["solve"] = time.perf_counter() - t
        integers = res.incumbent
        record = {
            "name": "default", "strategy": "branch-and-bound on Clarabel SOCP relaxations",
            "status": res.status, "objective_usd": res.objective / COST_SCALE, "bound_usd": res.bound / COST_SCALE,
            "gap": res.gap, "gap_target": gap, "nodes": res.nodes, "heuristic_solves": res.heuristic_solves,
            "failed_nodes": res.failed_nodes, "threads": threads, "time_limit_s": time_limit,
        }
        final = models[0]
    else:
        out = solve_native(lambda: build_plan_model(data, integral="native"), solver, gap=gap,
                           time_limit=time_limit, threads=threads, verbose=verbose)
        timings["solve"] = time.perf_counter() - t
        if out["status"] in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
            raise SolveError(f"the planning model is infeasible ({solver}: {out['status']}): {diagnose_infeasible(data)}")
        if out["status"] not in OK or any(v is None for v in out["integers"]):
            raise SolveError(f"{solver} returned no plan (status: {out['status']})")
        integers = out["integers"]
        record = {
            "name": solver.upper(), "strategy": "native mixed-integer solve through CVXPY",
            "status": out["status"], "objective_usd": float(out["objective"]) / COST_SCALE, "bound_usd": None,
            "gap": None, "gap_target": gap, "nodes": None, "threads": threads, "time_limit_s": time_limit,
        }
        t = time.perf_counter()
        final = build_plan_model(data)
        timings["build"] = time.perf_counter() - t
    # the plan's full operating point: the continuous model with the integers fixed
    t = time.perf_counter()
    final.fix_integers(integers)
    with warnings.catch_warnings():  # "optimal_inaccurate" is reported, and the AC check judges the point
        warnings.simplefilter("ignore", UserWarning)
        final.problem.solve(solver="CLARABEL", **CLARABEL_FINAL_OPTIONS)
    if final.problem.status not in OK:
        raise SolveError(f"re-solving the chosen plan failed (Clarabel: {final.problem.status})")
    if final.reliability is not None and final.reliability.island.size:
        # island success as the evaluator rules it for the final capacities (a success the search left
        # at 0 only shortens outages, so every limit still holds); repeat if capacities move across a threshold
        for _ in range(3):
            rule = final.islands_by_rule()
            if np.array_equal(rule, np.round(final.reliability.island.value)):
                break
            fixed = [np.round(v.value) for v in final.integer_vars()[:-1]] + [rule]
            final.fix_integers(fixed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                final.problem.solve(solver="CLARABEL", **CLARABEL_FINAL_OPTIONS)
            if final.problem.status not in OK:
                raise SolveError(f"re-solving the chosen plan with its islands failed (Clarabel: {final.problem.status})")
    timings["resolve"] = time.perf_counter() - t
    record["resolved_objective_usd"] = final.objective_usd
    record["resolve_status"] = final.problem.status
    return final, record, timings


def check_reliability_consistency(model: PlanModel, result: ReliabilityResult, rtol: float = 1e-6) -> dict[str, float]:
    """The optimiser's linear reliability model against the fault-enumeration evaluator; raise if they differ."""
    rel = model.reliability
    assert rel is not None
    ours = {"SAIFI": rel.saifi, "SAIDI": float(rel.saidi.value), "EENS": float(rel.eens.value)}
    theirs = result.indices()
    worst = 0.0
    for name, v in ours.items():
        diff = abs(v - theirs[name]) / max(abs(theirs[name]), 1e-12)
        worst = max(worst, diff)
        if diff > rtol:
            raise SolveError(
                f"reliability check failed: the plan's {name} is {v:.9g} in the optimiser but {theirs[name]:.9g} "
                "by fault enumeration; the linear reliability model does not describe this network (please report it)"
            )
    bus_diff = np.max(np.abs(np.asarray(rel.unavail.value) - result.unavailability_h_per_yr))
    scale = max(np.max(result.unavailability_h_per_yr), 1e-12)
    if bus_diff / scale > rtol:
        raise SolveError(f"reliability check failed: bus unavailability differs by {bus_diff:.3g} h/yr between "
                         "the optimiser and fault enumeration")
    return {"max_rel_difference": worst, "max_bus_unavailability_difference_h": float(bus_diff)}


def plan_stage(
    case: Case, out_dir: Path, run_key: str | None = None, solver: str | None = None,
    time_limit: float | None = None, verbose: bool = False, reliability: bool = True,
) -> dict[str, Any]:
    data = load_plan_inputs(case, out_dir)
    if reliability and case.config.reliability is not None:
        data = with_reliability(case, data)
        saifi_limit = data.reliability_limits.get("SAIFI")
        if saifi_limit is not None:
            saifi = reliability_matrices(data.reliability)
            value = float(data.reliability.customers @ saifi.failures / data.reliability.customers.sum())
            if value > saifi_limit:
                raise SolveError(
                    f"the reliability constraint SAIFI <= {saifi_limit} cannot be met: SAIFI is {value:.4g} "
                    "whatever the plan (island DG shortens outages but does not prevent them); add fuses or "
                    "raise reliability.saifi_limit"
                )
    scfg = case.config.solver
    name = solver or scfg.name
    limit = time_limit if time_limit is not None else scfg.time_limit_s
    with StageWriter(out_dir, "plan", case, inputs={"cluster": manifest_digest(out_dir, "cluster")}) as w:
        model, record, timings = solve_plan(data, solver=name, gap=scfg.mip_gap, time_limit=limit,
                                            threads=scfg.threads, verbose=verbose)
        for k, v in timings.items():
            w.timings[k] = v
        with w.phase("verify"):
            p_bus, q_bus = net_loads(model)
            check = verify_against_ac(data.feeder, model.flow, p_bus, q_bus)
        rel_record = None
        if model.reliability is not None:
            with w.phase("reliability"):
                built = np.where(np.round(model.build.value) > 0, np.maximum(model.cap_mw.value, 0.0), 0.0)
                rel_result = evaluate(data.reliability, built)
                rel_record = check_reliability_consistency(model, rel_result)
                rel_record.update(rel_result.indices())
                for name, table in reliability_tables(data.reliability, rel_result, data.reliability_limits).items():
                    w.table(name, table)
        with w.phase("write"):
            tables = plan_tables(model, check.v_ac_pu)
            for table, df in tables.items():
                w.table(table, df)
            w.figure("voltage_profile", voltage_figure(model))
            w.figure("sited_capacity", capacity_figure(model))
        costs = {k: float(v.value) for k, v in model.costs.items()}
        summary = {
            "status": record["status"],
            "total_usd": sum(costs.values()),
            "gap": record["gap"],
            "built": int(np.round(model.build.value).sum()),
            "capacity_mw": float(np.round(model.cap_mw.value, 6).sum()),
            "max_dv_pu": check.max_dv_pu,
            "tight": check.tight,
        }
        if rel_record is not None:
            summary["SAIDI_h"] = rel_record["SAIDI"]
            summary["EENS_mwh"] = rel_record["EENS"]
        w.record(run_key=run_key, solver=record, objective=sum(costs.values()), verification=check.as_dict(),
                 reliability=rel_record,
                 scenarios=data.n_days, snapshots=data.n_snap, summary=summary)
    if not check.tight:
        log.warning("relaxation not tight")
    return summary


def net_loads(model: PlanModel) -> tuple[np.ndarray, np.ndarray]:
    """Bus net loads (load − DG/storage injection) of the solution, per unit, bus × snapshot."""
    d = model.data
    n = d.feeder.n_bus
    pos = d.sites["pos"].to_numpy()
    p_site = model.p_dg.value.copy()
    if model.charge is not None:
        sto = np.flatnonzero((d.sites["tech"] == "storage").to_numpy())
        p_site[sto] += model.discharge.value - model.charge.value
    p_inj = np.zeros((n, d.n_snap))
    q_inj = np.zeros((n, d.n_snap))
    np.add.at(p_inj, pos, p_site)
    np.add.at(q_inj, pos, model.q_dg.value)
    return d.p_load - p_inj, d.q_load - q_inj


def plan_tables(model: PlanModel, v_ac: np.ndarray) -> dict[str, pd.DataFrame]:
    d = model.data
    fd = d.feeder
    base = fd.base_mva
    st = d.sites
    K, H = d.n_days, d.hours
    build = np.round(model.build.value)
    cap = np.where(build > 0, np.maximum(model.cap_mw.value, 0.0), 0.0)
    capex = st["capex_usd_per_mw"].to_numpy() * cap + st["fixed_capex_usd"].to_numpy() * build
    investment = pd.DataFrame({
        "bus": st["bus"].to_numpy(), "tech": st["tech"].to_numpy(), "build": build.astype(bool),
        "capacity_mw": cap, "capex_usd": capex, "annualised_usd": capex * st["crf"].to_numpy(),
    })
    scen = np.repeat(np.arange(K), H)
    hour = np.tile(np.arange(H), K)
    n, m, S = fd.n_bus, fd.n_branch, d.n_snap
    pos = st["pos"].to_numpy()
    p_load, q_load = d.p_load, d.q_load
    p_bus_load, q_bus_load = net_loads(model)
    p_dg = (p_load - p_bus_load) * base
    q_dg = (q_load - q_bus_load) * base
    curtailed = np.zeros((n, S))
    res_rows = np.flatnonzero((st["tech"] != "storage").to_numpy())
    avail = d.avail[res_rows] * (cap[res_rows, None] / base)
    np.add.at(curtailed, pos[res_rows], np.maximum(avail - model.p_dg.value[res_rows], 0.0))
    v = np.sqrt(np.maximum(model.flow.v.value, 0.0))
    bus = pd.DataFrame({
        "scenario": np.repeat(scen, n), "hour": np.repeat(hour, n), "bus": np.tile(fd.bus_ids, S),
        "v_pu": v.T.ravel(), "v_ac_pu": v_ac.T.ravel(),
        "p_load_mw": (p_load * base).T.ravel(), "q_load_mvar": (q_load * base).T.ravel(),
        "p_dg_mw": p_dg.T.ravel(), "q_dg_mvar": q_dg.T.ravel(), "p_curtailed_mw": (curtailed * base).T.ravel(),
    })
    fl = model.flow
    branch = pd.DataFrame({
        "scenario": np.repeat(scen, m), "hour": np.repeat(hour, m),
        "from_bus": np.tile(fd.branches["from_bus"].to_numpy(), S), "to_bus": np.tile(fd.branches["to_bus"].to_numpy(), S),
        "p_mw": (fl.P.value * base).T.ravel(), "q_mvar": (fl.Q.value * base).T.ravel(),
        "i_pu": np.sqrt(np.maximum(fl.ell.value, 0.0)).T.ravel(),
        "loss_mw": (fd.r_pu[:, None] * fl.ell.value * base).T.ravel(),
    })
    costs = {k: float(v.value) for k, v in model.costs.items()}
    cost = pd.DataFrame({"item": [*costs, "total"], "annual_usd": [*costs.values(), sum(costs.values())]})
    return {"investment": investment, "bus": bus, "branch": branch, "cost": cost}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def voltage_figure(model: PlanModel):
    plt = _plt()
    d = model.data
    v = np.sqrt(np.maximum(model.flow.v.value, 0.0))
    worst = int(np.argmin(v.min(axis=0)))
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(np.arange(d.feeder.n_bus), v[:, worst], marker="o", ms=3, label="planned (SOCP)")
    ax.axhline(d.v_min_pu, color="C3", ls="--", lw=1, label="limits")
    ax.axhline(d.v_max_pu, color="C3", ls="--", lw=1)
    step = max(1, d.feeder.n_bus // 16)
    ax.set_xticks(np.arange(d.feeder.n_bus)[::step])
    ax.set_xticklabels(d.feeder.bus_ids[::step])
    ax.set_xlabel("bus")
    ax.set_ylabel("voltage (pu)")
    ax.set_title(f"worst hour: scenario {worst // d.hours}, hour {worst % d.hours} (min {v[:, worst].min():.4f} pu)")
    ax.grid(alpha=0.3)
    ax.legend()
    plt.close(fig)
    return fig


def capacity_figure(model: PlanModel):
    plt = _plt()
    st = model.data.sites
    cap = np.where(np.round(model.build.value) > 0, model.cap_mw.value, 0.0)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    x = np.arange(len(st))
    colors = {"pv": "C1", "wind": "C0", "storage": "C2"}
    ax.bar(x, st["max_mw"], color="0.85", label="candidate maximum")
    ax.bar(x, cap, color=[colors[t] for t in st["tech"]], label="built")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{b}\n{t}" for b, t in zip(st["bus"], st["tech"], strict=True)], fontsize=8)
    ax.set_xlabel("candidate (bus, technology)")
    ax.set_ylabel("capacity (MW)")
    ax.set_title(f"sited capacity: {cap.sum():.3f} MW")
    ax.legend()
    plt.close(fig)
    return fig

