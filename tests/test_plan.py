"""Planning MISOCP: brute-force enumeration, published base case, AC tightness, gap, infeasibility."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from adnstudy.checks import case_feeder
from adnstudy.cli import app
from adnstudy.config.load import load_case
from adnstudy.formulation.investment import crf
from adnstudy.problems.plan import COST_SCALE, build_plan_model, plan_data
from adnstudy.solve.bnb import branch_and_bound
from adnstudy.solve.conic import FINAL, NODE, ConicSettings, solve_conic
from adnstudy.solve.mip import MipSettings

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def typical_tables(load: np.ndarray, pv: np.ndarray, wind: np.ndarray, days: list[int]):
    """cluster-stage tables for given day × 24 profiles."""
    K = len(days)
    rows = []
    for c in range(K):
        for h in range(24):
            for name, arr in (("load", load), ("pv", pv), ("wind", wind)):
                rows.append({"scenario": c, "hour": h, "series": name, "value": float(arr[c, h])})
    typical = pd.DataFrame(rows)
    weights = pd.DataFrame({"scenario": range(K), "days": days, "weight": np.array(days) / sum(days), "is_extreme": False})
    return typical, weights


TINY_CASE = """
name: tiny
network:
  buses: buses.csv
  branches: branches.csv
  base_mva: 1.0
  v_min_pu: 0.95
  v_max_pu: 1.05
  v_substation_range_pu: [1.0, 1.0]
profiles:
  source: csv
  file: unused.csv
  series:
    load: {kind: load, column: load}
    pv: {kind: pv, column: pv}
    wind: {kind: wind, column: wind}
candidates:
  sites:
    - {bus: 3, tech: pv,   max_mw: 1.5, capex_usd_per_mw: 500000, fixed_capex_usd: 150000, lifetime_yr: 20}
    - {bus: 5, tech: wind, max_mw: 1.2, capex_usd_per_mw: 900000, fixed_capex_usd: 120000, lifetime_yr: 20, om_usd_per_mwh: 5}
    - {bus: 6, tech: wind, max_mw: 1.0, module_mw: 0.25, capex_usd_per_mw: 950000, fixed_capex_usd: 60000, lifetime_yr: 20}
economics:
  discount_rate: 0.07
  purchase_price_usd_per_mwh: [60, 60, 60, 60, 60, 60, 80, 80, 120, 120, 120, 120, 120, 120, 120, 120, 120, 150, 150, 150, 120, 80, 60, 60]
"""


def _tiny_case(d: Path, text: str):
    """The tiny feeder's case in ``d`` with its two typical days: (case, its plan data)."""
    pd.DataFrame({
        "bus": [1, 2, 3, 4, 5, 6], "base_kv": 11.0,
        "p_mw": [0.0, 0.4, 0.6, 0.3, 0.5, 0.4], "q_mvar": [0.0, 0.15, 0.25, 0.1, 0.2, 0.15],
        "customers": [0, 40, 60, 30, 50, 40],
    }).to_csv(d / "buses.csv", index=False)
    pd.DataFrame({
        "from_bus": [1, 2, 3, 2, 5], "to_bus": [2, 3, 4, 5, 6],
        "r_ohm": [0.6, 1.0, 0.8, 1.2, 0.9], "x_ohm": [0.5, 0.8, 0.6, 0.9, 0.7],
    }).to_csv(d / "branches.csv", index=False)
    (d / "case.yaml").write_text(text)
    case = load_case(d / "case.yaml")
    feeder = case_feeder(case)
    h = np.arange(24)
    load = np.vstack([0.6 + 0.4 * np.sin((h - 7) / 24 * 2 * np.pi), 0.4 + 0.2 * np.sin((h - 7) / 24 * 2 * np.pi)])
    pv = np.vstack([np.clip(np.sin((h - 6) / 12 * np.pi), 0, None) * 0.8, np.clip(np.sin((h - 7) / 10 * np.pi), 0, None) * 0.3])
    wind = np.vstack([0.25 + 0.1 * np.cos(h / 5), 0.6 + 0.2 * np.sin(h / 7)])
    typical, weights = typical_tables(load, pv, wind, [200, 165])
    return case, plan_data(case, feeder, typical, weights)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return _tiny_case(tmp_path_factory.mktemp("tiny"), TINY_CASE)[1]


def test_branch_and_bound_equals_brute_force(tiny):
    """Every 0-1 siting × module count, each solved as an SOCP: the minimum is the B&B optimum."""
    model = build_plan_model(tiny)
    solve_conic(model.problem, NODE)
    relaxed = model.problem.value
    build = model.investment.build.value
    assert np.any(np.abs(build - np.round(build)) > 1e-3), "the relaxation should be fractional"
    best = np.inf
    n_modules = int(model.integers[1].hi0[0])
    for b in itertools.product([0.0, 1.0], repeat=3):
        for y in range(n_modules + 1):
            if b[2] == 0 and y > 0:
                continue
            model.fix_integers([np.array(b), np.array([float(y)])])
            model.problem.solve(solver="CLARABEL", **NODE.options)
            if model.problem.status in ("optimal", "optimal_inaccurate"):
                best = min(best, model.problem.value)
    res = branch_and_bound([build_plan_model(tiny) for _ in range(2)], gap=1e-9)
    assert res.status == "optimal"
    assert res.objective == pytest.approx(best, rel=2e-5)  # node solves stop at a 1e-5 duality gap
    assert relaxed <= best + 1e-9
    assert res.nodes < 40  # far fewer than the 2^3 × 5 enumeration's 20 solves plus branching of the naive tree


def test_crf():
    # 8 % over 20 years: 0.10185 (standard annuity tables)
    assert crf(0.08, 20) == pytest.approx(0.101852, abs=1e-6)
    assert crf(0.0, 10) == pytest.approx(0.1)


def test_no_candidates_reproduces_published_base_case(tmp_path):
    """With no candidates, the peak-hour OPF is the base-case power flow: 202.68 kW of losses."""
    case_file = tmp_path / "c.yaml"
    text = (ROOT / "cases" / "ieee33.yaml").read_text().replace("../configs/defaults.yaml", str(ROOT / "configs" / "defaults.yaml"))
    text = text.replace("v_substation_range_pu: [1.0, 1.05]", "v_substation_range_pu: [1.0, 1.0]").replace("v_min_pu: 0.95", "v_min_pu: 0.90")
    case_file.write_text(text)
    case = load_case(case_file)
    feeder = case_feeder(case)
    ones = np.ones((1, 24))
    typical, weights = typical_tables(ones, 0 * ones, 0 * ones, [1])
    data = plan_data(case, feeder, typical, weights)
    data = data.__class__(**{**data.__dict__, "sites": data.sites.iloc[:0], "avail": data.avail[:0]})
    model = build_plan_model(data)
    solve_conic(model.problem, FINAL)
    flow = model.network.solution()
    loss_kw = flow.loss_pu(feeder).sum(axis=0) * feeder.base_mva * 1000
    np.testing.assert_allclose(loss_kw, 202.68, atol=0.01)
    v = flow.v_pu[:, 0]
    assert v.min() == pytest.approx(0.9131, abs=5e-5) and feeder.bus_ids[np.argmin(v)] == 18
    # the objective is the purchase of load + losses at the hourly price, the one day standing for a 365-day year
    price = np.asarray(case.config.economics.purchase_price_usd_per_mwh)
    assert model.problem.value / COST_SCALE == pytest.approx(365 * ((3.715 + loss_kw / 1000) * price).sum(), rel=1e-6)


@pytest.fixture(scope="module")
def shipped(ieee33_study):
    return ieee33_study.runs["main"] / "plan"


def test_shipped_plan_is_tight_and_within_gap(shipped):
    manifest = json.loads((shipped / "manifest.json").read_text())
    assert manifest["solver"]["status"] == "optimal"
    assert manifest["solver"]["gap"] <= 1e-3
    assert manifest["verification"]["max_dv_pu"] <= 1e-4
    assert manifest["verification"]["tight"] is True
    bus = pd.read_parquet(shipped / "bus.parquet")
    assert (bus["v_pu"] - bus["v_ac_pu"]).abs().max() <= 1e-4
    assert bus["v_pu"].min() >= 0.95 - 1e-6


def test_shipped_plan_tables_are_consistent(shipped):
    inv = pd.read_parquet(shipped / "investment.parquet")
    cost = pd.read_parquet(shipped / "cost.parquet").set_index("item")["annual_usd"]
    manifest = json.loads((shipped / "manifest.json").read_text())
    assert cost["total"] == pytest.approx(manifest["objective"], rel=1e-9)
    assert cost["investment_annualised"] == pytest.approx(inv["annualised_usd"].sum(), rel=1e-6)
    # built sites have capacity within their bounds; unbuilt ones none
    assert (inv.loc[~inv["build"], "capacity_mw"] == 0).all()
    case = load_case(ROOT / "cases" / "ieee33.yaml")
    maxes = [s.max_mw for s in case.config.candidates.sites]
    assert (inv["capacity_mw"].to_numpy() <= np.array(maxes) + 1e-6).all()
    assert inv["capacity_mw"].sum() <= 0.8 * 3.715 + 1e-6  # the penetration cap
    # hourly energy balance: substation import = load − DG − MG exports + losses (branch table)
    bus = pd.read_parquet(shipped / "bus.parquet")
    branch = pd.read_parquet(shipped / "branch.parquet")
    per_hour = bus.groupby(["scenario", "hour"])[["p_load_mw", "p_dg_mw", "p_microgrid_mw"]].sum()
    losses = branch.groupby(["scenario", "hour"])["loss_mw"].sum()
    head = branch[branch["from_bus"] == 1].groupby(["scenario", "hour"])["p_mw"].sum()
    np.testing.assert_allclose(head, per_hour["p_load_mw"] - per_hour["p_dg_mw"] - per_hour["p_microgrid_mw"] + losses,
                               atol=1e-6)


def test_infeasible_voltage_limits_named(tmp_path):
    out = tmp_path / "out"
    case = str(ROOT / "cases" / "ieee33.yaml")
    assert runner.invoke(app, ["cluster", case, "--out", str(out)]).exit_code == 0
    text = (ROOT / "cases" / "ieee33.yaml").read_text().replace("../configs/defaults.yaml", str(ROOT / "configs" / "defaults.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("v_min_pu: 0.95", "v_min_pu: 0.995").replace("v_max_pu: 1.05", "v_max_pu: 1.0").replace(
        "v_substation_range_pu: [1.0, 1.05]", "v_substation_range_pu: [1.0, 1.0]"))
    shutil.copytree(out / "cluster", tmp_path / "out2" / "cluster")
    result = runner.invoke(app, ["plan", str(bad), "--out", str(tmp_path / "out2")])
    assert result.exit_code == 1
    assert "infeasible" in result.stderr and "voltage limits" in result.stderr
    assert not (tmp_path / "out2" / "plan").exists()


def test_plan_without_cluster_names_the_command(tmp_path):
    result = runner.invoke(app, ["plan", str(ROOT / "cases" / "ieee33.yaml"), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "adnstudy cluster" in result.stderr


def test_named_solver_agrees_with_default(tiny):
    """ECOS_BB through CVXPY (in its child process) finds the plan the default strategy finds."""
    from adnstudy.problems.plan import solve_plan

    ours = solve_plan(tiny, MipSettings(name="default", gap=1e-6, threads=2))
    theirs = solve_plan(tiny, MipSettings(name="ECOS_BB", gap=1e-6, time_limit_s=120, threads=1))
    assert theirs.record["name"] == "ECOS_BB" and theirs.record["gap"] is None
    assert theirs.record["resolved_objective_usd"] == pytest.approx(ours.record["resolved_objective_usd"], rel=1e-5)
    np.testing.assert_array_equal(ours.model.solution().build, theirs.model.solution().build)


def test_unknown_solver_is_a_clear_error(tiny):
    from adnstudy.errors import SolveError
    from adnstudy.problems.plan import solve_plan

    with pytest.raises(SolveError, match="'NOSUCH' is not a CVXPY solver"):
        solve_plan(tiny, MipSettings(name="NOSUCH", time_limit_s=10, threads=1))


def test_time_limit_keeps_the_best_plan_with_its_gap(tiny):
    """Stopped at once, the search still returns the plan its first solves found, marked as such."""
    res = branch_and_bound([build_plan_model(tiny) for _ in range(2)], gap=1e-9, time_limit=1e-9,
                           initial=[[np.ones(3), np.array([4.0])]])
    assert res.status == "time_limit"
    assert np.isfinite(res.objective) and res.gap > 0 and res.bound <= res.objective


def test_case_solver_options_reach_clarabel(tiny):
    """solver.options go to Clarabel in every solve of the default strategy: two iterations cannot solve the root."""
    from adnstudy.errors import SolveError
    from adnstudy.problems.plan import solve_plan

    with pytest.raises(SolveError, match="user_limit"):
        solve_plan(tiny, MipSettings(options={"max_iter": 2}))
    # and a harmless option leaves the plan as it was
    a = solve_plan(tiny, MipSettings(gap=1e-6))
    b = solve_plan(tiny, MipSettings(gap=1e-6, options={"max_iter": 500}))
    assert b.record["resolved_objective_usd"] == pytest.approx(a.record["resolved_objective_usd"], rel=1e-9)


# ------------------------------------------------------------------ outer approximation (the default strategy)
TINY_RELIABILITY = """
reliability:
  failure_rate_per_yr: 2.0
  repair_h: 8.0
  switching_h: 1.0
  sectionalisers: [[2, 3], [2, 5], [5, 6]]
  voll_usd_per_mwh: 20000
"""


@pytest.fixture(scope="module")
def tiny_reliable(tmp_path_factory):
    """The tiny plan with a reliability section: two sectionalised areas whose DG may island them."""
    from adnstudy.problems.plan import with_reliability

    return with_reliability(*_tiny_case(tmp_path_factory.mktemp("tiny_rel"), TINY_CASE + TINY_RELIABILITY))


def brute_force_minimum(data) -> float:
    """Every combination of the model's integer values (0-1 builds, module counts, island successes), each solved
    as an SOCP with them fixed: the smallest objective (model units)."""
    model = build_plan_model(data)
    best = np.inf
    ranges = [[np.arange(lo, hi + 1) for lo, hi in zip(b.lo0, b.hi0, strict=True)] for b in model.integers]
    sizes = [len(r) for r in ranges]
    for combo in itertools.product(*[v for r in ranges for v in r]):
        values = np.split(np.array(combo, dtype=float), np.cumsum(sizes)[:-1])
        model.fix_integers(values)
        model.problem.solve(solver="CLARABEL", **NODE.options)
        if model.problem.status in ("optimal", "optimal_inaccurate"):
            best = min(best, model.problem.value)
    return best


@pytest.fixture(scope="module")
def tiny_storage(tmp_path_factory):
    """The tiny plan with a battery candidate too: its hours are coupled, one cut per day."""
    from adnstudy.problems.plan import with_reliability

    text = TINY_CASE.replace("economics:", "    - {bus: 4, tech: storage, max_mw: 0.5, capex_usd_per_mw: 300000, "
                             "fixed_capex_usd: 20000, lifetime_yr: 15, energy_mwh_per_mw: 4, om_usd_per_mwh: 2}\n"
                             "economics:")
    return with_reliability(*_tiny_case(tmp_path_factory.mktemp("tiny_sto"), text + TINY_RELIABILITY))


@pytest.mark.parametrize("which", ["plain", "reliability", "storage"])
def test_outer_approximation_equals_brute_force(tiny, tiny_reliable, tiny_storage, which):
    """The default strategy (outer approximation over the typical days) against every integer combination: plain,
    with reliability (island successes), and with a battery (a day's hours coupled, one cut per day)."""
    from adnstudy.problems.plan import solve_plan

    data = {"plain": tiny, "reliability": tiny_reliable, "storage": tiny_storage}[which]
    blocks = build_plan_model(data).decomposition().blocks
    assert all(blk.n_parts == (1 if which == "storage" else 6) for blk in blocks)
    best = brute_force_minimum(data)
    res = solve_plan(data, MipSettings(gap=1e-6))
    rec = res.record
    # outer approximation, or the root probe beside it where the relaxation's rounding closed the gap first
    assert rec["strategy"].startswith(("outer approximation", "root relaxation"))
    assert rec["status"] == "optimal" and rec["gap"] <= 1e-6
    assert rec["objective_usd"] * COST_SCALE == pytest.approx(best, rel=2e-5)  # blocks solve to a 1e-5 duality gap
    assert rec["bound_usd"] * COST_SCALE <= best * (1 + 2e-5)
    assert res.model.problem.value == pytest.approx(best, rel=2e-5)  # the final point: the same plan
    # branch-and-bound alone reaches the same plan
    bnb = solve_plan(data, MipSettings(name="branch_and_bound", gap=1e-6))
    assert bnb.record["strategy"].startswith("branch-and-bound")
    assert bnb.record["resolved_objective_usd"] == pytest.approx(rec["resolved_objective_usd"], rel=1e-6)


def test_operation_cuts_underestimate_and_match_finite_differences(tiny_reliable):
    """Each typical day's block: the subgradient of each of its parts (groups of hours) equals the finite
    difference, and each part's cut stays below its cost at other capacities (the cost is convex in them), so
    the master's bound is a lower bound."""
    d = build_plan_model(tiny_reliable).decomposition()
    assert d is not None and len(d.blocks) == tiny_reliable.n_days
    assert all(blk.n_parts > 1 for blk in d.blocks)  # no storage: the hours are independent
    rng = np.random.default_rng(1)
    fine = ConicSettings({"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-10, "tol_feas": 1e-10})  # for finite differences
    for blk in d.blocks:
        x0 = np.array([0.6, 0.5, 0.4])
        f0, g0 = blk.evaluate(x0, fine)
        assert f0.sum() == pytest.approx(blk.problem.value, rel=1e-9)
        for j in range(3):
            step = np.zeros(3)
            step[j] = 1e-4
            f1, _ = blk.evaluate(x0 + step, fine)
            np.testing.assert_allclose((f1 - f0) / 1e-4, g0[:, j], rtol=2e-2, atol=1e-5)
        f0, g0 = blk.evaluate(x0, NODE)  # the cuts the strategy makes: at its tolerances
        for _ in range(5):
            x = rng.uniform(0, d.x_hi)
            f, _ = blk.evaluate(x, NODE)
            assert np.all(f >= f0 + g0 @ (x - x0) - 1e-6 * np.maximum(1.0, np.abs(f)))
    assert any(np.abs(blk.evaluate(np.zeros(3), NODE)[1]).max() > 0 for blk in d.blocks)


def test_failed_decomposition_falls_back_to_branch_and_bound(tiny_reliable, monkeypatch):
    """Where a block cannot be solved (e.g. the operation needs an investment: no feasibility cuts), the default
    strategy gives the plan by branch-and-bound and says so in its record."""
    from adnstudy.problems.plan import solve_plan
    from adnstudy.solve.decompose import Block, DecompositionFailed

    ref = solve_plan(tiny_reliable, MipSettings(gap=1e-6))

    def fail(self, x, settings):
        raise DecompositionFailed(f"{self.what}: infeasible", status="infeasible")

    monkeypatch.setattr(Block, "evaluate", fail)
    res = solve_plan(tiny_reliable, MipSettings(gap=1e-6))
    assert res.record["strategy"].startswith("branch-and-bound")
    assert res.record["resolved_objective_usd"] == pytest.approx(ref.record["resolved_objective_usd"], rel=1e-6)
