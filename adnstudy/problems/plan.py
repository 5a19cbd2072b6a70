"""ADN planning: RES siting (0-1) and sizing over typical days, a MISOCP over DistFlow.

Decisions per candidate site j: build b_j ∈ {0, 1}, capacity c_j with
min_j b_j ≤ c_j ≤ max_j b_j (or c_j = module_j · y_j with integer y_j); hourly in
every scenario s (typical day × hour): DG output, reactive power, curtailment,
storage charge/discharge, substation import/export, branch flows, voltages.

Annual cost (USD), the objective::

    Σ_j CRF_j (capex_j c_j + fixed_j b_j)                 annualised investment
  + Σ_s w_s (π^buy_s p^imp_s − π^sell_s p^exp_s)           power purchase (w_s: days of the scenario)
  + Σ_j om^MW_j c_j + Σ_s w_s Σ_j om^MWh_j p_js             RES operation and maintenance

with CRF = i (1+i)^n / ((1+i)^n − 1). Network: :func:`branch_flow_soc`. The
equations, per-unit conventions and solving strategy are in ``docs/plan.md``.

The model is built once. Integer variables are continuous variables whose
bounds are ``cp.Parameter``s, so a branch-and-bound re-solves the same compiled
problem with new bounds (``integral="relaxed"``); ``integral="native"`` declares
them boolean/integer for a CVXPY mixed-integer solver instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import cvxpy as cp
import numpy as np
import pandas as pd

from adnstudy.config.load import Case
from adnstudy.data.typical import HOURS, typical_days
from adnstudy.formulation.distflow import BranchFlowSOC, branch_flow_soc
from adnstudy.formulation.reliability import ReliabilityBlock, reliability_block
from adnstudy.network.feeder import Feeder
from adnstudy.reliability.data import ReliabilityData

COST_SCALE = 1e-6  # the solver sees millions of USD


def crf(rate: float, years: int) -> float:
    """Capital recovery factor: annuity per unit of capital over ``years`` at ``rate``."""
    if rate == 0:
        return 1.0 / years
    g = (1 + rate) ** years
    return rate * g / (g - 1)


@dataclass(frozen=True)
class PlanData:
    """Everything the planning model needs, as arrays (per unit inside, USD and MW at the edges)."""

    feeder: Feeder
    n_days: int  # scenarios (typical + extreme days)
    hours: int
    days_weight: np.ndarray  # days represented by each scenario
    p_load: np.ndarray  # bus × snapshot, pu
    q_load: np.ndarray
    sites: pd.DataFrame  # one row per candidate (bus, tech, pos, limits, costs)
    avail: np.ndarray  # site × snapshot, per unit of capacity (storage rows: 1)
    price_buy: np.ndarray  # snapshot, USD/MWh
    price_sell: np.ndarray
    v_min_pu: float
    v_max_pu: float
    v_sub_range_pu: tuple[float, float]
    i_max_pu: np.ndarray  # branch, NaN = unrated
    p_import_max_pu: float | None
    p_export_max_pu: float | None
    max_total_mw: float | None
    budget_usd: float | None
    reliability: ReliabilityData | None = None  # None: no reliability constraints or indices
    reliability_limits: dict[str, float | None] = field(default_factory=dict)  # SAIDI (h), EENS (MWh), SAIFI
    voll_usd_per_mwh: float = 0.0

    @property
    def n_snap(self) -> int:
        return self.n_days * self.hours

    @property
    def snap_weight(self) -> np.ndarray:
        """Hours of the year each snapshot stands for."""
        return np.repeat(self.days_weight, self.hours).astype(float)


def plan_data(case: Case, feeder: Feeder, typical: pd.DataFrame, weights: pd.DataFrame) -> PlanData:
    """Arrays from the case, its feeder and the typical days written by ``cluster``."""
    cfg = case.config
    assert cfg.candidates is not None and cfg.economics is not None and cfg.profiles is not None
    td = typical_days(case, typical, weights)
    K, H = td.n_days, HOURS
    series_values = {n: v.ravel() for n, v in td.series.items()}
    first_of = td.first_of
    # loads: every bus follows its load series (bus × snapshot)
    mult = td.bus_load_multipliers(feeder)
    p_load = feeder.p_load_pu[:, None] * mult
    q_load = feeder.q_load_pu[:, None] * mult
    rows = []
    avail = []
    for i, site in enumerate(cfg.candidates.sites):
        c = crf(cfg.economics.discount_rate, site.lifetime_yr)
        rows.append({
            "site": i, "bus": site.bus, "tech": site.tech, "pos": feeder.position(site.bus),
            "min_mw": site.min_mw, "max_mw": site.max_mw, "module_mw": site.module_mw or np.nan,
            "capex_usd_per_mw": site.capex_usd_per_mw, "fixed_capex_usd": site.fixed_capex_usd,
            "crf": c, "om_usd_per_mwh": site.om_usd_per_mwh, "om_usd_per_mw_yr": site.om_usd_per_mw_yr,
            "tan_phi": np.tan(np.arccos(site.pf_min)),
            "energy_mwh_per_mw": site.energy_mwh_per_mw or np.nan, "efficiency": site.efficiency,
            "islanding": site.islanding,
        })
        if site.tech == "storage":
            avail.append(np.ones(K * H))
        else:
            avail.append(series_values[site.profile or first_of[site.tech]].ravel())
    sites = pd.DataFrame(rows)
    net = cfg.network
    eco = cfg.economics
    buy = np.tile(np.asarray(eco.purchase_price_usd_per_mwh, dtype=float), K)
    sell = np.tile(np.asarray(eco.sell_price_usd_per_mwh or [0.0] * 24, dtype=float), K)
    i_max = feeder.branches["rating_a"].to_numpy() / 1000.0 / feeder.i_base_ka
    peak = float(feeder.buses["p_mw"].sum())
    cand = cfg.candidates
    return PlanData(
        feeder=feeder, n_days=K, hours=H, days_weight=td.days_weight,
        p_load=p_load, q_load=q_load, sites=sites, avail=np.array(avail).reshape(len(rows), K * H),
        price_buy=buy, price_sell=sell, v_min_pu=net.v_min_pu, v_max_pu=net.v_max_pu,
        v_sub_range_pu=net.v_substation_range_pu or (net.v_substation_pu, net.v_substation_pu),
        i_max_pu=i_max,
        p_import_max_pu=None if net.p_import_max_mw is None else net.p_import_max_mw / feeder.base_mva,
        p_export_max_pu=None if net.p_export_max_mw is None else net.p_export_max_mw / feeder.base_mva,
        max_total_mw=None if cand.max_penetration is None else cand.max_penetration * peak,
        budget_usd=cand.budget_usd,
    )


def coarse_data(data: PlanData) -> PlanData:
    """The same planning problem over one day: the scenarios' weighted mean of each hour.

    About K times smaller; its relaxed solution proposes integer patterns for the
    full model's branch-and-bound while the full root is being solved.
    """
    from dataclasses import replace

    K, H = data.n_days, data.hours
    w = data.days_weight / data.days_weight.sum()

    def mean_day(x: np.ndarray) -> np.ndarray:
        return np.tensordot(x.reshape(*x.shape[:-1], K, H), w, axes=([-2], [0]))

    return replace(
        data, n_days=1, days_weight=np.array([data.days_weight.sum()]), p_load=mean_day(data.p_load),
        q_load=mean_day(data.q_load), avail=mean_day(data.avail), price_buy=data.price_buy[:H],
        price_sell=data.price_sell[:H],
    )


def with_reliability(case: Case, data: PlanData) -> PlanData:
    """Add the case's reliability section: average loads and island credits from the same scenarios."""
    from dataclasses import replace

    from adnstudy.reliability.data import credits, reliability_data

    cfg = case.config.reliability
    if cfg is None:
        return data
    w = data.snap_weight
    load_avg = (data.p_load @ w) / w.sum() * data.feeder.base_mva
    credit = credits(data.avail, w, cfg.island_credit)
    may_island = ((data.sites["tech"] != "storage") & data.sites["islanding"]).to_numpy()
    rd = reliability_data(case, data.feeder, load_avg, data.sites["pos"].to_numpy(), np.where(may_island, credit, 0.0))
    limits = {"SAIDI": cfg.saidi_limit_h, "EENS": cfg.eens_limit_mwh, "SAIFI": cfg.saifi_limit}
    return replace(data, reliability=rd, reliability_limits=limits, voll_usd_per_mwh=cfg.voll_usd_per_mwh)


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
    cost: np.ndarray  # annual USD a unit step costs (branching priority)
    lo_con: cp.Constraint
    hi_con: cp.Constraint

    @classmethod
    def create(cls, var: cp.Variable, lo0: np.ndarray, hi0: np.ndarray, cost: np.ndarray, name: str) -> IntegerBlock:
        n = var.size
        lo = cp.Parameter(n, name=f"{name}_lo", value=np.asarray(lo0, float))
        hi = cp.Parameter(n, name=f"{name}_hi", value=np.asarray(hi0, float))
        return cls(var, lo, hi, np.asarray(lo0, float), np.asarray(hi0, float), np.asarray(cost, float),
                   var >= lo, var <= hi)

    @property
    def constraints(self) -> list[cp.Constraint]:
        return [self.lo_con, self.hi_con]


@dataclass
class PlanModel:
    data: PlanData
    problem: cp.Problem
    build: cp.Variable  # b, site
    modules: cp.Variable | None  # y for modular sites
    cap_mw: cp.Variable  # site capacity, MW
    cap: cp.Expression  # site capacity, pu
    p_dg: cp.Variable  # site × snapshot, pu (storage: discharge − charge in p_net)
    q_dg: cp.Variable
    p_imp: cp.Variable
    p_exp: cp.Variable
    q_sub: cp.Variable
    charge: cp.Variable | None
    discharge: cp.Variable | None
    soc: cp.Variable | None
    flow: BranchFlowSOC
    costs: dict[str, cp.Expression]  # annual USD
    integers: list[IntegerBlock] = field(default_factory=list)
    reliability: ReliabilityBlock | None = None

    @property
    def objective_usd(self) -> float:
        return float(self.problem.value) / COST_SCALE

    def integer_vars(self) -> list[cp.Variable]:
        """The integer decisions, in the order of :attr:`integers` (build, modules, island success)."""
        out = [self.build] + ([self.modules] if self.modules is not None else [])
        if self.reliability is not None and self.reliability.island.size:
            out.append(self.reliability.island)
        return out

    def fix_integers(self, values: list[np.ndarray]) -> None:
        """Fix the integer decisions of a relaxed model (lower = upper bound)."""
        for blk, v in zip(self.integers, values, strict=True):
            blk.lo.value = np.round(v)
            blk.hi.value = np.round(v)

    def rounding_inputs(self) -> list[np.ndarray]:
        """What :func:`round_plan` reads from a node's solution: capacities (MW), modules, islands."""
        y = self.modules.value if self.modules is not None else np.empty(0)
        z = self.reliability.island.value if self.reliability is not None and self.reliability.island.size else np.empty(0)
        return [np.asarray(self.cap_mw.value, dtype=float), np.asarray(y, dtype=float), np.asarray(z, dtype=float)]

    def islands_by_rule(self) -> np.ndarray:
        """Island success as the evaluator decides it for the current capacities: credited DG ≥ average load."""
        from adnstudy.reliability.evaluate import ISLAND_TOL_MW

        mat = self.reliability.matrices
        supply = (mat.island_sites * self.data.reliability.site_credit[None, :]) @ np.maximum(self.cap_mw.value, 0)
        return ((supply > 0) & (supply >= mat.island_load_mw - ISLAND_TOL_MW)).astype(float)


def island_reachable(data: PlanData, island_sites: np.ndarray, island_load_mw: np.ndarray) -> np.ndarray:
    """Islands whose sites, all built at their maximum, would cover the island's load (credited)."""
    rd = data.reliability
    assert rd is not None
    most = island_sites @ (rd.site_credit * data.sites["max_mw"].to_numpy())
    return most >= island_load_mw - 1e-7


def round_plan(model: PlanModel, inputs: list[np.ndarray]) -> list[list[np.ndarray]]:
    """Rounding heuristic: candidate integer patterns from a relaxed solution, most promising first.

    Build where the relaxation uses at least half of a site's fixed cost
    (b ≥ 0.5, i.e. capacity ≥ half the maximum), then where it installs at least
    1 % or any capacity at all; modules rounded to nearest and up.
    """
    cap_mw, y, z = inputs
    st = model.data.sites
    frac = cap_mw / st["max_mw"].to_numpy()
    patterns = []
    builds = [(frac >= threshold).astype(float) for threshold in (0.5, 1e-2, 1e-4)]
    if model.modules is not None:
        builds.append((frac >= 1e-4).astype(float))
    for i, build in enumerate(builds):
        out = [build]
        if model.modules is not None:
            out.append(np.round(y) if i < 3 else np.ceil(y - 1e-6))
        if not z.size:
            patterns.append(out)
            continue
        # islands: those the relaxation mostly takes and that can succeed with this build, or none
        mat = model.reliability.matrices
        reachable = island_reachable(model.data, mat.island_sites * build[None, :], mat.island_load_mw)
        for z_pattern in ((z >= 0.5) & reachable, (z >= 1e-2) & reachable, np.zeros(z.size, dtype=bool)):
            patterns.append([*out, z_pattern.astype(float)])
    return patterns


RELAXABLE = ("voltage", "current", "substation", "caps", "reliability")


def build_plan_model(
    data: PlanData, integral: Literal["relaxed", "native"] = "relaxed", relax: frozenset[str] = frozenset()
) -> PlanModel:
    """Build the planning model once (see the module docstring for the maths).

    ``relax`` drops constraint families (:data:`RELAXABLE`); it serves only to
    name the family that makes an infeasible case infeasible.
    """
    fd = data.feeder
    base = fd.base_mva
    S, J = data.n_snap, len(data.sites)
    st = data.sites
    is_sto = (st["tech"] == "storage").to_numpy()
    is_res = ~is_sto
    modular = np.flatnonzero(st["module_mw"].notna().to_numpy())
    native = integral == "native"
    b = cp.Variable(J, name="build", boolean=native)
    cons: list[cp.Constraint] = []
    integers: list[IntegerBlock] = []
    fixed_ann = (st["crf"] * st["fixed_capex_usd"]).to_numpy()
    if not native:
        blk = IntegerBlock.create(b, np.zeros(J), np.ones(J), fixed_ann + 1e-9, "build")
        cons += blk.constraints
        integers.append(blk)
    else:
        cons += [b >= 0, b <= 1]
    cap_mw = cp.Variable(J, name="capacity_mw", nonneg=True)
    cons += [cap_mw <= cp.multiply(st["max_mw"].to_numpy(), b), cap_mw >= cp.multiply(st["min_mw"].to_numpy(), b)]
    y = None
    if len(modular):
        mod = st["module_mw"].to_numpy()[modular]
        n_max = np.floor(st["max_mw"].to_numpy()[modular] / mod + 1e-9)
        y = cp.Variable(len(modular), name="modules", integer=native)
        cons += [cap_mw[modular] == cp.multiply(mod, y), y >= 0, y <= n_max]
        if not native:
            step = (st["crf"] * st["capex_usd_per_mw"]).to_numpy()[modular] * mod
            blk = IntegerBlock.create(y, np.zeros(len(modular)), n_max, step, "modules")
            cons += blk.constraints
            integers.append(blk)
    cap = cap_mw / base  # pu
    # ---- operation
    p = cp.Variable((J, S), name="p_dg", nonneg=True)  # RES output (storage rows unused)
    q = cp.Variable((J, S), name="q_dg")
    avail = data.avail
    res_rows = np.flatnonzero(is_res)
    if len(res_rows):
        cons.append(p[res_rows] <= cp.multiply(avail[res_rows], cp.reshape(cap[res_rows], (len(res_rows), 1), order="F")))
    sto_rows = np.flatnonzero(is_sto)
    if len(sto_rows):
        cons.append(p[sto_rows] == 0)
    tan_phi = st["tan_phi"].to_numpy()[:, None]
    cons += [q <= cp.multiply(tan_phi, p), q >= -cp.multiply(tan_phi, p)]
    ch = dis = soc = None
    p_net = p
    if len(sto_rows):
        ns = len(sto_rows)
        ch = cp.Variable((ns, S), name="charge", nonneg=True)
        dis = cp.Variable((ns, S), name="discharge", nonneg=True)
        soc = cp.Variable((ns, S), name="soc", nonneg=True)
        eta = st["efficiency"].to_numpy()[sto_rows][:, None]
        e_ratio = st["energy_mwh_per_mw"].to_numpy()[sto_rows][:, None]
        cap_s = cp.reshape(cap[sto_rows], (ns, 1), order="F")
        cons += [ch <= cap_s, dis <= cap_s, soc <= cp.multiply(e_ratio, cap_s)]
        # hourly energy balance, cyclic within each typical day: soc_h = soc_{h−1} + η ch_h − dis_h / η
        H = data.hours
        idx = np.arange(S)
        prev = np.where(idx % H == 0, idx + H - 1, idx - 1)
        cons.append(soc == soc[:, prev] + cp.multiply(eta, ch) - cp.multiply(1 / eta, dis))
        sel = np.zeros((J, ns))
        sel[sto_rows, np.arange(ns)] = 1.0
        p_net = p + sel @ (dis - ch)
        cons += [q[sto_rows] <= cp.multiply(tan_phi[sto_rows], cap_s), q[sto_rows] >= -cp.multiply(tan_phi[sto_rows], cap_s)]
    # ---- substation and network
    p_imp = cp.Variable(S, name="p_import", nonneg=True)
    p_exp = cp.Variable(S, name="p_export", nonneg=True)
    q_sub = cp.Variable(S, name="q_substation")
    if data.p_import_max_pu is not None and "substation" not in relax:
        cons.append(p_imp <= data.p_import_max_pu)
    if data.p_export_max_pu is not None and "substation" not in relax:
        cons.append(p_exp <= data.p_export_max_pu)
    n = fd.n_bus
    import scipy.sparse as sp

    C = sp.csr_matrix((np.ones(J), (st["pos"].to_numpy(), np.arange(J))), shape=(n, J))  # site → bus
    e0 = sp.csr_matrix((np.ones(1), ([0], [0])), shape=(n, 1))
    p_inj = C @ p_net + e0 @ cp.reshape(p_imp - p_exp, (1, S), order="F")
    q_inj = C @ q + e0 @ cp.reshape(q_sub, (1, S), order="F")
    flow = branch_flow_soc(
        fd, S, p_inj, q_inj, data.p_load, data.q_load,
        v_min_pu=data.v_min_pu, v_max_pu=data.v_max_pu, v_sub_range_pu=data.v_sub_range_pu, i_max_pu=data.i_max_pu,
        relax=relax,
    )
    cons += flow.constraints
    # ---- feeder-wide caps
    res_cap_total = cp.sum(cap_mw[res_rows]) if len(res_rows) else 0
    if data.max_total_mw is not None and len(res_rows) and "caps" not in relax:
        cons.append(res_cap_total <= data.max_total_mw)
    capex = cp.multiply(st["capex_usd_per_mw"].to_numpy(), cap_mw) + cp.multiply(st["fixed_capex_usd"].to_numpy(), b)
    if data.budget_usd is not None and "caps" not in relax:
        cons.append(cp.sum(capex) <= data.budget_usd)
    # ---- annual costs, USD
    w = data.snap_weight
    rel = None
    if data.reliability is not None:
        rel = reliability_block(data.reliability, cap_mw, data.reliability_limits, native)
        cons += rel.constraints
        if "reliability" not in relax:
            cons += list(rel.limit_constraints.values())
        n_isl = rel.island.size
        if n_isl:
            # valid tightenings: an island needs a built site in it, and cannot succeed if even every
            # site in it at its maximum falls short of its load
            # z_s = 1 needs Σ κ_i c_i ≥ L_s with c_i ≤ max_i b_i, so z_s ≤ Σ_i min(1, κ_i max_i / L_s) b_i
            sites_in = rel.matrices.island_sites
            reach = data.reliability.site_credit * st["max_mw"].to_numpy()
            share = np.minimum(1.0, reach[None, :] / np.maximum(rel.matrices.island_load_mw[:, None], 1e-12))
            cons.append(rel.island <= (sites_in * share) @ b)
            reachable = island_reachable(data, sites_in, rel.matrices.island_load_mw)
            cons.append(rel.island <= reachable.astype(float))
        if n_isl and not native:
            value = data.voll_usd_per_mwh * (data.reliability.load_avg_mw @ rel.matrices.G) + 1.0
            blk = IntegerBlock.create(rel.island, np.zeros(n_isl), reachable.astype(float), value, "island")
            cons += blk.constraints
            integers.append(blk)
    costs = {
        "investment_annualised": cp.sum(cp.multiply(st["crf"].to_numpy(), capex)),
        "purchase": base * (cp.sum(cp.multiply(w * data.price_buy, p_imp)) - cp.sum(cp.multiply(w * data.price_sell, p_exp))),
        "om_fixed": cp.sum(cp.multiply(st["om_usd_per_mw_yr"].to_numpy(), cap_mw)),
        "om_energy": base * cp.sum(cp.multiply(st["om_usd_per_mwh"].to_numpy()[:, None] * w[None, :], p)),
    }
    if rel is not None and data.voll_usd_per_mwh > 0:
        costs["eens"] = data.voll_usd_per_mwh * rel.eens
    objective = cp.Minimize(COST_SCALE * sum(costs.values()))
    problem = cp.Problem(objective, cons)
    return PlanModel(
        data=data, problem=problem, build=b, modules=y, cap_mw=cap_mw, cap=cap, p_dg=p, q_dg=q, p_imp=p_imp,
        p_exp=p_exp, q_sub=q_sub,
        charge=ch, discharge=dis, soc=soc, flow=flow, costs=costs, integers=integers, reliability=rel,
    )
