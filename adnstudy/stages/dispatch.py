"""``adnstudy dispatch``: day-ahead MG–ADN coordination with bilateral trading, per typical day.

For each typical day of ``cluster`` (or one, ``--day``):

1. every MG solves alone with the ADN's tariffs (its disagreement point);
2. the clearing is solved centrally (the reference) and distributedly (ATC
   between the ADN and the MGs, closed-form-agreement ADMM among the MGs);
3. the Nash-bargaining payments are found by the closed-form payment ADMM;
4. the ADN's operating point is checked by the project's AC power flow.

Tables (``docs/results.md``): schedule, trades, payments, agents, agents_by_day,
adn, network, convergence; three figures; the manifest records both objectives,
their gap, iterations and seconds per day.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adnstudy.config.load import Case
from adnstudy.config.references import case_feeder
from adnstudy.data.typical import typical_days
from adnstudy.errors import CaseError, SolveError
from adnstudy.formulation.verify import verify_against_ac
from adnstudy.problems.dispatch import (
    ADNAgent,
    DayData,
    MicrogridAgent,
    centralised_model,
    diagnose_day,
    dispatch_days,
    partner_row,
    solve_checked,
)
from adnstudy.results.store import StageWriter, manifest_digest, read_table
from adnstudy.solve.bargaining import BargainResult, bargain
from adnstudy.solve.coordination import CoordinationResult, coordinate

#: A pair counts as trading partners when it traded more than this in some hour (MW).
TRADED_MW = 1e-4


def dispatch_inputs(case: Case, out_dir: Path, day: int | None = None) -> list[DayData]:
    case.require("dispatch")
    feeder = case_feeder(case)
    typical = read_table(out_dir, "cluster", "typical", case)
    weights = read_table(out_dir, "cluster", "weights", case)
    days = dispatch_days(case, feeder, typical_days(case, typical, weights))
    if day is not None:
        chosen = [d for d in days if d.day == day]
        if not chosen:
            raise CaseError(f"--day {day}: the typical days are {[d.day for d in days]}", field="--day")
        days = chosen
    return days


def _central(day: DayData, trading: bool) -> dict[str, Any]:
    t = time.perf_counter()
    model = centralised_model(day, trading=trading)
    what = "clearing" if trading else "disagreement market (no bilateral trades)"
    try:
        solve_checked(model.problem, f"centralised {what} of day {day.day}")
    except SolveError:
        status = model.problem.status
        if status not in ("infeasible", "infeasible_inaccurate", "user_limit"):
            raise
        # Clarabel sometimes stops at its iteration limit instead of certifying infeasibility
        raise SolveError(f"the {what} of typical day {day.day} is infeasible (solver status "
                         f"'{status}'): {diagnose_day(day)}; no results were written") from None
    return {"objective_usd": float(model.problem.value), "status": model.problem.status,
            "seconds": time.perf_counter() - t}


def solve_day(day: DayData, case: Case) -> dict[str, Any]:
    """Everything for one typical day: disagreement and clearing (each centralised and distributed),
    bargaining, AC check."""
    co = case.config.market.coordination  # type: ignore[union-attr]
    B = day.adn.feeder.base_mva
    settings = dict(rho_pcc=co.rho_pcc_usd_per_mw2h * B**2, rho_trade=co.rho_trade_usd_per_mw2h * B**2,
                    tol_pu=co.tol_mw / B, tol_dual_pu=co.dual_tol_mw / B, tol_objective=co.tol_objective,
                    max_iter=co.max_iter)
    out: dict[str, Any] = {"day": day}
    out["central_notrade"] = _central(day, trading=False)
    out["central"] = _central(day, trading=True)
    t = time.perf_counter()
    adn = ADNAgent(day.adn)
    mgs = [MicrogridAgent(d) for d in day.mgs]
    alone = [a.solve_alone() for a in mgs]  # network-blind: the starting point of both markets
    out["build_s"] = time.perf_counter() - t
    notrade = coordinate(adn, mgs, day.pairs, alone, trading=False, **settings)
    res = coordinate(adn, mgs, day.pairs, notrade.schedules, **settings)
    out["alone"], out["notrade"], out["dist"], out["adn"] = alone, notrade, res, adn
    disagreement = np.array([sc.cost_usd for sc in notrade.schedules])
    cooperative = np.array([sc.cost_usd for sc in res.schedules])
    traded = [(m, n) for m, n in day.pairs if np.max(np.abs(res.agreed_pu[m, n])) * B > TRADED_MW]
    powers = np.array([d.bargaining_power for d in day.mgs])
    out["bargain"] = bargain(disagreement - cooperative, powers, traded, tol=co.payment_tol,
                             max_iter=co.payment_max_iter)
    out["disagreement"], out["before"], out["traded"] = disagreement, cooperative, traded
    # AC check of the ADN's operating point (its own targets are the PCC exports it planned for)
    net_p = day.adn.p_load_pu.copy()
    np.add.at(net_p, day.adn.mg_pos, -res.targets_pu)
    out["verification"] = verify_against_ac(day.adn.feeder, adn.block.flow, net_p, day.adn.q_load_pu)
    return out


def _tables(results: list[dict[str, Any]]) -> dict[str, pd.DataFrame]:
    sched, trades, pays, by_day, adn_rows, net_rows, conv = [], [], [], [], [], [], []
    for r in results:
        day: DayData = r["day"]
        res: CoordinationResult = r["dist"]
        bg: BargainResult = r["bargain"]
        B = day.adn.feeder.base_mva
        names = [d.name for d in day.mgs]
        H = day.adn.hours
        for sc in res.schedules:
            sched.append(sc.table.assign(day=day.day, agent=sc.name))
        fee_income = np.zeros(H)
        for m, n in day.pairs:
            p = res.agreed_pu[m, n] * B  # m's sale to n
            fee = day.mgs[m].fee_usd_per_mwh[partner_row(m, n)] * np.abs(p)
            fee_income += fee
            trades.append(pd.DataFrame({
                "day": day.day, "seller": np.where(p >= 0, names[m], names[n]),
                "buyer": np.where(p >= 0, names[n], names[m]), "hour": np.arange(H), "p_mw": np.abs(p), "fee_usd": fee,
            }))
        for m, n in r["traded"]:
            pmn = bg.payments_usd[m, n]
            payer, payee = (names[m], names[n]) if pmn >= 0 else (names[n], names[m])
            pays.append({"day": day.day, "payer": payer, "payee": payee, "payment_usd": abs(pmn)})
        group_of = {m: gi for gi, g in enumerate(bg.groups) for m in g}
        for m, name in enumerate(names):
            paid = float(bg.payments_usd[m].sum())
            by_day.append({
                "day": day.day, "agent": name, "weight_days": day.weight_days,
                "cost_standalone_usd": r["alone"][m].cost_usd,
                "cost_disagreement_usd": r["disagreement"][m], "cost_before_payments_usd": r["before"][m],
                "payment_usd": paid, "cost_cooperative_usd": r["before"][m] + paid,
                "gain_before_payments_usd": r["disagreement"][m] - r["before"][m], "gain_usd": bg.gains_usd[m],
                "bargaining_power": day.mgs[m].bargaining_power, "group": group_of[m],
            })
        adn: ADNAgent = r["adn"]
        flow = adn.block.flow
        adn_rows.append(pd.DataFrame({
            "day": day.day, "hour": np.arange(H), "loss_mw": (day.adn.feeder.r_pu @ flow.ell.value) * B,
            "import_mw": adn.block.p_sub.value * B, "fee_income_usd": fee_income,
        }))
        v = np.sqrt(np.maximum(flow.v.value, 0.0))
        bus_ids = day.adn.feeder.bus_ids
        net_rows.append(pd.DataFrame({
            "day": day.day, "hour": np.tile(np.arange(H), len(bus_ids)), "bus": np.repeat(bus_ids, H), "v_pu": v.ravel(),
        }))
        conv.append(pd.DataFrame([{
            "day": day.day, "stage": "clearing", "method": "centralised", "iteration": 0, "primal_residual": 0.0,
            "dual_residual": 0.0, "objective_usd": r["central"]["objective_usd"], "seconds": r["central"]["seconds"],
        }]))
        conv.append(pd.DataFrame([{
            "day": day.day, "stage": "disagreement", "method": "centralised", "iteration": 0, "primal_residual": 0.0,
            "dual_residual": 0.0, "objective_usd": r["central_notrade"]["objective_usd"],
            "seconds": r["central_notrade"]["seconds"],
        }]))
        conv.append(pd.DataFrame(r["notrade"].history).assign(day=day.day, stage="disagreement", method="atc"))
        conv.append(pd.DataFrame(res.history).assign(day=day.day, stage="clearing", method="atc_admm"))
        if bg.history:
            conv.append(pd.DataFrame(bg.history).assign(day=day.day, stage="sharing", method="admm", objective_usd=np.nan))
    agents_by_day = pd.DataFrame(by_day)
    cols = ["cost_disagreement_usd", "cost_cooperative_usd", "gain_usd"]
    annual = agents_by_day.assign(**{c: agents_by_day[c] * agents_by_day["weight_days"] for c in cols})
    agents = annual.groupby("agent", sort=False)[cols].sum().reset_index()
    agents["bargaining_power"] = agents_by_day.groupby("agent", sort=False)["bargaining_power"].first().to_numpy()
    schedule_cols = ["day", "agent", "hour", "p_gen_mw", "p_pv_mw", "p_wind_mw", "p_curtailed_mw", "p_charge_mw",
                     "p_discharge_mw", "soc_mwh", "p_buy_mw", "p_sell_mw", "p_load_mw"]
    conv_cols = ["day", "stage", "method", "iteration", "primal_residual", "dual_residual", "objective_usd", "seconds"]
    return {
        "schedule": pd.concat(sched, ignore_index=True)[schedule_cols],
        "trades": pd.concat(trades, ignore_index=True) if trades else pd.DataFrame(
            columns=["day", "seller", "buyer", "hour", "p_mw", "fee_usd"]),
        "payments": pd.DataFrame(pays, columns=["day", "payer", "payee", "payment_usd"]),
        "agents": agents,
        "agents_by_day": agents_by_day,
        "adn": pd.concat(adn_rows, ignore_index=True),
        "network": pd.concat(net_rows, ignore_index=True),
        "convergence": pd.concat(conv, ignore_index=True)[conv_cols],
    }


def dispatch_stage(case: Case, out_dir: Path, run_key: str | None = None, day: int | None = None) -> dict[str, Any]:
    days = dispatch_inputs(case, out_dir, day)
    with StageWriter(out_dir, "dispatch", case, inputs={"cluster": manifest_digest(out_dir, "cluster")}) as w:
        with w.phase("solve"):
            results = [solve_day(d, case) for d in days]
        max_dv = max(r["verification"].max_dv_pu for r in results)
        if not all(r["verification"].tight for r in results):
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
        per_day = []
        for r in results:
            c, dres = r["central"], r["dist"]
            nt, cnt = r["notrade"], r["central_notrade"]
            per_day.append({
                "day": r["day"].day, "weight_days": r["day"].weight_days,
                "disagreement_centralised_usd": cnt["objective_usd"], "disagreement_distributed_usd": nt.objective_usd,
                "disagreement_gap": (nt.objective_usd - cnt["objective_usd"]) / max(abs(cnt["objective_usd"]), 1.0),
                "disagreement_iterations": nt.iterations,
                "centralised_objective_usd": c["objective_usd"], "centralised_status": c["status"],
                "centralised_s": c["seconds"], "distributed_objective_usd": dres.objective_usd,
                "gap": (dres.objective_usd - c["objective_usd"]) / max(abs(c["objective_usd"]), 1.0),
                "iterations": dres.iterations, "distributed_s": dres.seconds,
                "disagreement_s": nt.seconds + r["build_s"],
                "pcc_mismatch_mw": dres.history[-1]["pcc_mismatch_mw"], "reciprocity_mw": dres.history[-1]["reciprocity_mw"],
                "payment_iterations": r["bargain"].iterations, "max_dv_pu": r["verification"].max_dv_pu,
            })
        pd_ = pd.DataFrame(per_day)
        weights = pd_["weight_days"].to_numpy()
        agents = tables["agents"]
        summary = {
            "days": len(results),
            "centralised_usd": float(weights @ pd_["centralised_objective_usd"]),
            "distributed_usd": float(weights @ pd_["distributed_objective_usd"]),
            "max_gap": float(pd_["gap"].abs().max()),
            "max_iterations": int(pd_["iterations"].max()),
            "max_pcc_mismatch_mw": float(pd_["pcc_mismatch_mw"].max()),
            "max_reciprocity_mw": float(pd_["reciprocity_mw"].max()),
            "max_dv_pu": float(pd_["max_dv_pu"].max()),
            "total_gain_usd": float(agents["gain_usd"].sum()),
            "gains_usd": dict(zip(agents["agent"], agents["gain_usd"].round(2), strict=True)),
        }
        w.record(run_key=run_key, objective=summary["distributed_usd"],
                 solver={"name": "CLARABEL", "method": "ATC + closed-form ADMM; centralised reference"},
                 days=per_day, summary=summary)
    return summary


def figures(tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs: dict[str, Any] = {}
    conv = tables["convergence"]
    fig, ax = plt.subplots(figsize=(7, 4))
    for d, g in conv[(conv["stage"] == "clearing") & (conv["method"] == "atc_admm")].groupby("day"):
        ax.semilogy(g["iteration"], g["primal_residual"], label=f"day {d}")
    ax.set_xlabel("iteration")
    ax.set_ylabel("primal residual (MW)")
    ax.set_title("Distributed clearing: PCC mismatch and trade reciprocity")
    ax.legend(fontsize=7, ncol=2)
    figs["convergence"] = fig
    tr = tables["trades"]
    fig, ax = plt.subplots(figsize=(7, 4))
    if len(tr):
        busiest = tr.groupby("day")["p_mw"].sum().idxmax()
        t = tr[tr["day"] == busiest]
        bottom = np.zeros(24)
        for (s, b), g in t.groupby(["seller", "buyer"]):
            vals = np.zeros(24)
            vals[g["hour"].to_numpy()] = g["p_mw"].to_numpy()
            if vals.max() > 1e-4:
                ax.bar(np.arange(24), vals, bottom=bottom, label=f"{s} → {b}")
                bottom += vals
        ax.set_title(f"Bilateral trades, typical day {busiest}")
        if bottom.any():
            ax.legend(fontsize=7)
    ax.set_xlabel("hour")
    ax.set_ylabel("traded power (MW)")
    figs["trades"] = fig
    ag = tables["agents"]
    fig, ax = plt.subplots(figsize=(6, 4))
    x = np.arange(len(ag))
    ax.bar(x - 0.2, ag["cost_disagreement_usd"] / 1e3, 0.4, label="without trading (tariffs only)")
    ax.bar(x + 0.2, ag["cost_cooperative_usd"] / 1e3, 0.4, label="with trading and payments")
    ax.set_xticks(x, ag["agent"])
    ax.set_ylabel("annual cost (kUSD)")
    ax.legend()
    figs["costs"] = fig
    for f in figs.values():
        plt.close(f)  # saved by the writer; pyplot need not keep them
    return figs
