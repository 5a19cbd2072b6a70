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

The model is a short list of blocks (:func:`build_plan_model`): investment,
renewables, storage, substation, network, feeder-wide caps, reliability, and
the cost terms above. It is built once. Integer variables are continuous
variables whose bounds are ``cp.Parameter``s, so a branch-and-bound re-solves
the same compiled problem with new bounds (``integral="relaxed"``);
``integral="native"`` declares them boolean/integer for a CVXPY mixed-integer
solver instead. :class:`PlanModel` is what :mod:`adnstudy.solve.mip` needs of a
model (:class:`~adnstudy.solve.integer.MixedIntegerModel`).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import cvxpy as cp
import numpy as np
import pandas as pd

from adnstudy.config.load import Case
from adnstudy.data.typical import HOURS, typical_days
from adnstudy.errors import InfeasibleError, SolveError
from adnstudy.formulation.assets import Renewables, Storage, renewable_block, storage_block
from adnstudy.formulation.distflow import (
    BranchFlowSOC,
    FlowSolution,
    Substation,
    at_buses,
    branch_flow_soc,
    substation_block,
)
from adnstudy.formulation.existing import (
    ExistingBlock,
    ExistingUnits,
    existing_generation_block,
    existing_units,
)
from adnstudy.formulation.families import Families
from adnstudy.formulation.investment import Investment, capacity_caps, crf, investment_block
from adnstudy.formulation.reliability import ReliabilityBlock, island_reachable, reliability_block
from adnstudy.network.feeder import Feeder
from adnstudy.network.limits import NetworkLimits
from adnstudy.problems.microgrid import MicrogridSchedule, read_schedule
from adnstudy.reliability.data import ReliabilityData
from adnstudy.solve.conic import FINAL, ConicSettings, solve_conic
from adnstudy.solve.decompose import Block, Decomposition
from adnstudy.solve.integer import IntegerBlock, Relaxation
from adnstudy.solve.mip import MipResult, MipSettings, diagnose_infeasible, solve_mip

COST_SCALE = 1e-6  # the solver sees millions of USD
#: Without storage a day splits into independent groups of hours, each with its own cut in the master: 24 groups
#: (hourly) took 4/7/4/7 iterations on the 33-bus plan (K = 8, 12; without, with reliability) but a master 3-4x
#: slower; 6 groups (4 hours each) 5/7/5/7 with the master as fast as one cut a day (6/8/6/8).
HOUR_GROUPS = 6
#: The annual cost components, in the order the plan's cost table lists them (0 where a case has none):
#: every key of PlanModel.costs is one of these.
COST_ITEMS = ("investment_annualised", "purchase", "om_fixed", "om_energy", "eens")


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
    limits: NetworkLimits
    max_total_mw: float | None
    budget_usd: float | None
    reliability: ReliabilityData | None = None  # None: no reliability constraints or indices
    reliability_limits: dict[str, float | None] = field(default_factory=dict)  # SAIDI (h), EENS (MWh), SAIFI
    voll_usd_per_mwh: float = 0.0
    #: the MGs' stand-alone exchanges at their PCCs (:func:`with_microgrids`), fixed injections of the plan
    mg_names: tuple[str, ...] = ()
    mg_pos: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))  # PCC bus positions
    mg_export: np.ndarray | None = None  # MG × snapshot, pu, export to the ADN (+) / import (−)
    #: the feeder's existing generation (None: none), operated by :func:`existing_generation_block`
    existing: ExistingUnits | None = None

    @property
    def n_snap(self) -> int:
        return self.n_days * self.hours

    @property
    def snap_weight(self) -> np.ndarray:
        """Hours of the year each snapshot stands for."""
        return np.repeat(self.days_weight, self.hours).astype(float)

    @property
    def res_rows(self) -> np.ndarray:
        """Candidates that generate from a resource (PV, wind)."""
        return np.flatnonzero((self.sites["tech"] != "storage").to_numpy())

    @property
    def storage_rows(self) -> np.ndarray:
        return np.flatnonzero((self.sites["tech"] == "storage").to_numpy())


#: The columns of PlanData.sites, one row per candidate site.
SITE_COLUMNS = ["site", "bus", "tech", "pos", "min_mw", "max_mw", "module_mw", "capex_usd_per_mw", "fixed_capex_usd",
                "crf", "om_usd_per_mwh", "om_usd_per_mw_yr", "tan_phi", "energy_mwh_per_mw", "efficiency", "islanding"]


def plan_data(case: Case, feeder: Feeder, typical: pd.DataFrame, weights: pd.DataFrame) -> PlanData:
    """Arrays from the case, its feeder and the typical days written by ``cluster`` (no candidate sites when the
    case has no candidates section: the ADN of a co-planning case whose MGs alone invest)."""
    cfg = case.config
    assert cfg.economics is not None and cfg.profiles is not None
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
    for i, site in enumerate(cfg.candidates.sites if cfg.candidates is not None else []):
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
    sites = pd.DataFrame(rows, columns=SITE_COLUMNS)
    buy, sell = td.tariffs(cfg.economics)
    peak = float(feeder.buses["p_mw"].sum())
    gens = feeder.generators
    existing = None if gens.empty else existing_units(
        gens, td.generator_availability(feeder), np.array([feeder.position(b) for b in gens["bus"]]), feeder.base_mva)
    cand = cfg.candidates
    return PlanData(
        feeder=feeder, n_days=K, hours=H, days_weight=td.days_weight,
        p_load=p_load, q_load=q_load, sites=sites, avail=np.array(avail).reshape(len(rows), K * H),
        price_buy=buy.ravel(), price_sell=sell.ravel(), limits=NetworkLimits.of(cfg.network, feeder),
        max_total_mw=None if cand is None or cand.max_penetration is None else cand.max_penetration * peak,
        budget_usd=cand.budget_usd if cand is not None else None, existing=existing,
    )


def _on_snapshots(data: PlanData, days_weight: np.ndarray, per_day: Callable[[np.ndarray], np.ndarray]) -> PlanData:
    """The data with every snapshot array (last axis: scenario-major hours) mapped by ``per_day`` on its
    scenario × hour view (returning scenario' × hour), over the scenarios ``days_weight`` weighs."""
    from dataclasses import replace

    K, H = data.n_days, data.hours

    def snaps(x: np.ndarray) -> np.ndarray:
        out = per_day(x.reshape(*x.shape[:-1], K, H))
        return out.reshape(*out.shape[:-2], out.shape[-2] * out.shape[-1])  # explicit: an empty array has no −1

    return replace(
        data, n_days=len(days_weight), days_weight=np.asarray(days_weight, dtype=float), p_load=snaps(data.p_load),
        q_load=snaps(data.q_load), avail=snaps(data.avail), price_buy=snaps(data.price_buy),
        price_sell=snaps(data.price_sell), mg_export=None if data.mg_export is None else snaps(data.mg_export),
        existing=None if data.existing is None else replace(data.existing, available=snaps(data.existing.available)),
    )


def coarse_data(data: PlanData) -> PlanData:
    """The same planning problem over one day: the scenarios' weighted mean of each hour.

    About K times smaller; its relaxed solution proposes integer patterns for the
    full model's branch-and-bound while the full root is being solved.
    """
    w = data.days_weight / data.days_weight.sum()
    return _on_snapshots(data, np.array([data.days_weight.sum()]),
                         lambda x: np.tensordot(x, w, axes=([-2], [0]))[..., None, :])


def scenario_data(data: PlanData, k: int) -> PlanData:
    """The planning data of scenario (typical day) ``k`` alone, with its weight."""
    return _on_snapshots(data, data.days_weight[k : k + 1], lambda x: x[..., k : k + 1, :])


def with_microgrids(case: Case, data: PlanData, typical: pd.DataFrame, weights: pd.DataFrame,
                    settings: ConicSettings) -> tuple[PlanData, list[list[MicrogridSchedule]], list[str]]:
    """Add the case's MGs as fixed exchanges at their PCCs: their stand-alone schedules per typical day.

    Each MG runs its own model at the day's tariffs and trades only with the ADN,
    as it would without a market; the operator keeps the exchanges within the
    feeder's limits (unity power factor at the PCC). That is the disagreement
    market of ``dispatch`` on the feeder as it is (a centralised SOCP per day:
    the MGs' costs plus the losses at the wholesale price); where the feeder
    does not bind it is each MG's own optimum. The plan's network must carry
    these exchanges. Returns the data, the schedules (scenario × MG) and each day's solve status
    (``settings`` a reference profile: ``optimal`` only within its accuracy).
    """
    from dataclasses import replace

    from adnstudy.errors import SolverStatusError
    from adnstudy.problems.dispatch import centralised_model, diagnose_day, dispatch_days

    if not case.config.microgrids:
        return data, [], []
    td = typical_days(case, typical, weights)
    schedules, statuses = [], []
    for day in dispatch_days(case, data.feeder, td):
        model = centralised_model(day, trading=False)
        try:
            statuses.append(solve_conic(model.problem, settings, what=f"the microgrids' stand-alone exchanges on "
                                                                      f"typical day {day.scenario}"))
        except SolverStatusError as exc:
            raise SolveError(f"the microgrids' stand-alone exchanges on typical day {day.scenario} cannot be "
                             f"carried by the feeder (solver status '{exc.status}'): {diagnose_day(day, settings)}; "
                             "no results were written") from None
        schedules.append([read_schedule(d, b) for d, b in zip(day.mgs, model.mgs, strict=True)])
    export = np.stack([np.concatenate([day[m].export_pu for day in schedules]) for m in range(len(schedules[0]))])
    mgs = case.config.microgrids
    return replace(data, mg_names=tuple(mg.name for mg in mgs),
                   mg_pos=np.array([data.feeder.position(mg.bus) for mg in mgs]), mg_export=export), schedules, statuses


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


#: What makes an infeasible plan infeasible: each step drops these families and, if that solves, says this.
RELAXATIONS = (
    Relaxation("voltage", ("network.voltage_limits",),
               "the voltage limits cannot be met: widen network.v_min_pu / v_max_pu or the substation range "
               "network.v_substation_range_pu (the 33-bus base case reaches 0.913 pu at 1.0 pu)"),
    Relaxation("current", ("network.current_limits",),
               "the branch ratings cannot be met: raise rating_a or network.branch_rating_factor"),
    Relaxation("existing", ("existing.must_take",),
               "the existing generation's must-take output cannot be carried (reverse flow, over-voltage): mark "
               "units curtailable in the generator table, or raise the export limit, v_max_pu or the ratings"),
    Relaxation("substation", ("substation.import_limit", "substation.export_limit"),
               "the substation import/export limits cannot be met: raise network.p_import_max_mw / p_export_max_mw"),
    Relaxation("caps", ("caps.penetration", "caps.budget"),
               "the feeder-wide caps leave no feasible plan: raise candidates.max_penetration or candidates.budget_usd"),
    Relaxation("reliability", ("reliability.limits",),
               "the reliability constraint (reliability.saidi_limit_h / eens_limit_mwh) cannot be met even with every "
               "candidate built and islanding: relax the limit, add switches, or add candidates"),
)


@dataclass(frozen=True)
class PlanSolution:
    """A solved plan, copied out of the model right after its final solve (per unit unless named)."""

    build: np.ndarray  # 0/1 per candidate
    capacity_mw: np.ndarray  # the capacity variable per candidate, as solved
    p_res: np.ndarray  # RES candidate × snapshot (rows: PlanData.res_rows)
    q_res: np.ndarray
    charge: np.ndarray  # storage candidate × snapshot (rows: PlanData.storage_rows)
    discharge: np.ndarray
    soc: np.ndarray
    p_import: np.ndarray  # per snapshot
    p_export: np.ndarray
    flow: FlowSolution
    p_existing: np.ndarray  # existing unit × snapshot (rows: PlanData.existing; empty without)
    q_existing: np.ndarray
    costs_usd: dict[str, float]
    island: np.ndarray  # 0/1 per island (empty without reliability)
    unavailability_h: np.ndarray | None  # per bus, h/yr (None without reliability)
    saidi_h: float | None
    saifi: float | None
    eens_mwh: float | None

    @property
    def built_mw(self) -> np.ndarray:
        """Capacity of the built candidates (0 where not built)."""
        return np.where(self.build > 0, np.maximum(self.capacity_mw, 0.0), 0.0)

    @property
    def total_usd(self) -> float:
        return sum(self.costs_usd.values())


@dataclass
class PlanModel:
    """The planning model: its blocks, named constraint families and annual cost terms."""

    data: PlanData
    objective: cp.Minimize
    problem: cp.Problem
    families: Families
    investment: Investment
    renewables: Renewables  # over PlanData.res_rows
    storage: Storage | None  # over PlanData.storage_rows
    substation: Substation
    network: BranchFlowSOC
    reliability: ReliabilityBlock | None
    costs: dict[str, cp.Expression]  # annual USD
    existing: ExistingBlock | None = None
    integers: list[IntegerBlock] = field(default_factory=list)
    #: the MGs' exchanges are data (not another block's expression): the operation splits by typical day
    decomposable: bool = True
    label = "the planning model"
    usd_per_unit = 1.0 / COST_SCALE
    relaxations = RELAXATIONS

    @property
    def objective_usd(self) -> float:
        return float(self.problem.value) / COST_SCALE

    def integer_vars(self) -> list[cp.Variable]:
        """The integer decisions, in the order of :attr:`integers` (build, modules, island success)."""
        inv = self.investment
        out = [inv.build] + ([inv.modules] if inv.modules is not None else [])
        if self.reliability is not None and self.reliability.island.size:
            out.append(self.reliability.island)
        return out

    def fix_integers(self, values: list[np.ndarray]) -> None:
        for blk, v in zip(self.integers, values, strict=True):
            blk.set_bounds(np.round(v), np.round(v))

    def decomposition(self) -> Decomposition | None:
        """The plan as a master over its investments and one operation block per typical day
        (:mod:`adnstudy.solve.decompose`): the days share nothing but the capacities, x."""
        data = self.data
        J = len(data.sites)
        if not self.decomposable or not J:
            return None
        decisions = investments_block(data, native=True)
        inv, rel = decisions.investment, decisions.reliability
        blocks = []
        # without storage a day's hours share nothing but x either: each group of hours gets its own cut
        groups = HOUR_GROUPS if not len(data.storage_rows) else 1
        of = np.arange(data.hours) * groups // data.hours  # hour -> group
        member = (of[None, :] == np.arange(groups)[:, None]).astype(float)  # group × hour
        for k in range(data.n_days):
            x = cp.Parameter(J, nonneg=True, name="capacity_mw")
            copy = cp.Variable((J, groups), name="capacity_mw")
            day = scenario_data(data, k)
            op = operation_block(day, copy @ member if groups > 1 else copy[:, 0])
            link = copy == cp.reshape(x, (J, 1), order="F") @ np.ones((1, groups))
            cost = COST_SCALE * sum(op.snapshot_costs.values())
            part_cost = member @ cost
            problem = cp.Problem(cp.Minimize(cp.sum(cost)), [*op.families.constraints(), link])
            blocks.append(Block(x=x, link=link, problem=problem, parts=part_cost,
                                what=f"the operation of typical day {k}"))
        integers = [inv.build] + ([inv.modules] if inv.modules is not None else [])
        if rel is not None and rel.island.size:
            integers.append(rel.island)
        return Decomposition(x=inv.capacity_mw, x_lo=np.zeros(J), x_hi=data.sites["max_mw"].to_numpy(dtype=float),
                             cost=COST_SCALE * sum(decisions.costs.values()),
                             constraints=decisions.families.constraints(), integers=integers, blocks=blocks)

    def linking_values(self) -> np.ndarray:
        """The capacities (MW) of the current solution: the decomposition's linking decisions."""
        return np.array(self.investment.capacity_mw.value, dtype=float)

    def rounding_inputs(self) -> list[np.ndarray]:
        """Capacities (MW), modules and islands of the current solution."""
        inv, rel = self.investment, self.reliability
        y = inv.modules.value if inv.modules is not None else np.empty(0)
        z = rel.island.value if rel is not None and rel.island.size else np.empty(0)
        return [np.array(inv.capacity_mw.value, dtype=float), np.array(y, dtype=float), np.array(z, dtype=float)]

    def round(self, inputs: list[np.ndarray]) -> list[list[np.ndarray]]:
        """Integer patterns from a relaxed solution, most promising first.

        Build where the relaxation uses at least half of a site's fixed cost
        (b ≥ 0.5, i.e. capacity ≥ half the maximum), then where it installs at least
        1 % or any capacity at all; modules rounded to nearest and up; islands that
        the relaxation mostly takes and that can succeed with the build, or none.
        """
        cap_mw, y, z = inputs
        max_mw = self.data.sites["max_mw"].to_numpy()
        frac = cap_mw / max_mw
        modular = self.investment.modules is not None
        builds = [(frac >= threshold).astype(float) for threshold in (0.5, 1e-2, 1e-4)]
        if modular:
            builds.append((frac >= 1e-4).astype(float))
        patterns = []
        for i, build in enumerate(builds):
            out = [build]
            if modular:
                out.append(np.round(y) if i < 3 else np.ceil(y - 1e-6))
            if not z.size:
                patterns.append(out)
                continue
            mat = self.reliability.matrices
            reachable = island_reachable(self.data.reliability, mat.island_sites * build[None, :], mat.island_load_mw,
                                         max_mw)
            for z_pattern in ((z >= 0.5) & reachable, (z >= 1e-2) & reachable, np.zeros(z.size, dtype=bool)):
                patterns.append([*out, z_pattern.astype(float)])
        return patterns

    def settle_integers(self) -> list[np.ndarray] | None:
        """Island success as the fault-enumeration evaluator rules it for the solved capacities.

        A success the search left at 0 only shortens outages, so every limit still
        holds; the solver repeats the final solve while the rule disagrees.
        """
        rel = self.reliability
        if rel is None or not rel.island.size:
            return None
        from adnstudy.reliability.evaluate import ISLAND_TOL_MW

        mat = rel.matrices
        supply = (mat.island_sites * self.data.reliability.site_credit[None, :]) @ np.maximum(
            self.investment.capacity_mw.value, 0)
        rule = ((supply > 0) & (supply >= mat.island_load_mw - ISLAND_TOL_MW)).astype(float)
        if np.array_equal(rule, np.round(rel.island.value)):
            return None
        return [np.round(v.value) for v in self.integer_vars()[:-1]] + [rule]

    def no_integer_solution(self, detail: str) -> str:
        d = self.data
        limits = {k: v for k, v in d.reliability_limits.items() if v is not None} if d.reliability else {}
        if limits:
            named = ", ".join(f"{k} <= {v:g}" for k, v in limits.items())
            return (f"the planning model has no feasible 0-1 plan ({detail}); the likely cause is the reliability "
                    f"constraint ({named}): islands succeed only as whole areas, so the relaxation's partial islands "
                    "reach limits no real plan can; relax reliability.saidi_limit_h / eens_limit_mwh")
        return f"the planning model has no feasible 0-1 plan: {detail}; check min_mw, modules and caps"

    def solution(self) -> PlanSolution:
        """The solved plan as arrays (call right after the final solve)."""
        val = lambda x: np.array(x.value, dtype=float)  # noqa: E731
        inv, sto, rel = self.investment, self.storage, self.reliability
        empty = np.zeros((0, self.data.n_snap))
        return PlanSolution(
            build=np.round(val(inv.build)), capacity_mw=val(inv.capacity_mw),
            p_res=val(self.renewables.p), q_res=val(self.renewables.q),
            charge=val(sto.charge) if sto else empty, discharge=val(sto.discharge) if sto else empty,
            soc=val(sto.soc) if sto else empty,
            p_import=val(self.substation.p_import), p_export=val(self.substation.p_export),
            flow=self.network.solution(), costs_usd={k: float(v.value) for k, v in self.costs.items()},
            p_existing=val(self.existing.p) if self.existing is not None else empty,
            q_existing=val(self.existing.q) if self.existing is not None else empty,
            island=np.round(val(rel.island)) if rel is not None else np.empty(0),
            unavailability_h=val(rel.unavail) if rel is not None else None,
            saidi_h=float(rel.saidi.value) if rel is not None else None,
            saifi=rel.saifi if rel is not None else None,
            eens_mwh=float(rel.eens.value) if rel is not None else None,
        )


@dataclass
class Operation:
    """The plan's operation over its snapshots for given capacities: units, substation and network."""

    renewables: Renewables  # over PlanData.res_rows
    storage: Storage | None  # over PlanData.storage_rows
    substation: Substation
    network: BranchFlowSOC
    existing: ExistingBlock | None
    costs: dict[str, cp.Expression]  # annual USD: purchase, om_energy
    families: Families
    snapshot_costs: dict[str, cp.Expression]  # the same per snapshot (vectors)


def operation_block(data: PlanData, capacity_mw: cp.Expression, mg_export: cp.Expression | None = None) -> Operation:
    """The candidates' output and storage within ``capacity_mw`` (per candidate, MW), the substation, the
    existing units and the DistFlow network over ``data``'s snapshots, with their annual energy costs.

    ``mg_export`` (MG × snapshot): the MGs' PCC exports as an expression of another block (co-planning)
    instead of the fixed ``data.mg_export``.
    """
    fd, st = data.feeder, data.sites
    base, S, w = fd.base_mva, data.n_snap, data.snap_weight
    res, sto = data.res_rows, data.storage_rows
    cap = capacity_mw / base
    dg = renewable_block(data.avail[res], cap[res], tan_phi=st["tan_phi"].to_numpy()[res], name="dg")
    storage = None
    if len(sto):
        eta = st["efficiency"].to_numpy()[sto]
        storage = storage_block(S, data.hours, cap[sto], cp.multiply(st["energy_mwh_per_mw"].to_numpy()[sto], cap[sto]),
                                eta_charge=eta, eta_discharge=eta, units=len(sto))
    sub = substation_block(S, data.limits, split=True)
    p_sub, q_sub = sub.injection(fd.n_bus)
    p_inj = at_buses(fd.n_bus, st["pos"].to_numpy()[res]) @ dg.p + p_sub
    q_inj = at_buses(fd.n_bus, st["pos"].to_numpy()[res]) @ dg.q + q_sub
    if storage is not None:
        p_inj = p_inj + at_buses(fd.n_bus, st["pos"].to_numpy()[sto]) @ storage.net
    export = mg_export if mg_export is not None else data.mg_export
    if export is not None:
        p_inj = p_inj + at_buses(fd.n_bus, data.mg_pos) @ export
    existing = None  # sunk: no cost term; its energy saves imports (formulation/existing.py)
    if data.existing is not None:
        existing = existing_generation_block(data.existing, fd.n_bus)
        p_inj, q_inj = p_inj + existing.p_bus, q_inj + existing.q_bus
    network = branch_flow_soc(fd, data.limits, S, p_inj, q_inj, data.p_load, data.q_load)
    by_snapshot = {
        "purchase": base * (cp.multiply(w * data.price_buy, sub.p_import) - cp.multiply(w * data.price_sell, sub.p_export)),
        "om_energy": base * cp.multiply(w, st["om_usd_per_mwh"].to_numpy()[res] @ dg.p),
    }
    costs = {
        "purchase": base * (cp.sum(cp.multiply(w * data.price_buy, sub.p_import))
                            - cp.sum(cp.multiply(w * data.price_sell, sub.p_export))),
        "om_energy": base * cp.sum(cp.multiply(st["om_usd_per_mwh"].to_numpy()[res][:, None] * w[None, :], dg.p)),
    }
    families = Families().update_from(dg.families, storage.families if storage else None,
                                      existing.families if existing else None, sub.families, network.families)
    return Operation(renewables=dg, storage=storage, substation=sub, network=network, existing=existing, costs=costs,
                     families=families, snapshot_costs=by_snapshot)


@dataclass
class Investments:
    """The plan's decisions that do not depend on the operation: build, size, caps and island success."""

    investment: Investment
    reliability: ReliabilityBlock | None
    caps: Families  # caps.penetration, caps.budget
    costs: dict[str, cp.Expression]  # annual USD: investment_annualised, om_fixed, eens

    @property
    def families(self) -> Families:
        rel = self.reliability.families if self.reliability is not None else None
        return Families().update_from(self.investment.families, self.caps, rel)


def investments_block(data: PlanData, *, native: bool) -> Investments:
    """Candidates' 0-1 build and sizes within the feeder-wide caps, and the reliability block on them, with their
    annual costs (annualised investment, fixed O&M, EENS at the value of lost load)."""
    st = data.sites
    inv = investment_block(st, native=native)
    caps = capacity_caps(inv, data.res_rows, data.max_total_mw, data.budget_usd)
    rel = None
    if data.reliability is not None:
        rel = reliability_block(data.reliability, inv.capacity_mw, inv.build, st["max_mw"].to_numpy(),
                                data.reliability_limits, data.voll_usd_per_mwh, native=native)
    costs = {"investment_annualised": inv.annualised_usd,
             "om_fixed": cp.sum(cp.multiply(st["om_usd_per_mw_yr"].to_numpy(), inv.capacity_mw))}
    if rel is not None and data.voll_usd_per_mwh > 0:
        costs["eens"] = data.voll_usd_per_mwh * rel.eens
    return Investments(investment=inv, reliability=rel, caps=caps, costs=costs)


def build_plan_model(data: PlanData, integral: Literal["relaxed", "native"] = "relaxed",
                     mg_export: cp.Expression | None = None) -> PlanModel:
    """Build the planning model once, from its blocks (the maths: module docstring, docs/plan.md).

    ``mg_export`` (MG × snapshot): the MGs' PCC exports as an expression of another block (co-planning)
    instead of the fixed ``data.mg_export``.
    """
    decisions = investments_block(data, native=integral == "native")
    inv, rel = decisions.investment, decisions.reliability
    op = operation_block(data, inv.capacity_mw, mg_export)
    parts = {**decisions.costs, **op.costs}
    costs = {k: parts[k] for k in COST_ITEMS if k in parts}
    # the families in the order the model always had them (a reordering moves Clarabel's point on flat optima)
    families = Families().update_from(inv.families, op.renewables.families,
                                      op.storage.families if op.storage else None,
                                      op.existing.families if op.existing else None, op.substation.families,
                                      op.network.families, decisions.caps, rel.families if rel else None)
    objective = cp.Minimize(COST_SCALE * sum(costs.values()))
    return PlanModel(
        data=data, objective=objective, problem=families.problem(objective), families=families, investment=inv,
        renewables=op.renewables, storage=op.storage, substation=op.substation, network=op.network, reliability=rel,
        costs=costs, existing=op.existing, integers=inv.integers + (rel.integers if rel is not None else []),
        decomposable=mg_export is None,
    )


def solve_plan(data: PlanData, settings: MipSettings) -> MipResult:
    """The MISOCP by the case's strategy (:func:`~adnstudy.solve.mip.solve_mip`), seeded by the one-day model."""
    coarse = (lambda: build_plan_model(coarse_data(data))) if data.n_days > 1 else None
    result = solve_mip(lambda native: build_plan_model(data, "native" if native else "relaxed"), settings,
                       coarse=coarse)
    gc.collect()  # the search's other model copies and the coarse model hold reference cycles: free them now
    return result


@dataclass(frozen=True)
class Baseline:
    """The no-investment baseline: the plan's operating model with nothing built, solved once."""

    status: str  # the solver's status, or "infeasible" / the failure's status
    solution: PlanSolution | None  # None when the network cannot operate without the plan
    reason: str | None = None  # why there is no solution


def no_investment_baseline(data: PlanData, settings: ConicSettings = FINAL, model: PlanModel | None = None
                           ) -> Baseline:
    """The same model (network, limits, prices, reliability) with every build, module and island fixed at 0.

    One SOCP: the annual cost of operating the network as it is, against which the plan's saving is
    measured. A network that cannot meet its limits without new capacity has no baseline; the reason
    is the first constraint family whose removal makes it feasible (:data:`RELAXATIONS`).

    ``model``: the plan's own relaxed model of ``data``, once its solution has been read
    (:meth:`PlanModel.solution`), re-solved with its integers fixed at 0 instead of building and compiling a
    second model (on large feeders the compiled model and Clarabel's workspace are most of the memory).
    """
    model = model if model is not None else build_plan_model(data)
    model.fix_integers([np.zeros_like(block.lo0, dtype=float) for block in model.integers])
    try:
        status = solve_conic(model.problem, settings, "the no-investment baseline")
    except InfeasibleError as exc:
        return Baseline(exc.status, None, diagnose_infeasible(model, settings))
    except SolveError as exc:
        return Baseline(getattr(exc, "status", "solver_error"), None, str(exc))
    return Baseline(status, model.solution())
