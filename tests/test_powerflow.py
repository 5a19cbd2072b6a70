"""The project's AC power flow against published base cases and an independent Newton solver."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from adnstudy.cli import app
from adnstudy.config.schema import NetworkConfig
from adnstudy.network.feeder import build_feeder, load_feeder
from adnstudy.network.powerflow import run_powerflow

ROOT = Path(__file__).resolve().parents[1]

# Published base cases (Baran & Wu 1989; the figures every later paper reproduces).
PUBLISHED = {
    "ieee33": {"p_loss_kw": 202.68, "q_loss_kvar": 135.14, "v_min_pu": 0.9131, "v_min_bus": 18},
    "ieee69": {"p_loss_kw": 224.99, "v_min_pu": 0.9092, "v_min_bus": 65},
}


def feeder(name: str):
    return load_feeder(NetworkConfig(feeder=name), ROOT, "test")


@pytest.mark.parametrize("name", ["ieee33", "ieee69"])
def test_published_base_case(name):
    fd = feeder(name)
    res = run_powerflow(fd, fd.buses["p_mw"].to_numpy(), fd.buses["q_mvar"].to_numpy())
    ref = PUBLISHED[name]
    assert res.p_loss_mw[0] * 1000 == pytest.approx(ref["p_loss_kw"], abs=0.01 if name == "ieee33" else 0.1)
    if "q_loss_kvar" in ref:
        assert res.q_loss_mvar[0] * 1000 == pytest.approx(ref["q_loss_kvar"], abs=0.01)
    vmin = res.v_pu[:, 0]
    assert vmin.min() == pytest.approx(ref["v_min_pu"], abs=5e-5)
    assert fd.bus_ids[np.argmin(vmin)] == ref["v_min_bus"]


@pytest.mark.parametrize("case", ["ieee33", "ieee69"])
def test_cli_json_reports_published_figures(case, tmp_path):
    """--json prints the published figures as published (the README's example); the manifest keeps full precision."""
    result = CliRunner().invoke(app, ["powerflow", str(ROOT / "cases" / f"{case}.yaml"), "--json", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout.strip().splitlines()[-1])
    expected = {"ieee33": {"p_loss_kw": 202.68, "q_loss_kvar": 135.14, "v_min_pu": 0.9131, "v_min_bus": 18},
                "ieee69": {"p_loss_kw": 224.99, "q_loss_kvar": 102.16, "v_min_pu": 0.9092, "v_min_bus": 65}}
    assert got == expected[case]
    manifest = json.loads((tmp_path / "powerflow" / "manifest.json").read_text())
    assert manifest["solver"]["status"] == "converged"
    full = manifest["summary"]
    assert full["p_loss_kw"] != got["p_loss_kw"] and round(full["p_loss_kw"], 2) == got["p_loss_kw"]
    # the tables agree with the summary
    bus = pd.read_parquet(tmp_path / "powerflow" / "bus.parquet")
    branch = pd.read_parquet(tmp_path / "powerflow" / "branch.parquet")
    assert bus["v_pu"].min() == pytest.approx(full["v_min_pu"], abs=1e-12)
    assert branch["loss_mw"].sum() * 1000 == pytest.approx(full["p_loss_kw"], rel=1e-12)
    # ratings: twice the base-case peak current (the case's branch_rating_factor), so 50 % loading at the peak
    np.testing.assert_allclose(branch["loading_pct"], 100 * branch["i_ka"] / branch["rating_ka"], rtol=1e-12)
    assert branch["loading_pct"].max() == pytest.approx(50.0, abs=0.5)


def _pandapower_voltages(fd, p_mw, q_mvar):
    pp = pytest.importorskip("pandapower")
    net = pp.create_empty_network(sn_mva=fd.base_mva)
    idx = {int(b): pp.create_bus(net, vn_kv=fd.base_kv) for b in fd.bus_ids}
    pp.create_ext_grid(net, idx[int(fd.bus_ids[0])], vm_pu=1.0)
    for row in fd.branches.itertuples():
        pp.create_line_from_parameters(
            net, idx[row.from_bus], idx[row.to_bus], length_km=1.0, r_ohm_per_km=row.r_ohm,
            x_ohm_per_km=row.x_ohm, c_nf_per_km=0.0, max_i_ka=10.0,
        )
    for k, b in enumerate(fd.bus_ids[1:], start=1):
        pp.create_load(net, idx[int(b)], p_mw=p_mw[k], q_mvar=q_mvar[k])
    pp.runpp(net, tolerance_mva=1e-12, numba=False)
    return net.res_bus.vm_pu.to_numpy(), net.res_line.pl_mw.sum()


def test_matches_newton_power_flow_with_reverse_flows():
    """Random loads and DG injections (negative loads): every bus voltage matches pandapower's Newton."""
    fd = feeder("ieee33")
    rng = np.random.default_rng(7)
    n_snap = 4
    mult = rng.uniform(0.3, 1.2, size=(fd.n_bus, n_snap))
    p = fd.buses["p_mw"].to_numpy()[:, None] * mult
    q = fd.buses["q_mvar"].to_numpy()[:, None] * mult
    p[[17, 24, 32], :] -= rng.uniform(0.5, 1.5, size=(3, n_snap))  # DG larger than local load
    res = run_powerflow(fd, p, q)
    for s in range(n_snap):
        vm, ploss = _pandapower_voltages(fd, p[:, s], q[:, s])
        assert np.max(np.abs(res.v_pu[:, s] - vm)) < 1e-8
        assert res.p_loss_mw[s] == pytest.approx(ploss, rel=1e-7)


def test_snapshots_are_independent():
    """Solving many snapshots at once gives each one's single-snapshot solution."""
    fd = feeder("ieee69")
    mult = np.linspace(0.2, 1.3, 12)[None, :]
    p = fd.buses["p_mw"].to_numpy()[:, None] * mult
    q = fd.buses["q_mvar"].to_numpy()[:, None] * mult
    together = run_powerflow(fd, p, q)
    for s in (0, 5, 11):
        alone = run_powerflow(fd, p[:, s], q[:, s])
        np.testing.assert_allclose(together.v[:, s], alone.v[:, 0], atol=1e-10)


def test_two_bus_analytic():
    """One line, one load: |V|^4 + (2(rP+xQ) − V0²)|V|² + (r²+x²)(P²+Q²) = 0 (per unit)."""
    buses = pd.DataFrame({"bus": [1, 2], "base_kv": [10.0, 10.0], "p_mw": [0.0, 2.0], "q_mvar": [0.0, 1.0]})
    branches = pd.DataFrame({"from_bus": [1], "to_bus": [2], "r_ohm": [1.0], "x_ohm": [2.0]})
    fd = build_feeder("two", buses, branches, base_mva=1.0)
    res = run_powerflow(fd, fd.buses["p_mw"].to_numpy(), fd.buses["q_mvar"].to_numpy())
    r, x = 1.0 / 100.0, 2.0 / 100.0
    P, Q = 2.0, 1.0
    b = 2 * (r * P + x * Q) - 1.0
    c = (r**2 + x**2) * (P**2 + Q**2)
    v2 = (-b + np.sqrt(b**2 - 4 * c)) / 2
    assert res.v_pu[1, 0] == pytest.approx(np.sqrt(v2), abs=1e-10)
    i2 = (P**2 + Q**2) / v2
    assert res.p_loss_mw[0] == pytest.approx(r * i2, rel=1e-9)


def test_year_mode_covers_every_hour_in_its_own_folder(tmp_path):
    """--year writes powerflow_year/ beside the peak results, with energies for a 365-day year."""
    case = str(ROOT / "cases" / "ieee33.yaml")
    peak = CliRunner().invoke(app, ["powerflow", case, "--out", str(tmp_path)])
    assert peak.exit_code == 0, peak.output
    result = CliRunner().invoke(app, ["powerflow", case, "--year", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"results: {tmp_path / 'powerflow_year'}" in result.stdout
    assert "(a 365-day year)" in result.stdout
    # the peak results are still there, untouched
    assert len(pd.read_parquet(tmp_path / "powerflow" / "summary.parquet")) == 1
    assert json.loads((tmp_path / "powerflow" / "manifest.json").read_text())["mode"] == "peak"
    folder = tmp_path / "powerflow_year"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["mode"] == "year" and manifest["year_days"] == 365
    got = manifest["summary"]
    summary = pd.read_parquet(folder / "summary.parquet")
    assert got["hours"] == len(summary) == 366 * 24  # SimBench profiles are for 2016
    # the load profile is normalised to its peak, so the worst hour is the published peak case
    assert got["v_min_pu"] == pytest.approx(PUBLISHED["ieee33"]["v_min_pu"], abs=5e-5)
    # annual energies: the 366 days of 2016 scaled to a 365-day year
    assert got["energy_loss_mwh"] == pytest.approx(summary["p_loss_mw"].sum() * 365 / 366, rel=1e-12)
    assert got["energy_import_mwh"] == pytest.approx(summary["p_import_mw"].sum() * 365 / 366, rel=1e-12)
    # energy balance per hour: import = load + losses
    bus = pd.read_parquet(folder / "bus.parquet")
    load = bus.groupby("snapshot")["p_load_mw"].sum().to_numpy()
    np.testing.assert_allclose(summary["p_import_mw"], load + summary["p_loss_mw"], atol=1e-9)
