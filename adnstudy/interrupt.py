"""SIGINT and SIGTERM: both unwind the program as an exception, so every stage cleans up the same way.

:func:`install` (first thing the command does, before the slow imports) makes
SIGINT raise :class:`KeyboardInterrupt` and SIGTERM (what ``timeout``,
schedulers and Dask send) raise :class:`Terminated`, a subclass: a stage's
temporary folder is removed and a native solver's child process is stopped on
the way out, and the command exits 130 or 143 with one line on stderr.

A second signal while the first unwinds ends the process at once (exit 130 or
143, nothing more is cleaned up: what is left is removed by the next run, see
docs/results.md). Inside :func:`deferred` (the swap of a stage's folder) a
signal waits until the block ends.

This module imports only the standard library: it is loaded before anything slow.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: Exit code per signal (the shell's 128 + signal number).
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Terminated(KeyboardInterrupt):
    """SIGTERM was received: unwinds as Ctrl-C does (``except KeyboardInterrupt`` sees it), exit 143."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


class _State:
    received: int | None = None  # the first signal received
    pending = False  # received inside deferred(): raised when the block ends
    deferring = 0


_STATE = _State()


def exception_for(signum: int) -> KeyboardInterrupt:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


def exit_code(exc: BaseException) -> int:
    """130 for Ctrl-C (SIGINT), 143 for SIGTERM."""
    return 128 + exc.signum if isinstance(exc, Terminated) else EXIT_CODES[signal.SIGINT]


def describe(exc: BaseException) -> str:
    return "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"


def _handler(signum: int, frame: object) -> None:
    if _STATE.received is not None:  # a second signal: leave now, the next run cleans up
        os._exit(128 + _STATE.received)
    _STATE.received = signum
    if _STATE.deferring:
        _STATE.pending = True
        return
    raise exception_for(signum)


def install() -> None:
    """SIGINT and SIGTERM raise (module docstring); only the main thread can set handlers."""
    if threading.current_thread() is threading.main_thread():
        for signum in EXIT_CODES:
            signal.signal(signum, _handler)


@contextmanager
def deferred() -> Iterator[None]:
    """A block that a signal does not cut in two: the signal's exception is raised when the block ends."""
    _STATE.deferring += 1
    try:
        yield
    finally:
        _STATE.deferring -= 1
    if not _STATE.deferring and _STATE.pending and _STATE.received is not None:
        _STATE.pending = False
        raise exception_for(_STATE.received)


def in_child() -> None:
    """In a forked child: SIGINT ignored (the parent decides when it stops), SIGTERM kills at once."""
    _STATE.received, _STATE.pending, _STATE.deferring = None, False, 0
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
