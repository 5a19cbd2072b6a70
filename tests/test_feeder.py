"""Feeder tables: orientation, path matrix, per-unit conversion, assumed ratings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adnstudy.config.schema import NetworkConfig
from adnstudy.errors import CaseError
from adnstudy.network.feeder import build_feeder, load_feeder
from adnstudy.network.powerflow import run_powerflow

ROOT = Path(__file__).resolve().parents[1]


def test_ieee33_structure():
    fd = load_feeder(NetworkConfig(feeder="ieee33"), ROOT, "t")
    assert fd.n_bus == 33 and fd.n_branch == 32 and len(fd.ties) == 5
    assert fd.buses["p_mw"].sum() == pytest.approx(3.715)
    assert fd.buses["q_mvar"].sum() == pytest.approx(2.300)
    assert fd.bus_ids[0] == 1
    # z_base = 12.66^2 / 10 ohm
    assert fd.r_pu[0] == pytest.approx(0.0922 / (12.66**2 / 10))
    # path of bus 18 is branches 1-2 ... 17-18: 17 branches
    assert fd.path[:, fd.position(18)].sum() == 17
    # every branch's receiving bus has it as its parent branch
    assert np.all(fd.parent_branch[fd.t] == np.arange(fd.n_branch))


def test_ieee69_totals():
    fd = load_feeder(NetworkConfig(feeder="ieee69"), ROOT, "t")
    assert fd.n_bus == 69 and fd.n_branch == 68
    assert fd.buses["p_mw"].sum() == pytest.approx(3.8021, abs=1e-4)
    assert fd.buses["q_mvar"].sum() == pytest.approx(2.6947, abs=1e-4)


def test_reversed_branches_are_oriented_and_substation_column_respected():
    buses = pd.DataFrame({
        "bus": [5, 7, 9, 11], "base_kv": 11.0, "p_mw": [0.1, 0.2, 0.0, 0.3], "q_mvar": 0.05,
        "substation": [False, False, True, False],
    })
    branches = pd.DataFrame({"from_bus": [7, 9, 11], "to_bus": [9, 5, 5], "r_ohm": [0.5, 0.4, 0.3], "x_ohm": 0.2})
    fd = build_feeder("x", buses, branches, base_mva=1.0)
    assert fd.bus_ids[0] == 9
    # every branch now leaves the substation side
    assert list(zip(fd.branches["from_bus"], fd.branches["to_bus"], strict=True)) == [(9, 7), (9, 5), (5, 11)]
    res = run_powerflow(fd, fd.buses["p_mw"].to_numpy(), fd.buses["q_mvar"].to_numpy())
    # branch 9→5 carries bus 5's and bus 11's load plus 5→11's loss
    p_95 = res.s_from.real[1, 0]
    assert p_95 == pytest.approx((0.1 + 0.3) + res.loss.real[2, 0] + res.loss.real[1, 0], rel=1e-9)


def test_incidence_times_flows_balances_power():
    fd = load_feeder(NetworkConfig(feeder="ieee33"), ROOT, "t")
    res = run_powerflow(fd, fd.buses["p_mw"].to_numpy(), fd.buses["q_mvar"].to_numpy())
    A = fd.incidence()
    # net outflow at each bus = (sending-end flows) − (receiving-end flows) = −load (except at the substation)
    s_to = res.s_from[:, 0] - res.loss[:, 0]
    out = (A.maximum(0) @ res.s_from[:, 0]) - (-A.minimum(0)) @ s_to
    load = (fd.buses["p_mw"] + 1j * fd.buses["q_mvar"]).to_numpy() / fd.base_mva
    np.testing.assert_allclose(out[1:], -load[1:], atol=1e-10)


def test_rating_factor_assumption():
    cfg = NetworkConfig(feeder="ieee33", branch_rating_factor=2.0)
    fd = load_feeder(cfg, ROOT, "t")
    res = run_powerflow(fd, fd.buses["p_mw"].to_numpy(), fd.buses["q_mvar"].to_numpy())
    i_a = res.i_branch_ka[:, 0] * 1000
    assert np.all(fd.branches["rating_a"] >= 2 * i_a)
    assert np.all(fd.branches["rating_a"] < 2 * i_a + 1)


def test_meshed_message_names_branch():
    buses = pd.DataFrame({"bus": [1, 2, 3], "base_kv": 11.0, "p_mw": 0.1, "q_mvar": 0.0})
    branches = pd.DataFrame({"from_bus": [1, 2, 3], "to_bus": [2, 3, 1], "r_ohm": 0.1, "x_ohm": 0.1})
    with pytest.raises(CaseError, match="meshed: branch 2-3 closes a loop"):
        build_feeder("x", buses, branches, base_mva=1.0)
