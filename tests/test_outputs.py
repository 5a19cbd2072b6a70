"""What a user reads: the figures, the plan's tables and the year they are counted over, through the CLI.

One tiny case (a 5-bus feeder, a synthetic leap year of hourly profiles, PV,
wind and storage candidates, two microgrids) runs ``cluster``, ``plan`` and
``dispatch`` once for the module; the figures each stage draws are captured
from the results writer as the Figure objects it saves.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from typer.testing import CliRunner

from adnstudy.cli import app
from adnstudy.results.store import StageWriter

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

TINY = """
name: tiny
defaults: {defaults}
network:
  buses: buses.csv
  branches: branches.csv
  base_mva: 1.0
  v_substation_range_pu: [1.0, 1.05]
  v_min_pu: 0.95
  v_max_pu: 1.05
  branch_rating_factor: 2.0
profiles:
  source: csv
  file: profiles.csv
  series:
    load: {{kind: load, column: load}}
    pv: {{kind: pv, column: pv}}
    wind: {{kind: wind, column: wind}}
clustering:
  k: 2
  compare: false
candidates:
  sites:
    - {{bus: 3, tech: pv, max_mw: 0.4, capex_usd_per_mw: 300000, fixed_capex_usd: 10000, lifetime_yr: 25}}
    - {{bus: 5, tech: wind, max_mw: 0.4, capex_usd_per_mw: 600000, fixed_capex_usd: 10000, lifetime_yr: 20}}
    - {{bus: 4, tech: storage, max_mw: 0.2, energy_mwh_per_mw: 3.0, capex_usd_per_mw: 60000, fixed_capex_usd: 2000,
       lifetime_yr: 15, efficiency: 0.9}}
microgrids:
  - {{name: sunny, bus: 3, load_peak_mw: 0.1, pv_mw: 0.4, pcc_limit_mw: 0.4}}
  - {{name: shady, bus: 5, load_peak_mw: 0.2, pcc_limit_mw: 0.4,
     generator: {{p_max_mw: 0.2, cost_b_usd_per_mwh: 90}}}}
market: {{fee_usd_per_mwh: 1.0}}
"""


def write_tiny_case(folder: Path) -> Path:
    """The case, its feeder and a year of 2016 (366 days) of smooth synthetic profiles."""
    pd.DataFrame({"bus": [1, 2, 3, 4, 5], "base_kv": 11.0, "p_mw": [0.0, 0.3, 0.4, 0.3, 0.2],
                  "q_mvar": [0.0, 0.1, 0.15, 0.1, 0.08]}).to_csv(folder / "buses.csv", index=False)
    pd.DataFrame({"from_bus": [1, 2, 3, 2], "to_bus": [2, 3, 4, 5], "r_ohm": [0.3, 0.5, 0.4, 0.6],
                  "x_ohm": [0.2, 0.4, 0.3, 0.4]}).to_csv(folder / "branches.csv", index=False)
    t = pd.date_range("2016-01-01", "2016-12-31 23:00", freq="h")
    hour, day = t.hour.to_numpy(), t.dayofyear.to_numpy()
    summer = 0.5 + 0.5 * np.cos((day - 180) / 366 * 2 * np.pi)
    rng = np.random.default_rng(3)
    pd.DataFrame({
        "time": t.strftime("%Y-%m-%d %H:%M"),
        "load": 0.6 + 0.3 * np.sin((hour - 8) / 24 * 2 * np.pi) + 0.05 * rng.standard_normal(len(t)),
        "pv": np.clip(np.sin((hour - 6) / 12 * np.pi), 0, None) * (0.3 + 0.6 * summer),
        "wind": np.clip(0.5 - 0.3 * summer + 0.1 * rng.standard_normal(len(t)), 0, 1),
    }).to_csv(folder / "profiles.csv", index=False)
    case = folder / "case.yaml"
    case.write_text(TINY.format(defaults=ROOT / "configs" / "defaults.yaml"))
    return case


def invoke(*args: object) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """cluster, plan and dispatch of the tiny case; the figures each wrote, by stage and name."""
    folder = tmp_path_factory.mktemp("tiny")
    case = write_tiny_case(folder)
    out = folder / "out"
    drawn: dict[tuple[str, str], Figure] = {}
    save = StageWriter.figure

    def capture(self: StageWriter, name: str, fig: Figure) -> None:
        drawn[self.stage, name] = fig
        save(self, name, fig)

    mp = pytest.MonkeyPatch()
    mp.setattr(StageWriter, "figure", capture)
    try:
        outputs = {stage: invoke(stage, case, "--out", out) for stage in ("cluster", "plan", "dispatch")}
    finally:
        mp.undo()
    return {"case": case, "out": out, "figures": drawn, "outputs": outputs}


def manifest(out: Path, stage: str) -> dict:
    return json.loads((out / stage / "manifest.json").read_text())


def overlapping_legends(fig: Figure) -> list[str]:
    """Legends whose box overlaps a plotting area (after layout, in display coordinates)."""
    fig.draw_without_rendering()
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend() is not None)]
    return [", ".join(t.get_text() for t in leg.get_texts()) for leg in legends
            for ax in fig.axes if ax.get_visible() and leg.get_window_extent().overlaps(ax.get_window_extent())]


def legend_labels(fig: Figure) -> list[str]:
    return [t.get_text() for leg in fig.legends for t in leg.get_texts()]


# ------------------------------------------------------------------------------------------- figures


def test_no_legend_covers_data(tiny):
    """Every legend of every figure sits outside every plotting area (typical_days covered its lines)."""
    assert {("cluster", "typical_days"), ("plan", "sited_capacity"), ("dispatch", "trades")} <= set(tiny["figures"])
    for key, fig in tiny["figures"].items():
        assert not overlapping_legends(fig), f"{key}: a legend covers the data"


def test_sited_capacity_legend_per_technology_and_storage_apart(tiny):
    fig = tiny["figures"]["plan", "sited_capacity"]
    inv = pd.read_parquet(tiny["out"] / "plan" / "investment.parquet")
    built = inv[inv["build"]]
    assert set(built["tech"]) == {"pv", "wind", "storage"}, "the tiny case should build every technology"
    assert legend_labels(fig) == ["candidate maximum", "pv built", "wind built", "storage built"]
    # each bar's colour is its technology's legend colour
    ax = fig.axes[0]
    colours = {t.get_text(): h.get_facecolor() for t, h in zip(fig.legends[0].get_texts(),
                                                                 fig.legends[0].legend_handles, strict=True)}
    built_bars = [c for c in ax.containers if c.get_label().endswith("built")]
    for container in built_bars:
        assert all(bar.get_facecolor() == colours[container.get_label()] for bar in container)
    res_mw = built.loc[built["tech"] != "storage", "capacity_mw"].sum()
    sto_mw = built.loc[built["tech"] == "storage", "capacity_mw"].sum()
    title = ax.get_title()
    assert f"RES {res_mw:.3f} MW" in title and f"storage {sto_mw:.3f} MW / {3 * sto_mw:.3f} MWh" in title
    summary = manifest(tiny["out"], "plan")["summary"]
    assert "capacity_mw" not in summary
    assert summary["res_capacity_mw"] == pytest.approx(res_mw, abs=1e-6)
    assert summary["storage_capacity_mw"] == pytest.approx(sto_mw, abs=1e-6)
    assert summary["storage_energy_mwh"] == pytest.approx(3 * sto_mw, abs=1e-6)
    assert f"RES {res_mw:.3f} MW, storage {sto_mw:.3f} MW / {3 * sto_mw:.3f} MWh" in tiny["outputs"]["plan"]


def test_plan_voltage_figure_shows_the_ac_check(tiny):
    fig = tiny["figures"]["plan", "voltage_profile"]
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert {"planned (SOCP relaxation)", "AC power flow check"} <= set(lines)
    bus = pd.read_parquet(tiny["out"] / "plan" / "bus.parquet")
    worst = bus.loc[bus.groupby(["scenario", "hour"])["v_pu"].transform("min").idxmin(), ["scenario", "hour"]]
    hour = bus[(bus["scenario"] == worst["scenario"]) & (bus["hour"] == worst["hour"])]
    np.testing.assert_allclose(lines["AC power flow check"].get_ydata(), hour["v_ac_pu"])
    np.testing.assert_allclose(lines["planned (SOCP relaxation)"].get_ydata(), hour["v_pu"])


def test_trades_figure_shows_every_typical_day_unclipped(tiny):
    fig = tiny["figures"]["dispatch", "trades"]
    trades = pd.read_parquet(tiny["out"] / "dispatch" / "trades.parquet")
    scenarios = sorted(pd.read_parquet(tiny["out"] / "cluster" / "weights.parquet")["scenario"])
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title().split(" (")[0] for ax in panels] == [f"typical day {s}" for s in scenarios]
    assert trades["p_mw"].max() > 1e-3, "the tiny case's MGs should trade"
    for s, ax in zip(scenarios, panels, strict=True):
        bars = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_height() > 0]
        # the stacked bars of an hour add up to that hour's trades, and no bar reaches past the axes' top
        tops = {}
        for bar in bars:
            hour = round(bar.get_x() + bar.get_width() / 2)
            tops[hour] = max(tops.get(hour, 0.0), bar.get_y() + bar.get_height())
        day = trades[(trades["scenario"] == s) & (trades["p_mw"] > 1e-4)].groupby("hour")["p_mw"].sum()
        assert sorted(tops) == sorted(day.index)
        np.testing.assert_allclose([tops[h] for h in day.index], day.to_numpy(), rtol=1e-9)
        assert max(tops.values(), default=0.0) < ax.get_ylim()[1]


def test_costs_figure_has_a_title(tiny):
    assert tiny["figures"]["dispatch", "costs"].axes[0].get_title()


# ------------------------------------------------------------------------------------------- plan tables


def test_cost_table_has_fixed_rows_and_the_baseline(tiny):
    out = tiny["out"]
    cost = pd.read_parquet(out / "plan" / "cost.parquet").set_index("item")
    # no reliability section, so no EENS cost: still a row, of 0
    assert list(cost.index) == ["investment_annualised", "purchase", "om_fixed", "om_energy", "eens", "total"]
    assert list(cost.columns) == ["annual_usd", "baseline_annual_usd", "saving_annual_usd"]
    assert cost.loc["eens", "annual_usd"] == 0 and cost.loc["eens", "baseline_annual_usd"] == 0
    for col in ("annual_usd", "baseline_annual_usd"):
        assert cost.loc["total", col] == pytest.approx(cost[col].drop("total").sum(), rel=1e-12)
    # nothing built in the baseline: it only buys energy, the load's and the losses'
    base = cost["baseline_annual_usd"]
    assert (base[["investment_annualised", "om_fixed", "om_energy"]] == 0).all()
    np.testing.assert_allclose(cost["saving_annual_usd"], cost["baseline_annual_usd"] - cost["annual_usd"])
    bus = pd.read_parquet(out / "plan" / "bus.parquet")
    weights = pd.read_parquet(out / "cluster" / "weights.parquet").set_index("scenario")["weight_days"]
    price = np.asarray(_economics(tiny["case"]).purchase_price_usd_per_mwh)
    load = bus.groupby(["scenario", "hour"])["p_load_mw"].sum()
    load_cost = float(sum(weights[s] * price[h] * p for (s, h), p in load.items()))
    assert load_cost < base["purchase"] < 1.05 * load_cost
    m = manifest(out, "plan")
    assert m["baseline"]["status"] == "optimal"
    assert m["summary"]["baseline_total_usd"] == pytest.approx(base["total"], rel=1e-12)
    assert m["summary"]["saving_usd"] == pytest.approx(cost.loc["total", "saving_annual_usd"], rel=1e-12)
    assert m["summary"]["saving_usd"] > 0
    assert f"no-investment baseline {base['total']:,.0f} USD" in tiny["outputs"]["plan"]


def test_storage_state_of_charge(tiny):
    out = tiny["out"]
    sto = pd.read_parquet(out / "plan" / "storage.parquet")
    inv = pd.read_parquet(out / "plan" / "investment.parquet").set_index("site")
    assert list(sto.columns) == ["site", "bus", "scenario", "hour", "p_charge_mw", "p_discharge_mw", "soc_mwh"]
    assert sto["site"].unique().tolist() == [2] and (sto["bus"] == 4).all()
    assert len(sto) == 2 * 24  # one row per (site, scenario, hour)
    energy = 3.0 * inv.loc[2, "capacity_mw"]
    assert sto["soc_mwh"].between(-1e-7, energy + 1e-7).all() and sto["soc_mwh"].max() > 0.5 * energy
    # the energy balance of every hour, cyclic within each day (efficiency 0.9 each way)
    for _, day in sto.groupby("scenario"):
        soc = day["soc_mwh"].to_numpy()
        change = 0.9 * day["p_charge_mw"].to_numpy() - day["p_discharge_mw"].to_numpy() / 0.9
        np.testing.assert_allclose(soc, np.roll(soc, 1) + change, atol=1e-6)


def test_branch_rating_and_loading(tiny):
    out = tiny["out"]
    branch = pd.read_parquet(out / "plan" / "branch.parquet")
    assert {"i_ka", "rating_ka", "loading_pct"} <= set(branch.columns)
    base_ka = 1.0 / (np.sqrt(3) * 11.0)
    np.testing.assert_allclose(branch["i_ka"], branch["i_pu"] * base_ka, rtol=1e-12)
    np.testing.assert_allclose(branch["loading_pct"], 100 * branch["i_ka"] / branch["rating_ka"], rtol=1e-12)
    # the ratings are the feeder's (branch_rating_factor 2 × the base-case peak current, whole amperes)
    assert (branch["rating_ka"] * 1000 == np.round(branch["rating_ka"] * 1000)).all()
    assert branch["loading_pct"].max() <= 100 + 1e-4


# ------------------------------------------------------------------------------------------- the year


def test_annual_costs_count_a_365_day_year(tiny):
    """2016 has 366 days: the weights keep the raw count, and the plan's energy costs are for 365 days."""
    out = tiny["out"]
    weights = pd.read_parquet(out / "cluster" / "weights.parquet").set_index("scenario")
    assert weights["days"].sum() == 366
    np.testing.assert_allclose(weights["weight_days"], weights["days"] * 365 / 366)
    # the purchase cost from the plan's own substation flows, weighted by weight_days
    branch = pd.read_parquet(out / "plan" / "branch.parquet")
    head = branch[branch["from_bus"] == 1].set_index(["scenario", "hour"])["p_mw"]
    eco = _economics(tiny["case"])
    buy, sell = np.asarray(eco.purchase_price_usd_per_mwh), np.asarray(eco.sell_price_usd_per_mwh)
    purchase = sum(weights.loc[s, "weight_days"] * (buy[h] * max(p, 0.0) - sell[h] * max(-p, 0.0))
                   for (s, h), p in head.items())
    cost = pd.read_parquet(out / "plan" / "cost.parquet").set_index("item")["annual_usd"]
    assert cost["purchase"] == pytest.approx(purchase, rel=1e-6)
    for stage in ("cluster", "plan"):
        assert manifest(out, stage)["year_days"] == 365
    # dispatch's annual figures weight each day the same way
    by_scenario = pd.read_parquet(out / "dispatch" / "agents_by_scenario.parquet")
    np.testing.assert_allclose(by_scenario.groupby("scenario")["weight_days"].first(), weights["weight_days"])


def _economics(case: Path):
    from adnstudy.config.load import load_case

    return load_case(case).config.economics


def test_plan_manifest_keys_are_documented(tiny):
    """The plan's summary and baseline keys (res_capacity_mw ... replaced capacity_mw) are named in docs/results.md."""
    text = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    m = manifest(tiny["out"], "plan")
    keys = [*m["summary"], *(f"baseline.{k}" for k in m["baseline"]), "year_days", "timings_s.baseline"]
    assert not [k for k in keys if f"`{k}`" not in text]

