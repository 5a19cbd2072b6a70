"""Annual load/PV/wind series: SimBench's shipped profiles (offline) or user CSV files.

Every series is resampled to hourly means and made per unit: ``peak``
normalisation divides by the series maximum (loads: bus peak loads then scale
it), ``none`` keeps values that are already per unit of rating (SimBench PV and
wind profiles are per unit of installed capacity).

Times in CSV files are read with the file's ``time_format`` or ``dayfirst``
setting. Times with a UTC offset (``2016-03-27T03:00:00+02:00``) are converted
to one fixed offset, the smallest the case's files use — standard time where
they follow daylight saving time, so every day has 24 hours — and then used
without it (the typical days' hours 0-23 are hours of that clock).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from datetime import timedelta, timezone
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pandas as pd

from adnstudy.config.load import Case
from adnstudy.config.schema import ProfilesConfig
from adnstudy.data import csvfile
from adnstudy.data.mixes import bus_load_mix, generator_availability
from adnstudy.errors import CaseError
from adnstudy.network.feeder import Feeder

#: SimBench profile tables searched, in order, for a series' column.
SIMBENCH_TABLES = ("LoadProfile", "RESProfile", "PowerPlantProfile", "StorageProfile")
SIMBENCH_TIME_FORMAT = "%d.%m.%Y %H:%M"
#: PV/wind values down to this (per unit of rating) are standby consumption, clipped to zero.
NEGATIVE_TOLERANCE = 1e-3
#: Largest magnitude of a value in a profile file (any unit: W, kW, MW, per unit, USD/MWh): beyond it, nonsense.
RAW_LIMIT = 1e12
#: Largest value of a load series with normalise: none (per unit of the bus's peak load).
LOAD_PU_LIMIT = 10.0
#: Largest magnitude of a price series (USD/MWh), as for the case's prices (schema.Price).
PRICE_LIMIT = 100_000.0
#: A series whose largest magnitude is below this is too small to normalise to its peak (nonsense ratios).
PEAK_MIN = 1e-9
#: A UTC offset at the end of a time (after hh:mm[:ss[.f]]): Z, +hh, +hhmm or +hh:mm.
UTC_OFFSET = r"\d:\d\d(?:[.,]\d+)?\s*(?P<offset>Z|(?P<sign>[+-])(?P<h>\d\d):?(?P<m>\d\d)?)$"
#: Dates that begin with the year are year-month-day (ISO 8601), whatever ``dayfirst`` says.
YEAR_FIRST = r"^\s*\d{4}\D"
#: the attribute of the profiles frame that holds the UTC offset times were converted to, if any
OFFSET_ATTR = "utc_offset"


def simbench_dir(code: str) -> Path:
    """Folder of a SimBench data set shipped inside the ``simbench`` package.

    Found without importing simbench (which imports pandapower: seconds, and log
    lines about optional plotting packages).
    """
    spec = find_spec("simbench")
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover - simbench is a dependency
        raise CaseError("the 'simbench' package is not installed", field="profiles.source")
    return Path(list(spec.submodule_search_locations)[0]) / "networks" / code


@dataclass(frozen=True)
class _TimedFile:
    """A CSV file's columns (indexed by file line) and its times: naive, or UTC with the file's least offset."""

    path: Path
    raw: pd.DataFrame
    column: str  # of the times
    times: pd.DatetimeIndex
    min_offset_min: int | None  # None: the times had no UTC offset


def load_profiles(case: Case) -> pd.DataFrame:
    """Hourly per-unit series of the case (DatetimeIndex × series name)."""
    cfg: ProfilesConfig | None = case.config.profiles
    if cfg is None:
        raise case.error("this command needs a 'profiles' section", "profiles")
    # group series by the file they come from, so each file is read once
    wanted: dict[Path, list[tuple[str, str]]] = {}
    time_of: dict[Path, tuple[str | None, bool]] = {}
    if cfg.source == "simbench":
        folder = simbench_dir(cfg.simbench_code)
        if not folder.is_dir():
            raise case.error(f"SimBench data set '{cfg.simbench_code}' is not shipped with the simbench package", "profiles", "simbench_code")
        headers = {t: csvfile.header(folder / f"{t}.csv") for t in SIMBENCH_TABLES if (folder / f"{t}.csv").is_file()}
        for name, s in cfg.series.items():
            table = next((t for t, cols in headers.items() if s.column in cols), None)
            if table is None:
                raise case.error(
                    f"column '{s.column}' is in none of the SimBench profile tables of {cfg.simbench_code}",
                    "profiles", "series", name, "column",
                )
            wanted.setdefault(folder / f"{table}.csv", []).append((name, s.column))
        files = [_simbench_file(path, items) for path, items in wanted.items()]
    else:
        for name, s in cfg.series.items():
            rel = s.file or cfg.file
            assert rel is not None
            path = case.resolve(rel)
            field = ("profiles", "series", name, "file") if s.file else ("profiles", "file")
            why = csvfile.problem(path, "profile file")
            if why is not None:
                raise case.error(why, *field)
            cols = csvfile.header(path)
            if cfg.time_column not in cols:
                raise case.error(f"{path.name} has no time column '{cfg.time_column}'", "profiles", "time_column")
            if s.column not in cols:
                raise case.error(f"{path.name} has no column '{s.column}'", "profiles", "series", name, "column")
            options = cfg.time_options(name)
            if time_of.setdefault(path, options) != options:
                other = wanted[path][0][0]
                raise case.error(
                    f"{path.name} is also read by series '{other}' with other time settings; "
                    "one file has one time format", "profiles", "series", name,
                )
            wanted.setdefault(path, []).append((name, s.column))
        files = [_csv_file(path, items, cfg.time_column, *time_of[path]) for path, items in wanted.items()]

    offsets = [f.min_offset_min for f in files if f.min_offset_min is not None]
    zone = timezone(timedelta(minutes=min(offsets))) if offsets else None
    frames = []
    for f in files:
        index = f.times.tz_convert(zone).tz_localize(None) if f.min_offset_min is not None else f.times
        _check_unique(f, index)
        for name, col in wanted[f.path]:
            values = _values(f, name, col)
            frames.append(pd.Series(values.to_numpy(), index=index, name=name))
    data = pd.concat(frames, axis=1)
    out = _to_hourly_pu(data, cfg, case)
    if zone is not None:
        out.attrs[OFFSET_ATTR] = zone.tzname(None)
    return out


def _values(f: _TimedFile, name: str, col: str) -> pd.Series:
    """A column's numbers, each finite and of a plausible size; the first that is not is named by its line.

    Checked before resampling: an hourly mean would silently skip a gap in finer data (and turn inf into NaN).
    """
    cells = f.raw[col]
    values = pd.to_numeric(cells, errors="coerce") if cells.dtype != bool else pd.Series(np.nan, index=cells.index)
    number = values.to_numpy(dtype=float)
    bad = ~np.isfinite(number) | (np.abs(np.nan_to_num(number)) > RAW_LIMIT)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        if pd.isna(cells.iloc[i]):
            what = "value is missing"
        elif np.isnan(number[i]):
            what = f"{str(cells.iloc[i])!r} is not a number"
        elif np.isinf(number[i]):
            what = f"{str(cells.iloc[i])!r} is not a finite number"
        else:
            what = f"{number[i]:g} is beyond {RAW_LIMIT:g} in magnitude (no profile value is this large in any unit)"
        raise CaseError(f"row {i + 1}: {what} (series '{name}')", file=f.path, field=col, line=int(f.raw.index[i]))
    return values


def _simbench_file(path: Path, items: list[tuple[str, str]]) -> _TimedFile:
    """A SimBench profile table: the columns asked for, on a regular 15-minute index."""
    need = {"time", *(c for _, c in items)}
    with csvfile.open_file(path) as fh:
        raw = pd.read_csv(fh, sep=";", usecols=lambda c: str(c).strip() in need)
    raw.columns = [str(c).strip() for c in raw.columns]
    raw.index = csvfile.lines_of(raw)
    # SimBench stamps rows in local time (an hour repeats when daylight saving ends)
    # but the rows are a regular 15-minute series: rebuild the index from the first stamp.
    start = pd.to_datetime(raw["time"].iloc[0], format=SIMBENCH_TIME_FORMAT)
    return _TimedFile(path, raw, "time", pd.date_range(start, periods=len(raw), freq="15min"), None)


def _csv_file(path: Path, items: list[tuple[str, str]], tcol: str, time_format: str | None,
              dayfirst: bool) -> _TimedFile:
    """A user's profile CSV: the columns asked for and its times (see :func:`parse_times`)."""
    need = {tcol, *(c for _, c in items)}
    raw = csvfile.read_table(path, usecols=lambda c: c in need)
    times, offset = parse_times(raw[tcol], path, tcol, time_format, dayfirst)
    return _TimedFile(path, raw, tcol, times, offset)


def parse_times(cells: pd.Series, path: Path, column: str, time_format: str | None = None,
                dayfirst: bool = False) -> tuple[pd.DatetimeIndex, int | None]:
    """The times of a CSV's time column (``cells`` indexed by file line).

    Returns naive times, or — when every time carries a UTC offset — the UTC
    instants with the smallest offset of the file (minutes). A time that cannot
    be read, or offsets on some rows only, is an error naming the line.
    """
    text = cells.astype("string").str.strip()
    found = text.str.extract(UTC_OFFSET)
    aware = found["offset"].notna().to_numpy()
    present = (text.notna() & (text != "")).to_numpy()
    if aware.any() and not aware[present].all():
        i = int(np.flatnonzero(present & ~aware)[0])
        j = int(np.flatnonzero(aware)[0])
        raise CaseError(
            f"row {i + 1}: {cells.iloc[i]!r} has no UTC offset but line {cells.index[j]} has one "
            f"({cells.iloc[j]!r}); give every time with its offset, or none", file=path, field=column,
            line=int(cells.index[i]),
        )
    first = text[present].iloc[0] if present.any() else ""
    kwargs: dict[str, object] = (
        {"format": time_format} if time_format else {"dayfirst": dayfirst and not _year_first(first)}
    )
    # a %z the offset pattern does not see (not at the end): instants, read in UTC
    utc = bool(aware.any()) or "%z" in (time_format or "")
    with warnings.catch_warnings():  # pandas warns when it falls back to parsing row by row
        warnings.simplefilter("ignore", UserWarning)
        try:
            times = pd.to_datetime(text, errors="coerce", utc=utc, **kwargs)
        except (ValueError, TypeError, OverflowError) as exc:
            reason = (str(exc).splitlines() or [type(exc).__name__])[0]  # pandas adds lines of advice
            raise CaseError(f"cannot read the times ({reason})", file=path, field=column) from None
    bad = times.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        cell = cells.iloc[i]
        if not present[i]:
            what = "time is missing"
        elif time_format:
            what = f"{cell!r} does not match time_format {time_format!r}"
        else:
            what = f"{cell!r} is not a time in the format of the first row ({first!r})"
            if not dayfirst and _reads_dayfirst(text[present]):
                what += "; the dates are day first: set dayfirst: true"
        raise CaseError(f"row {i + 1}: {what}", file=path, field=column, line=int(cells.index[i]))
    index = pd.DatetimeIndex(times)
    if not utc:
        return index, None
    if not aware.any():
        return index, 0
    sign = found["sign"].map({"+": 1, "-": -1}).fillna(0).to_numpy()
    minutes = found["h"].astype(float).fillna(0).to_numpy() * 60 + found["m"].astype(float).fillna(0).to_numpy()
    return index, int((sign * minutes).min())


def _year_first(text: str) -> bool:
    return re.match(YEAR_FIRST, text) is not None


def _reads_dayfirst(text: pd.Series) -> bool:
    """Would every time read with day-first dates? (For the hint of an error.)"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            return bool(pd.to_datetime(text, errors="coerce", dayfirst=True).notna().all())
        except (ValueError, TypeError, OverflowError):
            return False


def _check_unique(f: _TimedFile, index: pd.DatetimeIndex) -> None:
    """No time twice in one file (naive local time repeats an hour when daylight saving ends)."""
    repeated = index.duplicated()
    if not repeated.any():
        return
    i = int(np.flatnonzero(repeated)[0])
    j = int(np.flatnonzero(index == index[i])[0])
    cells = f.raw[f.column]
    hint = "" if f.min_offset_min is not None else (
        " (local time with daylight saving? give each time its UTC offset, e.g. "
        "2016-10-30T02:00+01:00, or use standard time or UTC)"
    )
    raise CaseError(
        f"row {i + 1}: {cells.iloc[i]!r} is the same time as line {f.raw.index[j]} ({cells.iloc[j]!r}){hint}",
        file=f.path, field=f.column, line=int(f.raw.index[i]),
    )


def _to_hourly_pu(data: pd.DataFrame, cfg: ProfilesConfig, case: Case) -> pd.DataFrame:
    data = data.sort_index()
    step = pd.Series(data.index).diff().dropna()
    if len(step) == 0:
        raise case.error("a profile needs more than one time step", "profiles")
    if step.min() > pd.Timedelta(hours=1):
        raise case.error(f"profiles must be hourly or finer; the step is {step.min()}", "profiles", "time_column")
    hourly = data.resample("1h").mean()
    out = {}
    for name, s in cfg.series.items():
        col = hourly[name]
        if col.isna().any():
            first = col.index[col.isna()][0]
            raise case.error(
                f"series has no data for the hour from {first} (rows missing from the time column?)",
                "profiles", "series", name, "column",
            )
        if s.kind in ("pv", "wind"):
            # standby consumption shows as tiny negatives (SimBench wind: -1e-5); availability is >= 0
            if (col < -NEGATIVE_TOLERANCE).any():
                raise case.error(
                    f"a {s.kind} series must not be negative (min {col.min():.3g})", "profiles", "series", name, "column"
                )
            col = col.clip(lower=0.0)
        elif s.kind == "load" and (col < 0).any():
            raise case.error(f"a load series must not be negative (min {col.min():.3g})", "profiles", "series", name, "column")
        if s.normalisation == "peak":
            peak = float(np.max(np.abs(col.to_numpy())))
            if peak <= 0:
                raise case.error("series is zero everywhere and cannot be normalised to its peak", "profiles", "series", name)
            if peak < PEAK_MIN:
                raise case.error(f"series peaks at {peak:.3g}, too small to normalise to its peak (at least {PEAK_MIN:g})",
                                 "profiles", "series", name)
            col = col / peak
        elif s.kind == "load" and col.max() > LOAD_PU_LIMIT:
            raise case.error(
                f"a load series with normalise: none is per unit of the buses' peak loads (max {col.max():.3g} > "
                f"{LOAD_PU_LIMIT:g}); use normalise: peak", "profiles", "series", name, "normalise",
            )
        elif s.kind == "price" and col.abs().max() > PRICE_LIMIT:
            raise case.error(f"a price series is in USD/MWh, at most {PRICE_LIMIT:,.0f} in magnitude (max "
                             f"{col.abs().max():.3g})", "profiles", "series", name, "column")
        elif s.kind in ("pv", "wind") and col.max() > 1.0 + 1e-6:
            raise case.error(
                f"a {s.kind} series with normalise: none must be per unit of rating (max {col.max():.3g} > 1); "
                "use normalise: peak",
                "profiles", "series", name, "normalise",
            )
        out[name] = col
    frame = pd.DataFrame(out)
    frame.index.name = "time"
    return frame


def bus_load_profiles(case: Case, feeder: Feeder, profiles: pd.DataFrame) -> np.ndarray:
    """Per-unit load multiplier per bus and hour (bus × hour).

    A bus follows the series named in its ``load_profile`` column, or the case's
    first ``load`` series when the column is empty, or its mix of load series
    (``Feeder.load_shares``; :func:`adnstudy.data.mixes.bus_load_mix`). Names are
    checked on load by :func:`adnstudy.checks.check_references`.
    """
    cfg = case.config.profiles
    assert cfg is not None
    load_series = [n for n, s in cfg.series.items() if s.kind == "load"]
    matrix = profiles[load_series].to_numpy().T  # series × hour
    return bus_load_mix(feeder, load_series, matrix, load_series[0])


def generator_profiles(case: Case, feeder: Feeder, profiles: pd.DataFrame) -> np.ndarray:
    """Available power of each existing generator per hour, per unit of its ``p_mw`` (generator × hour)."""
    cfg = case.config.profiles
    assert cfg is not None
    first_of: dict[str, str] = {}
    for name, s in cfg.series.items():
        first_of.setdefault(s.kind, name)
    names = list(cfg.series)
    return generator_availability(feeder, names, profiles[names].to_numpy(dtype=float).T, first_of)
