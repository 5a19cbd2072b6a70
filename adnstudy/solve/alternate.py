"""Alternating optimisation of investors' 0-1 decisions: co-planning's outer loop, a plug-in of the iteration loop.

Each outer iteration k (docs/coplan.md):

1. *Upper level*: with every investor's 0-1 decisions fixed, the welfare
   clearing (continuous sizes, operation, trades) is solved — distributedly,
   by the ATC + ADMM of :mod:`adnstudy.solve.coordination`;
2. *Lower level*: each investor re-chooses its own 0-1 decisions from its own
   data and what the upper level sent it (its targets, multipliers, agreed
   trades), all at once (Jacobi);
3. the decisions repeat → a fixed point, stop; they were seen before → a cycle,
   stop with the member of best welfare; otherwise go on with the new ones.

:class:`Alternation` knows nothing of the models: the caller gives the upper
level and the investors' best responses as functions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from adnstudy.solve.iterate import Row, iterate

Decision = tuple[np.ndarray, ...]
Decisions = tuple[Decision, ...]


def decisions_key(decisions: Decisions) -> bytes:
    """A hashable form of everyone's 0-1 decisions."""
    return b"|".join(np.concatenate([np.ravel(a) for a in d] or [np.zeros(0)]).round().astype(np.int64).tobytes()
                     for d in decisions)


class UpperResult(Protocol):
    welfare_usd: float
    iterations: int


@dataclass
class Step:
    """One outer iteration: the decisions it solved, its upper level, the responses, and the time each took."""

    iteration: int
    decisions: Decisions
    upper: Any  # UpperResult
    responses: Decisions
    upper_seconds: float
    lower_seconds: list[float]
    lower: str = "prices"  # what chose the responses: the investors' lower levels, or an exact deviation check


@dataclass
class AlternationResult:
    steps: list[Step]
    decisions: Decisions  # the final decisions (the fixed point, or the best member of a cycle)
    upper: Any  # their upper level
    outcome: str  # "fixed point", "cycle" or "iteration limit"
    history: list[Row] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def converged(self) -> bool:
        return self.outcome != "iteration limit"


class Alternation:
    """The outer loop as an :class:`~adnstudy.solve.iterate.IterativeMethod`."""

    def __init__(self, upper: Callable[[Decisions], UpperResult],
                 respond: Sequence[Callable[[UpperResult], Decision]], start: Decisions) -> None:
        self.upper, self.respond, self.start = upper, respond, start

    def initialise(self) -> None:
        self.current = self.start
        self.steps: list[Step] = []
        self.by_key: dict[bytes, Step] = {}
        self.outcome = "iteration limit"

    def solve(self, k: int) -> None:
        t = time.perf_counter()
        upper = self.upper(self.current)
        upper_s = time.perf_counter() - t
        responses, lower_s = [], []
        for respond in self.respond:
            t = time.perf_counter()
            responses.append(respond(upper))
            lower_s.append(time.perf_counter() - t)
        step = Step(k, self.current, upper, tuple(responses), upper_s, lower_s)
        self.steps.append(step)
        self.by_key[decisions_key(self.current)] = step

    def update(self, k: int) -> Row:
        step = self.steps[-1]
        changed = [decisions_key((a,)) != decisions_key((b,)) for a, b in zip(step.decisions, step.responses, strict=True)]
        self.next = step.responses
        return {"welfare_usd": float(step.upper.welfare_usd), "changed": float(sum(changed)),
                "upper_iterations": float(step.upper.iterations)}

    def converged(self, row: Row) -> bool:
        key = decisions_key(self.next)
        if key == decisions_key(self.current):
            self.outcome = "fixed point"
            return True
        if key in self.by_key:
            self.outcome = "cycle"
            return True
        return False

    def adapt(self, k: int, row: Row) -> None:
        self.current = self.next

    def not_converged(self, row: Row) -> str:
        return (f"the alternating optimisation did not settle in {int(row['iteration'])} outer iterations (the "
                "investors' decisions neither repeated nor cycled); raise coplan.max_iter")

    def result(self) -> AlternationResult:
        if self.outcome == "cycle":  # the best-welfare member of the cycle
            start = self.by_key[decisions_key(self.next)].iteration
            best = min((s for s in self.steps if s.iteration >= start), key=lambda s: s.upper.welfare_usd)
        else:
            best = self.steps[-1]
        return AlternationResult(steps=self.steps, decisions=best.decisions, upper=best.upper, outcome=self.outcome)


def alternate(upper: Callable[[Decisions], UpperResult], respond: Sequence[Callable[[UpperResult], Decision]],
              start: Decisions, *, max_iter: int, on_iteration: Callable[[Row], None] | None = None
              ) -> AlternationResult:
    """Alternate from ``start`` until the decisions repeat or cycle, or ``max_iter`` outer iterations pass."""
    method = Alternation(upper, respond, start)
    loop = iterate(method, max_iter=max_iter, on_iteration=on_iteration, strict=False)
    out = method.result()
    out.history, out.seconds = loop.history, loop.seconds
    return out
