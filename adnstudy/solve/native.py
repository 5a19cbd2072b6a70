"""Hand the mixed-integer model to a CVXPY solver by name (SCIP, GUROBI, MOSEK, ECOS_BB, ...).

The solve runs in a forked child process: a time limit is enforced even for
solvers that have none (ECOS_BB), and a solver that crashes the process (SCIP
has, on large SOCPs) takes down only the child. The child returns the integer
decisions; the caller re-solves the continuous model with them fixed, so every
strategy's tables come from the same model.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable
from typing import Any

import cvxpy as cp
import numpy as np

from adnstudy.errors import SolveError


def solver_options(name: str, gap: float, time_limit: float | None, threads: int) -> dict[str, Any]:
    """Gap, time limit and threads in each solver's own words."""
    name = name.upper()
    if name == "SCIP":
        params: dict[str, Any] = {"limits/gap": gap}
        if time_limit:
            params["limits/time"] = float(time_limit)
        return {"scip_params": params}
    if name == "GUROBI":
        opts: dict[str, Any] = {"MIPGap": gap, "Threads": threads}
        if time_limit:
            opts["TimeLimit"] = float(time_limit)
        return opts
    if name == "MOSEK":
        mp_: dict[str, Any] = {"MSK_DPAR_MIO_TOL_REL_GAP": gap, "MSK_IPAR_NUM_THREADS": threads}
        if time_limit:
            mp_["MSK_DPAR_MIO_MAX_TIME"] = float(time_limit)
        return {"mosek_params": mp_}
    if name == "ECOS_BB":
        return {"mi_rel_eps": gap, "mi_max_iters": 100000}
    return {}


def _child(conn, build: Callable[[], Any], name: str, options: dict, verbose: bool) -> None:
    try:
        model = build()
        t = time.perf_counter()
        model.problem.solve(solver=name, verbose=verbose, **options)
        seconds = time.perf_counter() - t
        ints = [np.asarray(v.value, dtype=float) if v.value is not None else None for v in model.integer_vars()]
        stats = model.problem.solver_stats
        conn.send({
            "status": model.problem.status, "objective": model.problem.value, "integers": ints,
            "seconds": seconds, "solver_seconds": getattr(stats, "solve_time", None),
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
    thread settings in the solver's own words.
    """
    name = name.upper()
    if name not in cp.installed_solvers():
        raise SolveError(
            f"solver '{name}' is not installed (installed: {', '.join(cp.installed_solvers())}); "
            "use solver 'default' or install it"
        )
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    settings = {**solver_options(name, gap, time_limit, threads), **(options or {})}
    proc = ctx.Process(target=_child, args=(child, build, name, settings, verbose))
    t0 = time.perf_counter()
    proc.start()
    child.close()
    # the solver's own limit comes first; the process limit backs it up (ECOS_BB has none)
    wait_s = None if time_limit is None else time_limit * 1.2 + 30.0
    ready = parent.poll(wait_s)
    if not ready:
        proc.kill()
        proc.join()
        raise SolveError(f"{name} did not finish within the time limit of {time_limit:g} s (no plan is reported)")
    try:
        out = parent.recv()
    except EOFError:
        proc.join()
        raise SolveError(f"{name} ended the solver process abnormally (exit code {proc.exitcode})") from None
    proc.join()
    if "error" in out:
        raise SolveError(f"{name} failed: {out['error']}")
    out["wall_seconds"] = time.perf_counter() - t0
    return out
