"""A microgrid (MG) over one typical day: its block of the market models, and its agent.

Per unit on the feeder's power base B; prices in USD/MWh become USD per pu·h
by a factor B. Private data: load, PV/wind availability, unit, storage::

    g + pv + wd + dis + buy − load − ch − sell − Σ_n s_mn = 0                (balance, hourly)
    p_x = g + pv + wd + dis − load − ch,   |p_x| ≤ p̄_pcc                       (physical PCC export)
    pv ≤ a_pv · C_pv,  wd ≤ a_wd · C_wd                                        (availability × capacity)
    cost = Σ_t a (B g)² + b B g + c + κ B dis + B (π_buy buy − π_sell sell) + fees

The block (:func:`microgrid_block`) is composed of the asset blocks of
:mod:`adnstudy.formulation.assets` and the market block of
:mod:`adnstudy.formulation.market`. Its capacities (:class:`MicrogridCapacity`)
are numbers for the MG's existing assets or CVXPY expressions when the MG sizes
them, so the same block serves dispatch and planning. With an investment block
over the MG's candidates (:class:`MicrogridCandidates`, the ``investment``
argument) it adds their units — PV and wind beside the existing ones, new
storage, a new controllable unit — and their annualised cost (``capital_usd``).

The snapshots are one day (dispatch) or the K typical days one after the other
(co-planning); ``weight`` says what each snapshot stands for in the cost (days
of the year), so the same block gives a day's cost or an annual one.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import cvxpy as cp
import numpy as np
import pandas as pd

from adnstudy.config.load import Case
from adnstudy.config.schema import GeneratorConfig, MicrogridConfig, StorageConfig
from adnstudy.data.typical import HOURS, TypicalDays
from adnstudy.errors import SolveError
from adnstudy.formulation.assets import (
    Capacity,
    Generator,
    Storage,
    generator_block,
    renewable_block,
    storage_block,
)
from adnstudy.formulation.families import Families
from adnstudy.formulation.investment import Investment, investment_block
from adnstudy.formulation.market import trade_block
from adnstudy.network.feeder import Feeder
from adnstudy.solve.compiled import CompiledProblem
from adnstudy.solve.conic import AGENT, ConicSettings, solve_conic

#: What an infeasible MG subproblem most likely means.
MG_HINT = ("the MG cannot balance its load within its PCC limit, unit and storage, or the network cannot carry the "
           "exchanges within its voltage/current limits: check pcc_limit_mw, the unit and the network limits")


@dataclass(frozen=True)
class MicrogridData:
    """What one MG knows: its own day, the public tariffs and fees of its pairs. Per unit except prices."""

    name: str
    pos: int  # position of the PCC bus in the feeder tables
    bus: int
    base_mva: float
    load_pu: np.ndarray  # (H,)
    pv_avail: np.ndarray  # (H,), per unit of PV capacity
    wind_avail: np.ndarray
    pv_mw: float  # existing capacities
    wind_mw: float
    pcc_limit_pu: float
    price_buy: np.ndarray  # USD/MWh, (H,)
    price_sell: np.ndarray
    generator: GeneratorConfig | None = None
    storage: StorageConfig | None = None
    partners: tuple[str, ...] = ()
    fee_usd_per_mwh: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per partner
    seller_share: float = 0.5  # of the pair's fee, when this MG sells
    bargaining_power: float = 1.0
    weight: np.ndarray | None = None  # what each snapshot stands for in the cost (None: once)
    day_hours: int = HOURS  # snapshots per day (storage cycles within each day)
    candidates: MicrogridCandidates | None = None  # what the MG may build (co-planning)

    @property
    def hours(self) -> int:
        """Snapshots (one day's hours, or K days × 24)."""
        return len(self.load_pu)

    @property
    def snap_weight(self) -> np.ndarray:
        return self.weight if self.weight is not None else np.ones(self.hours)

    @property
    def pv_pu(self) -> np.ndarray:
        """Available PV power of the existing capacity, per unit."""
        return self.pv_avail * self.pv_mw / self.base_mva

    @property
    def wind_pu(self) -> np.ndarray:
        return self.wind_avail * self.wind_mw / self.base_mva


@dataclass(frozen=True)
class MicrogridCandidates:
    """An MG's candidate units (the candidate schema of the ADN's sites, at the MG's PCC).

    ``sites`` has the columns :func:`~adnstudy.formulation.investment.investment_block` reads (min_mw, max_mw,
    module_mw, capex_usd_per_mw, fixed_capex_usd, crf) and tech, om_usd_per_mwh, om_usd_per_mw_yr,
    energy_mwh_per_mw, efficiency, cost_a_usd_per_mw2h, cost_b_usd_per_mwh.
    """

    sites: pd.DataFrame
    avail: np.ndarray  # candidate × snapshot, per unit of capacity (1 for storage and units)

    def rows(self, *techs: str) -> np.ndarray:
        return np.flatnonzero(self.sites["tech"].isin(techs).to_numpy())


@dataclass(frozen=True)
class MicrogridCapacity:
    """Capacities the MG block sees, per unit: numbers (existing assets) or expressions (assets being sized)."""

    pv: Capacity
    wind: Capacity
    generator: Capacity | None = None  # the unit's p_max (None: no unit)
    storage_power: Capacity | None = None  # (None: no storage)
    storage_energy: Capacity | None = None

    @classmethod
    def existing(cls, d: MicrogridData) -> MicrogridCapacity:
        B, gen, st = d.base_mva, d.generator, d.storage
        return cls(
            pv=d.pv_mw / B, wind=d.wind_mw / B, generator=gen.p_max_mw / B if gen is not None else None,
            storage_power=st.power_mw / B if st is not None else None,
            storage_energy=st.energy_mwh / B if st is not None else None,
        )


@dataclass
class MicrogridBlock:
    """An MG's variables, families (``microgrid.*``) and operating cost over its snapshots."""

    pv: cp.Expression  # (H,), total PV output used (existing and new)
    wind: cp.Expression
    generator: Generator | None
    storage: Storage | None
    buy: cp.Variable
    sell: cp.Variable
    trade: cp.Variable | None  # partner × H, signed sale
    export: cp.Expression  # physical PCC export p_x
    cost_usd: cp.Expression  # operating + tariff + fee share
    families: Families
    available: cp.Expression | np.ndarray = 0.0  # (H,), PV and wind power available (existing and new)
    investment: Investment | None = None  # the candidates' build and sizes (co-planning)
    capital_usd: cp.Expression | float = 0.0  # annualised investment + fixed O&M of the candidates
    new_generators: list[Generator] = field(default_factory=list)
    new_storage: Storage | None = None

    def total(self, kind: str) -> cp.Expression | np.ndarray:
        """Generation, charge, discharge or state of charge summed over the MG's units, per snapshot."""
        H = self.buy.shape[0]
        out: cp.Expression | np.ndarray = np.zeros(H)
        if kind == "generation":
            for g in ([self.generator] if self.generator is not None else []) + self.new_generators:
                out = out + g.p
            return out
        for st in (self.storage, self.new_storage):
            if st is not None:
                out = out + cp.sum({"charge": st.charge, "discharge": st.discharge, "soc": st.soc}[kind], axis=0)
        return out


def microgrid_block(d: MicrogridData, *, trades: bool, capacity: MicrogridCapacity | None = None,
                    investment: Investment | None = None) -> MicrogridBlock:
    """One MG over its snapshots (see the module docstring); ``capacity`` defaults to its existing assets,
    ``investment`` (over ``d.candidates``) adds the candidates' units and capital cost."""
    cap = capacity if capacity is not None else MicrogridCapacity.existing(d)
    H, B, w = d.hours, d.base_mva, d.weight
    weighted = (lambda price: price) if w is None else (lambda price: price * w)  # noqa: E731
    fam = Families()
    pv = renewable_block(d.pv_avail[None, :], cap.pv, name=f"{d.name}_pv")
    wind = renewable_block(d.wind_avail[None, :], cap.wind, name=f"{d.name}_wind")
    fam.add("microgrid.renewables", *pv.families.constraints(), *wind.families.constraints())
    gen = st = None
    zero = np.zeros(H)
    g: cp.Expression | np.ndarray = zero
    if d.generator is not None and cap.generator is not None:
        u = d.generator
        gen = generator_block(H, B, u.p_min_mw, cap.generator, cost_a_usd_per_mw2h=u.cost_a_usd_per_mw2h,
                              cost_b_usd_per_mwh=u.cost_b_usd_per_mwh, cost_c_usd_per_h=u.cost_c_usd_per_h,
                              weight=w, name=f"{d.name}_generator")
        fam.add("microgrid.generator", *gen.families.constraints())
        g = gen.p
    dis: cp.Expression | np.ndarray = zero
    ch: cp.Expression | np.ndarray = zero
    if d.storage is not None and cap.storage_power is not None:
        s = d.storage
        st = storage_block(H, min(d.day_hours, H), cap.storage_power, cap.storage_energy, eta_charge=s.eta_charge,
                           eta_discharge=s.eta_discharge, soc_min=s.soc_min, soc_max=s.soc_max,
                           soc_initial=s.soc_initial, name=f"{d.name}_storage")
        fam.add("microgrid.storage", *st.families.constraints())
        dis, ch = st.discharge[0], st.charge[0]
    pv_p: cp.Expression = pv.p[0]
    wind_p: cp.Expression = wind.p[0]
    available = d.pv_pu + d.wind_pu
    cost: cp.Expression | float = 0.0
    new = _new_units(d, investment) if investment is not None else None
    if new is not None:
        fam.update_from(new.families)
        pv_p, wind_p = pv_p + new.pv, wind_p + new.wind
        available = available + new.available
        g, dis, ch = g + new.generation, dis + new.discharge, ch + new.charge
        cost = new.cost_usd
    buy = cp.Variable(H, name=f"{d.name}_buy", nonneg=True)
    sell = cp.Variable(H, name=f"{d.name}_sell", nonneg=True)
    export = g + pv_p + wind_p + dis - d.load_pu - ch
    lim = d.pcc_limit_pu
    fam.add("microgrid.pcc", export <= lim, export >= -lim, buy <= lim, sell <= lim)
    market = trade_block(d.fee_usd_per_mwh, H, B, d.seller_share, name=f"{d.name}_trade", weight=w) \
        if trades and len(d.partners) else None
    net_trade = cp.sum(market.trade, axis=0) if market is not None else 0
    fam.add("microgrid.balance", export + buy - sell - net_trade == 0)
    cost = B * (weighted(d.price_buy) @ buy - weighted(d.price_sell) @ sell) + cost
    if gen is not None:
        cost = cost + gen.cost_usd
    if st is not None and d.storage.cost_usd_per_mwh:
        cost = cost + d.storage.cost_usd_per_mwh * B * (cp.sum(st.discharge) if w is None else w @ st.discharge[0])
    if market is not None:
        cost = cost + market.fee_usd
    return MicrogridBlock(pv=pv_p, wind=wind_p, generator=gen, storage=st, buy=buy, sell=sell,
                          trade=market.trade if market is not None else None, export=export, cost_usd=cost,
                          families=fam, available=available, investment=investment,
                          capital_usd=new.capital_usd if new is not None else 0.0,
                          new_generators=new.generators if new is not None else [],
                          new_storage=new.storage if new is not None else None)


@dataclass
class _NewUnits:
    pv: cp.Expression | np.ndarray
    wind: cp.Expression | np.ndarray
    available: cp.Expression | np.ndarray
    generation: cp.Expression | np.ndarray
    charge: cp.Expression | np.ndarray
    discharge: cp.Expression | np.ndarray
    generators: list[Generator]
    storage: Storage | None
    cost_usd: cp.Expression | float  # energy O&M and the new units' fuel, weighted
    capital_usd: cp.Expression  # annualised investment + fixed O&M
    families: Families


def _new_units(d: MicrogridData, inv: Investment) -> _NewUnits:
    """The candidates' units, sized by ``inv.capacity_mw``: PV/wind (curtailable), storage, controllable units.

    New storage cycles within each day like the ADN's (no fixed start); a new unit has its own cost curve.
    """
    assert d.candidates is not None
    c, H, B, w = d.candidates, d.hours, d.base_mva, d.snap_weight
    sites, size = c.sites, inv.capacity_mw / B
    fam = Families()
    fam.add("microgrid.investment", *inv.families.constraints())
    om = sites["om_usd_per_mwh"].to_numpy() * B
    zero = np.zeros(H)
    out = {"pv": zero, "wind": zero, "available": zero, "generation": zero, "charge": zero, "discharge": zero}
    cost: cp.Expression | float = 0.0
    res = c.rows("pv", "wind")
    if len(res):
        units = renewable_block(c.avail[res], size[res], name=f"{d.name}_new_res")
        fam.add("microgrid.new_renewables", *units.families.constraints())
        for tech in ("pv", "wind"):
            mine = np.flatnonzero(sites["tech"].to_numpy()[res] == tech)
            if len(mine):
                out[tech] = cp.sum(units.p[mine], axis=0)
        out["available"] = cp.sum(cp.multiply(c.avail[res], cp.reshape(size[res], (len(res), 1), order="F")), axis=0)
        cost = cost + cp.sum(cp.multiply(om[res][:, None] * w[None, :], units.p))
    generators = []
    for r in c.rows("generator"):
        gen = generator_block(H, B, 0.0, size[r], cost_a_usd_per_mw2h=float(sites["cost_a_usd_per_mw2h"].iloc[r]),
                              cost_b_usd_per_mwh=float(sites["cost_b_usd_per_mwh"].iloc[r] + sites["om_usd_per_mwh"].iloc[r]),
                              cost_c_usd_per_h=0.0, weight=w, name=f"{d.name}_new_generator{r}")
        fam.add("microgrid.new_generators", *gen.families.constraints())
        generators.append(gen)
        out["generation"] = out["generation"] + gen.p
        cost = cost + gen.cost_usd
    storage = None
    sto = c.rows("storage")
    if len(sto):
        eta = sites["efficiency"].to_numpy()[sto]
        storage = storage_block(H, min(d.day_hours, H), size[sto],
                                cp.multiply(sites["energy_mwh_per_mw"].to_numpy()[sto], size[sto]),
                                eta_charge=eta, eta_discharge=eta, units=len(sto), name=f"{d.name}_new_storage")
        fam.add("microgrid.new_storage", *storage.families.constraints())
        out["charge"] = cp.sum(storage.charge, axis=0)
        out["discharge"] = cp.sum(storage.discharge, axis=0)
        cost = cost + cp.sum(cp.multiply(om[sto][:, None] * w[None, :], storage.discharge))
    capital = inv.annualised_usd + sites["om_usd_per_mw_yr"].to_numpy() @ inv.capacity_mw
    return _NewUnits(**out, generators=generators, storage=storage, cost_usd=cost, capital_usd=capital,
                     families=fam)


@dataclass(frozen=True)
class MicrogridSchedule:
    """An MG's solved snapshots, MW and USD (copied out right after its solve)."""

    name: str
    table: pd.DataFrame  # snapshot × schedule columns, MW / MWh ("hour": of its day)
    export_pu: np.ndarray
    trade_pu: np.ndarray  # partner × H (zeros without trades)
    cost_usd: float  # operating + tariff + fee share (+ capital_usd; no ADMM/ATC terms)
    capital_usd: float = 0.0  # annualised investment + fixed O&M of its candidates
    build: tuple[np.ndarray, ...] = ()  # its candidates' integer decisions (build, modules)
    capacity_mw: np.ndarray = field(default_factory=lambda: np.zeros(0))  # its candidates' sizes


def read_schedule(d: MicrogridData, b: MicrogridBlock) -> MicrogridSchedule:
    B, H = d.base_mva, d.hours
    val = lambda x: np.array(x.value, dtype=float) if isinstance(x, cp.Expression) else np.asarray(x, float)  # noqa: E731
    g = val(b.total("generation"))
    ch, dis, soc = val(b.total("charge")), val(b.total("discharge")), val(b.total("soc"))
    pv, wind = val(b.pv), val(b.wind)
    table = pd.DataFrame({
        "hour": np.arange(H) % min(d.day_hours, H),
        "p_gen_mw": g * B, "p_pv_mw": pv * B, "p_wind_mw": wind * B,
        "p_curtailed_mw": (val(b.available) - pv - wind) * B,
        "p_charge_mw": ch * B, "p_discharge_mw": dis * B, "soc_mwh": soc * B,
        "p_buy_mw": val(b.buy) * B, "p_sell_mw": val(b.sell) * B, "p_load_mw": d.load_pu * B,
    })
    trade = val(b.trade) if b.trade is not None else np.zeros((len(d.partners), H))
    inv = b.investment
    capital = float(val(b.capital_usd))
    return MicrogridSchedule(
        name=d.name, table=table, export_pu=val(b.export), trade_pu=trade,
        cost_usd=float(val(b.cost_usd)) + capital, capital_usd=capital,
        build=tuple(np.round(val(v)) for v in _integer_vars(inv)) if inv is not None else (),
        capacity_mw=val(inv.capacity_mw) if inv is not None else np.zeros(0),
    )


def _integer_vars(inv: Investment) -> list[cp.Variable]:
    return [inv.build] + ([inv.modules] if inv.modules is not None else [])


def microgrid_days(case: Case, feeder: Feeder, td: TypicalDays, fees: np.ndarray | None = None,
                   seller_share: float = 0.5) -> list[list[MicrogridData]]:
    """Each typical day's data of every MG of the case (scenario × MG), at the day's tariffs.

    ``fees`` (MG × MG, USD/MWh) gives each MG its trading partners; without it the
    MGs know no partners (they trade only with the ADN, as in planning).
    """
    return [microgrid_data(case, feeder, td, [k], fees, seller_share) for k in range(td.n_days)]


def microgrid_data(case: Case, feeder: Feeder, td: TypicalDays, days: list[int], fees: np.ndarray | None = None,
                   seller_share: float = 0.5, *, year: bool = False) -> list[MicrogridData]:
    """Every MG of the case over the typical ``days`` one after the other, at their tariffs.

    ``year``: each snapshot weighted by the days its typical day stands for (costs per year), and the MGs'
    candidates attached (co-planning); otherwise one day's costs and no candidates.
    """
    cfg = case.config
    assert cfg.economics is not None and cfg.microgrids
    B = feeder.base_mva
    buy, sell = td.tariffs(cfg.economics)
    zero = np.zeros((td.n_days, HOURS))
    pv_avail = td.of_kind("pv") if "pv" in td.first_of else zero
    wind_avail = td.of_kind("wind") if "wind" in td.first_of else zero
    names = [mg.name for mg in cfg.microgrids]
    flat = lambda x: np.asarray(x)[days].ravel()  # noqa: E731
    weight = np.repeat(td.days_weight[days], HOURS).astype(float) if year else None
    out = []
    for m, mg in enumerate(cfg.microgrids):
        others = [n for n in range(len(names)) if n != m] if fees is not None else []
        out.append(MicrogridData(
            name=mg.name, pos=feeder.position(mg.bus), bus=mg.bus, base_mva=B,
            load_pu=mg.load_peak_mw / B * flat(td.of_kind("load", mg.load_profile)),
            pv_avail=flat(pv_avail), wind_avail=flat(wind_avail), pv_mw=mg.pv_mw, wind_mw=mg.wind_mw,
            pcc_limit_pu=mg.pcc_limit_mw / B, price_buy=flat(buy), price_sell=flat(sell),
            generator=mg.generator, storage=mg.storage,
            partners=tuple(names[n] for n in others),
            fee_usd_per_mwh=fees[m, others] if fees is not None else np.zeros(0),
            seller_share=seller_share, bargaining_power=mg.bargaining_power, weight=weight,
            candidates=microgrid_candidates(case, mg, td, days) if year else None,
        ))
    return out


def microgrid_candidates(case: Case, mg: MicrogridConfig, td: TypicalDays, days: list[int]
                         ) -> MicrogridCandidates | None:
    """An MG's candidates as the investment block reads them (None: it has none)."""
    from adnstudy.formulation.investment import crf

    cands = getattr(mg, "candidates", None) or []
    if not cands:
        return None
    rate = case.config.economics.discount_rate  # type: ignore[union-attr]
    rows, avail = [], []
    for c in cands:
        rows.append({
            "tech": c.tech, "min_mw": c.min_mw, "max_mw": c.max_mw, "module_mw": c.module_mw or np.nan,
            "capex_usd_per_mw": c.capex_usd_per_mw, "fixed_capex_usd": c.fixed_capex_usd,
            "crf": crf(rate, c.lifetime_yr), "lifetime_yr": c.lifetime_yr, "om_usd_per_mwh": c.om_usd_per_mwh,
            "om_usd_per_mw_yr": c.om_usd_per_mw_yr, "energy_mwh_per_mw": c.energy_mwh_per_mw or np.nan,
            "efficiency": c.efficiency, "cost_a_usd_per_mw2h": getattr(c, "cost_a_usd_per_mw2h", 0.0) or 0.0,
            "cost_b_usd_per_mwh": getattr(c, "cost_b_usd_per_mwh", 0.0) or 0.0,
        })
        if c.tech in ("pv", "wind"):
            avail.append(np.asarray(td.of_kind(c.tech, c.profile))[days].ravel())
        else:
            avail.append(np.ones(len(days) * HOURS))
    return MicrogridCandidates(sites=pd.DataFrame(rows), avail=np.array(avail))


class MicrogridAgent:
    """One MG. It holds only its own data; the coordinator hands it exchanged quantities.

    ``solve_alone`` is its day with tariffs only, blind to the network (the
    starting point of the coordination). ``respond`` is its lower-level ATC /
    ADMM subproblem — with trades, or without them for the networked
    disagreement market: own cost plus

        ρ_pcc ‖p_x − T‖² − v·p_x        (ATC: target T from the ADN, multiplier v)
        ρ_tr/2 ‖s − z‖² + μ·s            (ADMM: agreed trades z, trade prices μ)

    written with DPP parameters (a quadratic weight and a linear vector) so the
    problem is compiled once and re-solved. Over several days the squares are
    weighted by what each snapshot stands for (``MicrogridData.weight``).

    With candidates (co-planning) the MG also sizes them, within the 0-1
    decisions fixed by :meth:`fix`; :meth:`plan_alone` and :meth:`best_response`
    choose the decisions themselves by enumerating them (:meth:`decision_space`).
    """

    def __init__(self, data: MicrogridData, settings: ConicSettings = AGENT):
        self.data, self.settings = data, settings
        self._compiled: dict[int, CompiledProblem] = {}
        H, n_p = data.hours, len(data.partners)
        self._w = data.weight if data.weight is not None else 1.0
        self.pcc_quad = cp.Parameter(nonneg=True, name="pcc_quad")
        self.pcc_lin = cp.Parameter(H, name="pcc_lin")
        self.investment = investment_block(data.candidates.sites, native=False) \
            if data.candidates is not None and len(data.candidates.sites) else None
        self._alone_block = microgrid_block(data, trades=False, investment=self.investment)
        cons = self._alone_block.families.constraints()
        own = self._alone_block.cost_usd + self._alone_block.capital_usd
        self._alone = cp.Problem(cp.Minimize(own), cons)
        # no bilateral trades, but under the ADN's targets: the networked disagreement point
        self._notrade = cp.Problem(cp.Minimize(own + self._atc_terms(self._alone_block)), cons)
        self.block = microgrid_block(data, trades=True, investment=self.investment)
        obj = self.block.cost_usd + self.block.capital_usd + self._atc_terms(self.block)
        if self.block.trade is not None:
            self.trade_quad = cp.Parameter(nonneg=True, name="trade_quad")
            self.trade_lin = cp.Parameter((n_p, H), name="trade_lin")
            obj = obj + self.trade_quad * cp.sum_squares(self._weighted(self.block.trade)) + cp.sum(
                cp.multiply(self.trade_lin, self.block.trade))
        self._coord = cp.Problem(cp.Minimize(obj), self.block.families.constraints())

    def _weighted(self, x: cp.Expression) -> cp.Expression:
        """x scaled by √weight per snapshot, so that its sum of squares is weighted."""
        w = self.data.weight
        return x if w is None else cp.multiply(np.broadcast_to(np.sqrt(w), x.shape), x)

    def _atc_terms(self, b: MicrogridBlock) -> cp.Expression:
        return self.pcc_quad * cp.sum_squares(self._weighted(b.export)) + self.pcc_lin @ b.export

    def _solve(self, problem: cp.Problem, what: str) -> None:
        """Solve one of its problems on its cached conic matrices (compiled at its first solve)."""
        compiled = self._compiled.get(id(problem))
        if compiled is None:
            compiled = self._compiled[id(problem)] = CompiledProblem(problem, self.settings, hint=MG_HINT)
        compiled.solve(what)

    def solve_alone(self) -> MicrogridSchedule:
        self._solve(self._alone, f"microgrid {self.data.name} alone (tariffs only)")
        return read_schedule(self.data, self._alone_block)

    def respond(self, target_pu: np.ndarray, mult: np.ndarray, weight: float,
                agreed_pu: np.ndarray | None = None, trade_mult: np.ndarray | None = None,
                rho_trade: float = 0.0) -> MicrogridSchedule:
        """Lower-level response: p_x and trade proposals given the ADN's target and the agreed trades.

        Without ``agreed_pu`` the MG does not trade bilaterally (the disagreement market).
        """
        self.set_terms(target_pu, mult, weight, agreed_pu, trade_mult, rho_trade)
        if agreed_pu is None:
            self._solve(self._notrade, f"microgrid {self.data.name} subproblem without trades")
            return read_schedule(self.data, self._alone_block)
        self._solve(self._coord, f"microgrid {self.data.name} subproblem")
        return read_schedule(self.data, self.block)

    def set_terms(self, target_pu: np.ndarray, mult: np.ndarray, weight: float, agreed_pu: np.ndarray | None = None,
                  trade_mult: np.ndarray | None = None, rho_trade: float = 0.0) -> None:
        """The ATC and ADMM terms of its subproblems, from what the coordinator sent."""
        self.pcc_quad.value = weight
        self.pcc_lin.value = -mult - 2 * weight * self._w * target_pu
        if agreed_pu is not None and self.block.trade is not None:
            self.trade_quad.value = rho_trade / 2
            self.trade_lin.value = trade_mult - rho_trade * self._w * agreed_pu

    # ------------------------------------------------------------- its own 0-1 decisions
    def decision_space(self) -> list[tuple[np.ndarray, ...]]:
        """Every combination of its candidates' integer decisions (build, then modules)."""
        if self.investment is None:
            return [()]
        blocks = self.investment.integers
        ranges = [np.arange(lo, hi + 1) for blk in blocks for lo, hi in zip(blk.lo0, blk.hi0, strict=True)]
        sizes = [blk.var.size for blk in blocks]
        out = []
        for combo in itertools.product(*ranges):
            flat = np.array(combo, dtype=float)
            out.append(tuple(np.split(flat, np.cumsum(sizes)[:-1])))
        return out

    def fix(self, decisions: tuple[np.ndarray, ...]) -> None:
        """Fix its integer decisions (its sizes stay free within them)."""
        if self.investment is None:
            return
        for blk, v in zip(self.investment.integers, decisions, strict=True):
            blk.set_bounds(np.asarray(v, float), np.asarray(v, float))

    def _best(self, problem: cp.Problem, block: MicrogridBlock, what: str,
              space: list[tuple[np.ndarray, ...]] | None = None) -> tuple[tuple[np.ndarray, ...], MicrogridSchedule]:
        best: tuple[float, tuple[np.ndarray, ...], MicrogridSchedule] | None = None
        for decisions in space if space is not None else self.decision_space():
            self.fix(decisions)
            try:
                solve_conic(problem, self.settings, what=what, hint=MG_HINT)
            except SolveError:
                continue  # these decisions leave it no feasible operation
            value = float(problem.value)
            if best is None or value < best[0] - 1e-9 * max(1.0, abs(value)):
                best = (value, decisions, read_schedule(self.data, block))
        if best is None:
            raise SolveError(f"{what}: no choice of its candidates lets microgrid {self.data.name} operate: {MG_HINT}")
        self.fix(best[1])
        return best[1], best[2]

    def plan_alone(self) -> tuple[tuple[np.ndarray, ...], MicrogridSchedule]:
        """Its cheapest candidates and their sizes with tariffs only, blind to the network (its stand-alone plan)."""
        return self._best(self._alone, self._alone_block, f"microgrid {self.data.name} planning alone")

    def best_response(self) -> tuple[tuple[np.ndarray, ...], MicrogridSchedule]:
        """Its best 0-1 decisions given the last targets, multipliers and agreed trades (the lower level of
        co-planning's alternation): its own cost plus the ATC and ADMM terms, enumerated."""
        return self._best(self._coord, self.block, f"microgrid {self.data.name} choosing its investments")
