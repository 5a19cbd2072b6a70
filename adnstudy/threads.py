"""How many threads a stage may use: the case's ``solver.threads``, capped by the process's thread budget.

A sweep runs several stages at once on one machine (``adnstudy sweep``, one
Dask task per stage): each task gets ``cores // tasks at once`` threads, so
workers × threads fits the cores instead of every branch-and-bound starting
``solver.threads`` threads and every BLAS call its own pool. :func:`limited`
sets that budget for a block (and for the processes it starts, through the
environment); :func:`capped` applies it where a solver's thread count is chosen.

Threads change how fast an answer comes, not the question: ``solver.threads`` is
left out of the run keys (``pipeline.py``), and the manifest's solver record
says how many threads the solve used.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

#: The budget, in the environment so that native solvers' child processes see it too.
ENV = "ADNSTUDY_MAX_THREADS"


def budget() -> int | None:
    """The thread budget of this process, or None if it has none."""
    value = os.environ.get(ENV, "")
    return max(1, int(value)) if value.isdigit() else None


def capped(threads: int) -> int:
    """``threads`` (a case's ``solver.threads``), at most the budget."""
    limit = budget()
    return max(1, min(threads, limit) if limit is not None else threads)


def cores() -> int:
    """The cores this process may run on (its CPU affinity where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@contextmanager
def limited(threads: int) -> Iterator[None]:
    """A block in which stages use at most ``threads`` threads: solvers (:func:`capped`) and the BLAS/OpenMP
    pools of NumPy and scikit-learn (threadpoolctl)."""
    from threadpoolctl import threadpool_limits

    before = os.environ.get(ENV)
    os.environ[ENV] = str(max(1, threads))
    try:
        with threadpool_limits(limits=max(1, threads)):
            yield
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before
