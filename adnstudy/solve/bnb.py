"""Branch-and-bound over conic relaxations, the default mixed-integer strategy.

The model is compiled once: integer variables are continuous variables bounded
by ``cp.Parameter``s (:class:`~adnstudy.solve.integer.IntegerBlock`). A node is a
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
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adnstudy.errors import InfeasibleError, SolveError, SolverFailedError
from adnstudy.solve.conic import NODE, ConicSettings, quiet_solver, solve_conic
from adnstudy.solve.integer import MixedIntegerModel

log = logging.getLogger(__name__)
INT_TOL = 1e-5
HEURISTIC_DEPTH = 3

Bounds = list[np.ndarray]


class IntegerInfeasible(SolveError):
    """The relaxation is feasible but no integer assignment is."""


class RelaxationInfeasible(InfeasibleError):
    """The continuous relaxation (the root) is infeasible: so is the model."""


@dataclass(order=True)
class Node:
    bound: float
    neg_depth: int
    seq: int
    lo: Bounds = field(compare=False)
    hi: Bounds = field(compare=False)


@dataclass
class Solve:
    """One relaxation solve of a node or a rounding pattern, as the worker thread left it."""

    kind: str  # "node" or "heuristic"
    lo: Bounds
    hi: Bounds
    status: str
    value: float = math.nan
    ints: Bounds | None = None  # integer variables' values; None if the solve gave no point
    rounding: Bounds | None = None  # the model's rounding inputs (nodes only)
    duals: list[tuple[np.ndarray, np.ndarray]] | None = None  # reduced costs of the bounds (nodes only)


@dataclass
class BnBResult:
    status: str  # "optimal" (gap proven), "time_limit", "gap_not_proven"
    objective: float  # incumbent, in the problem's objective units
    bound: float
    gap: float
    nodes: int
    heuristic_solves: int
    incumbent: Bounds  # integer values of each block
    seconds: float
    history: list[dict[str, Any]]
    failed_nodes: int
    fixed_by_reduced_cost: int = 0


class BranchAndBound:
    """The search state and its steps; :meth:`run` is the whole search."""

    def __init__(
        self,
        models: list[MixedIntegerModel],
        *,
        gap: float = 1e-3,
        time_limit: float | None = None,
        settings: ConicSettings = NODE,
        progress: Callable[[dict[str, Any]], None] | None = None,
        initial: list[Bounds] | None = None,
    ) -> None:
        if not models:
            raise ValueError("branch-and-bound needs at least one model")
        self.first = models[0]
        self.threads = len(models)
        self.models: queue.Queue = queue.Queue()
        for m in models:
            self.models.put(m)
        self.gap, self.time_limit, self.settings = gap, time_limit, settings
        self.progress, self.initial = progress, initial or []
        self.lo0 = [blk.lo0.copy() for blk in self.first.integers]
        self.hi0 = [blk.hi0.copy() for blk in self.first.integers]
        self.costs = [np.asarray(blk.cost, dtype=float) for blk in self.first.integers]
        self.incumbent_value = math.inf
        self.incumbent: Bounds | None = None
        self.heap: list[Node] = []
        self.running: dict[Future, tuple[str, float, int]] = {}  # future -> (kind, parent bound, depth)
        self.tried: set[bytes] = set()
        self.history: list[dict[str, Any]] = []
        self.nodes, self.heuristic_solves, self.failed, self.fixed_by_cost = 1, 0, 0, 0
        self.pruned_min = math.inf  # smallest bound pruned: with the open nodes, the proven bound
        self._seq = itertools.count()
        self._t0 = time.perf_counter()
        self._pool: ThreadPoolExecutor | None = None

    # ------------------------------------------------------------------ worker side
    def _work(self, kind: str, lo: Bounds, hi: Bounds) -> Solve:
        """Solve one relaxation on a free model copy (runs in a worker thread)."""
        model = self.models.get()
        try:
            for blk, a, b in zip(model.integers, lo, hi, strict=True):
                blk.set_bounds(a, b)
            try:
                status = solve_conic(model.problem, self.settings, "node relaxation", quiet=False)
            except SolveError as exc:
                return Solve(kind, lo, hi, getattr(exc, "status", "solver_error"))
            out = Solve(kind, lo, hi, status, float(model.problem.value),
                        [np.array(blk.var.value, dtype=float) for blk in model.integers])
            if kind == "node":
                out.rounding = [np.array(v, dtype=float) for v in model.rounding_inputs()]
                out.duals = [blk.reduced_costs() for blk in model.integers]
            return out
        finally:
            self.models.put(model)

    # ------------------------------------------------------------------ search side
    def _threshold(self) -> float:
        return self.incumbent_value - self.gap * abs(self.incumbent_value)

    def _lower_bound(self) -> float:
        bounds = [n.bound for n in self.heap] + [b for (k, b, _) in self.running.values() if k == "node"]
        return min(bounds) if bounds else self.incumbent_value

    def _record(self, event: str) -> None:
        lb = min(self._lower_bound(), self.pruned_min, self.incumbent_value)
        row = {"seconds": time.perf_counter() - self._t0, "nodes": self.nodes,
               "heuristic_solves": self.heuristic_solves, "incumbent": self.incumbent_value, "bound": lb,
               "gap": relative_gap(self.incumbent_value, lb), "event": event}
        self.history.append(row)
        if self.progress:
            self.progress(row)

    def _accept(self, value: float, ints: Bounds) -> None:
        if value < self.incumbent_value:
            self.incumbent_value, self.incumbent = value, [np.round(v) for v in ints]

    def _submit(self, kind: str, lo: Bounds, hi: Bounds, parent_bound: float = math.nan, depth: int = 0) -> None:
        assert self._pool is not None
        self.running[self._pool.submit(self._work, kind, lo, hi)] = (kind, parent_bound, depth)

    def _submit_patterns(self, patterns: list[Bounds], limit: int | None = None) -> None:
        submitted = 0
        for fixed in patterns:
            if limit is not None and submitted >= limit:
                return
            fixed = [np.clip(f, a, b) for f, a, b in zip(fixed, self.lo0, self.hi0, strict=True)]
            key = b"".join(np.round(f).astype(np.int64).tobytes() for f in fixed)
            if key in self.tried:
                continue
            self.tried.add(key)
            self.heuristic_solves += 1
            submitted += 1
            self._submit("heuristic", fixed, fixed)

    def _expand(self, s: Solve, value: float, depth: int) -> None:
        """Accept an integral node, prune a dominated one, or fix by reduced cost and branch."""
        assert s.ints is not None
        if _is_integral(s.ints):
            self._accept(value, s.ints)
            return
        threshold = self._threshold()
        if value >= threshold:
            self.pruned_min = min(self.pruned_min, value)
            return
        lo, hi = s.lo, s.hi
        if s.duals is not None and math.isfinite(threshold):
            # leaving a bound costs at least its dual, so a variable whose move would lift the
            # bound past the incumbent keeps its bound in the whole subtree
            lo, hi = [a.copy() for a in lo], [b.copy() for b in hi]
            for bi, (v, (d_lo, d_hi)) in enumerate(zip(s.ints, s.duals, strict=True)):
                free = lo[bi] < hi[bi]
                at_lo = free & (np.abs(v - lo[bi]) <= INT_TOL) & (value + d_lo >= threshold)
                at_hi = free & (np.abs(v - hi[bi]) <= INT_TOL) & (value + d_hi >= threshold)
                hi[bi][at_lo] = lo[bi][at_lo]
                lo[bi][at_hi] = hi[bi][at_hi]
                self.fixed_by_cost += int(at_lo.sum() + at_hi.sum())
        bi, j = _branching_variable(s.ints, self.costs)
        x = s.ints[bi][j]
        down_hi = [h.copy() for h in hi]
        down_hi[bi][j] = math.floor(x)
        up_lo = [a.copy() for a in lo]
        up_lo[bi][j] = math.ceil(x)
        heapq.heappush(self.heap, Node(value, -(depth + 1), next(self._seq), lo, down_hi))
        heapq.heappush(self.heap, Node(value, -(depth + 1), next(self._seq), up_lo, hi))

    def _on_done(self, s: Solve, parent_bound: float, depth: int) -> None:
        if s.kind == "heuristic":
            if s.ints is not None:
                self._accept(s.value, s.ints)
                self._record("heuristic")
            return
        if s.ints is None:
            if s.status not in ("infeasible", "infeasible_inaccurate"):
                self.failed += 1
                log.warning("node relaxation failed with status %s; node dropped", s.status)
            return
        value = max(s.value, parent_bound)  # a child is never better than its parent
        # rounding is cheap insurance while there is no incumbent; later it rarely pays,
        # so only shallow nodes (whose patterns differ most) try one pattern
        if not _is_integral(s.ints) and value < self._threshold():
            if not math.isfinite(self.incumbent_value):
                self._submit_patterns(self.first.round(s.rounding), limit=2)
            elif depth <= HEURISTIC_DEPTH:
                self._submit_patterns(self.first.round(s.rounding), limit=1)
        self._expand(s, value, depth)
        self._record("node")

    def _gap_proven(self) -> bool:
        return math.isfinite(self.incumbent_value) and relative_gap(
            self.incumbent_value, min(self._lower_bound(), self.pruned_min)) <= self.gap

    def _root(self) -> None:
        """The root, and beside it any patterns the caller already has (e.g. from a coarse model)."""
        self._submit("node", self.lo0, self.hi0)
        root_future = next(iter(self.running))
        self._submit_patterns(self.initial)
        root = root_future.result()
        del self.running[root_future]
        if root.ints is None:  # an infeasible or failed root is the model's problem, not the search's
            what = f"the continuous relaxation could not be solved (Clarabel status: {root.status})"
            if root.status in ("infeasible", "infeasible_inaccurate"):
                raise RelaxationInfeasible(what, status=root.status)
            raise SolverFailedError(what, status=root.status)
        self._submit_patterns(self.first.round(root.rounding))
        self._expand(root, root.value, 0)
        self._record("root")

    def run(self) -> BnBResult:
        """Minimise the model over its integer blocks (see the module docstring)."""
        self._t0 = time.perf_counter()
        status = "optimal"
        with quiet_solver():  # statuses are handled; workers' warnings are filtered here, in the owning thread
            self._pool = ThreadPoolExecutor(max_workers=self.threads)
            try:
                self._root()
                while self.heap or self.running:
                    elapsed = time.perf_counter() - self._t0
                    if self.time_limit is not None and elapsed > self.time_limit:
                        status = "time_limit"
                        break
                    while self.heap and len(self.running) < self.threads:  # fill the workers with the best nodes
                        node = heapq.heappop(self.heap)
                        if node.bound >= self._threshold():
                            self.pruned_min = min(self.pruned_min, node.bound)
                            continue
                        self.nodes += 1
                        self._submit("node", node.lo, node.hi, node.bound, -node.neg_depth)
                    if not self.running:
                        continue
                    timeout = None if self.time_limit is None else max(0.0, self.time_limit - elapsed)
                    done, _ = wait(list(self.running), return_when=FIRST_COMPLETED, timeout=timeout)
                    for fut in done:
                        kind, parent_bound, depth = self.running.pop(fut)
                        self._on_done(fut.result(), parent_bound, depth)
                    if self._gap_proven():  # the open and running nodes' bounds prove the target gap
                        break
            finally:
                self._pool.shutdown(wait=True, cancel_futures=True)
        return self._result(status)

    def _result(self, status: str) -> BnBResult:
        # solves that finished while the search stopped: keep any plan they found
        for fut, (kind, _, _) in list(self.running.items()):
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                s = fut.result()
                if s.ints is not None and (kind == "heuristic" or _is_integral(s.ints)):
                    self._accept(s.value, s.ints)  # unexpanded nodes keep their parent's bound
        if self.incumbent is None:
            if status == "time_limit":
                raise SolveError("branch-and-bound found no integer-feasible plan before the time limit")
            raise IntegerInfeasible(
                f"no integer-feasible solution exists: the continuous relaxation is feasible, but all {self.nodes} "
                "branch-and-bound nodes were infeasible or failed"
            )
        lb = min(self._lower_bound(), self.pruned_min, self.incumbent_value)
        if status == "optimal" and self.failed:
            status = "gap_not_proven"
        self._record("end")
        return BnBResult(
            status=status, objective=self.incumbent_value, bound=lb, gap=relative_gap(self.incumbent_value, lb),
            nodes=self.nodes, heuristic_solves=self.heuristic_solves, incumbent=self.incumbent,
            seconds=time.perf_counter() - self._t0, history=self.history, failed_nodes=self.failed,
            fixed_by_reduced_cost=self.fixed_by_cost,
        )


def branch_and_bound(models: list[MixedIntegerModel], **options: Any) -> BnBResult:
    """Minimise over the integer blocks of ``models`` (copies of one model, one per worker thread)."""
    return BranchAndBound(models, **options).run()


def _branching_variable(ints: Bounds, costs: list[np.ndarray]) -> tuple[int, int]:
    """(block, index) of the largest fractionality × unit cost."""
    best, where = -1.0, (0, 0)
    for bi, (v, c) in enumerate(zip(ints, costs, strict=True)):
        frac = np.minimum(v - np.floor(v), np.ceil(v) - v)
        frac[frac <= INT_TOL] = 0.0
        score = frac * np.maximum(c, 1e-12)
        j = int(np.argmax(score)) if score.size else 0
        if score.size and score[j] > best:
            best, where = float(score[j]), (bi, j)
    return where


def _is_integral(values: Bounds) -> bool:
    return all(np.all(np.abs(v - np.round(v)) <= INT_TOL) for v in values)


def relative_gap(upper: float, lower: float) -> float:
    """(upper − lower) / |upper|: the gap of an incumbent to a proven bound (every strategy's record)."""
    if not math.isfinite(upper):
        return math.inf
    return max(0.0, (upper - lower) / max(abs(upper), 1e-12))
