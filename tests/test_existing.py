"""Existing generation and load mixes (issue 15) through every stage, proved on tiny feeders in seconds.

* a must-take unit in plan and dispatch gives the same objective and voltages as its output taken
  off the bus load (an independent reformulation);
* a curtailable unit is curtailed exactly when it pays (export forbidden: down to the load; export
  paid: not at all);
* a bus's load mix is the hand-computed Σ share × series, annual and typical alike;
* the powerflow stage's year equals ``run_powerflow`` on the net loads;
* a bad generator table is exit 2 naming file, line, column and unit.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from adnstudy.checks import case_feeder
from adnstudy.cli import app
from adnstudy.config.load import load_case
from adnstudy.data.typical import typical_days
from adnstudy.formulation.distflow import at_buses
from adnstudy.problems.plan import build_plan_model, plan_data
from adnstudy.solve.conic import FINAL, solve_conic

runner = CliRunner()
PRICES = "[" + ", ".join(["50"] * 12 + ["90"] * 12) + "]"
SELL = "[" + ", ".join(["10"] * 24) + "]"


def tiny_case(d: Path, generators: str, extra: str = "", series: str = "") -> Path:
    """A 3-bus feeder (11 kV) with a generator table, 2 days of hourly CSV profiles and flat prices."""
    pd.DataFrame({"bus": [1, 2, 3], "base_kv": 11.0, "p_mw": [0, 0.3, 0.2], "q_mvar": [0, 0.1, 0.1]}).to_csv(
        d / "b.csv", index=False)
    pd.DataFrame({"from_bus": [1, 2], "to_bus": [2, 3], "r_ohm": 0.5, "x_ohm": 0.4}).to_csv(d / "l.csv", index=False)
    (d / "g.csv").write_text(generators)
    t = pd.date_range("2021-01-01", periods=48, freq="h")
    h = t.hour.to_numpy()
    pd.DataFrame({"time": t.strftime("%Y-%m-%d %H:%M"), "l": 0.6 + 0.4 * np.sin(h / 24 * np.pi),
                  "l2": 0.3 + 0.7 * (h >= 12), "p": np.clip(np.sin((h - 6) / 12 * np.pi), 0, None)}).to_csv(
        d / "x.csv", index=False)
    (d / "c.yaml").write_text(
        "network: {buses: b.csv, branches: l.csv, generators: g.csv, base_mva: 1.0, v_min_pu: 0.9, v_max_pu: 1.1"
        + extra + "}\n"
        "profiles: {source: csv, file: x.csv, series: {load: {kind: load, column: l}, pv: {kind: pv, column: p}"
        + series + "}}\n"
        f"economics: {{purchase_price_usd_per_mwh: {PRICES}, sell_price_usd_per_mwh: {SELL}, "
        "wholesale_price_usd_per_mwh: 40}\n"
    )
    return d / "c.yaml"


def typical(value_of: dict[str, np.ndarray]) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = [{"scenario": 0, "hour": h, "series": s, "value": float(v[h])} for s, v in value_of.items() for h in range(24)]
    return pd.DataFrame(rows), pd.DataFrame({"scenario": [0], "days": [365]})


PV = np.clip(np.sin((np.arange(24) - 6) / 12 * np.pi), 0, None)
LOAD = np.full(24, 0.8)


def net_load_data(data):
    """The same plan data with the existing units' output taken off the bus loads instead."""
    u = data.existing
    to_bus = at_buses(data.feeder.n_bus, u.pos)
    return replace(data, existing=None, p_load=data.p_load - to_bus @ u.available,
                   q_load=data.q_load - to_bus @ (u.q_per_p[:, None] * u.available))


def test_must_take_unit_in_plan_equals_net_load(tmp_path: Path) -> None:
    case = load_case(tiny_case(tmp_path, "bus,tech,p_mw,q_mvar\n3,pv,0.4,0.1\n2,pv,0.1,0\n"))
    td = typical({"load": LOAD, "pv": PV})
    data = plan_data(case, case_feeder(case), *td)
    assert data.existing is not None and data.existing.n == 2
    ours = build_plan_model(data)
    solve_conic(ours.problem, FINAL)
    ref = build_plan_model(net_load_data(data))
    solve_conic(ref.problem, FINAL)
    assert ours.objective_usd == pytest.approx(ref.objective_usd, rel=1e-7)
    np.testing.assert_allclose(ours.solution().flow.v_pu, ref.solution().flow.v_pu, atol=1e-6)
    np.testing.assert_allclose(ours.solution().p_existing, data.existing.available, atol=1e-8)
    # q at the unit's power factor (0.1 Mvar per 0.4 MW)
    np.testing.assert_allclose(ours.solution().q_existing[0], 0.25 * data.existing.available[0], atol=1e-8)


@pytest.mark.parametrize("export", ["0", "null"])
def test_curtailable_unit_is_curtailed_only_when_it_pays(tmp_path: Path, export: str) -> None:
    """2 MW of PV at bus 3 at noon: with export forbidden it gives just what the feeder takes (curtailing the rest);
    with export paid (10 USD/MWh) and no limit it is never curtailed."""
    case = load_case(tiny_case(tmp_path, "bus,tech,p_mw,curtailable\n3,pv,2.0,true\n",
                               extra=f", p_export_max_mw: {export}"))
    data = plan_data(case, case_feeder(case), *typical({"load": LOAD, "pv": PV}))
    model = build_plan_model(data)
    solve_conic(model.problem, FINAL)
    sol = model.solution()
    avail = data.existing.available[0]
    if export == "null":
        np.testing.assert_allclose(sol.p_existing[0], avail, atol=1e-6)
        return
    assert np.all(sol.p_existing[0] <= avail + 1e-7)
    assert np.all(sol.p_import >= -1e-7)
    # wherever the unit could cover the whole feeder, it gives the load and the losses, no more; else all it has
    load = data.p_load.sum(axis=0)
    covered = avail > load + 0.01
    assert covered.any() and (~covered).any()
    assert np.all(sol.p_import[covered] < 1e-6)
    losses = sol.flow.loss_pu(data.feeder).sum(axis=0)
    np.testing.assert_allclose(sol.p_existing[0][covered], (load + losses)[covered], atol=1e-6)
    np.testing.assert_allclose(sol.p_existing[0][~covered], avail[~covered], atol=1e-6)


def test_must_take_unit_in_dispatch_equals_net_load(tmp_path: Path) -> None:
    from adnstudy.problems.dispatch import centralised_model, dispatch_days

    path = tiny_case(tmp_path, "bus,tech,p_mw,q_mvar\n3,pv,0.4,0.1\n")
    text = path.read_text() + ("market: {}\nmicrogrids:\n"
                               "  - {name: a, bus: 2, load_peak_mw: 0.2, pv_mw: 0.3, pcc_limit_mw: 0.5}\n"
                               "  - {name: b, bus: 3, load_peak_mw: 0.3, pcc_limit_mw: 0.5, "
                               "generator: {p_max_mw: 0.2, cost_b_usd_per_mwh: 30}}\n")
    path.write_text(text)
    case = load_case(path)
    feeder = case_feeder(case)
    td = typical_days(case, *typical({"load": LOAD, "pv": PV}))
    (day,) = dispatch_days(case, feeder, td)
    u = day.adn.existing
    to_bus = at_buses(feeder.n_bus, u.pos)
    net = replace(day, adn=replace(day.adn, existing=None, p_load_pu=day.adn.p_load_pu - to_bus @ u.available,
                                   q_load_pu=day.adn.q_load_pu - to_bus @ (u.q_per_p[:, None] * u.available)))
    ours, ref = centralised_model(day), centralised_model(net)
    solve_conic(ours.problem, FINAL)
    solve_conic(ref.problem, FINAL)
    # the ADN values its units' energy at the wholesale price less the curtailment preference: a constant here
    B, pref = feeder.base_mva, 40.0 - 0.1
    assert ours.problem.value == pytest.approx(ref.problem.value - pref * B * u.available.sum(), rel=1e-7, abs=1e-6)
    np.testing.assert_allclose(ours.adn.network.solution().v_pu, ref.adn.network.solution().v_pu, atol=1e-6)


def test_load_mix_is_the_hand_computed_mix(tmp_path: Path) -> None:
    from adnstudy.checks import CaseInputs

    case = load_case(tiny_case(tmp_path, "bus,p_mw\n", series=", l2: {kind: load, column: l2}"))
    feeder = case_feeder(case)
    shares = pd.DataFrame({"bus": [3, 3], "load_profile": ["load", "l2"], "share": [0.25, 0.75]})
    mixed = replace(feeder, load_shares=shares)
    inputs = CaseInputs(case)
    inputs.__dict__["feeder"] = mixed  # the cached feeder, with the mix
    prof = inputs.profiles
    annual = inputs.bus_load_multipliers
    np.testing.assert_array_equal(annual[1], prof["load"].to_numpy())  # bus 2: its own series, bit for bit
    np.testing.assert_allclose(annual[2], 0.25 * prof["load"].to_numpy() + 0.75 * prof["l2"].to_numpy(), rtol=1e-15)
    l2 = np.linspace(0.2, 1.0, 24)
    td = typical_days(case, *typical({"load": LOAD, "pv": PV, "l2": l2}))
    days = td.bus_load_multipliers(mixed)
    np.testing.assert_allclose(days[2], 0.25 * LOAD + 0.75 * l2, rtol=1e-15)
    np.testing.assert_array_equal(days[1], LOAD)


def test_powerflow_year_runs_on_net_loads(tmp_path: Path) -> None:
    from adnstudy.network.powerflow import run_powerflow

    path = tiny_case(tmp_path, "bus,tech,p_mw,q_mvar,profile\n3,pv,0.3,-0.05,pv\n2,other,0.05,0,\n",
                     series=", other: {kind: other, column: l2}")
    out = tmp_path / "out"
    res = runner.invoke(app, ["powerflow", str(path), "--year", "--out", str(out)])
    assert res.exit_code == 0, res.output
    bus = pd.read_parquet(out / "powerflow_year" / "bus.parquet")
    case = load_case(path)
    feeder = case_feeder(case)
    x = pd.read_csv(tmp_path / "x.csv")
    p = feeder.buses["p_mw"].to_numpy()[:, None] * x["l"].to_numpy()[None, :]
    q = feeder.buses["q_mvar"].to_numpy()[:, None] * x["l"].to_numpy()[None, :]
    p[2] -= 0.3 * x["p"].to_numpy()
    q[2] += 0.05 * x["p"].to_numpy()
    p[1] -= 0.05 * x["l2"].to_numpy()  # the case's first (only) other series, per unit as given
    ref = run_powerflow(feeder, p, q, v0_pu=case.config.network.v_substation_pu)
    np.testing.assert_allclose(bus["v_pu"].to_numpy().reshape(48, 3).T, ref.v_pu, atol=1e-9)
    np.testing.assert_allclose(bus["p_load_mw"].to_numpy().reshape(48, 3).T, p, atol=1e-12)


@pytest.mark.parametrize(("table", "line", "column", "what"), [
    ("bus,tech,p_mw\n3,pv,0.4\n2,pv,-1\n", 3, "p_mw", "gen 2: p_mw must be above 0 and at most 1,000 MW"),
    ("bus,tech,p_mw\n# a comment\n9,pv,0.4\n", 3, "bus", "gen 1: the bus is not on feeder"),
    ("bus,tech,p_mw\n3,solar,0.4\n", 2, "tech", "gen 1: tech must be one of pv, wind, other"),
    ("bus,tech,p_mw,profile\n3,pv,0.4,load\n", None, "profile", "gen 1: profile 'load' is a load series"),
])
def test_bad_generator_table_is_exit_2_naming_file_line_column(tmp_path: Path, table: str, line: int | None,
                                                                column: str, what: str) -> None:
    path = tiny_case(tmp_path, table)
    res = runner.invoke(app, ["validate", str(path)])
    assert res.exit_code == 2, res.output
    where = f"{tmp_path / 'g.csv'}:{line}: " if line else f"{tmp_path / 'g.csv'}: "
    assert f"error: {where}{column}: {what}" in res.stderr, res.stderr


def test_generators_with_an_imported_network_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("network: {simbench: 1-MV-rural--0-sw, generators: g.csv}\n")
    res = runner.invoke(app, ["validate", str(tmp_path / "c.yaml")])
    assert res.exit_code == 2
    assert "generators" in res.stderr and "brings its own generators" in res.stderr


def test_cluster_weights_follow_the_mw_behind_each_series(tmp_path: Path) -> None:
    """Load series by the peak MW that follows them, generator series by capacity, mean 1 over those; others 1."""
    from adnstudy.data.mixes import feature_weights, net_load_mw

    case = load_case(tiny_case(tmp_path, "bus,tech,p_mw\n3,pv,0.4\n", series=", l2: {kind: load, column: l2}"))
    feeder = case_feeder(case)
    np.testing.assert_allclose(feature_weights(case, feeder), [2 * 0.5 / 0.9, 2 * 0.4 / 0.9, 1.0])
    mixed = replace(feeder, load_shares=pd.DataFrame({"bus": [3, 3], "load_profile": ["load", "l2"],
                                                      "share": [0.5, 0.5]}))
    # load 0.3 + 0.1 MW, l2 0.1 MW, pv 0.4 MW
    np.testing.assert_allclose(feature_weights(case, mixed), np.array([0.4, 0.4, 0.1]) * 3 / 0.9)
    assert feature_weights(case, replace(feeder, generators=feeder.generators.iloc[:0])) is None
    # the extreme days' net load: the feeder's MW behind each series, generation negative
    np.testing.assert_allclose(net_load_mw(case, feeder), [0.5, -0.4, 0.0])


def test_plan_and_dispatch_write_the_existing_table(tmp_path: Path) -> None:
    """Through the CLI: cluster, plan and dispatch on the 3-bus feeder with a must-take and a curtailable unit."""
    path = tiny_case(tmp_path, "bus,tech,p_mw,q_mvar,curtailable\n3,pv,0.3,0.05,false\n2,pv,0.2,0,true\n")
    path.write_text(path.read_text() + (
        "clustering: {k: 1}\n"
        "candidates: {sites: [{bus: 3, tech: pv, max_mw: 0.3, capex_usd_per_mw: 500000}]}\n"
        "market: {}\nmicrogrids:\n"
        "  - {name: a, bus: 2, load_peak_mw: 0.2, pv_mw: 0.3, pcc_limit_mw: 0.5}\n"
        "  - {name: b, bus: 3, load_peak_mw: 0.3, pcc_limit_mw: 0.5, generator: {p_max_mw: 0.2, cost_b_usd_per_mwh: 30}}\n"))
    out = tmp_path / "out"
    for stage in ("cluster", "plan", "dispatch"):
        res = runner.invoke(app, [stage, str(path), "--out", str(out)])
        assert res.exit_code == 0, res.output
    for stage in ("plan", "dispatch"):
        t = pd.read_parquet(out / stage / "existing.parquet")
        assert len(t) == 2 * 24 and set(t["gen"]) == {1, 2}
        must = t[t["gen"] == 1]
        np.testing.assert_allclose(must["p_mw"], must["p_available_mw"], atol=1e-6)
        np.testing.assert_allclose(must["q_mvar"], must["p_mw"] / 6, atol=1e-6)
        assert (t["p_mw"] <= t["p_available_mw"] + 1e-6).all() and t["p_available_mw"].max() > 0.1
    import json

    rec = json.loads((out / "plan" / "manifest.json").read_text())["existing"]
    t = pd.read_parquet(out / "plan" / "existing.parquet")
    assert rec["units"] == 2 and rec["capacity_mw"] == pytest.approx(0.5)
    assert rec["used_mwh_per_yr"] == pytest.approx(t["p_mw"].sum() * 365, rel=1e-9)  # one typical day of 365


def test_run_key_of_an_imported_network(tmp_path: Path) -> None:
    """An imported network's inputs are hashed (it has no bus/branch tables): the simbench grid, or the file."""
    from adnstudy.pipeline import input_digests

    (tmp_path / "c.yaml").write_text("network: {simbench: 1-MV-rural--0-sw}\n")
    assert input_digests(load_case(tmp_path / "c.yaml"), ("feeder",))["network:simbench"].endswith(":1-MV-rural--0-sw")
    (tmp_path / "n.json").write_text("{}")
    (tmp_path / "c.yaml").write_text("network: {pandapower: n.json}\n")
    assert len(input_digests(load_case(tmp_path / "c.yaml"), ("feeder",))["network:pandapower"]) == 64


def test_branch_rating_bound_counts_existing_generation(tmp_path: Path) -> None:
    """The 1-2 branch (20 A: 0.42 MVA at 1.1 pu) cannot carry the 0.5 MW peak alone, but can with a 0.3 MW unit
    whose series never falls below 0.3 (at most 0.41 MW net): validate rejects the first, never the second."""
    gens = "bus,tech,p_mw,profile\n3,other,0.3,o\n"
    path = tiny_case(tmp_path, gens, series=", l2: {kind: load, column: l2}, o: {kind: other, column: l2}")
    pd.DataFrame({"from_bus": [1, 2], "to_bus": [2, 3], "r_ohm": 0.5, "x_ohm": 0.4, "rating_a": 20.0}).to_csv(
        tmp_path / "l.csv", index=False)
    path.write_text(path.read_text() + "candidates: {sites: [{bus: 3, tech: pv, max_mw: 0.01, capex_usd_per_mw: 1}]}\n")
    res = runner.invoke(app, ["validate", str(path)])
    assert res.exit_code == 0, res.output
    (tmp_path / "g.csv").write_text("bus,tech,p_mw,profile\n")  # no existing units
    res = runner.invoke(app, ["validate", str(path)])
    assert res.exit_code == 2 and "branch 1-2 must carry at least 0.49" in res.stderr, res.output
