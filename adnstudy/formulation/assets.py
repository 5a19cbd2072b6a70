"""Operation of the assets: renewables, storage and controllable units, over (unit × snapshot).

Each block takes its capacities as expressions — numbers for an asset that
exists, CVXPY variables (or affine expressions of them) for one being sized —
so the same block serves dispatch, planning and co-planning. Everything is per
unit of the model's power base; hours are snapshots of typical days, ``hours``
snapshots per day.

* :func:`renewable_block`: 0 ≤ p ≤ a ⊙ c (availability per unit of capacity),
  and optionally |q| ≤ tan φ · p (a minimum power factor). Families
  ``<name>.availability``, ``<name>.reactive_limits``.
* :func:`storage_block`: 0 ≤ ch, dis ≤ P; soc_min E ≤ e ≤ soc_max E;
  e_h = e_{h−1} + η_c ch_h − dis_h / η_d, cyclic within each day (the hour
  before the first is the day's last); optionally e at the end of each day
  = soc_initial · E (which, with the cycle, is also the start). Families
  ``<name>.power``, ``<name>.energy_limits``, ``<name>.energy_balance``,
  ``<name>.initial``.
* :func:`generator_block`: p_min ≤ g ≤ p_max with cost a (B g)² + b B g + c
  (USD/h with g in per unit on base B). Family ``<name>.limits``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from adnstudy.formulation.families import Families

Capacity = float | np.ndarray | cp.Expression


def _column(x: Capacity, rows: int) -> cp.Expression | np.ndarray:
    """A per-unit capacity as a (rows × 1) column that broadcasts over snapshots (a unit × snapshot matrix as it
    is: one copy of the capacity per snapshot, whose duals price it snapshot by snapshot)."""
    if isinstance(x, cp.Expression) and x.ndim == 2:
        return x
    if isinstance(x, cp.Expression):
        return cp.reshape(x, (rows, 1), order="F")
    return np.broadcast_to(np.asarray(x, dtype=float), (rows,)).reshape(rows, 1)


@dataclass
class Renewables:
    p: cp.Variable  # unit × snapshot, output used
    q: cp.Variable | None  # reactive output (None: unity power factor)
    families: Families


def renewable_block(
    avail: np.ndarray, capacity: Capacity, *, tan_phi: np.ndarray | None = None, name: str = "res"
) -> Renewables:
    """Curtailable output of units with availability ``avail`` (unit × snapshot, per unit of capacity)."""
    n, S = avail.shape
    p = cp.Variable((n, S), name=f"p_{name}", nonneg=True)
    fam = Families()
    fam.add(f"{name}.availability", p <= cp.multiply(avail, _column(capacity, n)))
    q = None
    if tan_phi is not None:
        q = cp.Variable((n, S), name=f"q_{name}")
        t = np.asarray(tan_phi, dtype=float).reshape(n, 1)
        fam.add(f"{name}.reactive_limits", q <= cp.multiply(t, p), q >= -cp.multiply(t, p))
    return Renewables(p=p, q=q, families=fam)


@dataclass
class Storage:
    charge: cp.Variable  # unit × snapshot, per unit
    discharge: cp.Variable
    soc: cp.Variable  # energy at the end of each hour, per unit · h
    families: Families

    @property
    def net(self) -> cp.Expression:
        """Net injection, discharge − charge."""
        return self.discharge - self.charge


def storage_block(
    n_snap: int,
    hours: int,
    power: Capacity,
    energy: Capacity,
    *,
    eta_charge: float | np.ndarray,
    eta_discharge: float | np.ndarray,
    soc_min: float | np.ndarray = 0.0,
    soc_max: float | np.ndarray = 1.0,
    soc_initial: float | np.ndarray | None = None,
    units: int = 1,
    name: str = "storage",
) -> Storage:
    """Storage units over ``n_snap`` snapshots (whole days of ``hours``), cyclic per day."""
    S, H, n = n_snap, hours, units
    ch = cp.Variable((n, S), name=f"{name}_charge", nonneg=True)
    dis = cp.Variable((n, S), name=f"{name}_discharge", nonneg=True)
    soc = cp.Variable((n, S), name=f"{name}_soc", nonneg=True)
    P, E = _column(power, n), _column(energy, n)
    col = lambda x: np.broadcast_to(np.asarray(x, dtype=float), (n,)).reshape(n, 1)  # noqa: E731
    fam = Families()
    fam.add(f"{name}.power", ch <= P, dis <= P)
    lo = col(soc_min)
    fam.add(f"{name}.energy_limits", soc <= cp.multiply(col(soc_max), E))
    if np.any(lo > 0):
        fam.add(f"{name}.energy_limits", soc >= cp.multiply(lo, E))
    idx = np.arange(S)
    prev = np.where(idx % H == 0, idx + H - 1, idx - 1)  # the hour before, cyclic within each day
    fam.add(f"{name}.energy_balance",
            soc == soc[:, prev] + cp.multiply(col(eta_charge), ch) - cp.multiply(1 / col(eta_discharge), dis))
    if soc_initial is not None:
        last = np.arange(H - 1, S, H)
        fam.add(f"{name}.initial", soc[:, last] == cp.multiply(col(soc_initial), E))
    return Storage(charge=ch, discharge=dis, soc=soc, families=fam)


@dataclass
class Generator:
    p: cp.Variable  # per unit, per snapshot
    cost_usd: cp.Expression
    families: Families


def generator_block(
    n_snap: int, base_mva: float, p_min_mw: float, p_max: Capacity, *, cost_a_usd_per_mw2h: float,
    cost_b_usd_per_mwh: float, cost_c_usd_per_h: float, weight: np.ndarray | None = None, name: str = "generator",
) -> Generator:
    """A controllable unit; ``p_max`` per unit (a number or a sized capacity).

    ``weight``: what each snapshot stands for in the cost (days of a year per hour of a typical day); the
    default counts each snapshot once.
    """
    B = base_mva
    g = cp.Variable(n_snap, name=f"p_{name}", nonneg=True)
    fam = Families()
    p_max_expr = p_max if isinstance(p_max, cp.Expression) else float(p_max)
    fam.add(f"{name}.limits", g >= p_min_mw / B, g <= p_max_expr)
    if weight is None:
        cost = cost_a_usd_per_mw2h * B**2 * cp.sum_squares(g) + cost_b_usd_per_mwh * B * cp.sum(g)
        cost = cost + cost_c_usd_per_h * n_snap
    else:
        cost = cost_a_usd_per_mw2h * B**2 * cp.sum_squares(cp.multiply(np.sqrt(weight), g)) \
            + cost_b_usd_per_mwh * B * (weight @ g) + cost_c_usd_per_h * float(np.sum(weight))
    return Generator(p=g, cost_usd=cost, families=fam)
