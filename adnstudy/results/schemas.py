"""What a stage relies on in the tables of earlier stages it reads back: columns, types, ranges, no NaN.

:func:`check_tables` runs on every table ``read_inputs`` loads, after the
provenance check and whether or not ``--force-inputs`` was given: a table that
fails is an input error (exit 2) naming the file, column, row and value and
the stage that writes it, instead of a model built on nonsense (a corrupted
``cluster/typical`` with a load of −22 pu ends in a misleading "infeasible",
``weights.days = 0`` in a market cost of 0).

Declared here, per table, what its readers use (``data/typical.py``,
``problems/plan.py``, ``problems/dispatch.py``, ``stages/reliability.py``):

* ``cluster/typical``: ``scenario``, ``hour`` (0–23), ``series``, ``value``;
  every series of the case for all 24 hours of every scenario of
  ``cluster/weights``, once; values finite and within the range of their
  series' kind (:data:`SERIES_RANGE`);
* ``cluster/weights``: ``scenario`` (unique, the same as ``typical``'s),
  ``days`` > 0 (whole days, summing to the days the cluster stage clustered),
  ``weight_days`` > 0, summing to 365 and proportional to ``days``;
* ``plan/investment``: one row per candidate of the case, in order (its bus
  and technology, so every bus is on the feeder), ``build`` true/false,
  ``capacity_mw`` finite, ≥ 0 and at most the candidate's ``max_mw``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adnstudy.config.load import Case
from adnstudy.data.typical import HOURS, YEAR_DAYS
from adnstudy.errors import BadInputTableError
from adnstudy.results.provenance import rerun_command

#: Plausible per-unit values of a typical day's series, by kind (and normalisation): loads are multipliers
#: of each bus's peak load, PV and wind availabilities per unit of rating, prices in USD/MWh.
SERIES_RANGE: dict[str, tuple[float, float]] = {
    "load/peak": (0.0, 1.05),
    "load/none": (0.0, 100.0),
    "pv": (0.0, 1.05),
    "wind": (0.0, 1.05),
    "price": (-1e5, 1e5),
}
#: Columns that say which row a message is about.
ROW_KEYS = ("scenario", "hour", "series", "site", "bus", "tech")


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "int" (whole numbers), "number", "bool", "text"
    low: float | None = None
    high: float | None = None
    above_low: bool = False  # strictly greater than low
    required: bool = True


TABLES: dict[tuple[str, str], tuple[Column, ...]] = {
    ("cluster", "typical"): (
        Column("scenario", "int", 0), Column("hour", "int", 0, HOURS - 1), Column("series", "text"),
        Column("value", "number"),
    ),
    ("cluster", "weights"): (
        Column("scenario", "int", 0), Column("days", "int", 0, above_low=True),
        Column("weight_days", "number", 0, YEAR_DAYS, above_low=True, required=False),
    ),
    ("plan", "investment"): (
        Column("site", "int", 0), Column("bus", "int"), Column("tech", "text"), Column("build", "bool"),
        Column("capacity_mw", "number", 0),
    ),
}


class _Table:
    """One table read back, for messages that name its file, row and writer."""

    def __init__(self, case: Case, path: Path, stage: str, df: pd.DataFrame):
        self.case, self.path, self.stage, self.df = case, path, stage, df

    def fail(self, what: str, row: int | None = None) -> BadInputTableError:
        where = ""
        if row is not None:
            keys = [f"{k} {self.df[k].iloc[row]!r}" if k in ("series", "tech") else f"{k} {self.df[k].iloc[row]}"
                    for k in ROW_KEYS if k in self.df.columns]
            where = f"row {row}" + (f" ({', '.join(keys)})" if keys else "") + ": "
        command = rerun_command(self.case, self.path.parents[1], self.stage)
        return BadInputTableError(f"{self.path}: {where}{what}; the table is written by '{self.stage}', "
                                  f"re-run {command}")

    def column(self, col: Column) -> None:
        df = self.df
        if col.name not in df.columns:
            if col.required:
                raise self.fail(f"no column '{col.name}' (columns: {', '.join(map(str, df.columns))})")
            return
        s = df[col.name]
        if col.kind == "text":
            bad = ~s.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
            if bad.any():
                i = int(np.argmax(bad))
                raise self.fail(f"column '{col.name}' holds {s.iloc[i]!r}, not text", i)
            return
        if col.kind == "bool":
            if not pd.api.types.is_bool_dtype(s):
                raise self.fail(f"column '{col.name}' is not true/false (type {s.dtype})")
            return
        if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
            raise self.fail(f"column '{col.name}' is not numeric (type {s.dtype})")
        v = s.to_numpy(dtype=float)
        checks = [(~np.isfinite(v), "is not a finite number")]
        if col.kind == "int":
            checks.append((np.isfinite(v) & (v != np.round(v)), "is not a whole number"))
        if col.low is not None:
            checks.append(((v <= col.low) if col.above_low else (v < col.low),
                           f"is {'not above' if col.above_low else 'below'} {col.low:g}"))
        if col.high is not None:
            checks.append((v > col.high, f"is above {col.high:g}"))
        for bad, what in checks:
            if bad.any():
                i = int(np.argmax(bad))
                raise self.fail(f"column '{col.name}' is {v[i]:.6g}, which {what}", i)


def check_tables(case: Case, tables: Mapping[tuple[str, str], pd.DataFrame], paths: Mapping[tuple[str, str], Path],
                 manifests: Mapping[tuple[Path, str], dict[str, Any] | None]) -> None:
    """Raise :class:`BadInputTableError` at the first thing a reader relies on that a table lacks (module docstring)."""
    checked = {key: _Table(case, paths[key], key[0], df) for key, df in tables.items()}
    for key, table in checked.items():
        for col in TABLES.get(key, ()):
            table.column(col)
    if ("cluster", "weights") in checked:
        weights = checked["cluster", "weights"]
        manifest = manifests.get((weights.path.parents[1], "cluster"))
        _check_weights(weights, (manifest or {}).get("summary", {}).get("days"))
        if ("cluster", "typical") in checked:
            _check_typical(case, checked["cluster", "typical"], weights.df["scenario"].to_numpy())
    if ("plan", "investment") in checked:
        _check_investment(case, checked["plan", "investment"])


def _check_weights(t: _Table, days_clustered: Any) -> None:
    df = t.df
    dup = df["scenario"].duplicated().to_numpy()
    if dup.any():
        raise t.fail("scenario appears twice", int(np.argmax(dup)))
    days = df["days"].to_numpy(dtype=float)
    if isinstance(days_clustered, int | float) and days.sum() != days_clustered:
        raise t.fail(f"the days sum to {days.sum():g}, but '{t.stage}' clustered {days_clustered:g} days "
                     "(its manifest's summary.days)")
    if "weight_days" in df.columns:
        wd = df["weight_days"].to_numpy(dtype=float)
        if not np.isclose(wd.sum(), YEAR_DAYS, rtol=1e-6):
            raise t.fail(f"weight_days sum to {wd.sum():.6g}, not {YEAR_DAYS}")
        expected = days / days.sum() * YEAR_DAYS
        off = ~np.isclose(wd, expected, rtol=1e-6)
        if off.any():
            i = int(np.argmax(off))
            raise t.fail(f"weight_days is {wd[i]:.6g}, but its days ({days[i]:g} of {days.sum():g}) give "
                         f"{expected[i]:.6g}", i)


def _check_typical(case: Case, t: _Table, scenarios: np.ndarray) -> None:
    df = t.df
    cfg = case.config.profiles
    series_cfg = cfg.series if cfg is not None else {}
    dup = df.duplicated(["scenario", "hour", "series"]).to_numpy()
    if dup.any():
        raise t.fail("the same scenario, hour and series appear twice", int(np.argmax(dup)))
    extra = sorted(set(df["scenario"].astype(int)) - set(scenarios.astype(int)))
    if extra:
        raise t.fail(f"scenario {extra[0]} is not in cluster/weights (its scenarios: "
                     f"{', '.join(map(str, sorted(scenarios.astype(int))))})", int(np.argmax(df["scenario"] == extra[0])))
    have = df[df["series"].isin(list(series_cfg))]
    counts = have.groupby(["scenario", "series"]).size()
    for s in scenarios:
        for name in series_cfg:
            if counts.get((s, name), 0) != HOURS:
                raise t.fail(f"scenario {int(s)} has {counts.get((s, name), 0)} of the {HOURS} hours of series "
                             f"'{name}' (cluster/weights lists it, the case has the series)")
    value = df["value"].to_numpy(dtype=float)
    for name, s in series_cfg.items():
        limits = SERIES_RANGE.get(f"{s.kind}/{s.normalisation}" if s.kind == "load" else s.kind)
        if limits is None:
            continue
        rows = (df["series"] == name).to_numpy()
        bad = rows & ((value < limits[0]) | (value > limits[1]))
        if bad.any():
            i = int(np.argmax(bad))
            unit = ("per unit of the bus's peak load" if s.kind == "load" else "USD/MWh" if s.kind == "price"
                    else "per unit of rating")
            raise t.fail(f"column 'value' is {value[i]:.6g}, outside {limits[0]:g} to {limits[1]:g} for a {s.kind} "
                         f"series ({unit})", i)


def _check_investment(case: Case, t: _Table) -> None:
    df = t.df
    cand = case.config.candidates
    sites = cand.sites if cand is not None else []
    if len(df) != len(sites):
        raise t.fail(f"{len(df)} candidate sites, this case has {len(sites)} (candidates.sites)")
    for i, site in enumerate(sites):
        if int(df["bus"].iloc[i]) != site.bus or df["tech"].iloc[i] != site.tech:
            raise t.fail(f"this case's candidate {i} is {site.tech} at bus {site.bus} (candidates.sites)", i)
        cap = float(df["capacity_mw"].iloc[i])
        if cap > site.max_mw * (1 + 1e-6) + 1e-9:
            raise t.fail(f"column 'capacity_mw' is {cap:.6g}, above the candidate's max_mw {site.max_mw:g}", i)
