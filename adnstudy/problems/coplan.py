"""Co-planning: the ADN and every MG decide what to build, then trade and share the gain (docs/coplan.md).

Investors: the ADN (index 0; the planning model's candidate sites, network,
reliability) and the MGs (1..M; their own candidates beside their existing
assets). Over the K typical days with their weights, each investor's annual
cost is

* MG m: annualised investment + fixed O&M of its candidates, operating cost,
  purchases and sales at the ADN's tariffs, its share of the network fees;
* ADN: annualised investment + O&M + EENS cost of its sites (the plan's cost
  items), and the energy of its own loads, losses and units at the wholesale
  price (the substation exchange plus the MGs' exports) — less the fees.

Fees are transfers between the MGs and the ADN, as the bargaining payments are;
they are settled after the clearing, so the *welfare* — the sum of all
investors' costs, which the upper level minimises — does not contain them. The
MGs' tariffs are paid to the energy supplier behind the substation, as in
``dispatch`` and ``plan``: they are what makes bilateral trades worth clearing.

The models are built from the blocks of ``plan`` and ``dispatch``:

* :func:`build_coplan_model` — the welfare model: the planning model with the
  MGs' PCC exports as variables, every MG's block over the K days with its
  investment block, and trade reciprocity; a
  :class:`~adnstudy.solve.integer.MixedIntegerModel` (the centralised reference
  is its branch-and-bound; with all 0-1 decisions fixed it is the upper level's
  centralised twin);
* :class:`PlanningADN` — the ADN's agent of the distributed upper level: the
  planning model with the PCC targets and the ATC terms; also its own lower level
  (a branch-and-bound of that problem over its 0-1 decisions);
* :class:`~adnstudy.problems.microgrid.MicrogridAgent` over the K days with its
  candidates — the MGs' agents and lower levels (enumeration).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Literal

import cvxpy as cp
import numpy as np
import pandas as pd

from adnstudy.config.load import Case
from adnstudy.data.typical import typical_days
from adnstudy.formulation.families import Families
from adnstudy.formulation.investment import Investment, investment_block
from adnstudy.formulation.market import reciprocity
from adnstudy.network.feeder import Feeder
from adnstudy.problems.dispatch import pair_fees
from adnstudy.problems.microgrid import (
    MG_HINT,
    MicrogridBlock,
    MicrogridData,
    microgrid_block,
    microgrid_data,
)
from adnstudy.problems.plan import (
    COST_SCALE,
    RELAXATIONS,
    PlanData,
    PlanModel,
    build_plan_model,
    plan_data,
    with_reliability,
)
from adnstudy.solve.alternate import Decision, Decisions
from adnstudy.solve.conic import DEFAULT, ConicSettings, solve_conic
from adnstudy.solve.integer import IntegerBlock
from adnstudy.solve.mip import MipSettings, solve_mip

ADN = "adn"


# ----------------------------------------------------------------------------- data
@dataclass(frozen=True)
class CoplanData:
    """Every investor's data over the K typical days (per unit inside, USD and MW at the edges)."""

    adn: PlanData  # the ADN's planning data: energy at the wholesale price, the MGs' PCCs, reliability if used
    mgs: list[MicrogridData]  # over the K days, weighted per year, with candidates and partners (fees zero)
    fees_usd_per_mwh: np.ndarray  # M × M, the pairs' network fees (settled after the clearing)
    seller_share: float  # of a pair's fee paid by the seller
    powers: np.ndarray  # bargaining powers, ADN first
    wholesale_usd_per_mwh: float
    scenarios: np.ndarray  # the typical days' scenario ids (cluster/typical), in snapshot order

    @property
    def names(self) -> list[str]:
        return [ADN, *(d.name for d in self.mgs)]

    @property
    def pairs(self) -> list[tuple[int, int]]:
        M = len(self.mgs)
        return [(m, n) for m in range(M) for n in range(m + 1, M)]

    @property
    def weight(self) -> np.ndarray:
        """Days of the year each snapshot stands for."""
        return self.adn.snap_weight

    @property
    def base_mva(self) -> float:
        return self.adn.feeder.base_mva

    @property
    def shares(self) -> np.ndarray:
        """Each investor's share of the total gain, β_i / Σ β."""
        return self.powers / self.powers.sum()


def coplan_data(case: Case, feeder: Feeder, typical: pd.DataFrame, weights: pd.DataFrame,
                reliability: bool = True) -> CoplanData:
    """The investors' data from the case and the typical days of ``cluster``."""
    cfg = case.config
    assert cfg.economics is not None and cfg.microgrids
    wholesale = float(cfg.economics.wholesale_price_usd_per_mwh or 0.0)
    adn = plan_data(case, feeder, typical, weights)
    flat = np.full(adn.n_snap, wholesale)
    adn = replace(adn, price_buy=flat, price_sell=flat, mg_names=tuple(mg.name for mg in cfg.microgrids),
                  mg_pos=np.array([feeder.position(mg.bus) for mg in cfg.microgrids]))
    if reliability:
        adn = with_reliability(case, adn)
    td = typical_days(case, typical, weights)
    fees = pair_fees(case, feeder) if cfg.market is not None else np.zeros((len(cfg.microgrids),) * 2)
    share = {"seller": 1.0, "buyer": 0.0, "split": 0.5}[cfg.market.fee_payer] if cfg.market is not None else 0.5
    # the MGs know their partners; the fees are settled after the clearing, so their blocks see none
    mgs = [replace(d, fee_usd_per_mwh=np.zeros_like(d.fee_usd_per_mwh))
           for d in microgrid_data(case, feeder, td, list(range(td.n_days)), fees, share, year=True)]
    coplan = getattr(cfg, "coplan", None)
    adn_power = float(getattr(coplan, "adn_bargaining_power", 1.0)) if coplan is not None else 1.0
    powers = np.array([adn_power, *(mg.bargaining_power for mg in cfg.microgrids)], dtype=float)
    return CoplanData(adn=adn, mgs=mgs, fees_usd_per_mwh=fees, seller_share=share, powers=powers,
                      wholesale_usd_per_mwh=wholesale, scenarios=np.asarray(td.scenarios))


def adn_cost(model: PlanModel, export: cp.Expression | np.ndarray, data: CoplanData) -> cp.Expression:
    """The ADN's annual cost (USD): its plan cost items at the wholesale price, plus the MGs' exports
    (so that its energy is that of its own loads, losses and units)."""
    B, w = data.base_mva, data.weight
    own = data.wholesale_usd_per_mwh * B * cp.sum(export @ w)
    return sum(model.costs.values()) + own


def fee_accounts(data: CoplanData, agreed_pu: np.ndarray) -> np.ndarray:
    """Each MG's annual network fees (USD) on the agreed trades (agent × agent × snapshot, m's sale to n)."""
    M = len(data.mgs)
    B, w, sigma = data.base_mva, data.weight, data.seller_share
    out = np.zeros(M)
    for m in range(M):
        for n in range(M):
            if n != m:
                s = agreed_pu[m, n] * B
                f = data.fees_usd_per_mwh[m, n]
                out[m] += f * w @ (sigma * np.maximum(s, 0) + (1 - sigma) * np.maximum(-s, 0))
    return out


# ------------------------------------------------------------------ the welfare model
@dataclass
class CoplanModel:
    """The welfare model: every investor's blocks, 0-1 decisions and costs (a MixedIntegerModel)."""

    data: CoplanData
    adn: PlanModel
    mgs: list[MicrogridBlock]
    investments: list[Investment | None]  # per MG
    families: Families
    objective: cp.Minimize
    problem: cp.Problem
    adn_cost_usd: cp.Expression
    integers: list[IntegerBlock]
    owner: list[int]  # investor of each integer decision vector (integer_vars order)
    lo0: list[np.ndarray] = field(default_factory=list)  # the integer blocks' original bounds (restrict())
    hi0: list[np.ndarray] = field(default_factory=list)
    label = "the co-planning welfare model"
    usd_per_unit = 1.0 / COST_SCALE
    relaxations = RELAXATIONS

    @property
    def welfare_usd(self) -> float:
        return float(self.problem.value) / COST_SCALE

    def integer_vars(self) -> list[cp.Variable]:
        out = list(self.adn.integer_vars())
        for inv in self.investments:
            if inv is not None:
                out += [inv.build] + ([inv.modules] if inv.modules is not None else [])
        return out

    def fix_integers(self, values: list[np.ndarray]) -> None:
        for blk, v in zip(self.integers, values, strict=True):
            blk.set_bounds(np.round(v), np.round(v))

    def split(self, values: list[np.ndarray]) -> Decisions:
        """Integer values (integer_vars order) → one tuple per investor."""
        out: list[list[np.ndarray]] = [[] for _ in range(len(self.mgs) + 1)]
        for i, v in zip(self.owner, values, strict=True):
            out[i].append(np.round(np.asarray(v, float)))
        return tuple(tuple(d) for d in out)

    def join(self, decisions: Decisions) -> list[np.ndarray]:
        return [np.asarray(v, float) for d in decisions for v in d]

    def decisions(self) -> Decisions:
        """The solved integer decisions, per investor."""
        return self.split([np.array(v.value, dtype=float) for v in self.integer_vars()])

    def fix(self, decisions: Decisions) -> None:
        self.fix_integers(self.join(decisions))

    def restrict(self, free: int, decisions: Decisions) -> None:
        """Only investor ``free`` keeps its 0-1 choice (for a branch-and-bound or a mixed-integer solver): the
        others' are fixed."""
        values = self.join(decisions)
        if not self.integers:  # built native: fix the others' integer variables by constraints
            fixes = [var == v for var, i, v in zip(self.integer_vars(), self.owner, values, strict=True) if i != free]
            self.problem = cp.Problem(self.objective, self.families.constraints() + fixes)
            return
        for blk, i, v, lo, hi in zip(self.integers, self.owner, values, self.lo0, self.hi0, strict=True):
            blk.lo0, blk.hi0 = (lo.copy(), hi.copy()) if i == free else (v.copy(), v.copy())
            blk.set_bounds(blk.lo0, blk.hi0)

    def space(self, investor: int) -> int:
        """How many combinations of 0-1 decisions the investor has."""
        return int(np.prod([np.prod(hi - lo + 1) for i, lo, hi in zip(self.owner, self.lo0, self.hi0, strict=True)
                            if i == investor], dtype=float))

    def combinations(self, investor: int) -> list[Decision]:
        blocks = [(lo, hi) for i, lo, hi in zip(self.owner, self.lo0, self.hi0, strict=True) if i == investor]
        ranges = [np.arange(a, b + 1) for lo, hi in blocks for a, b in zip(lo, hi, strict=True)]
        sizes = np.cumsum([len(lo) for lo, _ in blocks])[:-1]
        return [tuple(np.split(np.array(c, float), sizes)) for c in itertools.product(*ranges)]

    def rounding_inputs(self) -> list[np.ndarray]:
        return [*self.adn.rounding_inputs(),
                *(np.array(inv.capacity_mw.value, float) for inv in self.investments if inv is not None)]

    def round(self, inputs: list[np.ndarray]) -> list[list[np.ndarray]]:
        """The plan's patterns for the ADN, each with the MGs' candidates rounded at the same threshold."""
        adn_patterns = self.adn.round(inputs[:3])
        caps = iter(inputs[3:])
        levels = []
        for inv, d in zip(self.investments, self.data.mgs, strict=True):
            if inv is None:
                continue
            frac = next(caps) / d.candidates.sites["max_mw"].to_numpy()
            modules = d.candidates.sites["module_mw"].to_numpy()
            per = []
            for threshold in (0.5, 1e-2, 1e-4):
                build = (frac >= threshold).astype(float)
                out = [build]
                if inv.modules is not None:
                    mod = modules[inv.modular]
                    out.append(np.round(frac[inv.modular] * d.candidates.sites["max_mw"].to_numpy()[inv.modular] / mod))
                per.append(out)
            levels.append(per)
        n = max(len(adn_patterns), 1)
        return [[*p, *(v for per in levels for v in per[min(i * 3 // n, 2)])] for i, p in enumerate(adn_patterns)]

    def settle_integers(self) -> list[np.ndarray] | None:
        settled = self.adn.settle_integers()
        if settled is None:
            return None
        rest = [np.round(np.array(v.value, float)) for v in self.integer_vars()[len(settled):]]
        return [*settled, *rest]

    def no_integer_solution(self, detail: str) -> str:
        return self.adn.no_integer_solution(detail).replace("the planning model", self.label)

    def operation(self, decisions: Decisions, sizes_mw: list[np.ndarray | None] | None = None) -> cp.Problem:
        """The problem with ``decisions`` fixed and, if given, the MGs' sizes too (a stand-alone plan operated)."""
        self.fix(decisions)
        if sizes_mw is None:
            return self.problem
        extra = [inv.capacity_mw == size for inv, size in zip(self.investments, sizes_mw, strict=True)
                 if inv is not None and size is not None]
        return cp.Problem(self.objective, self.families.constraints() + extra)


def build_coplan_model(data: CoplanData, integral: Literal["relaxed", "native"] = "relaxed", *,
                       trading: bool = True) -> CoplanModel:
    """Every investor's blocks over the K days; ``trading=False``: no bilateral trades (the disagreement)."""
    native = integral == "native"
    invs = [investment_block(d.candidates.sites, native=native) if d.candidates is not None else None
            for d in data.mgs]
    mgs = [microgrid_block(d, trades=trading, investment=inv) for d, inv in zip(data.mgs, invs, strict=True)]
    export = cp.vstack([b.export for b in mgs])
    adn = build_plan_model(data.adn, integral, mg_export=export)
    cost_adn = adn_cost(adn, export, data)
    fam = Families().update_from(adn.families, *(b.families for b in mgs))
    if trading:
        fam.update_from(reciprocity([b.trade for b in mgs], data.pairs))
    total = cost_adn + sum(b.cost_usd + b.capital_usd for b in mgs)
    objective = cp.Minimize(COST_SCALE * total)
    integers = list(adn.integers)
    owner = [0] * len(adn.integer_vars())
    for m, inv in enumerate(invs):
        if inv is not None:
            integers += inv.integers
            owner += [m + 1] * (1 + (inv.modules is not None))
    return CoplanModel(data=data, adn=adn, mgs=mgs, investments=invs, families=fam, objective=objective,
                       problem=fam.problem(objective), adn_cost_usd=cost_adn, integers=integers, owner=owner,
                       lo0=[blk.lo0.copy() for blk in integers], hi0=[blk.hi0.copy() for blk in integers])


# -------------------------------------------------------------------- the ADN's agent
@dataclass(frozen=True)
class ADNResponse:
    targets_pu: np.ndarray  # MG × snapshot
    cost_usd: float  # its annual cost (without the ATC terms, before fees)
    decisions: Decision


class PlanningADN:
    """The ADN in the distributed upper level: its planning model with PCC targets and ATC terms.

    Objective: its annual cost + ρ Σ_s ω_s ‖T_s − R_s‖² + v·T (ω: days per
    snapshot), with DPP parameters, compiled once; its 0-1 decisions are fixed by
    :meth:`fix` (the plan's integer blocks). :meth:`best_response` is its lower
    level: the same problem over its own 0-1 decisions, by branch-and-bound.
    """

    def __init__(self, data: CoplanData, settings: ConicSettings = DEFAULT,
                 integral: Literal["relaxed", "native"] = "relaxed"):
        self.data, self.settings = data, settings
        M, S = len(data.mgs), data.adn.n_snap
        self.target = cp.Variable((M, S), name="pcc_target")
        self.model = build_plan_model(data.adn, integral, mg_export=self.target)
        self.cost_usd = adn_cost(self.model, self.target, data)
        self.quad = cp.Parameter(nonneg=True, name="atc_quad", value=0.0)
        self.lin = cp.Parameter((M, S), name="atc_lin", value=np.zeros((M, S)))
        root_w = np.sqrt(data.weight)[None, :]
        atc = self.quad * cp.sum_squares(cp.multiply(root_w, self.target)) + cp.sum(cp.multiply(self.lin, self.target))
        lim = np.array([d.pcc_limit_pu for d in data.mgs])[:, None]
        fam = Families().update_from(self.model.families)
        fam.add("adn.targets", self.target <= lim, self.target >= -lim)
        self.families = fam
        self.problem = fam.problem(cp.Minimize(COST_SCALE * (self.cost_usd + atc)))

    def fix(self, decision: Decision) -> None:
        self.model.fix_integers(list(decision))

    def set_terms(self, responses_pu: np.ndarray, mult: np.ndarray, weight: float) -> None:
        self.quad.value = weight
        self.lin.value = mult - 2 * weight * self.data.weight[None, :] * responses_pu

    def respond(self, responses_pu: np.ndarray, mult: np.ndarray, weight: float) -> ADNResponse:
        self.set_terms(responses_pu, mult, weight)
        solve_conic(self.problem, self.settings, what="ADN upper-level subproblem (its plan with the PCC targets)",
                    hint=MG_HINT)
        return ADNResponse(targets_pu=np.array(self.target.value, dtype=float), cost_usd=float(self.cost_usd.value),
                           decisions=tuple(np.round(np.array(v.value, float)) for v in self.model.integer_vars()))

    def as_mip(self) -> PlanModel:
        """Its problem (with the ATC terms) as a mixed-integer model over its own decisions."""
        return replace(self.model, problem=self.problem, objective=self.problem.objective, families=self.families)

    def best_response(self, settings: MipSettings) -> Decision:
        """Its best 0-1 decisions given the last targets, multipliers and weight (its lower level)."""
        quad, lin = self.quad.value, self.lin.value

        def build(native: bool) -> PlanModel:
            agent = PlanningADN(self.data, self.settings, "native" if native else "relaxed")
            agent.quad.value, agent.lin.value = quad, lin
            return agent.as_mip()

        result = solve_mip(build, settings)
        return tuple(np.round(np.array(v.value, float)) for v in result.model.integer_vars())


def zero_decision(model: PlanModel) -> Decision:
    """The ADN building nothing (and so no island succeeding)."""
    return tuple(np.zeros(v.size) for v in model.integer_vars())

