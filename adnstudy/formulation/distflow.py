"""DistFlow branch-flow model with the second-order cone relaxation, over many snapshots at once.

For a radial feeder with branches k = (i → j), per unit, and every snapshot s
(a column of each matrix variable)::

    Σ_{k: to j} (P_k − r_k ℓ_k) − Σ_{k: from j} P_k + p_j^inj = p_j^load        (active balance)
    Σ_{k: to j} (Q_k − x_k ℓ_k) − Σ_{k: from j} Q_k + q_j^inj = q_j^load        (reactive balance)
    v_j = v_i − 2 (r_k P_k + x_k Q_k) + (r_k² + x_k²) ℓ_k                        (voltage drop)
    P_k² + Q_k² ≤ v_i ℓ_k                                                          (rotated SOC, relaxes "=")
    v_min² ≤ v ≤ v_max²,  ℓ_k ≤ ī_k²

with v = |V|² and ℓ = |I|². Each family is one matrix expression over
(branch or bus) × snapshot built from the sparse incidence of the feeder; there
is no Python loop over elements. The substation voltage is a variable per
snapshot within the tap-changer range (or fixed).
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from adnstudy.network.feeder import Feeder


@dataclass
class BranchFlowSOC:
    """Variables and constraints of the relaxed DistFlow model (all per unit, snapshot columns)."""

    P: cp.Variable  # branch × snapshot, sending-end active flow
    Q: cp.Variable
    ell: cp.Variable  # squared current
    v: cp.Variable  # bus × snapshot, squared voltage
    constraints: list[cp.Constraint]
    cone: cp.Constraint  # the rotated-cone family, for the slack report


def branch_flow_soc(
    feeder: Feeder,
    n_snap: int,
    p_injection: cp.Expression,
    q_injection: cp.Expression,
    p_load: np.ndarray,
    q_load: np.ndarray,
    *,
    v_min_pu: float,
    v_max_pu: float,
    v_sub_range_pu: tuple[float, float],
    i_max_pu: np.ndarray | None = None,
    relax: frozenset[str] = frozenset(),
) -> BranchFlowSOC:
    """Add the DistFlow SOC model.

    ``p_injection``/``q_injection`` are bus × snapshot expressions of what enters
    each bus besides branch flows (the substation at bus 0, DG, MG exchanges);
    ``p_load``/``q_load`` bus × snapshot arrays. ``i_max_pu`` per branch, NaN or
    None for no limit. ``relax`` drops limit families ("voltage", "current") to
    find which one makes a case infeasible.
    """
    n, m, S = feeder.n_bus, feeder.n_branch, n_snap
    r, x = feeder.r_pu[:, None], feeder.x_pu[:, None]
    A_from = sp.csr_matrix((np.ones(m), (feeder.f, np.arange(m))), shape=(n, m))
    A_to = sp.csr_matrix((np.ones(m), (feeder.t, np.arange(m))), shape=(n, m))
    P = cp.Variable((m, S), name="P")
    Q = cp.Variable((m, S), name="Q")
    ell = cp.Variable((m, S), name="ell", nonneg=True)
    v = cp.Variable((n, S), name="v", nonneg=True)
    v_from = A_from.T @ v  # m × S, sending-end voltage of each branch
    cons: list[cp.Constraint] = [
        A_to @ (P - cp.multiply(r, ell)) - A_from @ P + p_injection == p_load,
        A_to @ (Q - cp.multiply(x, ell)) - A_from @ Q + q_injection == q_load,
        A_to.T @ v == v_from - 2 * (cp.multiply(r, P) + cp.multiply(x, Q)) + cp.multiply(r**2 + x**2, ell),
    ]
    # ||(2P, 2Q, v_i − ℓ)|| ≤ v_i + ℓ  ⇔  P² + Q² ≤ v_i ℓ, one cone per (branch, snapshot)
    flat = lambda e: cp.reshape(e, (m * S,), order="F")  # noqa: E731
    cone = cp.SOC(flat(v_from + ell), cp.vstack([flat(2 * P), flat(2 * Q), flat(v_from - ell)]), axis=0)
    cons.append(cone)
    lo, hi = v_sub_range_pu
    if "voltage" not in relax:
        cons += [v[0] >= lo**2, v[0] <= hi**2]
        if n > 1:
            cons += [v[1:] >= v_min_pu**2, v[1:] <= v_max_pu**2]
    else:
        cons += [v[0] == 1.0]
    if i_max_pu is not None and "current" not in relax:
        rated = np.flatnonzero(np.isfinite(i_max_pu))
        if len(rated):
            cons.append(ell[rated] <= (i_max_pu[rated] ** 2)[:, None])
    return BranchFlowSOC(P=P, Q=Q, ell=ell, v=v, constraints=cons, cone=cone)


def cone_slack(model: BranchFlowSOC, feeder: Feeder) -> np.ndarray:
    """v_i·ℓ − P² − Q² per (branch, snapshot) at the solution (0 where the relaxation is exact)."""
    v_from = model.v.value[feeder.f]
    return v_from * model.ell.value - model.P.value**2 - model.Q.value**2
