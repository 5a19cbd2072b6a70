"""Distributed stage-1 clearing: ATC between the ADN and the MGs, ADMM among the MGs.

Each iteration k (docs/dispatch.md derives it):

1. *Upper level and trade agreement* (from the MGs' last proposals only):
   the ADN solves its network subproblem for PCC targets T; every trading
   pair agrees, in closed form, on

       z_mn = (s_mn − s_nm)/2 + (μ_mn − μ_nm)/(2ρ),   z_nm = −z_mn

   which minimises Σ μ·(s − z) + ρ/2 ‖s − z‖² over reciprocal z.
2. *Lower level*: each MG solves its own subproblem with T, z and the
   multipliers (its private data never leaves it) and returns p_x and s.
3. *Multipliers*: v ← v + 2w (T − p_x) (ATC), μ ← μ + ρ (s − z) (ADMM).

This is a two-block ADMM (block one: T and z; block two: the MGs), so it
converges for the convex clearing problem. Penalties follow residual balancing
(an augmented-Lagrangian update: grow ρ while the primal residual dominates,
shrink it while the dual one does) over the first iterations, then stay fixed;
the multipliers are unscaled, so changing ρ needs no rescaling.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from adnstudy.errors import SolveError
from adnstudy.problems.dispatch import ADNAgent, MicrogridAgent, MicrogridSchedule, partner_row

#: Residual balancing: change a penalty by this factor when one residual exceeds the other MU times,
#: during the first ADAPT_ITER iterations only (then ρ is fixed, which keeps ADMM's convergence
#: guarantee and stops the penalty flip-flopping between two values near the end).
TAU, MU, ADAPT_ITER = 2.0, 5.0, 60


@dataclass
class CoordinationResult:
    schedules: list[MicrogridSchedule]
    targets_pu: np.ndarray  # MG × H, the ADN's PCC targets
    agreed_pu: np.ndarray  # MG × MG × H, agreed sale of m to n (antisymmetric)
    adn_loss_cost_usd: float
    objective_usd: float
    history: list[dict[str, float]]
    iterations: int
    seconds: float
    converged: bool


def agree_trades(s: np.ndarray, mu: np.ndarray, rho: float, pairs: list[tuple[int, int]]) -> np.ndarray:
    """Closed-form trade agreement: z minimising Σ μ·(s − z) + ρ/2‖s − z‖² with z_nm = −z_mn.

    ``s`` and ``mu`` are MG × MG × H (m's proposed sale to n, its multiplier).
    """
    z = np.zeros_like(s)
    for m, n in pairs:
        y = (s[m, n] - s[n, m]) / 2 + (mu[m, n] - mu[n, m]) / (2 * rho)
        z[m, n], z[n, m] = y, -y
    return z


def coordinate(
    adn: ADNAgent,
    mgs: list[MicrogridAgent],
    pairs: list[tuple[int, int]],
    initial: list[MicrogridSchedule],
    *,
    rho_pcc: float,
    rho_trade: float,
    tol_pu: float,
    tol_objective: float,
    tol_dual_pu: float | None = None,
    max_iter: int,
    adaptive: bool = True,
    trading: bool = True,
    on_iteration: Callable[[dict[str, float]], None] | None = None,
) -> CoordinationResult:
    """Run ATC + ADMM from the MGs' stand-alone schedules until the residuals reach ``tol_pu``.

    Penalties are in USD per pu² (per hour). ``trading=False`` clears the
    disagreement market: ATC only, the MGs trade with the ADN alone. Raises :class:`SolveError` with the
    residuals reached when ``max_iter`` passes without convergence.
    """
    M, H = len(mgs), adn.data.hours
    pairs = pairs if trading else []
    tol_dual = tol_pu if tol_dual_pu is None else tol_dual_pu
    B = adn.data.feeder.base_mva
    t0 = time.perf_counter()
    R = np.array([s.export_pu for s in initial])
    s = np.zeros((M, M, H))
    mu = np.zeros((M, M, H))
    v = np.zeros((M, H))
    z = np.zeros((M, M, H))
    w, rho = rho_pcc, rho_trade
    history: list[dict[str, float]] = []
    prev_obj = np.nan
    schedules = initial
    T = R.copy()
    for k in range(1, max_iter + 1):
        T = adn.set_targets(R, v, w)
        z_old = z
        z = agree_trades(s, mu, rho, pairs)
        schedules = []
        for m, agent in enumerate(mgs):
            others = [n for n in range(M) if n != m]
            if trading:
                schedules.append(agent.respond(T[m], v[m], w, z[m, others], mu[m, others], rho))
            else:
                schedules.append(agent.respond(T[m], v[m], w))
        R_old = R
        R = np.array([sc.export_pu for sc in schedules])
        s = np.zeros((M, M, H))
        for m, sc in enumerate(schedules):
            for n in range(M):
                if n != m:
                    s[m, n] = sc.trade_pu[partner_row(m, n)]
        mask = np.ones((M, M, 1)) - np.eye(M)[:, :, None]
        r_pcc = T - R
        v = v + 2 * w * r_pcc
        mu = mu + rho * (s - z) * mask
        recip = max((float(np.max(np.abs(s[m, n] + s[n, m]))) for m, n in pairs), default=0.0)
        pcc = float(np.max(np.abs(r_pcc)))
        primal = max(pcc, recip)
        dual_pcc = float(np.max(np.abs(R - R_old)))
        dual_trade = float(np.max(np.abs(z - z_old))) if pairs else 0.0
        dual = max(dual_pcc, dual_trade)
        obj = sum(sc.cost_usd for sc in schedules) + adn.loss_cost_usd
        row = {
            "iteration": k, "primal_residual": primal * B, "dual_residual": dual * B,
            "pcc_mismatch_mw": pcc * B, "reciprocity_mw": recip * B, "objective_usd": obj,
            "rho_pcc": w / B**2, "rho_trade": rho / B**2, "seconds": time.perf_counter() - t0,
        }
        history.append(row)
        if on_iteration:
            on_iteration(row)
        steady = abs(obj - prev_obj) <= tol_objective * max(abs(obj), 1.0)
        if primal <= tol_pu and dual <= tol_dual and steady:
            return CoordinationResult(
                schedules=schedules, targets_pu=T, agreed_pu=z, adn_loss_cost_usd=adn.loss_cost_usd,
                objective_usd=obj, history=history, iterations=k, seconds=time.perf_counter() - t0, converged=True,
            )
        prev_obj = obj
        if adaptive and k <= ADAPT_ITER:
            if pcc > MU * dual_pcc:
                w *= TAU
            elif dual_pcc > MU * pcc:
                w /= TAU
            if pairs:
                if recip > MU * dual_trade:
                    rho *= TAU
                elif dual_trade > MU * recip:
                    rho /= TAU
    last = history[-1]
    raise SolveError(
        f"the distributed clearing{'' if trading else ' without trades'} (ATC + ADMM) did not converge in {max_iter} iterations: primal residual "
        f"{last['primal_residual']:.2e} MW (PCC mismatch {last['pcc_mismatch_mw']:.2e}, trade reciprocity "
        f"{last['reciprocity_mw']:.2e}), dual residual {last['dual_residual']:.2e} MW, tolerances "
        f"{tol_pu * B:.1e} / {tol_dual * B:.1e} MW; raise market.coordination.max_iter or tune rho_pcc_usd_per_mw2h / "
        "rho_trade_usd_per_mw2h; no results were written"
    )
