"""Re-solving a parametrised conic problem on cached matrices: Clarabel updated in place.

A CVXPY problem written with ``cp.Parameter``s (DPP) is compiled once to its
conic form ``min ½x'Px + q'x s.t. Ax + s = b, s ∈ K``; every data term is
affine in the parameters (CVXPY's ``ParamConeProg``). :class:`CompiledProblem`
keeps that form and one Clarabel solver: a re-solve maps the parameters' new
values to the terms that depend on them (found once) and hands Clarabel only
those, as values on the sparsity pattern it was set up with (no
canonicalisation, no new KKT structure). The point is written back to the
problem's variables (and the constraints' duals) as ``problem.solve`` would.

Every solve goes through the retry policy and typed errors of
:func:`adnstudy.solve.conic.solve_conic` (:func:`~adnstudy.solve.conic.solve_with_policy`);
Clarabel's figures of the last solve stay readable by
:func:`~adnstudy.solve.conic.clarabel_accuracy`. A retry with other settings
sets up a fresh solver; the cached one is kept for the first attempt's settings.
"""

from __future__ import annotations

from typing import Any

import clarabel
import cvxpy as cp
import numpy as np
import scipy.sparse as sp
from cvxpy import settings as cvx_settings
from cvxpy.reductions.solvers.conic_solvers.clarabel_conif import CLARABEL, dims_to_solver_cones
from cvxpy.reductions.solvers.conic_solvers.conic_solver import ConicSolver

from adnstudy.solve.conic import DEFAULT, ConicSettings, solve_with_policy

_STATUS = CLARABEL.STATUS_MAP
_KEY = "CLARABEL"  # where CVXPY (and clarabel_accuracy) look for a problem's Clarabel solver


def _depends(tensor: sp.spmatrix | None) -> bool:
    """Does a parameter tensor (rows: data entries, columns: parameters then the constant) use a parameter?"""
    return tensor is not None and tensor.shape[1] > 1 and sp.csc_matrix(tensor)[:, :-1].nnz > 0


class CompiledProblem:
    """A parametrised CVXPY problem, compiled once, re-solved by Clarabel on cached matrices.

    ``solve()`` solves with the parameters' current values and returns the status
    (one of :data:`~adnstudy.solve.conic.OK`) or raises as ``solve_conic`` does.
    """

    def __init__(self, problem: cp.Problem, settings: ConicSettings = DEFAULT, what: str = "the problem",
                 hint: str = "") -> None:
        self.problem, self.settings, self.what, self.hint = problem, settings, what, hint
        data, self.chain, self.inverse = problem.get_problem_data(cp.CLARABEL, enforce_dpp=True)
        self.prog = data[cvx_settings.PARAM_PROB]
        last = self.inverse[-1]  # the solver's inverse data (a dict inside CVXPY's SolverInverseData)
        self.solver_data: dict[str, Any] = getattr(last, "inverse_data", last)
        if getattr(last, "solver_options", {}) is None:  # as problem.solve leaves it (read by CLARABEL.invert)
            last.solver_options = {}
        self.cones = dims_to_solver_cones(self.solver_data[ConicSolver.DIMS])
        self.q_varies = _depends(self.prog.q)
        self.P_varies = _depends(self.prog.P)
        self.A_varies = _depends(self.prog.A)
        self.P, self.q, self.A, self.b, self.offset = self._data()
        self.solver: Any = None
        self.solver_options: dict[str, Any] | None = None

    def _data(self) -> tuple[sp.csc_matrix, np.ndarray, sp.csc_matrix, np.ndarray, float]:
        """The conic data at the parameters' values, on the patterns fixed at compilation (explicit zeros kept)."""
        if self.prog.P is not None:
            P, q, d, A, b = self.prog.apply_parameters(keep_zeros=True, quad_obj=True)
            P = sp.triu(P, format="csc")
        else:
            q, d, A, b = self.prog.apply_parameters(keep_zeros=True)
            P = sp.csc_matrix((q.size, q.size))
        A = sp.csc_matrix(-A)
        return P, np.asarray(q, float), A, np.asarray(b, float), float(d)

    def _updated(self) -> dict[str, Any]:
        """The terms that changed with the parameters, as Clarabel's update takes them (values on the patterns)."""
        P, q, A, b, d = self._data()
        self.offset = d
        out: dict[str, Any] = {"q": q, "b": b}
        if self.P_varies:
            if P.nnz != self.P.nnz or not np.array_equal(P.indices, self.P.indices):
                raise ValueError("the quadratic term's pattern changed")
            out["P"] = P.data
        if self.A_varies:
            if A.nnz != self.A.nnz or not np.array_equal(A.indices, self.A.indices):
                raise ValueError("the constraint matrix's pattern changed")
            out["A"] = A.data
        self.P, self.q, self.A, self.b = P, q, A, b
        return out

    def _settings(self, options: dict[str, Any]) -> Any:
        return CLARABEL.parse_solver_opts(False, options)

    def _run(self, options: dict[str, Any]) -> str:
        """One attempt with these settings: the cached solver updated in place when they are its own."""
        try:
            if self.solver is not None and options == self.solver_options and self.solver.is_data_update_allowed():
                self.solver.update(**self._updated())
            else:
                self._updated()
                self.solver = clarabel.DefaultSolver(self.P, self.q, self.A, self.b, self.cones,
                                                     self._settings(options))
                self.solver_options = dict(options)
            result = self.solver.solve()
        except (ValueError, RuntimeError, TypeError) as exc:  # pattern changed or Clarabel refused the data
            self.solver, self.solver_options = None, None
            raise cp.SolverError(str(exc)) from exc
        self.problem._solver_cache[_KEY] = self.solver
        self.solver_data[cvx_settings.OFFSET] = self.offset
        self.problem.unpack_results(result, self.chain, self.inverse)
        return self.problem.status

    def solve(self, what: str | None = None, hint: str | None = None) -> str:
        return solve_with_policy(self._run, self.problem, self.settings, what or self.what,
                                 self.hint if hint is None else hint)
