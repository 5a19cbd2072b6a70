"""Exceptions that the command line turns into one clear message and an exit code.

The library raises these; it never prints or exits. ``cli.py`` maps
:class:`CaseError` and :class:`MissingInputError` to exit code 2 (the input is
wrong) and :class:`SolveError` and any other :class:`AdnstudyError` to exit code 1
(the input was fine but the computation failed).
"""

from __future__ import annotations

from pathlib import Path


class AdnstudyError(Exception):
    """Base class of every error adnstudy reports to a user."""

    exit_code = 1


class CaseError(AdnstudyError):
    """A case file, or a file it refers to, is wrong.

    The message names the file, the field path (``network.v_min_pu``, or a
    table column and row) and the line where it is known.
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        field: str | None = None,
        line: int | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.field = field
        self.line = line
        self.reason = message
        super().__init__(self._format())

    def _format(self) -> str:
        where = self.file or ""
        if self.line is not None:
            where += f":{self.line}"
        parts = [p for p in (where, self.field) if p]
        prefix = ": ".join(parts)
        return f"{prefix}: {self.reason}" if prefix else self.reason


class MissingInputError(AdnstudyError):
    """A stage needs the output of an earlier stage that is not there."""

    exit_code = 2


class StaleInputError(MissingInputError):
    """An earlier stage's results are there but cannot be trusted: no readable manifest, a table changed after
    it was written, or produced from other case content (``--force-inputs`` turns this into a warning)."""


class BadInputTableError(MissingInputError):
    """An earlier stage's table cannot be read, or lacks a column or holds values its readers cannot use
    (never overridable)."""


class SolveError(AdnstudyError):
    """A solver or an iterative method failed; the message gives status and likely cause."""

    exit_code = 1


class SolverStatusError(SolveError):
    """A solve ended without a usable solution; ``status`` is the solver's (CVXPY's) status."""

    def __init__(self, message: str, *, status: str) -> None:
        self.status = status
        super().__init__(message)


class InfeasibleError(SolverStatusError):
    """The solver certified (or nearly certified) that the problem has no feasible point."""


class SolverFailedError(SolverStatusError):
    """The solver stopped for a numerical reason, a limit, or an unbounded problem."""


class NotConvergedError(SolveError):
    """An iterative method reached its iteration limit; ``history`` holds its residual rows."""

    def __init__(self, message: str, *, history: list[dict[str, float]] | None = None) -> None:
        self.history = history or []
        super().__init__(message)


class IncompleteResultsError(SolveError):
    """A stage wrote its results, but some parts (named in the message and marked in the tables and the
    manifest) did not reach their tolerances or failed: nothing is lost, and nothing looks final (exit 1)."""


class ResultsBusyError(AdnstudyError):
    """Another process is writing into the results folder (it holds the folder's lock)."""

    exit_code = 2
