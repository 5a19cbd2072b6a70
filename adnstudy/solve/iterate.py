"""One loop for every distributed algorithm: initialise, solve the agents, update, check, adapt.

Like PowerModelsADA's ``solve_dopf``, the loop owns iteration, timing, history
and stopping; an algorithm (ATC + ADMM for the market clearing, the payment
ADMM of the bargaining, co-planning's outer alternation) is a plug-in with
these steps (:class:`IterativeMethod`):

* ``initialise()`` — starting point and multipliers;
* ``solve(k)`` — every agent's subproblem with the quantities exchanged so far
  (each agent sees only its own data and the exchanged quantities);
* ``update(k)`` — multipliers from the new responses; returns the iteration's
  row (residuals, objective, penalties);
* ``converged(row)`` — the stopping test;
* ``adapt(k, row)`` — penalty adaptation for the next iteration (may do nothing);
* ``not_converged(row)`` — the message when the iteration limit passes.

Agents meet the algorithms through small protocols of their own (see
:mod:`adnstudy.solve.coordination`), never through the model classes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from adnstudy.errors import NotConvergedError

Row = dict[str, float]


class IterativeMethod(Protocol):
    def initialise(self) -> None: ...

    def solve(self, k: int) -> None: ...

    def update(self, k: int) -> Row: ...

    def converged(self, row: Row) -> bool: ...

    def adapt(self, k: int, row: Row) -> None: ...

    def not_converged(self, row: Row) -> str: ...


@dataclass(frozen=True)
class LoopResult:
    history: list[Row]  # one row per iteration: "iteration", the method's fields, "seconds" since the start
    iterations: int
    seconds: float
    converged: bool = True
    message: str = ""  # why not, when it did not converge (the method's ``not_converged``)


def iterate(method: IterativeMethod, *, max_iter: int, on_iteration: Callable[[Row], None] | None = None,
            strict: bool = True) -> LoopResult:
    """Run ``method`` until it converges; after ``max_iter`` iterations raise :class:`NotConvergedError`
    (``strict``) or return the last iterate marked ``converged=False`` with the method's message."""
    t0 = time.perf_counter()
    history: list[Row] = []
    method.initialise()
    for k in range(1, max_iter + 1):
        method.solve(k)
        row = {"iteration": k, **method.update(k)}
        row["seconds"] = time.perf_counter() - t0
        history.append(row)
        if on_iteration:
            on_iteration(row)
        if method.converged(row):
            return LoopResult(history=history, iterations=k, seconds=time.perf_counter() - t0)
        method.adapt(k, row)
    message = method.not_converged(history[-1])
    if strict:
        raise NotConvergedError(message, history=history)
    return LoopResult(history=history, iterations=max_iter, seconds=time.perf_counter() - t0, converged=False,
                      message=message)
