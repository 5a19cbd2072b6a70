"""Day-ahead dispatch of microgrids (MGs) and the ADN with bilateral trading: the models.

One typical day of H hours, per unit on the feeder's power base (``B`` MVA).
See docs/dispatch.md for the full statement.

**MGs**: :mod:`adnstudy.problems.microgrid` (their block and agent). Trades
``s_mn`` are m's signed sales to n; reciprocity s_mn + s_nm = 0 clears them
(:mod:`adnstudy.formulation.market`).

**ADN** (public network data): DistFlow with the SOC relaxation over the day
(:mod:`adnstudy.formulation.distflow`), bus loads from the typical day, MG
exports p_x at the PCC buses (unity power factor), a signed substation
exchange, loss cost = wholesale price × B × Σ r ℓ.

Every block is one set of matrix expressions over the day; the agents build
their CVXPY problems once and re-solve them with updated ``cp.Parameter``s.
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import pandas as pd

from adnstudy.config.load import Case
from adnstudy.data.typical import HOURS, TypicalDays
from adnstudy.errors import SolveError
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
from adnstudy.formulation.market import reciprocity
from adnstudy.network.feeder import Feeder
from adnstudy.network.limits import NetworkLimits
from adnstudy.problems.microgrid import (
    MG_HINT,
    MicrogridAgent,
    MicrogridBlock,
    MicrogridData,
    microgrid_block,
    microgrid_days,
)
from adnstudy.solve.compiled import CompiledProblem
from adnstudy.solve.conic import AGENT, DEFAULT, ConicSettings, solve_conic
from adnstudy.solve.elastic import Violation, largest_violation


# ----------------------------------------------------------------------------- data
@dataclass(frozen=True)
class PlannedAssets:
    """What a plan built, as the ADN operates it over one day (per unit; capacities from ``plan/investment``).

    RES output is curtailable within its availability and power-factor range;
    storage cycles daily as in the plan.
    """

    site: np.ndarray  # candidate index (row of candidates.sites), one per built unit
    bus: np.ndarray
    tech: np.ndarray
    pos: np.ndarray  # bus positions
    capacity_pu: np.ndarray  # RES: rated power; storage: power
    avail: np.ndarray  # RES unit × H availability per unit of capacity (storage rows unused)
    tan_phi: np.ndarray
    om_usd_per_mwh: np.ndarray
    energy_pu: np.ndarray  # storage energy (pu·h), 0 for RES
    efficiency: np.ndarray

    @property
    def res(self) -> np.ndarray:
        return np.flatnonzero(self.tech != "storage")

    @property
    def storage(self) -> np.ndarray:
        return np.flatnonzero(self.tech == "storage")


@dataclass(frozen=True)
class ADNData:
    """The operator's public network data for one day."""

    feeder: Feeder
    p_load_pu: np.ndarray  # bus × H
    q_load_pu: np.ndarray
    mg_pos: np.ndarray  # PCC bus positions, one per MG
    pcc_limit_pu: np.ndarray
    wholesale_usd_per_mwh: float
    limits: NetworkLimits
    assets: PlannedAssets | None = None  # the plan's DG and storage (None: the bare feeder)
    existing: ExistingUnits | None = None  # the feeder's existing generation over the day (None: none)

    @property
    def hours(self) -> int:
        return self.p_load_pu.shape[1]


@dataclass(frozen=True)
class DayData:
    scenario: int  # typical day (scenario id of cluster/typical)
    weight_days: float
    adn: ADNData
    mgs: list[MicrogridData]

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """Unordered trading pairs (m < n) by MG index."""
        M = len(self.mgs)
        return [(m, n) for m in range(M) for n in range(m + 1, M)]


def pair_fees(case: Case, feeder: Feeder) -> np.ndarray:
    """M × M fee (USD/MWh) of each pair: flat, or per ohm of the PCC-to-PCC path resistance."""
    mk = case.config.market
    mgs = case.config.microgrids or []
    assert mk is not None
    M = len(mgs)
    if mk.fee_mode == "flat":
        fees = np.full((M, M), mk.fee_usd_per_mwh)
    else:
        pos = [feeder.position(mg.bus) for mg in mgs]
        path = feeder.path.toarray()  # branch × bus
        r = feeder.branches["r_ohm"].to_numpy()
        fees = np.array([[mk.fee_usd_per_mwh * r @ np.abs(path[:, a] - path[:, b]) for b in pos] for a in pos])
    np.fill_diagonal(fees, 0.0)
    return fees


def planned_assets(case: Case, feeder: Feeder, td: TypicalDays, investment: pd.DataFrame,
                   source: str) -> list[PlannedAssets]:
    """Per typical day, the units a plan built (rows of ``plan/investment`` with ``build``), with the case's
    candidate data (availability series, power factor, O&M, storage ratio and efficiency)."""
    cand = case.config.candidates
    sites = cand.sites if cand is not None else []
    if len(investment) != len(sites) or list(investment["bus"]) != [s.bus for s in sites] \
            or list(investment["tech"]) != [s.tech for s in sites]:
        raise case.error(
            f"the plan in {source} was made for other candidate sites than this case's ({len(investment)} rows, "
            f"{len(sites)} candidates): re-run 'adnstudy plan' for this case, or run dispatch with --no-plan",
            "candidates")
    built = np.flatnonzero(investment["build"].to_numpy(dtype=bool) & (investment["capacity_mw"].to_numpy() > 0))
    B = feeder.base_mva
    cap = investment["capacity_mw"].to_numpy(dtype=float)[built]
    chosen = [sites[i] for i in built]
    out = []
    for k in range(td.n_days):
        avail = np.array([td.of_kind(s.tech, s.profile)[k] if s.tech != "storage" else np.ones(HOURS)
                          for s in chosen]).reshape(len(chosen), HOURS)
        out.append(PlannedAssets(
            site=built, bus=np.array([s.bus for s in chosen], dtype=int),
            tech=np.array([s.tech for s in chosen], dtype=object),
            pos=np.array([feeder.position(s.bus) for s in chosen], dtype=int), capacity_pu=cap / B, avail=avail,
            tan_phi=np.array([np.tan(np.arccos(s.pf_min)) for s in chosen]),
            om_usd_per_mwh=np.array([s.om_usd_per_mwh for s in chosen]),
            energy_pu=np.array([(s.energy_mwh_per_mw or 0.0) for s in chosen]) * cap / B,
            efficiency=np.array([s.efficiency for s in chosen]),
        ))
    return out


def dispatch_days(case: Case, feeder: Feeder, td: TypicalDays, assets: list[PlannedAssets] | None = None
                  ) -> list[DayData]:
    """Per typical day, the ADN's data (with the plan's assets, if given) and each MG's private data."""
    cfg = case.config
    eco, mk, net = cfg.economics, cfg.market, cfg.network
    assert eco is not None and cfg.microgrids
    B = feeder.base_mva
    if mk is not None:  # the market's trading pairs and fees (without it, as in planning: no bilateral trades)
        share = {"seller": 1.0, "buyer": 0.0, "split": 0.5}[mk.fee_payer]
        mgs_by_day = microgrid_days(case, feeder, td, fees=pair_fees(case, feeder), seller_share=share)
    else:
        mgs_by_day = microgrid_days(case, feeder, td)
    mult = td.bus_load_multipliers(feeder).reshape(feeder.n_bus, td.n_days, HOURS)
    limits = NetworkLimits.of(net, feeder)
    mg_pos = np.array([feeder.position(mg.bus) for mg in cfg.microgrids])
    gens = feeder.generators
    existing = None if gens.empty else existing_units(
        gens, td.generator_availability(feeder), np.array([feeder.position(b) for b in gens["bus"]]), B)
    days = []
    for k, scenario in enumerate(td.scenarios):
        adn = ADNData(
            feeder=feeder, p_load_pu=feeder.p_load_pu[:, None] * mult[:, k], q_load_pu=feeder.q_load_pu[:, None] * mult[:, k],
            mg_pos=mg_pos, pcc_limit_pu=np.array([mg.pcc_limit_mw / B for mg in cfg.microgrids]),
            wholesale_usd_per_mwh=float(eco.wholesale_price_usd_per_mwh or 0.0), limits=limits,
            assets=assets[k] if assets is not None else None,
            existing=existing.select(slice(k * HOURS, (k + 1) * HOURS)) if existing is not None else None,
        )
        days.append(DayData(scenario=int(scenario), weight_days=float(td.days_weight[k]), adn=adn,
                            mgs=mgs_by_day[k]))
    return days


# ----------------------------------------------------------------------- ADN block
@dataclass
class ADNBlock:
    network: BranchFlowSOC
    substation: Substation
    families: Families
    cost_usd: cp.Expression  # over the day: losses − own DG/storage output at the wholesale price, + DG O&M
    dg: Renewables | None = None  # the plan's RES units (PlannedAssets.res)
    storage: Storage | None = None  # the plan's storage units (PlannedAssets.storage)
    existing: ExistingBlock | None = None  # the feeder's existing generation (ADNData.existing)


#: Where the network cannot take more of its units' power, the ADN could curtail it or burn it in fictitious
#: losses of the relaxed branch flow at the same cost; valuing the units' energy this much below the wholesale
#: price makes curtailing strictly cheaper, so the SOC relaxation stays exact (without it a windy 69-bus day
#: on the planned network ended 8.6e-4 pu from the AC power flow).
CURTAIL_PREFERENCE_USD_PER_MWH = 0.1


def adn_block(d: ADNData, export: cp.Expression) -> ADNBlock:
    """DistFlow over the day with the MGs' PCC exports (MG × H expression) injected at their buses,
    and the plan's units (if any) at theirs.

    The ADN's loads are fixed, so what its operation changes of its energy bill
    (wholesale price × B × energy) is the losses less what its own units inject;
    its RES add their O&M per MWh (and :data:`CURTAIL_PREFERENCE_USD_PER_MWH`).
    The feeder's existing generation (:func:`existing_generation_block`) counts as
    its own units: no cost of its own (sunk), its energy saves imports at the
    wholesale price, less the same curtailment preference.
    """
    fd, H, B = d.feeder, d.hours, d.feeder.base_mva
    sub = substation_block(H, d.limits, split=False)
    p_sub, q_sub = sub.injection(fd.n_bus)
    p_inj = p_sub + at_buses(fd.n_bus, d.mg_pos) @ export
    q_inj = q_sub
    families = Families().update_from(sub.families)
    dg = storage = None
    own: cp.Expression | float = 0.0  # own units' net injection over the day, pu·h
    om: cp.Expression | float = 0.0
    a = d.assets
    if a is not None and len(a.res):
        r = a.res
        dg = renewable_block(a.avail[r], a.capacity_pu[r], tan_phi=a.tan_phi[r], name="adn_dg")
        p_inj = p_inj + at_buses(fd.n_bus, a.pos[r]) @ dg.p
        q_inj = q_inj + at_buses(fd.n_bus, a.pos[r]) @ dg.q
        own = own + cp.sum(dg.p)
        om = B * cp.sum((a.om_usd_per_mwh[r] + CURTAIL_PREFERENCE_USD_PER_MWH) @ dg.p)
        families.update_from(dg.families)
    existing = None
    if d.existing is not None:
        existing = existing_generation_block(d.existing, fd.n_bus, name="adn_existing")
        p_inj, q_inj = p_inj + existing.p_bus, q_inj + existing.q_bus
        own = own + cp.sum(existing.p)
        om = om + B * CURTAIL_PREFERENCE_USD_PER_MWH * cp.sum(existing.p)
        families.update_from(existing.families)
    if a is not None and len(a.storage):
        st = a.storage
        storage = storage_block(H, H, a.capacity_pu[st], a.energy_pu[st], eta_charge=a.efficiency[st],
                                eta_discharge=a.efficiency[st], units=len(st), name="adn_storage")
        p_inj = p_inj + at_buses(fd.n_bus, a.pos[st]) @ storage.net
        own = own + cp.sum(storage.net)
        families.update_from(storage.families)
    network = branch_flow_soc(fd, d.limits, H, p_inj, q_inj, d.p_load_pu, d.q_load_pu)
    cost = d.wholesale_usd_per_mwh * B * (cp.sum(fd.r_pu @ network.ell) - own) + om
    return ADNBlock(network=network, substation=sub, families=families.update_from(network.families),
                    cost_usd=cost, dg=dg, storage=storage, existing=existing)


@dataclass(frozen=True)
class ADNSolution:
    """The ADN's solved day (copied out right after its solve): targets, network point, own units, cost."""

    targets_pu: np.ndarray  # MG × H, the PCC exports the ADN plans for
    flow: FlowSolution
    p_substation_pu: np.ndarray  # H, import (+) / export (−)
    cost_usd: float  # losses − own units' output at the wholesale price, + DG O&M
    p_dg_pu: np.ndarray  # RES unit × H (PlannedAssets.res; empty on the bare feeder)
    q_dg_pu: np.ndarray
    storage_net_pu: np.ndarray  # storage unit × H, discharge − charge
    soc_pu: np.ndarray  # storage unit × H, pu·h
    p_existing_pu: np.ndarray  # existing unit × H (ADNData.existing; empty without)
    q_existing_pu: np.ndarray

    @classmethod
    def of(cls, block: ADNBlock, targets_pu: np.ndarray) -> ADNSolution:
        H = targets_pu.shape[1]
        val = lambda x: np.array(x.value, dtype=float)  # noqa: E731
        empty = np.zeros((0, H))
        return cls(
            targets_pu=targets_pu, flow=block.network.solution(),
            p_substation_pu=val(block.substation.p), cost_usd=float(block.cost_usd.value),
            p_dg_pu=val(block.dg.p) if block.dg is not None else empty,
            q_dg_pu=val(block.dg.q) if block.dg is not None else empty,
            storage_net_pu=val(block.storage.net) if block.storage is not None else empty,
            soc_pu=val(block.storage.soc) if block.storage is not None else empty,
            p_existing_pu=val(block.existing.p) if block.existing is not None else empty,
            q_existing_pu=val(block.existing.q) if block.existing is not None else empty,
        )

    def injections(self, d: ADNData) -> tuple[np.ndarray, np.ndarray]:
        """Bus × H injections of the ADN's own units (the plan's and the existing ones)."""
        p = np.zeros_like(d.p_load_pu)
        q = np.zeros_like(d.q_load_pu)
        if d.existing is not None:
            np.add.at(p, d.existing.pos, self.p_existing_pu)
            np.add.at(q, d.existing.pos, self.q_existing_pu)
        if d.assets is not None:
            np.add.at(p, d.assets.pos[d.assets.res], self.p_dg_pu)
            np.add.at(q, d.assets.pos[d.assets.res], self.q_dg_pu)
            np.add.at(p, d.assets.pos[d.assets.storage], self.storage_net_pu)
        return p, q


class ADNAgent:
    """The operator: network, its loads and the PCC targets; sees only the MGs' exchanged p_x.

    Upper-level ATC subproblem: loss cost + ρ_pcc ‖T − R‖² + v·T for the MGs'
    responses R and the multipliers v (DPP parameters, compiled once).
    """

    def __init__(self, data: ADNData, settings: ConicSettings = AGENT):
        self.data, self.settings = data, settings
        M, H = len(data.mg_pos), data.hours
        self.target = cp.Variable((M, H), name="pcc_target")
        self.block = adn_block(data, self.target)
        lim = data.pcc_limit_pu[:, None]
        fam = Families().update_from(self.block.families)
        fam.add("adn.targets", self.target <= lim, self.target >= -lim)
        self.quad = cp.Parameter(nonneg=True, name="atc_quad")
        self.lin = cp.Parameter((M, H), name="atc_lin")
        obj = self.block.cost_usd + self.quad * cp.sum_squares(self.target) + cp.sum(
            cp.multiply(self.lin, self.target))
        self.problem = fam.problem(cp.Minimize(obj))
        self.compiled: CompiledProblem | None = None  # its conic matrices and solver, at the first solve

    def respond(self, responses_pu: np.ndarray, mult: np.ndarray, weight: float) -> ADNSolution:
        """PCC targets given the MGs' responses, the ATC multipliers and weight."""
        self.quad.value = weight
        self.lin.value = mult - 2 * weight * responses_pu
        if self.compiled is None:
            self.compiled = CompiledProblem(self.problem, self.settings, hint=MG_HINT,
                                            what="ADN upper-level subproblem (network with the PCC targets)")
        self.compiled.solve()
        return ADNSolution.of(self.block, np.array(self.target.value, dtype=float))


# ----------------------------------------------------------------- centralised model
@dataclass
class Centralised:
    objective: cp.Minimize
    problem: cp.Problem
    families: Families
    mgs: list[MicrogridBlock]
    adn: ADNBlock


def centralised_model(day: DayData, *, trading: bool = True) -> Centralised:
    """The whole stage-1 clearing as one SOCP: every MG, trade reciprocity and the ADN.

    ``trading=False`` is the disagreement market: the same clearing without bilateral trades.
    """
    mgs = [microgrid_block(d, trades=trading) for d in day.mgs]
    adn = adn_block(day.adn, cp.vstack([b.export for b in mgs]))
    fam = Families().update_from(*(b.families for b in mgs), adn.families)
    if trading:
        fam.update_from(reciprocity([b.trade for b in mgs], day.pairs))
    objective = cp.Minimize(cp.sum(cp.hstack([b.cost_usd for b in mgs])) + adn.cost_usd)
    return Centralised(objective=objective, problem=fam.problem(objective), families=fam, mgs=mgs, adn=adn)


#: Network limit families a diagnosis drops, with what it means if that makes the day feasible.
NETWORK_RELAXATIONS = (
    (("network.voltage_limits",), "the voltage limits (network.v_min_pu / v_max_pu, v_substation_range_pu)"),
    (("network.current_limits",), "the branch ratings (rating_a or network.branch_rating_factor)"),
)


def diagnose_day(day: DayData, settings: ConicSettings = DEFAULT) -> str:
    """Why a day's market is infeasible: an MG that cannot balance alone, or the network limit to blame and where.

    The network limit family whose removal makes the day feasible is then made
    elastic (:func:`~adnstudy.solve.elastic.largest_violation`): its largest
    violation names the bus or branch and the hour.
    """
    for i, d in enumerate(day.mgs):
        try:
            MicrogridAgent(d, settings).solve_alone()
        except SolveError:
            B = d.base_mva
            supply = (d.generator.p_max_mw if d.generator else 0.0) + (d.storage.power_mw if d.storage else 0.0)
            return (f"microgrid {d.name} (microgrids[{i}]) cannot balance its own load: it peaks at "
                    f"{d.load_pu.max() * B:.3f} MW against a {d.pcc_limit_pu * B:.3f} MW PCC limit, "
                    f"{supply:.3f} MW of unit and storage power and its PV/wind; raise microgrids[{i}].pcc_limit_mw "
                    "or its generation")
    model = centralised_model(day, trading=False)
    for families, hint in NETWORK_RELAXATIONS:
        present = [f for f in families if f in model.families]
        if not present:
            continue
        try:
            solve_conic(model.families.problem(model.objective, drop=present), settings, what="diagnosis")
        except SolveError:
            continue
        where = _binding(day, present[0], largest_violation(model.families, present[0], settings))
        return f"the network cannot carry the MGs' exchanges and its loads within {hint}{where}"
    return "no single MG or network limit family explains it; check loads, PCC limits and network limits together"


def _binding(day: DayData, family: str, worst: Violation | None) -> str:
    """Where the limit binds hardest (published bus numbers, hour of the typical day), as a message tail."""
    if worst is None:
        return ""
    fd, lim = day.adn.feeder, day.adn.limits
    row, hour = worst.index
    when = f"hour {hour} of typical day {day.scenario}"
    if family == "network.voltage_limits":  # [v >= v_min², v <= v_max²] over buses 1.. (v: squared voltage)
        bus = fd.bus_ids[row + 1]
        if worst.constraint == 0:
            need = np.sqrt(max(lim.v_min_pu**2 - worst.amount, 0.0))
            return f"; at its least violation bus {bus} falls to {need:.4f} pu (v_min_pu {lim.v_min_pu:g}) at {when}"
        need = np.sqrt(lim.v_max_pu**2 + worst.amount)
        return f"; at its least violation bus {bus} rises to {need:.4f} pu (v_max_pu {lim.v_max_pu:g}) at {when}"
    k = np.flatnonzero(np.isfinite(lim.i_max_pu))[row]  # [ell <= i_max²] over the rated branches
    i_max = lim.i_max_pu[k]
    over = np.sqrt(i_max**2 + worst.amount) / i_max
    frm, to = fd.branches["from_bus"].iloc[k], fd.branches["to_bus"].iloc[k]
    return (f"; at its least violation branch {frm}-{to} carries {over:.2f} times its rating of "
            f"{fd.branches['rating_a'].iloc[k]:.0f} A at {when}")
