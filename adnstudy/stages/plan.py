"""``adnstudy plan``: RES siting and sizing over the typical days, verified by AC power flow.

Reads ``cluster/typical`` and ``cluster/weights``; writes ``investment``,
``bus``, ``branch``, ``cost`` (beside the no-investment baseline), ``storage``
(``docs/results.md``), two figures and a manifest with the solve record
(status, bound, gap, nodes, seconds), the baseline and the AC check. Annual
figures are for a 365-day year (``docs/plan.md``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adnstudy.checks import check_solver, check_time_limit
from adnstudy.config.load import Case
from adnstudy.config.schema import own_strategy
from adnstudy.data.typical import YEAR_DAYS
from adnstudy.errors import SolveError
from adnstudy.formulation.verify import verify_against_ac
from adnstudy.problems.microgrid import MicrogridSchedule
from adnstudy.problems.plan import (
    COST_ITEMS,
    Baseline,
    PlanData,
    PlanSolution,
    no_investment_baseline,
    plan_data,
    solve_plan,
    with_microgrids,
    with_reliability,
)
from adnstudy.reliability.evaluate import ReliabilityResult, evaluate, reliability_tables
from adnstudy.results.figures import legend_below, new_figure
from adnstudy.results.tables import (
    branch_loading,
    branch_table,
    bus_table,
    existing_table,
    scenario_index,
)
from adnstudy.solve.conic import FINAL, REFERENCE, quiet_solver
from adnstudy.solve.mip import MipSettings
from adnstudy.solve.size import check_plan_size
from adnstudy.stages.registry import Line, checked_inputs, read_inputs, stage_writer

log = logging.getLogger(__name__)

def load_plan_inputs(case: Case, out_dir: Path
                     ) -> tuple[PlanData, list[list[MicrogridSchedule]], list[str], dict[str, str | None]]:
    """The checked case and the typical days as the model's data, with the MGs' stand-alone exchanges at their
    PCCs (their schedules, scenario × MG, and the status of each day's solve); the digests of the tables read."""
    inputs = checked_inputs(case, "plan")
    tables, digests = read_inputs(case, out_dir, "plan")
    typical, weights = tables["cluster", "typical"], tables["cluster", "weights"]
    data = plan_data(case, inputs.feeder, typical, weights)
    scfg = case.config.solver
    reference = REFERENCE.with_user(scfg.options) if own_strategy(scfg.name) else REFERENCE
    with quiet_solver():
        data, schedules, statuses = with_microgrids(case, data, typical, weights, reference)
    return data, schedules, statuses, digests


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
    check_time_limit(time_limit)  # usage errors, before the inputs are read
    if solver is not None:
        check_solver(case, solver, field="--solver")
    check_plan_size(case, reliability=reliability, solver=solver, time_limit_s=time_limit)  # before building
    data, mg_schedules, mg_statuses, digests = load_plan_inputs(case, out_dir)
    if verbose is None:  # the branch-and-bound's progress goes to the log at INFO (adnstudy -v)
        verbose = logging.getLogger().isEnabledFor(logging.INFO)
    if reliability and case.config.reliability is not None:
        data = with_reliability(case, data)
    settings = MipSettings.from_case(case, name=solver, time_limit_s=time_limit, verbose=verbose)
    with stage_writer(out_dir, case, "plan", inputs=digests) as w:
        result = solve_plan(data, settings)
        sol = result.model.solution()
        w.timings.update(result.timings)
        with w.phase("verify"):
            p_bus, q_bus = net_loads(data, sol)
            check = verify_against_ac(data.feeder, sol.flow, p_bus, q_bus)
        with w.phase("baseline"):
            baseline = no_investment_baseline(data, settings.conic(FINAL), model=result.model)
        rel_record = None
        if data.reliability is not None:
            with w.phase("reliability"):
                rel_result = evaluate(data.reliability, sol.built_mw)
                rel_record = check_reliability_consistency(sol, rel_result)
                rel_record.update(rel_result.indices())
                for name, table in reliability_tables(data.reliability, rel_result, data.reliability_limits).items():
                    w.table(name, table)
        with w.phase("write"):
            for table, df in plan_tables(data, sol, check.v_ac_pu, baseline).items():
                w.table(table, df)
            if mg_schedules:
                w.table("microgrid_exchange", microgrid_exchange_table(data))
            w.figure("voltage_profile", voltage_figure(data, sol, check.v_ac_pu))
            w.figure("sited_capacity", capacity_figure(data, sol))
        built = built_capacity(data, sol)
        base_total = baseline.solution.total_usd if baseline.solution is not None else None
        summary = {
            "status": result.record["status"],
            "resolve_status": result.record["resolve_status"],
            "total_usd": sol.total_usd,
            "gap": result.record["gap"],
            "built": int(sol.build.sum()),
            **built,
            "baseline_total_usd": base_total,
            "saving_usd": None if base_total is None else base_total - sol.total_usd,
            "max_dv_pu": check.max_dv_pu,
            "tight": check.tight,
        }
        inaccurate = [k for k, st in enumerate(mg_statuses) if st != "optimal"]
        if inaccurate:
            summary["inaccurate_exchanges"] = inaccurate
        if rel_record is not None:
            summary["SAIDI_h"] = rel_record["SAIDI"]
            summary["EENS_mwh"] = rel_record["EENS"]
        w.record(run_key=run_key, solver=result.record, objective=sol.total_usd, verification=check.as_dict(),
                 baseline=baseline_record(baseline), reliability=rel_record, scenarios=data.n_days,
                 snapshots=data.n_snap, year_days=YEAR_DAYS, summary=summary,
                 microgrids=microgrid_record(data, mg_schedules, mg_statuses),
                 **({"existing": existing_record(data, sol)} if data.existing is not None else {}))
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
    """Bus net loads (load − DG/storage injection − MG export − existing generation) of the solution, per unit,
    bus × snapshot."""
    p_inj, q_inj = injections(data, sol)
    if data.mg_export is not None:
        np.add.at(p_inj, data.mg_pos, data.mg_export)
    if data.existing is not None:
        np.add.at(p_inj, data.existing.pos, sol.p_existing)
        np.add.at(q_inj, data.existing.pos, sol.q_existing)
    return data.p_load - p_inj, data.q_load - q_inj


def microgrid_exchange_table(data: PlanData) -> pd.DataFrame:
    """One row per (MG, scenario, hour): the stand-alone exchange at its PCC the plan carried."""
    assert data.mg_export is not None
    base, H = data.feeder.base_mva, data.hours
    rows = []
    for m, name in enumerate(data.mg_names):
        rows.append(pd.DataFrame({
            "microgrid": name, "bus": int(data.feeder.bus_ids[data.mg_pos[m]]),
            "scenario": np.repeat(np.arange(data.n_days), H), "hour": np.tile(np.arange(H), data.n_days),
            "p_export_mw": data.mg_export[m] * base,
        }))
    return pd.concat(rows, ignore_index=True)


def microgrid_record(data: PlanData, schedules: list[list[MicrogridSchedule]], statuses: list[str]
                     ) -> dict[str, Any] | None:
    """The manifest's record of the MGs the plan carried: annual exchanges and stand-alone cost per MG, and the
    status of each typical day's solve of the exchanges (``exchange_status``)."""
    if data.mg_export is None:
        return None
    w, base = data.snap_weight, data.feeder.base_mva
    days = data.days_weight
    return {"by_microgrid": {name: {
        "bus": int(data.feeder.bus_ids[data.mg_pos[m]]),
        "export_mwh_per_yr": float(w @ np.maximum(data.mg_export[m], 0.0) * base),
        "import_mwh_per_yr": float(w @ np.maximum(-data.mg_export[m], 0.0) * base),
        "standalone_cost_usd_per_yr": float(days @ np.array([day[m].cost_usd for day in schedules])),
    } for m, name in enumerate(data.mg_names)}, "exchange_status": statuses}


def existing_record(data: PlanData, sol: PlanSolution) -> dict[str, Any]:
    """The manifest's record of the feeder's existing units: how many, their capacity, and their annual energy
    available, used and curtailed (MWh over a 365-day year)."""
    assert data.existing is not None
    w, base = data.snap_weight, data.feeder.base_mva
    available = float(data.existing.available.sum(axis=0) @ w * base)
    used = float(sol.p_existing.sum(axis=0) @ w * base)
    return {"units": data.existing.n, "capacity_mw": float(data.feeder.generators["p_mw"].sum()),
            "available_mwh_per_yr": available, "used_mwh_per_yr": used,
            "curtailed_mwh_per_yr": max(available - used, 0.0)}


def built_capacity(data: PlanData, sol: PlanSolution) -> dict[str, float]:
    """Built RES (PV, wind) and storage capacity, apart: MW of generation, MW and MWh of storage."""
    st, cap = data.sites, np.round(sol.built_mw, 6)
    sto = data.storage_rows
    return {
        "res_capacity_mw": float(cap[data.res_rows].sum()),
        "storage_capacity_mw": float(cap[sto].sum()),
        "storage_energy_mwh": float((cap[sto] * st["energy_mwh_per_mw"].to_numpy()[sto]).sum()),
    }


def baseline_record(baseline: Baseline) -> dict[str, Any]:
    """The manifest's record of the no-investment baseline."""
    sol = baseline.solution
    return {
        "status": baseline.status, "reason": baseline.reason,
        "total_usd": sol.total_usd if sol is not None else None,
        "costs_usd": {k: sol.costs_usd.get(k, 0.0) for k in COST_ITEMS} if sol is not None else None,
        "min_v_pu": float(sol.flow.v_pu.min()) if sol is not None else None,
    }


#: An annual cost below this is the solver's tolerance, not money (the final solves stop at a 1e-9 relative gap).
COST_NOISE_USD = 0.01


def cost_table(sol: PlanSolution, baseline: Baseline) -> pd.DataFrame:
    """The annual cost components of the plan and of the no-investment baseline: always the same rows."""
    unknown = sorted(set(sol.costs_usd) - set(COST_ITEMS))
    if unknown:  # a contract of problems/plan.py, not a user error
        raise RuntimeError(f"plan cost components {unknown} are not in COST_ITEMS")

    def column(costs: dict[str, float] | None) -> np.ndarray:
        if costs is None:
            return np.full(len(COST_ITEMS) + 1, np.nan)
        values = np.array([costs.get(k, 0.0) for k in COST_ITEMS])
        values[np.abs(values) < COST_NOISE_USD] = 0.0  # e.g. the baseline's investment in capacity fixed at 0
        return np.append(values, values.sum())

    plan = column(sol.costs_usd)
    base = column(baseline.solution.costs_usd if baseline.solution is not None else None)
    return pd.DataFrame({"item": [*COST_ITEMS, "total"], "annual_usd": plan, "baseline_annual_usd": base,
                         "saving_annual_usd": base - plan})


def storage_table(data: PlanData, sol: PlanSolution) -> pd.DataFrame:
    """One row per (storage candidate, scenario, hour): charge, discharge and stored energy at the hour's end."""
    base, sto, st = data.feeder.base_mva, data.storage_rows, data.sites
    index = scenario_index(np.arange(data.n_days), data.hours)
    return pd.DataFrame({
        "site": np.repeat(st["site"].to_numpy()[sto], data.n_snap),
        "bus": np.repeat(st["bus"].to_numpy()[sto], data.n_snap),
        "scenario": np.tile(index["scenario"], len(sto)), "hour": np.tile(index["hour"], len(sto)),
        "p_charge_mw": sol.charge.ravel() * base, "p_discharge_mw": sol.discharge.ravel() * base,
        "soc_mwh": sol.soc.ravel() * base,
    })


def plan_tables(data: PlanData, sol: PlanSolution, v_ac: np.ndarray, baseline: Baseline) -> dict[str, pd.DataFrame]:
    fd, st = data.feeder, data.sites
    base = fd.base_mva
    cap = sol.built_mw
    capex = st["capex_usd_per_mw"].to_numpy() * cap + st["fixed_capex_usd"].to_numpy() * sol.build
    investment = pd.DataFrame({
        "site": st["site"].to_numpy(), "bus": st["bus"].to_numpy(), "tech": st["tech"].to_numpy(),
        "build": sol.build.astype(bool), "capacity_mw": cap, "capex_usd": capex,
        "annualised_usd": capex * st["crf"].to_numpy(),
    })
    index = scenario_index(np.arange(data.n_days), data.hours)
    p_inj, q_inj = injections(data, sol)
    res = data.res_rows
    curtailed = np.zeros((fd.n_bus, data.n_snap))
    avail = data.avail[res] * (cap[res, None] / base)
    np.add.at(curtailed, st["pos"].to_numpy()[res], np.maximum(avail - sol.p_res, 0.0))
    mg = np.zeros((fd.n_bus, data.n_snap))
    if data.mg_export is not None:
        np.add.at(mg, data.mg_pos, data.mg_export)
    bus = bus_table(fd, index, {
        "v_pu": sol.flow.v_pu, "v_ac_pu": v_ac, "p_load_mw": data.p_load * base, "q_load_mvar": data.q_load * base,
        "p_dg_mw": p_inj * base, "q_dg_mvar": q_inj * base, "p_curtailed_mw": curtailed * base,
        "p_microgrid_mw": mg * base,
    })
    i_ka = sol.flow.i_pu * fd.i_base_ka[:, None]
    branch = branch_table(fd, index, {
        "p_mw": sol.flow.P * base, "q_mvar": sol.flow.Q * base, "i_pu": sol.flow.i_pu, "i_ka": i_ka,
        "loss_mw": sol.flow.loss_pu(fd) * base, **branch_loading(fd, i_ka),
    })
    out = {"investment": investment, "bus": bus, "branch": branch, "cost": cost_table(sol, baseline),
           "storage": storage_table(data, sol)}
    if data.existing is not None:  # the bus table's p_dg_mw is the plan's own units; these are the others
        out["existing"] = existing_table(fd, index, data.existing.available * base, sol.p_existing * base,
                                         sol.q_existing * base)
    return out


TECH_COLOURS = {"pv": "C1", "wind": "C0", "storage": "C2"}


def voltage_figure(data: PlanData, sol: PlanSolution, v_ac: np.ndarray):
    """Voltages of the worst hour: the relaxed (SOCP) profile and the AC power flow of the same injections."""
    v = sol.flow.v_pu
    worst = int(np.argmin(v.min(axis=0)))
    n = data.feeder.n_bus
    x = np.arange(n)
    fig, ax = new_figure(7, 3.8)
    ax.plot(x, v[:, worst], marker="o", ms=4, label="planned (SOCP relaxation)")
    ax.plot(x, v_ac[:, worst], ls="none", marker="x", ms=5, color="k", label="AC power flow check")
    ax.axhline(data.limits.v_min_pu, color="C3", ls="--", lw=1, label="limits")
    ax.axhline(data.limits.v_max_pu, color="C3", ls="--", lw=1)
    step = max(1, n // 16)
    ax.set_xticks(x[::step])
    ax.set_xticklabels(data.feeder.bus_ids[::step])
    ax.set_xlabel("bus")
    ax.set_ylabel("voltage (pu)")
    dv = float(np.max(np.abs(v[:, worst] - v_ac[:, worst])))
    ax.set_title(f"worst hour: scenario {worst // data.hours}, hour {worst % data.hours} "
                 f"(min {v[:, worst].min():.4f} pu; AC max |ΔV| {dv:.1e} pu)", fontsize=10)
    ax.grid(alpha=0.3)
    legend_below(fig, ax)
    return fig


def capacity_figure(data: PlanData, sol: PlanSolution):
    """Built capacity per candidate against its maximum, coloured (and labelled) by technology."""
    st = data.sites
    cap = sol.built_mw
    built = built_capacity(data, sol)
    fig, ax = new_figure(7, 3.8)
    x = np.arange(len(st))
    ax.bar(x, st["max_mw"], color="0.85", label="candidate maximum")
    tech = st["tech"].to_numpy()
    for name, colour in TECH_COLOURS.items():
        mask = tech == name
        if mask.any():  # a legend entry for each technology built
            ax.bar(x[mask], cap[mask], color=colour, label=f"{name} built" if cap[mask].any() else None)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{b}\n{t}" for b, t in zip(st["bus"], st["tech"], strict=True)], fontsize=8)
    ax.set_xlabel("candidate (bus, technology)")
    ax.set_ylabel("capacity (MW)")
    title = f"sited capacity: RES {built['res_capacity_mw']:.3f} MW"
    if len(data.storage_rows):
        title += f", storage {built['storage_capacity_mw']:.3f} MW / {built['storage_energy_mwh']:.3f} MWh"
    ax.set_title(title, fontsize=10)
    legend_below(fig, ax)
    return fig


def report(case: Case, out_dir: Path, summary: dict[str, Any], options: dict[str, Any]) -> list[Line]:
    """What ``adnstudy plan`` prints."""
    s = summary
    gap = "n/a" if s["gap"] is None else f"{s['gap']:.2e}"
    storage = (f", storage {s['storage_capacity_mw']:.3f} MW / {s['storage_energy_mwh']:.3f} MWh"
               if s["storage_capacity_mw"] > 0 else "")
    baseline = (f" (no-investment baseline {s['baseline_total_usd']:,.0f} USD: saving {s['saving_usd']:,.0f} USD/yr)"
                if s["baseline_total_usd"] is not None else "")
    lines: list[Line] = [(
        f"{case.name}: {s['built']} site(s), RES {s['res_capacity_mw']:.3f} MW{storage}; annual cost "
        f"{s['total_usd']:,.0f} USD{baseline}; status {s['status']}, gap {gap}; AC check max |dV| "
        f"{s['max_dv_pu']:.1e} pu"
        + (f"; SAIDI {s['SAIDI_h']:.3f} h, EENS {s['EENS_mwh']:.2f} MWh" if "SAIDI_h" in s else ""), False)]
    if s["baseline_total_usd"] is None:
        lines.append(("note: the no-investment baseline has no solution, so the plan's saving is not known; "
                      "the reason is in the manifest's 'baseline'", True))
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
    if s.get("inaccurate_exchanges"):
        lines.append((f"WARNING: the MGs' exchanges of typical day(s) {s['inaccurate_exchanges']} were solved short of "
                      "the reference accuracy (status optimal_inaccurate); see manifest microgrids.exchange_status",
                      True))
    lines.append((f"results: {out_dir / 'plan'}", False))
    return lines
