"""Outer approximation by blocks: a HiGHS MILP master over Clarabel cone subproblems, the default MISOCP strategy.

A model whose cost splits into a part of its investment decisions and a sum of
convex operation costs F_d(x) of the linking decisions x (the plan: the
candidates' capacities; one block per typical day, since days share nothing
but the assets) is minimised as

    min  c(b, x) + Σ_d θ_d   over the investment constraints (0-1 and integer b, continuous x),
    s.t. θ_d ≥ F_d(x̂) + g_d(x̂)·(x − x̂)      for every point x̂ evaluated so far,

a MILP (``master``) that HiGHS solves exactly. F_d is convex, so every cut
is a valid under-estimator and the master's proven bound is a lower bound of
the model; evaluating the blocks at the master's x gives a feasible plan, an
upper bound. The blocks are solved apart (Clarabel, two at once on two
cores), each with x as a ``cp.Parameter`` behind a copy constraint x' = x whose
dual is the subgradient g_d.

What makes it converge in a handful of iterations rather than dozens:

* one θ per independent part (multi-cut): per day, and per group of hours
  where a day's hours share nothing but x (no storage), so each part's
  curvature is kept;
* in-out stabilisation (Ben-Ameur & Neto, 2007): beside the master's point,
  the blocks are also cut at a point between it and a *core* point (first a
  cheap relaxation's x — the plan's coarse one-day model —, then moved halfway
  toward each master point), where the cuts inform about the whole region,
  not only its corners;
* the first master points (:data:`EXPLORE`), vertices of a model that has
  seen one or two points, are not evaluated themselves, only their in-out
  points.

Where the start gives a lower bound L₀ (the whole model's relaxation, when no
coarse model is at hand) it enters the master as c + Σθ ≥ L₀.

Stops when (upper − lower)/|upper| reaches the gap target. Anything the
method cannot handle — a block infeasible at some x (the operation needs an
investment: feasibility cuts are not implemented), a failed solve, a master
HiGHS cannot solve — raises :class:`DecompositionFailed`; the caller falls
back to branch-and-bound, which reports such models as they are.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import cvxpy as cp
import numpy as np

from adnstudy.errors import SolveError
from adnstudy.solve.bnb import relative_gap
from adnstudy.solve.compiled import CompiledProblem
from adnstudy.solve.conic import NODE, ConicSettings, quiet_solver

log = logging.getLogger(__name__)
#: Weight of the core point in the stabilised point λ·core + (1 − λ)·x_master (0.3, 0.5 and 0.7 took 6/8/6/8,
#: 6/8/6/9 and 7/10/7/10 iterations on the 33-bus plan, K = 8 and 12, without and with reliability).
IN_OUT = 0.3
#: The master MILP's own relative gap: its proven bound (not its incumbent) is the lower bound used.
MASTER_GAP = 1e-5
#: The first master points are vertices of a model that has seen one or two points: far from any good plan
#: (gaps 0.6-1.3), so only their in-out points are evaluated. Skipping 0/1/2/3 took 80/72/64/56, 112/104/96/104,
#: 120/108/96/84 and 168/156/144/156 day solves on the 33-bus plan (K = 8 without, with reliability; K = 12).
EXPLORE = 2
#: HiGHS's primal heuristics off: the master is small (tens of 0-1 variables, hundreds of cut rows) and solves in
#: a few nodes, but its sub-MIP heuristics (RINS, RENS) took 0.29 of its 0.39 s on the 33-bus plan (K = 8, with
#: reliability, last iteration); without them and the other heuristics it took 0.11 s, the same optimum and nodes.
MASTER_OPTIONS: dict[str, Any] = {
    "mip_heuristic_effort": 0.0, "mip_heuristic_run_rins": False, "mip_heuristic_run_rens": False,
    "mip_heuristic_run_root_reduced_cost": False, "mip_heuristic_run_zi_round": False,
    "mip_heuristic_run_shifting": False,
}


class DecompositionFailed(SolveError):
    """The decomposition cannot solve this model (the caller falls back to branch-and-bound)."""

    def __init__(self, message: str, *, status: str | None = None) -> None:
        self.status = status
        super().__init__(message)


@dataclass
class Block:
    """One convex block of the operation: its cost given the linking decisions x, and a subgradient."""

    x: cp.Parameter  # the linking decisions the block sees
    link: cp.Constraint  # x' == x, one column per part (n × parts): its duals are the (negated) subgradients
    problem: cp.Problem  # minimises the block's cost (in the model's objective units), the sum of its parts
    parts: cp.Expression  # the cost of each independent part (parts,): each gets its own cut
    what: str
    _compiled: CompiledProblem | None = field(default=None, repr=False)

    @property
    def n_parts(self) -> int:
        return int(self.parts.size)

    def evaluate(self, x: np.ndarray, settings: ConicSettings) -> tuple[np.ndarray, np.ndarray]:
        """Each part's cost at x and its subgradient (parts, and parts × n): a re-solve on the block's cached
        conic matrices (:class:`~adnstudy.solve.compiled.CompiledProblem`, compiled on the first call)."""
        self.x.value = x
        if self._compiled is None or self._compiled.settings is not settings:
            self._compiled = CompiledProblem(self.problem, settings, self.what)
        try:
            self._compiled.solve()
        except SolveError as exc:
            raise DecompositionFailed(f"{self.what} at x = {np.round(x, 4)}: {exc}",
                                      status=getattr(exc, "status", None)) from None
        dual = -np.asarray(self.link.dual_value, dtype=float).reshape(len(x), self.n_parts)
        return np.asarray(self.parts.value, dtype=float).ravel(), dual.T


@dataclass
class Decomposition:
    """The master's parts (native integer variables) and the operation blocks, as a model offers them."""

    x: cp.Variable  # linking decisions in the master (continuous)
    x_lo: np.ndarray  # bounds of x (the blocks are evaluated within them)
    x_hi: np.ndarray
    cost: cp.Expression  # the master's own cost (objective units)
    constraints: list[cp.Constraint]
    integers: list[cp.Variable]  # in the order of the model's integer blocks
    blocks: list[Block]


@dataclass
class DecompositionResult:
    status: str  # "optimal" (gap proven) or "time_limit"
    objective: float
    bound: float
    gap: float
    iterations: int
    block_solves: int
    incumbent: list[np.ndarray]
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    split: dict[str, float] = field(default_factory=dict)  # seconds by phase: start, blocks, master


def outer_approximation(
    decomposition: Decomposition, start: Callable[[], tuple[float, np.ndarray]], *, gap: float = 1e-3,
    time_limit: float | None = None, threads: int = 2, settings: ConicSettings = NODE, max_iter: int = 100,
    progress: Callable[[dict[str, Any]], None] | None = None,
    side: Future | None = None,
) -> DecompositionResult:
    """Minimise the decomposed model (module docstring). ``start()`` gives a lower bound of the model (−inf if
    none) and the first core point: the whole model's relaxation, or a coarse model's. ``side``: a search
    running beside the loop (the root probe: a future of an object with ``bound``, ``value`` and ``integers``);
    after the exploration (:data:`EXPLORE` iterations) the loop waits for it: its bound floors the master, its
    plan joins the incumbents, and if those close the gap the loop stops there. One fixed meeting point keeps
    the plan independent of which thread finishes first."""
    d = decomposition
    _silence_highs_banner()
    t0 = time.perf_counter()
    split = {"start": 0.0, "blocks": 0.0, "master": 0.0}
    theta = cp.Variable(sum(blk.n_parts for blk in d.blocks), name="theta")
    cuts: list[cp.Constraint] = []
    history: list[dict[str, Any]] = []
    solves = 0

    def cut(x: np.ndarray, pools: tuple[ThreadPoolExecutor, ThreadPoolExecutor]) -> float:
        """Evaluate every block at x, add their cuts; the blocks' total cost at x."""
        nonlocal solves
        t = time.perf_counter()
        x = np.clip(x, d.x_lo, d.x_hi)
        # while the side search runs it has a core of its own: the blocks take the others
        pool = pools[1] if side is not None and not side.done() else pools[0]
        values = list(pool.map(lambda blk: blk.evaluate(x, settings), d.blocks))
        solves += len(d.blocks)
        F = np.concatenate([v for v, _ in values])
        G = np.vstack([g for _, g in values])
        cuts.append(theta >= F + G @ (d.x - x))
        split["blocks"] += time.perf_counter() - t
        return float(F.sum())

    with quiet_solver(), ThreadPoolExecutor(max_workers=max(1, threads)) as full, \
            ThreadPoolExecutor(max_workers=max(1, threads - 1)) as fewer:
        pool = (full, fewer)
        t = time.perf_counter()
        lower0, core = start()
        split["start"] = time.perf_counter() - t
        cut(core, pool)
        objective = d.cost + cp.sum(theta)
        upper, lower, best = math.inf, lower0, None
        taken = False  # the side search's result, once it came

        def take_side() -> bool:
            """Wait for the side search and fold it in; whether that closes the gap. Called at one fixed point of
            the loop (after the exploration), so the plan found never depends on which thread finished first."""
            nonlocal taken, lower0, lower, upper, best
            if side is None or taken:
                return False
            taken = True
            found = side.result()
            if math.isfinite(found.bound):
                lower0 = max(lower0, found.bound)
                lower = max(lower, found.bound)
            if found.integers is not None and found.value < upper:
                upper, best = found.value, found.integers
            return relative_gap(upper, lower) <= gap

        def closed_row(k: int) -> dict[str, Any]:
            return {"iteration": k, "seconds": time.perf_counter() - t0, "incumbent": upper, "bound": lower,
                    "gap": relative_gap(upper, lower), "block_solves": solves, "closed_by": "root"}
        seen: set[bytes] = set()  # master points evaluated
        status = "optimal"
        for k in range(1, max_iter + 1):
            if k == EXPLORE + 1 and take_side():
                history.append(closed_row(k - 1))
                break
            t = time.perf_counter()
            floor = [objective >= lower0] if math.isfinite(lower0) else []
            master = cp.Problem(cp.Minimize(objective), [*d.constraints, *cuts, *floor])
            remaining = None if time_limit is None else max(1.0, time_limit - (time.perf_counter() - t0))
            # an order finer than the target: else the master may return a point it has seen, its own gap short
            # (and feasible to 1e-9: each θ row may be violated by the tolerance, and they add up)
            opts: dict[str, Any] = {"mip_rel_gap": min(MASTER_GAP, gap / 10), "mip_abs_gap": 0.0,
                                    "mip_feasibility_tolerance": 1e-9, "primal_feasibility_tolerance": 1e-9,
                                    **MASTER_OPTIONS}
            if remaining is not None:
                opts["time_limit"] = remaining
            try:
                master.solve(solver="HIGHS", **opts)
            except cp.SolverError as exc:
                raise DecompositionFailed(f"the master MILP failed in HiGHS ({exc})", status="solver_error") from None
            split["master"] += time.perf_counter() - t
            if master.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
                raise DecompositionFailed(f"the master MILP ended '{master.status}' in HiGHS", status=master.status)
            lower = max(lower, _proven_bound(master))
            x = np.array(d.x.value, dtype=float)
            ints = [np.round(np.array(v.value, dtype=float)) for v in d.integers]
            own = float(d.cost.value)
            key = b"".join(v.astype(np.int64).tobytes() for v in ints) + np.round(x, 9).tobytes()
            stalled = key in seen  # its cuts are already exact there: the bound cannot rise any more
            if k > EXPLORE and not stalled:
                seen.add(key)
                value = own + cut(x, pool)
                if value < upper:
                    upper, best = value, ints
            row = {"iteration": k, "seconds": time.perf_counter() - t0, "incumbent": upper, "bound": lower,
                   "gap": relative_gap(upper, lower), "block_solves": solves}
            history.append(row)
            if progress:
                progress(row)
            if relative_gap(upper, lower) <= gap:
                break
            if stalled:  # the blocks' own accuracy bounds what the cuts can prove
                status = "gap_not_proven"
                break
            if time_limit is not None and time.perf_counter() - t0 > time_limit:
                status = "time_limit"
                if best is None:  # still exploring: the master's point is the plan to keep
                    upper, best = own + cut(x, pool), ints
                break
            cut(IN_OUT * core + (1 - IN_OUT) * x, pool)  # in-out: a point toward the core
            core = 0.5 * (core + x)
        else:
            status = "gap_not_proven"
        take_side()  # a loop that ended within the exploration still keeps what the side search found
        if best is None:  # max_iter within the exploration
            upper, best = own + cut(x, pool), ints
    return DecompositionResult(status=status, objective=upper, bound=min(lower, upper), gap=relative_gap(upper, lower),
                               iterations=len(history), block_solves=solves, incumbent=best,
                               seconds=time.perf_counter() - t0, history=history, split=split)


def _silence_highs_banner() -> None:
    """HiGHS prints its banner to the process's stdout (file descriptor 1, below Python) when its first solver
    object is made: make that one with descriptor 1 sent to /dev/null, so a command's output stays its own."""
    global _BANNER_SHOWN
    if _BANNER_SHOWN:
        return
    import highspy

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    _BANNER_SHOWN = True


_BANNER_SHOWN = False


def _proven_bound(master: cp.Problem) -> float:
    """HiGHS's proven bound of the master MILP, in the problem's objective units (its value without one)."""
    info = master.solver_stats.extra_stats
    bound = getattr(info, "mip_dual_bound", None)
    value = getattr(info, "objective_function_value", None)
    if bound is None or value is None or not math.isfinite(bound):
        return float(master.value)
    return float(bound) + (float(master.value) - float(value))  # CVXPY's constant offset
