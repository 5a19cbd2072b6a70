"""Dispatch: distributed = centralised, Nash-bargaining shares, closed forms = CVXPY, analytic MG, fees, bad input.

The shipped 33-bus case is run through the CLI for one typical day (all three
MGs trade on it); the references are the centralised solve of the same model,
the analytic bargaining solution, CVXPY solves of the closed-form updates and
an hour-by-hour analytic dispatch of a stand-alone MG.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest
from conftest import DISPATCH_SCENARIOS, edited_case
from typer.testing import CliRunner

from adnstudy.cli import app
from adnstudy.config.schema import GeneratorConfig
from adnstudy.problems.microgrid import MicrogridAgent, MicrogridData
from adnstudy.solve.bargaining import bargain, payment_update, trading_groups
from adnstudy.solve.coordination import agree_trades

ROOT = Path(__file__).resolve().parents[1]
CASE = ROOT / "cases" / "ieee33.yaml"
DAY = "4"  # a typical day on which all three MGs trade
runner = CliRunner()


def variant(tmp_path: Path, name: str, *replacements: tuple[str, str]) -> Path:
    """The shipped case with text replaced, written beside a copy of its cluster results."""
    return edited_case(CASE, tmp_path, *replacements, name=name)


@pytest.fixture(scope="module")
def clustered(ieee33_study) -> Path:
    return ieee33_study.runs["main"]


def run_dispatch(case: Path, clustered: Path, out: Path, *args: str):
    shutil.copytree(clustered / "cluster", out / "cluster")
    return runner.invoke(app, ["dispatch", str(case), "--out", str(out), *args])


@pytest.fixture(scope="module")
def shipped(ieee33_study) -> Path:
    assert str(DAY) in map(str, DISPATCH_SCENARIOS)
    return ieee33_study.runs[f"dispatch_{DAY}"] / "dispatch"


def tables(folder: Path) -> dict[str, pd.DataFrame]:
    return {p.stem: pd.read_parquet(p) for p in folder.glob("*.parquet")}


# ------------------------------------------------------------------ stage 1 on the shipped case
def test_distributed_clearing_matches_centralised(shipped: Path) -> None:
    days = json.loads((shipped / "manifest.json").read_text())["scenarios"]
    assert len(days) == 1
    d = days[0]
    assert abs(d["gap"]) <= 1e-3
    assert abs(d["disagreement_gap"]) <= 1e-3
    assert d["pcc_mismatch_mw"] <= 1e-4 and d["reciprocity_mw"] <= 1e-4
    assert d["iterations"] < 200
    assert d["max_dv_pu"] <= 1e-4  # the ADN's SOC point is an AC power-flow solution


def test_schedules_balance_with_the_agreed_trades(shipped: Path) -> None:
    """Each MG's own schedule nets to what the agreed trades say it sold (reciprocity, seen from the MG)."""
    t = tables(shipped)
    s = t["schedule"].set_index(["agent", "hour"])
    own_net = (s["p_gen_mw"] + s["p_pv_mw"] + s["p_wind_mw"] + s["p_discharge_mw"] + s["p_buy_mw"]
               - s["p_load_mw"] - s["p_charge_mw"] - s["p_sell_mw"])
    tr = t["trades"]
    sold = tr.groupby(["seller", "hour"])["p_mw"].sum().rename_axis(["agent", "hour"])
    bought = tr.groupby(["buyer", "hour"])["p_mw"].sum().rename_axis(["agent", "hour"])
    agreed = sold.reindex(own_net.index, fill_value=0) - bought.reindex(own_net.index, fill_value=0)
    np.testing.assert_allclose(own_net, agreed, atol=1e-4)
    assert tr["p_mw"].sum() > 1.0  # the day really has trading
    # curtailment = availability − use, storage within its power
    assert (s["p_curtailed_mw"] >= -1e-7).all()
    # fees: the pair's fee times the traded energy (flat 5 USD/MWh in the shipped case)
    np.testing.assert_allclose(tr["fee_usd"], 5.0 * tr["p_mw"], rtol=1e-12)
    adn = t["adn"]
    np.testing.assert_allclose(adn.groupby("hour")["fee_income_usd"].sum(), tr.groupby("hour")["fee_usd"].sum())


# ---------------------------------------------------------------- stage 2 on the shipped case
def test_symmetric_bargaining_gives_equal_gains(shipped: Path) -> None:
    t = tables(shipped)
    by_day = t["agents_by_scenario"]
    assert by_day["group"].nunique() == 1  # one group of traders on this day
    gains = by_day["gain_usd"].to_numpy()
    total = by_day["gain_before_payments_usd"].sum()
    assert total > 0
    np.testing.assert_allclose(gains, total / 3, rtol=1e-3)
    assert (gains >= 0).all()
    assert by_day["payment_usd"].sum() == pytest.approx(0.0, abs=1e-6)  # payments net to zero
    assert t["payments"]["payment_usd"].ge(0).all()
    # cost with trading = disagreement − gain; annual = day weight × day
    np.testing.assert_allclose(by_day["cost_cooperative_usd"], by_day["cost_disagreement_usd"] - gains, atol=1e-9)
    annual = t["agents"].set_index("agent")
    np.testing.assert_allclose(annual["gain_usd"], (by_day["gain_usd"] * by_day["weight_days"]).to_numpy())


def nbs_reference(g: np.ndarray, w: np.ndarray, pairs: list[tuple[int, int]]) -> np.ndarray:
    """Centralised NBS by CVXPY (exponential cone): max Σ w log(g − Σ_n p_mn), p reciprocal on the pairs."""
    p = cp.Variable(len(pairs))
    net = [sum((p[k] if m == i else -p[k]) for k, (m, n) in enumerate(pairs) if i in (m, n)) for i in range(len(g))]
    prob = cp.Problem(cp.Maximize(sum(w[i] * cp.log(g[i] - net[i]) for i in range(len(g)))))
    prob.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    return np.array([g[i] - float(getattr(net[i], "value", 0.0)) for i in range(len(g))])


def test_generalized_bargaining_is_proportional_to_power(shipped: Path) -> None:
    """The shipped day's gains before payments, shared with powers 1:2:3 (stage 1 does not depend on them)."""
    before = tables(shipped)["agents_by_scenario"]["gain_before_payments_usd"].to_numpy()
    w = np.array([1.0, 2.0, 3.0])
    pairs = [(0, 1), (0, 2), (1, 2)]
    res = bargain(before, w, pairs, tol=1e-9, max_iter=2000)
    np.testing.assert_allclose(res.gains_usd, before.sum() * w / w.sum(), rtol=1e-3)
    np.testing.assert_allclose(res.gains_usd, nbs_reference(before, w, pairs), rtol=1e-3)
    np.testing.assert_allclose(res.payments_usd, -res.payments_usd.T, atol=1e-9)
    assert (res.gains_usd > 0).all()


def test_bargaining_shares_within_each_group_of_traders() -> None:
    g = np.array([10.0, 39.0, -5.0, 3.0, 8.0, 0.5])
    w = np.array([1.0, 2.0, 3.0, 1.0, 1.0, 4.0])
    traded = [(0, 1), (1, 2), (3, 4)]  # groups {0,1,2}, {3,4}, {5}
    assert trading_groups(6, traded) == [[0, 1, 2], [3, 4], [5]]
    res = bargain(g, w, traded, tol=1e-10, max_iter=3000)
    np.testing.assert_allclose(res.gains_usd[:3], 44.0 * w[:3] / 6.0, rtol=1e-6)
    np.testing.assert_allclose(res.gains_usd[3:5], [5.5, 5.5], rtol=1e-6)
    assert res.gains_usd[5] == 0.5  # no partner, no payment
    assert res.payments_usd[0, 2] == 0.0  # payments only on traded pairs


def test_bargaining_a_gain_near_zero_with_large_transfers() -> None:
    """A day of the 33-bus market at a 40 USD/MWh fee: trading is worth 0.2 cents to the group, but one MG's
    dispatch changed by -7.80 USD, so payments of dollars share a gain of a fraction of a cent. The analytic
    answer (G/3 each) is reached, within the default limit (it once took 5,405 iterations)."""
    g = np.array([6.79087815, -7.79671378, 1.00800448])
    res = bargain(g, np.ones(3), [(0, 1), (1, 2)])
    assert res.converged, res.message
    np.testing.assert_allclose(res.gains_usd, np.full(3, g.sum() / 3), rtol=1e-6)


@pytest.mark.parametrize("b", [-3000.0, -1e6])
def test_payment_update_keeps_its_digits_when_paying_far_more_than_the_gain(b: float) -> None:
    """y = (b + sqrt(b² + d)) / 2 with b << 0 is computed without cancellation: the payments equal those of
    the exact root, computed with 50 digits (the textbook formula loses 3 to 9 of the 16 digits here)."""
    from decimal import Decimal, getcontext

    getcontext().prec = 50
    w, rho, n = 1 / 3, 9.0, 2
    p = payment_update(b, w, np.zeros(n), np.zeros(n), rho)  # gain b, nothing agreed yet: p = -w / (rho y)
    B, D = Decimal(b), Decimal(4 * n) * Decimal(w) / Decimal(rho)
    y = (B + (B * B + D).sqrt()) / 2
    exact = float(-Decimal(w) / (Decimal(rho) * y))
    np.testing.assert_allclose(p, exact, rtol=1e-13)


# ----------------------------------------------------------------- closed forms against CVXPY
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_payment_update_matches_cvxpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 5))
    g, w, rho = float(rng.uniform(-0.5, 1.0)), float(rng.uniform(0.1, 2.0)), float(rng.uniform(0.5, 10.0))
    z, lam = rng.normal(size=n), rng.normal(size=n)
    p = cp.Variable(n)
    obj = -w * cp.log(g - cp.sum(p)) + lam @ (p - z) + rho / 2 * cp.sum_squares(p - z)
    prob = cp.Problem(cp.Minimize(obj))
    prob.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    closed = payment_update(g, w, z, lam, rho)
    np.testing.assert_allclose(closed, p.value, atol=1e-5)
    # the closed form is the exact stationary point (the exponential-cone solve is the looser one)
    y = g - closed.sum()
    assert y > 0
    np.testing.assert_allclose(w / y + lam + rho * (closed - z), 0.0, atol=1e-10)
    p.value = closed
    assert obj.value <= prob.value + 1e-8


def test_trade_agreement_matches_cvxpy() -> None:
    rng = np.random.default_rng(3)
    M, H, rho = 4, 5, 7.0
    s, mu = rng.normal(size=(M, M, H)), rng.normal(size=(M, M, H))
    pairs = [(m, n) for m in range(M) for n in range(m + 1, M)]
    y = {e: cp.Variable(H) for e in pairs}
    obj = 0
    for (m, n), ye in y.items():
        for a, b, ze in ((m, n, ye), (n, m, -ye)):
            obj += mu[a, b] @ (s[a, b] - ze) + rho / 2 * cp.sum_squares(s[a, b] - ze)
    cp.Problem(cp.Minimize(obj)).solve(solver="CLARABEL")
    z = agree_trades(s, mu, rho, pairs)
    for (m, n), ye in y.items():
        np.testing.assert_allclose(z[m, n], ye.value, atol=1e-6)
        np.testing.assert_allclose(z[n, m], -ye.value, atol=1e-6)


# ------------------------------------------------------------------------ an MG on its own
def test_microgrid_agent_alone_matches_analytic_dispatch() -> None:
    """Built from its own data only (no case, no other agent): unit + tariffs, optimum hour by hour.

    Cost a g² + b g; below the load a MW of g saves the purchase price, above it earns the
    feed-in price, so g* = clip((π_buy − b)/2a) if that is below the load, clip((π_sell − b)/2a)
    if that is above it, else the load.
    """
    H, B = 24, 10.0
    hours = np.arange(H)
    load = 0.3 + 0.2 * np.sin(hours / 24 * 2 * np.pi)
    buy = np.where((hours >= 8) & (hours < 20), 110.0, 40.0)
    sell = np.full(H, 30.0)
    gen = GeneratorConfig(p_max_mw=0.42, cost_a_usd_per_mw2h=100.0, cost_b_usd_per_mwh=20.0)
    data = MicrogridData(name="solo", pos=5, bus=6, base_mva=B, load_pu=load / B, pv_avail=np.zeros(H),
                         wind_avail=np.zeros(H), pv_mw=0.0, wind_mw=0.0, pcc_limit_pu=1.0 / B, price_buy=buy, price_sell=sell, generator=gen,
                         partners=("other",), fee_usd_per_mwh=np.array([5.0]))
    agent = MicrogridAgent(data)
    sched = agent.solve_alone()
    a, b = gen.cost_a_usd_per_mw2h, gen.cost_b_usd_per_mwh
    g_buy = np.clip((buy - b) / (2 * a), 0, gen.p_max_mw)
    g_sell = np.clip((sell - b) / (2 * a), 0, gen.p_max_mw)
    g = np.where(g_buy <= load, g_buy, np.where(g_sell >= load, g_sell, np.minimum(load, gen.p_max_mw)))
    np.testing.assert_allclose(sched.table["p_gen_mw"], g, atol=1e-5)
    np.testing.assert_allclose(sched.table["p_buy_mw"], np.maximum(load - g, 0), atol=1e-5)
    expected = a * g**2 + b * g + buy * np.maximum(load - g, 0) - sell * np.maximum(g - load, 0)
    assert sched.cost_usd == pytest.approx(expected.sum(), rel=1e-6)
    # the same agent answers an ATC target: with a stiff penalty its export follows the target
    # (−0.09 MW is reachable every hour: the load is 0.1–0.5 MW, the unit 0–0.42 MW)
    target = np.full(H, -0.09) / B
    resp = agent.respond(target, np.zeros(H), 1e9, np.zeros((1, H)), np.zeros((1, H)), 1e3)
    np.testing.assert_allclose(resp.export_pu * B, -0.09, atol=1e-4)


def test_storage_cycles_and_stays_within_limits(shipped: Path) -> None:
    s = tables(shipped)["schedule"]
    for name, st in (("mg1", (0.2, 0.8)), ("mg3", (0.3, 1.2))):
        one = s[s["agent"] == name]
        assert one["soc_mwh"].iloc[-1] == pytest.approx(0.5 * st[1], abs=1e-6)  # cyclic
        assert one["soc_mwh"].between(0.1 * st[1] - 1e-6, 0.9 * st[1] + 1e-6).all()
        assert one[["p_charge_mw", "p_discharge_mw"]].max().max() <= st[0] + 1e-6
    assert (s.loc[s["agent"] == "mg2", ["p_charge_mw", "p_discharge_mw", "soc_mwh"]].abs() < 1e-9).all().all()


# ------------------------------------------------------------------------ regression: fees
def test_fee_above_the_tariff_spread_stops_trading(clustered: Path, tmp_path: Path) -> None:
    """The largest spread is 110 − 30 = 80 USD/MWh; a 90 USD/MWh fee makes every trade a loss."""
    case = variant(tmp_path, "fee", ("name: ieee33", "name: ieee33\nmarket: {fee_usd_per_mwh: 90}"))
    result = run_dispatch(case, clustered, tmp_path / "out", "--day", DAY)
    assert result.exit_code == 0, result.output
    t = tables(tmp_path / "out" / "dispatch")
    assert t["trades"]["p_mw"].max() <= 1e-4
    assert t["payments"].empty
    np.testing.assert_allclose(t["agents_by_scenario"]["gain_usd"], 0.0, atol=1e-2)


# ------------------------------------------------------------------------------ bad input
def test_inconsistent_storage_limits(clustered: Path, tmp_path: Path) -> None:
    case = variant(tmp_path, "soc", ("storage: {power_mw: 0.2, energy_mwh: 0.8, cost_usd_per_mwh: 2}",
                                     "storage: {power_mw: 0.2, energy_mwh: 0.8, soc_min: 0.6, soc_max: 0.4}"))
    result = run_dispatch(case, clustered, tmp_path / "out")
    assert result.exit_code == 2
    assert "microgrids[0].storage" in result.stderr and "soc_min" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "out" / "dispatch").exists()


def test_bargaining_power_must_be_positive(clustered: Path, tmp_path: Path) -> None:
    case = variant(tmp_path, "power", ("    bus: 25\n", "    bus: 25\n    bargaining_power: 0\n"))
    result = run_dispatch(case, clustered, tmp_path / "out")
    assert result.exit_code == 2
    assert "microgrids[1].bargaining_power" in result.stderr
    assert not (tmp_path / "out" / "dispatch").exists()


def test_admm_iteration_limit_is_a_clear_failure_that_keeps_the_day(clustered: Path, tmp_path: Path) -> None:
    case = variant(tmp_path, "iters", ("name: ieee33", "name: ieee33\nmarket: {coordination: {max_iter: 5}}"))
    result = run_dispatch(case, clustered, tmp_path / "out", "--day", DAY)
    assert result.exit_code == 1
    msg = result.stderr
    assert "did not converge in 5 iterations" in msg and "primal residual" in msg and "dual residual" in msg
    assert "1 of 1 typical day(s) are not final" in msg
    assert "Traceback" not in result.output
    manifest = json.loads((tmp_path / "out" / "dispatch" / "manifest.json").read_text())
    assert manifest["complete"] is False and list(manifest["not_converged"]) == [DAY]
    assert manifest["scenarios"][0]["iterations"] == 5 and manifest["scenarios"][0]["converged"] is False
    assert not pd.read_parquet(tmp_path / "out" / "dispatch" / "agents_by_scenario.parquet")["converged"].any()
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".dispatch")]


def test_feed_in_above_purchase_price_is_rejected(clustered: Path, tmp_path: Path) -> None:
    case = variant(tmp_path, "arb", ("name: ieee33", "name: ieee33\neconomics:\n  sell_price_usd_per_mwh: ["
                                     + ", ".join(["50"] * 24) + "]"))
    result = run_dispatch(case, clustered, tmp_path / "out")
    assert result.exit_code == 2
    assert "economics.sell_price_usd_per_mwh" in result.stderr and "hour 0" in result.stderr


def test_unknown_scenario_is_named(clustered: Path, tmp_path: Path) -> None:
    result = run_dispatch(CASE, clustered, tmp_path / "out", "--scenario", "99")
    assert result.exit_code == 2
    assert "--scenario 99" in result.stderr


def test_distance_fee_is_the_path_resistance_between_the_pccs(tmp_path: Path) -> None:
    """fee_mode distance: the pair's fee = fee × Σ r of the branches between the two PCCs (walked by hand here)."""
    from adnstudy.checks import case_feeder
    from adnstudy.config.load import load_case
    from adnstudy.problems.dispatch import pair_fees

    case = load_case(variant(tmp_path, "dist", ("name: ieee33", "name: ieee33\nmarket: {fee_mode: distance, fee_usd_per_mwh: 2}")))
    feeder = case_feeder(case)
    br = feeder.branches
    parent = {int(t): (int(f), float(r)) for f, t, r in zip(br["from_bus"], br["to_bus"], br["r_ohm"], strict=True)}

    def up(bus: int) -> dict[int, float]:  # ancestor → resistance from bus up to it
        out, total = {bus: 0.0}, 0.0
        while bus in parent:
            bus, r = parent[bus]
            total += r
            out[bus] = total
        return out

    buses = [18, 25, 33]
    fees = pair_fees(case, feeder)
    for i, a in enumerate(buses):
        for j, b in enumerate(buses):
            ua, ub = up(a), up(b)
            common = min(ua[x] + ub[x] for x in ua if x in ub)  # via the nearest common ancestor
            assert fees[i, j] == pytest.approx(2.0 * common if i != j else 0.0, rel=1e-12)
    assert fees[0, 1] == pytest.approx(fees[1, 0])


def test_infeasible_microgrid_is_named(clustered: Path, tmp_path: Path) -> None:
    """Seen without solving (the microgrid supply check, exit 2), before the market is built."""
    case = variant(tmp_path, "mg", ("load_peak_mw: 0.6\n    pv_mw: 0.5\n    pcc_limit_mw: 1.0",
                                    "load_peak_mw: 2.0\n    pv_mw: 0.5\n    pcc_limit_mw: 0.05"))
    result = run_dispatch(case, clustered, tmp_path / "out", "--day", DAY)
    assert result.exit_code == 2
    assert "microgrid mg1 cannot cover its own load" in result.stderr
    assert "microgrids[0].pcc_limit_mw" in result.stderr
    assert not (tmp_path / "out" / "dispatch").exists()


@pytest.mark.parametrize(("edit", "named", "code"), [
    ((("v_min_pu: 0.95", "v_min_pu: 0.995"), ("v_max_pu: 1.05", "v_max_pu: 1.0"),
      ("v_substation_range_pu: [1.0, 1.05]", "v_substation_range_pu: [1.0, 1.0]")),
     "infeasible (solver status 'infeasible'): the network cannot carry the MGs' exchanges and its loads within the voltage", 1),
    # seen without solving: the branch ratings check (exit 2)
    ((("branch_rating_factor: 2.0", "branch_rating_factor: 0.5"),), "network.branch_rating_factor: branch 24-25", 2),
])
def test_infeasible_network_names_the_limit(clustered: Path, tmp_path: Path, edit, named: str, code: int) -> None:
    result = run_dispatch(variant(tmp_path, "net", *edit), clustered, tmp_path / "out", "--day", DAY)
    assert result.exit_code == code
    assert named in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "out" / "dispatch").exists()


@pytest.mark.parametrize("seed", [0, 1])
def test_compiled_problem_matches_cvxpy(seed: int) -> None:
    """Re-solves on cached matrices (parameters in the linear and quadratic terms and in the bounds) give
    CVXPY's own point, value and duals."""
    from adnstudy.solve.compiled import CompiledProblem
    from adnstudy.solve.conic import DEFAULT, solve_conic

    rng = np.random.default_rng(seed)
    n = 6
    G = rng.normal(size=(3, n))
    quad, lin = cp.Parameter(nonneg=True), cp.Parameter(n)
    hi = cp.Parameter(n)
    x = cp.Variable(n)
    cons = [G @ x == rng.normal(size=3), x <= hi, x >= -2, cp.norm(x[:3]) <= 3]
    problem = cp.Problem(cp.Minimize(quad * cp.sum_squares(x) + lin @ x), cons)
    compiled = CompiledProblem(problem, DEFAULT, what="test")
    twin = cp.Problem(problem.objective, problem.constraints)
    for _ in range(4):
        quad.value, lin.value, hi.value = rng.uniform(0.1, 2.0), rng.normal(size=n), rng.uniform(1.0, 3.0, size=n)
        compiled.solve()
        ours, value, dual = x.value.copy(), problem.value, cons[1].dual_value.copy()
        solve_conic(twin, DEFAULT)
        np.testing.assert_allclose(ours, x.value, atol=1e-6)
        assert value == pytest.approx(twin.value, rel=1e-7, abs=1e-8)
        np.testing.assert_allclose(dual, cons[1].dual_value, atol=1e-6)


def test_anderson_accelerates_a_linear_fixed_point() -> None:
    """The generic Anderson wrapper reaches the fixed point of a slow linear contraction in far fewer steps."""
    from adnstudy.solve.iterate import Anderson, iterate

    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    M = Q @ np.diag(np.linspace(0.5, 0.98, 8)) @ Q.T
    c = rng.normal(size=8)
    x_star = np.linalg.solve(np.eye(8) - M, c)

    class Contraction:
        def initialise(self) -> None:
            self.x = np.zeros(8)

        def solve(self, k: int) -> None:
            self.fx = M @ self.x + c

        def update(self, k: int) -> dict[str, float]:
            self.res = float(np.max(np.abs(self.fx - self.x)))
            self.x = self.fx
            return {"residual": self.res}

        def converged(self, row: dict[str, float]) -> bool:
            return self.res <= 1e-10

        def adapt(self, k: int, row: dict[str, float]) -> None:
            pass

        def not_converged(self, row: dict[str, float]) -> str:
            return "no"

        def point(self) -> np.ndarray:
            return self.x

        def set_point(self, x: np.ndarray) -> None:
            self.x = x

        def map_changed(self) -> bool:
            return False

    plain = iterate(Contraction(), max_iter=5000)
    method = Contraction()
    fast = iterate(Anderson(method, memory=5), max_iter=5000)
    np.testing.assert_allclose(method.x, x_star, atol=1e-8)
    assert fast.iterations < plain.iterations / 5
