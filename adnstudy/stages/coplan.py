"""``adnstudy coplan``: collaborative planning of the ADN and MG investors (docs/coplan.md).

1. **Disagreement point**: each MG plans its candidates alone (tariffs only,
   blind to the network); their plans are operated on the feeder without
   bilateral trades (the disagreement market of ``dispatch``, over the K
   days); the ADN plans its sites around those exchanges (the ``plan`` model
   at the wholesale price). Every investor's annual cost there is its
   disagreement cost d_i.
2. **Alternating optimisation** (:mod:`adnstudy.solve.alternate`): the upper
   level — every 0-1 decision fixed — is the welfare clearing over the K days
   with continuous sizes, solved distributedly (ATC + ADMM, warm-started from
   the previous outer iteration); the lower level lets each investor re-choose
   its own 0-1 decisions from what the upper level sent it.
3. **Generalized Nash bargaining**: fees settled, then payments (the closed-form
   payment ADMM of ``dispatch``) give investor i the share β_i/Σβ of the total
   gain Σ d_i − welfare.
4. **Checks**: the centralised welfare-maximising plan (branch-and-bound of the
   whole MISOCP), the centralised clearing at the final decisions, and each
   investor's best unilateral deviation (stability).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adnstudy.config.load import Case
from adnstudy.errors import IncompleteResultsError, NotConvergedError, SolveError
from adnstudy.problems.coplan import (
    CoplanData,
    CoplanModel,
    PlanningADN,
    build_coplan_model,
    coplan_data,
    fee_accounts,
    zero_decision,
)
from adnstudy.problems.microgrid import MicrogridAgent, MicrogridSchedule, read_schedule
from adnstudy.problems.plan import solve_plan
from adnstudy.results.figures import legend_below, new_figure, paired_bars
from adnstudy.results.tables import zero_below
from adnstudy.solve.alternate import Decisions, Step, alternate, decisions_key
from adnstudy.solve.bargaining import BargainResult, bargain
from adnstudy.solve.conic import DEFAULT, FINAL, quiet_solver, solve_conic
from adnstudy.solve.coordination import CoordinationResult, coordinate
from adnstudy.solve.mip import MipResult, MipSettings, diagnose_infeasible, solve_mip
from adnstudy.stages.registry import Line, checked_inputs, read_inputs, stage_writer

log = logging.getLogger(__name__)
#: The PCC mismatch and trade reciprocity every upper level must reach (MW), unless the case asks for less.
TOL_MW = 1e-4
#: How little the exports and agreed trades may still move per iteration (MW): ten times the primal tolerance.
#: Measured on the shipped 33-bus case, the welfare has settled to 1e-6 when the primal residual reaches 1e-4 MW,
#: while the dual residual creeps from 1.4e-4 to 1e-4 MW over 40 more iterations without changing anything.
DUAL_TOL_MW = 1e-3
#: A pair counts as trading partners when it traded more than this in some hour (MW).
TRADED_MW = 1e-4


def settings_of(case: Case) -> dict[str, Any]:
    cfg = case.config
    cp_cfg = getattr(cfg, "coplan", None)
    return {
        "max_iter": int(getattr(cp_cfg, "max_iter", 10)),
        "enumerate_max": int(getattr(cp_cfg, "enumerate_max", 64)),
        "stability_tol": float(getattr(cp_cfg, "stability_tol", 1e-3)),
        "follow_deviations": bool(getattr(cp_cfg, "follow_deviations", True)),
    }


def mip_settings(case: Case, time_limit: float | None = None) -> MipSettings:
    return MipSettings.from_case(case, time_limit_s=time_limit or None)


# --------------------------------------------------------------------- disagreement
@dataclass
class Alone:
    """Every investor planning alone: decisions, MG sizes, annual costs (the disagreement point)."""

    decisions: Decisions
    sizes_mw: list[np.ndarray | None]  # per MG
    cost_usd: np.ndarray  # per investor, ADN first
    schedules: list[MicrogridSchedule]  # the MGs' operation on the feeder (no bilateral trades)
    adn_capacity_mw: np.ndarray
    seconds: float
    status: str = "optimal"  # of the MGs' plans operated on the feeder (a FINAL solve)


def disagreement(data: CoplanData, mip: MipSettings) -> Alone:
    """Each MG plans alone, network-blind; their plans run on the feeder without trades; the ADN plans around."""
    t = time.perf_counter()
    plans = []
    for d in data.mgs:
        agent = MicrogridAgent(replace(d, partners=(), fee_usd_per_mwh=np.zeros(0)), DEFAULT)
        plans.append(agent.plan_alone())
    model = build_coplan_model(data, trading=False)
    start = (zero_decision(model.adn), *(p[0] for p in plans))
    sizes = [p[1].capacity_mw if d.candidates is not None else None for p, d in zip(plans, data.mgs, strict=True)]
    problem = model.operation(start, sizes)
    try:
        status = solve_conic(problem, FINAL, "the MGs' stand-alone plans operated on the feeder without trades")
    except SolveError as exc:
        plans_text = describe(data, start)
        raise SolveError(f"the MGs' stand-alone plans ({plans_text}) cannot be operated on the feeder without "
                         f"bilateral trades (status '{getattr(exc, 'status', 'failed')}'): "
                         f"{diagnose_infeasible(model)}; no results were written") from None
    schedules = [read_schedule(d, b) for d, b in zip(data.mgs, model.mgs, strict=True)]
    export = np.array([s.export_pu for s in schedules])
    try:
        adn = solve_plan(replace(data.adn, mg_export=export), mip)
    except SolveError as exc:
        raise SolveError(f"the ADN planning alone around the MGs' stand-alone exchanges: {exc}") from None
    plan_model = adn.model
    own = data.wholesale_usd_per_mwh * data.base_mva * float((export @ data.weight).sum())
    d0 = plan_model.objective_usd + own
    adn_decision = tuple(np.round(np.array(v.value, float)) for v in plan_model.integer_vars())
    return Alone(decisions=(adn_decision, *(p[0] for p in plans)), sizes_mw=sizes,
                 cost_usd=np.array([d0, *(s.cost_usd for s in schedules)]), schedules=schedules,
                 adn_capacity_mw=plan_model.solution().built_mw, seconds=time.perf_counter() - t, status=status)


# ---------------------------------------------------------------------- upper level
@dataclass
class Upper:
    """The upper level at one set of decisions, solved distributedly."""

    decisions: Decisions
    clearing: CoordinationResult
    welfare_usd: float
    iterations: int
    adn_capacity_mw: np.ndarray
    seconds: float


class Investors:
    """The agents, built once: the ADN's and every MG's, re-solved with new decisions and ATC terms."""

    def __init__(self, case: Case, data: CoplanData, alone: Alone, mip: MipSettings):
        co = case.config.market.coordination  # type: ignore[union-attr]
        B = data.base_mva
        self.data, self.mip = data, mip
        self.adn = PlanningADN(data, DEFAULT)
        self.mgs = [MicrogridAgent(d, DEFAULT) for d in data.mgs]
        self.initial = alone.schedules
        self.warm = None
        self.kwargs = dict(hours=data.adn.n_snap, base_mva=B, rho_pcc=co.rho_pcc_usd_per_mw2h * B**2,
                           rho_trade=co.rho_trade_usd_per_mw2h * B**2, tol_pu=max(co.tol_mw, TOL_MW) / B,
                           tol_dual_pu=max(co.dual_tol_mw, DUAL_TOL_MW) / B, tol_objective=co.tol_objective,
                           max_iter=co.max_iter, snapshot_weight=data.weight)

    def upper(self, decisions: Decisions) -> Upper:
        """The upper level at ``decisions``, from the last upper level's state."""
        t = time.perf_counter()
        self.adn.fix(decisions[0])
        for agent, d in zip(self.mgs, decisions[1:], strict=True):
            agent.fix(d)
        res = coordinate(self.adn, self.mgs, self.data.pairs, self.initial, strict=False, warm=self.warm,
                         **self.kwargs)
        log.info("upper level at %s: welfare %.2f USD/yr, %d ATC+ADMM iterations, %.1f s",
                 describe(self.data, decisions), res.objective_usd, res.iterations, time.perf_counter() - t)
        if not res.converged:
            raise NotConvergedError(f"the upper level at outer decisions {describe(self.data, decisions)}: "
                                    f"{res.message}", history=res.history)
        self.warm = res.state
        cap = np.array(self.adn.model.investment.capacity_mw.value, dtype=float)
        return Upper(decisions=decisions, clearing=res, welfare_usd=res.objective_usd, iterations=res.iterations,
                     adn_capacity_mw=np.where(decisions[0][0] > 0, np.maximum(cap, 0), 0.0),
                     seconds=time.perf_counter() - t)

    # The lower levels price the exchanges linearly, at the upper level's final multipliers (penalty weights 0):
    # by duality, the welfare change an investor's deviation shows there is a lower bound on the true change,
    # so a deviation that does not pay at these prices does not pay at all; one that seems to pay is tried by
    # the next upper level (and undone, or ends in a cycle whose best member is kept, if it did not).
    def adn_response(self, up: Upper) -> tuple[np.ndarray, ...]:
        st = up.clearing.state
        self.adn.fix(up.decisions[0])
        self.adn.set_terms(st.R, st.v, 0.0)
        return self.adn.best_response(self.mip)

    def mg_response(self, m: int, up: Upper) -> tuple[np.ndarray, ...]:
        st, M = up.clearing.state, len(self.mgs)
        others = [n for n in range(M) if n != m]
        agent = self.mgs[m]
        agent.set_terms(up.clearing.targets_pu[m], st.v[m], 0.0, st.z[m, others], st.mu[m, others], 0.0)
        return agent.best_response()[0]


def describe(data: CoplanData, decisions: Decisions) -> str:
    """Decisions in words: which candidates each investor builds."""
    parts = []
    for name, d in zip(data.names, decisions, strict=True):
        built = np.flatnonzero(d[0] > 0) if d else np.zeros(0, int)
        parts.append(f"{name}: {'candidates ' + ','.join(map(str, built)) if len(built) else 'nothing'}")
    return "; ".join(parts)


# --------------------------------------------------------------------------- checks
@dataclass
class Deviation:
    welfare_usd: float  # best welfare with the investor's own 0-1 decisions changed, the others fixed
    decisions: tuple[np.ndarray, ...]
    method: str  # "enumeration" or "branch-and-bound"
    solves: int


def best_deviations(data: CoplanData, decisions: Decisions, mip: MipSettings, enumerate_max: int
                    ) -> tuple[float, str, list[Deviation]]:
    """The welfare at ``decisions`` (centralised) and its solve status, and, per investor, the best welfare it
    can reach alone."""
    model = build_coplan_model(data)
    model.fix(decisions)
    status = solve_conic(model.problem, FINAL, "the welfare at the final decisions")
    base = model.welfare_usd
    out = []
    for i in range(len(decisions)):
        if model.space(i) <= enumerate_max:
            best, best_d, n = base, decisions[i], 0
            for combo in model.combinations(i):
                trial = (*decisions[:i], combo, *decisions[i + 1:])
                if decisions_key(trial) == decisions_key(decisions):
                    continue
                model.fix(trial)
                n += 1
                try:
                    solve_conic(model.problem, FINAL, "a unilateral deviation")
                except SolveError:
                    continue
                if model.welfare_usd < best:
                    best, best_d = model.welfare_usd, combo
            out.append(Deviation(best, best_d, "enumeration", n))
        else:
            def build(native: bool, i: int = i) -> CoplanModel:
                m = build_coplan_model(data, "native" if native else "relaxed")
                m.restrict(i, decisions)
                return m

            res = solve_mip(build, mip)
            dev = res.model.decisions()[i]  # type: ignore[attr-defined]
            out.append(Deviation(min(base, res.model.welfare_usd), dev, "branch-and-bound",  # type: ignore[attr-defined]
                                 int(res.record.get("nodes", 0) or 0)))
    return base, status, out


def centralised(data: CoplanData, mip: MipSettings) -> MipResult:
    """The joint welfare-maximising plan: every investor's 0-1 decisions at once, by branch-and-bound."""
    return solve_mip(lambda native: build_coplan_model(data, "native" if native else "relaxed"), mip)


def deviation_gains(data: CoplanData, base_usd: float, deviations: list[Deviation]) -> np.ndarray:
    """What each investor's best unilateral deviation would gain it (USD/yr): its share of the welfare it saves."""
    return np.array([max(0.0, base_usd - d.welfare_usd) * s for d, s in zip(deviations, data.shares, strict=True)])


@dataclass
class Settled:
    """Where the loop ended: its upper level, the sharing, and the stability check at its decisions."""

    upper: Upper
    outcome: str  # of the alternation: "fixed point" or "cycle"
    sharing: Sharing
    base_usd: float  # the welfare at the final decisions, solved centrally
    base_status: str  # that solve's status
    deviations: list[Deviation]
    gains_usd: np.ndarray  # best_deviation_gain_usd per investor
    stable: bool
    steps: list[Step] = field(default_factory=list)  # every outer iteration, the moves included
    moves: int = 0  # deviations the stability check found profitable and the loop moved to


def settle(data: CoplanData, investors: Investors, alone: Alone, mip: MipSettings, opts: dict[str, Any], co: Any,
           seconds: dict[str, float]) -> Settled:
    """Alternate until the decisions settle, share the gain, and check every investor's best unilateral
    deviation; while one pays its investor more than ``stability_tol`` of its payoff, move to the one that
    lowers the welfare cost most (a new outer iteration: its upper level, then the check again).

    The lower levels see prices, so in a cycle they may keep proposing one change while another, which they
    rank lower, is the one that pays; the check is the exact lower level (docs/coplan.md). Each move lowers
    the welfare cost by more than the tolerance, so no decisions come back and the moves end; the outer
    iterations, moves included, count against ``coplan.max_iter``: reaching it is an error, nothing written.
    """
    respond = [investors.adn_response] + [lambda up, m=m: investors.mg_response(m, up) for m in range(len(data.mgs))]
    loop = alternate(investors.upper, respond, alone.decisions, max_iter=opts["max_iter"])
    if not loop.converged:
        raise NotConvergedError(
            f"the alternating optimisation reached coplan.max_iter = {opts['max_iter']} outer iterations without its "
            f"decisions repeating or cycling; the last decisions were {describe(data, loop.steps[-1].responses)}; "
            "nothing was written (raise coplan.max_iter)")
    steps, up, moves = list(loop.steps), loop.upper, 0
    seconds["stability"] = 0.0
    while True:
        t = time.perf_counter()
        base, status, deviations = best_deviations(data, up.decisions, mip, opts["enumerate_max"])
        seconds["stability"] += time.perf_counter() - t
        sharing = share(data, up, alone.cost_usd, co)
        gains = deviation_gains(data, base, deviations)
        stable = bool(np.all(gains <= opts["stability_tol"] * np.maximum(np.abs(sharing.cooperative_usd), 1.0)))
        log.info("stability check at %s: best unilateral deviations gain %s USD/yr", describe(data, up.decisions),
                 np.round(gains, 2).tolist())
        if stable or not opts["follow_deviations"]:
            break
        i = int(np.argmax([base - d.welfare_usd for d in deviations]))
        if len(steps) >= opts["max_iter"]:
            raise NotConvergedError(
                f"the alternating optimisation reached coplan.max_iter = {opts['max_iter']} outer iterations while "
                f"moving to profitable unilateral deviations; the last decisions were {describe(data, up.decisions)}, "
                f"and {data.names[i]} would still gain {gains[i]:,.2f} USD/yr by deviating alone; nothing was written "
                "(raise coplan.max_iter, or set coplan.follow_deviations: false to report the deviation instead)")
        move = (*up.decisions[:i], deviations[i].decisions, *up.decisions[i + 1:])
        log.info("%s would gain %.2f USD/yr by deviating alone: moving to %s", data.names[i], gains[i],
                 describe(data, move))
        if moves:  # the check chose this move from the last move's point
            steps[-1].responses = move
        t = time.perf_counter()
        up = investors.upper(move)
        steps.append(Step(len(steps) + 1, move, up, move, time.perf_counter() - t, [0.0] * len(move), "check"))
        moves += 1
    return Settled(up, loop.outcome, sharing, base, status, deviations, gains, stable, steps, moves)


# ---------------------------------------------------------------------------- stage
@dataclass
class Sharing:
    """Fees settled, then the generalized Nash bargaining payments, per investor (ADN first)."""

    before_payments_usd: np.ndarray
    fees_usd: np.ndarray  # per MG (paid to the ADN)
    bargain: BargainResult
    traded: list[tuple[int, int]]  # MG pairs that traded (MG indices)

    @property
    def cooperative_usd(self) -> np.ndarray:
        return self.before_payments_usd + self.bargain.payments_usd.sum(axis=1)


def share(data: CoplanData, up: Upper, disagreement_usd: np.ndarray, co: Any) -> Sharing:
    res = up.clearing
    B = data.base_mva
    fees = fee_accounts(data, res.agreed_pu)
    mg_cost = np.array([r.cost_usd for r in res.responses]) + fees
    before = np.array([res.upper.cost_usd - fees.sum(), *mg_cost])
    traded = [(m, n) for m, n in data.pairs if np.max(np.abs(res.agreed_pu[m, n])) * B > TRADED_MW]
    edges = [(0, m + 1) for m in range(len(data.mgs))] + [(m + 1, n + 1) for m, n in traded]
    result = bargain(disagreement_usd - before, data.powers, edges, tol=co.payment_tol, max_iter=co.payment_max_iter,
                     strict=False)
    return Sharing(before_payments_usd=before, fees_usd=fees, bargain=result, traded=traded)


def coplan_inputs(case: Case, out_dir: Path, reliability: bool) -> tuple[CoplanData, dict[str, str | None]]:
    feeder = checked_inputs(case, "coplan").feeder
    tables, digests = read_inputs(case, out_dir, "coplan")
    data = coplan_data(case, feeder, tables["cluster", "typical"], tables["cluster", "weights"],
                       reliability=reliability and case.config.reliability is not None)
    return data, digests


def coplan_stage(case: Case, out_dir: Path, run_key: str | None = None, centralised_only: bool = False,
                 reliability: bool = True) -> dict[str, Any]:
    """The whole stage (module docstring); ``centralised_only``: the centralised reference alone."""
    data, digests = coplan_inputs(case, out_dir, reliability)
    co = case.config.market.coordination  # type: ignore[union-attr]
    opts = settings_of(case)
    mip = mip_settings(case)
    seconds: dict[str, float] = {}
    with stage_writer(out_dir, case, "coplan", inputs=digests) as w, quiet_solver():
        if centralised_only:
            ref, ref_decisions, ref_welfare = reference(data, mip, seconds)
            w.table("investment", pd.DataFrame(investment_rows(data, "centralised", ref_decisions,
                                                                 capacities(data, ref.model))))
            summary = {"centralised_welfare_usd": ref_welfare, "centralised_gap": ref.record.get("gap"),
                       "seconds": seconds}
            w.record(run_key=run_key, objective=ref_welfare, complete=True, solver=ref.record, summary=summary)
            return summary
        t = time.perf_counter()
        alone = disagreement(data, mip)
        seconds["disagreement"] = time.perf_counter() - t
        log.info("disagreement point: %s; costs %s USD/yr, %.1f s", describe(data, alone.decisions),
                 np.round(alone.cost_usd, 2).tolist(), seconds["disagreement"])
        investors = Investors(case, data, alone, mip)
        t = time.perf_counter()
        settled = settle(data, investors, alone, mip, opts, co, seconds)
        seconds["alternating"] = time.perf_counter() - t - seconds["stability"]
        final, base, deviations, steps = settled.upper, settled.base_usd, settled.deviations, settled.steps
        ref, ref_decisions, ref_welfare = reference(data, mip, seconds)
        rows = investment_rows(data, "centralised", ref_decisions, capacities(data, ref.model))
        sharing, dev_gain, stable = settled.sharing, settled.gains_usd, settled.stable
        cooperative = sharing.cooperative_usd
        gap_central = (final.welfare_usd - base) / max(abs(base), 1.0)
        welfare_gap = (final.welfare_usd - ref_welfare) / max(abs(ref_welfare), 1.0)
        agents = pd.DataFrame({
            "agent": data.names, "cost_disagreement_usd": alone.cost_usd, "cost_cooperative_usd": cooperative,
            "gain_usd": alone.cost_usd - cooperative, "bargaining_power": data.powers,
            "share_of_gain": (alone.cost_usd - cooperative) / max(alone.cost_usd.sum() - cooperative.sum(), 1e-9),
            "cost_before_payments_usd": sharing.before_payments_usd,
            "fees_usd": np.array([-sharing.fees_usd.sum(), *sharing.fees_usd]),
            "payment_usd": sharing.bargain.payments_usd.sum(axis=1),
            "best_deviation_gain_usd": dev_gain,
        })
        rows += investment_rows(data, "alone", alone.decisions, [alone.adn_capacity_mw, *alone.sizes_mw])
        rows += investment_rows(data, "coplan", final.decisions, upper_capacities(final))
        tables = {
            "investment": pd.DataFrame(rows), "agents": agents,
            "iterations": iteration_table(data, steps),
            **clearing_tables(data, final, sharing, co.tol_mw),
        }
        for name, df in tables.items():
            w.table(name, df)
        for name, fig in figures(tables, ref_welfare).items():
            w.figure(name, fig)
        total_gain = float(alone.cost_usd.sum() - final.welfare_usd)
        summary = {
            "investors": data.names, "outer_iterations": len(steps), "outcome": settled.outcome,
            "deviation_moves": settled.moves,
            "welfare_usd": final.welfare_usd, "centralised_welfare_usd": ref_welfare, "welfare_gap": welfare_gap,
            "welfare_at_decisions_centralised_usd": base, "distributed_gap": gap_central,
            "disagreement_usd": float(alone.cost_usd.sum()), "total_gain_usd": total_gain,
            "gains_usd": dict(zip(data.names, np.round(agents["gain_usd"], 2), strict=True)),
            "individually_rational": bool(np.all(agents["gain_usd"] >= -1e-6 * np.abs(alone.cost_usd))),
            "stable": stable, "max_deviation_gain_usd": float(dev_gain.max()),
            "pcc_mismatch_mw": final.clearing.history[-1]["pcc_mismatch_mw"],
            "reciprocity_mw": final.clearing.history[-1]["reciprocity_mw"],
            "upper_iterations": [s.upper.iterations for s in steps],
            "payment_iterations": sharing.bargain.iterations,
            # the two FINAL-profile solves the figures rest on ("optimal_inaccurate": short of 1e-6 after retries)
            "solve_status": {"disagreement_operation": alone.status, "welfare_at_decisions": settled.base_status},
            "seconds": seconds,
        }
        w.record(run_key=run_key, objective=final.welfare_usd, complete=sharing.bargain.converged,
                 solver={"name": "CLARABEL", "method": "alternating optimisation; upper level ATC + closed-form ADMM; "
                         "centralised reference by branch-and-bound", "centralised": ref.record},
                 summary=summary,
                 deviations=[{"investor": n, "welfare_usd": d.welfare_usd, "method": d.method, "solves": d.solves}
                             for n, d in zip(data.names, deviations, strict=True)])
    if not sharing.bargain.converged:
        raise IncompleteResultsError(f"the payments did not converge: {sharing.bargain.message}; results written to "
                                     f"{out_dir / 'coplan'} (manifest complete = false)")
    return summary


def reference(data: CoplanData, mip: MipSettings, seconds: dict[str, float]) -> tuple[MipResult, Decisions, float]:
    """The centralised reference, its decisions and welfare (timed into ``seconds``)."""
    t = time.perf_counter()
    ref = centralised(data, mip)
    model: CoplanModel = ref.model  # type: ignore[assignment]
    decisions, welfare = model.decisions(), model.welfare_usd
    seconds["centralised"] = time.perf_counter() - t
    log.info("centralised reference: welfare %.2f USD/yr (%s), %.1f s", welfare, describe(data, decisions),
             seconds["centralised"])
    return ref, decisions, welfare


# --------------------------------------------------------------------------- tables
def capacities(data: CoplanData, model: CoplanModel) -> list[np.ndarray | None]:
    """Built capacity (MW) per investor's candidates in a solved welfare model."""
    val = lambda x: np.maximum(np.array(x.value, dtype=float), 0.0)  # noqa: E731
    adn = model.adn.investment
    out: list[np.ndarray | None] = [np.where(np.round(val(adn.build)) > 0, val(adn.capacity_mw), 0.0)]
    for inv in model.investments:
        out.append(None if inv is None else np.where(np.round(val(inv.build)) > 0, val(inv.capacity_mw), 0.0))
    return out


def upper_capacities(up: Upper) -> list[np.ndarray | None]:
    out: list[np.ndarray | None] = [up.adn_capacity_mw]
    for r in up.clearing.responses:
        out.append(np.where(r.build[0] > 0, np.maximum(r.capacity_mw, 0), 0.0) if r.build else None)
    return out


def investment_rows(data: CoplanData, plan: str, decisions: Decisions, caps: list[np.ndarray | None]
                    ) -> list[dict[str, Any]]:
    rows = []
    sites = [data.adn.sites] + [d.candidates.sites if d.candidates is not None else None for d in data.mgs]
    buses = [data.adn.sites["bus"].to_numpy()] + [np.full(len(s), d.bus) if s is not None else None
                                                  for s, d in zip(sites[1:], data.mgs, strict=True)]
    for name, st, bus, dec, cap in zip(data.names, sites, buses, decisions, caps, strict=True):
        if st is None or not len(st):
            continue
        build = dec[0] > 0
        c = np.where(build, cap if cap is not None else 0.0, 0.0)
        capex = st["capex_usd_per_mw"].to_numpy() * c + st["fixed_capex_usd"].to_numpy() * build
        for j in range(len(st)):
            rows.append({"plan": plan, "investor": name, "candidate": j, "bus": int(bus[j]), "tech": st["tech"].iloc[j],
                         "build": bool(build[j]), "capacity_mw": float(c[j]), "capex_usd": float(capex[j]),
                         "annualised_usd": float(capex[j] * st["crf"].iloc[j])})
    return rows


def iteration_table(data: CoplanData, steps: list[Step]) -> pd.DataFrame:
    rows = []
    for step in steps:
        for i, name in enumerate(data.names):
            d, r = step.decisions[i], step.responses[i]
            rows.append({
                "iteration": step.iteration, "investor": name,
                "decisions": "".join(str(int(x)) for x in (d[0] if d else [])),
                "response": "".join(str(int(x)) for x in (r[0] if r else [])),
                "changed": decisions_key((d,)) != decisions_key((r,)), "chosen_by": step.lower,
                "welfare_usd": step.upper.welfare_usd,
                "upper_iterations": step.upper.iterations,
                "seconds": step.upper_seconds + step.lower_seconds[i],
            })
    return pd.DataFrame(rows)


def clearing_tables(data: CoplanData, up: Upper, sharing: Sharing, tol_mw: float) -> dict[str, pd.DataFrame]:
    """Schedule, trades, payments and convergence in the layouts of ``dispatch`` (with the typical day)."""
    res, B = up.clearing, data.base_mva
    day = np.arange(data.adn.n_snap) // 24
    hour = np.arange(data.adn.n_snap) % 24
    scen = data.scenarios[day]
    names = [d.name for d in data.mgs]
    sched = [r.table.assign(scenario=scen, agent=r.name) for r in res.responses]
    trades = []
    for m, n in data.pairs:
        p = res.agreed_pu[m, n] * B
        p = np.where(np.abs(p) < tol_mw, 0.0, p)
        fee = data.fees_usd_per_mwh[m, n] * np.abs(p)
        trades.append(pd.DataFrame({"scenario": scen, "seller": np.where(p >= 0, names[m], names[n]),
                                    "buyer": np.where(p >= 0, names[n], names[m]), "hour": hour, "p_mw": np.abs(p),
                                    "fee_usd": fee}))
    pays = []
    P = sharing.bargain.payments_usd
    for a in range(len(data.names)):
        for b in range(a + 1, len(data.names)):
            if abs(P[a, b]) > 0:
                payer, payee = (data.names[a], data.names[b]) if P[a, b] >= 0 else (data.names[b], data.names[a])
                pays.append({"payer": payer, "payee": payee, "payment_usd": abs(P[a, b])})
    conv = pd.DataFrame(res.history).assign(stage="clearing", method="atc_admm")
    cols = ["scenario", "agent", "hour", "p_gen_mw", "p_pv_mw", "p_wind_mw", "p_curtailed_mw", "p_charge_mw",
            "p_discharge_mw", "soc_mwh", "p_buy_mw", "p_sell_mw", "p_load_mw"]
    return {
        "schedule": zero_below(pd.concat(sched, ignore_index=True)[cols], tol_mw),
        "trades": pd.concat(trades, ignore_index=True) if trades else pd.DataFrame(
            columns=["scenario", "seller", "buyer", "hour", "p_mw", "fee_usd"]),
        "payments": pd.DataFrame(pays, columns=["payer", "payee", "payment_usd"]),
        "convergence": conv[["stage", "method", "iteration", "primal_residual", "dual_residual", "objective_usd",
                             "seconds"]],
    }


# -------------------------------------------------------------------------- figures
def figures(tables: dict[str, pd.DataFrame], central_usd: float) -> dict[str, Any]:
    return {"capacity": capacity_figure(tables["investment"]), "gains": gains_figure(tables["agents"]),
            "welfare": welfare_figure(tables["iterations"], central_usd)}


def capacity_figure(inv: pd.DataFrame):
    fig, ax = new_figure(6.5, 4.4)
    g = inv.groupby(["investor", "plan"], sort=False)["capacity_mw"].sum().unstack("plan").fillna(0.0)
    x = np.arange(len(g))
    plans = [p for p in ("alone", "coplan", "centralised") if p in g.columns]
    width = 0.8 / len(plans)
    for i, p in enumerate(plans):
        ax.bar(x + (i - (len(plans) - 1) / 2) * width, g[p], width, label={"alone": "planning alone",
               "coplan": "co-planned (alternating)", "centralised": "centralised welfare optimum"}[p])
    ax.set_xticks(x, g.index)
    ax.set_ylabel("capacity built (MW)")
    ax.set_title("Capacity each investor builds")
    legend_below(fig, ax)
    return fig


def gains_figure(agents: pd.DataFrame):
    share = agents["bargaining_power"] / agents["bargaining_power"].sum() * agents["gain_usd"].sum()
    return paired_bars(agents["agent"], agents["gain_usd"], share,
                       ("gain from co-planning", "share by bargaining power"), "annual gain (kUSD/yr)",
                       "Gains against bargaining powers", width=6.5)


def welfare_figure(iterations: pd.DataFrame, central_usd: float):
    fig, ax = new_figure(6.5, 4.4)
    w = iterations.groupby("iteration")["welfare_usd"].first()
    ax.plot(w.index, w.to_numpy() / 1e3, "o-", label="alternating (upper level)")
    ax.axhline(central_usd / 1e3, color="k", ls="--", lw=1.0, label="centralised welfare optimum")
    ax.set_xlabel("outer iteration")
    ax.set_ylabel("annual welfare cost (kUSD/yr)")
    ax.set_title("Welfare per outer iteration")
    ax.set_xticks(w.index)
    legend_below(fig, ax)
    return fig


def report(case: Case, out_dir: Path, summary: dict[str, Any], options: dict[str, Any]) -> list[Line]:
    s = summary
    if "welfare_usd" not in s:
        return [(f"{case.name}: centralised co-planning welfare {s['centralised_welfare_usd']:,.2f} USD/yr", False),
                (f"results: {out_dir / 'coplan'}", False)]
    gains = ", ".join(f"{k} {v:,.2f}" for k, v in s["gains_usd"].items())
    return [
        (f"{case.name}: co-planning welfare {s['welfare_usd']:,.2f} USD/yr ({s['outcome']} after "
         f"{s['outer_iterations']} outer iterations; centralised optimum {s['centralised_welfare_usd']:,.2f}, gap "
         f"{s['welfare_gap']:.1e}); total gain {s['total_gain_usd']:,.2f} USD/yr over planning alone; gains {gains} "
         f"USD/yr; stable: {'yes' if s['stable'] else 'no'} (best unilateral deviation "
         f"{s['max_deviation_gain_usd']:,.2f} USD/yr)", False),
        *([(f"{s['deviation_moves']} move(s) to a profitable unilateral deviation the lower levels had missed "
            "(docs/coplan.md)", False)] if s.get("deviation_moves") else []),
        *[(f"WARNING: the {what.replace('_', ' ')} solve ended '{status}' (short of its 1e-6 relative gap after the "
           "retries): the figures that rest on it are less accurate; see manifest summary.solve_status", True)
          for what, status in s.get("solve_status", {}).items() if status != "optimal"],
        (f"results: {out_dir / 'coplan'}", False),
    ]
