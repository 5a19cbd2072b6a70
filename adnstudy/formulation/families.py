"""Named constraint families: how a model says what its constraints are.

A block adds its constraints under family names (``network.voltage_limits``,
``storage.energy_balance``); a model's problem is the union of its families.
Diagnosis drops families by name (:meth:`Families.problem`) to find which one
makes a case infeasible, on the same variables — no flag threaded through the
builders.
"""

from __future__ import annotations

from collections.abc import Iterable

import cvxpy as cp


class Families(dict[str, list[cp.Constraint]]):
    """Family name → its constraints, in the order they were added."""

    def add(self, name: str, *constraints: cp.Constraint) -> None:
        self.setdefault(name, []).extend(constraints)

    def update_from(self, *others: Families | None) -> Families:
        for other in others:
            for name, cons in (other or {}).items():
                self.add(name, *cons)
        return self

    def constraints(self, drop: Iterable[str] = ()) -> list[cp.Constraint]:
        dropped = set(drop)
        unknown = dropped - set(self)
        if unknown:
            raise KeyError(f"no constraint families {sorted(unknown)} (have {sorted(self)})")
        return [c for name, cons in self.items() if name not in dropped for c in cons]

    def problem(self, objective: cp.Minimize, drop: Iterable[str] = ()) -> cp.Problem:
        """The problem of these families, without those named in ``drop``."""
        return cp.Problem(objective, self.constraints(drop))
