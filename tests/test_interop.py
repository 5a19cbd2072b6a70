"""Networks imported from pandapower, MATPOWER and SimBench, checked against pandapower's own power flow.

The references are independent of adnstudy's conversion: the published IEEE 33-bus
figures (Baran & Wu 1989: 202.68 kW, 0.9131 pu at bus 18) and pandapower's
Newton-Raphson ``runpp`` on the original network, whose model has line charging,
transformer T models, taps and open switches that the conversion must carry over.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pandas as pd
import pytest
from typer.testing import CliRunner

from adnstudy.cli import app
from adnstudy.interop import importer
from adnstudy.network.feeder import build_feeder
from adnstudy.network.powerflow import run_powerflow

runner = CliRunner()
MV_GRIDS = ("1-MV-rural--0-sw", "1-MV-semiurb--0-sw", "1-MV-urban--0-sw", "1-MV-comm--0-sw")


def invoke(*args) -> object:
    return runner.invoke(app, [str(a) for a in args])


def error_line(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def imported_powerflow(net, name: str, v0: float):
    """adnstudy's AC power flow of the imported network at the source's own operating point (loads and static
    generators as the tables give them)."""
    imp = importer.convert(net, name, name)
    fd = build_feeder(name, imp.buses, imp.branches, 10.0)
    pos = {b: i for i, b in enumerate(fd.bus_ids)}
    p, q = fd.buses["p_mw"].to_numpy().copy(), fd.buses["q_mvar"].to_numpy().copy()
    g = imp.generators
    np.subtract.at(p, [pos[b] for b in g["bus"]], g["p_mw"].to_numpy())
    np.subtract.at(q, [pos[b] for b in g["bus"]], g["q_mvar"].to_numpy())
    return fd, imp, run_powerflow(fd, p, q, v0_pu=v0)


def case_file(tmp_path: Path, network: str) -> Path:
    case = tmp_path / "case.yaml"
    case.write_text(f"name: imported\nnetwork:\n{network}", encoding="utf-8")
    return case


# ------------------------------------------------------------------ pandapower's IEEE 33-bus network
def test_case33bw_import_gives_the_published_base_case(tmp_path: Path) -> None:
    """pandapower.networks.case33bw, as a pandapower JSON file through the CLI: the published 202.68 kW and
    0.9131 pu at bus 18; its five out-of-service lines are the tie lines."""
    fd, imp, res = imported_powerflow(pn.case33bw(), "case33bw", 1.0)
    assert (fd.n_bus, fd.n_branch, len(fd.ties)) == (33, 32, 5)
    assert res.p_loss_mw[0] * 1e3 == pytest.approx(202.68, abs=0.005)
    assert res.v_pu[fd.position(18), 0] == pytest.approx(0.9131, abs=5e-5)
    assert sorted(map(tuple, fd.ties[["from_bus", "to_bus"]].to_numpy())) == [
        (9, 15), (12, 22), (18, 33), (21, 8), (25, 29)]

    pp.to_json(pn.case33bw(), str(tmp_path / "case33bw.json"))
    case = case_file(tmp_path, "  pandapower: case33bw.json\n")
    result = invoke("powerflow", case, "--out", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["p_loss_kw"] == pytest.approx(202.68, abs=0.005)
    assert report["v_min_pu"] == pytest.approx(0.9131, abs=5e-5) and report["v_min_bus"] == 18


# ------------------------------------------------------------------ the four SimBench MV grids
@pytest.mark.parametrize("code", MV_GRIDS)
def test_simbench_mv_grid_matches_runpp(code: str) -> None:
    """Each MV grid at its stored snapshot: every bus voltage and the total losses (lines + transformers, iron
    losses included) as pandapower's runpp gives them on the original network — required to 1e-4 pu and 0.1 %,
    met to rounding (the conversion is exact)."""
    net = importer.read_simbench(code)
    fd, imp, res = imported_powerflow(net, code, float(net.ext_grid["vm_pu"].iloc[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp(net, calculate_voltage_angles=True, tolerance_mva=1e-10)
    v_pp = net.res_bus["vm_pu"].loc[fd.bus_ids - 1].to_numpy()
    assert np.max(np.abs(res.v_pu[:, 0] - v_pp)) < 1e-8
    loss_pp = net.res_line["pl_mw"].sum() + net.res_trafo["pl_mw"].sum()
    assert res.p_loss_mw[0] == pytest.approx(loss_pp, rel=1e-8)
    # the two parallel HV/MV transformers are one branch; every load and generator is kept
    assert fd.voltage_text in ("110/20 kV", "110/10 kV") and fd.n_branch == fd.n_bus - 1
    assert len(imp.generators) == len(net.sgen)
    assert fd.buses["p_mw"].sum() == pytest.approx(net.load["p_mw"].sum(), rel=1e-12)


# ------------------------------------------------------------------ MATPOWER
MPC = """function mpc = four
mpc.version = '2';
mpc.baseMVA = 10;
%% bus_i type Pd Qd Gs Bs area Vm Va baseKV zone Vmax Vmin
mpc.bus = [
  1 3 0    0    0 0   1 1 0 110 1 1.1 0.9;
  2 1 0    0    0 0   1 1 0 20  1 1.1 0.9;
  3 1 2.0  0.8  0 0.5 1 1 0 20  1 1.1 0.9;
  4 1 1.5  0.5  0 0   1 1 0 20  1 1.1 0.9;
];
%% bus Pg Qg Qmax Qmin Vg mBase status Pmax Pmin
mpc.gen = [
  1 0 0 100 -100 1.02 10 1 100 0;
];
%% fbus tbus r x b rateA rateB rateC ratio angle status angmin angmax
mpc.branch = [
  1 2 0.002 0.06 0     40 40 40 0.98 0 1 -360 360;
  2 3 0.010 0.02 0.004 20 20 20 0    0 1 -360 360;
  3 4 0.020 0.03 0.002 20 20 20 0    0 1 -360 360;
  2 4 0.030 0.04 0     20 20 20 0    0 0 -360 360;
];
"""


def test_matpower_case_matches_runpp(tmp_path: Path) -> None:
    """A MATPOWER case with a tapped transformer, line charging, a shunt and an out-of-service line (a tie)."""
    path = tmp_path / "four.m"
    path.write_text(MPC, encoding="utf-8")
    net = importer.read_matpower(path)
    fd, imp, res = imported_powerflow(net, "four", 1.02)
    assert fd.voltage_text == "110/20 kV" and len(fd.ties) == 1
    assert fd.tap[0] == pytest.approx(0.98)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp(net, tolerance_mva=1e-10)
    assert np.max(np.abs(res.v_pu[:, 0] - net.res_bus["vm_pu"].loc[fd.bus_ids - 1].to_numpy())) < 1e-8
    case = case_file(tmp_path, "  matpower: four.m\n  v_substation_pu: 1.02\n")
    result = invoke("validate", case)
    assert result.exit_code == 0, result.output
    assert "voltage levels 110/20 kV, 1 transformer branch(es)" in result.stdout


# ------------------------------------------------------------------ bad input: exit 2, the element named, nothing written
def _meshed(path: Path) -> None:
    net = pn.case33bw()
    net.line.loc[net.line.index[~net.line["in_service"]][0], "in_service"] = True  # close tie 21-8
    pp.to_json(net, str(path))


def _two_grids(path: Path) -> None:
    net = pn.case33bw()
    pp.create_ext_grid(net, 17, name="second")
    pp.to_json(net, str(path))


def _pv_gen(path: Path) -> None:
    net = pn.case33bw()
    pp.create_gen(net, 24, p_mw=0.5, vm_pu=1.0, name="pv-bus unit")
    pp.to_json(net, str(path))


def _nan_sgen(path: Path) -> None:
    net = pn.case33bw()
    pp.create_sgen(net, 24, p_mw=float("nan"), name="no rating")
    pp.to_json(net, str(path))


@pytest.mark.parametrize(
    "network, make, expected",
    [
        ("pandapower: missing.json", None, "network.pandapower: pandapower network file not found:"),
        ("pandapower: net.json", lambda p: p.write_text("{not json", encoding="utf-8"),
         "not a pandapower network (JSON) file"),
        ("pandapower: net.json", lambda p: p.write_text('{"a": 1}', encoding="utf-8"),
         "not a pandapower network (JSON) file"),
        ("pandapower: net.json", _meshed, "the network is meshed in operation: line 32 "),
        ("pandapower: net.json", _two_grids, "the network has 2 external grids (ext_grid 0 at bus 1, ext_grid 1 "
                                             "'second' at bus 18)"),
        ("pandapower: net.json", _pv_gen, "gen 0 'pv-bus unit' at bus 25 is a voltage-controlled generator"),
        ("pandapower: net.json", _nan_sgen, "sgen 0 'no rating': p_mw = nan, q_mvar = 0; a static generator needs"),
        ("matpower: missing.m", None, "network.matpower: MATPOWER case file not found:"),
        ("matpower: net.txt", lambda p: p.write_text(MPC, encoding="utf-8"),
         "network.matpower: a MATPOWER case is a .m file (got '.txt')"),
        ("matpower: net.m", lambda p: p.write_text("function mpc = x\nmpc.baseMVA = 1;\n", encoding="utf-8"),
         "not a MATPOWER case: it has no 'mpc.bus'"),
        ("simbench: 1-MV-rurall--0-sw", None,
         "network.simbench: '1-MV-rurall--0-sw' is not a SimBench grid code; did you mean 1-MV-rural--0-sw"),
    ],
    ids=["pp-missing", "pp-not-json", "pp-not-a-net", "pp-meshed", "pp-two-grids", "pp-pv-gen", "pp-nan-sgen", "mpc-missing",
         "mpc-extension", "mpc-not-a-case", "simbench-unknown"],
)
def test_bad_networks_are_named_with_exit_2_and_nothing_written(tmp_path: Path, network: str, make,
                                                                expected: str) -> None:
    if make is not None:
        make(tmp_path / network.split(": ")[1])
    case = case_file(tmp_path, f"  {network}\n")
    line = error_line(invoke("powerflow", case, "--out", tmp_path / "out"))
    assert expected in line, line
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ the shipped SimBench cases
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name, summary", [
    ("simbench_mv_rural", "existing generation: 102 units, 25.57 MW (other 13.85 MW, pv 0.32 MW, wind 11.4 MW)"),
    ("simbench_mv_urban", "existing generation: 134 units, 13.56 MW (other 13.56 MW)"),
])
def test_shipped_simbench_cases_validate(name: str, summary: str) -> None:
    result = invoke("validate", ROOT / "cases" / f"{name}.yaml")
    assert result.exit_code == 0, result.output
    assert summary in result.stdout
    assert "checked for: powerflow, cluster, reliability, plan, dispatch" in result.stdout


def test_shipped_rural_grid_plans_and_its_export_solves_in_pandapower(tmp_path: Path) -> None:
    """The shipped rural case through cluster and plan (two typical days, to stay quick), then an hour of the
    plan exported and solved by pandapower: runpp gives the plan's AC voltages with the 102 existing units,
    line charging, the transformer and the built battery in the network."""
    case, out = ROOT / "cases" / "simbench_mv_rural.yaml", tmp_path / "out"
    sets = ["--set", "clustering.k=2", "--set", "clustering.compare=false"]
    for stage in ("cluster", "plan"):
        result = invoke(stage, case, "--out", out, *sets)
        assert result.exit_code == 0, result.output
    plan = json.loads((out / "plan" / "manifest.json").read_text())
    assert plan["solver"]["gap"] <= 1e-3 and plan["verification"]["tight"]
    assert plan["existing"]["units"] == 102
    bus = pd.read_parquet(out / "plan" / "bus.parquet")
    worst = bus.loc[bus["v_ac_pu"].idxmin()]
    s, h = int(worst["scenario"]), int(worst["hour"])
    result = invoke("export", out, "--to", "pandapower", "--scenario", s, "--hour", h)
    assert result.exit_code == 0, result.output
    net = pp.from_json(str(out / "export" / f"simbench_mv_rural-{s}-h{h}.json"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp(net, tolerance_mva=1e-10)
    hour = bus[(bus["scenario"] == s) & (bus["hour"] == h)]
    assert np.max(np.abs(net.res_bus["vm_pu"].loc[hour["bus"] - 1].to_numpy() - hour["v_ac_pu"].to_numpy())) < 1e-6
