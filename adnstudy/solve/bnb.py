"""Branch-and-bound over conic relaxations, the default mixed-integer strategy.

The model is compiled once: integer variables are continuous variables bounded
by ``cp.Parameter``s (:class:`~adnstudy.problems.plan.IntegerBlock`). A node is a
set of bounds; solving it is one re-solve of the same DPP problem with Clarabel.
Each worker thread owns a copy of the model (Clarabel releases the GIL, so two
nodes solve at once on two cores). Search:

* best-first on the relaxation bound (deeper node first among equals);
* branching on the integer variable with the largest fractionality × its cost
  per unit (a site's annualised fixed cost, a module's annualised capex), the
  variables whose rounding moves the objective most;
* a rounding heuristic at every node: the model proposes integer patterns from
  the node's solution (most promising first); each new one is solved with the
  integers fixed and may become the incumbent;
* reduced-cost fixing: a variable at a bound whose dual says leaving it would
  lift the node's bound past the incumbent keeps that bound in the subtree;
* prune when bound ≥ incumbent − gap·|incumbent|; stop when the open nodes'
  bounds prove the gap (or none is left), or at the time limit with the gap reached.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import queue
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol

import cvxpy as cp
import numpy as np

from adnstudy.errors import SolveError

log = logging.getLogger(__name__)
INT_TOL = 1e-5
HEURISTIC_DEPTH = 3
CLARABEL_OPTIONS = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-5}
#: Tighter settings for the final operating point: losses are a small part of the objective,
#: so a loose duality gap leaves slack in the cones (and voltages off the AC solution).
CLARABEL_FINAL_OPTIONS = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-9, "tol_feas": 1e-9}
OK = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)


class IntegerInfeasible(SolveError):
    """The relaxation is feasible but no integer assignment is."""


class RelaxedModel(Protocol):
    problem: cp.Problem
    integers: list  # IntegerBlock


@dataclass(order=True)
class Node:
    bound: float
    neg_depth: int
    seq: int
    lo: list[np.ndarray] = field(compare=False)
    hi: list[np.ndarray] = field(compare=False)


@dataclass
class BnBResult:
    status: str  # "optimal" (gap proven), "time_limit", "gap_not_proven"
    objective: float  # incumbent, in the problem's objective units
    bound: float
    gap: float
    nodes: int
    heuristic_solves: int
    incumbent: list[np.ndarray]  # integer values of each block
    seconds: float
    history: list[dict[str, Any]]
    failed_nodes: int
    fixed_by_reduced_cost: int = 0


def _solve(model: RelaxedModel, lo: list[np.ndarray], hi: list[np.ndarray], options: dict) -> tuple[str, float, list[np.ndarray] | None]:
    for blk, a, b in zip(model.integers, lo, hi, strict=True):
        blk.lo.value = a
        blk.hi.value = b
    try:
        model.problem.solve(solver="CLARABEL", **options)
    except cp.SolverError:
        return "solver_error", math.nan, None
    status = model.problem.status
    if status not in OK:
        return status, math.nan, None
    return status, float(model.problem.value), [np.asarray(blk.var.value, dtype=float).copy() for blk in model.integers]


def _reduced_costs(model: RelaxedModel) -> list[tuple[np.ndarray, np.ndarray]]:
    """Duals of each block's lower and upper bound constraints (0 where the solver gives none)."""
    out = []
    for blk in model.integers:
        d_lo = getattr(blk, "lo_con", None)
        d_hi = getattr(blk, "hi_con", None)
        lo = np.asarray(d_lo.dual_value, float) if d_lo is not None and d_lo.dual_value is not None else np.zeros(blk.var.size)
        hi = np.asarray(d_hi.dual_value, float) if d_hi is not None and d_hi.dual_value is not None else np.zeros(blk.var.size)
        out.append((np.maximum(lo, 0.0), np.maximum(hi, 0.0)))
    return out


def _is_integral(values: list[np.ndarray]) -> bool:
    return all(np.all(np.abs(v - np.round(v)) <= INT_TOL) for v in values)


def branch_and_bound(
    make_model: Callable[[], RelaxedModel],
    *,
    rounding: Callable[[RelaxedModel, list[np.ndarray]], list[list[np.ndarray]]],
    gap: float = 1e-3,
    time_limit: float | None = None,
    threads: int = 2,
    options: dict | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    initial: list[list[np.ndarray]] | None = None,
) -> BnBResult:
    """Minimise a relaxed model over its integer blocks (see the module docstring)."""
    t0 = time.perf_counter()
    # statuses are handled below ("optimal_inaccurate" counts as solved); CVXPY's warning adds nothing
    warnings.filterwarnings("ignore", message="Solution may be inaccurate", category=UserWarning)
    opts = {**CLARABEL_OPTIONS, **(options or {})}
    threads = max(1, threads)
    models: queue.Queue = queue.Queue()
    first = make_model()
    models.put(first)
    for _ in range(threads - 1):
        models.put(make_model())
    lo0 = [blk.lo0.copy() for blk in first.integers]
    hi0 = [blk.hi0.copy() for blk in first.integers]
    costs = [np.asarray(blk.cost, dtype=float) for blk in first.integers]
    lock = threading.Lock()

    def work(kind: str, lo, hi):
        model = models.get()
        try:
            status, value, ints = _solve(model, lo, hi, opts)
            extra = None
            if kind == "node" and ints is not None:
                extra = ([np.asarray(v, dtype=float).copy() for v in _values_for_rounding(model)], _reduced_costs(model))
            return kind, lo, hi, status, value, ints, extra
        finally:
            models.put(model)

    incumbent_value = math.inf
    incumbent: list[np.ndarray] | None = None
    seq = itertools.count()
    heap: list[Node] = []
    tried: set[bytes] = set()
    history: list[dict[str, Any]] = []
    nodes, heur, failed = 1, 0, 0
    pruned_min = math.inf  # smallest bound of a node pruned by bound: with the open nodes, the proven bound
    fixed_by_cost = 0
    running: dict[Future, tuple[str, float, int]] = {}
    pool = ThreadPoolExecutor(max_workers=threads)

    def record(event: str) -> None:
        lb = min(_lower_bound(heap, running, incumbent_value), pruned_min, incumbent_value)
        g = _gap(incumbent_value, lb)
        row = {"seconds": time.perf_counter() - t0, "nodes": nodes, "heuristic_solves": heur,
               "incumbent": incumbent_value, "bound": lb, "gap": g, "event": event}
        history.append(row)
        if progress:
            progress(row)

    def accept(value: float, ints: list[np.ndarray]) -> None:
        nonlocal incumbent_value, incumbent
        if value < incumbent_value:
            incumbent_value, incumbent = value, [np.round(v) for v in ints]

    def submit_patterns(patterns, limit: int | None = None) -> None:
        nonlocal heur
        submitted = 0
        for fixed in patterns:
            if limit is not None and submitted >= limit:
                return
            fixed = [np.clip(f, a, b) for f, a, b in zip(fixed, lo0, hi0, strict=True)]
            key = b"".join(np.round(f).astype(np.int64).tobytes() for f in fixed)
            if key in tried:
                continue
            tried.add(key)
            heur += 1
            submitted += 1
            running[pool.submit(work, "heuristic", fixed, fixed)] = ("heuristic", math.nan, 0)

    def submit_heuristic(ints: list[np.ndarray], extra, limit: int | None = None) -> None:
        submit_patterns(rounding(first, extra[0]), limit)

    def expand(value: float, lo, hi, ints: list[np.ndarray], depth: int, duals=None) -> None:
        nonlocal pruned_min, fixed_by_cost
        if _is_integral(ints):
            accept(value, ints)
            return
        threshold = incumbent_value - gap * abs(incumbent_value)
        if value >= threshold:
            pruned_min = min(pruned_min, value)
            return
        if duals is not None and math.isfinite(threshold):
            # reduced-cost fixing: leaving a bound costs at least its dual, so a variable whose move
            # would lift the bound past the incumbent keeps its bound in the whole subtree
            lo, hi = [a.copy() for a in lo], [b.copy() for b in hi]
            for bi, (v, (d_lo, d_hi)) in enumerate(zip(ints, duals, strict=True)):
                free = lo[bi] < hi[bi]
                at_lo = free & (np.abs(v - lo[bi]) <= INT_TOL) & (value + d_lo >= threshold)
                at_hi = free & (np.abs(v - hi[bi]) <= INT_TOL) & (value + d_hi >= threshold)
                hi[bi][at_lo] = lo[bi][at_lo]
                lo[bi][at_hi] = hi[bi][at_hi]
                fixed_by_cost += int(at_lo.sum() + at_hi.sum())
        # branch on the largest fractionality × unit cost
        best, where = -1.0, None
        for bi, (v, c) in enumerate(zip(ints, costs, strict=True)):
            frac = np.minimum(v - np.floor(v), np.ceil(v) - v)
            frac[frac <= INT_TOL] = 0.0
            score = frac * np.maximum(c, 1e-12)
            j = int(np.argmax(score))
            if score[j] > best:
                best, where = float(score[j]), (bi, j)
        assert where is not None
        bi, j = where
        x = ints[bi][j]
        down_hi = [h.copy() for h in hi]
        down_hi[bi][j] = math.floor(x)
        up_lo = [a.copy() for a in lo]
        up_lo[bi][j] = math.ceil(x)
        heapq.heappush(heap, Node(value, -(depth + 1), next(seq), lo, down_hi))
        heapq.heappush(heap, Node(value, -(depth + 1), next(seq), up_lo, hi))

    try:
        # the root, and beside it any patterns the caller already has (e.g. from a coarse model);
        # an infeasible or failed root is the model's problem, not the search's
        root_future = pool.submit(work, "node", lo0, hi0)
        submit_patterns(initial or [])
        _, _, _, status, root_value, root_ints, root_extra = root_future.result()
        if root_ints is None:
            raise SolveError(f"the continuous relaxation could not be solved (Clarabel status: {status})")
        submit_heuristic(root_ints, root_extra)
        expand(root_value, lo0, hi0, root_ints, 0, root_extra[1])
        record("root")
        status_out = "optimal"
        while heap or running:
            if time_limit is not None and time.perf_counter() - t0 > time_limit:
                status_out = "time_limit"
                break
            # fill the workers with the best open nodes
            while heap and len(running) < threads:
                node = heapq.heappop(heap)
                if node.bound >= incumbent_value - gap * abs(incumbent_value):
                    pruned_min = min(pruned_min, node.bound)
                    continue
                nodes += 1
                running[pool.submit(work, "node", node.lo, node.hi)] = ("node", node.bound, -node.neg_depth)
            if not running:
                continue
            done, _ = wait(list(running), return_when=FIRST_COMPLETED,
                           timeout=None if time_limit is None else max(0.0, time_limit - (time.perf_counter() - t0)))
            for fut in done:
                kind, parent_bound, depth = running.pop(fut)
                _, lo, hi, status, value, ints, extra = fut.result()
                with lock:
                    if kind == "heuristic":
                        if ints is not None:
                            accept(value, ints)
                            record("heuristic")
                        continue
                    if ints is None:
                        if status not in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
                            failed += 1
                            log.warning("node relaxation failed with status %s; node dropped", status)
                        continue
                    value = max(value, parent_bound)  # a child is never better than its parent
                    # rounding is cheap insurance while there is no incumbent; later it rarely pays,
                    # so only shallow nodes (whose patterns differ most) try one pattern
                    if not _is_integral(ints) and value < incumbent_value - gap * abs(incumbent_value):
                        if not math.isfinite(incumbent_value):
                            submit_heuristic(ints, extra, limit=2)
                        elif depth <= HEURISTIC_DEPTH:
                            submit_heuristic(ints, extra, limit=1)
                    expand(value, lo, hi, ints, depth, extra[1])
                    record("node")
            # the open and running nodes' bounds already prove the target gap: stop
            if math.isfinite(incumbent_value) and _gap(
                incumbent_value, min(_lower_bound(heap, running, incumbent_value), pruned_min)
            ) <= gap:
                break
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    # solves that finished while the search stopped: keep any plan they found
    for fut, (kind, _, _) in list(running.items()):
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            _, _, _, _, value, ints, _ = fut.result()
            if ints is not None and (kind == "heuristic" or _is_integral(ints)):
                accept(value, ints)  # unexpanded nodes keep their parent's bound in the lower bound
    if incumbent is None:
        if status_out == "time_limit":
            raise SolveError("branch-and-bound found no integer-feasible plan before the time limit")
        raise IntegerInfeasible(
            f"no integer-feasible solution exists: the continuous relaxation is feasible, but all {nodes} "
            "branch-and-bound nodes were infeasible or failed"
        )
    lb = min(_lower_bound(heap, running, incumbent_value), pruned_min, incumbent_value)
    g = _gap(incumbent_value, lb)
    if status_out == "optimal" and failed:
        status_out = "gap_not_proven"
    record("end")
    return BnBResult(
        status=status_out, objective=incumbent_value, bound=lb, gap=g, nodes=nodes, heuristic_solves=heur,
        incumbent=incumbent, seconds=time.perf_counter() - t0, history=history, failed_nodes=failed,
        fixed_by_reduced_cost=fixed_by_cost,
    )


def _values_for_rounding(model: RelaxedModel) -> list[np.ndarray]:
    """What the rounding heuristic reads from a node's solution (the model says, via ``rounding_inputs``)."""
    inputs = getattr(model, "rounding_inputs", None)
    return inputs() if inputs is not None else [np.asarray(b.var.value) for b in model.integers]


def _lower_bound(heap: list[Node], running: dict, incumbent: float) -> float:
    bounds = [n.bound for n in heap] + [b for (k, b, _) in running.values() if k == "node"]
    return min(bounds) if bounds else incumbent


def _gap(upper: float, lower: float) -> float:
    if not math.isfinite(upper):
        return math.inf
    return max(0.0, (upper - lower) / max(abs(upper), 1e-12))
