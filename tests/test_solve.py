"""The solve layer on its own: named families, the conic helper's settings and typed failures, the loop."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

from adnstudy.errors import InfeasibleError, NotConvergedError, SolverFailedError
from adnstudy.formulation.families import Families
from adnstudy.solve.conic import CLARABEL_BASE, NODE, ConicSettings, solve_conic
from adnstudy.solve.iterate import iterate


def test_families_drop_by_name() -> None:
    x = cp.Variable(2)
    fam = Families()
    fam.add("bounds", x >= 0, x <= 1)
    fam.add("demand", cp.sum(x) >= 3)  # cannot be met within the bounds
    objective = cp.Minimize(cp.sum(x))
    with pytest.raises(InfeasibleError) as err:
        solve_conic(fam.problem(objective), what="toy")
    assert err.value.status in ("infeasible", "infeasible_inaccurate")
    solve_conic(fam.problem(objective, drop=["bounds"]), what="toy without bounds")
    assert x.value.sum() == pytest.approx(3.0, abs=1e-6)
    with pytest.raises(KeyError, match="no_such"):
        fam.problem(objective, drop=["no_such"])


def test_every_attempt_gives_clarabel_its_full_settings_with_the_user_on_top() -> None:
    """CVXPY keeps Clarabel's solver object between solves: every attempt names every setting a retry changes."""
    attempts = list(NODE.with_user({"max_iter": 77}).attempts())
    assert len(attempts) == 6
    for a in attempts:
        assert set(CLARABEL_BASE) <= set(a) and a["max_iter"] == 77
    first, refined, *retries = attempts
    assert first["tol_gap_rel"] == 1e-5 and first["equilibrate_enable"] is True
    assert first["iterative_refinement_enable"] is False
    # a failure first brings the iterative refinement back, for that and every later retry
    assert refined["iterative_refinement_enable"] is True and refined["tol_gap_rel"] == 1e-5
    assert all(r["iterative_refinement_enable"] is True for r in retries)
    assert retries[0]["equilibrate_enable"] is False and retries[0]["tol_gap_rel"] == 1e-5
    assert [r["static_regularization_constant"] for r in retries] == [1e-8, 1e-7, 1e-7, 1e-6]
    assert all(r["tol_gap_rel"] == pytest.approx(1e-4) for r in retries[1:])
    # the user's options win over the profile and over the retries
    user = list(ConicSettings(user={"equilibrate_enable": False}).attempts())
    assert all(a["equilibrate_enable"] is False for a in user)


def test_a_limit_is_a_typed_failure_with_its_status() -> None:
    x = cp.Variable(20)
    problem = cp.Problem(cp.Minimize(cp.sum_squares(x - np.arange(20))), [cp.norm(x, 1) <= 5])
    with pytest.raises(SolverFailedError) as err:
        solve_conic(problem, ConicSettings(user={"max_iter": 1}), what="capped")
    assert err.value.status == "user_limit" and "capped: solver status 'user_limit'" in str(err.value)


class Halving:
    """A toy method for the loop: x ← x/2, converged when x < tol."""

    def __init__(self, tol: float) -> None:
        self.tol, self.adapted = tol, 0

    def initialise(self) -> None:
        self.x = 1.0

    def solve(self, k: int) -> None:
        self.x /= 2

    def update(self, k: int) -> dict[str, float]:
        return {"primal_residual": self.x}

    def converged(self, row: dict[str, float]) -> bool:
        return row["primal_residual"] < self.tol

    def adapt(self, k: int, row: dict[str, float]) -> None:
        self.adapted += 1

    def not_converged(self, row: dict[str, float]) -> str:
        return f"still {row['primal_residual']:g} after {int(row['iteration'])} iterations"


def test_the_loop_stops_when_converged_and_reports_its_history() -> None:
    method = Halving(1e-3)
    loop = iterate(method, max_iter=50)
    assert loop.iterations == 10  # 2^-10 < 1e-3 <= 2^-9
    assert [r["iteration"] for r in loop.history] == list(range(1, 11))
    assert method.adapted == 9  # adapted after every iteration but the last
    assert all(r["seconds"] >= 0 for r in loop.history)


def test_the_loop_raises_with_the_history_at_its_limit() -> None:
    with pytest.raises(NotConvergedError, match="still 0.125 after 3 iterations") as err:
        iterate(Halving(1e-9), max_iter=3)
    assert len(err.value.history) == 3
