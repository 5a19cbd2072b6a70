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

Over several typical days (co-planning) the agents' costs are annual: each
snapshot's penalties and multiplier steps are weighted by what it stands for
(``snapshot_weight``, days of the year), so every hour of every day behaves as
in a one-day clearing scaled by its weight. A run may start from another's
final state (:class:`AtcState`): the multipliers, agreed trades and penalties
of the last clearing, when the decisions around it changed little.

:class:`AtcAdmm` is the plug-in for the loop of :mod:`adnstudy.solve.iterate`;
the agents meet it through :class:`UpperLevel` and :class:`LowerLevel`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from adnstudy.solve.iterate import Anderson, Row, iterate

#: Residual balancing: change a penalty by this factor when one residual exceeds the other MU times,
#: during the first ADAPT_ITER iterations only (then ρ is fixed, which keeps ADMM's convergence
#: guarantee and stops the penalty flip-flopping between two values near the end).
TAU, MU, ADAPT_ITER = 2.0, 5.0, 60


def partner_row(m: int, n: int) -> int:
    """Row of partner n in agent m's trade matrix (partners are the other agents in order)."""
    return n - 1 if n > m else n


class UpperResponse(Protocol):
    targets_pu: np.ndarray  # agent × hour, the exchange the upper level plans for
    cost_usd: float


class LowerResponse(Protocol):
    export_pu: np.ndarray  # hour, the agent's exchange with the upper level
    trade_pu: np.ndarray  # partner × hour, signed sales (zeros without trades)
    cost_usd: float


class UpperLevel(Protocol):
    """The ADN: network subproblem given the agents' responses, ATC multipliers and weight."""

    def respond(self, responses_pu: np.ndarray, mult: np.ndarray, weight: float) -> UpperResponse: ...


class LowerLevel(Protocol):
    """An MG: its subproblem given the target, ATC terms and (when trading) the agreed trades."""

    def respond(self, target_pu: np.ndarray, mult: np.ndarray, weight: float, agreed_pu: np.ndarray | None = None,
                trade_mult: np.ndarray | None = None, rho_trade: float = 0.0) -> LowerResponse: ...


@dataclass
class AtcState:
    """Where an ATC + ADMM run ended: enough to start another from it."""

    R: np.ndarray  # agent × H, last responses' exchanges
    s: np.ndarray  # agent × agent × H, last proposals
    mu: np.ndarray
    v: np.ndarray
    z: np.ndarray
    w: float
    rho: float


@dataclass
class CoordinationResult:
    responses: list[Any]  # the lower levels' last responses (LowerResponse)
    upper: Any  # the upper level's last response (UpperResponse)
    agreed_pu: np.ndarray  # agent × agent × hour, agreed sale of m to n (antisymmetric)
    objective_usd: float
    history: list[Row]
    iterations: int
    seconds: float
    converged: bool = True
    message: str = ""  # the residuals reached, when it did not converge
    state: AtcState | None = None  # where it ended (to start another run from)

    @property
    def targets_pu(self) -> np.ndarray:
        return self.upper.targets_pu


def agree_trades(s: np.ndarray, mu: np.ndarray, rho: float, pairs: list[tuple[int, int]]) -> np.ndarray:
    """Closed-form trade agreement: z minimising Σ μ·(s − z) + ρ/2‖s − z‖² with z_nm = −z_mn.

    ``s`` and ``mu`` are agent × agent × H (m's proposed sale to n, its multiplier).
    """
    z = np.zeros_like(s)
    for m, n in pairs:
        y = (s[m, n] - s[n, m]) / 2 + (mu[m, n] - mu[n, m]) / (2 * rho)
        z[m, n], z[n, m] = y, -y
    return z


class AtcAdmm:
    """ATC (upper ↔ lower levels) with trade-agreement ADMM (among the lower levels)."""

    def __init__(self, upper: UpperLevel, lowers: list[LowerLevel], pairs: list[tuple[int, int]],
                 initial: list[LowerResponse], *, hours: int, base_mva: float, rho_pcc: float, rho_trade: float,
                 tol_pu: float, tol_dual_pu: float, tol_objective: float, adaptive: bool, trading: bool,
                 snapshot_weight: np.ndarray | None = None, warm: AtcState | None = None,
                 relaxation: float = 1.0) -> None:
        self.upper, self.lowers, self.initial = upper, lowers, initial
        self.alpha = relaxation
        self.omega = snapshot_weight if snapshot_weight is not None else 1.0
        self.warm = warm
        self.pairs = pairs if trading else []
        self.trading, self.adaptive = trading, adaptive
        self.H, self.B = hours, base_mva
        self.rho_pcc0, self.rho_trade0 = rho_pcc, rho_trade
        self.tol, self.tol_dual, self.tol_objective = tol_pu, tol_dual_pu, tol_objective

    def initialise(self) -> None:
        M, H = len(self.lowers), self.H
        self.R = np.array([r.export_pu for r in self.initial])
        self.s = np.zeros((M, M, H))
        self.mu = np.zeros((M, M, H))
        self.v = np.zeros((M, H))
        self.z = np.zeros((M, M, H))
        self.w, self.rho = self.rho_pcc0, self.rho_trade0
        if self.warm is not None:
            st = self.warm
            self.R, self.s, self.mu, self.v, self.z = st.R.copy(), st.s.copy(), st.mu.copy(), st.v.copy(), st.z.copy()
            self.w, self.rho = st.w, st.rho
        self.mask = np.ones((M, M, 1)) - np.eye(M)[:, :, None]
        self.changed = False
        self.responses: list[Any] = list(self.initial)
        self.prev_obj = np.nan
        self.upper_response: Any = None

    @property
    def state(self) -> AtcState:
        return AtcState(R=self.R, s=self.s, mu=self.mu, v=self.v, z=self.z, w=self.w, rho=self.rho)

    def solve(self, k: int) -> None:
        M = len(self.lowers)
        self.upper_response = self.upper.respond(self.R, self.v, self.w)
        T = self.upper_response.targets_pu
        self.z_old = self.z
        self.z = agree_trades(self.s, self.mu, self.rho * self.omega, self.pairs)
        a = self.alpha  # over-relaxation: the lower levels see the first block's output mixed with their last
        self.T_hat = a * T + (1 - a) * self.R if a != 1 else T
        self.z_hat = a * self.z + (1 - a) * self.s if a != 1 else self.z
        T, z = self.T_hat, self.z_hat
        responses = []
        for m, agent in enumerate(self.lowers):
            if self.trading:
                others = [n for n in range(M) if n != m]
                responses.append(agent.respond(T[m], self.v[m], self.w, z[m, others], self.mu[m, others], self.rho))
            else:
                responses.append(agent.respond(T[m], self.v[m], self.w))
        self.responses = responses

    def update(self, k: int) -> Row:
        M, B = len(self.lowers), self.B
        T = self.upper_response.targets_pu
        T_hat = self.T_hat
        R_old, self.R = self.R, np.array([r.export_pu for r in self.responses])
        s = np.zeros((M, M, self.H))
        for m, r in enumerate(self.responses):
            for n in range(M):
                if n != m:
                    s[m, n] = r.trade_pu[partner_row(m, n)]
        self.s = s
        mask = self.mask
        r_pcc = T - self.R
        self.v = self.v + 2 * self.w * self.omega * (T_hat - self.R)
        self.mu = self.mu + self.rho * self.omega * (s - self.z_hat) * mask
        self.recip = max((float(np.max(np.abs(s[m, n] + s[n, m]))) for m, n in self.pairs), default=0.0)
        self.pcc = float(np.max(np.abs(r_pcc)))
        self.dual_pcc = float(np.max(np.abs(self.R - R_old)))
        self.dual_trade = float(np.max(np.abs(self.z - self.z_old))) if self.pairs else 0.0
        primal, dual = max(self.pcc, self.recip), max(self.dual_pcc, self.dual_trade)
        obj = sum(r.cost_usd for r in self.responses) + self.upper_response.cost_usd
        self.steady = abs(obj - self.prev_obj) <= self.tol_objective * max(abs(obj), 1.0)
        self.prev_obj = obj
        self.primal, self.dual = primal, dual
        return {"primal_residual": primal * B, "dual_residual": dual * B, "pcc_mismatch_mw": self.pcc * B,
                "reciprocity_mw": self.recip * B, "objective_usd": obj, "rho_pcc": self.w / B**2,
                "rho_trade": self.rho / B**2}

    def converged(self, row: Row) -> bool:
        return self.primal <= self.tol and self.dual <= self.tol_dual and self.steady

    def point(self) -> np.ndarray:
        """The iterate the next solve starts from, (R, s, v, μ), the multipliers over their penalties (pu)."""
        return np.concatenate([self.R.ravel(), self.s.ravel(), (self.v / self._v_scale()).ravel(),
                               (self.mu / self._mu_scale()).ravel()])

    def set_point(self, x: np.ndarray) -> None:
        parts = np.split(x, np.cumsum([self.R.size, self.s.size, self.v.size]))
        self.R, self.s = parts[0].reshape(self.R.shape), parts[1].reshape(self.s.shape)
        self.v = parts[2].reshape(self.v.shape) * self._v_scale()
        self.mu = parts[3].reshape(self.mu.shape) * self._mu_scale() * self.mask

    def map_changed(self) -> bool:
        return self.changed

    def _v_scale(self) -> np.ndarray:
        return np.broadcast_to(2 * self.w * np.asarray(self.omega), self.v.shape)

    def _mu_scale(self) -> np.ndarray:
        return np.broadcast_to(self.rho * np.asarray(self.omega), self.mu.shape)

    def adapt(self, k: int, row: Row) -> None:
        self.changed = False
        if not self.adaptive or k > ADAPT_ITER:
            return
        before = (self.w, self.rho)
        self._adapt()
        self.changed = (self.w, self.rho) != before

    def _adapt(self) -> None:
        if self.pcc > MU * self.dual_pcc:
            self.w *= TAU
        elif self.dual_pcc > MU * self.pcc:
            self.w /= TAU
        if self.pairs:
            if self.recip > MU * self.dual_trade:
                self.rho *= TAU
            elif self.dual_trade > MU * self.recip:
                self.rho /= TAU

    def not_converged(self, row: Row) -> str:
        B = self.B
        return (
            f"the distributed clearing{'' if self.trading else ' without trades'} (ATC + ADMM) did not converge in "
            f"{int(row['iteration'])} iterations: "
            f"primal residual {row['primal_residual']:.2e} MW (PCC mismatch {row['pcc_mismatch_mw']:.2e}, trade "
            f"reciprocity {row['reciprocity_mw']:.2e}), dual residual {row['dual_residual']:.2e} MW, tolerances "
            f"{self.tol * B:.1e} / {self.tol_dual * B:.1e} MW; raise market.coordination.max_iter or tune "
            "rho_pcc_usd_per_mw2h / rho_trade_usd_per_mw2h"
        )


def coordinate(
    upper: UpperLevel,
    lowers: list[LowerLevel],
    pairs: list[tuple[int, int]],
    initial: list[LowerResponse],
    *,
    hours: int,
    base_mva: float,
    rho_pcc: float,
    rho_trade: float,
    tol_pu: float,
    tol_objective: float,
    tol_dual_pu: float | None = None,
    max_iter: int,
    adaptive: bool = True,
    trading: bool = True,
    on_iteration: Callable[[Row], None] | None = None,
    strict: bool = True,
    snapshot_weight: np.ndarray | None = None,
    warm: AtcState | None = None,
    relaxation: float = 1.0,
    anderson: int = 0,
) -> CoordinationResult:
    """Run ATC + ADMM from the lower levels' ``initial`` responses until the residuals reach ``tol_pu``.

    Penalties are in USD per pu² (per hour). ``trading=False`` clears the
    disagreement market: ATC only, the MGs trade with the ADN alone. Raises
    :class:`~adnstudy.errors.NotConvergedError` with the residuals reached when
    ``max_iter`` passes without convergence (``strict=False``: returns the last
    iterate, marked ``converged=False``).
    """
    method = AtcAdmm(upper, lowers, pairs, initial, hours=hours, base_mva=base_mva, rho_pcc=rho_pcc,
                     rho_trade=rho_trade, tol_pu=tol_pu, tol_dual_pu=tol_pu if tol_dual_pu is None else tol_dual_pu,
                     tol_objective=tol_objective, adaptive=adaptive, trading=trading, snapshot_weight=snapshot_weight,
                     warm=warm, relaxation=relaxation)
    driver = Anderson(method, memory=anderson) if anderson else method
    loop = iterate(driver, max_iter=max_iter, on_iteration=on_iteration, strict=strict)
    return CoordinationResult(
        responses=method.responses, upper=method.upper_response, agreed_pu=method.z,
        objective_usd=loop.history[-1]["objective_usd"], history=loop.history, iterations=loop.iterations,
        seconds=loop.seconds, converged=loop.converged, message=loop.message, state=method.state,
    )

