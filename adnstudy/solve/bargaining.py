"""Stage 2 of dispatch: Nash-bargaining payments on the trades, by a closed-form ADMM.

After the clearing, MG m's gain before payments is g_m = D_m − C_m (its
stand-alone cost minus its cooperative cost with fees). Payments p_mn (m pays
n, p_nm = −p_mn) flow only between MGs that traded; the generalized Nash
bargaining solution maximises Σ_m w_m log(g_m − Σ_n p_mn). Within a connected
group of traders with total gain G the optimum is analytic — every MG ends
with w_m / Σw · G — but no party knows G or the others' g: the ADMM below
reaches it exchanging only the proposed payments.

Consensus ADMM on p = z (z reciprocal), with multipliers λ. MG m's update

    min_p  −w log(g − Σ_n p_n) + Σ_n λ_n (p_n − z_n) + ρ/2 (p_n − z_n)²

has the closed form (stationarity: w/y + λ_n + ρ (p_n − z_n) = 0 with
y = g − Σ p; summing over the N partners gives a quadratic in y)::

    a = Σ z_n − Σ λ_n / ρ
    y = [(g − a) + sqrt((g − a)² + 4 N w / ρ)] / 2          (> 0: the log stays defined)
    p_n = z_n − (λ_n + w / y) / ρ

and the agreement z_mn = (p_mn − p_nm)/2 + (λ_mn − λ_nm)/(2ρ) is the same
closed form as the trade agreement of stage 1. Gains are scaled by G inside.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from adnstudy.errors import SolveError
from adnstudy.solve.coordination import agree_trades


def payment_update(gain: float, power: float, z: np.ndarray, lam: np.ndarray, rho: float) -> np.ndarray:
    """Closed-form MG update of the payment ADMM (see the module docstring)."""
    n = len(z)
    a = z.sum() - lam.sum() / rho
    y = ((gain - a) + np.sqrt((gain - a) ** 2 + 4 * n * power / rho)) / 2
    return z - (lam + power / y) / rho


def trading_groups(M: int, pairs: list[tuple[int, int]]) -> list[list[int]]:
    """Connected components of the graph whose edges are the pairs that traded."""
    parent = list(range(M))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for m, n in pairs:
        parent[root(m)] = root(n)
    groups: dict[int, list[int]] = {}
    for i in range(M):
        groups.setdefault(root(i), []).append(i)
    return sorted(groups.values())


@dataclass
class BargainResult:
    payments_usd: np.ndarray  # M × M, p_mn paid by m to n (antisymmetric, zero off the traded pairs)
    gains_usd: np.ndarray  # after payments
    groups: list[list[int]]
    history: list[dict[str, float]]
    iterations: int


def bargain(
    gains_usd: np.ndarray,
    powers: np.ndarray,
    traded: list[tuple[int, int]],
    *,
    rho_per_member: float = 3.0,
    tol: float = 1e-7,
    max_iter: int = 500,
) -> BargainResult:
    """Nash-bargaining payments by the closed-form ADMM, group by group of traders.

    ``tol`` is the payment disagreement (primal) and change (dual) relative to the
    group's total gain. A group whose total gain is not positive pays nothing
    (there is nothing to share: the gains before payments stand).
    """
    M = len(gains_usd)
    pay = np.zeros((M, M))
    history: list[dict[str, float]] = []
    groups = trading_groups(M, traded)
    t0 = time.perf_counter()
    iterations = 0
    for group in groups:
        if len(group) < 2:
            continue
        G = float(gains_usd[group].sum())
        if G <= 1e-9 * max(1.0, float(np.abs(gains_usd[group]).sum())):
            continue
        idx = {m: i for i, m in enumerate(group)}
        edges = [(idx[m], idx[n]) for m, n in traded if m in idx]
        k_m = len(group)
        nbr = [[j for a, b in edges for i, j in ((a, b), (b, a)) if i == q] for q in range(k_m)]
        g = gains_usd[group] / G
        w = powers[group] / powers[group].sum()
        # curvature of w log(y) at the answer y = w is 1/w ≈ group size: scale ρ with it
        rho = rho_per_member * k_m
        p = np.zeros((k_m, k_m, 1))
        z = np.zeros_like(p)
        lam = np.zeros_like(p)
        for it in range(1, max_iter + 1):
            for q in range(k_m):
                p[q, nbr[q], 0] = payment_update(g[q], w[q], z[q, nbr[q], 0], lam[q, nbr[q], 0], rho)
            z_old = z
            z = agree_trades(p, lam, rho, edges)
            lam = lam + rho * (p - z)
            primal = float(np.max(np.abs(p - z)))
            dual = float(rho * np.max(np.abs(z - z_old)))
            history.append({"iteration": it, "primal_residual": primal * G, "dual_residual": dual * G,
                            "seconds": time.perf_counter() - t0})
            if primal <= tol and dual <= tol:
                break
        else:
            raise SolveError(
                f"the payment ADMM did not converge in {max_iter} iterations: payment disagreement "
                f"{primal * G:.2e} USD, change {dual * G:.2e} USD (tolerance {tol:g} of the group's gain "
                f"{G:.2f} USD); raise market.coordination.payment_max_iter; no results were written"
            )
        iterations = max(iterations, it)
        sub = z[:, :, 0] * G
        for a, m in enumerate(group):
            for b, n in enumerate(group):
                pay[m, n] = sub[a, b]
    return BargainResult(payments_usd=pay, gains_usd=gains_usd - pay.sum(axis=1), groups=groups,
                         history=history, iterations=iterations)
