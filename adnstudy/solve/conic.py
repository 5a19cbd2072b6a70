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

**Accuracy of references.** Clarabel ends "AlmostSolved" (CVXPY's
``optimal_inaccurate``) when it stalls short of the tolerances it was asked for
but within its reduced ones (a relative gap of 5e-5, residuals of 1e-4): a
point of unknown quality. The agents' subproblems and the search's nodes take
it (their own checks judge the point). A *reference* profile (the plan's final
point, the market's centralised solves) states instead the accuracy its use
needs (``accept_gap_rel``): a stalled point is ``optimal`` only if Clarabel's
own figures — relative duality gap, primal and dual residuals — meet it (and
the residual tolerance asked for); otherwise the next attempt is tried, and if
none meets it the best point is kept and reported ``optimal_inaccurate``.
:func:`clarabel_accuracy` reads those figures for the manifest.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import cvxpy as cp

from adnstudy.errors import InfeasibleError, SolverFailedError

#: Statuses whose point is used (for a reference profile, ``optimal_inaccurate`` means: not within
#: the accuracy it needs, after every attempt; its callers warn and record it).
OK = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)
INFEASIBLE = (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE)

#: Clarabel's defaults for every setting a profile or a retry changes (given explicitly; see above).
CLARABEL_BASE: dict[str, Any] = {
    "equilibrate_enable": True,
    "tol_gap_abs": 1e-8,
    "tol_gap_rel": 1e-8,
    "tol_feas": 1e-8,
    "static_regularization_constant": 1e-8,
    "iterative_refinement_enable": True,
    "iterative_refinement_max_iter": 10,
    "iterative_refinement_stop_ratio": 5.0,
    "iterative_refinement_reltol": 1e-13,
}
#: Tried in turn after a numerical failure (Clarabel's InsufficientProgress, seen on the ADN's ATC
#: subproblem once the penalty has grown large) and, for a reference profile, after a point short of
#: its accuracy: with equilibration as Clarabel's default has it, without it; with 10x the static
#: regularisation and a duality gap ten times looser than the profile's; the same without
#: equilibration; with 100x the regularisation. On the 69-bus feeder with 10 MGs a subproblem that
#: failed the first three solved with the fourth (relative objective within 1e-5 of the third's).
#: An attempt identical to an earlier one is skipped.
RETRIES: tuple[str, ...] = ("no_equilibration", "regularised", "regularised_no_equilibration", "strongly_regularised")
#: Clarabel's iterative refinement of each KKT solve, run to the end: with equilibration off it keeps
#: the last interior-point steps accurate enough to reach a 1e-8 gap on the dispatch references.
REFINED: dict[str, Any] = {
    "iterative_refinement_max_iter": 50,
    "iterative_refinement_stop_ratio": 1.0,
    "iterative_refinement_reltol": 1e-15,
}


@dataclass(frozen=True)
class ConicSettings:
    """Clarabel settings for one kind of solve, plus the user's options from the case.

    ``accept_gap_rel`` makes the profile a reference's (module docstring): the
    relative duality gap, by Clarabel's own figures, a point must reach to be
    reported ``optimal`` when Clarabel stops short of the gap asked for.
    """

    options: Mapping[str, Any] = field(default_factory=dict)
    user: Mapping[str, Any] = field(default_factory=dict)
    retries: tuple[str, ...] = RETRIES
    accept_gap_rel: float | None = None

    def with_user(self, user: Mapping[str, Any]) -> ConicSettings:
        return replace(self, user=dict(user))

    def tighter(self, gap_rel: float) -> ConicSettings:
        """The profile asking Clarabel for a relative duality gap of at most ``gap_rel`` (the decomposition's
        blocks: their values must be an order finer than the gap they prove)."""
        current = {**CLARABEL_BASE, **self.options}["tol_gap_rel"]
        return replace(self, options={**self.options, "tol_gap_rel": min(current, gap_rel)})

    def attempts(self) -> Iterator[dict[str, Any]]:
        """The full Clarabel settings of the first try and of each retry, the user's options on top."""
        first = {**CLARABEL_BASE, **self.options}
        looser = {"tol_gap_abs": 10 * first["tol_gap_abs"], "tol_gap_rel": 10 * first["tol_gap_rel"]}
        seen: list[dict[str, Any]] = []
        for kind in ("first", *self.retries):
            if kind == "first":
                attempt = first
            elif kind == "refined":  # iterative refinement back on, for this and every later retry
                first = {**first, "iterative_refinement_enable": True}
                attempt = first
            elif kind == "equilibrated":
                attempt = {**first, "equilibrate_enable": True}
            elif kind == "no_equilibration":
                attempt = {**first, "equilibrate_enable": False}
            elif kind == "regularised":
                attempt = {**first, **looser, "static_regularization_constant": 1e-7}
            elif kind == "regularised_no_equilibration":
                attempt = {**first, **looser, "static_regularization_constant": 1e-7, "equilibrate_enable": False}
            elif kind == "strongly_regularised":
                attempt = {**first, **looser, "static_regularization_constant": 1e-6}
            else:
                raise ValueError(f"unknown retry {kind!r}")
            attempt = {**attempt, **self.user}
            if attempt not in seen:
                seen.append(attempt)
                yield attempt


#: The market's agent subproblems and diagnosis: Clarabel's default tolerances.
DEFAULT = ConicSettings()
#: The market's agent subproblems inside the distributed loops (ATC + ADMM): Clarabel's default tolerances
#: without its iterative refinement of each KKT solve, which took half of the ADN's solve time on the 33-bus
#: feeder (19 interior-point iterations either way; the ADN's PCC targets moved by 3e-7 MW, against a 5e-5 MW
#: tolerance of the loop). A failure is retried with the refinement back on, then as DEFAULT's retries.
AGENT = ConicSettings({"iterative_refinement_enable": False}, retries=("refined", *RETRIES))
#: Branch-and-bound nodes and the plan's day blocks: a loose relative gap is enough to bound, branch and cut;
#: without iterative refinement, as AGENT (a 33-bus day block 57 -> 36 ms and the whole K = 8 relaxation
#: 1.33 -> 0.63 s, the same 18 interior-point iterations, objectives within 1e-8), and residuals of 1e-7
#: (15 iterations instead of 18: 33 -> 29 ms a block).
NODE = ConicSettings({"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-5, "tol_feas": 1e-7, "iterative_refinement_enable": False},
                     retries=("refined", *RETRIES))
#: A final operating point: losses are a small part of the objective, so a loose duality gap
#: would leave slack in the cones (and voltages off the AC solution). Clarabel is asked for 1e-9
#: and on the plan stalls near 1e-7 (the 33-bus plan: 1.1e-7, residuals 1e-10); 1e-6 is ~1 USD a
#: year on the shipped plan, and the AC check of every hour judges the cones.
FINAL = ConicSettings({"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-9, "tol_feas": 1e-9}, accept_gap_rel=1e-6)
#: The market's centralised references: Clarabel's default tolerances without equilibration and with
#: full iterative refinement (with equilibration it stalls at a relative gap of 1e-7 to 3e-6 on 15 of the
#: 16 reference solves of the shipped 33-bus case, all 16 of the 69-bus one; like this it reaches 1e-8 on
#: most and 1e-7 on all). The distributed solution is judged against it at 1e-3.
REFERENCE = ConicSettings({"equilibrate_enable": False, **REFINED},
                          retries=("equilibrated", *RETRIES), accept_gap_rel=1e-7)


@dataclass(frozen=True)
class Accuracy:
    """What Clarabel reports of its last point: duality gap and residuals (relative), iterations."""

    gap_rel: float
    gap_abs: float
    res_primal: float
    res_dual: float
    iterations: int

    def meets(self, gap_rel: float, tol_feas: float) -> bool:
        return self.gap_rel <= gap_rel and self.res_primal <= tol_feas and self.res_dual <= tol_feas

    def as_dict(self) -> dict[str, float | int]:
        return {"gap_rel": self.gap_rel, "gap_abs": self.gap_abs, "res_primal": self.res_primal,
                "res_dual": self.res_dual, "iterations": self.iterations}


def release_stale_solver(problem: cp.Problem) -> None:
    """Drop the Clarabel object a problem keeps if CVXPY cannot update it in place (Clarabel's presolve is on).

    CVXPY would then build the next one while the kept one still holds its workspace (the KKT matrix and
    its factor): twice the memory of a solve on a large model, for nothing (the kept object is not used).
    """
    cache = getattr(problem, "_solver_cache", None)
    solver = cache.get("CLARABEL") if cache else None
    if solver is not None and not solver.is_data_update_allowed():
        del cache["CLARABEL"]


def clarabel_accuracy(problem: cp.Problem) -> Accuracy | None:
    """Clarabel's figures of the problem's last solve (None if CVXPY kept no Clarabel solver).

    CVXPY keeps the Clarabel solver of a problem in ``problem._solver_cache``
    (to warm-start the next solve); its ``get_info()`` holds the figures of the
    point CVXPY returned.
    """
    solver = getattr(problem, "_solver_cache", {}).get("CLARABEL")
    if solver is None or not hasattr(solver, "get_info"):
        return None
    info = solver.get_info()
    return Accuracy(gap_rel=float(info.gap_rel), gap_abs=float(info.gap_abs), res_primal=float(info.res_primal),
                    res_dual=float(info.res_dual), iterations=int(info.iterations))


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
    With a reference profile, a point short of its accuracy is retried too
    (module docstring); the problem holds the point whose status is returned.
    """

    def run(options: dict[str, Any]) -> str:
        release_stale_solver(problem)
        problem.solve(solver="CLARABEL", **options)
        return problem.status

    return solve_with_policy(run, problem, settings, what, hint, quiet=quiet)


def solve_with_policy(run: Callable[[dict[str, Any]], str], problem: cp.Problem, settings: ConicSettings,
                      what: str, hint: str = "", *, quiet: bool = True) -> str:
    """The retry policy and typed errors of :func:`solve_conic` around ``run`` (one attempt with the given
    Clarabel settings, leaving its point in ``problem`` and returning its status; a numerical failure raises
    ``cp.SolverError``). :mod:`adnstudy.solve.compiled` runs its attempts on cached matrices through it."""
    with quiet_solver() if quiet else _nothing():
        attempts = list(settings.attempts())
        short: list[tuple[float, int]] = []  # (relative gap, attempt) of points short of the accuracy
        held = -1  # the attempt whose point the problem holds
        error: SolverFailedError | None = None
        for n, options in enumerate(attempts):
            try:
                status = run(options)
            except cp.SolverError as exc:
                held = -1
                error = SolverFailedError(f"{what}: the solver failed ({exc})", status="solver_error")
                continue
            held = n
            if status == cp.OPTIMAL or (status == cp.OPTIMAL_INACCURATE and settings.accept_gap_rel is None):
                return status
            if status != cp.OPTIMAL_INACCURATE:
                tail = f"; {hint}" if hint else ""
                kind = InfeasibleError if status in INFEASIBLE else SolverFailedError
                raise kind(f"{what}: solver status '{status}'{tail}", status=status)
            acc = clarabel_accuracy(problem)
            if acc is not None and acc.meets(settings.accept_gap_rel, options["tol_feas"]):
                return cp.OPTIMAL
            short.append((acc.gap_rel if acc is not None else math.inf, n))
        if not short:
            assert error is not None
            raise error
        best = min(short)[1]
        if best != held:  # put the best of the points back (a solve is deterministic)
            run(attempts[best])
        return cp.OPTIMAL_INACCURATE


@contextmanager
def _nothing() -> Iterator[None]:
    yield
