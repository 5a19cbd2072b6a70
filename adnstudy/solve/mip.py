"""Solve a mixed-integer conic model: the default branch-and-bound or a named CVXPY solver, then its final point.

:func:`solve_mip` is the strategy behind ``plan`` (and any model implementing
:class:`~adnstudy.solve.integer.MixedIntegerModel`):

1. ``default``: branch-and-bound on Clarabel relaxations (:mod:`.bnb`), one
   model copy per thread, seeded with rounding patterns from a coarse model when
   the caller has one; any other name: that CVXPY solver in a child process
   (:mod:`.native`).
2. The chosen integer values are fixed in the relaxed model and its continuous
   part solved once more at tight tolerances; the model may then settle its
   integers by a rule of its own (the plan: island success as the evaluator
   rules it), each change re-solved.
3. An infeasible model is diagnosed by dropping its named constraint families
   one relaxation at a time (:func:`diagnose_infeasible`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from cvxpy.settings import SOLUTION_PRESENT

from adnstudy.config.schema import own_strategy
from adnstudy.errors import InfeasibleError, SolveError, SolverFailedError
from adnstudy.solve.bnb import (
    IntegerInfeasible,
    RelaxationInfeasible,
    branch_and_bound,
    relative_gap,
)
from adnstudy.solve.conic import (
    FINAL,
    INFEASIBLE,
    NODE,
    ConicSettings,
    clarabel_accuracy,
    quiet_solver,
    solve_conic,
)
from adnstudy.solve.decompose import DecompositionFailed, outer_approximation
from adnstudy.solve.integer import MixedIntegerModel
from adnstudy.solve.native import native_record, solve_native
from adnstudy.threads import capped

if TYPE_CHECKING:
    from adnstudy.config.load import Case

log = logging.getLogger(__name__)
#: How often the final point is re-solved while the model's rule changes its integers.
SETTLE_ROUNDS = 3


@dataclass(frozen=True)
class MipSettings:
    """The case's ``solver`` section as the strategies read it."""

    name: str = "default"
    gap: float = 1e-3
    time_limit_s: float | None = None
    threads: int = 2
    options: dict[str, Any] = field(default_factory=dict)  # passed to the solver as given
    verbose: bool = False

    @classmethod
    def from_case(cls, case: Case, *, name: str | None = None, time_limit_s: float | None = None,
                  verbose: bool = False) -> MipSettings:
        """The case's solver section, with a stage's --solver and --time-limit over it; its threads at most the
        process's thread budget (``adnstudy/threads.py``)."""
        s = case.config.solver
        return cls(name=name or s.name, gap=s.mip_gap,
                   time_limit_s=time_limit_s if time_limit_s is not None else s.time_limit_s,
                   threads=capped(s.threads), options=dict(s.options), verbose=verbose)

    @property
    def default(self) -> bool:
        """One of the project's own strategies (Clarabel underneath)."""
        return own_strategy(self.name)

    @property
    def decompose(self) -> bool:
        """Outer approximation first (``default``); ``branch_and_bound`` skips it."""
        return self.name.lower() == "default"

    def conic(self, profile: ConicSettings) -> ConicSettings:
        """A Clarabel profile with the user's options on top (default strategy only)."""
        return profile.with_user(self.options) if self.default else profile


@dataclass
class MipResult:
    model: MixedIntegerModel  # relaxed model holding the final solution
    record: dict[str, Any]  # the manifest's solver record
    timings: dict[str, float]


def diagnose_infeasible(model: MixedIntegerModel, settings: ConicSettings = NODE) -> str:
    """The hint of the first relaxation (dropped families) that makes the continuous model feasible."""
    for relaxation in model.relaxations:
        present = [f for f in relaxation.families if f in model.families]
        if not present:  # dropping nothing leaves the same infeasible problem
            continue
        try:
            solve_conic(model.families.problem(model.objective, drop=present), settings, "diagnosis")
        except SolveError:
            continue
        return relaxation.hint
    return "no single constraint family explains it; check the loads, ratings and voltage limits together"


def coarse_patterns(coarse: MixedIntegerModel, settings: ConicSettings) -> list[list[np.ndarray]]:
    """Integer patterns from the relaxation of a coarse model; none if it does not solve."""
    try:
        solve_conic(coarse.problem, settings, "coarse relaxation")
    except SolveError:
        return []
    return coarse.round(coarse.rounding_inputs())


def solve_mip(
    build: Callable[[bool], MixedIntegerModel],
    settings: MipSettings,
    *,
    coarse: Callable[[], MixedIntegerModel] | None = None,
) -> MipResult:
    """Solve ``build(native)``'s model; return the relaxed model at the plan's final point.

    ``build(False)`` gives the relaxed model (integer blocks as parameter
    bounds), ``build(True)`` the same model with CVXPY integer variables.
    """
    timings: dict[str, float] = {}
    t = time.perf_counter()
    if settings.default:
        models = [build(False) for _ in range(max(1, settings.threads))]
        timings["build"] = time.perf_counter() - t
        t = time.perf_counter()
        node = settings.conic(NODE)
        first = models[0]
        decomposed = _decomposed(models, settings, node, coarse) if settings.decompose else None
        if decomposed is not None:
            integers, record = decomposed
            timings["solve"] = time.perf_counter() - t
            return _finish(first, integers, record, settings, timings)
        initial = coarse_patterns(coarse(), node) if coarse is not None else None
        try:
            res = branch_and_bound(
                models, gap=settings.gap, time_limit=settings.time_limit_s, settings=node, initial=initial,
                progress=(lambda row: log.info("B&B %s", row)) if settings.verbose else None,
            )
        except IntegerInfeasible as exc:
            raise SolveError(first.no_integer_solution(str(exc))) from None
        except RelaxationInfeasible as exc:
            raise InfeasibleError(f"{first.label} is infeasible (Clarabel: {exc.status}): "
                                  f"{diagnose_infeasible(first, node)}", status=exc.status) from None
        timings["solve"] = time.perf_counter() - t
        integers = res.incumbent
        record: dict[str, Any] = {
            "name": settings.name.lower(), "strategy": "branch-and-bound on Clarabel SOCP relaxations",
            "status": res.status, "objective_usd": res.objective * first.usd_per_unit,
            "bound_usd": res.bound * first.usd_per_unit, "gap": res.gap, "gap_target": settings.gap,
            "nodes": res.nodes, "heuristic_solves": res.heuristic_solves, "failed_nodes": res.failed_nodes,
            "threads": settings.threads, "time_limit_s": settings.time_limit_s,
        }
        final = first
    else:
        out = solve_native(lambda: build(True), settings.name, gap=settings.gap, time_limit=settings.time_limit_s,
                           threads=settings.threads, options=settings.options, verbose=settings.verbose)
        timings["solve"] = time.perf_counter() - t
        t = time.perf_counter()
        final = build(False)
        timings["build"] = time.perf_counter() - t
        name = settings.name.upper()
        if out["status"] in INFEASIBLE:
            raise InfeasibleError(f"{final.label} is infeasible ({name}: {out['status']}): "
                                  f"{diagnose_infeasible(final)}", status=out["status"])
        if out["status"] not in SOLUTION_PRESENT or any(v is None for v in out["integers"]):
            raise SolverFailedError(f"{name} returned no solution (status: {out['status']})", status=out["status"])
        integers = out["integers"]
        record = {**native_record(out, name, settings.gap, final.usd_per_unit), "threads": settings.threads,
                  "time_limit_s": settings.time_limit_s}
    return _finish(final, integers, record, settings, timings)


@dataclass
class RootProbe:
    """What :func:`root_probe` found: the relaxation's bound and the best rounded plan."""

    bound: float  # the relaxation's value: a lower bound of the model (−inf if it failed)
    value: float  # the best rounded plan's objective (inf if none solved)
    integers: list[np.ndarray] | None  # its integer values
    solves: int


def root_probe(model: MixedIntegerModel, node: ConicSettings, gap: float, patterns: int = 1) -> RootProbe:
    """Branch-and-bound's root without the tree, on one thread: the whole model's continuous relaxation (a lower
    bound), then the model with the integers of its first roundings (:meth:`round`) fixed, one after the other,
    until one is within ``gap`` of the bound. None of its failures is fatal: the probe then reports none."""
    try:
        solve_conic(model.problem, node, "the continuous relaxation")
    except SolveError:
        return RootProbe(-math.inf, math.inf, None, 1)
    bound = float(model.problem.value)
    tried: list[list[np.ndarray]] = []
    best, best_ints = math.inf, None
    for pattern in model.round(model.rounding_inputs()):
        clipped = [np.clip(np.round(v), blk.lo0, blk.hi0) for v, blk in zip(pattern, model.integers, strict=True)]
        if any(all(np.array_equal(a, b) for a, b in zip(clipped, t, strict=True)) for t in tried):
            continue
        tried.append(clipped)
        model.fix_integers(clipped)
        try:
            solve_conic(model.problem, node, "a rounding of the relaxation")
            if float(model.problem.value) < best:
                best, best_ints = float(model.problem.value), clipped
        except SolveError:
            pass
        if relative_gap(best, bound) <= gap or len(tried) == patterns:
            break
    for blk in model.integers:
        blk.set_bounds(blk.lo0, blk.hi0)
    return RootProbe(bound, best, best_ints, 1 + len(tried))


def _decomposed(models: list[MixedIntegerModel], settings: MipSettings, node: ConicSettings,
                coarse: Callable[[], MixedIntegerModel] | None) -> tuple[list[np.ndarray], dict[str, Any]] | None:
    """The default strategy, where the model offers a decomposition (:mod:`.decompose`): outer approximation
    from the coarse model's relaxation, with the root probe (:func:`root_probe`) beside it on a thread of its
    own. The probe's bound enters the loop's master and its rounded plan the incumbents as soon as they come;
    where that plan is within the gap of the bound (the relaxation is nearly tight) the loop stops there.
    None where the model offers no decomposition, or the method cannot solve it (then branch-and-bound)."""
    from concurrent.futures import ThreadPoolExecutor

    model = models[0]
    offer = getattr(model, "decomposition", None)
    decomposition = offer() if offer is not None else None
    if decomposition is None:
        return None

    def start() -> tuple[float, np.ndarray]:
        if coarse is not None:
            small = coarse()
            try:
                solve_conic(small.problem, node, "the coarse relaxation")
                return -math.inf, small.linking_values()  # type: ignore[attr-defined]
            except SolveError:
                pass
        return -math.inf, np.clip(np.zeros(decomposition.x.size), decomposition.x_lo, decomposition.x_hi)

    with quiet_solver(), ThreadPoolExecutor(max_workers=1) as side:
        probe = side.submit(root_probe, model, node, settings.gap)
        try:
            res = outer_approximation(decomposition, start, gap=settings.gap, time_limit=settings.time_limit_s,
                                      threads=settings.threads, settings=node.tighter(settings.gap / 10),
                                      side=probe,
                                      progress=(lambda row: log.info("OA %s", row)) if settings.verbose else None)
        except DecompositionFailed as exc:
            log.info("outer approximation stopped (%s); branch-and-bound instead", exc)
            probe.result()  # the model copy is free again
            return None
    root = probe.result()
    closed = res.iterations == 0 or res.history[-1].get("closed_by") == "root"
    return res.incumbent, {
        "name": "default", "gap_target": settings.gap, "threads": settings.threads,
        "time_limit_s": settings.time_limit_s,
        "strategy": ("root relaxation and its rounding (the gap closed at the root; outer approximation beside it)"
                     if closed else "outer approximation: HiGHS MILP master, Clarabel SOCP per typical day"),
        "status": res.status, "objective_usd": res.objective * model.usd_per_unit,
        "bound_usd": res.bound * model.usd_per_unit, "gap": res.gap,
        "iterations": res.iterations, "block_solves": res.block_solves, "root_solves": root.solves,
        "seconds_by_phase": {k: round(v, 3) for k, v in res.split.items()},
    }


def _finish(final: MixedIntegerModel, integers: list[np.ndarray], record: dict[str, Any], settings: MipSettings,
            timings: dict[str, float]) -> MipResult:
    """The chosen integers' final point (tight tolerances) and its record."""
    t = time.perf_counter()
    status = final_point(final, integers, settings.conic(FINAL))
    timings["resolve"] = time.perf_counter() - t
    record["resolved_objective_usd"] = float(final.problem.value) * final.usd_per_unit
    record["resolve_status"] = status
    accuracy = clarabel_accuracy(final.problem)
    record["resolve_gap_rel"] = None if accuracy is None else accuracy.gap_rel
    return MipResult(model=final, record=record, timings=timings)


def final_point(model: MixedIntegerModel, integers: list[np.ndarray], settings: ConicSettings = FINAL) -> str:
    """Fix the integers, solve the continuous rest, and let the model settle its integers by its rule."""
    model.fix_integers(integers)
    status = solve_conic(model.problem, settings, "re-solving the chosen plan")
    for _ in range(SETTLE_ROUNDS):
        settled = model.settle_integers()
        if settled is None:
            break
        model.fix_integers(settled)
        status = solve_conic(model.problem, settings, "re-solving the chosen plan with its settled integers")
    return status
