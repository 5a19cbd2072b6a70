"""The study's tables T1-T4 (``make reproduce``), built from the sweeps' results — never by solving.

Each builder reads ``RUNS/<sweep>/sweep.parquet`` (one row per variant) and the
variants' stage folders ``RUNS/<sweep>/variants/<id>/<stage>/`` (Parquet tables
and ``manifest.json``), and returns a :class:`~adnstudy.report.doc.Document`
that :func:`build` writes into ``OUT/T<n>/`` (a CSV per table, a PNG per figure,
``T<n>.md``). ``readme`` assembles ``OUT/README.md`` from the four documents.

    python -m adnstudy.reproduce T2 --runs reproduction/runs --out reproduction
    python -m adnstudy.reproduce readme --runs reproduction/runs --out reproduction

The sweep files are ``cases/sweeps/reproduce/*.yaml``; docs/reproduce.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adnstudy import __version__
from adnstudy.errors import AdnstudyError, MissingInputError
from adnstudy.report.doc import (
    Document,
    Figure,
    Section,
    Table,
    Text,
    render_markdown,
    write_document,
)
from adnstudy.report.results import Results, annual, open_results
from adnstudy.report.style import figure, legend_below, style
from adnstudy.results.store import staged_folder
from adnstudy.sweep.run import read_table

FEEDERS = ("ieee33", "ieee69")
FEE = "market.fee_usd_per_mwh"
FEEDER_NAME = {"ieee33": "IEEE 33-bus feeder", "ieee69": "IEEE 69-bus feeder"}
POWERS = ("microgrids[mg1].bargaining_power", "microgrids[mg3].bargaining_power")


class ReproduceError(MissingInputError):
    """A sweep the table needs is missing, failed or not final."""


# ------------------------------------------------------------------------------------------ reading the runs
class Runs:
    """One sweep's results folder: its ``sweep.parquet`` (every variant ``ok``) and its variants' stage outputs."""

    def __init__(self, root: Path, name: str) -> None:
        self.name, self.dir = name, Path(root) / name
        self._results: dict[str, Results] = {}
        try:
            self.table = read_table(self.dir)
        except AdnstudyError as exc:
            raise ReproduceError(f"sweep {name}: {exc} (run `make {self.dir}/sweep.parquet`)") from None
        bad = self.table[self.table["status"] != "ok"]
        if len(bad):
            row = bad.iloc[0]
            raise ReproduceError(f"sweep {name}: variant {row['variant']} is {row['status']}"
                                 f"{': ' + str(row['error']) if row['error'] else ''} (of {len(bad)} not ok)")

    def folder(self, variant: str) -> Path:
        return self.dir / "variants" / variant

    def results(self, variant: str) -> Results:
        """The variant's results folder as the report reads it (each table checked against its manifest)."""
        if variant not in self._results:
            self._results[variant] = open_results(self.folder(variant))
        return self._results[variant]

    def manifest(self, variant: str, stage: str) -> dict[str, Any]:
        r = self.results(variant)
        if not r.has(stage):
            raise ReproduceError(f"sweep {self.name}: {self.folder(variant) / stage}/manifest.json missing")
        return r.manifest(stage)

    def parquet(self, variant: str, stage: str, table: str) -> pd.DataFrame:
        r = self.results(variant)
        if not r.has(stage, table):
            raise ReproduceError(f"sweep {self.name}: {self.folder(variant) / stage / table}.parquet missing")
        return r.table(stage, table)

    def weight_days(self, variant: str) -> pd.Series:
        """Days of a 365-day year each typical day stands for, by scenario (``cluster/weights``)."""
        return self.parquet(variant, "cluster", "weights").set_index("scenario")["weight_days"]

    def where(self, values: dict[str, float]) -> str:
        """The id of the one variant whose varied fields (field path → value) have these values."""
        t = self.table
        mask = np.ones(len(t), dtype=bool)
        for path, value in values.items():
            mask &= np.isclose(t[path].astype(float), float(value))
        if mask.sum() != 1:
            raise ReproduceError(f"sweep {self.name}: {mask.sum()} variants with {values} (expected one)")
        return str(t.loc[mask, "variant"].iloc[0])


def _powers_label(mg1: float, mg3: float) -> str:
    return "symmetric" if mg1 == mg3 == 1.0 else f"generalized (mg1 {mg1:g}, mg3 {mg3:g})"


# ------------------------------------------------------------------------------------------ T1 typical days
METHODS = ("density_peaks", "kmeans_pp", "random", "kmedoids", "ward")
METHOD_LABEL = {"density_peaks": "density peaks + K-means", "kmeans_pp": "k-means++ (10 restarts)",
                "random": "random-init K-means", "kmedoids": "k-medoids (FasterPAM)", "ward": "Ward hierarchical"}


def t1(runs: Path, sweep: str = "t1", k_detail: int = 8) -> Document:
    """T1: the five clustering methods' metrics at K = ``k_detail`` and their reconstruction RMSE over K."""
    r = Runs(runs, sweep)
    ks = sorted(int(k) for k in r.table["clustering.k"])
    k_detail = k_detail if k_detail in ks else ks[-1]
    metrics = pd.concat([r.parquet(r.where({"clustering.k": k}), "cluster", "metrics") for k in ks], ignore_index=True)
    detail = metrics[metrics["k"] == k_detail].drop(columns="k").rename(
        columns={"rmse": "rmse_scaled", "duration_rmse": "duration_rmse_scaled", "sse": "sse_scaled2",
                 "seconds": "time_s"} | {c: c.replace("energy_error_", "energy_error_frac_")
                                         for c in metrics if c.startswith("energy_error_")})
    wide = metrics.pivot(index="k", columns="method", values="rmse")[list(METHODS)]
    wide.columns = [f"rmse_{m}" for m in wide.columns]
    wide = wide.reset_index()
    m8 = r.manifest(r.where({"clustering.k": k_detail}), "cluster")

    with style():
        fig, ax = figure(height_in=2.6)
        for m, marker in zip(METHODS, "osd^v", strict=True):
            sub = metrics[metrics["method"] == m].sort_values("k")
            ax.plot(sub["k"], sub["rmse"], marker=marker, label=METHOD_LABEL[m])
        ax.set_xlabel("typical days K")
        ax.set_ylabel("RMSE (scaled units)")
        ax.set_xticks(ks)
        legend_below(fig, ax, max_columns=2)
    paragraph = (
        f"Typical days of the shipped year (the SimBench load, PV and wind profiles of the shipped cases, "
        f"{int(m8['summary']['days'])} days). The two shipped cases have the same `profiles` and `clustering` "
        "sections, so the clustering is the same for both feeders: one table, run on `cases/ieee33.yaml` "
        f"(sweep `{sweep}`: `clustering.k` = {ks[0]} … {ks[-1]}, the `cluster` stage only). Each day is one point "
        "of 24 × 3 values scaled to [0, 1] per series; every method clusters the same points. Density peaks "
        "seeds K-means deterministically (the written typical days); the others are the comparison the stage "
        f"computes beside it (`cluster/metrics.parquet`). The table gives every metric at K = {k_detail}; "
        "the figure and the second table the year's reconstruction RMSE (each day replaced by its "
        "representative) over K.")
    doc = Document("T1 — Typical days: five clustering methods", intro=[Text(paragraph)])
    doc.sections.append(Section(f"Methods at K = {k_detail}").add(
        Table("t1_methods", f"Clustering methods at K = {k_detail}", detail,
              note="sse: within-cluster sum of squares (scaled units²); rmse, duration_rmse: scaled units; "
                   "energy_error_frac: (rebuilt − original annual energy) / original; time_s: the method's "
                   "wall time."),
    ))
    doc.sections.append(Section("Reconstruction error over K").add(
        Table("t1_rmse_by_k", "Reconstruction RMSE (scaled units) by K and method", wide),
        Figure("t1_rmse_vs_k", "Reconstruction RMSE of the year against K, five methods", fig),
    ))
    return doc



# ------------------------------------------------------------------------------------------ T2 planning
def _sites(inv: pd.DataFrame) -> str:
    """The built sites as ``tech@bus MW`` text."""
    b = inv[inv["build"]]
    return ", ".join(f"{t}@{bus} {mw:.2f}" for t, bus, mw in zip(b["tech"], b["bus"], b["capacity_mw"], strict=True))


def t2_feeder(runs: Path, feeder: str, k_detail: int = 8) -> Section:
    """One feeder's T2: the plan without and with reliability at K = ``k_detail``, indices before/after, by K."""
    rel, norel = Runs(runs, f"t2_{feeder}"), Runs(runs, f"t2_{feeder}_norel")
    vr, vn = rel.where({"clustering.k": k_detail}), norel.where({"clustering.k": k_detail})
    cr, cn = rel.parquet(vr, "plan", "cost"), norel.parquet(vn, "plan", "cost")
    cost = pd.DataFrame({"item": cr["item"],
                         "without_reliability_usd_per_yr": cn["annual_usd"].to_numpy(),
                         "with_reliability_usd_per_yr": cr["annual_usd"].to_numpy(),
                         "no_investment_without_reliability_usd_per_yr": cn["baseline_annual_usd"].to_numpy(),
                         "no_investment_with_reliability_usd_per_yr": cr["baseline_annual_usd"].to_numpy()})
    ir, inn = rel.parquet(vr, "plan", "investment"), norel.parquet(vn, "plan", "investment")
    keep = ir["build"].to_numpy() | inn["build"].to_numpy()
    sites = pd.DataFrame({"site": ir["site"], "bus": ir["bus"], "tech": ir["tech"],
                          "without_reliability_mw": inn["capacity_mw"].to_numpy(),
                          "with_reliability_mw": ir["capacity_mw"].to_numpy(),
                          "without_reliability_annualised_usd_per_yr": inn["annualised_usd"].to_numpy(),
                          "with_reliability_annualised_usd_per_yr": ir["annualised_usd"].to_numpy()})[keep]
    before, after = rel.parquet(vr, "reliability", "reliability"), rel.parquet(vr, "plan", "reliability")
    indices = pd.DataFrame({"index": before["index"], "unit": before["unit"],
                            "bare_feeder": before["value"], "planned_with_reliability": after["value"].to_numpy(),
                            "limit": after["limit"].to_numpy()})
    rows = []
    for label, r in (("without", norel), ("with", rel)):
        for v in r.table.sort_values("clustering.k")["variant"]:
            m = r.manifest(v, "plan")
            s, sol = m["summary"], m["solver"]
            rows.append({"reliability": label, "k": int(m["scenarios"]), "total_usd_per_yr": s["total_usd"],
                         "saving_usd_per_yr": s["saving_usd"], "sites": _sites(r.parquet(v, "plan", "investment")),
                         "res_mw": s["res_capacity_mw"], "SAIDI_h": s.get("SAIDI_h"),
                         "status": s["status"], "gap": s["gap"], "nodes": sol.get("nodes"),
                         "solve_s": m["timings_s"]["solve"], "stage_s": m["timings_s"]["total"],
                         "threads": sol.get("threads")})
    by_k = pd.DataFrame(rows)
    sec = Section(f"{feeder}: {FEEDER_NAME.get(feeder, feeder)}")
    sec.add(
        Table(f"t2_{feeder}_cost", f"{feeder}: annual cost at K = {k_detail}, without and with reliability", cost,
              note="USD/yr. `eens` is VOLL × EENS (the reliability terms); the no-investment columns are the same "
                   "operating model with nothing built (`plan/cost.parquet`); empty where the network cannot "
                   "operate within its limits without the plan."),
        Table(f"t2_{feeder}_sites", f"{feeder}: sites built at K = {k_detail} (either plan)", sites),
        Table(f"t2_{feeder}_reliability", f"{feeder}: reliability indices before (no DG) and after (the plan "
              f"with reliability, K = {k_detail})", indices,
              note="Before: `adnstudy reliability` of the bare feeder (annual mean loads); after: the plan's own "
                   "indices, checked by fault enumeration (`plan/reliability.parquet`). The plan without "
                   "reliability has no indices: its case has no reliability section."),
        Table(f"t2_{feeder}_by_k", f"{feeder}: the plan by K, without and with reliability", by_k,
              note="sites: tech@bus MW. solve_s: the branch-and-bound (`timings_s.solve`); stage_s: the whole "
                   "stage (baseline, AC check, tables). Each ran on `threads` solver threads (two plans at "
                   "once on 2 cores); gap: the proven relative optimality gap (target 1e-3)."),
    )
    return sec.add(_k_figure(by_k, feeder))


def _k_figure(by_k: pd.DataFrame, feeder: str) -> Figure:
    with style():
        fig, (ax1, ax2) = figure(height_in=3.4, nrows=2, sharex=True)
        for (label, sub), marker in zip(by_k.groupby("reliability", sort=False), "os", strict=False):
            ax1.plot(sub["k"], sub["total_usd_per_yr"] / 1e3, marker=marker, label=f"{label} reliability")
            ax2.plot(sub["k"], sub["solve_s"], marker=marker, label=f"{label} reliability")
        ax1.set_ylabel("annual cost (kUSD/yr)")
        n = int(by_k["threads"].max())
        ax2.set_ylabel(f"solve time (s, {n} thread{'s' if n > 1 else ''})")
        ax2.set_xlabel("typical days K")
        ax2.set_xticks(sorted(by_k["k"].unique()))
        legend_below(fig, [ax1])
    return Figure(f"t2_{feeder}_vs_k", f"{feeder}: the plan's annual cost and solve time against K", fig)


def t2(runs: Path, feeders: tuple[str, ...] = FEEDERS) -> Document:
    """T2: reliability-constrained planning on both feeders."""
    paragraph = (
        "The ADN's RES siting and sizing (`plan`, branch-and-bound on the SOCP relaxations) on both shipped "
        "feeders: at K = 8 typical days the annual cost by component and the sites built without and with "
        "the reliability constraints, the IEEE 1366 indices of the feeder before (no DG) and after (the plan "
        "with reliability), and the same plans for K = 4, 8 and 12 (cost, sites, solve seconds, gap; the figure: cost and solve "
        "time against K). "
        "\"With reliability\" is the case as shipped (SAIDI limit, VOLL in the objective, 0-1 island "
        "decisions; sweeps `t2_<feeder>`, stages cluster, reliability, plan); \"without\" removes the "
        "`reliability` section (`set: {reliability: null}`, sweeps `t2_<feeder>_norel`), the same model as "
        "`adnstudy plan --no-reliability`: a stage option cannot vary per variant, so it is a second sweep. "
        "The plans ran two at a time on the 2 cores, one solver thread each, so their seconds are those of "
        "one thread.")
    return Document("T2 — Planning with and without reliability", intro=[Text(paragraph)],
                    sections=[t2_feeder(runs, f) for f in feeders])



# ------------------------------------------------------------------------------------------ T3 dispatch
def _powers(r: Runs, variant: str) -> tuple[float, float]:
    row = r.table[r.table["variant"] == variant].iloc[0]
    return float(row[POWERS[0]]), float(row[POWERS[1]])


def _agents_t3(r: Runs, variant: str) -> pd.DataFrame:
    a = r.parquet(variant, "dispatch", "agents")
    w = r.weight_days(variant)
    pay = annual(r.parquet(variant, "dispatch", "agents_by_scenario"), w, "payment_usd", ["agent"])
    total = a["gain_usd"].sum()
    return pd.DataFrame({"powers": _powers_label(*_powers(r, variant)), "agent": a["agent"],
                         "bargaining_power": a["bargaining_power"],
                         "power_share": a["bargaining_power"] / a["bargaining_power"].sum(),
                         "cost_disagreement_usd_per_yr": a["cost_disagreement_usd"],
                         "cost_cooperative_usd_per_yr": a["cost_cooperative_usd"],
                         "gain_usd_per_yr": a["gain_usd"], "gain_share": a["gain_usd"] / total,
                         "payment_usd_per_yr": a["agent"].map(pay).to_numpy()})


def _fee_row(r: Runs, variant: str) -> dict[str, Any]:
    w = r.weight_days(variant)
    trades = r.parquet(variant, "dispatch", "trades")
    a = r.parquet(variant, "dispatch", "agents")
    m = r.manifest(variant, "dispatch")
    row = {"fee_usd_per_mwh": float(r.table.loc[r.table["variant"] == variant, FEE].iloc[0]),
           "traded_mwh_per_yr": annual(trades, w, "p_mw") if len(trades) else 0.0,  # hourly steps: MW = MWh
           "fees_usd_per_yr": annual(trades, w, "fee_usd") if len(trades) else 0.0,
           "total_gain_usd_per_yr": float(a["gain_usd"].sum())}
    row |= {f"gain_{g}_usd_per_yr": float(v) for g, v in zip(a["agent"], a["gain_usd"], strict=True)}
    return row | {"max_gap": m["summary"]["max_gap"], "max_iterations": m["summary"]["max_iterations"]}


def t3_feeder(runs: Path, feeder: str, fee: float = 5.0) -> tuple[Section, pd.DataFrame | None]:
    """One feeder's T3: MGs' costs, gains and payments by bargaining powers; the days; the fee table if swept."""
    r = Runs(runs, f"t3_{feeder}")
    sym = r.where({FEE: fee, POWERS[0]: 1.0, POWERS[1]: 1.0})
    variants = [sym] + [v for v in r.table["variant"]
                        if float(r.table.loc[r.table["variant"] == v, FEE].iloc[0]) == fee and v != sym]
    agents = pd.concat([_agents_t3(r, v) for v in variants], ignore_index=True)
    m = r.manifest(sym, "dispatch")
    days = pd.DataFrame([{
        "scenario": d["scenario"], "weight_days": d["weight_days"],
        "centralised_usd_per_day": d["centralised_objective_usd"],
        "distributed_usd_per_day": d["distributed_objective_usd"], "gap": d["gap"], "gap_usd": d["gap_usd"],
        "iterations": d["iterations"], "payment_iterations": d["payment_iterations"],
        "disagreement_gap": d["disagreement_gap"], "disagreement_iterations": d["disagreement_iterations"],
        "pcc_mismatch_mw": d["pcc_mismatch_mw"], "distributed_s": d["distributed_s"],
        "centralised_s": d["centralised_s"], "converged": d["converged"]} for d in m["scenarios"]])
    sec = Section(f"{feeder}: {FEEDER_NAME.get(feeder, feeder)}").add(
        Table(f"t3_{feeder}_agents", f"{feeder}: each MG's annual cost, gain and payment, fee {fee:g} USD/MWh",
              agents, note="USD/yr over the 8 typical days × their days per year. Disagreement: trading only "
                           "with the ADN at its tariffs; cooperative: with bilateral trades, fees and the Nash-"
                           "bargaining payments (payment > 0 made, < 0 received). gain_share: the MG's gain over "
                           "the total; power_share: its power over the sum."),
        Table(f"t3_{feeder}_days", f"{feeder}: distributed (ATC + ADMM) against centralised clearing per typical "
              f"day, symmetric powers", days,
              note="USD per day; gap: (distributed − centralised) / the day's gross cost; iterations: of the "
                   "clearing (ATC + ADMM); payment_iterations: of the bargaining ADMM; disagreement_*: the "
                   "market without trades (ATC)."),
    )
    fees = [v for v in r.table["variant"] if _powers(r, v) == (1.0, 1.0)]
    if len(fees) < 2:
        return sec, None
    table = pd.DataFrame([_fee_row(r, v) for v in fees]).sort_values("fee_usd_per_mwh", ignore_index=True)
    return sec, table


def _fee_figure(table: pd.DataFrame, feeder: str) -> Figure:
    with style():
        fig, (ax1, ax2) = figure(height_in=3.6, nrows=2, sharex=True)
        x = table["fee_usd_per_mwh"]
        ax1.plot(x, table["traded_mwh_per_yr"], marker="o", color="0.2", label="traded energy")
        ax1.set_ylabel("traded energy (MWh/yr)")
        ax2.plot(x, table["total_gain_usd_per_yr"] / 1e3, marker="o", color="0.2", label="all MGs")
        for c in (c for c in table if c.startswith("gain_")):
            ax2.plot(x, table[c] / 1e3, marker=".", label=c.removeprefix("gain_").removesuffix("_usd_per_yr"))
        ax2.plot(x, table["fees_usd_per_yr"] / 1e3, ls="--", color="0.5", label="fees paid")
        ax2.set_ylabel("gain, fees (kUSD/yr)")
        ax2.set_xlabel("network fee (USD/MWh)")
        legend_below(fig, [ax2], max_columns=3)
    return Figure(f"t3_{feeder}_fee_effect", f"{feeder}: traded energy and gains against the network fee "
                  "(symmetric powers)", fig)


def t3(runs: Path, feeders: tuple[str, ...] = FEEDERS) -> Document:
    """T3: the day-ahead market with bilateral trading on the planned network."""
    sections: list[Section] = []
    fee_text, counts = "", []
    for f in feeders:
        sec, fees = t3_feeder(runs, f)
        counts.append(f"`t3_{f}` ({len(Runs(runs, f't3_{f}').table)} variants)")
        if fees is not None:
            values = [f"{x:g}" for x in fees["fee_usd_per_mwh"]]
            fee_text += (f" On the {FEEDER_NAME.get(f, f)} (only, for the time budget): the fee at "
                         f"{', '.join(values[:-1])} and {values[-1]} USD/MWh with symmetric powers.")
        if fees is not None:
            sec.add(Table(f"t3_{f}_fee", f"{f}: the network fee's effect (symmetric powers)", fees,
                          note="traded_mwh_per_yr: Σ bilateral trades × days per year; fees_usd_per_yr: the "
                               "network fees on them (the ADN's fee income); gains after payments, USD/yr; "
                               "max_gap, max_iterations: the worst typical day's distributed vs centralised "
                               "clearing."),
                    _fee_figure(fees, f))
        sections.append(sec)
    paragraph = (
        "The day-ahead market of the three MGs and the ADN (`dispatch`: clearing with bilateral trades and network "
        "fees, then Nash-bargaining payments, solved distributedly by ATC + ADMM with the centralised solve as "
        "reference) over the 8 typical days, on the network each feeder's plan built (the dispatch stage runs on "
        "the plan's network, so each T3 sweep runs cluster → plan → dispatch, the plan with reliability as "
        "shipped). For both feeders: each MG's annual cost, gain and payment with symmetric bargaining powers "
        "(all 1) and generalized ones (mg1 2.0, mg3 0.5) at the case's fee of 5 USD/MWh, and the distributed "
        f"against the centralised clearing per typical day.{fee_text} The tariff spread a trade can capture "
        "(the shipped defaults' purchase price 40–110 USD/MWh minus the feed-in price 30) is 10–80 USD/MWh, so "
        "120 is above all of it. The powers and fees are varied together (`zip`) in sweeps "
        f"{' and '.join(counts)}; the plan reads the whole `microgrids` section, so each set of powers has its "
        "own (identical) plan.")
    return Document("T3 — Dispatch: bilateral trading and bargaining", intro=[Text(paragraph)], sections=sections)


# ------------------------------------------------------------------------------------------ T4 co-planning
def t4_feeder(runs: Path, feeder: str) -> tuple[Section, list[tuple[str, pd.DataFrame, pd.DataFrame, dict]]]:
    """One feeder's T4 tables, and per powers variant (label, agents, iterations, summary) for the figure."""
    r = Runs(runs, f"t4_{feeder}")
    order = sorted(r.table["variant"], key=lambda v: _powers(r, v) != (1.0, 1.0))
    inv_rows, sums, parts = [], [], []
    for v in order:
        label = "equal" if _powers(r, v) == (1.0, 1.0) else "unequal (mg1 {:g}, mg3 {:g})".format(*_powers(r, v))
        a = r.parquet(v, "coplan", "agents")
        inv = r.parquet(v, "coplan", "investment")
        m = r.manifest(v, "coplan")
        s = m["summary"]
        for _, x in a.iterrows():
            built = {p: _sites(inv[(inv["plan"] == p) & (inv["investor"] == x["agent"])])
                     for p in ("alone", "coplan", "centralised")}
            inv_rows.append({"powers": label, "investor": x["agent"], "bargaining_power": x["bargaining_power"],
                             "power_share": x["bargaining_power"] / a["bargaining_power"].sum(),
                             "build_alone": built["alone"] or "—", "build_coplan": built["coplan"] or "—",
                             "build_centralised": built["centralised"] or "—",
                             "cost_alone_usd_per_yr": x["cost_disagreement_usd"],
                             "cost_coplan_usd_per_yr": x["cost_cooperative_usd"], "gain_usd_per_yr": x["gain_usd"],
                             "gain_share": x["share_of_gain"], "fees_usd_per_yr": x["fees_usd"],
                             "payment_usd_per_yr": x["payment_usd"],
                             "best_deviation_gain_usd_per_yr": x["best_deviation_gain_usd"]})
        sums.append({"powers": label, "welfare_usd_per_yr": s["welfare_usd"],
                     "centralised_welfare_usd_per_yr": s["centralised_welfare_usd"], "welfare_gap": s["welfare_gap"],
                     "alone_usd_per_yr": s["disagreement_usd"], "total_gain_usd_per_yr": s["total_gain_usd"],
                     "outer_iterations": s["outer_iterations"], "outcome": s["outcome"],
                     "deviation_moves": s["deviation_moves"], "individually_rational": s["individually_rational"],
                     "stable": s["stable"], "max_deviation_gain_usd_per_yr": s["max_deviation_gain_usd"],
                     "distributed_gap": s["distributed_gap"], "stage_s": m["timings_s"]["total"]})
        parts.append((label, a, r.parquet(v, "coplan", "iterations"), s))
    sec = Section(f"{feeder}: {FEEDER_NAME.get(feeder, feeder)}").add(
        Table(f"t4_{feeder}_investors", f"{feeder}: each investor's build and annual cost alone and co-planned",
              pd.DataFrame(inv_rows),
              note="build: tech@bus MW (an MG's candidates sit at its PCC); — nothing built. Costs USD/yr "
                   "(investment + operation + fees + payments); alone is the disagreement point. "
                   "best_deviation_gain: what the investor's best unilateral change of its own 0-1 decisions "
                   "would gain it (the stability check; 0 = stable)."),
        Table(f"t4_{feeder}_summary", f"{feeder}: welfare against the centralised plan, iterations, stability",
              pd.DataFrame(sums),
              note="welfare: the sum of all investors' annual costs (lower is better); welfare_gap: (co-planned "
                   "− centralised) / centralised; distributed_gap: distributed vs centralised at the final "
                   "decisions; outcome of the alternation: `fixed point` or `cycle` (its best member kept)."),
    )
    return sec, parts


def _t4_figure(feeder: str, parts: list) -> Figure:
    with style():
        fig, (ax1, ax2) = figure(height_in=4.0, nrows=2)
        width = 0.8 / len(parts)
        for i, (label, a, _, _) in enumerate(parts):
            short = label.split(" ")[0]
            x = np.arange(len(a)) + (i - (len(parts) - 1) / 2) * width
            ax1.bar(x, a["share_of_gain"], width * 0.9, label=f"gain share, {short} powers")
            ax1.hlines(a["bargaining_power"] / a["bargaining_power"].sum(), x - width * 0.45, x + width * 0.45,
                       color="k", lw=1.5, label="power share β/Σβ")
        ax1.set_xticks(np.arange(len(parts[0][1])), list(parts[0][1]["agent"]))
        ax1.set_ylabel("share of the total gain (–)")
        for (label, _, it, _s), style_ in zip(parts, ("-o", "--s", ":^"), strict=False):
            w = it.groupby("iteration")["welfare_usd"].first()
            ax2.plot(w.index, w / 1e3, style_, label=f"co-planning, {label.split(' ')[0]} powers")
        ax2.axhline(parts[0][3]["centralised_welfare_usd"] / 1e3, color="0.3", ls="-.", lw=0.8,
                    label="centralised plan")
        ax2.set_xlabel("outer iteration")
        ax2.set_ylabel("welfare cost (kUSD/yr)")
        ax2.xaxis.get_major_locator().set_params(integer=True)
        legend_below(fig, [ax1, ax2], max_columns=2)
    return Figure(f"t4_{feeder}_gains", f"{feeder}: gain shares against bargaining-power shares (black bars), "
                  "and welfare per outer iteration against the centralised plan", fig,
                  note="Unequal powers: mg1 2, mg3 0.5, the ADN and mg2 1.")


def t4(runs: Path, feeders: tuple[str, ...] = FEEDERS) -> Document:
    """T4: co-planning of the ADN and the MGs by generalized Nash bargaining."""
    sections, adn_builds = [], False
    for f in feeders:
        sec, parts = t4_feeder(runs, f)
        sections.append(sec.add(_t4_figure(f, parts)))
        adn_builds |= any(t.df.loc[t.df["investor"] == "adn", ["build_alone", "build_coplan"]].ne("—").any().any()
                          for t in sec.blocks if isinstance(t, Table) and "build_alone" in t.df)
    paragraph = (
        "Co-planning (`coplan`): the ADN and the three MGs each decide their own 0-1 investments; the upper level "
        "clears the market and the generalized Nash bargaining with the decisions fixed, each investor's lower "
        "level re-optimises its own decisions, until they repeat; the disagreement point is each investor "
        "planning alone, the reference a centralised welfare-maximising plan. For both feeders, with equal "
        "bargaining powers (all 1, as shipped) and unequal ones (mg1 2.0, mg3 0.5, the ADN and mg2 1.0), each "
        "investor's build and annual cost alone and co-planned, its gain against its power, the welfare against "
        "the centralised plan, the outer iterations and the stability check (the best unilateral deviation). "
        "Sweeps `t4_ieee33` and `t4_ieee69` (stages cluster, coplan; the powers varied together, `zip`): the two "
        "variants of a feeder run side by side on the two workers, so the unequal powers on the 69-bus feeder "
        "cost no extra wall time. K = 8, the case's fee of 5 USD/MWh.")
    if not adn_builds:
        paragraph += (" The ADN builds nothing here, alone or co-planned, although `plan` (T2) builds wind: in "
                      "co-planning it values energy at the wholesale price (`economics.wholesale_price_usd_per_mwh`), "
                      "not at the time-of-use tariff (docs/coplan.md).")
    return Document("T4 — Co-planning of the ADN and the microgrids", intro=[Text(paragraph)], sections=sections)


# ------------------------------------------------------------------------------------------ writing
TABLES: dict[str, Callable[[Path], Document]] = {"T1": t1, "T2": t2, "T3": t3, "T4": t4}


def build(table: str, runs: Path, out: Path) -> Path:
    """Build table ``T<n>`` from the sweeps in ``runs`` into ``out/T<n>/``; a failed build leaves the old folder."""
    doc = TABLES[table](Path(runs))
    with staged_folder(Path(out), table) as tmp:  # swapped in whole, or the old folder stays
        write_document(doc, tmp, table, html_page=False)
    final = Path(out) / table
    return final


def _linked(blocks: list, prefix: str) -> list:
    """The blocks with every table and figure named ``<prefix>/<name>`` (links relative to the README)."""
    out: list = []
    for b in blocks:
        if isinstance(b, Section):
            out.append(Section(b.title, _linked(b.blocks, prefix)))
        elif isinstance(b, Table):
            out.append(Table(f"{prefix}/{b.name}", b.title, b.df, b.note, b.formats))
        elif isinstance(b, Figure):
            out.append(Figure(f"{prefix}/{b.name}", b.title, b.fig, b.note))
        else:
            out.append(b)
    return out


def readme(runs: Path, out: Path) -> Path:
    """``out/README.md``: how it was produced, then each table's paragraph, Markdown tables and figures."""
    runs = Path(runs)
    docs = {t: f(runs) for t, f in TABLES.items()}
    rows = []
    for folder in sorted(p for p in runs.iterdir() if (p / "sweep.json").is_file()):
        rec = json.loads((folder / "sweep.json").read_text())
        rows.append({"sweep": folder.name, "file": Path(rec["sweep"]["file"]).name, "variants": rec["variants"],
                     "stage_runs": rec["stage_runs"], "resumed": rec.get("resumed", 0),
                     "wall_s": rec["seconds"], "finished_utc": rec.get("finished_utc", "")})
    order = ["t1", *(f"t2_{f}{x}" for f in FEEDERS for x in ("", "_norel")), *(f"t{n}_{f}" for n in (3, 4)
                                                                                for f in FEEDERS)]
    sweeps = pd.DataFrame(rows).sort_values("sweep", key=lambda c: c.map(
        lambda x: order.index(x) if x in order else len(order)), ignore_index=True)
    header = Section("How this was produced").add(
        Text("`make reproduce` (after `make demo`'s setup) runs each sweep file of `cases/sweeps/reproduce/` "
             "with `adnstudy sweep FILE --out reproduction/runs/<sweep> --workers 2 --resume`, then builds each "
             "table from the sweeps' Parquet tables and manifests with `python -m adnstudy.reproduce T<n> --runs "
             "reproduction/runs --out reproduction` (nothing is solved there), then this page with `python -m "
             "adnstudy.reproduce readme`. `make reproduce-t2` rebuilds one table (and the sweeps it needs, when "
             "their inputs changed). Each table's CSV files (full precision) and PNG figures are in its folder "
             "`T<n>/`; docs/reproduce.md describes the sweeps."),
        Text(f"adnstudy {__version__}; written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Wall seconds of each "
             "sweep's last run (sweep.json; a `--resume` run that found its variants complete takes about a "
             "second, and says so in `resumed`):"),
        Table("sweeps", "Sweeps, in the order make runs them", sweeps,
              note=f"In all {sweeps['wall_s'].sum():,.0f} s of sweeps ({sweeps['wall_s'].sum() / 60:.1f} min); "
                   "building the four tables and this page takes a few seconds more."),
    )
    sections = [header]
    for t, doc in docs.items():
        sections.append(Section(doc.title, _linked([*doc.intro, *doc.sections], t)))
    Path(out).mkdir(parents=True, exist_ok=True)
    sweeps.to_csv(Path(out) / "sweeps.csv", index=False)
    text = render_markdown(Document("adnstudy — reproduction of the study's tables", sections=sections))
    path = Path(out) / "README.md"
    tmp = path.with_name(f".README.md.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adnstudy.reproduce", description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=[*TABLES, "readme"], help="the table to build, or readme")
    parser.add_argument("--runs", type=Path, default=Path("reproduction/runs"), help="the sweeps' results folders")
    parser.add_argument("--out", type=Path, default=Path("reproduction"), help="where T<n>/ and README.md go")
    args = parser.parse_args(argv)
    try:
        if not args.runs.is_dir():
            raise ReproduceError(f"{args.runs} not found: run the sweeps first (make reproduce)")
        path = readme(args.runs, args.out) if args.what == "readme" else build(args.what, args.runs, args.out)
    except AdnstudyError as exc:  # a missing, failed or changed sweep result: one line, nothing written
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"{args.what}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
