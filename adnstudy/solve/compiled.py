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
from cvxpy.cvxcore.python import canonInterface
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
        self._q_tensor = sp.csr_matrix(self.prog.q)  # (variables + 1) × (parameters + 1)
        self.q_varies = _depends(self.prog.q)
        self.P_varies = _depends(self.prog.P)
        self.A_varies = _depends(self.prog.A)
        self._data(full=True)
        self.solver: Any = None
        self.solver_options: dict[str, Any] | None = None

    def _data(self, full: bool = False) -> None:
        """The conic data at the parameters' current values, on the patterns fixed at compilation (explicit
        zeros kept); only the terms that depend on a parameter unless ``full``."""
        prog = self.prog
        theta = canonInterface.get_parameter_vector(
            prog.total_param_size, prog.param_id_to_col, prog.param_id_to_size,
            lambda i: np.asarray(prog.id_to_param[i].value))
        # [q; d] is the q tensor times (parameters, 1): one sparse product
        qd = self._q_tensor @ theta if theta is not None else np.asarray(self._q_tensor.sum(axis=1)).ravel()
        self.q, self.offset = np.asarray(qd[:-1], dtype=float), float(qd[-1])
        if full or self.A_varies:
            prog.reduced_A.cache(True)
            A, b = prog.reduced_A.get_matrix_from_tensor(theta, with_offset=True)
            self.A, self.b = sp.csc_matrix(-A), np.atleast_1d(np.asarray(b, float)).ravel()
        if prog.P is None:
            if full:
                self.P = sp.csc_matrix((prog.x.size, prog.x.size))
        elif full or self.P_varies:
            prog.reduced_P.cache(True)
            P, _ = prog.reduced_P.get_matrix_from_tensor(theta, with_offset=False)
            self.P = sp.triu(P, format="csc")

    def _updated(self) -> dict[str, Any]:
        """The terms that changed with the parameters, as Clarabel's update takes them (values on the patterns)."""
        P, A = self.P, self.A
        self._data()
        out: dict[str, Any] = {"q": self.q}
        if self.P_varies:
            if self.P.nnz != P.nnz or not np.array_equal(self.P.indices, P.indices):
                raise ValueError("the quadratic term's pattern changed")
            out["P"] = self.P.data
        if self.A_varies:
            if self.A.nnz != A.nnz or not np.array_equal(self.A.indices, A.indices):
                raise ValueError("the constraint matrix's pattern changed")
            out["A"], out["b"] = self.A.data, self.b
        return out

    def _settings(self, options: dict[str, Any]) -> Any:
        return CLARABEL.parse_solver_opts(False, options)

    def _run(self, options: dict[str, Any]) -> str:
        """One attempt with these settings: the cached solver updated in place when they are its own."""
        try:
            if self.solver is not None and options == self.solver_options and self.solver.is_data_update_allowed():
                self.solver.update(**self._updated())
            else:
                self._data()
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
