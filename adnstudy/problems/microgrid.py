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
them, so the same block serves dispatch and planning.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cvxpy as cp
import numpy as np
import pandas as pd

from adnstudy.config.load import Case
from adnstudy.config.schema import GeneratorConfig, StorageConfig
from adnstudy.data.typical import HOURS, TypicalDays
from adnstudy.formulation.assets import (
    Capacity,
    Generator,
    Storage,
    generator_block,
    renewable_block,
    storage_block,
)
from adnstudy.formulation.families import Families
from adnstudy.formulation.market import trade_block
from adnstudy.network.feeder import Feeder
from adnstudy.solve.conic import DEFAULT, ConicSettings, solve_conic

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

    @property
    def hours(self) -> int:
        return len(self.load_pu)

    @property
    def pv_pu(self) -> np.ndarray:
        """Available PV power of the existing capacity, per unit."""
        return self.pv_avail * self.pv_mw / self.base_mva

    @property
    def wind_pu(self) -> np.ndarray:
        return self.wind_avail * self.wind_mw / self.base_mva


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
    """An MG's variables, families (``microgrid.*``) and operating cost over the day."""

    pv: cp.Expression  # (H,)
    wind: cp.Expression
    generator: Generator | None
    storage: Storage | None
    buy: cp.Variable
    sell: cp.Variable
    trade: cp.Variable | None  # partner × H, signed sale
    export: cp.Expression  # physical PCC export p_x
    cost_usd: cp.Expression  # operating + tariff + fee share
    families: Families


def microgrid_block(d: MicrogridData, *, trades: bool, capacity: MicrogridCapacity | None = None) -> MicrogridBlock:
    """One MG over the day (see the module docstring); ``capacity`` defaults to its existing assets."""
    cap = capacity if capacity is not None else MicrogridCapacity.existing(d)
    H, B = d.hours, d.base_mva
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
                              name=f"{d.name}_generator")
        fam.add("microgrid.generator", *gen.families.constraints())
        g = gen.p
    dis: cp.Expression | np.ndarray = zero
    ch: cp.Expression | np.ndarray = zero
    if d.storage is not None and cap.storage_power is not None:
        s = d.storage
        st = storage_block(H, H, cap.storage_power, cap.storage_energy, eta_charge=s.eta_charge,
                           eta_discharge=s.eta_discharge, soc_min=s.soc_min, soc_max=s.soc_max,
                           soc_initial=s.soc_initial, name=f"{d.name}_storage")
        fam.add("microgrid.storage", *st.families.constraints())
        dis, ch = st.discharge[0], st.charge[0]
    buy = cp.Variable(H, name=f"{d.name}_buy", nonneg=True)
    sell = cp.Variable(H, name=f"{d.name}_sell", nonneg=True)
    export = g + pv.p[0] + wind.p[0] + dis - d.load_pu - ch
    lim = d.pcc_limit_pu
    fam.add("microgrid.pcc", export <= lim, export >= -lim, buy <= lim, sell <= lim)
    market = trade_block(d.fee_usd_per_mwh, H, B, d.seller_share, name=f"{d.name}_trade") \
        if trades and len(d.partners) else None
    net_trade = cp.sum(market.trade, axis=0) if market is not None else 0
    fam.add("microgrid.balance", export + buy - sell - net_trade == 0)
    cost: cp.Expression = B * (d.price_buy @ buy - d.price_sell @ sell)
    if gen is not None:
        cost = cost + gen.cost_usd
    if st is not None and d.storage.cost_usd_per_mwh:
        cost = cost + d.storage.cost_usd_per_mwh * B * cp.sum(st.discharge)
    if market is not None:
        cost = cost + market.fee_usd
    return MicrogridBlock(pv=pv.p[0], wind=wind.p[0], generator=gen, storage=st, buy=buy, sell=sell,
                          trade=market.trade if market is not None else None, export=export, cost_usd=cost,
                          families=fam)


@dataclass(frozen=True)
class MicrogridSchedule:
    """An MG's solved day, MW and USD (copied out right after its solve)."""

    name: str
    table: pd.DataFrame  # hour × schedule columns, MW / MWh
    export_pu: np.ndarray
    trade_pu: np.ndarray  # partner × H (zeros without trades)
    cost_usd: float  # operating + tariff + fee share (no ADMM/ATC terms)


def read_schedule(d: MicrogridData, b: MicrogridBlock) -> MicrogridSchedule:
    B, H = d.base_mva, d.hours
    val = lambda x: np.array(x.value, dtype=float) if isinstance(x, cp.Expression) else np.asarray(x, float)  # noqa: E731
    g = val(b.generator.p) if b.generator is not None else np.zeros(H)
    ch = val(b.storage.charge)[0] if b.storage is not None else np.zeros(H)
    dis = val(b.storage.discharge)[0] if b.storage is not None else np.zeros(H)
    soc = val(b.storage.soc)[0] if b.storage is not None else np.zeros(H)
    pv, wind = val(b.pv), val(b.wind)
    table = pd.DataFrame({
        "hour": np.arange(H),
        "p_gen_mw": g * B, "p_pv_mw": pv * B, "p_wind_mw": wind * B,
        "p_curtailed_mw": (d.pv_pu + d.wind_pu - pv - wind) * B,
        "p_charge_mw": ch * B, "p_discharge_mw": dis * B, "soc_mwh": soc * B,
        "p_buy_mw": val(b.buy) * B, "p_sell_mw": val(b.sell) * B, "p_load_mw": d.load_pu * B,
    })
    trade = val(b.trade) if b.trade is not None else np.zeros((len(d.partners), H))
    return MicrogridSchedule(name=d.name, table=table, export_pu=val(b.export), trade_pu=trade,
                             cost_usd=float(b.cost_usd.value))


def microgrid_days(case: Case, feeder: Feeder, td: TypicalDays, fees: np.ndarray | None = None,
                   seller_share: float = 0.5) -> list[list[MicrogridData]]:
    """Each typical day's data of every MG of the case (scenario × MG), at the day's tariffs.

    ``fees`` (MG × MG, USD/MWh) gives each MG its trading partners; without it the
    MGs know no partners (they trade only with the ADN, as in planning).
    """
    cfg = case.config
    assert cfg.economics is not None and cfg.microgrids
    B = feeder.base_mva
    buy, sell = td.tariffs(cfg.economics)
    pv_avail = td.of_kind("pv") if "pv" in td.first_of else np.zeros((td.n_days, HOURS))
    wind_avail = td.of_kind("wind") if "wind" in td.first_of else np.zeros((td.n_days, HOURS))
    names = [mg.name for mg in cfg.microgrids]
    days = []
    for k in range(td.n_days):
        mgs = []
        for m, mg in enumerate(cfg.microgrids):
            others = [n for n in range(len(names)) if n != m] if fees is not None else []
            mgs.append(MicrogridData(
                name=mg.name, pos=feeder.position(mg.bus), bus=mg.bus, base_mva=B,
                load_pu=mg.load_peak_mw / B * td.of_kind("load", mg.load_profile)[k],
                pv_avail=pv_avail[k], wind_avail=wind_avail[k], pv_mw=mg.pv_mw, wind_mw=mg.wind_mw,
                pcc_limit_pu=mg.pcc_limit_mw / B, price_buy=buy[k], price_sell=sell[k],
                generator=mg.generator, storage=mg.storage,
                partners=tuple(names[n] for n in others),
                fee_usd_per_mwh=fees[m, others] if fees is not None else np.zeros(0),
                seller_share=seller_share, bargaining_power=mg.bargaining_power,
            ))
        days.append(mgs)
    return days


class MicrogridAgent:
    """One MG. It holds only its own data; the coordinator hands it exchanged quantities.

    ``solve_alone`` is its day with tariffs only, blind to the network (the
    starting point of the coordination). ``respond`` is its lower-level ATC /
    ADMM subproblem — with trades, or without them for the networked
    disagreement market: own cost plus

        ρ_pcc ‖p_x − T‖² − v·p_x        (ATC: target T from the ADN, multiplier v)
        ρ_tr/2 ‖s − z‖² + μ·s            (ADMM: agreed trades z, trade prices μ)

    written with DPP parameters (a quadratic weight and a linear vector) so the
    problem is compiled once and re-solved.
    """

    def __init__(self, data: MicrogridData, settings: ConicSettings = DEFAULT):
        self.data, self.settings = data, settings
        H, n_p = data.hours, len(data.partners)
        self.pcc_quad = cp.Parameter(nonneg=True, name="pcc_quad")
        self.pcc_lin = cp.Parameter(H, name="pcc_lin")
        self._alone_block = microgrid_block(data, trades=False)
        cons = self._alone_block.families.constraints()
        self._alone = cp.Problem(cp.Minimize(self._alone_block.cost_usd), cons)
        # no bilateral trades, but under the ADN's targets: the networked disagreement point
        self._notrade = cp.Problem(cp.Minimize(self._alone_block.cost_usd + self._atc_terms(self._alone_block)), cons)
        self.block = microgrid_block(data, trades=True)
        obj = self.block.cost_usd + self._atc_terms(self.block)
        if self.block.trade is not None:
            self.trade_quad = cp.Parameter(nonneg=True, name="trade_quad")
            self.trade_lin = cp.Parameter((n_p, H), name="trade_lin")
            obj = obj + self.trade_quad * cp.sum_squares(self.block.trade) + cp.sum(
                cp.multiply(self.trade_lin, self.block.trade))
        self._coord = cp.Problem(cp.Minimize(obj), self.block.families.constraints())

    def _atc_terms(self, b: MicrogridBlock) -> cp.Expression:
        return self.pcc_quad * cp.sum_squares(b.export) + self.pcc_lin @ b.export

    def solve_alone(self) -> MicrogridSchedule:
        solve_conic(self._alone, self.settings, what=f"microgrid {self.data.name} alone (tariffs only)", hint=MG_HINT)
        return read_schedule(self.data, self._alone_block)

    def respond(self, target_pu: np.ndarray, mult: np.ndarray, weight: float,
                agreed_pu: np.ndarray | None = None, trade_mult: np.ndarray | None = None,
                rho_trade: float = 0.0) -> MicrogridSchedule:
        """Lower-level response: p_x and trade proposals given the ADN's target and the agreed trades.

        Without ``agreed_pu`` the MG does not trade bilaterally (the disagreement market).
        """
        self.pcc_quad.value = weight
        self.pcc_lin.value = -mult - 2 * weight * target_pu
        if agreed_pu is None:
            solve_conic(self._notrade, self.settings, what=f"microgrid {self.data.name} subproblem without trades", hint=MG_HINT)
            return read_schedule(self.data, self._alone_block)
        if self.block.trade is not None:
            self.trade_quad.value = rho_trade / 2
            self.trade_lin.value = trade_mult - rho_trade * agreed_pu
        solve_conic(self._coord, self.settings, what=f"microgrid {self.data.name} subproblem", hint=MG_HINT)
        return read_schedule(self.data, self.block)
