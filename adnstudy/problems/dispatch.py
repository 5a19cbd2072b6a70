"""Day-ahead dispatch of microgrids (MGs) and the ADN with bilateral trading: the models.

One typical day of H hours, per unit on the feeder's power base (``B`` MVA);
prices in USD/MWh become USD per pu·h by a factor ``B``. See docs/dispatch.md
for the full statement.

**MG m** (private data: load, PV/wind availability, unit, storage)::

    g + pv + wd + dis + buy − load − ch − sell − Σ_n s_mn = 0                (balance, hourly)
    p_x = g + pv + wd + dis − load − ch,   |p_x| ≤ p̄_pcc                       (physical PCC export)
    e_t = e_{t−1} + η_c ch_t − dis_t / η_d,  e_H = e_0,  e ∈ [e_min, e_max]    (cyclic storage)
    cost_m = Σ_t a (B g)² + b B g + c + κ B dis + B (π_buy buy − π_sell sell)
             + Σ_n B f_mn (σ_sell·s_mn⁺ + σ_buy·s_mn⁻)

``s_mn`` is m's signed sale to n (negative: m buys); reciprocity is s_mn + s_nm = 0.
The fee f_mn of the pair is split between seller and buyer by the case.

**ADN** (public network data): DistFlow with the SOC relaxation over the day,
bus loads from the typical day, MG exports p_x at the PCC buses (unity power
factor), loss cost = wholesale price × B × Σ r ℓ.

Every block is one set of matrix expressions over the day; the agents build
their CVXPY problems once and re-solve them with updated ``cp.Parameter``s.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import cvxpy as cp
import numpy as np
import pandas as pd
import scipy.sparse as sp

from adnstudy.config.load import Case
from adnstudy.config.schema import GeneratorConfig, StorageConfig
from adnstudy.data.typical import HOURS, TypicalDays
from adnstudy.errors import SolveError
from adnstudy.formulation.distflow import BranchFlowSOC, branch_flow_soc
from adnstudy.network.feeder import Feeder

#: Clarabel at its default (1e-8) tolerances. On these models it often stops one step short, at
#: "AlmostSolved" (CVXPY: optimal_inaccurate) with a relative gap of 1e-8 to 1e-6, which is
#: accepted: the ADMM residual tolerances (1e-5 pu) are far above it. Every option is given
#: explicitly because CVXPY re-uses the solver object (and its settings) between solves.
CLARABEL = {"solver": "CLARABEL", "equilibrate_enable": True, "tol_gap_abs": 1e-8, "tol_gap_rel": 1e-8}
#: Retried in turn after a numerical failure (seen mid-iteration on the ADN subproblem once the
#: ATC penalty has grown: Clarabel stops with InsufficientProgress near a 1e-5 relative gap).
CLARABEL_RETRY = (
    {"solver": "CLARABEL", "equilibrate_enable": False, "tol_gap_abs": 1e-8, "tol_gap_rel": 1e-8},
    {"solver": "CLARABEL", "equilibrate_enable": True, "tol_gap_abs": 1e-7, "tol_gap_rel": 1e-7,
     "static_regularization_constant": 1e-7},
)
OK = ("optimal", "optimal_inaccurate")


# ----------------------------------------------------------------------------- data
@dataclass(frozen=True)
class MicrogridData:
    """What one MG knows: its own day, the public tariffs and fees of its pairs. Per unit except prices."""

    name: str
    pos: int  # position of the PCC bus in the feeder tables
    bus: int
    base_mva: float
    load_pu: np.ndarray  # (H,)
    pv_pu: np.ndarray  # available PV, (H,)
    wind_pu: np.ndarray
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


@dataclass(frozen=True)
class ADNData:
    """The operator's public network data for one day."""

    feeder: Feeder
    p_load_pu: np.ndarray  # bus × H
    q_load_pu: np.ndarray
    mg_pos: np.ndarray  # PCC bus positions, one per MG
    pcc_limit_pu: np.ndarray
    wholesale_usd_per_mwh: float
    v_min_pu: float
    v_max_pu: float
    v_sub_range_pu: tuple[float, float]
    i_max_pu: np.ndarray
    p_import_max_pu: float | None = None
    p_export_max_pu: float | None = None

    @property
    def hours(self) -> int:
        return self.p_load_pu.shape[1]


@dataclass(frozen=True)
class DayData:
    day: int  # cluster id
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


def dispatch_days(case: Case, feeder: Feeder, td: TypicalDays) -> list[DayData]:
    """Per typical day, the ADN's data and each MG's private data."""
    cfg = case.config
    eco, mk, net = cfg.economics, cfg.market, cfg.network
    assert eco is not None and mk is not None and cfg.microgrids
    B = feeder.base_mva
    buy = np.asarray(eco.purchase_price_usd_per_mwh, dtype=float)
    sell = np.asarray(eco.sell_price_usd_per_mwh or [0.0] * HOURS, dtype=float)
    over = np.flatnonzero(sell > buy)
    if len(over):
        raise case.error(
            f"the feed-in price exceeds the purchase price at hour {int(over[0])} "
            f"({sell[over[0]]:g} > {buy[over[0]]:g} USD/MWh): an MG could buy and resell without limit",
            "economics", "sell_price_usd_per_mwh",
        )
    if eco.wholesale_price_usd_per_mwh is None:
        raise case.error("dispatch values the ADN's losses at this price; give it", "economics",
                         "wholesale_price_usd_per_mwh")
    fees = pair_fees(case, feeder)
    share = {"seller": 1.0, "buyer": 0.0, "split": 0.5}[mk.fee_payer]
    names = [mg.name for mg in cfg.microgrids]
    mult = td.bus_load_multipliers(feeder).reshape(feeder.n_bus, td.n_days, HOURS)
    i_max = feeder.branches["rating_a"].to_numpy() / 1000.0 / feeder.i_base_ka
    mg_pos = np.array([feeder.position(mg.bus) for mg in cfg.microgrids])
    days = []
    for k, cluster in enumerate(td.clusters):
        mgs = []
        for m, mg in enumerate(cfg.microgrids):
            others = [n for n in range(len(names)) if n != m]
            zero = np.zeros(HOURS)
            mgs.append(MicrogridData(
                name=mg.name, pos=int(mg_pos[m]), bus=mg.bus, base_mva=B,
                load_pu=mg.load_peak_mw / B * td.of_kind("load", mg.load_profile)[k],
                pv_pu=mg.pv_mw / B * td.of_kind("pv")[k] if mg.pv_mw > 0 else zero,
                wind_pu=mg.wind_mw / B * td.of_kind("wind")[k] if mg.wind_mw > 0 else zero,
                pcc_limit_pu=mg.pcc_limit_mw / B, price_buy=buy, price_sell=sell,
                generator=mg.generator, storage=mg.storage,
                partners=tuple(names[n] for n in others), fee_usd_per_mwh=fees[m, others],
                seller_share=share, bargaining_power=mg.bargaining_power,
            ))
        adn = ADNData(
            feeder=feeder, p_load_pu=feeder.p_load_pu[:, None] * mult[:, k], q_load_pu=feeder.q_load_pu[:, None] * mult[:, k],
            mg_pos=mg_pos, pcc_limit_pu=np.array([mg.pcc_limit_mw / B for mg in cfg.microgrids]),
            wholesale_usd_per_mwh=float(eco.wholesale_price_usd_per_mwh), v_min_pu=net.v_min_pu, v_max_pu=net.v_max_pu,
            v_sub_range_pu=net.v_substation_range_pu or (net.v_substation_pu, net.v_substation_pu), i_max_pu=i_max,
            p_import_max_pu=None if net.p_import_max_mw is None else net.p_import_max_mw / B,
            p_export_max_pu=None if net.p_export_max_mw is None else net.p_export_max_mw / B,
        )
        days.append(DayData(day=int(cluster), weight_days=float(td.days_weight[k]), adn=adn, mgs=mgs))
    return days


# ------------------------------------------------------------------------ MG block
@dataclass
class MicrogridVars:
    g: cp.Variable
    pv: cp.Variable
    wind: cp.Variable
    ch: cp.Variable
    dis: cp.Variable
    soc: cp.Variable  # energy at the end of each hour, pu·h
    buy: cp.Variable
    sell: cp.Variable
    trade: cp.Variable | None  # partner × H, signed sale
    export: cp.Expression  # physical PCC export p_x


def mg_block(d: MicrogridData, *, trades: bool) -> tuple[MicrogridVars, list[cp.Constraint], cp.Expression]:
    """Variables, constraints and cost (USD) of one MG over the day."""
    H, B = d.hours, d.base_mva
    g = cp.Variable(H, name=f"{d.name}_g", nonneg=True)
    pv = cp.Variable(H, name=f"{d.name}_pv", nonneg=True)
    wind = cp.Variable(H, name=f"{d.name}_wind", nonneg=True)
    ch = cp.Variable(H, name=f"{d.name}_ch", nonneg=True)
    dis = cp.Variable(H, name=f"{d.name}_dis", nonneg=True)
    soc = cp.Variable(H, name=f"{d.name}_soc", nonneg=True)
    buy = cp.Variable(H, name=f"{d.name}_buy", nonneg=True)
    sell = cp.Variable(H, name=f"{d.name}_sell", nonneg=True)
    n_p = len(d.partners)
    trade = cp.Variable((n_p, H), name=f"{d.name}_trade") if trades and n_p else None
    export = g + pv + wind + dis - d.load_pu - ch
    cons: list[cp.Constraint] = [
        pv <= d.pv_pu, wind <= d.wind_pu,
        export <= d.pcc_limit_pu, export >= -d.pcc_limit_pu,
        buy <= d.pcc_limit_pu, sell <= d.pcc_limit_pu,
    ]
    net_trade = cp.sum(trade, axis=0) if trade is not None else 0
    cons.append(export + buy - sell - net_trade == 0)
    cost: cp.Expression = B * (d.price_buy @ buy - d.price_sell @ sell)
    gen = d.generator
    if gen is not None:
        cons += [g >= gen.p_min_mw / B, g <= gen.p_max_mw / B]
        cost = cost + gen.cost_a_usd_per_mw2h * B**2 * cp.sum_squares(g) + gen.cost_b_usd_per_mwh * B * cp.sum(g)
        cost = cost + gen.cost_c_usd_per_h * H
    else:
        cons.append(g == 0)
    st = d.storage
    if st is not None:
        e0 = st.soc_initial * st.energy_mwh / B
        prev = cp.hstack([np.array([e0]), soc[:-1]])
        cons += [
            ch <= st.power_mw / B, dis <= st.power_mw / B,
            soc == prev + st.eta_charge * ch - dis / st.eta_discharge,
            soc[H - 1] == e0,
            soc >= st.soc_min * st.energy_mwh / B, soc <= st.soc_max * st.energy_mwh / B,
        ]
        if st.cost_usd_per_mwh:
            cost = cost + st.cost_usd_per_mwh * B * cp.sum(dis)
    else:
        cons += [ch == 0, dis == 0, soc == 0]
    if trade is not None:
        fee = d.fee_usd_per_mwh[:, None] * B
        cost = cost + cp.sum(cp.multiply(fee * d.seller_share, cp.pos(trade))
                             + cp.multiply(fee * (1 - d.seller_share), cp.neg(trade)))
    v = MicrogridVars(g=g, pv=pv, wind=wind, ch=ch, dis=dis, soc=soc, buy=buy, sell=sell, trade=trade, export=export)
    return v, cons, cost


@dataclass(frozen=True)
class MicrogridSchedule:
    """An MG's solved day, MW and USD."""

    name: str
    table: pd.DataFrame  # hour × schedule columns, MW / MWh
    export_pu: np.ndarray
    trade_pu: np.ndarray  # partner × H (zeros without trades)
    cost_usd: float  # operating + tariff + fee share (no ADMM/ATC terms)


def read_schedule(d: MicrogridData, v: MicrogridVars, cost: cp.Expression) -> MicrogridSchedule:
    B = d.base_mva
    val = lambda x: np.asarray(x.value, dtype=float)  # noqa: E731
    table = pd.DataFrame({
        "hour": np.arange(d.hours),
        "p_gen_mw": val(v.g) * B, "p_pv_mw": val(v.pv) * B, "p_wind_mw": val(v.wind) * B,
        "p_curtailed_mw": (d.pv_pu + d.wind_pu - val(v.pv) - val(v.wind)) * B,
        "p_charge_mw": val(v.ch) * B, "p_discharge_mw": val(v.dis) * B, "soc_mwh": val(v.soc) * B,
        "p_buy_mw": val(v.buy) * B, "p_sell_mw": val(v.sell) * B, "p_load_mw": d.load_pu * B,
    })
    trade = val(v.trade) if v.trade is not None else np.zeros((len(d.partners), d.hours))
    return MicrogridSchedule(name=d.name, table=table, export_pu=val(v.export), trade_pu=trade,
                             cost_usd=float(cost.value))


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

    def __init__(self, data: MicrogridData):
        self.data = data
        H, n_p = data.hours, len(data.partners)
        self.pcc_quad = cp.Parameter(nonneg=True, name="pcc_quad")
        self.pcc_lin = cp.Parameter(H, name="pcc_lin")
        self._alone_vars, cons, self._alone_cost = mg_block(data, trades=False)
        self._alone = cp.Problem(cp.Minimize(self._alone_cost), cons)
        # no bilateral trades, but under the ADN's targets: the networked disagreement point
        self._notrade = cp.Problem(cp.Minimize(self._alone_cost + self._atc_terms(self._alone_vars)), cons)
        self.vars, cons, self.cost = mg_block(data, trades=True)
        obj = self.cost + self._atc_terms(self.vars)
        if self.vars.trade is not None:
            self.trade_quad = cp.Parameter(nonneg=True, name="trade_quad")
            self.trade_lin = cp.Parameter((n_p, H), name="trade_lin")
            obj = obj + self.trade_quad * cp.sum_squares(self.vars.trade) + cp.sum(cp.multiply(self.trade_lin, self.vars.trade))
        self._coord = cp.Problem(cp.Minimize(obj), cons)

    def _atc_terms(self, v: MicrogridVars) -> cp.Expression:
        return self.pcc_quad * cp.sum_squares(v.export) + self.pcc_lin @ v.export

    def solve_alone(self) -> MicrogridSchedule:
        solve_checked(self._alone, f"microgrid {self.data.name} alone (tariffs only)")
        return read_schedule(self.data, self._alone_vars, self._alone_cost)

    def respond(self, target_pu: np.ndarray, atc_mult: np.ndarray, atc_weight: float,
                agreed_pu: np.ndarray | None = None, trade_mult: np.ndarray | None = None,
                rho_trade: float = 0.0) -> MicrogridSchedule:
        """Lower-level response: p_x and trade proposals given the ADN's target and the agreed trades.

        Without ``agreed_pu`` the MG does not trade bilaterally (the disagreement market).
        """
        self.pcc_quad.value = atc_weight
        self.pcc_lin.value = -atc_mult - 2 * atc_weight * target_pu
        if agreed_pu is None:
            solve_checked(self._notrade, f"microgrid {self.data.name} subproblem without trades")
            return read_schedule(self.data, self._alone_vars, self._alone_cost)
        if self.vars.trade is not None:
            self.trade_quad.value = rho_trade / 2
            self.trade_lin.value = trade_mult - rho_trade * agreed_pu
        solve_checked(self._coord, f"microgrid {self.data.name} subproblem")
        return read_schedule(self.data, self.vars, self.cost)


# ----------------------------------------------------------------------- ADN block
@dataclass
class ADNBlock:
    flow: BranchFlowSOC
    p_sub: cp.Variable
    q_sub: cp.Variable
    constraints: list[cp.Constraint]
    loss_cost: cp.Expression  # USD over the day


def adn_block(d: ADNData, export: cp.Expression, relax: frozenset[str] = frozenset()) -> ADNBlock:
    """DistFlow over the day with the MGs' PCC exports (MG × H expression) injected at their buses.

    ``relax`` drops limit families ("voltage", "current") to find what makes a day infeasible.
    """
    fd, H = d.feeder, d.hours
    n, M = fd.n_bus, len(d.mg_pos)
    p_sub = cp.Variable(H, name="p_sub")
    q_sub = cp.Variable(H, name="q_sub")
    at_sub = sp.csr_matrix(([1.0], ([0], [0])), shape=(n, 1))
    at_pcc = sp.csr_matrix((np.ones(M), (d.mg_pos, np.arange(M))), shape=(n, M))
    p_inj = at_sub @ cp.reshape(p_sub, (1, H), order="F") + at_pcc @ export
    q_inj = at_sub @ cp.reshape(q_sub, (1, H), order="F")
    flow = branch_flow_soc(fd, H, p_inj, q_inj, d.p_load_pu, d.q_load_pu, v_min_pu=d.v_min_pu, v_max_pu=d.v_max_pu,
                           v_sub_range_pu=d.v_sub_range_pu, i_max_pu=d.i_max_pu, relax=relax)
    cons = list(flow.constraints)
    if d.p_import_max_pu is not None:
        cons.append(p_sub <= d.p_import_max_pu)
    if d.p_export_max_pu is not None:
        cons.append(p_sub >= -d.p_export_max_pu)
    loss_cost = d.wholesale_usd_per_mwh * fd.base_mva * cp.sum(fd.r_pu @ flow.ell)
    return ADNBlock(flow=flow, p_sub=p_sub, q_sub=q_sub, constraints=cons, loss_cost=loss_cost)


class ADNAgent:
    """The operator: network, its loads and the PCC targets; sees only the MGs' exchanged p_x.

    Upper-level ATC subproblem: loss cost + ρ_pcc ‖T − R‖² + v·T for the MGs'
    responses R and the multipliers v (DPP parameters, compiled once).
    """

    def __init__(self, data: ADNData):
        self.data = data
        M, H = len(data.mg_pos), data.hours
        self.target = cp.Variable((M, H), name="pcc_target")
        self.block = adn_block(data, self.target)
        lim = data.pcc_limit_pu[:, None]
        cons = self.block.constraints + [self.target <= lim, self.target >= -lim]
        self.quad = cp.Parameter(nonneg=True, name="atc_quad")
        self.lin = cp.Parameter((M, H), name="atc_lin")
        obj = self.block.loss_cost + self.quad * cp.sum_squares(self.target) + cp.sum(cp.multiply(self.lin, self.target))
        self.problem = cp.Problem(cp.Minimize(obj), cons)

    def set_targets(self, response_pu: np.ndarray, atc_mult: np.ndarray, atc_weight: float) -> np.ndarray:
        self.quad.value = atc_weight
        self.lin.value = atc_mult - 2 * atc_weight * response_pu
        solve_checked(self.problem, "ADN upper-level subproblem (network with the PCC targets)")
        return np.asarray(self.target.value, dtype=float)

    @property
    def loss_cost_usd(self) -> float:
        return float(self.block.loss_cost.value)


# ----------------------------------------------------------------- centralised model
@dataclass
class Centralised:
    problem: cp.Problem
    mg_vars: list[MicrogridVars]
    mg_costs: list[cp.Expression]
    adn: ADNBlock


def centralised_model(day: DayData, *, trading: bool = True, relax: frozenset[str] = frozenset()) -> Centralised:
    """The whole stage-1 clearing as one SOCP: every MG, trade reciprocity and the ADN.

    ``trading=False`` is the disagreement market: the same clearing without bilateral trades.
    """
    blocks = [mg_block(d, trades=trading) for d in day.mgs]
    mg_vars = [b[0] for b in blocks]
    cons = [c for b in blocks for c in b[1]]
    costs = [b[2] for b in blocks]
    adn = adn_block(day.adn, cp.vstack([v.export for v in mg_vars]), relax)
    cons += adn.constraints
    for m, n in day.pairs if trading else []:
        cons.append(mg_vars[m].trade[partner_row(m, n)] + mg_vars[n].trade[partner_row(n, m)] == 0)
    problem = cp.Problem(cp.Minimize(cp.sum(cp.hstack(costs)) + adn.loss_cost), cons)
    return Centralised(problem=problem, mg_vars=mg_vars, mg_costs=costs, adn=adn)


def partner_row(m: int, n: int) -> int:
    """Row of partner n in MG m's trade matrix (partners are the other MGs in case order)."""
    return n - 1 if n > m else n


def diagnose_day(day: DayData) -> str:
    """Why a day's market is infeasible: an MG that cannot balance alone, or the network limit family to blame."""
    for i, d in enumerate(day.mgs):
        try:
            MicrogridAgent(d).solve_alone()
        except SolveError:
            B = d.base_mva
            supply = (d.generator.p_max_mw if d.generator else 0.0) + (d.storage.power_mw if d.storage else 0.0)
            return (f"microgrid {d.name} (microgrids[{i}]) cannot balance its own load: it peaks at "
                    f"{d.load_pu.max() * B:.3f} MW against a {d.pcc_limit_pu * B:.3f} MW PCC limit, "
                    f"{supply:.3f} MW of unit and storage power and its PV/wind; raise microgrids[{i}].pcc_limit_mw "
                    "or its generation")
    for family, hint in (("voltage", "the voltage limits (network.v_min_pu / v_max_pu, v_substation_range_pu)"),
                         ("current", "the branch ratings (rating_a or network.branch_rating_factor)")):
        model = centralised_model(day, trading=False, relax=frozenset({family}))
        try:
            solve_checked(model.problem, "")
        except SolveError:
            continue
        return f"the network cannot carry the MGs' exchanges and its loads within {hint}"
    return "no single MG or network limit family explains it; check loads, PCC limits and network limits together"


def solve_checked(problem: cp.Problem, what: str) -> None:
    attempts = (CLARABEL, *CLARABEL_RETRY)
    for attempt, options in enumerate(attempts):
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                warnings.filterwarnings("ignore", category=RuntimeWarning)  # values of a failed solve
                problem.solve(**options)
            break
        except cp.SolverError as exc:
            if attempt == len(attempts) - 1:
                raise SolveError(f"{what}: the solver failed ({exc})") from None
    if problem.status not in OK:
        raise SolveError(f"{what}: solver status '{problem.status}'; {_hint(problem.status)}")


def _hint(status: str) -> str:
    if status.startswith("infeasible"):
        return ("the MG cannot balance its load within its PCC limit, unit and storage, or the network cannot "
                "carry the exchanges within its voltage/current limits: check pcc_limit_mw, the unit and the "
                "network limits")
    return "the problem is badly scaled or unbounded; check prices and limits"
