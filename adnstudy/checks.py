"""Every check of a case, in one place: ``adnstudy validate`` runs them all, each stage runs its own.

A check looks at the case and what it reads (the feeder, the profiles) and
raises a :class:`~adnstudy.errors.CaseError` naming the file, field or bus and
what is wrong. The stage registry (``stages/registry.py``) says which checks
each stage relies on; a stage runs them before it solves anything, and
``validate`` runs those of every stage the case has sections for, so a case
that validates is never rejected later for a reason in the case file.

:class:`CaseInputs` loads the feeder and the profiles once, on first use, and
hands them to the stage that asked for the checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from adnstudy.config.load import Case
from adnstudy.config.schema import own_strategy
from adnstudy.data import csvfile
from adnstudy.errors import CaseError, SolveError
from adnstudy.network.feeder import Feeder, load_feeder

if TYPE_CHECKING:
    from adnstudy.cluster.typical_days import DayData


class CaseInputs:
    """A case with its feeder, profiles and clustering days, each loaded (and checked) once."""

    def __init__(self, case: Case) -> None:
        self.case = case

    @cached_property
    def feeder(self) -> Feeder:
        return case_feeder(self.case)

    @cached_property
    def profiles(self) -> pd.DataFrame:
        from adnstudy.data.profiles import load_profiles

        return load_profiles(self.case)

    @cached_property
    def bus_load_multipliers(self) -> np.ndarray:
        """Bus × hour multiplier of each bus's peak load over the profiles' year."""
        from adnstudy.data.profiles import bus_load_profiles

        return bus_load_profiles(self.case, self.feeder, self.profiles)

    @cached_property
    def generator_availability(self) -> np.ndarray:
        """Generator × hour available power of each existing unit, per unit of its ``p_mw``, over the year."""
        from adnstudy.data.profiles import generator_profiles

        return generator_profiles(self.case, self.feeder, self.profiles)

    @cached_property
    def days(self) -> DayData:
        """The profiles' year as days for clustering (checked: enough days, no constant series, k fits)."""
        from adnstudy.cluster.typical_days import day_data

        case = self.case
        cfg = case.config.clustering
        assert cfg is not None and case.config.profiles is not None
        from adnstudy.data.mixes import feature_weights, net_load_mw

        kinds = {n: s.kind for n, s in case.config.profiles.series.items()}
        data = day_data(self.profiles, kinds, feature_weights(case, self.feeder), net_load_mw(case, self.feeder))
        if data.n_days < 2:
            raise case.error(f"clustering needs at least 2 whole days of data; the profiles hold {data.n_days}",
                             "profiles")
        constant = [s for s, lo, hi in zip(data.series, data.lo, data.hi, strict=True) if not hi > lo]
        if constant:
            raise case.error(f"series '{constant[0]}' is constant over the year and cannot be scaled for clustering",
                             "profiles", "series", constant[0])
        n_extreme = len(set(cfg.extreme_days))
        if cfg.k > data.n_days - n_extreme:
            raise case.error(f"k = {cfg.k} is larger than the {data.n_days - n_extreme} days available to cluster",
                             "clustering", "k")
        return data


# ------------------------------------------------------------------------------ the checks
def case_feeder(case: Case) -> Feeder:
    """The case's feeder, loaded, checked, and cross-checked against the case's sections."""
    net = case.config.network
    for label in ("buses", "branches", "generators"):  # checked here too, for the line in the case file
        table = getattr(net, label)
        what = "generator table" if label == "generators" else "feeder table"
        why = csvfile.problem(case.resolve(table), what) if table is not None else None
        if why is not None:
            raise case.error(why, "network", label)
    try:
        feeder = load_feeder(case.config.network, case.base_dir, case.path)
    except SolveError:  # the base-case power flow behind branch_rating_factor: the peak load is too large
        bare = case.config.network.model_copy(update={"branch_rating_factor": None})
        raise peak_load_error(case, load_feeder(bare, case.base_dir, case.path)) from None
    check_references(case, feeder)
    return feeder


def check_references(c: Case, feeder: Feeder) -> None:
    """Buses named by candidates and microgrids exist on the feeder; series named exist and fit.

    A candidate's ``profile`` must be a series of its technology's kind (pv or
    wind); without one it follows the case's first series of that kind. A
    microgrid's and a bus's ``load_profile`` (and every series of a bus's load
    mix) must be a ``load`` series; an existing unit's ``profile`` a series of
    its technology's kind (:func:`check_generator_series`).
    """
    ids = set(int(b) for b in feeder.bus_ids)
    prof = c.config.profiles
    kind_of = {n: s.kind for n, s in prof.series.items()} if prof is not None else {}

    def fits(name: str, kind: str) -> str | None:
        if name not in kind_of:
            return f"profile '{name}' is not in profiles.series ({', '.join(kind_of)})"
        if kind_of[name] != kind:
            return f"profile '{name}' is a {kind_of[name]} series, not {kind}"
        return None

    if prof is not None:
        for bus, name in zip(feeder.buses["bus"], feeder.buses["load_profile"], strict=True):
            if name and (why := fits(name, "load")):
                raise CaseError(f"bus {bus}: {why}", file=feeder.bus_file, field="load_profile")
        for bus, name in zip(feeder.load_shares["bus"], feeder.load_shares["load_profile"], strict=True):
            if why := fits(name, "load"):
                raise CaseError(f"bus {bus}: its load mix names {why}", file=feeder.bus_file, field="load_profile")
        check_generator_series(c, feeder, fits, set(kind_of.values()))
    if c.config.candidates is not None:
        for i, site in enumerate(c.config.candidates.sites):
            if site.bus not in ids:
                raise c.error(f"bus {site.bus} is not on feeder {feeder.name}", "candidates", "sites", i, "bus")
            if prof is None or site.tech == "storage":
                continue
            if site.profile is not None:
                if why := fits(site.profile, site.tech):
                    raise c.error(why, "candidates", "sites", i, "profile")
            elif site.tech not in kind_of.values():
                raise c.error(f"no {site.tech} series in profiles.series for this candidate", "candidates", "sites", i,
                              "tech")
    for i, mg in enumerate(c.config.microgrids or []):
        if mg.bus not in ids:
            raise c.error(f"bus {mg.bus} is not on feeder {feeder.name}", "microgrids", i, "bus")
        if mg.bus == int(feeder.bus_ids[0]):
            raise c.error(f"bus {mg.bus} is the substation; a microgrid's PCC must be a feeder bus", "microgrids", i,
                          "bus")
        if prof is not None and (why := fits(mg.load_profile, "load")):
            raise c.error(why, "microgrids", i, "load_profile")
        for tech in ("pv", "wind"):
            if prof is not None and getattr(mg, f"{tech}_mw") > 0 and tech not in kind_of.values():
                raise c.error(f"the microgrid has {tech}_mw but profiles.series has no {tech} series", "microgrids", i,
                              f"{tech}_mw")


def check_generator_series(c: Case, feeder: Feeder, fits: Callable[[str, str], str | None], kinds: set[str]) -> None:
    """Every existing generator's ``profile`` is a series of its technology's kind (pv, wind; ``other`` → other);
    without one, the case has a series of that kind to follow. The message names the unit."""
    from adnstudy.data.mixes import KIND_OF_TECH

    g = feeder.generators
    net = c.config.network
    file = c.resolve(net.generators) if net.generators is not None else feeder.bus_file
    for gen, name, tech, profile in zip(g["gen"], g["name"], g["tech"], g["profile"], strict=True):
        kind = KIND_OF_TECH[tech]
        why = fits(profile, kind) if profile else (
            None if kind in kinds else f"no {kind} series in profiles.series for this {tech} unit (give it a profile)")
        if why:
            label = f"gen {gen}" if name == f"gen {gen}" else f"gen {gen} ({name})"
            raise CaseError(f"{label}: {why}", file=file, field="profile")


def check_price_series(c: Case) -> None:
    """Tariff series exist, are of kind price in USD/MWh, and every price series is used as a tariff.

    A price series is clustered with the others, so it shapes the typical days:
    one that no tariff uses would change the study silently.
    """
    prof, eco = c.config.profiles, c.config.economics
    if prof is None:
        return
    named = eco.price_series if eco is not None else {}
    for field_name, series in named.items():
        s = prof.series.get(series)
        if s is None:
            raise c.error(f"series '{series}' is not in profiles.series ({', '.join(prof.series)})", "economics",
                          field_name)
        if s.kind != "price":
            raise c.error(f"series '{series}' is a {s.kind} series; a tariff needs a series of kind price",
                          "economics", field_name)
        if s.normalisation != "none":
            raise c.error(f"series '{series}' is normalised ('{s.normalisation}'); a tariff needs its values in "
                          "USD/MWh: set normalise: none", "profiles", "series", series, "normalise")
    unused = [n for n, s in prof.series.items() if s.kind == "price" and n not in named.values()]
    if unused:
        raise c.error(
            f"price series '{unused[0]}' is clustered into the typical days but no tariff uses it: name it in "
            "economics.purchase_price_usd_per_mwh (or sell_price_usd_per_mwh), or remove it (or give it kind 'other' to "
            "cluster on it without using it as a price)", "profiles", "series", unused[0])


def check_prices(inputs: CaseInputs) -> None:
    """The feed-in price never exceeds the purchase price: else buying to resell pays without limit.

    With price series the check runs hour by hour over the profiles' year (the
    typical days are averages or members of the same days, so it holds for them).
    """
    case = inputs.case
    eco = case.config.economics
    assert eco is not None
    check_price_series(case)
    if eco.sell_price_usd_per_mwh is None:
        return

    def hourly(tariff: list[float] | str) -> tuple[np.ndarray, pd.DatetimeIndex | None]:
        if isinstance(tariff, str):
            return inputs.profiles[tariff].to_numpy(dtype=float), inputs.profiles.index
        return np.asarray(tariff, dtype=float), None

    buy, times_buy = hourly(eco.purchase_price_usd_per_mwh)
    sell, times_sell = hourly(eco.sell_price_usd_per_mwh)
    times = times_buy if times_buy is not None else times_sell
    if times is not None:  # a series against 24 values: repeat them over the year's hours
        hours = times.hour.to_numpy()
        buy = buy if times_buy is not None else buy[hours]
        sell = sell if times_sell is not None else sell[hours]
    over = np.flatnonzero(sell > buy)
    if len(over):
        h = int(over[0])
        when = f"at {times[h]}" if times is not None else f"at hour {h}"
        raise case.rule_error(
            f"the feed-in price exceeds the purchase price {when} ({sell[h]:g} > {buy[h]:g} USD/MWh): "
            "energy bought to be resold would pay without limit (an MG, or the substation in plan)",
            ("economics", "sell_price_usd_per_mwh"), ("economics", "purchase_price_usd_per_mwh"),
        )


def check_wholesale_price(case: Case) -> None:
    eco = case.config.economics
    assert eco is not None
    if eco.wholesale_price_usd_per_mwh is None:
        raise case.error("dispatch values the ADN's losses at this price; give it", "economics",
                         "wholesale_price_usd_per_mwh")


def check_outage_data(inputs: CaseInputs) -> None:
    """Every branch has a failure rate, repair ≥ switching time, switches sit on branches (reliability.data);
    and no bus is without supply for longer than a year's hours (which would give ASAI < 0)."""
    from adnstudy.reliability.data import HOURS_PER_YEAR, reliability_data
    from adnstudy.reliability.evaluate import evaluate

    fd = inputs.feeder
    rd = reliability_data(inputs.case, fd, np.zeros(fd.n_bus), np.empty(0, dtype=int), np.empty(0))
    unavailable = evaluate(rd).unavailability_h_per_yr
    worst = int(np.argmax(unavailable)) if len(unavailable) else 0
    if len(unavailable) and not unavailable[worst] <= HOURS_PER_YEAR:
        raise inputs.case.error(
            f"with these failure rates and repair times bus {fd.bus_ids[worst]} would be without supply "
            f"{unavailable[worst]:,.0f} h a year, more than the {HOURS_PER_YEAR:,.0f} hours a year has: check the "
            "failure rates (per year, or per km and year) and repair_h, here and in the branch table", "reliability")


def check_saifi_limit(inputs: CaseInputs) -> None:
    """A SAIFI limit the feeder cannot meet whatever the plan (island DG does not prevent interruptions)."""
    from adnstudy.reliability.data import reliability_data
    from adnstudy.reliability.evaluate import evaluate

    case = inputs.case
    limit = case.config.reliability.saifi_limit if case.config.reliability is not None else None
    if limit is None:
        return
    fd = inputs.feeder
    saifi = evaluate(reliability_data(case, fd, np.zeros(fd.n_bus), np.empty(0, dtype=int), np.empty(0))).saifi
    if saifi > limit:
        raise case.error(
            f"SAIFI is {saifi:.4g} interruptions per customer and year whatever the plan (island DG shortens "
            f"outages but does not prevent them), above the limit {limit:g}: add fuses or raise the limit",
            "reliability", "saifi_limit",
        )


#: How to install each CVXPY solver that can solve the plan's mixed-integer SOCP.
SOLVER_INSTALL = {
    "SCIP": "pip install 'adnstudy[bench]' (PySCIPOpt, free)",
    "GUROBI": "pip install gurobipy (and a Gurobi licence)",
    "MOSEK": "pip install Mosek (and a MOSEK licence)",
    "CPLEX": "pip install cplex (and a CPLEX licence)",
    "COPT": "pip install coptpy (and a COPT licence)",
    "XPRESS": "pip install xpress (and a FICO Xpress licence)",
    "KNITRO": "pip install knitro (and a Knitro licence)",
    "ECOS_BB": "pip install ecos",
}


def mixed_integer_socp_solvers() -> list[str]:
    """CVXPY's solvers that take integer variables together with second-order cones (installed or not)."""
    from cvxpy.constraints import SOC
    from cvxpy.reductions.solvers.defines import SOLVER_MAP_CONIC

    return [n for n, s in SOLVER_MAP_CONIC.items()
            if s.MIP_CAPABLE and SOC in getattr(s, "MI_SUPPORTED_CONSTRAINTS", s.SUPPORTED_CONSTRAINTS)]


def solver_problem(name: str) -> str | None:
    """Why the plan cannot solve with the CVXPY solver ``name`` (None if it can)."""
    import cvxpy as cp
    from cvxpy.reductions.solvers.defines import SOLVER_MAP_CONIC, SOLVER_MAP_QP

    up = name.upper()
    capable = mixed_integer_socp_solvers()
    choices = f"use 'default' (the project's strategy), 'branch_and_bound' or one of {', '.join(capable)}"
    if up not in SOLVER_MAP_CONIC and up not in SOLVER_MAP_QP:
        return f"'{name}' is not a CVXPY solver; {choices}"
    if up not in capable:
        return f"solver '{name}' cannot solve the plan's mixed-integer SOCP (integer variables with cones); {choices}"
    if up not in cp.installed_solvers():
        return f"solver '{name}' is not installed: {SOLVER_INSTALL.get(up, 'install its Python package')}; or use 'default'"
    return None


def check_time_limit(seconds: float | None, option: str = "--time-limit") -> None:
    """A time limit given on the command line is a number of seconds in the range of ``solver.time_limit_s``.

    (0 or a negative limit would stop before the first node, NaN compares false
    with everything and inf overflows the waits.)
    """
    from adnstudy.config.schema import SolverConfig, field_range

    rng = field_range(SolverConfig.model_fields["time_limit_s"])
    assert rng is not None
    if seconds is not None and not rng.contains(seconds):
        raise CaseError(f"must be a number of seconds {rng.text().removesuffix(' s')} (got {seconds:g})", field=option)


def check_solver(case: Case, name: str | None = None, field: str = "solver.name") -> None:
    """The mixed-integer solver named (by the case or ``--solver``) is installed and solves a MISOCP; its options fit.

    A solver that is not installed is named with the command that installs it.
    """
    name = name or case.config.solver.name
    if not own_strategy(name) and (why := solver_problem(name)) is not None:
        if field == "solver.name":
            raise case.error(why, "solver", "name")
        raise CaseError(why, file=case.path, field=field)
    check_solver_options(case, name)


#: Options of ECOS_BB (ECOS's keyword arguments; ``verbose`` is adnstudy's -v).
ECOS_BB_OPTIONS = ("feastol", "abstol", "reltol", "feastol_inacc", "abstol_inacc", "reltol_inacc", "max_iters",
                   "nitref", "mi_max_iters", "mi_int_tol", "mi_abs_eps", "mi_rel_eps", "mi_verbose")


def check_solver_options(case: Case, name: str | None = None) -> None:
    """``solver.options`` are settings of the solver they go to, each of a type it takes; an unknown one is an error.

    With the default strategy they go to Clarabel, with ``SCIP`` or ``ECOS_BB``
    to that solver: each option is tried on the solver itself (a Clarabel
    settings object, a SCIP model, a one-variable ECOS solve), so the names
    and types are the installed version's. Another named solver (GUROBI,
    MOSEK, ...) gets them as given: only it can judge them.
    """
    cfg = case.config.solver
    name = (name or cfg.name).upper()
    for key, value in cfg.options.items():
        if own_strategy(name):
            unknown, wrong = _clarabel_option(key, value)
            solver, noun, known = "Clarabel, the default strategy's solver", "setting", _clarabel_settings()
        elif name == "SCIP":
            unknown, wrong = _scip_option(key, value)
            solver, noun, known = "SCIP", "parameter", []
        elif name == "ECOS_BB":
            unknown, wrong = key not in ECOS_BB_OPTIONS, key in ECOS_BB_OPTIONS and _ecos_rejects(key, value)
            solver, noun, known = "ECOS_BB", "option", list(ECOS_BB_OPTIONS)
        else:
            return
        if unknown:
            article = "an" if noun[0] in "aeiou" else "a"
            raise case.error(f"not {article} {noun} of {solver}; {_options_hint(name, noun, key, known)}",
                             "solver", "options", key)
        if wrong:
            raise case.error(f"{solver.split(',')[0]}'s {key} cannot be {value!r}", "solver", "options", key)


def _clarabel_settings() -> list[str]:
    import clarabel

    settings = clarabel.DefaultSettings()
    return [a for a in dir(settings) if not a.startswith("_") and not callable(getattr(settings, a))]


def _clarabel_option(key: str, value: object) -> tuple[bool, bool]:
    """(unknown, wrong type) of a Clarabel setting."""
    import clarabel

    if key not in _clarabel_settings():
        return True, False
    try:
        setattr(clarabel.DefaultSettings(), key, value)
    except (AttributeError, TypeError, ValueError, OverflowError):
        return False, True
    return False, False


def _scip_option(key: str, value: object) -> tuple[bool, bool]:
    """(unknown, wrong type) of a SCIP parameter, asked of a SCIP model."""
    from pyscipopt import Model

    model = Model()
    model.hideOutput()
    if key not in model.getParams():
        return True, False
    try:
        model.setParam(key, value)
    except (KeyError, TypeError, ValueError, OverflowError):
        return False, True
    return False, False


def _ecos_rejects(key: str, value: object) -> bool:
    """Whether ECOS refuses this value of a known option (a one-variable solve: x >= 0, minimise x)."""
    import ecos
    import scipy.sparse as sp

    try:
        ecos.solve(np.ones(1), sp.csc_matrix(-np.ones((1, 1))), np.zeros(1), {"l": 1, "q": []}, verbose=False,
                   **{key: value})
    except (TypeError, ValueError, OverflowError):
        return True
    return False


def _options_hint(name: str, noun: str, key: str, known: list[str]) -> str:
    """The options closest to ``key``, and the solver's options (SCIP's thousands: how they are named)."""
    import difflib

    if name == "SCIP":
        from pyscipopt import Model

        known = sorted(Model().getParams())
    close = difflib.get_close_matches(key, known, n=5 if name == "SCIP" else 3, cutoff=0.6)
    guess = f"did you mean {', '.join(close)}? " if close else ""
    if name == "SCIP":
        return f"{guess}SCIP has {len(known):,} parameters, named like limits/time or limits/gap"
    return f"{guess}its {noun}s: {', '.join(known)}"


def check_peak_load(inputs: CaseInputs) -> None:
    """The bare feeder carries its own peak load: its AC power flow converges (else the loads are likely kW)."""
    from adnstudy.network.powerflow import run_powerflow

    fd, net = inputs.feeder, inputs.case.config.network
    try:
        run_powerflow(fd, fd.buses["p_mw"].to_numpy(), fd.buses["q_mvar"].to_numpy(), v0_pu=net.v_substation_pu)
    except SolveError:
        raise peak_load_error(inputs.case, fd) from None


def peak_load_error(case: Case, fd: Feeder) -> CaseError:
    """The feeder's peak load is beyond what it can carry: name network.load_scale if it scales the loads, else
    the bus table and the likely unit mistake (kW given as MW)."""
    total = float(fd.buses["p_mw"].sum())
    scale = case.config.network.load_scale
    what = (f"the feeder cannot carry its peak load of {total:,.4g} MW ({total / fd.base_mva:,.3g} times the "
            f"{fd.base_mva:g} MVA base at {fd.voltage_text}): its AC power flow does not converge")
    if scale != 1.0:
        return case.error(f"{what}; load_scale {scale:g} multiplies the loads of {fd.bus_file}: lower it",
                          "network", "load_scale")
    return CaseError(f"{what}. p_mw and q_mvar are in MW and Mvar: if the loads are in kW, divide them by 1000",
                     file=fd.bus_file, field="p_mw")


def _series_of(case: Case, kind: str, name: str | None = None) -> str | None:
    """The named series, or the case's first series of ``kind`` (as the models choose it); None if none."""
    prof = case.config.profiles
    assert prof is not None
    return name or next((n for n, s in prof.series.items() if s.kind == kind), None)


def _microgrid_hours(inputs: CaseInputs) -> tuple[np.ndarray, np.ndarray]:
    """Per MG and hour of the profiles: load, and the most its PV, wind, unit and storage can give (MW)."""
    case, prof = inputs.case, inputs.profiles
    load, supply = [], []
    for mg in case.config.microgrids or []:
        load.append(mg.load_peak_mw * prof[mg.load_profile].to_numpy())
        most = np.full(len(prof), (mg.generator.p_max_mw if mg.generator else 0.0)
                       + (mg.storage.power_mw if mg.storage else 0.0))
        for tech in ("pv", "wind"):
            capacity = getattr(mg, f"{tech}_mw")
            if capacity > 0:
                most = most + capacity * prof[_series_of(case, tech)].to_numpy()
        supply.append(most)
    return np.array(load).reshape(-1, len(prof)), np.array(supply).reshape(-1, len(prof))


def check_microgrid_supply(inputs: CaseInputs) -> None:
    """Every MG covers its own load at every hour of the profiles with its PCC import and its own supply.

    Its PV and wind (availability × capacity), unit at p_max and storage at full
    discharge power are the most it can give; if load − that exceeds the PCC
    limit in some hour, no dispatch exists.
    """
    case = inputs.case
    load, supply = _microgrid_hours(inputs)
    limits = np.array([mg.pcc_limit_mw for mg in case.config.microgrids or []])
    short = load - supply - limits[:, None]
    if not short.size or short.max() <= 1e-9:
        return
    i, h = np.unravel_index(int(np.argmax(short)), short.shape)
    mg = (case.config.microgrids or [])[i]
    raise case.error(
        f"microgrid {mg.name} cannot cover its own load at {inputs.profiles.index[h]:%Y-%m-%d %H:%M}: load "
        f"{load[i, h]:.3f} MW against at most {supply[i, h]:.3f} MW of its own (unit, storage, PV/wind) and "
        f"{mg.pcc_limit_mw:g} MW over its PCC, short by {short[i, h]:.3f} MW; raise pcc_limit_mw or its generation",
        "microgrids", int(i), "pcc_limit_mw",
    )


def check_branch_ratings(inputs: CaseInputs) -> None:
    """No branch must carry, in some hour of the profiles, more than its rating can at the highest voltage.

    A necessary condition of feasibility, so a case it rejects has no dispatch
    and no plan. In DistFlow a branch's sending-end power is the net demand
    beyond it plus the losses there (≥ 0), so at least the load beyond it minus
    the most every MG, candidate and existing unit beyond it could supply in that
    hour (an MG within its PCC limit, a candidate at its maximum capacity ×
    availability, storage at full power, an existing unit at its available power:
    curtailable or not, it can give no more). Its apparent power is at most v_max · I_max
    (v_max: the highest voltage any bus may have). See docs/case.md.
    """
    case, fd = inputs.case, inputs.feeder
    net = case.config.network
    i_max = fd.branches["rating_a"].to_numpy(dtype=float) / 1000.0 / fd.i_base_ka
    if case.config.profiles is None or not np.isfinite(i_max).any():
        return
    prof = inputs.profiles
    demand = fd.buses["p_mw"].to_numpy()[:, None] * inputs.bus_load_multipliers  # bus × hour, MW
    load, supply = _microgrid_hours(inputs)
    for mg, ld, most in zip(case.config.microgrids or [], load, supply, strict=True):
        demand[fd.position(mg.bus)] += np.clip(ld - most, -mg.pcc_limit_mw, mg.pcc_limit_mw)  # its least import
    cand = case.config.candidates
    for site in cand.sites if cand is not None else []:
        avail = 1.0 if site.tech == "storage" else prof[_series_of(case, site.tech, site.profile)].to_numpy()
        demand[fd.position(site.bus)] -= site.max_mw * avail
    if not fd.generators.empty:
        g = fd.generators
        np.add.at(demand, np.array([fd.position(b) for b in g["bus"]]),
                  -inputs.generator_availability * g["p_mw"].to_numpy(dtype=float)[:, None])
    beyond = fd.path @ demand  # branch × hour, MW: the least power entering each branch
    v_max = max(net.v_max_pu, net.v_substation_pu, *(net.v_substation_range_pu or ()))
    s_max = v_max * i_max * fd.base_mva  # MVA
    over = np.where(np.isfinite(s_max)[:, None], beyond - s_max[:, None], -np.inf)
    if over.max() <= 1e-9 * max(1.0, float(np.nanmax(s_max))):
        return
    k, h = np.unravel_index(int(np.argmax(over / np.where(np.isfinite(s_max), s_max, 1.0)[:, None])), over.shape)
    suppliers = " and candidates" if fd.generators.empty else ", candidates and existing units"
    frm, to = fd.branches["from_bus"].iloc[k], fd.branches["to_bus"].iloc[k]
    message = (
        f"branch {frm}-{to} must carry at least {beyond[k, h]:.3f} MW at {prof.index[h]:%Y-%m-%d %H:%M} (the load "
        f"beyond it less the most its MGs{suppliers} there could supply), above its rating of "
        f"{fd.branches['rating_a'].iloc[k]:.0f} A ({s_max[k]:.3f} MVA at {v_max:g} pu): no dispatch or plan can "
        "keep within it; raise the rating or the supply beyond the branch"
    )
    if net.branch_rating_factor is not None:
        raise case.error(message, "network", "branch_rating_factor")
    raise CaseError(message, file=fd.branch_file, field="rating_a")


def check_coplan_investors(inputs: CaseInputs) -> None:
    """Co-planning has something to decide: candidates for at least one investor (the ADN's ``candidates.sites``
    or some MG's ``candidates``); and each MG candidate of PV or wind has an availability series of its kind.

    (That the case has microgrids at all is a rule of the schema: ``coplan`` without ``microgrids`` does not
    load. An MG candidate's bus is the MG's PCC, also checked on load.)
    """
    case = inputs.case
    cfg = case.config
    mgs = cfg.microgrids or []
    adn_sites = len(cfg.candidates.sites) if cfg.candidates is not None else 0
    if adn_sites == 0 and not any(mg.candidates for mg in mgs):
        raise case.error(
            "co-planning needs candidates for at least one investor: give the ADN candidate sites "
            "(candidates.sites) or a microgrid a 'candidates' list (microgrids[].candidates); "
            "with none there is nothing to plan", "coplan")
    prof = cfg.profiles
    if prof is None:
        return
    kind_of = {n: s.kind for n, s in prof.series.items()}
    for i, mg in enumerate(mgs):
        for j, cand in enumerate(mg.candidates):
            if cand.tech not in ("pv", "wind"):
                continue
            if cand.profile is not None:
                if cand.profile not in kind_of:
                    raise case.error(f"profile '{cand.profile}' is not in profiles.series ({', '.join(kind_of)})",
                                     "microgrids", i, "candidates", j, "profile")
                if kind_of[cand.profile] != cand.tech:
                    raise case.error(f"profile '{cand.profile}' is a {kind_of[cand.profile]} series, not {cand.tech}",
                                     "microgrids", i, "candidates", j, "profile")
            elif cand.tech not in kind_of.values():
                raise case.error(f"no {cand.tech} series in profiles.series for this candidate",
                                 "microgrids", i, "candidates", j, "tech")


# ------------------------------------------------------------------------- per stage
@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[CaseInputs], object]
    applies: Callable[[Case], bool] = lambda case: True

    def __call__(self, inputs: CaseInputs) -> None:
        if self.applies(inputs.case):
            self.run(inputs)


FEEDER = Check("feeder", lambda i: i.feeder)
PROFILES = Check("profiles", lambda i: i.bus_load_multipliers)
CLUSTER_DAYS = Check("clustering days", lambda i: i.days)
PRICES = Check("prices", check_prices)
WHOLESALE_PRICE = Check("wholesale price", lambda i: check_wholesale_price(i.case))
OUTAGE_DATA = Check("outage data", check_outage_data, lambda case: case.config.reliability is not None)
SAIFI_LIMIT = Check("SAIFI limit", check_saifi_limit, lambda case: case.config.reliability is not None)
SOLVER = Check("solver", lambda i: check_solver(i.case))
PEAK_LOAD = Check("peak load", check_peak_load)
MICROGRID_SUPPLY = Check("microgrid supply", check_microgrid_supply, lambda case: bool(case.config.microgrids))
BRANCH_RATINGS = Check("branch ratings", check_branch_ratings, lambda case: case.config.profiles is not None)
#: the market solves only with Clarabel: the solver's name does not concern it, the options may
SOLVER_OPTIONS = Check("solver options", lambda i: check_solver_options(i.case, "default"),
                       lambda case: own_strategy(case.config.solver.name))
#: co-planning: candidates for some investor, and MG candidates' series (not registered by a stage yet: coplan's)
COPLAN_INVESTORS = Check("coplan investors", check_coplan_investors, lambda case: case.config.coplan is not None)
