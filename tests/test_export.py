"""``adnstudy export``: feeders round-trip through pandapower and MATPOWER exactly, an hour of a plan solved by
pandapower's ``runpp`` gives the plan's AC voltages, and bad invocations exit 2 writing nothing.

Round trips go feeder → export → the importer (``adnstudy/interop/importer.py``), which reads pandapower's own
internal model: what comes back is what pandapower would solve.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import Study
from typer.testing import CliRunner

from adnstudy.cli import app
from adnstudy.interop import export, importer
from adnstudy.network.feeder import Feeder, build_feeder

runner = CliRunner()
NO_UNITS = pd.DataFrame(columns=export.UNIT_COLUMNS)
TABLES = ("buses", "branches", "ties", "generators", "load_shares")


def feeder_of(net, name: str, base_mva: float = 10.0) -> Feeder:
    """A pandapower network as the case loader makes it a feeder (feeder.py ``_imported_feeder``)."""
    imp = importer.convert(net, name, name)
    feeder = build_feeder(name, imp.buses, imp.branches, base_mva)
    return replace(feeder, generators=imp.generators.reset_index(drop=True),
                   load_shares=imp.load_shares.reset_index(drop=True))


def via_json(net):
    """The network written to pandapower JSON and read back (what a user's file holds)."""
    import pandapower as pp

    with importer._quiet():
        return pp.from_json_string(pp.to_json(net))


def assert_same_feeder(a: Feeder, b: Feeder, tables=TABLES) -> float:
    """Equal tables (same rows, order and columns; numbers to 1e-12 relative); the largest numeric difference."""
    worst = 0.0
    for name in tables:
        x, y = getattr(a, name).reset_index(drop=True), getattr(b, name).reset_index(drop=True)
        pd.testing.assert_frame_equal(x, y, check_dtype=False, check_exact=False, rtol=1e-12, atol=1e-12,
                                      obj=name)
        num = [c for c in x.columns if pd.api.types.is_numeric_dtype(x[c]) and not pd.api.types.is_bool_dtype(x[c])]
        if len(x) and num:
            worst = max(worst, float(np.nanmax(np.abs(x[num].to_numpy(float) - y[num].to_numpy(float)))))
    return worst


@pytest.fixture(scope="module")
def rural():
    """SimBench's rural MV grid (110/20 kV transformer, line charging, open rings, 102 generators, mixed loads)."""
    import simbench as sb

    with importer._quiet():
        return sb.get_simbench_net("1-MV-rural--0-sw")


@pytest.fixture(scope="module")
def rural_edited(rural) -> Feeder:
    """The rural grid's feeder with what the grid lacks: an off-nominal tap and no rating on its transformer,
    lines without a length or a rating."""
    feeder = feeder_of(rural, "rural")
    br = feeder.branches.copy()
    trafo = np.flatnonzero(feeder.bus_kv[feeder.f] != feeder.bus_kv[feeder.t])
    assert len(trafo) == 1
    br.loc[trafo, "tap_ratio"] = 1.025
    br.loc[trafo, "rating_a"] = np.nan
    br.loc[[3, 7], "length_km"] = np.nan
    br.loc[[4, 7], "rating_a"] = np.nan
    return replace(feeder, branches=br)


# ------------------------------------------------------------------ pandapower round trips
def test_case33bw_round_trips_exactly() -> None:
    import pandapower.networks as pn

    feeder = feeder_of(pn.case33bw(), "case33bw")
    again = feeder_of(via_json(export.to_pandapower(feeder, NO_UNITS, 1.0)), "case33bw")
    assert len(again.ties) == 5
    assert assert_same_feeder(feeder, again) < 1e-12


def test_simbench_grid_round_trips_exactly(rural) -> None:
    feeder = feeder_of(rural, "rural")
    assert len(feeder.ties) and len(feeder.generators) and len(feeder.load_shares) and feeder.has_shunts
    again = feeder_of(via_json(export.to_pandapower(feeder, NO_UNITS, 1.0)), "rural")
    assert assert_same_feeder(feeder, again) < 1e-12


def test_taps_unknown_lengths_and_ratings_round_trip(rural_edited: Feeder) -> None:
    net = export.to_pandapower(rural_edited, NO_UNITS, 1.0)
    again = feeder_of(via_json(net), "rural")
    assert assert_same_feeder(rural_edited, again) < 1e-12
    assert again.tap[0] == pytest.approx(1.025, abs=1e-15) and np.isnan(again.branches["rating_a"].iloc[0])


def test_pandapower_solves_the_exported_feeder_as_adnstudy_does(rural_edited: Feeder) -> None:
    """pandapower's ratio is τ at the hv side, its shunts have adnstudy's sign: the same voltages and losses."""
    import pandapower as pp

    from adnstudy.network.powerflow import run_powerflow

    net = export.to_pandapower(rural_edited, NO_UNITS, 1.02)
    with importer._quiet():
        pp.runpp(net, tolerance_mva=1e-10)
    f = rural_edited
    gen = f.generators.groupby("bus")[["p_mw", "q_mvar"]].sum().reindex(f.bus_ids, fill_value=0.0)
    ours = run_powerflow(f, f.buses["p_mw"].to_numpy() - gen["p_mw"].to_numpy(),
                         f.buses["q_mvar"].to_numpy() - gen["q_mvar"].to_numpy(), v0_pu=1.02)
    v_pp = net.res_bus["vm_pu"].reindex(rural_edited.bus_ids - 1).to_numpy()
    assert np.max(np.abs(v_pp - ours.v_pu[:, 0])) < 1e-9
    # the 20 kV side of the tapped transformer sits 1/τ below its 110 kV side at no load
    assert v_pp[rural_edited.t[0]] < 1.02 / 1.025 + 1e-3
    p_loss = net.res_line["pl_mw"].sum() + net.res_trafo["pl_mw"].sum() + net.res_shunt["p_mw"].sum()
    assert p_loss == pytest.approx(float(ours.p_loss_mw[0]), rel=1e-7)


def test_a_user_feeder_with_taps_on_both_levels_round_trips_and_solves() -> None:
    """A 20/0.4 kV feeder given against the flow (its transformer re-referred by build_feeder), a 20 kV regulator
    with τ < 1, an inductive shunt, an unrated line."""
    import pandapower as pp

    from adnstudy.network.powerflow import run_powerflow

    buses = pd.DataFrame({"bus": [1, 2, 3, 4], "base_kv": [20.0, 0.4, 0.4, 20.0], "p_mw": [0, 0.1, 0.05, 0.2],
                          "q_mvar": [0, 0.03, 0.01, 0.05], "customers": [0, 10, 5, 1],
                          "g_shunt_mw": [0, 0.001, 0, 0], "b_shunt_mvar": [0, -0.002, 0, 0.01]})
    branches = pd.DataFrame({"from_bus": [2, 2, 1], "to_bus": [1, 3, 4], "r_ohm": [0.01, 0.05, 0.5],
                             "x_ohm": [0.04, 0.02, 0.3], "rating_a": [900, np.nan, 200], "tap_ratio": [1.02, 1.0, 0.98]})
    feeder = build_feeder("two levels", buses, branches, 1.0)
    net = export.to_pandapower(feeder, NO_UNITS, 1.03)
    assert len(net.trafo) == 2 and len(net.line) == 1
    assert assert_same_feeder(feeder, feeder_of(via_json(net), "two levels", 1.0), ("buses", "branches", "ties")) < 1e-9
    with importer._quiet():
        pp.runpp(net, tolerance_mva=1e-10)
    ours = run_powerflow(feeder, feeder.buses["p_mw"].to_numpy(), feeder.buses["q_mvar"].to_numpy(), v0_pu=1.03)
    assert np.max(np.abs(net.res_bus["vm_pu"].reindex(feeder.bus_ids - 1).to_numpy() - ours.v_pu[:, 0])) < 1e-9


# ------------------------------------------------------------------ MATPOWER
def test_matpower_case_reads_back(rural_edited: Feeder, tmp_path: Path) -> None:
    from matpowercaseframes import CaseFrames

    feeder = rural_edited
    net = export.to_pandapower(feeder, NO_UNITS, 1.0)
    path = tmp_path / "rural.m"
    path.write_text(export.matpower_text(feeder, net, 0.9, 1.1, name="rural"))
    cf = CaseFrames(str(path))
    base = feeder.base_mva
    assert float(cf.baseMVA) == base
    bus = cf.bus.set_index(cf.bus["BUS_I"].astype(int))
    b = feeder.buses.set_index("bus")
    net_p = b["p_mw"] - feeder.generators.groupby("bus")["p_mw"].sum().reindex(b.index, fill_value=0.0)
    np.testing.assert_allclose(bus.loc[b.index, "PD"], net_p, rtol=0, atol=1e-12)
    np.testing.assert_allclose(bus.loc[b.index, "GS"], b["g_shunt_mw"], rtol=0, atol=1e-15)
    np.testing.assert_allclose(bus.loc[b.index, "BS"], b["b_shunt_mvar"], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(bus.loc[b.index, "BASE_KV"], b["base_kv"])
    assert list(bus["BUS_TYPE"]).count(3) == 1 and bus.loc[feeder.bus_ids[0], "BUS_TYPE"] == 3
    rows = pd.concat([feeder.branches, feeder.ties], ignore_index=True)
    br = cf.branch
    zb = rows["to_bus"].map(b["base_kv"]).to_numpy() ** 2 / base
    np.testing.assert_allclose(br["BR_R"], rows["r_ohm"] / zb, rtol=1e-15)
    np.testing.assert_allclose(br["BR_X"], rows["x_ohm"] / zb, rtol=1e-15)
    np.testing.assert_array_equal(br["BR_B"], 0.0)
    np.testing.assert_array_equal(br["TAP"], np.where(rows["tap_ratio"] != 1, rows["tap_ratio"], 0.0))
    np.testing.assert_array_equal(br["BR_STATUS"], np.where(rows["normally_open"], 0, 1))

    # pandapower's converter and the importer give the same feeder (MATPOWER keeps no customers, lengths,
    # switches, outage data or generators: a bus's net load comes back, negative ones as static generators)
    again = feeder_of(importer.read_matpower(path), "rural")
    bb = again.buses.set_index("bus")
    back_p = bb["p_mw"] - again.generators.groupby("bus")["p_mw"].sum().reindex(bb.index, fill_value=0.0)
    np.testing.assert_allclose(back_p, net_p, rtol=0, atol=1e-12)
    for col in ("base_kv", "g_shunt_mw", "b_shunt_mvar"):
        np.testing.assert_allclose(bb[col], b[col], rtol=1e-12, atol=1e-15)
    assert again.bus_ids[0] == feeder.bus_ids[0]
    for name in ("branches", "ties"):
        x, y = getattr(feeder, name), getattr(again, name)
        pd.testing.assert_frame_equal(y[["from_bus", "to_bus", "normally_open"]], x[["from_bus", "to_bus", "normally_open"]])
        for col in ("r_ohm", "x_ohm", "tap_ratio", "rating_a"):
            np.testing.assert_allclose(y[col], x[col], rtol=1e-12, atol=0, err_msg=f"{name}.{col}")


# ------------------------------------------------------------------ a planned network
@pytest.fixture(scope="module")
def planned(small_study: Study, tmp_path_factory) -> Path:
    """A copy of the small case's results (cluster, plan with storage, reliability; two microgrids)."""
    folder = tmp_path_factory.mktemp("export") / "small"
    shutil.copytree(small_study.runs["main"], folder)
    return folder


def export_cli(*args) -> object:
    return runner.invoke(app, ["export", *map(str, args)])


def test_an_hour_of_the_plan_solves_to_its_ac_voltages(planned: Path) -> None:
    import pandapower as pp

    bus = pd.read_parquet(planned / "plan" / "bus.parquet")
    worst = bus.loc[bus["v_ac_pu"].idxmin()]
    s, h = int(worst["scenario"]), int(worst["hour"])
    result = export_cli(planned, "--to", "pandapower", "--scenario", s, "--hour", h)
    assert result.exit_code == 0, result.output
    path = planned / "export" / f"small-{s}-h{h}.json"
    assert f"wrote {path}" in result.output
    net = importer.read_pandapower(path)
    assert set(net.sgen["name"]) >= {"plan site 0 (wind)", "plan site 1 (wind)"} and len(net.storage) == 1
    with importer._quiet():
        pp.runpp(net, tolerance_mva=1e-10)
    hour = bus[(bus["scenario"] == s) & (bus["hour"] == h)]
    v = net.res_bus["vm_pu"].reindex(hour["bus"].to_numpy() - 1).to_numpy()
    assert np.max(np.abs(v - hour["v_ac_pu"].to_numpy())) < 1e-6
    # the network's injections are the plan's, bus by bus
    inj = (net.load.groupby("bus")["p_mw"].sum().reindex(hour["bus"] - 1, fill_value=0.0).to_numpy()
           - net.sgen.groupby("bus")["p_mw"].sum().reindex(hour["bus"] - 1, fill_value=0.0).to_numpy()
           + net.storage.groupby("bus")["p_mw"].sum().reindex(hour["bus"] - 1, fill_value=0.0).to_numpy())
    plan = hour["p_load_mw"] - hour["p_dg_mw"] - hour["p_microgrid_mw"]
    np.testing.assert_allclose(inj, plan.to_numpy(), rtol=0, atol=1e-12)


def test_the_design_point_re_imports_as_the_planned_feeder(planned: Path) -> None:
    from adnstudy.report.results import open_results

    result = export_cli(planned, "--to", "pandapower")
    assert result.exit_code == 0, result.output
    net = importer.read_pandapower(planned / "export" / "small.json")
    assert len(net.storage) == 1 and net.storage["max_e_mwh"].iloc[0] == pytest.approx(0.9, abs=1e-6)
    net.storage.drop(net.storage.index, inplace=True)  # adnstudy's feeder has no existing storage (the importer says so)
    again = feeder_of(net, "small", base_mva=1.0)
    r = open_results(planned)
    assert assert_same_feeder(r.feeder, again, ("buses", "branches", "ties")) < 1e-12
    inv = pd.read_parquet(planned / "plan" / "investment.parquet")
    res = inv[inv["build"] & (inv["tech"] != "storage")]
    gens = again.generators
    assert list(gens["bus"]) == list(res["bus"]) and list(gens["tech"]) == list(res["tech"])
    np.testing.assert_allclose(gens["p_mw"], res["capacity_mw"], rtol=1e-15)
    assert gens["curtailable"].all()


def test_matpower_export_of_an_hour_solves_to_its_ac_voltages_and_keeps_earlier_exports(planned: Path) -> None:
    import pandapower as pp

    result = export_cli(planned, "--to", "matpower", "--scenario", 0, "--hour", 12)
    assert result.exit_code == 0, result.output
    text = (planned / "export" / "small-0-h12.m").read_text()
    assert text.startswith("function mpc = small_0_h12") and "mpc.version = '2';" in text
    net = importer.read_matpower(planned / "export" / "small-0-h12.m")
    with importer._quiet():
        pp.runpp(net, tolerance_mva=1e-10)
    bus = pd.read_parquet(planned / "plan" / "bus.parquet")
    hour = bus[(bus["scenario"] == 0) & (bus["hour"] == 12)]
    v = net.res_bus["vm_pu"].reindex(hour["bus"].to_numpy() - 1).to_numpy()
    assert np.max(np.abs(v - hour["v_ac_pu"].to_numpy())) < 1e-6
    before = sorted(p.name for p in (planned / "export").iterdir())
    assert export_cli(planned, "--to", "matpower").exit_code == 0
    assert set(before) <= {p.name for p in (planned / "export").iterdir()}


# ------------------------------------------------------------------ errors
def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


@pytest.mark.parametrize("kind, args, expected", [
    ("missing", ["--to", "pandapower"], "does not exist"),
    ("empty", ["--to", "pandapower"], "not a results folder"),
    ("no plan", ["--to", "pandapower"], "has no plan"),
    ("planned", ["--to", "pandapower", "--scenario", "9", "--hour", "3"], "no scenario 9"),
    ("planned", ["--to", "pandapower", "--scenario", "0", "--hour", "24"], "no hour 24"),
    ("planned", ["--to", "matpower", "--hour", "3"], "give both --scenario and --hour"),
    ("planned", ["--to", "psse"], "--to must be one of pandapower, matpower"),
])
def test_errors_exit_2_in_one_line_and_write_nothing(planned: Path, tmp_path: Path, kind: str, args: list[str],
                                                     expected: str) -> None:
    folder = tmp_path / "x"
    if kind == "empty":
        folder.mkdir()
    elif kind == "no plan":
        shutil.copytree(planned / "cluster", folder / "cluster")
    elif kind == "planned":
        folder = planned
    before = listing(folder)
    result = export_cli(folder, *args)
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert message.startswith("error: ") and "\n" not in message and expected in message, message
    assert listing(folder) == before


def test_coplan_builds_are_exported_at_the_design_point(planned: Path, tmp_path: Path) -> None:
    """A coplan/ folder (its investment table written here, its manifest the plan's record of the same case)."""
    import json

    from adnstudy.results.store import table_digest

    folder = tmp_path / "coplanned"
    shutil.copytree(planned, folder, ignore=shutil.ignore_patterns("export"))
    shutil.rmtree(folder / "plan")
    (folder / "coplan").mkdir()
    inv = pd.DataFrame({"plan": ["alone", "coplan", "coplan", "coplan"], "investor": "adn", "candidate": [0, 0, 2, 3],
                        "bus": [4, 4, 8, 6], "tech": ["wind", "wind", "pv", "storage"],
                        "build": [True, True, False, True], "capacity_mw": [0.6, 0.5, 0.0, 0.2],
                        "capex_usd": 0.0, "annualised_usd": 0.0})
    inv.to_parquet(folder / "coplan" / "investment.parquet", index=False)
    manifest = json.loads((planned / "plan" / "manifest.json").read_text())
    manifest.update(stage="coplan", tables=["investment"],
                    table_sha256={"investment": table_digest(folder / "coplan" / "investment.parquet")})
    (folder / "coplan" / "manifest.json").write_text(json.dumps(manifest))
    assert "--coplan exports their builds" in export_cli(folder, "--to", "pandapower").output
    result = export_cli(folder, "--to", "pandapower", "--coplan")
    assert result.exit_code == 0, result.output
    net = importer.read_pandapower(folder / "export" / "small-coplan.json")
    assert list(net.sgen["name"]) == ["coplan adn site 0 (wind)"] and net.sgen["p_mw"].iloc[0] == 0.5
    assert net.sgen["bus"].iloc[0] == 3 and net.storage["max_e_mwh"].iloc[0] == pytest.approx(0.6)
