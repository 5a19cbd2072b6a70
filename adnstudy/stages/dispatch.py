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
from adnstudy.config.schema import own_strategy
from adnstudy.data.typical import YEAR_DAYS, typical_days
from adnstudy.errors import CaseError, IncompleteResultsError, SolveError, SolverStatusError
from adnstudy.formulation.verify import Verification, verify_against_ac
from adnstudy.problems.dispatch import (
    ADNAgent,
    ADNSolution,
    DayData,
    PlannedAssets,
    centralised_model,
    diagnose_day,
    dispatch_days,
    planned_assets,
)
from adnstudy.problems.microgrid import MicrogridAgent, MicrogridSchedule
from adnstudy.results.figures import legend_below, new_figure, paired_bars
from adnstudy.results.store import read_manifest
from adnstudy.results.tables import bus_table, existing_table, scenario_index, zero_below
from adnstudy.solve.bargaining import BargainResult, bargain
from adnstudy.solve.conic import (
    AGENT,
    REFERENCE,
    ConicSettings,
    clarabel_accuracy,
    quiet_solver,
    solve_conic,
)
from adnstudy.solve.coordination import CoordinationResult, coordinate, partner_row
from adnstudy.solve.size import check_dispatch_size
from adnstudy.stages.registry import Line, checked_inputs, read_inputs, stage_writer

#: A pair counts as trading partners when it traded more than this in some hour (MW).
TRADED_MW = 1e-4
#: Statuses of a centralised solve that mean "no feasible point" (Clarabel sometimes stops at its
#: iteration limit instead of certifying infeasibility).
NO_POINT = ("infeasible", "infeasible_inaccurate", "user_limit")


def dispatch_inputs(case: Case, out_dir: Path, scenarios: list[int] | None = None, plan: bool = True
                    ) -> tuple[list[DayData], dict[str, str | None], dict[str, Any] | None]:
    """Each chosen typical day's data for the agents; the digests of the tables read; the record of the plan
    whose network the ADN operates (None: the bare feeder)."""
    feeder = checked_inputs(case, "dispatch").feeder
    k = case.config.clustering.k if case.config.clustering is not None else 1
    check_dispatch_size(case, feeder, days=len(scenarios) if scenarios else k)  # before anything is read or built
    tables, digests = read_inputs(case, out_dir, "dispatch", {"plan": plan})
    td = typical_days(case, tables["cluster", "typical"], tables["cluster", "weights"])
    assets, plan_record = None, None
    if ("plan", "investment") in tables:
        source = out_dir / "plan"
        investment = tables["plan", "investment"]
        assets = planned_assets(case, feeder, td, investment, str(source))
        manifest = read_manifest(out_dir, "plan") or {}
        built = investment[investment["build"].astype(bool)]
        plan_record = {
            "folder": str(source), "run_key": manifest.get("run_key"), "created_utc": manifest.get("created_utc"),
            "investment_sha256": digests["plan/investment"], "sites_built": len(built),
            "capacity_mw": {str(t): float(g["capacity_mw"].sum()) for t, g in built.groupby("tech")},
        }
    days = dispatch_days(case, feeder, td, assets)
    if scenarios:
        have = [d.scenario for d in days]
        unknown = [s for s in scenarios if s not in have]
        if unknown:
            raise CaseError(f"--scenario {unknown[0]}: no such typical day (the typical days are {have})")
        days = [d for d in days if d.scenario in scenarios]
    return days, digests, plan_record


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
    def problems(self) -> list[str]:
        """Why this day's results are not final (empty: converged, and the relaxation is tight)."""
        out = [f"{what}: {r.message}" for what, r in (("disagreement market", self.notrade),
                                                       ("clearing", self.clearing), ("payments", self.bargain))
               if not r.converged]
        if not self.verification.tight:
            out.append(f"the ADN's SOC relaxation is not tight (max |V_socp − V_ac| {self.verification.max_dv_pu:.1e} "
                       "pu): the operating point is not physical")
        return out

    @property
    def converged(self) -> bool:
        return not self.problems

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


def solve_day(day: DayData, case: Case, *, accelerate: bool = True) -> ScenarioResult:
    """One typical day: disagreement and clearing (each centralised and distributed), bargaining, AC check.

    ``accelerate=False`` runs the plain ATC + ADMM (no Anderson acceleration, the clearing started cold from
    the disagreement market's schedules): the comparison of ``benchmarks/dispatch.py``.
    """
    co = case.config.market.coordination  # type: ignore[union-attr]
    B, H = day.adn.feeder.base_mva, day.adn.hours
    settings = dict(hours=H, base_mva=B, rho_pcc=co.rho_pcc_usd_per_mw2h * B**2,
                    rho_trade=co.rho_trade_usd_per_mw2h * B**2, tol_pu=co.tol_mw / B, tol_dual_pu=co.dual_tol_mw / B,
                    tol_objective=co.tol_objective, max_iter=co.max_iter,
                    anderson=co.anderson_memory if accelerate else 0)
    solver = case.config.solver
    user = solver.options if own_strategy(solver.name) else {}
    conic, reference = AGENT.with_user(user), REFERENCE.with_user(user)
    with quiet_solver():
        central_notrade = _central(day, False, reference)
        central = _central(day, True, reference)
        t = time.perf_counter()
        adn = ADNAgent(day.adn, conic)
        mgs = [MicrogridAgent(d, conic) for d in day.mgs]
        alone = [a.solve_alone() for a in mgs]  # network-blind: the starting point of both markets
        build_s = time.perf_counter() - t
        notrade = coordinate(adn, mgs, day.pairs, alone, trading=False, strict=False, **settings)
        # the clearing starts where the disagreement market ended: its PCC prices, penalty and exports
        clearing = coordinate(adn, mgs, day.pairs, notrade.responses, strict=False,
                              warm=notrade.state if accelerate else None, **settings)
    disagreement = np.array([sc.cost_usd for sc in notrade.responses])
    before = np.array([sc.cost_usd for sc in clearing.responses])
    traded = [(m, n) for m, n in day.pairs if np.max(np.abs(clearing.agreed_pu[m, n])) * B > TRADED_MW]
    # an MG that traded with no one gains nothing: what separates its two costs is below the tolerance
    # (else it is a real effect of the others' trades on the network, and stands)
    alone_mgs = [m for m in range(len(day.mgs)) if not any(m in pair for pair in traded)]
    for m in alone_mgs:
        if abs(disagreement[m] - before[m]) <= co.tol_objective * max(abs(disagreement[m]), 1.0):
            before[m] = disagreement[m]
    powers = np.array([d.bargaining_power for d in day.mgs])
    shares = bargain(disagreement - before, powers, traded, tol=co.payment_tol, max_iter=co.payment_max_iter,
                     strict=False)
    # AC check of the ADN's operating point (its own targets are the PCC exports it planned for)
    p_own, q_own = clearing.upper.injections(day.adn)
    net_p = day.adn.p_load_pu - p_own
    np.add.at(net_p, day.adn.mg_pos, -clearing.targets_pu)
    check = verify_against_ac(day.adn.feeder, clearing.upper.flow, net_p, day.adn.q_load_pu - q_own)
    return ScenarioResult(
        day=day, central=central, central_notrade=central_notrade, alone=alone, notrade=notrade, clearing=clearing,
        bargain=shares, disagreement_usd=disagreement, before_payments_usd=before, traded=traded,
        verification=check, build_s=build_s,
    )


SCHEDULE_COLUMNS = ["scenario", "agent", "hour", "p_gen_mw", "p_pv_mw", "p_wind_mw", "p_curtailed_mw", "p_charge_mw",
                    "p_discharge_mw", "soc_mwh", "p_buy_mw", "p_sell_mw", "p_load_mw"]
CONVERGENCE_COLUMNS = ["scenario", "stage", "method", "iteration", "primal_residual", "dual_residual", "objective_usd",
                       "seconds"]


def _tables(results: list[ScenarioResult], tol_mw: float) -> dict[str, pd.DataFrame]:
    """The stage's tables; powers below the coordination tolerance ``tol_mw`` are exact zeros."""
    sched, trades, pays, by_scenario, adn_rows, net_rows, conv, units, existing = [], [], [], [], [], [], [], [], []
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
            p = np.where(np.abs(p) < tol_mw, 0.0, p)  # below the coordination tolerance: no trade
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
                "converged": r.converged,
            })
        adn = r.adn
        a = day.adn.assets
        avail = a.avail[a.res] * a.capacity_pu[a.res, None] if a is not None else np.zeros((0, H))
        adn_rows.append(pd.DataFrame({
            "scenario": s, "hour": np.arange(H), "loss_mw": adn.flow.loss_pu(fd).sum(axis=0) * B,
            "import_mw": adn.p_substation_pu * B, "fee_income_usd": fee_income,
            "p_dg_mw": adn.p_dg_pu.sum(axis=0) * B, "p_curtailed_mw": (avail - adn.p_dg_pu).sum(axis=0) * B,
            "p_storage_mw": adn.storage_net_pu.sum(axis=0) * B,
        }))
        if a is not None:
            units.append(unit_table(a, adn, s, B))
        if day.adn.existing is not None:  # adn.p_dg_mw is the plan's units; these are the feeder's own
            existing.append(existing_table(fd, scenario_index(np.array([s]), H), day.adn.existing.available * B,
                                           adn.p_existing_pu * B, adn.q_existing_pu * B))
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
    agents["converged"] = agents_by_scenario.groupby("agent", sort=False)["converged"].all().to_numpy()
    trade_table = pd.concat(trades, ignore_index=True) if trades else pd.DataFrame(
        columns=["scenario", "seller", "buyer", "hour", "p_mw", "fee_usd"])
    out = {
        "schedule": zero_below(pd.concat(sched, ignore_index=True)[SCHEDULE_COLUMNS], tol_mw),
        "trades": trade_table,
        "payments": pd.DataFrame(pays, columns=["scenario", "payer", "payee", "payment_usd"]),
        "agents": agents,
        "agents_by_scenario": agents_by_scenario,
        "adn": zero_below(pd.concat(adn_rows, ignore_index=True), tol_mw),
        "network": pd.concat(net_rows, ignore_index=True),
        "convergence": pd.concat(conv, ignore_index=True)[CONVERGENCE_COLUMNS],
    }
    if units:
        out["adn_units"] = zero_below(pd.concat(units, ignore_index=True), tol_mw)
    if existing:
        out["existing"] = zero_below(pd.concat(existing, ignore_index=True), tol_mw)
    return out


def unit_table(a: PlannedAssets, adn: ADNSolution, scenario: int, base_mva: float) -> pd.DataFrame:
    """One row per (planned unit, hour) of a day: output, availability, storage energy."""
    H = adn.p_substation_pu.shape[0]
    n = len(a.site)
    p = np.zeros((n, H))
    q = np.zeros((n, H))
    soc = np.zeros((n, H))
    avail = np.zeros((n, H))
    p[a.res], q[a.res] = adn.p_dg_pu, adn.q_dg_pu
    avail[a.res] = a.avail[a.res] * a.capacity_pu[a.res, None]
    p[a.storage], soc[a.storage] = adn.storage_net_pu, adn.soc_pu
    avail[a.storage] = a.capacity_pu[a.storage, None]
    return pd.DataFrame({
        "scenario": scenario, "site": np.repeat(a.site, H), "bus": np.repeat(a.bus, H), "tech": np.repeat(a.tech, H),
        "hour": np.tile(np.arange(H), n), "p_mw": p.ravel() * base_mva, "q_mvar": q.ravel() * base_mva,
        "p_available_mw": avail.ravel() * base_mva, "soc_mwh": soc.ravel() * base_mva,
    })


def relative_gap(distributed: CoordinationResult, central: CentralSolve) -> float:
    """Distributed − centralised objective, relative to the day's gross cost Σ|agent cost| (at least the net
    objective and 1 USD): MGs that sell and MGs that buy cancel in the net objective, which can be near 0."""
    gross = sum(abs(r.cost_usd) for r in distributed.responses) + abs(distributed.upper.cost_usd)
    return (distributed.objective_usd - central.objective_usd) / max(gross, abs(central.objective_usd), 1.0)


def scenario_record(r: ScenarioResult) -> dict[str, Any]:
    """The manifest's record of one typical day: both markets, centralised and distributed."""
    c, d, nt, cnt = r.central, r.clearing, r.notrade, r.central_notrade
    return {
        "scenario": r.day.scenario, "weight_days": r.day.weight_days,
        "disagreement_centralised_usd": cnt.objective_usd, "disagreement_distributed_usd": nt.objective_usd,
        "disagreement_gap": relative_gap(nt, cnt), "disagreement_gap_usd": nt.objective_usd - cnt.objective_usd,
        "disagreement_iterations": nt.iterations,
        "centralised_objective_usd": c.objective_usd, "centralised_status": c.status,
        "centralised_gap_rel": c.gap_rel, "disagreement_centralised_status": cnt.status,
        "disagreement_centralised_gap_rel": cnt.gap_rel, "centralised_s": c.seconds, "distributed_objective_usd": d.objective_usd,
        "gap": relative_gap(d, c), "gap_usd": d.objective_usd - c.objective_usd,
        "iterations": d.iterations, "distributed_s": d.seconds, "disagreement_s": nt.seconds + r.build_s,
        "pcc_mismatch_mw": d.history[-1]["pcc_mismatch_mw"], "reciprocity_mw": d.history[-1]["reciprocity_mw"],
        "payment_iterations": r.bargain.iterations, "max_dv_pu": r.verification.max_dv_pu,
        "converged": r.converged, "dual_residual_mw": d.history[-1]["dual_residual"],
    }


def dispatch_stage(case: Case, out_dir: Path, run_key: str | None = None,
                   scenarios: list[int] | None = None, plan: bool = True) -> dict[str, Any]:
    """Every chosen typical day, each on its own: a day that misses its tolerance (or fails) loses nothing
    of the others. All solved days are written; days that are not final are marked (``converged`` false in
    the tables, their residuals in the manifest) and the stage then raises
    :class:`~adnstudy.errors.IncompleteResultsError` (exit 1)."""
    days, digests, plan_record = dispatch_inputs(case, out_dir, scenarios, plan)
    co = case.config.market.coordination  # type: ignore[union-attr]
    results: list[ScenarioResult] = []
    failed: dict[int, str] = {}
    with stage_writer(out_dir, case, "dispatch", inputs=digests) as w:
        with w.phase("solve"):
            for d in days:
                try:
                    results.append(solve_day(d, case))
                except SolveError as exc:
                    if len(days) == 1:
                        raise
                    failed[d.scenario] = str(exc)
        if not results:  # every day failed: nothing to write
            first = next(iter(failed.values()))
            raise SolveError(f"every typical day failed; typical day {next(iter(failed))}: {first}")
        not_final = {r.day.scenario: r.problems for r in results if r.problems}
        with w.phase("tables"):
            tables = _tables(results, co.tol_mw)
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
            "network": "planned network" if plan_record else "bare feeder",
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
        complete = not not_final and not failed
        w.record(run_key=run_key, objective=summary["distributed_usd"], complete=complete, plan=plan_record,
                 year_days=YEAR_DAYS,
                 solver={"name": "CLARABEL", "method": "ATC + closed-form ADMM; centralised reference"},
                 scenarios=per_scenario.to_dict("records"), summary=summary,
                 not_converged={str(k): v for k, v in not_final.items()},
                 failed={str(k): v for k, v in failed.items()})
    if not complete:
        lines = [f"typical day {k}: {'; '.join(v)}" for k, v in not_final.items()]
        lines += [f"typical day {k} failed, not in the tables: {v}" for k, v in failed.items()]
        raise IncompleteResultsError(
            f"{len(not_final) + len(failed)} of {len(days)} typical day(s) are not final; the results of every "
            f"solved day were written to {out_dir / 'dispatch'}, these marked converged = false (manifest "
            "'not_converged', 'failed'):\n  " + "\n  ".join(lines))
    return summary


def inaccurate_references(results: list[ScenarioResult]) -> list[dict[str, Any]]:
    """The centralised solves that did not reach the reference accuracy (their status and gap)."""
    return [{"scenario": r.day.scenario, "market": market, "status": c.status, "gap_rel": c.gap_rel}
            for r in results for market, c in (("disagreement", r.central_notrade), ("clearing", r.central))
            if c.status != "optimal"]


def figures(tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """The stage's figures from its tables: convergence, trades of every typical day, annual costs."""
    return {"convergence": convergence_figure(tables["convergence"]),
            "trades": trades_figure(tables["trades"], tables["agents_by_scenario"]),
            "costs": costs_figure(tables["agents"])}


def convergence_figure(conv: pd.DataFrame):
    fig, ax = new_figure(7, 4.4)
    for s, g in conv[(conv["stage"] == "clearing") & (conv["method"] == "atc_admm")].groupby("scenario"):
        ax.semilogy(g["iteration"], g["primal_residual"], label=f"typical day {s}")
    ax.set_xlabel("iteration")
    ax.set_ylabel("primal residual (MW)")
    ax.set_title("Distributed clearing: PCC mismatch and trade reciprocity")
    legend_below(fig, ax, max_columns=4, fontsize=7)
    return fig


def trades_figure(trades: pd.DataFrame, by_scenario: pd.DataFrame):
    """One panel per typical day (same scale), hourly trades stacked by (seller → buyer), one legend below."""
    days = by_scenario.groupby("scenario", sort=True)["weight_days"].first()
    n = len(days)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = new_figure(3.2 * cols + 1, 2.4 * rows + 1.2, rows, cols, squeeze=False, sharex=True, sharey=True)
    shown = trades[trades["p_mw"] > TRADED_MW]
    pairs = sorted(set(zip(shown["seller"], shown["buyer"], strict=True)))
    colour = {pair: f"C{i % 10}" for i, pair in enumerate(pairs)}
    hours = np.arange(24)
    top = 0.0
    for ax, (s, weight) in zip(axes.ravel(), days.items(), strict=False):
        day = shown[shown["scenario"] == s]
        bottom = np.zeros(24)
        for pair, g in day.groupby(["seller", "buyer"], sort=True):
            vals = np.zeros(24)
            vals[g["hour"].to_numpy()] = g["p_mw"].to_numpy()
            ax.bar(hours, vals, bottom=bottom, color=colour[pair], label=f"{pair[0]} → {pair[1]}")
            bottom += vals
        top = max(top, bottom.max())
        if not len(day):
            ax.text(0.5, 0.5, "no trades", transform=ax.transAxes, ha="center", va="center", color="0.5")
        ax.set_title(f"typical day {s} ({weight:.1f} d/yr)", fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("hour")
    for ax in axes[:, 0]:
        ax.set_ylabel("traded (MW)")
    axes[0, 0].set_ylim(0.0, 1.1 * top if top > 0 else 1.0)  # shared: the tallest stack with room above
    fig.suptitle("Bilateral trades per typical day")
    legend_below(fig, axes, max_columns=4, fontsize=8)
    return fig


def costs_figure(agents: pd.DataFrame):
    return paired_bars(agents["agent"], agents["cost_disagreement_usd"], agents["cost_cooperative_usd"],
                       ("without trading (tariffs only)", "with trading and payments"), "annual cost (kUSD/yr)",
                       "Annual cost of each MG without and with bilateral trading")


def report(case: Case, out_dir: Path, summary: dict[str, Any], options: dict[str, Any]) -> list[Line]:
    """What ``adnstudy dispatch`` prints."""
    s = summary
    gains = ", ".join(f"{k} {v:,.2f}" for k, v in s["gains_usd"].items())
    span = "per year" if not options.get("scenarios") else "for the chosen typical day(s) x their weights"
    return [
        (f"{case.name}: {s['scenarios']} typical day(s) on the {s['network']}; market cost {s['distributed_usd']:,.2f} USD {span} "
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
