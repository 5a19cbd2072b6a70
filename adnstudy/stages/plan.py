"""``adnstudy plan``: RES siting and sizing over the typical days, verified by AC power flow.

Reads ``cluster/typical`` and ``cluster/weights``; writes ``investment``,
``bus``, ``branch``, ``cost`` (``docs/results.md``), two figures and a manifest
with the solve record (status, bound, gap, nodes, seconds) and the AC check.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adnstudy.checks import check_solver
from adnstudy.config.load import Case
from adnstudy.errors import SolveError
from adnstudy.formulation.verify import verify_against_ac
from adnstudy.problems.plan import PlanData, PlanSolution, plan_data, solve_plan, with_reliability
from adnstudy.reliability.evaluate import ReliabilityResult, evaluate, reliability_tables
from adnstudy.results.figures import new_figure
from adnstudy.results.tables import branch_table, bus_table, scenario_index
from adnstudy.solve.conic import FINAL
from adnstudy.solve.mip import MipSettings
from adnstudy.stages.registry import Line, checked_inputs, read_inputs, stage_writer

log = logging.getLogger(__name__)

def load_plan_inputs(case: Case, out_dir: Path) -> tuple[PlanData, dict[str, str | None]]:
    """The checked case and the typical days as the model's data; the digests of the stages read."""
    inputs = checked_inputs(case, "plan")
    tables, digests = read_inputs(case, out_dir, "plan")
    return plan_data(case, inputs.feeder, tables["cluster", "typical"], tables["cluster", "weights"]), digests


def check_reliability_consistency(sol: PlanSolution, result: ReliabilityResult, rtol: float = 1e-6) -> dict[str, float]:
    """The optimiser's linear reliability model against the fault-enumeration evaluator; raise if they differ."""
    assert sol.unavailability_h is not None
    ours = {"SAIFI": sol.saifi, "SAIDI": sol.saidi_h, "EENS": sol.eens_mwh}
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
    bus_diff = np.max(np.abs(sol.unavailability_h - result.unavailability_h_per_yr))
    scale = max(np.max(result.unavailability_h_per_yr), 1e-12)
    if bus_diff / scale > rtol:
        raise SolveError(f"reliability check failed: bus unavailability differs by {bus_diff:.3g} h/yr between "
                         "the optimiser and fault enumeration")
    return {"max_rel_difference": worst, "max_bus_unavailability_difference_h": float(bus_diff)}


def plan_stage(
    case: Case, out_dir: Path, run_key: str | None = None, solver: str | None = None,
    time_limit: float | None = None, reliability: bool = True, verbose: bool | None = None,
) -> dict[str, Any]:
    if solver is not None:  # a usage error, before the inputs are read
        check_solver(case, solver, field="--solver")
    data, digests = load_plan_inputs(case, out_dir)
    if verbose is None:  # the branch-and-bound's progress goes to the log at INFO (adnstudy -v)
        verbose = logging.getLogger().isEnabledFor(logging.INFO)
    if reliability and case.config.reliability is not None:
        data = with_reliability(case, data)
    scfg = case.config.solver
    settings = MipSettings(
        name=solver or scfg.name, gap=scfg.mip_gap, time_limit_s=time_limit if time_limit is not None else scfg.time_limit_s,
        threads=scfg.threads, options=dict(scfg.options), verbose=verbose,
    )
    with stage_writer(out_dir, case, "plan", inputs=digests) as w:
        result = solve_plan(data, settings)
        sol = result.model.solution()
        w.timings.update(result.timings)
        with w.phase("verify"):
            p_bus, q_bus = net_loads(data, sol)
            check = verify_against_ac(data.feeder, sol.flow, p_bus, q_bus)
        rel_record = None
        if data.reliability is not None:
            with w.phase("reliability"):
                rel_result = evaluate(data.reliability, sol.built_mw)
                rel_record = check_reliability_consistency(sol, rel_result)
                rel_record.update(rel_result.indices())
                for name, table in reliability_tables(data.reliability, rel_result, data.reliability_limits).items():
                    w.table(name, table)
        with w.phase("write"):
            for table, df in plan_tables(data, sol, check.v_ac_pu).items():
                w.table(table, df)
            w.figure("voltage_profile", voltage_figure(data, sol))
            w.figure("sited_capacity", capacity_figure(data, sol))
        summary = {
            "status": result.record["status"],
            "resolve_status": result.record["resolve_status"],
            "total_usd": sol.total_usd,
            "gap": result.record["gap"],
            "built": int(sol.build.sum()),
            "capacity_mw": float(np.round(sol.capacity_mw, 6).sum()),
            "max_dv_pu": check.max_dv_pu,
            "tight": check.tight,
        }
        if rel_record is not None:
            summary["SAIDI_h"] = rel_record["SAIDI"]
            summary["EENS_mwh"] = rel_record["EENS"]
        w.record(run_key=run_key, solver=result.record, objective=sol.total_usd, verification=check.as_dict(),
                 reliability=rel_record, scenarios=data.n_days, snapshots=data.n_snap, summary=summary)
    if not check.tight:
        log.warning("relaxation not tight")
    return summary


def injections(data: PlanData, sol: PlanSolution) -> tuple[np.ndarray, np.ndarray]:
    """Bus injections of the candidates (DG output, storage discharge − charge), per unit, bus × snapshot."""
    n, pos = data.feeder.n_bus, data.sites["pos"].to_numpy()
    p_inj = np.zeros((n, data.n_snap))
    q_inj = np.zeros((n, data.n_snap))
    np.add.at(p_inj, pos[data.res_rows], sol.p_res)
    np.add.at(q_inj, pos[data.res_rows], sol.q_res)
    np.add.at(p_inj, pos[data.storage_rows], sol.discharge - sol.charge)
    return p_inj, q_inj


def net_loads(data: PlanData, sol: PlanSolution) -> tuple[np.ndarray, np.ndarray]:
    """Bus net loads (load − DG/storage injection) of the solution, per unit, bus × snapshot."""
    p_inj, q_inj = injections(data, sol)
    return data.p_load - p_inj, data.q_load - q_inj


def plan_tables(data: PlanData, sol: PlanSolution, v_ac: np.ndarray) -> dict[str, pd.DataFrame]:
    fd, st = data.feeder, data.sites
    base = fd.base_mva
    cap = sol.built_mw
    capex = st["capex_usd_per_mw"].to_numpy() * cap + st["fixed_capex_usd"].to_numpy() * sol.build
    investment = pd.DataFrame({
        "bus": st["bus"].to_numpy(), "tech": st["tech"].to_numpy(), "build": sol.build.astype(bool),
        "capacity_mw": cap, "capex_usd": capex, "annualised_usd": capex * st["crf"].to_numpy(),
    })
    index = scenario_index(np.arange(data.n_days), data.hours)
    p_inj, q_inj = injections(data, sol)
    res = data.res_rows
    curtailed = np.zeros((fd.n_bus, data.n_snap))
    avail = data.avail[res] * (cap[res, None] / base)
    np.add.at(curtailed, st["pos"].to_numpy()[res], np.maximum(avail - sol.p_res, 0.0))
    bus = bus_table(fd, index, {
        "v_pu": sol.flow.v_pu, "v_ac_pu": v_ac, "p_load_mw": data.p_load * base, "q_load_mvar": data.q_load * base,
        "p_dg_mw": p_inj * base, "q_dg_mvar": q_inj * base, "p_curtailed_mw": curtailed * base,
    })
    branch = branch_table(fd, index, {
        "p_mw": sol.flow.P * base, "q_mvar": sol.flow.Q * base, "i_pu": sol.flow.i_pu,
        "loss_mw": sol.flow.loss_pu(fd) * base,
    })
    cost = pd.DataFrame({"item": [*sol.costs_usd, "total"], "annual_usd": [*sol.costs_usd.values(), sol.total_usd]})
    return {"investment": investment, "bus": bus, "branch": branch, "cost": cost}


def voltage_figure(data: PlanData, sol: PlanSolution):
    v = sol.flow.v_pu
    worst = int(np.argmin(v.min(axis=0)))
    n = data.feeder.n_bus
    fig, ax = new_figure(7, 3.2)
    ax.plot(np.arange(n), v[:, worst], marker="o", ms=3, label="planned (SOCP)")
    ax.axhline(data.limits.v_min_pu, color="C3", ls="--", lw=1, label="limits")
    ax.axhline(data.limits.v_max_pu, color="C3", ls="--", lw=1)
    step = max(1, n // 16)
    ax.set_xticks(np.arange(n)[::step])
    ax.set_xticklabels(data.feeder.bus_ids[::step])
    ax.set_xlabel("bus")
    ax.set_ylabel("voltage (pu)")
    ax.set_title(f"worst hour: scenario {worst // data.hours}, hour {worst % data.hours} (min {v[:, worst].min():.4f} pu)")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def capacity_figure(data: PlanData, sol: PlanSolution):
    st = data.sites
    cap = np.where(sol.build > 0, sol.capacity_mw, 0.0)
    fig, ax = new_figure(7, 3.2)
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
    return fig


def report(case: Case, out_dir: Path, summary: dict[str, Any], options: dict[str, Any]) -> list[Line]:
    """What ``adnstudy plan`` prints."""
    s = summary
    gap = "n/a" if s["gap"] is None else f"{s['gap']:.2e}"
    lines: list[Line] = [(
        f"{case.name}: {s['built']} site(s), {s['capacity_mw']:.3f} MW; annual cost {s['total_usd']:,.0f} USD; "
        f"status {s['status']}, gap {gap}; AC check max |dV| {s['max_dv_pu']:.1e} pu"
        + (f"; SAIDI {s['SAIDI_h']:.3f} h, EENS {s['EENS_mwh']:.2f} MWh" if "SAIDI_h" in s else ""), False)]
    if not s["tight"]:
        lines.append(("WARNING: the SOC relaxation is not tight at this plan: the SOCP voltages differ from the AC "
                      "power flow by more than 1e-4 pu; the operating point is not physical (see manifest "
                      "'verification')", True))
    if s["status"] != "optimal":
        lines.append((f"note: the plan is not proven optimal (status {s['status']}); see manifest 'solver'", True))
    if s.get("resolve_status", "optimal") != "optimal":
        lines.append((f"WARNING: the plan's operating point was re-solved to status '{s['resolve_status']}' (relative "
                      f"duality gap above {FINAL.accept_gap_rel:g}): its tables are less accurate than stated; see "
                      "manifest solver.resolve_gap_rel", True))
    lines.append((f"results: {out_dir / 'plan'}", False))
    return lines
