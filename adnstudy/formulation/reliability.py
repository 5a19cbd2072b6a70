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

from dataclasses import dataclass, field

import cvxpy as cp
import numpy as np

from adnstudy.formulation.families import Families
from adnstudy.reliability.data import ReliabilityData
from adnstudy.solve.integer import IntegerBlock, integer_variable


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


def island_reachable(rd: ReliabilityData, island_sites: np.ndarray, island_load_mw: np.ndarray,
                     max_mw: np.ndarray) -> np.ndarray:
    """Islands whose sites, all built at their maximum, would cover the island's load (credited)."""
    most = island_sites @ (rd.site_credit * max_mw)
    return most >= island_load_mw - 1e-7


@dataclass
class ReliabilityBlock:
    matrices: ReliabilityMatrices
    island: cp.Variable  # z, one per island
    reachable: np.ndarray  # islands that can succeed at all (z ≤ this)
    unavail: cp.Expression  # per bus, h/yr
    saidi: cp.Expression
    saifi: float
    eens: cp.Expression  # MWh/yr
    families: Families
    integers: list[IntegerBlock] = field(default_factory=list)


def reliability_block(
    rd: ReliabilityData, capacity_mw: cp.Expression, build: cp.Expression, max_mw: np.ndarray,
    limits: dict[str, float | None], voll_usd_per_mwh: float, *, native: bool,
) -> ReliabilityBlock:
    """Island variables, index expressions and limit constraints (see the module docstring).

    Families: ``reliability.islands`` (z bounds and L̄ z ≤ Σ κ c), ``reliability.island_cuts``
    (valid tightenings), ``reliability.limits`` (SAIDI, EENS).
    """
    mat = reliability_matrices(rd)
    n_isl = len(mat.island_switch)
    fam = Families()
    reachable = island_reachable(rd, mat.island_sites, mat.island_load_mw, max_mw)
    # a successful island is worth the outage hours it saves (× VOLL) to the branching rule
    value = voll_usd_per_mwh * (rd.load_avg_mw @ mat.G) + 1.0
    blk = None
    if n_isl:
        z, blk, cons = integer_variable(n_isl, np.zeros(n_isl), reachable.astype(float), value, "island_success",
                                        native=native, boolean=True)
        fam.add("reliability.islands", *cons)
        supply = (mat.island_sites * rd.site_credit[None, :]) @ capacity_mw
        fam.add("reliability.islands", cp.multiply(mat.island_load_mw, z) <= supply)
        # valid tightenings: an island needs a built site in it:
        # z_s = 1 needs Σ κ_i c_i ≥ L_s with c_i ≤ max_i b_i, so z_s ≤ Σ_i min(1, κ_i max_i / L_s) b_i
        reach = rd.site_credit * max_mw
        share = np.minimum(1.0, reach[None, :] / np.maximum(mat.island_load_mw[:, None], 1e-12))
        fam.add("reliability.island_cuts", z <= (mat.island_sites * share) @ build)
        unavail = mat.unavail0 - mat.G @ z
    else:
        z = cp.Variable(0, name="island_success")
        unavail = cp.Constant(mat.unavail0)
    n_cust = rd.customers.sum()
    saidi = rd.customers @ unavail / n_cust
    saifi = float(rd.customers @ mat.failures / n_cust)
    eens = rd.load_avg_mw @ unavail
    if limits.get("SAIDI") is not None:
        fam.add("reliability.limits", saidi <= limits["SAIDI"])
    if limits.get("EENS") is not None:
        fam.add("reliability.limits", eens <= limits["EENS"])
    return ReliabilityBlock(mat, z, reachable, unavail, saidi, saifi, eens, fam, [blk] if blk is not None else [])
