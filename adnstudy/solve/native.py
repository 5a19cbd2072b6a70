"""Hand the mixed-integer model to a CVXPY solver by name (SCIP, GUROBI, MOSEK, CPLEX, COPT, XPRESS, ECOS_BB).

The solve runs in a forked child process: a solver that crashes the process
(SCIP has, on large SOCPs) takes down only the child, and a solver that takes
no time limit (ECOS_BB) is stopped from outside. The child returns the integer
decisions; the caller re-solves the continuous model with them fixed, so every
strategy's tables come from the same model.

**The child never outlives the run.** When the parent leaves the wait for any
reason (Ctrl-C, SIGTERM, an error) it stops the child: SIGTERM, then SIGKILL
after :data:`GRACE_S`. The child ignores SIGINT (the parent decides), dies at
once on SIGTERM, is a daemon (it never holds up the interpreter's exit), and
dies with its parent even when the parent is killed outright: on Linux through
``prctl(PR_SET_PDEATHSIG, SIGKILL)``, elsewhere through a thread that watches
its parent's pid (which runs only while the solver releases the GIL).

**Limits.** The case's time limit counts from the start of the child (model
building included): each solver gets what is left of it when it starts, with
the gap and threads, in its own words (:func:`solver_options`). SCIP goes
through :class:`DeadlineSCIP`, CVXPY's SCIP interface with its time limit set
at the moment SCIP starts and its cones added in one pass (CVXPY's own interface
scans the whole constraint matrix once per cone: 500 s for the 6,144 cones of
the 33-bus plan, before SCIP starts). A solver without a limit is announced
(a warning) before it starts and stopped at the time limit, without a plan.

**What is reported** (:func:`native_record`): the solver's own status, the
objective, and where the solver gives them the proven bound and gap; the
status is ``optimal`` when the gap is proven within the target, ``time_limit``
when the solver stopped at the limit with a plan, otherwise CVXPY's.
CVXPY's warnings in the child are sent back, not printed; the caller logs
those its status does not already say.
"""

from __future__ import annotations

import ctypes
import logging
import math
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import cvxpy as cp
import numpy as np

from adnstudy.errors import SolveError

log = logging.getLogger(__name__)

#: Solvers :func:`solver_options` gives a time limit; any other is announced and stopped from outside.
TIME_LIMITED = ("SCIP", "GUROBI", "MOSEK", "CPLEX", "COPT", "XPRESS")
#: CVXPY's warning after a solve that ended short of optimal: the record's status says it.
INACCURATE_WARNING = "Solution may be inaccurate"
#: Seconds a stopped child gets to end after SIGTERM before it is killed.
GRACE_S = 2.0
_PR_SET_PDEATHSIG = 1


def solver_options(name: str, gap: float, time_limit: float | None, threads: int) -> dict[str, Any]:
    """Gap, time limit and threads in each solver's own words (CVXPY's keyword arguments).

    SCIP solves on one thread (its parallel mode is a separate build); ECOS_BB
    takes only a gap; a solver not listed gets nothing (give its options in
    ``solver.options``).
    """
    name = name.upper()
    t = float(time_limit) if time_limit else None
    if name == "SCIP":
        return {"scip_params": {"limits/gap": gap, **({"limits/time": t} if t else {})}}
    if name == "GUROBI":
        return {"MIPGap": gap, "Threads": threads, **({"TimeLimit": t} if t else {})}
    if name == "MOSEK":
        params: dict[str, Any] = {"MSK_DPAR_MIO_TOL_REL_GAP": gap, "MSK_IPAR_NUM_THREADS": threads}
        if t:
            params["MSK_DPAR_MIO_MAX_TIME"] = t
        return {"mosek_params": params}
    if name == "CPLEX":
        return {"cplex_params": {"mip.tolerances.mipgap": gap, "threads": threads, **({"timelimit": t} if t else {})}}
    if name == "COPT":
        return {"RelGap": gap, "Threads": threads, **({"TimeLimit": t} if t else {})}
    if name == "XPRESS":  # a negative maxtime stops the search at the limit even without a solution
        return {"miprelstop": gap, "threads": threads, **({"maxtime": -max(1, math.ceil(t))} if t else {})}
    if name == "ECOS_BB":
        return {"mi_rel_eps": gap, "mi_max_iters": 100000}
    return {}


def with_user(options: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    """The user's options over ours; a parameter dict (``scip_params``, ``mosek_params``) is merged."""
    out = dict(options)
    for key, value in user.items():
        out[key] = {**out[key], **value} if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _scip_class():
    import cvxpy.settings as s
    from cvxpy.reductions.solvers.conic_solvers.scip_conif import SCIP, ConstraintTypes

    class DeadlineSCIP(SCIP):
        """CVXPY's SCIP interface with a deadline and a one-pass model build (module docstring).

        CVXPY runs a solver instance under its own name; this one differs from
        ``SCIP`` only in when the time limit is set and how the rows are grouped.
        """

        def __init__(self, deadline: float | None) -> None:
            super().__init__()
            self.deadline = deadline

        def name(self) -> str:
            return "SCIP_ADNSTUDY"

        def _solve(self, model, *args, **kwargs):
            self.model = model  # its status, when CVXPY reports only a failure
            return super()._solve(model, *args, **kwargs)

        def _set_params(self, model, *args, **kwargs) -> None:
            super()._set_params(model, *args, **kwargs)
            if self.deadline is not None:
                left = max(self.deadline - time.monotonic(), 1.0)
                model.setParam("limits/time", min(left, model.getParam("limits/time")))

        def _add_constraints(self, model, variables, A, b, dims) -> list:
            from pyscipopt.scip import quicksum

            csr = A.tocsr()
            terms = [list(zip(csr.data[csr.indptr[i]:csr.indptr[i + 1]].tolist(),
                              csr.indices[csr.indptr[i]:csr.indptr[i + 1]].tolist(), strict=True))
                     for i in range(csr.shape[0])]

            def linear(rows: range, ctype: str) -> list:
                out = []
                for i in rows:
                    if not terms[i]:
                        out.append(None)
                        continue
                    expr = quicksum(c * variables[j] for c, j in terms[i])
                    out.append(model.addCons(expr == b[i] if ctype == ConstraintTypes.EQUAL else expr <= b[i]))
                return out

            n_eq, n_leq = dims[s.EQ_DIM], dims[s.LEQ_DIM]
            equal = linear(range(n_eq), ConstraintTypes.EQUAL)
            inequal = linear(range(n_eq, n_eq + n_leq), ConstraintTypes.LESS_THAN_OR_EQUAL)
            soc, new_lin, start = [], [], n_eq + n_leq
            for size in dims[s.SOC_DIM]:  # t = b - A x for the cone's rows, then ||rest|| <= t (as CVXPY's SCIP does)
                cone = []
                for k, i in enumerate(range(start, start + size)):
                    var = model.addVar(obj=0, name=f"soc_t_{i}", vtype="CONTINUOUS", lb=0 if k == 0 else None, ub=None)
                    cone.append(var)
                    new_lin.append(model.addCons(var == b[i] - quicksum(c * variables[j] for c, j in terms[i])))
                soc.append(model.addCons(quicksum(v * v for v in cone[1:]) <= cone[0] * cone[0]))
                variables += cone
                start += size
            return equal + inequal + new_lin + soc

    return DeadlineSCIP


def _solver_figures(name: str, problem: cp.Problem, solver: Any = None) -> dict[str, Any]:
    """The solver's own status, best objective, bound and nodes, where CVXPY exposes them.

    After a failure CVXPY keeps no statistics; SCIP's model is then read from
    the :class:`DeadlineSCIP` instance.
    """
    stats = problem.solver_stats
    extra = stats.extra_stats if stats is not None else None
    try:
        if name == "SCIP":
            m = extra["model"] if extra is not None else solver.model
            if m.getNSols() == 0:
                return {"solver_status": str(m.getStatus())}
            return {"solver_status": str(m.getStatus()), "primal": m.getPrimalbound(), "bound": m.getDualbound(),
                    "nodes": int(m.getNNodes())}
        if name == "GUROBI":
            codes = {2: "optimal", 9: "time_limit", 11: "interrupted", 13: "suboptimal"}
            return {"solver_status": codes.get(int(extra.Status), str(extra.Status)), "primal": extra.ObjVal,
                    "bound": extra.ObjBound, "nodes": int(extra.NodeCount)}
    except Exception:  # a figure the solver does not have (no solution yet, another version)
        pass
    return {}


def _die_with_parent(parent_pid: int) -> None:
    """In the child: end when the parent ends, whatever ends it (module docstring)."""
    from adnstudy import interrupt

    interrupt.in_child()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the thread below
            pass
    if os.getppid() != parent_pid:  # the parent died before the line above
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="adnstudy-parent-watch", daemon=True).start()


def _child(conn, build: Callable[[], Any], name: str, gap: float, threads: int, user: dict[str, Any],
           verbose: bool, deadline: float | None, parent_pid: int) -> None:
    _die_with_parent(parent_pid)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = build()
            left = None if deadline is None else max(deadline - time.monotonic(), 1.0)  # after building
            options = with_user(solver_options(name, gap, left, threads), user)
            solver: Any = _scip_class()(deadline) if name == "SCIP" else name
            t = time.perf_counter()
            try:
                model.problem.solve(solver=solver, verbose=verbose, **options)
            except cp.SolverError as exc:  # no solution: the solver's own status says why
                conn.send({"status": "solver_error", "error": str(exc), **_solver_figures(name, model.problem, solver),
                           "warnings": [str(w.message) for w in caught]})
                return
            seconds = time.perf_counter() - t
            ints = [np.asarray(v.value, dtype=float) if v.value is not None else None for v in model.integer_vars()]
            objective = model.problem.objective.value  # CVXPY's value is NaN when SCIP stops at its time limit
            conn.send({
                "status": model.problem.status, "objective": None if objective is None else float(objective),
                "integers": ints, "seconds": seconds,
                "solver_seconds": getattr(model.problem.solver_stats, "solve_time", None),
                **_solver_figures(name, model.problem), "warnings": [str(w.message) for w in caught],
            })
    except Exception as exc:  # reported to the parent as a message
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()


def solve_native(
    build: Callable[[], Any], name: str, *, gap: float, time_limit: float | None, threads: int,
    options: dict[str, Any] | None = None, verbose: bool = False,
) -> dict[str, Any]:
    """Solve ``build()``'s native mixed-integer problem with solver ``name`` in a child process.

    ``options`` (the case's ``solver.options``) are laid over the gap, time and
    thread settings in the solver's own words. Raises :class:`SolveError` when
    the solver gives no integer point (with its status and why).
    """
    from adnstudy.checks import solver_problem

    name = name.upper()
    if (why := solver_problem(name)) is not None:
        raise SolveError(why)
    limited = time_limit is not None and name in TIME_LIMITED
    if time_limit is not None and not limited:
        log.warning("%s takes no time limit: if it has not finished after %g s it is stopped and no plan is "
                    "reported", name, time_limit)
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    deadline = None if time_limit is None else time.monotonic() + time_limit
    proc = ctx.Process(target=_child, args=(child, build, name, gap, threads, dict(options or {}), verbose, deadline,
                                            os.getpid()), daemon=True)
    t0 = time.perf_counter()
    try:
        proc.start()
        child.close()
        # a limited solver stops itself at the deadline and needs a moment to hand back its plan
        wait_s = None if time_limit is None else (time_limit * 1.1 + 30.0 if limited else time_limit + 1.0)
        if not parent.poll(wait_s):
            raise SolveError(f"{name} did not finish within the time limit of {time_limit:g} s (no plan is reported)")
        try:
            out = parent.recv()
        except EOFError:
            proc.join()
            raise SolveError(f"{name} ended the solver process abnormally (exit code {proc.exitcode})") from None
        proc.join()
    finally:  # Ctrl-C, SIGTERM, an error or the time limit: the child does not outlive this call
        _stop(proc)
        parent.close()
    out["wall_seconds"] = time.perf_counter() - t0
    for text in out.pop("warnings", []):
        if INACCURATE_WARNING not in text:
            log.warning("%s: %s", name, text)
    if out.get("status") == "solver_error":
        if out.get("solver_status") in ("timelimit", "time_limit"):
            raise SolveError(f"{name} found no integer-feasible plan within the time limit of {time_limit:g} s")
        said = f"its status: {out['solver_status']}" if "solver_status" in out else out.get("error", "")
        raise SolveError(f"{name} returned no solution ({said})")
    if "error" in out:
        raise SolveError(f"{name} failed: {out['error']}")
    return out


def _stop(proc: mp.process.BaseProcess) -> None:
    """End a child that is still running: SIGTERM, then SIGKILL after :data:`GRACE_S`."""
    if proc.pid is None or proc.exitcode is not None:
        return
    proc.terminate()
    proc.join(GRACE_S)
    if proc.exitcode is None:
        proc.kill()
        proc.join()


def native_record(out: dict[str, Any], name: str, gap_target: float, usd_per_unit: float) -> dict[str, Any]:
    """The manifest's record of a native solve: statuses, objective, bound and gap where the solver gives them."""
    from adnstudy.solve.bnb import relative_gap

    objective = out["objective"]
    bound = None
    if out.get("bound") is not None and out.get("primal") is not None and objective is not None \
            and all(math.isfinite(x) for x in (out["bound"], out["primal"], objective)):
        bound = out["bound"] + (objective - out["primal"])  # the solver's bound, with CVXPY's constant
    gap = None if bound is None else relative_gap(objective, min(bound, objective))
    # SCIP's gaplimit is its own gap proven (relative to the smaller of its bounds, without CVXPY's constant)
    if (gap is not None and gap <= gap_target * (1 + 1e-9)) or out.get("solver_status") in ("optimal", "gaplimit"):
        status = "optimal"
    elif out.get("solver_status") in ("timelimit", "time_limit"):
        status = "time_limit"
    else:
        status = out["status"]
    return {
        "name": name, "strategy": "native mixed-integer solve through CVXPY", "status": status,
        "solver_status": out.get("solver_status", out["status"]),
        "objective_usd": None if objective is None else objective * usd_per_unit,
        "bound_usd": None if bound is None else bound * usd_per_unit, "gap": gap, "gap_target": gap_target,
        "nodes": out.get("nodes"), "solver_seconds": out.get("solver_seconds"), "wall_seconds": out["wall_seconds"],
    }
