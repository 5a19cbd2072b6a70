"""One way to solve a conic problem: Clarabel with stated settings, one retry policy, typed failures.

Every continuous solve of the project goes through :func:`solve_conic` — the
branch-and-bound nodes, the plan's final operating point, the market's agent
subproblems and centralised references, the diagnosis of infeasible cases. A
*profile* (:class:`ConicSettings`) names the tolerances a use needs; the case's
``solver.options`` are laid over every profile, so what the user sets is what
Clarabel gets.

Clarabel's settings are given in full on every call: CVXPY keeps a solved
problem's Clarabel object and updates it in place on the next solve (warm
start), so a setting one call changed would otherwise stay for the next.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import cvxpy as cp

from adnstudy.errors import InfeasibleError, SolverFailedError

#: Statuses whose point is used. Clarabel's "AlmostSolved" is CVXPY's optimal_inaccurate: on these
#: models it stops one step short with a relative gap of 1e-8 to 1e-6, far below what any caller needs
#: (the AC check and the consistency checks judge the point afterwards).
OK = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)
INFEASIBLE = (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE)

#: Clarabel's defaults for every setting a profile or a retry changes (given explicitly; see above).
CLARABEL_BASE: dict[str, Any] = {
    "equilibrate_enable": True,
    "tol_gap_abs": 1e-8,
    "tol_gap_rel": 1e-8,
    "tol_feas": 1e-8,
    "static_regularization_constant": 1e-8,
}
#: Tried in turn after a numerical failure (Clarabel's InsufficientProgress, seen on the ADN's ATC
#: subproblem once the penalty has grown large): without equilibration; with 10x the static
#: regularisation and a duality gap ten times looser than the profile's; the same without
#: equilibration; with 100x the regularisation. On the 69-bus feeder with 10 MGs a subproblem that
#: failed the first three solved with the fourth (relative objective within 1e-5 of the third's).
RETRIES: tuple[str, ...] = ("no_equilibration", "regularised", "regularised_no_equilibration", "strongly_regularised")


@dataclass(frozen=True)
class ConicSettings:
    """Clarabel settings for one kind of solve, plus the user's options from the case."""

    options: Mapping[str, Any] = field(default_factory=dict)
    user: Mapping[str, Any] = field(default_factory=dict)
    retries: tuple[str, ...] = RETRIES

    def with_user(self, user: Mapping[str, Any]) -> ConicSettings:
        return replace(self, user=dict(user))

    def attempts(self) -> Iterator[dict[str, Any]]:
        """The full Clarabel settings of the first try and of each retry, the user's options on top."""
        first = {**CLARABEL_BASE, **self.options}
        yield {**first, **self.user}
        looser = {"tol_gap_abs": 10 * first["tol_gap_abs"], "tol_gap_rel": 10 * first["tol_gap_rel"]}
        for kind in self.retries:
            if kind == "no_equilibration":
                yield {**first, "equilibrate_enable": False, **self.user}
            elif kind == "regularised":
                yield {**first, **looser, "static_regularization_constant": 1e-7, **self.user}
            elif kind == "regularised_no_equilibration":
                yield {**first, **looser, "static_regularization_constant": 1e-7, "equilibrate_enable": False,
                       **self.user}
            elif kind == "strongly_regularised":
                yield {**first, **looser, "static_regularization_constant": 1e-6, **self.user}
            else:
                raise ValueError(f"unknown retry {kind!r}")


#: The market's subproblems and references, and diagnosis: Clarabel's default tolerances.
DEFAULT = ConicSettings()
#: Branch-and-bound nodes: a loose relative gap is enough to bound and branch.
NODE = ConicSettings({"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-5})
#: A final operating point: losses are a small part of the objective, so a loose duality gap
#: would leave slack in the cones (and voltages off the AC solution).
FINAL = ConicSettings({"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-9, "tol_feas": 1e-9})


@contextmanager
def quiet_solver() -> Iterator[None]:
    """Silence CVXPY's "Solution may be inaccurate" warning (the status is handled) for a block.

    ``warnings.catch_warnings`` swaps process-wide state, so callers that solve in
    worker threads enter this once, in the thread that owns the workers.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Solution may be inaccurate")
        warnings.filterwarnings("ignore", category=RuntimeWarning)  # values read from a failed solve
        yield


def solve_conic(
    problem: cp.Problem, settings: ConicSettings = DEFAULT, what: str = "the problem", *, hint: str = "",
    quiet: bool = True,
) -> str:
    """Solve with Clarabel; return the status (one of :data:`OK`) or raise a typed error.

    :class:`InfeasibleError` for an infeasible status, :class:`SolverFailedError`
    for anything else that gives no point (after the retries, for a numerical
    failure). Messages read ``"<what>: solver status '<status>'; <hint>"``.
    """
    with quiet_solver() if quiet else _nothing():
        attempts = list(settings.attempts())
        for n, options in enumerate(attempts):
            try:
                problem.solve(solver="CLARABEL", **options)
                break
            except cp.SolverError as exc:
                if n == len(attempts) - 1:
                    raise SolverFailedError(f"{what}: the solver failed ({exc})", status="solver_error") from None
    status = problem.status
    if status in OK:
        return status
    tail = f"; {hint}" if hint else ""
    error = InfeasibleError if status in INFEASIBLE else SolverFailedError
    raise error(f"{what}: solver status '{status}'{tail}", status=status)


@contextmanager
def _nothing() -> Iterator[None]:
    yield
