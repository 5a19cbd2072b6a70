"""``adnstudy dispatch``: day-ahead MG–ADN coordination with bilateral trading, per typical day.

For each typical day of ``cluster`` (or those given by ``--scenario``):

1. every MG solves alone with the ADN's tariffs, blind to the network (the
   starting point of the distributed solves);
2. the disagreement market (no bilateral trades, network-feasible) and the
   clearing are each solved centrally (the reference) and distributedly (ATC
   between the ADN and the MGs, closed-form-agreement ADMM among the MGs);
3. the Nash-bargaining payments are found by the closed-form payment ADMM;
4. the ADN's operating point is checked by the project's AC power flow.

Tables (``docs/results.md``): schedule, trades, payments, agents, agents_by_scenario,
adn, network, convergence; three figures; the manifest records both objectives,
their gap, iterations and seconds per day.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adnstudy.config.load import Case
from adnstudy.data.typical import typical_days
from adnstudy.errors import CaseError, SolveError, SolverStatusError
from adnstudy.formulation.verify import Verification, verify_against_ac
from adnstudy.problems.dispatch import (
    ADNAgent,
    ADNSolution,
    DayData,
    centralised_model,
    diagnose_day,
    dispatch_days,
)
from adnstudy.problems.microgrid import MicrogridAgent, MicrogridSchedule
from adnstudy.results.figures import new_figure
from adnstudy.results.tables import bus_table, scenario_index
from adnstudy.solve.bargaining import BargainResult, bargain
from adnstudy.solve.conic import (
    DEFAULT,
    REFERENCE,
    ConicSettings,
    clarabel_accuracy,
    quiet_solver,
    solve_conic,
)
from adnstudy.solve.coordination import CoordinationResult, coordinate, partner_row
from adnstudy.stages.registry import Line, checked_inputs, read_inputs, stage_writer

#: A pair counts as trading partners when it traded more than this in some hour (MW).
TRADED_MW = 1e-4
#: Statuses of a centralised solve that mean "no feasible point" (Clarabel sometimes stops at its
#: iteration limit instead of certifying infeasibility).
NO_POINT = ("infeasible", "infeasible_inaccurate", "user_limit")


def dispatch_inputs(case: Case, out_dir: Path, scenarios: list[int] | None = None
                    ) -> tuple[list[DayData], dict[str, str | None]]:
    """Each chosen typical day's data for the agents; the digests of the stages read."""
    feeder = checked_inputs(case, "dispatch").feeder
    tables, digests = read_inputs(case, out_dir, "dispatch")
    days = dispatch_days(case, feeder, typical_days(case, tables["cluster", "typical"], tables["cluster", "weights"]))
    if scenarios:
        have = [d.scenario for d in days]
        unknown = [s for s in scenarios if s not in have]
        if unknown:
            raise CaseError(f"--scenario {unknown[0]}: the typical days are {have}", field="--scenario")
        days = [d for d in days if d.scenario in scenarios]
    return days, digests


@dataclass(frozen=True)
class CentralSolve:
    objective_usd: float
    status: str  # "optimal": within the reference's accuracy (solve/conic.py REFERENCE)
    seconds: float
    gap_rel: float | None = None  # Clarabel's relative duality gap at the point


@dataclass(frozen=True)
class ScenarioResult:
    """Everything solved for one typical day, as arrays and numbers (no live CVXPY objects)."""

    day: DayData
    central: CentralSolve  # clearing, centralised reference
    central_notrade: CentralSolve  # disagreement market, centralised reference
    alone: list[MicrogridSchedule]  # each MG with tariffs only, network-blind (the starting point)
    notrade: CoordinationResult  # disagreement market, distributed
    clearing: CoordinationResult  # clearing, distributed
    bargain: BargainResult
    disagreement_usd: np.ndarray  # per MG
    before_payments_usd: np.ndarray
    traded: list[tuple[int, int]]
    verification: Verification
    build_s: float

    @property
    def adn(self) -> ADNSolution:
        return self.clearing.upper

    @property
    def schedules(self) -> list[MicrogridSchedule]:
        return self.clearing.responses


def _central(day: DayData, trading: bool, settings: ConicSettings) -> CentralSolve:
    t = time.perf_counter()
    model = centralised_model(day, trading=trading)
    what = "clearing" if trading else "disagreement market (no bilateral trades)"
    try:
        status = solve_conic(model.problem, settings, what=f"centralised {what} of typical day {day.scenario}")
        accuracy = clarabel_accuracy(model.problem)
    except SolverStatusError as exc:
        if exc.status not in NO_POINT:
            raise
        raise SolveError(f"the {what} of typical day {day.scenario} is infeasible (solver status "
                         f"'{exc.status}'): {diagnose_day(day, settings)}; no results were written") from None
    return CentralSolve(float(model.problem.value), status, time.perf_counter() - t,
                        None if accuracy is None else accuracy.gap_rel)


def solve_day(day: DayData, case: Case) -> ScenarioResult:
    """One typical day: disagreement and clearing (each centralised and distributed), bargaining, AC check."""
    co = case.config.market.coordination  # type: ignore[union-attr]
    B, H = day.adn.feeder.base_mva, day.adn.hours
    settings = dict(hours=H, base_mva=B, rho_pcc=co.rho_pcc_usd_per_mw2h * B**2,
                    rho_trade=co.rho_trade_usd_per_mw2h * B**2, tol_pu=co.tol_mw / B, tol_dual_pu=co.dual_tol_mw / B,
                    tol_objective=co.tol_objective, max_iter=co.max_iter)
    solver = case.config.solver
    user = solver.options if solver.name.lower() == "default" else {}
    conic, reference = DEFAULT.with_user(user), REFERENCE.with_user(user)
    with quiet_solver():
        central_notrade = _central(day, False, reference)
        central = _central(day, True, reference)
        t = time.perf_counter()
        adn = ADNAgent(day.adn, conic)
        mgs = [MicrogridAgent(d, conic) for d in day.mgs]
        alone = [a.solve_alone() for a in mgs]  # network-blind: the starting point of both markets
        build_s = time.perf_counter() - t
        notrade = coordinate(adn, mgs, day.pairs, alone, trading=False, **settings)
        clearing = coordinate(adn, mgs, day.pairs, notrade.responses, **settings)
    disagreement = np.array([sc.cost_usd for sc in notrade.responses])
    before = np.array([sc.cost_usd for sc in clearing.responses])
    traded = [(m, n) for m, n in day.pairs if np.max(np.abs(clearing.agreed_pu[m, n])) * B > TRADED_MW]
    powers = np.array([d.bargaining_power for d in day.mgs])
    shares = bargain(disagreement - before, powers, traded, tol=co.payment_tol, max_iter=co.payment_max_iter)
    # AC check of the ADN's operating point (its own targets are the PCC exports it planned for)
    net_p = day.adn.p_load_pu.copy()
    np.add.at(net_p, day.adn.mg_pos, -clearing.targets_pu)
    check = verify_against_ac(day.adn.feeder, clearing.upper.flow, net_p, day.adn.q_load_pu)
    return ScenarioResult(
        day=day, central=central, central_notrade=central_notrade, alone=alone, notrade=notrade, clearing=clearing,
        bargain=shares, disagreement_usd=disagreement, before_payments_usd=before, traded=traded,
        verification=check, build_s=build_s,
    )


SCHEDULE_COLUMNS = ["scenario", "agent", "hour", "p_gen_mw", "p_pv_mw", "p_wind_mw", "p_curtailed_mw", "p_charge_mw",
                    "p_discharge_mw", "soc_mwh", "p_buy_mw", "p_sell_mw", "p_load_mw"]
CONVERGENCE_COLUMNS = ["scenario", "stage", "method", "iteration", "primal_residual", "dual_residual", "objective_usd",
                       "seconds"]


def _tables(results: list[ScenarioResult]) -> dict[str, pd.DataFrame]:
    sched, trades, pays, by_scenario, adn_rows, net_rows, conv = [], [], [], [], [], [], []
    for r in results:
        day, res, bg = r.day, r.clearing, r.bargain
        s = day.scenario
        fd = day.adn.feeder
        B, H = fd.base_mva, day.adn.hours
        names = [d.name for d in day.mgs]
        for sc in r.schedules:
            sched.append(sc.table.assign(scenario=s, agent=sc.name))
        fee_income = np.zeros(H)
        for m, n in day.pairs:
            p = res.agreed_pu[m, n] * B  # m's sale to n
            fee = day.mgs[m].fee_usd_per_mwh[partner_row(m, n)] * np.abs(p)
            fee_income += fee
            trades.append(pd.DataFrame({
                "scenario": s, "seller": np.where(p >= 0, names[m], names[n]),
                "buyer": np.where(p >= 0, names[n], names[m]), "hour": np.arange(H), "p_mw": np.abs(p), "fee_usd": fee,
            }))
        for m, n in r.traded:
            pmn = bg.payments_usd[m, n]
            payer, payee = (names[m], names[n]) if pmn >= 0 else (names[n], names[m])
            pays.append({"scenario": s, "payer": payer, "payee": payee, "payment_usd": abs(pmn)})
        group_of = {m: gi for gi, g in enumerate(bg.groups) for m in g}
        for m, name in enumerate(names):
            paid = float(bg.payments_usd[m].sum())
            by_scenario.append({
                "scenario": s, "agent": name, "weight_days": day.weight_days,
                "cost_standalone_usd": r.alone[m].cost_usd,
                "cost_disagreement_usd": r.disagreement_usd[m], "cost_before_payments_usd": r.before_payments_usd[m],
                "payment_usd": paid, "cost_cooperative_usd": r.before_payments_usd[m] + paid,
                "gain_before_payments_usd": r.disagreement_usd[m] - r.before_payments_usd[m],
                "gain_usd": bg.gains_usd[m], "bargaining_power": day.mgs[m].bargaining_power, "group": group_of[m],
            })
        adn = r.adn
        adn_rows.append(pd.DataFrame({
            "scenario": s, "hour": np.arange(H), "loss_mw": adn.flow.loss_pu(fd).sum(axis=0) * B,
            "import_mw": adn.p_substation_pu * B, "fee_income_usd": fee_income,
        }))
        net_rows.append(bus_table(fd, scenario_index(np.array([s]), H), {"v_pu": adn.flow.v_pu}))
        for stage, c in (("clearing", r.central), ("disagreement", r.central_notrade)):
            conv.append(pd.DataFrame([{
                "scenario": s, "stage": stage, "method": "centralised", "iteration": 0, "primal_residual": 0.0,
                "dual_residual": 0.0, "objective_usd": c.objective_usd, "seconds": c.seconds,
            }]))
        conv.append(pd.DataFrame(r.notrade.history).assign(scenario=s, stage="disagreement", method="atc"))
        conv.append(pd.DataFrame(res.history).assign(scenario=s, stage="clearing", method="atc_admm"))
        if bg.history:
            conv.append(pd.DataFrame(bg.history).assign(scenario=s, stage="sharing", method="admm", objective_usd=np.nan))
    agents_by_scenario = pd.DataFrame(by_scenario)
    cols = ["cost_disagreement_usd", "cost_cooperative_usd", "gain_usd"]
    annual = agents_by_scenario.assign(**{c: agents_by_scenario[c] * agents_by_scenario["weight_days"] for c in cols})
    agents = annual.groupby("agent", sort=False)[cols].sum().reset_index()
    agents["bargaining_power"] = agents_by_scenario.groupby("agent", sort=False)["bargaining_power"].first().to_numpy()
    return {
        "schedule": pd.concat(sched, ignore_index=True)[SCHEDULE_COLUMNS],
        "trades": pd.concat(trades, ignore_index=True) if trades else pd.DataFrame(
            columns=["scenario", "seller", "buyer", "hour", "p_mw", "fee_usd"]),
        "payments": pd.DataFrame(pays, columns=["scenario", "payer", "payee", "payment_usd"]),
        "agents": agents,
        "agents_by_scenario": agents_by_scenario,
        "adn": pd.concat(adn_rows, ignore_index=True),
        "network": pd.concat(net_rows, ignore_index=True),
        "convergence": pd.concat(conv, ignore_index=True)[CONVERGENCE_COLUMNS],
    }


def scenario_record(r: ScenarioResult) -> dict[str, Any]:
    """The manifest's record of one typical day: both markets, centralised and distributed."""
    c, d, nt, cnt = r.central, r.clearing, r.notrade, r.central_notrade
    return {
        "scenario": r.day.scenario, "weight_days": r.day.weight_days,
        "disagreement_centralised_usd": cnt.objective_usd, "disagreement_distributed_usd": nt.objective_usd,
        "disagreement_gap": (nt.objective_usd - cnt.objective_usd) / max(abs(cnt.objective_usd), 1.0),
        "disagreement_iterations": nt.iterations,
        "centralised_objective_usd": c.objective_usd, "centralised_status": c.status,
        "centralised_gap_rel": c.gap_rel, "disagreement_centralised_status": cnt.status,
        "disagreement_centralised_gap_rel": cnt.gap_rel, "centralised_s": c.seconds, "distributed_objective_usd": d.objective_usd,
        "gap": (d.objective_usd - c.objective_usd) / max(abs(c.objective_usd), 1.0),
        "iterations": d.iterations, "distributed_s": d.seconds, "disagreement_s": nt.seconds + r.build_s,
        "pcc_mismatch_mw": d.history[-1]["pcc_mismatch_mw"], "reciprocity_mw": d.history[-1]["reciprocity_mw"],
        "payment_iterations": r.bargain.iterations, "max_dv_pu": r.verification.max_dv_pu,
    }


def dispatch_stage(case: Case, out_dir: Path, run_key: str | None = None,
                   scenarios: list[int] | None = None) -> dict[str, Any]:
    days, digests = dispatch_inputs(case, out_dir, scenarios)
    with stage_writer(out_dir, case, "dispatch", inputs=digests) as w:
        with w.phase("solve"):
            results = [solve_day(d, case) for d in days]
        max_dv = max(r.verification.max_dv_pu for r in results)
        if not all(r.verification.tight for r in results):
            raise SolveError(
                f"the ADN's SOC relaxation is not tight at the dispatch (max |V_socp − V_ac| {max_dv:.1e} pu): "
                "the operating point is not physical; no results were written"
            )
        with w.phase("tables"):
            tables = _tables(results)
            for name, df in tables.items():
                w.table(name, df)
        with w.phase("figures"):
            for name, fig in figures(tables).items():
                w.figure(name, fig)
        per_scenario = pd.DataFrame([scenario_record(r) for r in results])
        weights = per_scenario["weight_days"].to_numpy()
        agents = tables["agents"]
        summary = {
            "scenarios": len(results),
            "centralised_usd": float(weights @ per_scenario["centralised_objective_usd"]),
            "distributed_usd": float(weights @ per_scenario["distributed_objective_usd"]),
            "max_gap": float(per_scenario["gap"].abs().max()),
            "max_iterations": int(per_scenario["iterations"].max()),
            "max_pcc_mismatch_mw": float(per_scenario["pcc_mismatch_mw"].max()),
            "max_reciprocity_mw": float(per_scenario["reciprocity_mw"].max()),
            "max_dv_pu": float(per_scenario["max_dv_pu"].max()),
            "total_gain_usd": float(agents["gain_usd"].sum()),
            "gains_usd": dict(zip(agents["agent"], agents["gain_usd"].round(2), strict=True)),
            "inaccurate_references": inaccurate_references(results),
        }
        w.record(run_key=run_key, objective=summary["distributed_usd"],
                 solver={"name": "CLARABEL", "method": "ATC + closed-form ADMM; centralised reference"},
                 scenarios=per_scenario.to_dict("records"), summary=summary)
    return summary


def inaccurate_references(results: list[ScenarioResult]) -> list[dict[str, Any]]:
    """The centralised solves that did not reach the reference accuracy (their status and gap)."""
    return [{"scenario": r.day.scenario, "market": market, "status": c.status, "gap_rel": c.gap_rel}
            for r in results for market, c in (("disagreement", r.central_notrade), ("clearing", r.central))
            if c.status != "optimal"]


def figures(tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
    figs: dict[str, Any] = {}
    conv = tables["convergence"]
    fig, ax = new_figure(7, 4)
    for s, g in conv[(conv["stage"] == "clearing") & (conv["method"] == "atc_admm")].groupby("scenario"):
        ax.semilogy(g["iteration"], g["primal_residual"], label=f"scenario {s}")
    ax.set_xlabel("iteration")
    ax.set_ylabel("primal residual (MW)")
    ax.set_title("Distributed clearing: PCC mismatch and trade reciprocity")
    ax.legend(fontsize=7, ncol=2)
    figs["convergence"] = fig
    tr = tables["trades"]
    fig, ax = new_figure(7, 4)
    if len(tr):
        busiest = tr.groupby("scenario")["p_mw"].sum().idxmax()
        t = tr[tr["scenario"] == busiest]
        bottom = np.zeros(24)
        for (seller, buyer), g in t.groupby(["seller", "buyer"]):
            vals = np.zeros(24)
            vals[g["hour"].to_numpy()] = g["p_mw"].to_numpy()
            if vals.max() > 1e-4:
                ax.bar(np.arange(24), vals, bottom=bottom, label=f"{seller} → {buyer}")
                bottom += vals
        ax.set_title(f"Bilateral trades, typical day {busiest}")
        if bottom.any():
            ax.legend(fontsize=7)
    ax.set_xlabel("hour")
    ax.set_ylabel("traded power (MW)")
    figs["trades"] = fig
    ag = tables["agents"]
    fig, ax = new_figure(6, 4)
    x = np.arange(len(ag))
    ax.bar(x - 0.2, ag["cost_disagreement_usd"] / 1e3, 0.4, label="without trading (tariffs only)")
    ax.bar(x + 0.2, ag["cost_cooperative_usd"] / 1e3, 0.4, label="with trading and payments")
    ax.set_xticks(x, ag["agent"])
    ax.set_ylabel("annual cost (kUSD)")
    ax.legend()
    figs["costs"] = fig
    return figs


def report(case: Case, out_dir: Path, summary: dict[str, Any], options: dict[str, Any]) -> list[Line]:
    """What ``adnstudy dispatch`` prints."""
    s = summary
    gains = ", ".join(f"{k} {v:,.2f}" for k, v in s["gains_usd"].items())
    span = "per year" if not options.get("scenarios") else "for the chosen typical day(s) x their weights"
    return [
        (f"{case.name}: {s['scenarios']} typical day(s); market cost {s['distributed_usd']:,.2f} USD {span} "
         f"(centralised {s['centralised_usd']:,.2f}, max gap {s['max_gap']:.1e}); at most {s['max_iterations']} "
         f"ATC/ADMM iterations, PCC mismatch {s['max_pcc_mismatch_mw']:.1e} MW, reciprocity "
         f"{s['max_reciprocity_mw']:.1e} MW; MG gains {gains} USD", False),
        *reference_warning(s.get("inaccurate_references", [])),
        (f"results: {out_dir / 'dispatch'}", False),
    ]


def reference_warning(inaccurate: list[dict[str, Any]]) -> list[Line]:
    """A warning line when a centralised reference is short of its accuracy."""
    if not inaccurate:
        return []
    which = ", ".join(f"day {r['scenario']} ({r['market']})" for r in inaccurate)
    gaps = [r["gap_rel"] for r in inaccurate if r["gap_rel"] is not None]
    worst = f", relative duality gap up to {max(gaps):.1e}" if gaps else ""
    return [(f"WARNING: the centralised reference of {which} ended '{inaccurate[0]['status']}'{worst} (wanted "
             f"<= {REFERENCE.accept_gap_rel:g}): the distributed results of those days are judged against a less "
             "accurate reference; see manifest scenarios[].centralised_status", True)]
