"""Where a constraint family binds in an infeasible model: its elastic re-solve.

Once a diagnosis knows which family makes a model infeasible (dropping it
makes the model feasible, :meth:`Families.problem`), the family's inequalities
are made elastic — each ``g(x) ≤ 0`` becomes ``g(x) ≤ s`` with ``s ≥ 0`` — and
the total slack is minimised with every other family in force. The largest
slack is where the limit binds hardest: the bus and hour of a voltage limit,
the branch and hour of a rating.
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from adnstudy.errors import SolveError
from adnstudy.formulation.families import Families
from adnstudy.solve.conic import DEFAULT, ConicSettings, solve_conic


@dataclass(frozen=True)
class Violation:
    """The largest slack of an elastic family: which of its constraints, which element, how much."""

    constraint: int  # position in the family's list
    index: tuple[int, ...]  # element of that constraint's expression (e.g. (bus, hour))
    amount: float  # in the constraint's own units (g(x) − 0)


def largest_violation(families: Families, family: str, settings: ConicSettings = DEFAULT) -> Violation | None:
    """Minimise the total slack of ``family``'s inequalities, the other families in force; the largest slack.

    None if the elastic model does not solve either (the family is not what
    makes the model infeasible) or nothing is violated.
    """
    cons = families[family]
    slacks = [cp.Variable(c.expr.shape, nonneg=True) for c in cons]
    elastic = [c.expr <= s for c, s in zip(cons, slacks, strict=True)]
    objective = cp.Minimize(sum(cp.sum(s) for s in slacks))
    try:
        solve_conic(cp.Problem(objective, families.constraints(drop=[family]) + elastic), settings,
                    what=f"elastic {family}")
    except SolveError:
        return None
    values = [np.atleast_1d(np.asarray(s.value, dtype=float)) for s in slacks]
    worst = int(np.argmax([v.max() for v in values]))
    index = np.unravel_index(int(np.argmax(values[worst])), values[worst].shape)
    amount = float(values[worst][index])
    if amount <= 0:
        return None
    return Violation(constraint=worst, index=tuple(int(i) for i in index), amount=amount)
