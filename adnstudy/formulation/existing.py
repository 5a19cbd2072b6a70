"""Existing generation (``Feeder.generators``) as one block over (unit × snapshot).

For unit g with available power a_gs = availability_gs · p_mw_g / B (per unit) in snapshot s::

    p_gs = a_gs                 (non-curtailable: must-take)        family existing.must_take
    0 ≤ p_gs ≤ a_gs             (curtailable)                       family existing.availability
    q_gs = (q_mvar_g / p_mw_g) · p_gs                                (an expression of p: no family)

Each family is one matrix expression over every unit and snapshot, masked by
the units it concerns; :func:`~adnstudy.formulation.distflow.at_buses` sums the
units' injections at their buses. The block adds no cost: the units are sunk
(their capital is spent, their running cost is not the operator's); their
energy is worth what it saves, the power the substation then does not import.
Planning does not credit them for islanding (reliability): their inverters are
not assumed to form or hold an island.
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from adnstudy.formulation.distflow import at_buses
from adnstudy.formulation.families import Families


@dataclass(frozen=True)
class ExistingUnits:
    """Existing units as arrays: their bus positions, available power (pu, unit × snapshot) and rules."""

    pos: np.ndarray  # bus position per unit
    available: np.ndarray  # unit × snapshot, pu of the model's power base
    curtailable: np.ndarray  # bool per unit
    q_per_p: np.ndarray  # q_mvar / p_mw per unit (the power factor it keeps)

    @property
    def n(self) -> int:
        return len(self.pos)

    def select(self, snapshots: slice | np.ndarray) -> ExistingUnits:
        """The same units over some snapshots (one day of the typical days)."""
        return ExistingUnits(self.pos, self.available[:, snapshots], self.curtailable, self.q_per_p)


def existing_units(generators, availability: np.ndarray, positions: np.ndarray, base_mva: float) -> ExistingUnits:
    """Units of ``Feeder.generators`` with their availability (unit × snapshot, per unit of ``p_mw``)."""
    p_mw = generators["p_mw"].to_numpy(dtype=float)
    q_per_p = np.divide(generators["q_mvar"].to_numpy(dtype=float), p_mw, out=np.zeros_like(p_mw), where=p_mw > 0)
    return ExistingUnits(pos=np.asarray(positions, dtype=int),
                         available=availability.reshape(len(p_mw), -1) * (p_mw / base_mva)[:, None],
                         curtailable=generators["curtailable"].to_numpy(dtype=bool), q_per_p=q_per_p)


@dataclass
class ExistingBlock:
    p: cp.Variable  # unit × snapshot, pu
    q: cp.Expression
    p_bus: cp.Expression  # bus × snapshot injections
    q_bus: cp.Expression
    families: Families


def existing_generation_block(units: ExistingUnits, n_bus: int, name: str = "existing") -> ExistingBlock:
    """The units' output: must-take at availability, or curtailable below it; q at the unit's power factor."""
    n, S = units.available.shape
    p = cp.Variable((n, S), name=f"p_{name}", nonneg=True)
    fam = Families()
    fixed = np.flatnonzero(~units.curtailable)
    free = np.flatnonzero(units.curtailable)
    if len(fixed):
        fam.add(f"{name}.must_take", p[fixed] == units.available[fixed])
    if len(free):
        fam.add(f"{name}.availability", p[free] <= units.available[free])
    q = sp.diags(units.q_per_p) @ p
    to_bus = at_buses(n_bus, units.pos)
    return ExistingBlock(p=p, q=q, p_bus=to_bus @ p, q_bus=to_bus @ q, families=fam)
