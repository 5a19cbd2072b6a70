"""Annual load/PV/wind series: SimBench's shipped profiles (offline) or user CSV files.

Every series is resampled to hourly means and made per unit: ``peak``
normalisation divides by the series maximum (loads: bus peak loads then scale
it), ``none`` keeps values that are already per unit of rating (SimBench PV and
wind profiles are per unit of installed capacity).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from adnstudy.config.load import Case
from adnstudy.config.schema import ProfilesConfig
from adnstudy.errors import CaseError

#: SimBench profile tables searched, in order, for a series' column.
SIMBENCH_TABLES = ("LoadProfile", "RESProfile", "PowerPlantProfile", "StorageProfile")
SIMBENCH_TIME_FORMAT = "%d.%m.%Y %H:%M"
#: PV/wind values down to this (per unit of rating) are standby consumption, clipped to zero.
NEGATIVE_TOLERANCE = 1e-3


def simbench_dir(code: str) -> Path:
    """Folder of a SimBench data set shipped inside the ``simbench`` package."""
    try:
        import simbench
    except ImportError as exc:  # pragma: no cover - simbench is a dependency
        raise CaseError("the 'simbench' package is not installed", field="profiles.source") from exc
    return Path(simbench.__file__).parent / "networks" / code


def _first_line(path: Path) -> str:
    try:
        with path.open(encoding="utf-8") as fh:
            return fh.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseError(f"cannot read file ({exc})", file=path) from None


def _header(path: Path, sep: str) -> list[str]:
    return [c.strip() for c in _first_line(path).split(sep)]


def load_profiles(case: Case) -> pd.DataFrame:
    """Hourly per-unit series of the case (DatetimeIndex × series name)."""
    cfg: ProfilesConfig | None = case.config.profiles
    if cfg is None:
        raise case.error("this command needs a 'profiles' section", "profiles")
    # group series by the file they come from, so each file is read once
    wanted: dict[Path, list[tuple[str, str]]] = {}
    sep_of: dict[Path, str] = {}
    time_of: dict[Path, str] = {}
    if cfg.source == "simbench":
        folder = simbench_dir(cfg.simbench_code)
        if not folder.is_dir():
            raise case.error(f"SimBench data set '{cfg.simbench_code}' is not shipped with the simbench package", "profiles", "simbench_code")
        headers = {t: _header(folder / f"{t}.csv", ";") for t in SIMBENCH_TABLES if (folder / f"{t}.csv").is_file()}
        for name, s in cfg.series.items():
            table = next((t for t, cols in headers.items() if s.column in cols), None)
            if table is None:
                raise case.error(
                    f"column '{s.column}' is in none of the SimBench profile tables of {cfg.simbench_code}",
                    "profiles", "series", name, "column",
                )
            path = folder / f"{table}.csv"
            wanted.setdefault(path, []).append((name, s.column))
            sep_of[path], time_of[path] = ";", "time"
    else:
        for name, s in cfg.series.items():
            rel = s.file or cfg.file
            assert rel is not None
            path = case.resolve(rel)
            field = ("profiles", "series", name, "file") if s.file else ("profiles", "file")
            if not path.is_file():
                raise case.error(f"profile file not found: {path}", *field)
            sep_of[path], time_of[path] = _sniff_sep(path), cfg.time_column
            cols = _header(path, sep_of[path])
            if cfg.time_column not in cols:
                raise case.error(f"{path.name} has no time column '{cfg.time_column}'", "profiles", "time_column")
            if s.column not in cols:
                raise case.error(f"{path.name} has no column '{s.column}'", "profiles", "series", name, "column")
            wanted.setdefault(path, []).append((name, s.column))

    frames = []
    for path, items in wanted.items():
        tcol = time_of[path]
        need = {tcol, *(c for _, c in items)}
        try:  # headers are matched stripped, as _header reads them
            raw = pd.read_csv(path, sep=sep_of[path], usecols=lambda c, need=need: str(c).strip() in need)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise CaseError(f"not a readable CSV table ({str(exc).strip()})", file=path) from None
        raw.columns = [str(c).strip() for c in raw.columns]
        if cfg.source == "simbench":
            # SimBench stamps rows in local time (an hour repeats when daylight saving ends)
            # but the rows are a regular 15-minute series: rebuild the index from the first stamp.
            start = pd.to_datetime(raw[tcol].iloc[0], format=SIMBENCH_TIME_FORMAT)
            index = pd.date_range(start, periods=len(raw), freq="15min")
        else:
            try:
                index = pd.to_datetime(raw[tcol], errors="coerce")
            except (ValueError, TypeError) as exc:
                reason = (str(exc).splitlines() or [type(exc).__name__])[0]  # pandas adds lines of advice
                raise case.error(
                    f"{path.name}: cannot read the time column '{tcol}' ({reason})", "profiles", "time_column"
                ) from None
            if index.isna().any():
                i = int(np.flatnonzero(index.isna())[0])
                cell = raw[tcol].iloc[i]
                what = "time is missing" if pd.isna(cell) else f"{cell!r} is not a time in the format of the first row"
                raise CaseError(f"row {i + 1}: {what}", file=path, field=tcol, line=i + 2)
        for name, col in items:
            values = pd.to_numeric(raw[col], errors="coerce")
            # checked before resampling: an hourly mean would silently skip a gap in finer data
            if values.isna().any():
                i = int(np.flatnonzero(values.isna().to_numpy())[0])
                what = "value is missing" if pd.isna(raw[col].iloc[i]) else f"{raw[col].iloc[i]!r} is not a number"
                raise CaseError(f"row {i + 1}: {what} (series '{name}')", file=path, field=col, line=i + 2)
            frames.append(pd.Series(values.to_numpy(), index=index, name=name))
    data = pd.concat(frames, axis=1)
    return _to_hourly_pu(data, cfg, case)


def _sniff_sep(path: Path) -> str:
    first = _first_line(path)
    return ";" if first.count(";") > first.count(",") else ","


def _to_hourly_pu(data: pd.DataFrame, cfg: ProfilesConfig, case: Case) -> pd.DataFrame:
    data = data.sort_index()
    if data.index.has_duplicates:
        raise case.error(
            "the time column has repeated timestamps (local time with daylight saving? use UTC or a regular series)",
            "profiles", "time_column",
        )
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
            col = col / peak
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


def bus_load_profiles(case: Case, feeder_buses: pd.DataFrame, profiles: pd.DataFrame) -> np.ndarray:
    """Per-unit load multiplier per bus and hour (bus × hour).

    A bus follows the series named in its ``load_profile`` column, or the case's
    first ``load`` series when the column is empty (names are checked on load by
    :func:`adnstudy.checks.check_references`).
    """
    cfg = case.config.profiles
    assert cfg is not None
    load_series = [n for n, s in cfg.series.items() if s.kind == "load"]
    names = feeder_buses["load_profile"].replace("", load_series[0]).to_numpy()
    cols = {n: i for i, n in enumerate(load_series)}
    matrix = profiles[load_series].to_numpy().T  # series × hour
    return matrix[[cols[n] for n in names]]
