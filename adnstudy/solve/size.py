"""How big a model will be, and whether it fits the machine, from its dimensions alone (before building it).

The DistFlow SOC model over S snapshots on a feeder of n buses and m branches,
as CVXPY hands it to Clarabel (counted from :mod:`adnstudy.formulation`'s
families, checked against the compiled models in ``tests/test_scale.py``),
with R renewable and B storage candidates::

    variables ≈ S (3m + n + 3 + 2R + 3B)
    rows      ≈ S (5n + 7m + 2 + 4R + 6B)          (balances, drops, 4 per cone, limits, signs)
    nonzeros  ≈ S (3n + 19m + 3 + 9R + 16B)

Memory is calibrated on ``benchmarks/scale.py``'s measurements (peak RSS of
``adnstudy plan``, 2 cores, CVXPY 1.9, Clarabel 0.11): the process itself
(~300 MB), and per nonzero and model copy the compiled CVXPY problem plus
Clarabel's workspace (KKT matrix, its LDL factor and iterates), about 0.45 kB
(0.6 kB with the reliability section, whose final point retries more): within
−7 % … +34 % of the peaks measured at 200 and 500 buses, K = 8;
the plan's branch-and-bound keeps one model copy per thread, and the rest of
the stage (one-day seeding model, tables, AC check) adds about half a copy.
One relaxation takes about 1.1 s per 150,000 nonzeros, growing as
nonzeros^1.2 (same machine): a search needs at least the root and the final
point, so a root alone beyond the time limit is worth a warning.

The available memory is ``ADNSTUDY_MEMORY_LIMIT_MB`` when set (a cap for a
shared machine or a batch job), else the kernel's ``MemAvailable``.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, replace

from adnstudy.config.schema import own_strategy
from adnstudy.errors import AdnstudyError

log = logging.getLogger(__name__)

#: Environment variable capping the memory a model may take, in MB (default: what the machine has available).
MEMORY_LIMIT_ENV = "ADNSTUDY_MEMORY_LIMIT_MB"
BASE_MB = 300.0  # the Python process with numpy, pandas, CVXPY and the case loaded
BYTES_PER_NNZ = {False: 450.0, True: 600.0}  # per nonzero and model copy, without / with reliability
STAGE_COPIES = 0.5  # what the stage holds besides the search's copies, in model copies
NODE_SECONDS = 1.1  # one relaxation of NODE_NNZ nonzeros
NODE_NNZ = 150_000
NODE_EXPONENT = 1.2


class ModelTooLargeError(AdnstudyError):
    """The model would not fit in the memory available (exit code 2: the input's size against the machine)."""

    exit_code = 2


@dataclass(frozen=True)
class Dimensions:
    """What a DistFlow model's size depends on."""

    buses: int
    branches: int
    snapshots: int  # typical days × hours
    renewables: int = 0  # RES candidates (or units with p, q per snapshot)
    storage: int = 0
    reliability: bool = False
    copies: int = 1  # model copies held at once (the plan's search: one per thread)


@dataclass(frozen=True)
class Estimate:
    dims: Dimensions
    variables: int
    rows: int
    nonzeros: int
    memory_mb: float
    relaxation_s: float  # one Clarabel solve of the model

    def describe(self) -> str:
        d = self.dims
        return (f"{d.buses} buses, {d.branches} branches, {d.snapshots} snapshots: about {self.variables:,} variables, "
                f"{self.rows:,} constraint rows and {self.nonzeros:,} nonzeros, {self.memory_mb:,.0f} MB "
                f"with {d.copies} model cop{'y' if d.copies == 1 else 'ies'}")


def estimate(dims: Dimensions) -> Estimate:
    """Size, memory and the seconds of one relaxation of a model of these dimensions (module docstring)."""
    n, m, S, R, B = dims.buses, dims.branches, dims.snapshots, dims.renewables, dims.storage
    variables = S * (3 * m + n + 3 + 2 * R + 3 * B)
    rows = S * (5 * n + 7 * m + 2 + 4 * R + 6 * B)
    nnz = S * (3 * n + 19 * m + 3 + 9 * R + 16 * B)
    per_copy_mb = nnz * BYTES_PER_NNZ[dims.reliability] / 2**20
    memory = BASE_MB + per_copy_mb * (dims.copies + STAGE_COPIES)
    seconds = NODE_SECONDS * (nnz / NODE_NNZ) ** NODE_EXPONENT
    return Estimate(dims, variables, rows, nnz, memory, seconds)


def available_memory_mb() -> tuple[float | None, str]:
    """The memory a model may use, in MB, and where that figure comes from (None: unknown)."""
    cap = os.environ.get(MEMORY_LIMIT_ENV)
    if cap is not None:
        try:
            value = float(cap)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value <= 0:
            raise ModelTooLargeError(f"{MEMORY_LIMIT_ENV}={cap!r} is not a positive number of MB")
        return value, f"the cap {MEMORY_LIMIT_ENV}={cap}"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024, "available on this machine (MemAvailable)"
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20, "available on this machine"
    except (ValueError, OSError, AttributeError):
        return None, "unknown"


def largest_fitting(dims: Dimensions, hours: int, limit_mb: float) -> int:
    """The most days (``snapshots`` = days × ``hours``) whose model fits in ``limit_mb``; 0 if not even one."""
    days = dims.snapshots // hours
    while days > 0 and estimate(replace(dims, snapshots=days * hours)).memory_mb > limit_mb:
        days -= 1
    return days


def check_fits(dims: Dimensions, what: str, *, hours: int, time_limit_s: float | None = None,
               days_field: str = "clustering.k") -> Estimate:
    """Raise :class:`ModelTooLargeError` if the model of ``dims`` would not fit in the available memory,
    saying what would (fewer typical days, one thread, no reliability section); warn when one relaxation
    alone would outlast ``time_limit_s``. Returns the estimate."""
    est = estimate(dims)
    limit, source = available_memory_mb()
    if limit is not None and est.memory_mb > limit:
        days = dims.snapshots // hours
        options = []
        k = largest_fitting(dims, hours, limit)
        if k:
            options.append(f"{k} typical day{'s' if k > 1 else ''} instead of {days} ({days_field})")
        if dims.copies > 1 and estimate(replace(dims, copies=1)).memory_mb <= limit:
            options.append(f"one thread (solver.threads: 1, {estimate(replace(dims, copies=1)).memory_mb:,.0f} MB)")
        if dims.reliability and estimate(replace(dims, reliability=False)).memory_mb <= limit:
            options.append("no reliability section (--no-reliability, "
                           f"{estimate(replace(dims, reliability=False)).memory_mb:,.0f} MB)")
        fits = ("; it would fit with " + " or ".join(options)) if options else (
            "; not even one typical day on one thread fits: use a machine with more memory or a smaller feeder")
        raise ModelTooLargeError(
            f"{what} will not fit in memory: estimated {est.memory_mb:,.0f} MB ({est.describe()}), "
            f"but {limit:,.0f} MB is {source}{fits}. Nothing was built or written.")
    if time_limit_s is not None and est.relaxation_s > time_limit_s:
        log.warning("%s is large (%s): one relaxation alone takes an estimated %.0f s on a 2-core machine, beyond "
                    "the time limit of %.0f s; the search will stop without a plan unless the limit is about %.0f s "
                    "or more (--time-limit)", what, est.describe(), est.relaxation_s, time_limit_s,
                    10 * est.relaxation_s)
    return est


def plan_dimensions(case, feeder, *, reliability: bool, threads: int) -> Dimensions:
    """The planning model's dimensions from the case and its feeder (before any table is read)."""
    from adnstudy.data.typical import HOURS

    cfg = case.config
    days = cfg.clustering.k + len(set(cfg.clustering.extreme_days)) if cfg.clustering is not None else 1
    sites = cfg.candidates.sites if cfg.candidates is not None else []
    storage = sum(1 for s in sites if s.tech == "storage")
    return Dimensions(buses=feeder.n_bus, branches=feeder.n_branch, snapshots=days * HOURS,
                      renewables=len(sites) - storage, storage=storage,
                      reliability=reliability and cfg.reliability is not None, copies=max(1, threads))


def check_plan_size(case, *, reliability: bool, solver: str | None, time_limit_s: float | None) -> Estimate:
    """``plan``'s check before anything is built: the model fits (else :class:`ModelTooLargeError`, exit 2)."""
    from adnstudy.checks import case_feeder
    from adnstudy.data.typical import HOURS

    scfg = case.config.solver
    default = own_strategy(solver or scfg.name)
    from adnstudy.threads import capped

    dims = plan_dimensions(case, case_feeder(case), reliability=reliability,
                           threads=capped(scfg.threads) if default else 1)
    return check_fits(dims, f"the planning model of {case.name}", hours=HOURS,
                      time_limit_s=time_limit_s if time_limit_s is not None else scfg.time_limit_s)


#: ATC/ADMM iterations a typical day of the shipped cases takes (docs/benchmarks.md: 40 to about 300).
DISPATCH_ITERATIONS = (50, 300)


def check_dispatch_size(case, feeder, *, days: int) -> Estimate:
    """``dispatch``'s check before anything is built: one typical day's network model (the ADN's, and the
    centralised reference, about one and a half model copies) fits in memory (else :class:`ModelTooLargeError`, exit 2); warn when
    the distributed market, which re-solves the ADN's model every iteration, would take over an hour in all."""
    from adnstudy.data.typical import HOURS

    cfg = case.config
    sites = cfg.candidates.sites if cfg.candidates is not None else []
    storage = sum(1 for s in sites if s.tech == "storage")
    dims = Dimensions(buses=feeder.n_bus, branches=feeder.n_branch, snapshots=HOURS,
                      renewables=len(sites) - storage, storage=storage)
    est = check_fits(dims, f"the dispatch model of one typical day of {case.name}", hours=HOURS, days_field="")
    low, high = (est.relaxation_s * n for n in DISPATCH_ITERATIONS)
    if low * days > 3600:
        log.warning("dispatch of %s is large (%s): each ADN solve takes an estimated %.0f s on a 2-core machine, "
                    "and the distributed market needs %d to %d of them per typical day: %.1f to %.1f h for each "
                    "of the %d days", case.name, est.describe(), est.relaxation_s, *DISPATCH_ITERATIONS,
                    low / 3600, high / 3600, days)
    return est
