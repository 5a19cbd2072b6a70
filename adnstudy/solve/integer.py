"""What the mixed-integer solvers need from a model: integer blocks and a small protocol.

A model built for branch-and-bound declares its integer decisions as
continuous variables bounded by ``cp.Parameter``s (:class:`IntegerBlock`), so a
node — a set of bounds — is a re-solve of the same compiled problem. Built
``native``, the same decisions are CVXPY boolean/integer variables for a
mixed-integer solver. :class:`MixedIntegerModel` is all the solve layer knows
of a model; the planning model (``problems/plan.py``) implements it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import cvxpy as cp
import numpy as np

from adnstudy.formulation.families import Families


@dataclass
class IntegerBlock:
    """Integer decisions relaxed to [lo, hi] bounds that a branch-and-bound tightens.

    The bound constraints are kept: their duals are the reduced costs that let
    the search fix variables (moving off a bound costs at least the dual).
    """

    var: cp.Variable
    lo: cp.Parameter
    hi: cp.Parameter
    lo0: np.ndarray  # original bounds
    hi0: np.ndarray
    cost: np.ndarray  # objective a unit step costs (branching priority)
    lo_con: cp.Constraint
    hi_con: cp.Constraint

    @property
    def constraints(self) -> list[cp.Constraint]:
        return [self.lo_con, self.hi_con]

    def set_bounds(self, lo: np.ndarray, hi: np.ndarray) -> None:
        self.lo.value = lo
        self.hi.value = hi

    def reduced_costs(self) -> tuple[np.ndarray, np.ndarray]:
        """Duals of the lower and upper bound (≥ 0; 0 where the solver gives none)."""
        out = []
        for con in (self.lo_con, self.hi_con):
            d = con.dual_value
            out.append(np.maximum(np.asarray(d, float), 0.0) if d is not None else np.zeros(self.var.size))
        return out[0], out[1]


def integer_variable(
    n: int, lo0: np.ndarray, hi0: np.ndarray, cost: np.ndarray, name: str, *, native: bool, boolean: bool = False,
) -> tuple[cp.Variable, IntegerBlock | None, list[cp.Constraint]]:
    """An integer decision vector: a CVXPY integer variable (``native``) or a relaxed block.

    Returns the variable, its block (None when native) and its bound constraints.
    """
    lo0, hi0 = np.asarray(lo0, float), np.asarray(hi0, float)
    if native:
        var = cp.Variable(n, name=name, boolean=boolean, integer=not boolean)
        return var, None, [var >= lo0, var <= hi0]
    var = cp.Variable(n, name=name)
    lo = cp.Parameter(n, name=f"{name}_lo", value=lo0)
    hi = cp.Parameter(n, name=f"{name}_hi", value=hi0)
    block = IntegerBlock(var, lo, hi, lo0, hi0, np.asarray(cost, float), var >= lo, var <= hi)
    return var, block, block.constraints


@dataclass(frozen=True)
class Relaxation:
    """A diagnosis step: the families dropped together, and what it means if that makes the model feasible."""

    name: str
    families: tuple[str, ...]
    hint: str


class MixedIntegerModel(Protocol):
    """A model the mixed-integer strategies of :mod:`adnstudy.solve.mip` can solve."""

    problem: cp.Problem
    families: Families
    integers: list[IntegerBlock]  # empty when built native
    #: what the model is, for messages ("the planning model")
    label: str
    #: objective units → USD
    usd_per_unit: float
    #: the families a diagnosis drops, one step at a time, to name what makes the model infeasible
    relaxations: tuple[Relaxation, ...]

    def integer_vars(self) -> list[cp.Variable]:
        """The integer decisions, in the order of :attr:`integers`."""
        ...

    def fix_integers(self, values: list[np.ndarray]) -> None:
        """Fix the integer decisions of a relaxed model (lower = upper bound)."""
        ...

    def rounding_inputs(self) -> list[np.ndarray]:
        """What :meth:`round` reads from a solved relaxation (copied right after the solve)."""
        ...

    def round(self, inputs: list[np.ndarray]) -> list[list[np.ndarray]]:
        """Integer patterns from a relaxed solution, most promising first."""
        ...

    def settle_integers(self) -> list[np.ndarray] | None:
        """After the final solve: integer values a model rule prefers to the search's, or None."""
        ...

    def no_integer_solution(self, detail: str) -> str:
        """Why the relaxation is feasible but no integer point is (the model's likely cause)."""
        ...
