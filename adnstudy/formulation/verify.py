"""Check a relaxed (SOCP) operating point against the project's own AC power flow.

The SOC relaxation P² + Q² ≤ v·ℓ is exact only where the cone is tight. After
a solve, every (scenario, hour) is re-solved as an AC power flow with the
model's injections and substation voltage; the largest voltage difference and
the largest cone slack say whether the optimum is a physical operating point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adnstudy.formulation.distflow import FlowSolution
from adnstudy.network.feeder import Feeder
from adnstudy.network.powerflow import run_powerflow

#: Voltage agreement (pu) below which the relaxed point is accepted as physical.
TIGHT_DV_PU = 1e-4
#: Relative cone slack is reported only where v·ℓ exceeds this (pu²): on idle branches it means nothing.
REL_SLACK_FLOOR = 1e-6


@dataclass(frozen=True)
class Verification:
    max_dv_pu: float  # max |sqrt(v_socp) − |V_ac|| over bus × snapshot
    max_cone_slack_pu: float  # max (v_i ℓ − P² − Q²), per unit²
    max_rel_cone_slack: float  # slack relative to v_i ℓ
    ac_loss_mw: np.ndarray  # AC losses per snapshot
    socp_loss_mw: np.ndarray
    v_ac_pu: np.ndarray  # bus × snapshot

    @property
    def tight(self) -> bool:
        return self.max_dv_pu <= TIGHT_DV_PU

    def as_dict(self) -> dict:
        return {
            "max_dv_pu": self.max_dv_pu,
            "max_cone_slack_pu": self.max_cone_slack_pu,
            "max_rel_cone_slack": self.max_rel_cone_slack,
            "max_loss_difference_mw": float(np.max(np.abs(self.ac_loss_mw - self.socp_loss_mw))),
            "tight": self.tight,
            "tolerance_dv_pu": TIGHT_DV_PU,
        }


def verify_against_ac(feeder: Feeder, flow: FlowSolution, p_net_load_pu: np.ndarray, q_net_load_pu: np.ndarray) -> Verification:
    """AC power flow of every snapshot with the bus net loads (load − injections, pu) of the solution."""
    base = feeder.base_mva
    v_socp = flow.v_pu
    res = run_powerflow(feeder, p_net_load_pu * base, q_net_load_pu * base, v0_pu=v_socp[0])
    slack = flow.cone_slack(feeder)
    carried = flow.v[feeder.f] / feeder.tap[:, None] ** 2 * flow.ell
    rel = slack / np.maximum(carried, REL_SLACK_FLOOR)
    return Verification(
        max_dv_pu=float(np.max(np.abs(v_socp - res.v_pu))),
        max_cone_slack_pu=float(np.max(slack)),
        max_rel_cone_slack=float(np.max(np.where(carried > REL_SLACK_FLOOR, rel, 0.0))),
        ac_loss_mw=res.p_loss_mw,
        socp_loss_mw=(flow.loss_pu(feeder).sum(axis=0) + flow.shunt_loss_pu(feeder).sum(axis=0)) * base,
        v_ac_pu=res.v_pu,
    )
