"""Reliability as linear constraints of the plan: island-success 0-1 variables tied to capacity.

The fault logic of :mod:`adnstudy.reliability.evaluate`, in matrix form. With
the path matrix T (branch × bus: 1 where the branch lies on the path to the
bus) and B[a, k] = T[a, t_k] (branch a lies at or above branch k):

* P(k), U(k): the deepest protective device / switch at or above k
  (argmax of depth over B masked by device kind; none → the substation);
* affected[k, ·] = T[P(k), ·], isolated[k, ·] = T[U(k), ·] (all ones for the substation);
* E[k, s] = 1 when switch s hangs directly below U(k) (its nearest switch above is U(k));
* tie[k, s] = 1 when a usable tie joins the area below s to a bus outside isolated[k].

Durations without islanding D0[k, j] = t_sw·(affected − isolated) + r_k·isolated
− (r_k − t_sw)·Σ_s E·tie·T[s, j]; each successful island z_s (1 when the DG
below switch s covers its average load) shortens its buses' outages by
G[j, s] = Σ_k λ_k (r_k − t_sw) E[k, s] (1 − tie[k, s]) T[s, j]. Then, per bus,

    unavailability  U_j = Σ_k λ_k D0[k, j] − Σ_s G[j, s] z_s        (linear in z)
    failures        f_j = Σ_k λ_k affected[k, j]                     (independent of the plan)

and L̄_s z_s ≤ Σ_{sites i below s} κ_i c_i ties each z_s to the planned
capacities c (κ: credit per MW, L̄_s: the area's average load) — no big-M.
SAIDI = N·U / ΣN and EENS = L̄·U are linear, so limits on them keep the plan a
MISOCP.
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from adnstudy.reliability.data import ReliabilityData


@dataclass(frozen=True)
class ReliabilityMatrices:
    failures: np.ndarray  # per bus, failures/yr
    unavail0: np.ndarray  # per bus, h/yr without any island
    G: np.ndarray  # bus × island, h/yr saved when the island succeeds
    island_switch: np.ndarray  # branch index of the switch above each island
    island_load_mw: np.ndarray  # average load of each island
    island_sites: np.ndarray  # island × site, 1 if the site lies in the island and may island


def reliability_matrices(rd: ReliabilityData) -> ReliabilityMatrices:
    fd = rd.feeder
    m = fd.n_branch
    T = fd.path.toarray()  # branch × bus
    B = T[:, fd.t]  # B[a, k]: a at or above k
    depth = T.sum(axis=0)[fd.t]  # branches on the path to each branch's end

    def deepest(mask: np.ndarray, strict: bool = False) -> np.ndarray:
        above = B * mask[:, None]
        if strict:
            above = above * (1 - np.eye(m))
        score = above * depth[:, None]
        best = np.argmax(score, axis=0)
        return np.where(score.max(axis=0) > 0, best, -1)

    def rows(idx: np.ndarray) -> np.ndarray:
        out = np.ones((len(idx), fd.n_bus))
        has = idx >= 0
        out[has] = T[idx[has]]
        return out

    P = deepest(rd.protective)
    U = deepest(rd.switch)
    affected, isolated = rows(P), rows(U)
    switches = np.flatnonzero(rd.switch)
    parent_sw = deepest(rd.switch, strict=True)[switches]
    # E[k, i]: switch i (of `switches`) hangs directly below U(k)
    E = (parent_sw[None, :] == U[:, None]) & (switches[None, :] != U[:, None])
    area = T[switches]  # switch × bus
    tie = np.zeros_like(E)
    for a, b in rd.ties:  # a handful of tie lines
        in_a, in_b = area[:, a] > 0, area[:, b] > 0
        tie |= (in_a[None, :] & (isolated[:, b] == 0)[:, None]) | (in_b[None, :] & (isolated[:, a] == 0)[:, None])
    lam, saved = rd.rate, rd.rate * (rd.repair_h - rd.switching_h)
    t_sw = rd.switching_h
    D0 = t_sw * (affected - isolated) + rd.repair_h[:, None] * isolated
    unavail0 = lam @ D0 - (saved[:, None] * (E & tie)).sum(axis=0) @ area
    failures = lam @ affected
    weight = (saved[:, None] * (E & ~tie)).sum(axis=0)  # per switch
    site_in = area[:, rd.site_pos] * (rd.site_credit > 0)[None, :]  # switch × site
    keep = (weight > 0) & (site_in.sum(axis=1) > 0)  # islands that matter and could succeed
    G = (weight[:, None] * area).T[:, keep]
    return ReliabilityMatrices(
        failures=failures, unavail0=unavail0, G=G, island_switch=switches[keep],
        island_load_mw=area[keep] @ rd.load_avg_mw, island_sites=site_in[keep],
    )


@dataclass
class ReliabilityBlock:
    matrices: ReliabilityMatrices
    island: cp.Variable  # z, one per island
    unavail: cp.Expression  # per bus, h/yr
    saidi: cp.Expression
    saifi: float
    eens: cp.Expression  # MWh/yr
    constraints: list[cp.Constraint]
    limit_constraints: dict[str, cp.Constraint]


def reliability_block(rd: ReliabilityData, cap_mw: cp.Expression, limits: dict[str, float | None], native: bool) -> ReliabilityBlock:
    """Island variables, index expressions and limit constraints for the plan model."""
    mat = reliability_matrices(rd)
    n_isl = len(mat.island_switch)
    z = cp.Variable(n_isl, name="island_success", boolean=native and n_isl > 0)
    cons: list[cp.Constraint] = [z >= 0, z <= 1]
    if n_isl:
        supply = (mat.island_sites * rd.site_credit[None, :]) @ cap_mw
        cons.append(cp.multiply(mat.island_load_mw, z) <= supply)
        unavail = mat.unavail0 - mat.G @ z
    else:
        unavail = cp.Constant(mat.unavail0)
    n_cust = rd.customers.sum()
    saidi = rd.customers @ unavail / n_cust
    saifi = float(rd.customers @ mat.failures / n_cust)
    eens = rd.load_avg_mw @ unavail
    limit_cons: dict[str, cp.Constraint] = {}
    if limits.get("SAIDI") is not None:
        limit_cons["SAIDI"] = saidi <= limits["SAIDI"]
    if limits.get("EENS") is not None:
        limit_cons["EENS"] = eens <= limits["EENS"]
    return ReliabilityBlock(mat, z, unavail, saidi, saifi, eens, cons, limit_cons)
