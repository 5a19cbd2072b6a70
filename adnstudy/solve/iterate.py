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

import numpy as np

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


class FixedPointMethod(IterativeMethod, Protocol):
    """A method whose iteration is a fixed-point map of a vector it can report and be set to."""

    def point(self) -> np.ndarray: ...  # the iterate the next ``solve`` starts from, as one scaled vector

    def set_point(self, x: np.ndarray) -> None: ...

    def map_changed(self) -> bool: ...  # did the last ``adapt`` change the map (its penalties)?


class Anderson:
    """Anderson acceleration (type II, with restarts) of a :class:`FixedPointMethod`, itself an
    :class:`IterativeMethod` for :func:`iterate`.

    After each iteration's update the method holds F(x_k), the plain map of the iterate x_k it solved
    from; the next iterate is the combination of the last ``memory`` + 1 map values whose fixed-point
    residuals g = F(x) − x combine to the least norm. The memory is cleared (the plain step taken)
    when the method's map changes (a penalty update), when the residual grows by more than
    ``restart_growth`` over the smallest since the last restart (the safeguard), and every
    ``restart_every`` steps.
    """

    def __init__(self, method: FixedPointMethod, memory: int = 5, restart_growth: float = 2.0,
                 restart_every: int = 100, regularisation: float = 1e-10) -> None:
        self.method, self.memory = method, memory
        self.restart_growth, self.restart_every, self.regularisation = restart_growth, restart_every, regularisation
        self.accelerated = 0  # steps that took the extrapolation

    def __getattr__(self, name: str):  # the method's other attributes (its results)
        return getattr(self.method, name)

    def _restart(self) -> None:
        self.dX: list[np.ndarray] = []
        self.dG: list[np.ndarray] = []
        self.last: tuple[np.ndarray, np.ndarray] | None = None  # (x, g) of the previous step
        self.best, self.steps = np.inf, 0

    def initialise(self) -> None:
        self.method.initialise()
        self.x = self.method.point()
        self._restart()

    def solve(self, k: int) -> None:
        self.method.solve(k)

    def update(self, k: int) -> Row:
        return self.method.update(k)

    def converged(self, row: Row) -> bool:
        return self.method.converged(row)

    def not_converged(self, row: Row) -> str:
        return self.method.not_converged(row)

    def adapt(self, k: int, row: Row) -> None:
        self.method.adapt(k, row)
        f = self.method.point()
        if self.method.map_changed():
            self._restart()
            self.x = f
            return
        g = f - self.x
        norm = float(np.linalg.norm(g))
        if norm > self.restart_growth * self.best or self.steps >= self.restart_every:
            self._restart()
        self.best = min(self.best, norm)
        if self.last is not None:
            self.dX.append(self.x - self.last[0])
            self.dG.append(g - self.last[1])
            if len(self.dX) > self.memory:
                self.dX.pop(0)
                self.dG.pop(0)
        self.last = (self.x, g)
        self.steps += 1
        x_next = f
        if self.dG:
            G = np.column_stack(self.dG)
            gram = G.T @ G
            gram += self.regularisation * max(float(np.trace(gram)), 1e-300) * np.eye(len(self.dG))
            try:
                gamma = np.linalg.solve(gram, G.T @ g)
            except np.linalg.LinAlgError:
                gamma = None
            if gamma is not None and np.all(np.isfinite(gamma)):
                x_next = f - (np.column_stack(self.dX) + G) @ gamma
                self.accelerated += 1
        self.x = x_next
        self.method.set_point(x_next)
