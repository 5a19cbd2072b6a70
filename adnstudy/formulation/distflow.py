"""DistFlow branch-flow model with the second-order cone relaxation, over many snapshots at once.

For a radial feeder with branches k = (i → j), per unit, and every snapshot s
(a column of each matrix variable)::

    Σ_{k: to j} (P_k − r_k ℓ_k) − Σ_{k: from j} P_k + p_j^inj = p_j^load + g_j v_j   (active balance)
    Σ_{k: to j} (Q_k − x_k ℓ_k) − Σ_{k: from j} Q_k + q_j^inj = q_j^load − b_j v_j   (reactive balance)
    v_j = a_k v_i − 2 (r_k P_k + x_k Q_k) + (r_k² + x_k²) ℓ_k                      (voltage drop)
    P_k² + Q_k² ≤ a_k v_i ℓ_k                                                        (rotated SOC, relaxes "=")
    v_min² ≤ v ≤ v_max²,  ℓ_k ≤ ī_k²

with v = |V|², ℓ = |I|², g + jb a bus's shunt admittance (line charging, transformer
magnetising; the substation's is supplied by the grid) and a_k = 1/τ_k² for a
branch whose sending end has an off-nominal tap τ_k (1 without). All are linear in
v, so shunts and taps keep the model a second-order cone program. Each family is one matrix expression over
(branch or bus) × snapshot built from the sparse incidence of the feeder; there
is no Python loop over elements. The substation voltage is a variable per
snapshot within the tap-changer range (or fixed).

Constraint families (:class:`~adnstudy.formulation.families.Families`):
``network.power_balance``, ``network.voltage_drop``, ``network.cone``,
``network.substation_voltage``, ``network.voltage_limits``,
``network.current_limits``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from adnstudy.formulation.families import Families
from adnstudy.network.feeder import Feeder
from adnstudy.network.limits import NetworkLimits


@dataclass(frozen=True)
class FlowSolution:
    """A solved branch-flow point, per unit (branch or bus × snapshot), copied out of the solver."""

    P: np.ndarray  # sending-end active flow
    Q: np.ndarray
    ell: np.ndarray  # squared current
    v: np.ndarray  # squared voltage

    @property
    def v_pu(self) -> np.ndarray:
        return np.sqrt(np.maximum(self.v, 0.0))

    @property
    def i_pu(self) -> np.ndarray:
        return np.sqrt(np.maximum(self.ell, 0.0))

    def loss_pu(self, feeder: Feeder) -> np.ndarray:
        """Active loss per branch and snapshot, r·ℓ."""
        return feeder.r_pu[:, None] * self.ell

    def shunt_loss_pu(self, feeder: Feeder) -> np.ndarray:
        """Active power drawn by the bus shunts per bus and snapshot, g·v (the substation's included)."""
        return feeder.g_shunt_pu[:, None] * self.v

    def cone_slack(self, feeder: Feeder) -> np.ndarray:
        """a·v_i·ℓ − P² − Q² per (branch, snapshot) (0 where the relaxation is exact)."""
        return self.v[feeder.f] / feeder.tap[:, None] ** 2 * self.ell - self.P**2 - self.Q**2


@dataclass
class BranchFlowSOC:
    """Variables and named constraint families of the relaxed DistFlow model (per unit, snapshot columns)."""

    P: cp.Variable  # branch × snapshot, sending-end active flow
    Q: cp.Variable
    ell: cp.Variable  # squared current
    v: cp.Variable  # bus × snapshot, squared voltage
    families: Families

    def solution(self) -> FlowSolution:
        return FlowSolution(*(np.array(x.value, dtype=float) for x in (self.P, self.Q, self.ell, self.v)))


def at_buses(n_bus: int, positions: np.ndarray) -> sp.csr_matrix:
    """Bus × element selection: column e has a 1 at the bus of element e (sums what elements inject)."""
    positions = np.asarray(positions, dtype=int)
    return sp.csr_matrix((np.ones(len(positions)), (positions, np.arange(len(positions)))),
                         shape=(n_bus, len(positions)))


def branch_flow_soc(
    feeder: Feeder,
    limits: NetworkLimits,
    n_snap: int,
    p_injection: cp.Expression,
    q_injection: cp.Expression,
    p_load: np.ndarray,
    q_load: np.ndarray,
) -> BranchFlowSOC:
    """The DistFlow SOC block.

    ``p_injection``/``q_injection`` are bus × snapshot expressions of what enters
    each bus besides branch flows (the substation at bus 0, DG, MG exchanges);
    ``p_load``/``q_load`` bus × snapshot arrays.
    """
    n, m, S = feeder.n_bus, feeder.n_branch, n_snap
    r, x = feeder.r_pu[:, None], feeder.x_pu[:, None]
    A_from = at_buses(n, feeder.f)
    A_to = at_buses(n, feeder.t)
    P = cp.Variable((m, S), name="P")
    Q = cp.Variable((m, S), name="Q")
    ell = cp.Variable((m, S), name="ell", nonneg=True)
    v = cp.Variable((n, S), name="v", nonneg=True)
    v_from = A_from.T @ v  # m × S, sending-end voltage of each branch
    if feeder.has_taps:
        v_from = cp.multiply((1.0 / feeder.tap**2)[:, None], v_from)  # the voltage behind the tap
    fam = Families()
    p_draw, q_draw = p_load, q_load
    if feeder.has_shunts:
        g, b = feeder.g_shunt_pu.copy(), feeder.b_shunt_pu.copy()
        g[0] = b[0] = 0.0
        p_draw = p_load + cp.multiply(g[:, None], v)
        q_draw = q_load - cp.multiply(b[:, None], v)
    fam.add("network.power_balance",
            A_to @ (P - cp.multiply(r, ell)) - A_from @ P + p_injection == p_draw,
            A_to @ (Q - cp.multiply(x, ell)) - A_from @ Q + q_injection == q_draw)
    fam.add("network.voltage_drop",
            A_to.T @ v == v_from - 2 * (cp.multiply(r, P) + cp.multiply(x, Q)) + cp.multiply(r**2 + x**2, ell))
    # ||(2P, 2Q, v_i − ℓ)|| ≤ v_i + ℓ  ⇔  P² + Q² ≤ v_i ℓ, one cone per (branch, snapshot)
    flat = lambda e: cp.reshape(e, (m * S,), order="F")  # noqa: E731
    fam.add("network.cone", cp.SOC(flat(v_from + ell), cp.vstack([flat(2 * P), flat(2 * Q), flat(v_from - ell)]), axis=0))
    lo, hi = limits.v_substation_pu
    fam.add("network.substation_voltage", v[0] >= lo**2, v[0] <= hi**2)
    if n > 1:
        fam.add("network.voltage_limits", v[1:] >= limits.v_min_pu**2, v[1:] <= limits.v_max_pu**2)
    rated = np.flatnonzero(np.isfinite(limits.i_max_pu))
    if len(rated):
        fam.add("network.current_limits", ell[rated] <= (limits.i_max_pu[rated] ** 2)[:, None])
    return BranchFlowSOC(P=P, Q=Q, ell=ell, v=v, families=fam)


@dataclass
class Substation:
    """The feeder's head: active import/export and reactive supply per snapshot (per unit)."""

    p: cp.Expression  # net import (positive: from the upstream grid)
    q: cp.Variable
    p_import: cp.Variable | None  # split form only
    p_export: cp.Variable | None
    families: Families

    def injection(self, n_bus: int) -> tuple[cp.Expression, cp.Expression]:
        """Bus × snapshot injections of the substation (bus 0)."""
        S = self.q.size
        e0 = at_buses(n_bus, np.array([0]))
        return e0 @ cp.reshape(self.p, (1, S), order="F"), e0 @ cp.reshape(self.q, (1, S), order="F")


def substation_block(n_snap: int, limits: NetworkLimits, *, split: bool) -> Substation:
    """Substation exchange with its limits (``substation.import_limit``, ``substation.export_limit``).

    ``split`` gives import and export their own non-negative variables, for
    models that price them differently (the plan buys and sells at different
    tariffs); otherwise one signed variable.
    """
    fam = Families()
    q = cp.Variable(n_snap, name="q_substation")
    if split:
        p_imp = cp.Variable(n_snap, name="p_import", nonneg=True)
        p_exp = cp.Variable(n_snap, name="p_export", nonneg=True)
        if limits.p_import_max_pu is not None:
            fam.add("substation.import_limit", p_imp <= limits.p_import_max_pu)
        if limits.p_export_max_pu is not None:
            fam.add("substation.export_limit", p_exp <= limits.p_export_max_pu)
        return Substation(p=p_imp - p_exp, q=q, p_import=p_imp, p_export=p_exp, families=fam)
    p = cp.Variable(n_snap, name="p_substation")
    if limits.p_import_max_pu is not None:
        fam.add("substation.import_limit", p <= limits.p_import_max_pu)
    if limits.p_export_max_pu is not None:
        fam.add("substation.export_limit", p >= -limits.p_export_max_pu)
    return Substation(p=p, q=q, p_import=None, p_export=None, families=fam)
