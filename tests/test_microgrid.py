"""The microgrid block with capacities as variables: an MG that sizes its own assets.

The block dispatch uses (``problems/microgrid.py``) is built with its PV or
storage capacity a CVXPY variable and a per-MW daily capital cost added; the
optimal sizes are checked against the answers worked out by hand below.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

from adnstudy.config.schema import StorageConfig
from adnstudy.problems.microgrid import (
    MicrogridCapacity,
    MicrogridData,
    microgrid_block,
    read_schedule,
)
from adnstudy.solve.conic import FINAL, solve_conic

H = 24


def flat_mg(load_mw: float, buy: np.ndarray, *, pv_avail: np.ndarray | None = None,
            storage: StorageConfig | None = None) -> MicrogridData:
    return MicrogridData(
        name="sizer", pos=1, bus=2, base_mva=1.0, load_pu=np.full(H, load_mw),
        pv_avail=np.zeros(H) if pv_avail is None else pv_avail, wind_avail=np.zeros(H), pv_mw=0.0, wind_mw=0.0,
        pcc_limit_pu=10.0, price_buy=buy, price_sell=np.zeros(H), storage=storage,
    )


def test_cheapest_pv_size_for_a_flat_load() -> None:
    """PV available at 1, 0.5 and 0.25 of its rating for four hours each; a flat 0.4 MW load; 100 USD/MWh.

    Each MW of PV saves 100 × Σ a_t over the hours it does not exceed the load:
    700 USD/day below C = L, 300 up to 2L (the full-sun hours are covered), 100 up
    to 4L, then nothing (exports earn nothing). At 250 USD per MW and day the
    cheapest size is where the saving falls below the cost: C* = 2L = 0.8 MW, for
    a daily cost of 250 × 0.8 + 100 × (4 × 0.2 + 12 × 0.4) = 760 USD.
    """
    avail = np.zeros(H)
    avail[8:12], avail[12:16], avail[16:20] = 1.0, 0.5, 0.25
    d = flat_mg(0.4, np.full(H, 100.0), pv_avail=avail)
    size = cp.Variable(nonneg=True, name="pv_mw")
    block = microgrid_block(d, trades=False, capacity=MicrogridCapacity(pv=size, wind=0.0))
    problem = cp.Problem(cp.Minimize(250.0 * size + block.cost_usd), block.families.constraints())
    solve_conic(problem, FINAL)
    assert size.value == pytest.approx(0.8, abs=1e-6)
    assert problem.value == pytest.approx(760.0, rel=1e-7)
    sched = read_schedule(d, block)
    # full and half sun cover the load; the quarter-sun hours buy the rest (a surplus earns nothing,
    # so whether it is curtailed or exported is not determined)
    buy = sched.table["p_buy_mw"].to_numpy()
    np.testing.assert_allclose(buy[8:16], 0.0, atol=1e-6)
    np.testing.assert_allclose(buy[16:20], 0.2, atol=1e-6)


def test_cheapest_storage_for_a_price_spread() -> None:
    """Storage of power P and four hours of energy (η = 1), empty at the start and end of the day.

    Price 20 USD/MWh in hours 0–3, 120 in hours 20–23, 70 otherwise; flat 0.5 MW
    load. Each MW shifts 4 MWh from 20 to 120 (saves 400 USD/day) as long as it
    does not exceed the load in the evening; beyond that the spare energy can only
    shift to 70-USD hours (200 USD/day per MW). At 300 USD per MW and day: P* = L =
    0.5 MW, for 300 × 0.5 + 4 × 1.0 × 20 + 16 × 0.5 × 70 = 790 USD.
    """
    buy = np.full(H, 70.0)
    buy[:4], buy[20:] = 20.0, 120.0
    st = StorageConfig(power_mw=1.0, energy_mwh=4.0, eta_charge=1.0, eta_discharge=1.0, soc_min=0.0, soc_max=1.0,
                       soc_initial=0.0)
    d = flat_mg(0.5, buy, storage=st)
    power = cp.Variable(nonneg=True, name="storage_mw")
    cap = MicrogridCapacity(pv=0.0, wind=0.0, storage_power=power, storage_energy=4 * power)
    block = microgrid_block(d, trades=False, capacity=cap)
    problem = cp.Problem(cp.Minimize(300.0 * power + block.cost_usd), block.families.constraints())
    solve_conic(problem, FINAL)
    assert power.value == pytest.approx(0.5, abs=1e-6)
    assert problem.value == pytest.approx(790.0, rel=1e-7)
    soc = read_schedule(d, block).table["soc_mwh"].to_numpy()
    assert soc[3] == pytest.approx(2.0, abs=1e-6) and soc[-1] == pytest.approx(0.0, abs=1e-6)


def test_fixed_capacities_are_the_dispatch_block() -> None:
    """With the existing capacities given as numbers, the block is the dispatch model's own."""
    avail = np.clip(np.sin((np.arange(H) - 6) / 12 * np.pi), 0, None)
    d = MicrogridData(name="m", pos=1, bus=2, base_mva=1.0, load_pu=np.full(H, 0.3), pv_avail=avail,
                      wind_avail=np.zeros(H), pv_mw=0.5, wind_mw=0.0, pcc_limit_pu=1.0,
                      price_buy=np.full(H, 80.0), price_sell=np.full(H, 20.0))
    default = microgrid_block(d, trades=False)
    explicit = microgrid_block(d, trades=False, capacity=MicrogridCapacity(pv=0.5, wind=0.0))
    for b in (default, explicit):
        solve_conic(cp.Problem(cp.Minimize(b.cost_usd), b.families.constraints()), FINAL)
    assert float(default.cost_usd.value) == pytest.approx(float(explicit.cost_usd.value), rel=1e-9)
    # the analytic day: PV covers min(load, 0.5·a) at 80 and sells the rest at 20
    pv = 0.5 * avail
    expected = (80.0 * np.maximum(0.3 - pv, 0) - 20.0 * np.maximum(pv - 0.3, 0)).sum()
    assert float(default.cost_usd.value) == pytest.approx(expected, rel=1e-7)
