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

from dataclasses import dataclass

import numpy as np

from adnstudy.solve.coordination import agree_trades
from adnstudy.solve.iterate import Row, iterate


def payment_update(gain: float, power: float, z: np.ndarray, lam: np.ndarray, rho: float) -> np.ndarray:
    """Closed-form MG update of the payment ADMM (see the module docstring)."""
    n = len(z)
    b = gain - z.sum() + lam.sum() / rho
    d = 4 * n * power / rho
    root = np.sqrt(b * b + d)
    # (b + root) / 2, written without cancellation when b < 0 (an MG that pays far more than the group's gain:
    # there b + root loses every digit of y and the iteration stalls)
    y = (b + root) / 2 if b >= 0 else d / (2 * (root - b))
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


class PaymentAdmm:
    """The payment ADMM of one group of traders, as a plug-in of :func:`~adnstudy.solve.iterate.iterate`.

    Gains are scaled by the group's total gain G (``gains`` sum to 1); residual
    rows are reported in USD (× G).
    """

    def __init__(self, gains: np.ndarray, powers: np.ndarray, edges: list[tuple[int, int]], *, rho: float, tol: float,
                 total_usd: float) -> None:
        self.g, self.w, self.edges, self.rho, self.tol, self.G = gains, powers, edges, rho, tol, total_usd
        k = len(gains)
        self.nbr = [[j for a, b in edges for i, j in ((a, b), (b, a)) if i == q] for q in range(k)]

    def initialise(self) -> None:
        k = len(self.g)
        self.p = np.zeros((k, k, 1))
        self.z = np.zeros_like(self.p)
        self.lam = np.zeros_like(self.p)

    def solve(self, k: int) -> None:
        for q, nbr in enumerate(self.nbr):
            self.p[q, nbr, 0] = payment_update(self.g[q], self.w[q], self.z[q, nbr, 0], self.lam[q, nbr, 0], self.rho)

    def update(self, k: int) -> Row:
        z_old = self.z
        self.z = agree_trades(self.p, self.lam, self.rho, self.edges)
        self.lam = self.lam + self.rho * (self.p - self.z)
        self.primal = float(np.max(np.abs(self.p - self.z)))
        self.dual = float(self.rho * np.max(np.abs(self.z - z_old)))
        return {"primal_residual": self.primal * self.G, "dual_residual": self.dual * self.G}

    def converged(self, row: Row) -> bool:
        return self.primal <= self.tol and self.dual <= self.tol

    def adapt(self, k: int, row: Row) -> None:
        """The penalty stays fixed (scaled to the group size in :func:`bargain`)."""

    def not_converged(self, row: Row) -> str:
        return (
            f"the payment ADMM did not converge in {int(row['iteration'])} iterations: payment disagreement "
            f"{row['primal_residual']:.2e} USD, change {row['dual_residual']:.2e} USD (tolerance {self.tol:g} of the "
            f"group's gain {self.G:.3g} USD); raise market.coordination.payment_max_iter"
        )

    @property
    def payments(self) -> np.ndarray:
        """Agreed payments in USD, member × member."""
        return self.z[:, :, 0] * self.G


@dataclass
class BargainResult:
    payments_usd: np.ndarray  # M × M, p_mn paid by m to n (antisymmetric, zero off the traded pairs)
    gains_usd: np.ndarray  # after payments
    groups: list[list[int]]
    history: list[Row]
    iterations: int
    converged: bool = True
    message: str = ""


def bargain(
    gains_usd: np.ndarray,
    powers: np.ndarray,
    traded: list[tuple[int, int]],
    *,
    rho_per_member: float = 3.0,
    tol: float = 1e-7,
    max_iter: int = 20_000,
    strict: bool = True,
) -> BargainResult:
    """Nash-bargaining payments by the closed-form ADMM, group by group of traders.

    ``tol`` is the payment disagreement (primal) and change (dual) relative to the
    group's total gain. A group whose total gain is not positive pays nothing
    (there is nothing to share: the gains before payments stand).
    """
    M = len(gains_usd)
    pay = np.zeros((M, M))
    history: list[Row] = []
    groups = trading_groups(M, traded)
    iterations = 0
    messages: list[str] = []
    for group in groups:
        if len(group) < 2:
            continue
        G = float(gains_usd[group].sum())
        if G <= 1e-9 * max(1.0, float(np.abs(gains_usd[group]).sum())):
            continue
        idx = {m: i for i, m in enumerate(group)}
        edges = [(idx[m], idx[n]) for m, n in traded if m in idx]
        # curvature of w log(y) at the answer y = w is 1/w ≈ group size: scale ρ with it
        method = PaymentAdmm(gains_usd[group] / G, powers[group] / powers[group].sum(), edges,
                             rho=rho_per_member * len(group), tol=tol, total_usd=G)
        loop = iterate(method, max_iter=max_iter, strict=strict)
        if not loop.converged:
            messages.append(loop.message)
        history += loop.history
        iterations = max(iterations, loop.iterations)
        sub = method.payments
        for a, m in enumerate(group):
            for b, n in enumerate(group):
                pay[m, n] = sub[a, b]
    return BargainResult(payments_usd=pay, gains_usd=gains_usd - pay.sum(axis=1), groups=groups,
                         history=history, iterations=iterations, converged=not messages, message="; ".join(messages))
