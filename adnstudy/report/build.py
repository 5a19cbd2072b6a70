"""``adnstudy report DIR``: one readable account of a results folder, built only from its tables and manifests.

Sections follow the pipeline (case, base-case power flow, typical days,
reliability, plan, dispatch, coplan); a stage that did not run is listed as
"not run" with the command that runs it, never filled in. The document is
written by :mod:`adnstudy.report.doc` into ``DIR/report/`` (Markdown,
self-contained HTML, a CSV per table, a PNG per figure), through a hidden
folder swapped in whole, so a failed report leaves the previous one (or none).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.dates import DateFormatter

from adnstudy import __version__
from adnstudy.report import network_figures as nf
from adnstudy.report.doc import Document, Figure, Section, Table, Text, write_document
from adnstudy.report.results import Results, annual, open_results
from adnstudy.report.style import COLUMN_IN, PAGE_IN, TECH_COLOURS, figure, legend_below, style

REPORT_FOLDER = "report"
KUSD = 1e-3


def _num(value: Any, spec: str = ",.0f", unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:{spec}}{unit}"


# ================================================================ case


def case_section(r: Results) -> Section:
    rec = r.case_record
    sec = Section("Case")
    over = rec.get("overrides") or []
    sec.text(f"Case **{rec.get('name', '?')}** from `{rec.get('file', '?')}` (SHA-256 "
             f"`{str(rec.get('file_sha256', ''))[:12]}…`)" + (f", with `--set {' '.join(over)}`" if over else "")
             + f". Results folder `{r.out_dir}`; report by adnstudy {__version__}.")
    rows = []
    for f in r.stages:
        m = r.manifest(f)
        solver = m.get("solver") or {}
        status = ("not final" if m.get("complete") is False else "complete" if m.get("complete") else
                  solver.get("status") or (m.get("summary") or {}).get("outcome") or "")
        rows.append({"stage": f, "created_utc": m.get("created_utc"), "adnstudy_version": m.get("adnstudy_version"),
                     "run_key": str(m.get("run_key") or "")[:12], "options": ", ".join(
                         f"{k}={v}" for k, v in (m.get("options") or {}).items()),
                     "seconds": (m.get("timings_s") or {}).get("total"), "status": status})
    sec.add(Table("stages", "Stages in this folder", pd.DataFrame(rows),
                  note="From each stage's manifest: when it ran, which adnstudy wrote it, its run key (what "
                       "`adnstudy run` compares to decide what is up to date), its options and wall time.",
                  formats={"seconds": ".1f"}))
    if r.not_run:
        sec.text("Not run: " + ", ".join(f"**{s}**" for s in r.not_run) + " (each runs with `adnstudy <stage> "
                 "CASE --out DIR`; `adnstudy run CASE` runs every stage the case has sections for).")
    case = r.case
    if case is None:
        sec.text(f"Settings and feeder map left out: {r.case_problem}.")
        return sec
    feeder = r.feeder
    if feeder is not None:
        sec.text(f"Feeder **{feeder.name}**: {feeder.n_bus} buses, {feeder.n_branch} branches, {len(feeder.ties)} "
                 f"normally-open tie lines, base {feeder.base_mva:g} MVA / {feeder.voltage_text}, peak load "
                 f"{feeder.buses['p_mw'].sum():.3f} MW / {feeder.buses['q_mvar'].sum():.3f} Mvar.")
    cfg = case.config
    if cfg.profiles is not None:
        p = cfg.profiles
        src = f"SimBench `{p.simbench_code}`" if p.source == "simbench" else f"`{p.file}`"
        sec.text(f"Profiles: {', '.join(p.series)} from {src}.")
    sec.add(Table("settings", "Case settings", settings_table(cfg.model_dump(mode="json")),
                  note="Every scalar setting of the case (defaults file merged, `--set` applied), the file's SHA-256 "
                       "checked against the manifests; lists are summarised by their length."))
    if cfg.microgrids:
        mg = pd.DataFrame([{"microgrid": m.name, "bus": m.bus, "load_peak_mw": m.load_peak_mw, "pv_mw": m.pv_mw,
                            "wind_mw": m.wind_mw, "pcc_limit_mw": m.pcc_limit_mw,
                            "bargaining_power": m.bargaining_power} for m in cfg.microgrids])
        sec.add(Table("microgrids", "Microgrids", mg))
    return sec


def settings_table(config: dict[str, Any]) -> pd.DataFrame:
    skip = {"name", "description", "defaults", "microgrids"}
    rows = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        elif isinstance(value, list):
            if value and all(not isinstance(v, dict | list) for v in value) and len(value) <= 6:
                rows.append((prefix, ", ".join(map(str, value))))
            else:
                rows.append((prefix, f"{len(value)} items"))
        elif value is not None:
            rows.append((prefix, str(value)))

    for section, value in config.items():
        if section not in skip and value is not None:
            walk(section, value)
    return pd.DataFrame(rows, columns=["setting", "value"])


# ================================================================ power flow


def powerflow_section(r: Results) -> Section:
    sec = Section("Base-case power flow")
    feeder, case = r.feeder, r.case
    lay = nf.layout(feeder) if feeder is not None else None
    net = case.config.network if case is not None else None
    if r.has("powerflow"):
        s = r.summary("powerflow")
        sec.text(f"AC power flow of the feeder as it is (no DG) at its peak snapshot: losses "
                 f"{_num(s.get('p_loss_kw'), '.2f')} kW / {_num(s.get('q_loss_kvar'), '.2f')} kvar; lowest voltage "
                 f"{_num(s.get('v_min_pu'), '.4f')} pu at bus {s.get('v_min_bus')}.")
        if lay is not None:
            bus = r.table("powerflow", "bus").rename(columns={"snapshot": "hour"}).assign(scenario=0)
            with style():
                sec.add(Figure("powerflow_voltage", "Base-case voltage along each lateral, peak snapshot",
                               nf.voltage_by_lateral(lay, bus, "v_pu", v_min=net.v_min_pu, v_max=net.v_max_pu,
                                                     title="base case, peak snapshot",
                                                     snapshot_name=lambda *_: "the peak")))
    if r.has("powerflow_year"):
        s = r.summary("powerflow_year")
        sec.text(f"Every hour of the profiles ({_num(s.get('hours'), ',d')} hours, `powerflow --year`): "
                 f"{_num(s.get('energy_loss_mwh'), ',.1f')} MWh of losses and {_num(s.get('energy_import_mwh'), ',.0f')}"
                 f" MWh imported net of exports; lowest voltage {_num(s.get('v_min_pu'), '.4f')} pu at bus {s.get('v_min_bus')}.")
        summary = r.table("powerflow_year", "summary")
        sec.add(Figure("powerflow_year", "The feeder as it is over the year of profiles", year_figure(summary, net)))
        if lay is not None:
            bus = r.table("powerflow_year", "bus").rename(columns={"snapshot": "hour"}).assign(scenario=0)
            times = pd.to_datetime(summary.set_index("snapshot")["time"])
            with style():
                sec.add(Figure("powerflow_year_voltage", "Voltage envelope along each lateral over the year",
                               nf.voltage_by_lateral(lay, bus, "v_pu", v_min=net.v_min_pu, v_max=net.v_max_pu,
                                                     title="base case, every hour of the year",
                                                     snapshot_name=lambda _, h: f"{times[h]:%Y-%m-%d %H:%M}"),
                               note="Band: lowest to highest voltage over the hours; line: the mean; dashed: the "
                                    "hour with the lowest voltage anywhere."))
    return sec


def year_figure(summary: pd.DataFrame, net) -> Any:
    """Daily lowest voltage and daily losses over the year (from the hourly summary)."""
    day = pd.to_datetime(summary["time"]).dt.floor("D")
    v = summary.groupby(day)["v_min_pu"].min()
    loss = summary.groupby(day)["p_loss_mw"].sum() if "p_loss_mw" in summary else None
    with style():
        fig, axes = figure(PAGE_IN, 2.2, 1, 2 if loss is not None else 1, squeeze=False)
        a1 = axes[0][0]
        a1.plot(v.index, v.to_numpy(), lw=0.8, label="lowest voltage of the day")
        if net is not None:
            a1.axhline(net.v_min_pu, color="C3", ls="--", lw=0.8, label=f"limit {net.v_min_pu:g} pu")
        a1.set_ylabel("voltage (pu)")
        if loss is not None:
            a2 = axes[0][1]
            a2.plot(loss.index, loss.to_numpy(), lw=0.8, color="C1", label="losses of the day")
            a2.set_ylabel("energy lost (MWh/day)")
        for ax in axes[0]:
            ax.set_xlabel("date")
            ax.xaxis.set_major_formatter(DateFormatter("%b"))
        legend_below(fig, axes[0])
    return fig


# ================================================================ typical days


def cluster_section(r: Results) -> Section:
    s = r.summary("cluster")
    sec = Section("Typical days")
    sec.text(f"{s.get('k')} typical days (+ {s.get('scenarios', 0) - s.get('k', 0)} extreme) for "
             f"{s.get('days')} days of profiles, by K-means seeded with the density-peaks method; reconstruction RMSE "
             f"{_num(s.get('rmse'), '.4f')}" + (f" (k-means++ ×10: {_num(s['rmse_kmeans_pp'], '.4f')})"
                                                if "rmse_kmeans_pp" in s else "") + ".")
    if r.has("cluster", "metrics"):
        sec.add(Table("cluster_methods", "Clustering methods compared on the same days and K",
                      r.table("cluster", "metrics"),
                      note="Lower is better for sse, davies_bouldin, rmse, duration_rmse and the energy errors; higher "
                           "for silhouette (docs/results.md, `cluster/metrics`)."))
    weights = r.table("cluster", "weights")
    if r.has("cluster", "decision"):
        sec.add(Figure("decision_graph", "Density-peaks decision graph", decision_figure(
            r.table("cluster", "decision"), int(s.get("k", 0))),
            note="Left: local density ρ against the distance δ to a denser day; the seeds (largest γ = ρ·δ) "
                 "marked. Right: γ sorted, with the chosen K."))
    else:
        sec.text("Decision graph: not in these results (their cluster stage predates the `cluster/decision` "
                 "table; `adnstudy cluster CASE --out DIR` writes it).")
    sec.add(Figure("typical_days", "Typical days", typical_figure(r.table("cluster", "typical"), weights)))
    sec.add(Table("cluster_weights", "Scenarios and their weights", weights,
                  note="`weight_days`: days of a 365-day year the scenario stands for (what plan and dispatch "
                       "weight it by)."))
    return sec


def decision_figure(dec: pd.DataFrame, k: int):
    with style():
        fig, (a1, a2) = figure(PAGE_IN, 2.5, 1, 2)
        seed = dec["seed"].to_numpy(bool)
        a1.scatter(dec["rho"][~seed], dec["delta"][~seed], s=6, c="0.6", label="day")
        a1.scatter(dec["rho"][seed], dec["delta"][seed], s=22, c="C3", marker="D", label="seed (largest γ)")
        a1.set_xlabel("local density ρ (–)")
        a1.set_ylabel("distance to a denser day δ\n(scaled units)")
        g = np.sort(dec["gamma"].to_numpy())[::-1][: min(30, len(dec))]
        a2.plot(np.arange(1, len(g) + 1), g, marker="o", label="γ = ρ·δ, sorted")
        a2.axvline(k + 0.5, color="C3", ls="--", label=f"K = {k}")
        a2.set_xlabel("rank of the day by γ")
        a2.set_ylabel("γ (–)")
        legend_below(fig, (a1, a2))
    return fig


def typical_figure(typical: pd.DataFrame, weights: pd.DataFrame):
    series = list(dict.fromkeys(typical["series"]))
    w = weights.set_index("scenario")
    with style():
        fig, axes = figure(PAGE_IN, 2.4, 1, len(series), squeeze=False, sharey=True)
        for ax, name in zip(axes[0], series, strict=True):
            sub = typical[typical["series"] == name]
            for sc, grp in sub.groupby("scenario"):
                extreme = bool(w.loc[sc, "is_extreme"])
                ax.plot(grp["hour"], grp["value"], ls="--" if extreme else "-",
                        label=f"{sc} ({w.loc[sc, 'weight_days']:.0f} d/yr)" + (", extreme" if extreme else ""))
            ax.set_title(name)
            ax.set_xlabel("hour of the day")
            ax.set_xticks(range(0, 25, 6))
        axes[0][0].set_ylabel("per unit of peak or rating")
        legend_below(fig, axes[0][0], max_columns=5, title="scenario (days per year)")
    return fig


# ================================================================ reliability


RELIABILITY_NOTE = ("IEEE 1366 indices by fault enumeration: SAIFI interruptions/customer/yr, SAIDI h/customer/yr, "
                    "CAIDI h/interruption, ASAI fraction, EENS MWh/yr.")


def reliability_table(r: Results) -> Table | None:
    before = r.table("reliability", "reliability") if r.has("reliability", "reliability") else None
    after_from = next((f for f in ("plan", "reliability_plan") if r.has(f, "reliability")), None)
    after = r.table(after_from, "reliability") if after_from else None
    if before is None and after is None:
        return None
    base = (before if before is not None else after)[["index", "unit", "limit"]]
    df = base.copy()
    df.insert(1, "before", before["value"].to_numpy() if before is not None else np.nan)
    df.insert(2, "after_plan", after["value"].to_numpy() if after is not None else np.nan)
    if before is not None and after is not None:
        df["change_pct"] = (df["after_plan"] / df["before"] - 1.0) * 100
    note = RELIABILITY_NOTE + (" Before: the feeder as it is (`reliability` stage)." if before is not None else
                               " Before: the `reliability` stage did not run.") + (
        f" After: the planned network, islands supplied by the built units (`{after_from}/reliability`)."
        if after is not None else "")
    return Table("reliability", "Reliability indices before and after the plan", df, note=note,
                 formats={"change_pct": "+.1f"})


def reliability_section(r: Results) -> Section:
    sec = Section("Reliability of the feeder")
    sec.add(reliability_table(r))
    return sec


# ================================================================ plan


def plan_section(r: Results) -> Section:
    m = r.manifest("plan")
    s = m.get("summary") or {}
    sec = Section("Plan: RES siting and sizing")
    saving = s.get("saving_usd")
    sec.text(f"Status **{s.get('status')}**, annual cost **{_num(s.get('total_usd'))} USD/yr**"
             + (f" against {_num(s.get('baseline_total_usd'))} USD/yr with nothing built (saving {_num(saving)} "
                "USD/yr)" if saving is not None else "")
             + f"; proven gap {_num(s.get('gap'), '.1e')}; {s.get('built')} sites built, "
             f"{_num(s.get('res_capacity_mw'), '.3f')} MW of RES"
             + (f", {_num(s.get('storage_capacity_mw'), '.3f')} MW / {_num(s.get('storage_energy_mwh'), '.3f')} MWh "
                "of storage" if s.get("storage_capacity_mw") else "") + ".")
    inv = r.table("plan", "investment")
    built = inv[inv["build"]].drop(columns="build")
    sec.add(Table("plan_sites", "Built sites", built, note="Rows of `plan/investment` with a unit built "
                  f"({len(inv)} candidates in all)."))
    cap_max = ([site.max_mw for site in r.case.config.candidates.sites]
               if r.case is not None and r.case.config.candidates is not None else None)
    sec.add(Figure("sited_capacity", "Capacity built per candidate", sited_figure(inv, cap_max)))
    cost = r.table("plan", "cost")
    sec.add(Table("plan_cost", "Annual cost breakdown", cost,
                  note="The plan beside the no-investment baseline (the same operating model with nothing built)."))
    sec.add(Figure("cost_breakdown", "Annual cost of the plan and of the no-investment baseline", cost_figure(cost)))
    bus = r.table("plan", "bus")
    branch = r.table("plan", "branch")
    feeder = r.feeder
    net = r.case.config.network if r.case is not None else None
    if feeder is not None and net is not None:
        lay = nf.layout(feeder)
        inputs = nf.plan_map_inputs(bus, branch, inv, r.table("plan", "microgrid_exchange")
                                    if r.has("plan", "microgrid_exchange") else None)
        with style():
            sec.add(Figure("feeder_map", "The planned feeder", nf.feeder_map(
                feeder, lay, title=f"{feeder.name}: plan", **inputs),
                note="Buses coloured by their lowest voltage over every (typical day, hour) of the plan, branches by "
                     "their highest loading; dashed: normally-open tie lines."))
            sec.add(Figure("voltage_by_lateral", "Voltage envelope along each lateral",
                           nf.voltage_by_lateral(lay, bus, "v_pu", v_min=net.v_min_pu, v_max=net.v_max_pu,
                                                 title="plan: every typical day and hour"),
                           note="Band: lowest to highest voltage over the plan's hours; line: their mean (each typical "
                                "day counted once); dashed: the hour with the lowest voltage anywhere."))
        sec.add(Table("voltage_envelope", "Voltage envelope per lateral", nf.lateral_envelopes(lay, bus, "v_pu")))
    else:
        sec.text(f"Feeder map and voltages per lateral left out: {r.case_problem}.")
    rel = reliability_table(r)
    if rel is not None:
        sec.add(rel)
    sec.add(Table("plan_solve", "Solve record", solve_record(m),
                  note="From the plan's manifest: the branch-and-bound (or named solver), the re-solve with the "
                       "integers fixed, and the AC power-flow check of the optimum."))
    return sec


def solve_record(m: dict[str, Any]) -> pd.DataFrame:
    solver, ver, base, t = (m.get(k) or {} for k in ("solver", "verification", "baseline", "timings_s"))
    rows = [
        ("strategy", solver.get("strategy") or solver.get("name")),
        ("status", solver.get("status")),
        ("objective (USD/yr)", _num(solver.get("objective_usd"), ",.2f")),
        ("proven bound (USD/yr)", _num(solver.get("bound_usd"), ",.2f")),
        ("relative gap (target)", f"{_num(solver.get('gap'), '.2e')} ({_num(solver.get('gap_target'), 'g')})"),
        *([("iterations / day-SOCP solves / whole-model solves", f"{solver.get('iterations')} / {solver.get('block_solves')} / {solver.get('root_solves')}")]
          if solver.get("iterations") is not None else
          [("nodes / heuristic solves / failed nodes",
            f"{solver.get('nodes')} / {solver.get('heuristic_solves')} / {solver.get('failed_nodes')}")]),
        ("threads", solver.get("threads")),
        ("re-solve with integers fixed", f"{solver.get('resolve_status')} (duality gap "
                                         f"{_num(solver.get('resolve_gap_rel'), '.1e')})"),
        ("seconds: build / solve / re-solve / baseline",
         " / ".join(_num(t.get(k), ".1f") for k in ("build", "solve", "resolve", "baseline"))),
        ("AC check: largest |√v − |V_AC|| (pu)", _num(ver.get("max_dv_pu"), ".1e")),
        ("AC check: losses SOCP − AC (MW)", _num(ver.get("max_loss_difference_mw"), ".1e")),
        ("SOCP relaxation tight", ver.get("tight")),
        ("baseline status", base.get("status")),
    ]
    return pd.DataFrame([(k, "—" if v is None else str(v)) for k, v in rows], columns=["item", "value"])


def sited_figure(inv: pd.DataFrame, cap_max: list[float] | None = None):
    with style():
        fig, ax = figure(COLUMN_IN, 2.3)
        x = np.arange(len(inv))
        for tech, grp in inv.groupby("tech", sort=False):
            idx = x[inv["tech"].to_numpy() == tech]
            ax.bar(idx, grp["capacity_mw"], color=TECH_COLOURS.get(tech, "0.5"), label=tech)
        if cap_max is not None:
            ax.scatter(x, cap_max, marker="_", s=60, c="k", label="candidate's maximum")
        ax.set_xticks(x, [f"{b}\n{t}" for b, t in zip(inv["bus"], inv["tech"], strict=True)])
        ax.set_xlabel("candidate bus")
        ax.set_ylabel("capacity built (MW)")
        legend_below(fig, ax)
    return fig


def cost_figure(cost: pd.DataFrame):
    parts = cost[cost["item"] != "total"]
    with style():
        fig, ax = figure(COLUMN_IN, 2.4)
        cols = [("annual_usd", "plan"), ("baseline_annual_usd", "no investment")]
        bottom = np.zeros(2)
        for i, row in enumerate(parts.itertuples()):
            vals = np.array([getattr(row, c) for c, _ in cols], float)
            vals = np.nan_to_num(vals) * KUSD
            if np.allclose(vals, 0):
                continue
            ax.bar([0, 1], vals, 0.55, bottom=bottom, label=row.item.replace("_", " "), color=f"C{i}")
            bottom += vals
        ax.set_xticks([0, 1], [label for _, label in cols])
        ax.set_ylabel("annual cost (kUSD/yr)")
        legend_below(fig, ax, max_columns=3)
    return fig


# ================================================================ dispatch


def dispatch_section(r: Results) -> Section:
    m = r.manifest("dispatch")
    s = m.get("summary") or {}
    sec = Section("Dispatch: day-ahead market with bilateral trading")
    days = pd.DataFrame(m.get("scenarios") or [])
    if m.get("complete") is False:
        sec.text("**Not final**: some typical days did not converge or failed — "
                 + "; ".join(f"day {k}: {v}" for k, v in {**(m.get("not_converged") or {}),
                                                         **(m.get("failed") or {})}.items()) + ".")
    sec.text(f"{s.get('scenarios')} typical days on the {s.get('network')}; the MGs gain "
             f"**{_num(s.get('total_gain_usd'))} USD/yr** together from trading; distributed and centralised market "
             f"costs {_num(s.get('distributed_usd'))} and {_num(s.get('centralised_usd'))} USD/yr (largest gap of a "
             f"day {_num(s.get('max_gap'), '.1e')}, at most {s.get('max_iterations')} ATC + ADMM iterations).")
    w = days.set_index("scenario")["weight_days"] if len(days) else pd.Series(dtype=float)
    agents = r.table("dispatch", "agents").copy()
    by_sc = r.table("dispatch", "agents_by_scenario")
    pay = annual(by_sc, w, "payment_usd", ["agent"])
    agents.insert(4, "payment_usd", agents["agent"].map(pay).to_numpy())
    total_gain = agents["gain_usd"].sum()
    agents["share_of_gain"] = agents["gain_usd"] / total_gain if total_gain else np.nan
    agents["share_of_power"] = agents["bargaining_power"] / agents["bargaining_power"].sum()
    sec.add(Table("dispatch_agents", "Microgrids: annual costs, gains and payments", agents,
                  note="Disagreement: trading only with the ADN at its tariffs. Cooperative: with bilateral trades, "
                       "network fees and the Nash-bargaining payments (payment > 0: paid, < 0: received), summed over "
                       "the typical days weighted by their days per year."))
    sec.add(Figure("dispatch_costs", "Microgrids' annual costs and gains", agents_figure(agents)))
    adn = r.table("dispatch", "adn")
    adn_rows = {name: annual(adn, w, col) for name, col in (
        ("fee_income_usd_per_yr", "fee_income_usd"), ("losses_mwh_per_yr", "loss_mw"),
        ("import_mwh_per_yr", "import_mw"), ("dg_mwh_per_yr", "p_dg_mw"), ("curtailed_mwh_per_yr", "p_curtailed_mw"))}
    sec.add(Table("dispatch_adn", "The ADN: fee income and energy over the year",
                  pd.DataFrame([{"item": k, "value": v} for k, v in adn_rows.items()]),
                  note="Σ over typical days (weight_days) and hours of `dispatch/adn`."))
    trades = r.table("dispatch", "trades")
    if len(trades):
        t = trades.assign(w=trades["scenario"].map(w))
        pairs = (t.assign(mwh=t["p_mw"] * t["w"], fee=t["fee_usd"] * t["w"])
                 .groupby(["seller", "buyer"], as_index=False)[["mwh", "fee"]].sum()
                 .rename(columns={"mwh": "traded_mwh_per_yr", "fee": "fee_usd_per_yr"}))
        sec.add(Table("dispatch_trades", "Bilateral trades over the year", pairs))
    if len(days):
        cols = ["scenario", "weight_days", "centralised_objective_usd", "distributed_objective_usd", "gap", "iterations",
                "centralised_s", "distributed_s", "disagreement_iterations", "payment_iterations", "pcc_mismatch_mw",
                "reciprocity_mw", "max_dv_pu", "converged"]
        sec.add(Table("dispatch_days", "Distributed against centralised, per typical day",
                      days[[c for c in cols if c in days]],
                      note="Market cost of the day solved centrally (one SOCP, the reference) and by ATC + ADMM "
                           "without sharing private data; gap relative to the day's gross cost."))
    conv = r.table("dispatch", "convergence")
    sec.add(Figure("dispatch_convergence", "Convergence of the distributed clearing", convergence_figure(conv)))
    return sec


def agents_figure(agents: pd.DataFrame):
    with style():
        fig, (a1, a2) = figure(PAGE_IN, 2.3, 1, 2)
        x = np.arange(len(agents))
        a1.bar(x - 0.2, agents["cost_disagreement_usd"] * KUSD, 0.4, label="trading with the ADN only")
        a1.bar(x + 0.2, agents["cost_cooperative_usd"] * KUSD, 0.4, label="bilateral trading + payments")
        a1.set_xticks(x, agents["agent"])
        a1.set_ylabel("annual cost (kUSD/yr)")
        a2.bar(x - 0.2, agents["gain_usd"] * KUSD, 0.4, color="C2", label="gain")
        a2.bar(x + 0.2, agents["payment_usd"] * KUSD, 0.4, color="C4", label="payment made (< 0: received)")
        a2.axhline(0, color="0.3", lw=0.6)
        a2.set_xticks(x, agents["agent"])
        a2.set_ylabel("kUSD/yr")
        legend_below(fig, (a1, a2), max_columns=4)
    return fig


def convergence_figure(conv: pd.DataFrame):
    clearing = conv[(conv["stage"] == "clearing") & (conv["method"] != "centralised")]
    with style():
        fig, ax = figure(COLUMN_IN, 2.4)
        for sc, grp in clearing.groupby("scenario"):
            ax.semilogy(grp["iteration"], grp["primal_residual"].clip(lower=1e-12), label=f"day {sc}")
        ax.set_xlabel("ATC + ADMM iteration")
        ax.set_ylabel("primal residual (MW)")
        legend_below(fig, ax, max_columns=4)
    return fig


# ================================================================ coplan


def coplan_section(r: Results) -> Section:
    folder = "coplan" if r.has("coplan") else "coplan_centralised"
    s = r.summary(folder)
    sec = Section("Co-planning: MG and ADN investors by generalized Nash bargaining")
    if not r.has("coplan", "agents"):
        sec.text("Only the centralised welfare optimum ran (`adnstudy coplan --centralised`): the bargaining, the "
                 "alternation and the stability check did not.")
    else:
        sec.text(f"Outcome of the alternation: **{s.get('outcome')}** after {s.get('outer_iterations')} outer "
                 f"iterations ({s.get('deviation_moves', 0)} moves to a profitable deviation). Welfare "
                 f"{_num(s.get('welfare_usd'))} USD/yr against the centralised plan's "
                 f"{_num(s.get('centralised_welfare_usd'))} (gap {_num(s.get('welfare_gap'), '.1e')}); total gain "
                 f"{_num(s.get('total_gain_usd'))} USD/yr over planning alone. Individually rational: "
                 f"**{s.get('individually_rational')}**; stable (no unilateral change of an investor's own 0-1 "
                 f"decisions gains more than the tolerance): **{s.get('stable')}**, the best deviation gaining "
                 f"{_num(s.get('max_deviation_gain_usd'), ',.2f')} USD/yr.")
    inv = r.table(folder, "investment")
    wide = (inv.pivot_table(index=["investor", "candidate", "bus", "tech"], columns="plan", values="capacity_mw",
                            sort=False).reset_index())
    wide.columns = [f"{c}_mw" if c in ("alone", "coplan", "centralised") else c for c in wide.columns]
    sec.add(Table("coplan_investment", "Capacity per investor's candidate: alone, co-planned, centralised", wide))
    sec.add(Figure("coplan_capacity", "Capacity built per investor", capacity_figure(inv)))
    if r.has("coplan", "agents"):
        agents = r.table("coplan", "agents")
        sec.add(Table("coplan_agents", "Investors: annual cost alone and co-planned, gains and the stability check",
                      agents, note="`best_deviation_gain_usd`: what the investor's best unilateral change of its own "
                                   "0-1 decisions would gain it (others fixed): ≤ 0 means it has no reason to leave."))
        sec.add(Figure("coplan_gains", "Gains against bargaining powers", gains_figure(agents)))
    if r.has("coplan", "iterations"):
        it = r.table("coplan", "iterations")
        sec.add(Figure("coplan_welfare", "Welfare per outer iteration", welfare_figure(
            it, s.get("centralised_welfare_usd"))))
        sec.add(Table("coplan_iterations", "Outer iterations", it))
    return sec


def capacity_figure(inv: pd.DataFrame):
    """One panel per investor: its capacity alone, co-planned and centralised, stacked by technology."""
    labels = {"alone": "alone", "coplan": "co-planned", "centralised": "centralised"}
    plans = [p for p in labels if p in set(inv["plan"])]
    investors = list(dict.fromkeys(inv["investor"]))
    techs = list(dict.fromkeys(inv["tech"]))
    with style():
        fig, axes = figure(PAGE_IN, 2.3, 1, len(investors), squeeze=False, sharey=True)
        for ax, investor in zip(axes[0], investors, strict=True):
            sub = inv[inv["investor"] == investor]
            bottom = np.zeros(len(plans))
            for tech in techs:
                vals = np.array([sub[(sub["plan"] == p) & (sub["tech"] == tech)]["capacity_mw"].sum() for p in plans])
                ax.bar(np.arange(len(plans)), vals, 0.6, bottom=bottom, color=TECH_COLOURS.get(tech, "0.5"),
                       label=tech)
                bottom += vals
            ax.set_xticks(np.arange(len(plans)), [labels[p] for p in plans], rotation=30, ha="right")
            ax.set_title(investor)
        axes[0][0].set_ylabel("capacity built (MW)")
        legend_below(fig, axes[0])
    return fig


def gains_figure(agents: pd.DataFrame):
    with style():
        fig, ax = figure(COLUMN_IN, 2.4)
        x = np.arange(len(agents))
        power_share = agents["bargaining_power"] / agents["bargaining_power"].sum()
        ax.bar(x - 0.2, agents["share_of_gain"], 0.4, label="share of the total gain")
        ax.bar(x + 0.2, power_share, 0.4, label="share of bargaining power")
        ax.set_xticks(x, agents["agent"])
        ax.set_ylabel("share (–)")
        legend_below(fig, ax)
    return fig


def welfare_figure(it: pd.DataFrame, centralised: float | None):
    per = it.groupby("iteration")["welfare_usd"].first()
    with style():
        fig, ax = figure(COLUMN_IN, 2.3)
        ax.plot(per.index, per.to_numpy() * KUSD, marker="o", label="co-planning (welfare cost)")
        if centralised is not None:
            ax.axhline(centralised * KUSD, color="C3", ls="--", label="centralised optimum")
        ax.set_xlabel("outer iteration")
        ax.set_ylabel("total annual cost (kUSD/yr)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        legend_below(fig, ax)
    return fig


# ================================================================ the report

SECTIONS: tuple[tuple[str, Callable[[Results], Section]], ...] = (
    ("powerflow", powerflow_section),
    ("cluster", cluster_section),
    ("plan", plan_section),
    ("dispatch", dispatch_section),
    ("coplan", coplan_section),
)


def build_report(r: Results) -> Document:
    doc = Document(f"Study report: {r.case_record.get('name', r.out_dir.name)}")
    doc.sections.append(case_section(r))
    for stage, build in SECTIONS:
        if stage == "plan" and not r.has("plan") and r.has("reliability"):
            doc.sections.append(reliability_section(r))
        if r.has(stage) or (stage, True) in {("powerflow", r.has("powerflow_year")),
                                             ("coplan", r.has("coplan_centralised"))}:
            doc.sections.append(build(r))
        elif stage != "powerflow":
            doc.sections.append(Section(_TITLES[stage], [Text(f"Not run (`adnstudy {stage} CASE --out "
                                                              f"{r.out_dir}`).")]))
    return doc


_TITLES = {"cluster": "Typical days", "plan": "Plan: RES siting and sizing",
           "dispatch": "Dispatch: day-ahead market with bilateral trading",
           "coplan": "Co-planning: MG and ADN investors by generalized Nash bargaining"}


def write_report(out_dir: Path) -> tuple[Path, Document]:
    """Build the report of ``out_dir`` and publish ``out_dir/report/`` whole; nothing is written on error."""
    from adnstudy.results.store import out_lock, staged_folder

    r = open_results(Path(out_dir))  # not a results folder: an error before anything is written
    doc = build_report(r)  # every table read and checked, every figure drawn, before the folder is touched
    with out_lock(r.out_dir), staged_folder(r.out_dir, REPORT_FOLDER) as tmp:
        write_document(doc, tmp)
    return r.out_dir / REPORT_FOLDER, doc
