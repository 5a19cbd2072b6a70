"""Investment: which candidates are built (0-1) and how big, with their cost and feeder-wide caps.

Per candidate j: build b_j ∈ {0, 1}; capacity c_j (MW) with
min_j b_j ≤ c_j ≤ max_j b_j, or c_j = module_j · y_j with integer
y_j ∈ [0, ⌊max_j / module_j⌋] for modular sites. Investment cost
capex_j c_j + fixed_j b_j, annualised with the capital recovery factor
CRF = i (1+i)^n / ((1+i)^n − 1).

Families: ``investment.build`` (the 0-1 bounds), ``investment.capacity_range``,
``investment.modules``; :func:`capacity_caps`: ``caps.penetration``, ``caps.budget``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cvxpy as cp
import numpy as np
import pandas as pd

from adnstudy.formulation.families import Families
from adnstudy.solve.integer import IntegerBlock, integer_variable


def crf(rate: float, years: int) -> float:
    """Capital recovery factor: annuity per unit of capital over ``years`` at ``rate``."""
    if rate == 0:
        return 1.0 / years
    g = (1 + rate) ** years
    return rate * g / (g - 1)


@dataclass
class Investment:
    build: cp.Variable  # b, per candidate
    capacity_mw: cp.Variable  # c, per candidate
    modules: cp.Variable | None  # y, per modular candidate
    modular: np.ndarray  # candidates built in modules (positions)
    capex_usd: cp.Expression  # per candidate, capex c + fixed b
    annualised_usd: cp.Expression  # Σ CRF · capex
    families: Families
    integers: list[IntegerBlock] = field(default_factory=list)  # relaxed build: build, modules


def investment_block(sites: pd.DataFrame, *, native: bool) -> Investment:
    """0-1 build and sizing of the candidates in ``sites`` (columns: min_mw, max_mw, module_mw,
    capex_usd_per_mw, fixed_capex_usd, crf).

    ``native`` declares the integer decisions as CVXPY boolean/integer variables;
    otherwise they are continuous with bounds a branch-and-bound tightens
    (:class:`~adnstudy.solve.integer.IntegerBlock`), branching first where a unit
    step costs most (a site's annualised fixed cost, a module's annualised capex).
    """
    J = len(sites)
    fam = Families()
    integers: list[IntegerBlock] = []
    fixed_ann = (sites["crf"] * sites["fixed_capex_usd"]).to_numpy()
    b, blk, cons = integer_variable(J, np.zeros(J), np.ones(J), fixed_ann + 1e-9, "build", native=native, boolean=True)
    fam.add("investment.build", *cons)
    integers += [blk] if blk is not None else []
    cap_mw = cp.Variable(J, name="capacity_mw", nonneg=True)
    fam.add("investment.capacity_range", cap_mw <= cp.multiply(sites["max_mw"].to_numpy(), b),
            cap_mw >= cp.multiply(sites["min_mw"].to_numpy(), b))
    modular = np.flatnonzero(sites["module_mw"].notna().to_numpy())
    y = None
    if len(modular):
        mod = sites["module_mw"].to_numpy()[modular]
        n_max = np.floor(sites["max_mw"].to_numpy()[modular] / mod + 1e-9)
        step = (sites["crf"] * sites["capex_usd_per_mw"]).to_numpy()[modular] * mod
        y, blk, cons = integer_variable(len(modular), np.zeros(len(modular)), n_max, step, "modules", native=native)
        fam.add("investment.modules", cap_mw[modular] == cp.multiply(mod, y), *cons)
        integers += [blk] if blk is not None else []
    capex = cp.multiply(sites["capex_usd_per_mw"].to_numpy(), cap_mw) + cp.multiply(sites["fixed_capex_usd"].to_numpy(), b)
    annualised = cp.sum(cp.multiply(sites["crf"].to_numpy(), capex))
    return Investment(build=b, capacity_mw=cap_mw, modules=y, modular=modular, capex_usd=capex,
                      annualised_usd=annualised, families=fam, integers=integers)


def capacity_caps(inv: Investment, counted: np.ndarray, max_total_mw: float | None, budget_usd: float | None) -> Families:
    """Feeder-wide caps: total capacity of the ``counted`` candidates, and total investment."""
    fam = Families()
    if max_total_mw is not None and len(counted):
        fam.add("caps.penetration", cp.sum(inv.capacity_mw[counted]) <= max_total_mw)
    if budget_usd is not None:
        fam.add("caps.budget", cp.sum(inv.capex_usd) <= budget_usd)
    return fam
