"""What a stage relies on in the tables an earlier stage wrote: columns, types, ranges, no NaN.

Checked on every read (``registry.read_inputs``), after the provenance check
and whatever ``--force-inputs`` says: a table that passed its provenance check
but holds a NaN or a value no stage can write (a negative load, a PV
availability of −518 pu, a typical day standing for 0 days) is refused with
the file, column, row and value, not solved into a misleading result.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from adnstudy.data.typical import HOURS, YEAR_DAYS
from adnstudy.errors import MissingInputError


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "int", "float", "bool", "str"
    lo: float | None = None
    hi: float | None = None
    unique: bool = False


#: Per-unit range of a typical-day value, by series kind (profiles: load per unit of its peak, PV and
#: wind per unit of rating, price in USD/MWh; "other": any finite value).
VALUE_RANGE: dict[str, tuple[float, float]] = {
    "load": (0.0, 10.0), "pv": (0.0, 1.0 + 1e-6), "wind": (0.0, 1.0 + 1e-6), "price": (-1e5, 1e5),
    "other": (-1e12, 1e12),
}

SPECS: dict[tuple[str, str], tuple[Column, ...]] = {
    ("cluster", "typical"): (
        Column("scenario", "int", 0), Column("hour", "int", 0, HOURS - 1), Column("series", "str"),
        Column("value", "float"),
    ),
    ("cluster", "weights"): (
        Column("scenario", "int", 0, unique=True), Column("days", "int", 1, 1e6),
        Column("weight_days", "float", 1e-9, YEAR_DAYS),
    ),
    ("plan", "investment"): (
        Column("site", "int", 0, unique=True), Column("bus", "int", 1), Column("tech", "str"),
        Column("build", "bool"), Column("capacity_mw", "float", 0.0, 1e5),
    ),
}


def _fail(path: Path, stage: str, what: str) -> MissingInputError:
    return MissingInputError(f"{path}: {what}; it is not what 'adnstudy {stage}' writes: re-run '{stage}'")


def _kind_ok(series: pd.Series, kind: str) -> bool:
    dtype = series.dtype
    if kind == "bool":
        return pd.api.types.is_bool_dtype(dtype)
    if kind == "str":
        return pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)
    if pd.api.types.is_bool_dtype(dtype):
        return False
    if kind == "int":
        return pd.api.types.is_integer_dtype(dtype)
    return pd.api.types.is_numeric_dtype(dtype)


def _first(mask: np.ndarray, df: pd.DataFrame) -> str:
    row = int(np.flatnonzero(mask)[0])
    keys = [c for c in ("scenario", "hour", "series", "site") if c in df.columns]
    at = ", ".join(f"{k} {df[k].iloc[row]}" for k in keys)
    return f"row {row}" + (f" ({at})" if at else "")


def checked_table(df: pd.DataFrame, path: Path, stage: str, table: str,
                  kinds: dict[str, str] | None = None) -> pd.DataFrame:
    """``df`` if it has what readers of ``stage/table`` rely on; else a clear error (exit 2).

    ``kinds``: series name → kind, for the value ranges of ``cluster/typical`` (default: the names).
    """
    spec = SPECS.get((stage, table))
    if spec is None:
        return df
    for col in spec:
        if col.name not in df.columns:
            raise _fail(path, stage, f"column '{col.name}' is missing")
        values = df[col.name]
        if not _kind_ok(values, col.kind):
            raise _fail(path, stage, f"column '{col.name}' holds {values.dtype}, not {col.kind} values")
        if col.kind in ("str", "bool"):
            if values.isna().any():
                raise _fail(path, stage, f"column '{col.name}' has an empty value at {_first(values.isna().to_numpy(), df)}")
            continue
        x = values.to_numpy(dtype=float)
        bad = ~np.isfinite(x)
        if bad.any():
            raise _fail(path, stage, f"column '{col.name}' is {x[bad][0]} at {_first(bad, df)}")
        for bound, mask in ((col.lo, x < col.lo if col.lo is not None else None),
                            (col.hi, x > col.hi if col.hi is not None else None)):
            if mask is not None and mask.any():
                side = "below" if bound == col.lo else "above"
                raise _fail(path, stage, f"column '{col.name}' is {x[mask][0]:.6g} at {_first(mask, df)}, "
                                         f"{side} its range [{col.lo}, {col.hi}]")
        if col.unique and values.duplicated().any():
            raise _fail(path, stage, f"column '{col.name}' repeats {values[values.duplicated()].iloc[0]}")
    if (stage, table) == ("cluster", "typical"):
        keys = df[["scenario", "hour", "series"]]
        if keys.duplicated().any():
            raise _fail(path, stage, f"two values for {_first(keys.duplicated().to_numpy(), df)}")
        x = df["value"].to_numpy(dtype=float)
        kind = df["series"].map(lambda n: (kinds or {}).get(n, n)).to_numpy()
        for k, (lo, hi) in VALUE_RANGE.items():
            mask = (kind == k) & ((x < lo) | (x > hi))
            if mask.any():
                raise _fail(path, stage, f"a {k} value is {x[mask][0]:.6g} at {_first(mask, df)}, outside [{lo}, {hi}]")
    if (stage, table) == ("cluster", "weights"):
        total = float(df["weight_days"].sum())
        if abs(total - YEAR_DAYS) > 1e-6 * YEAR_DAYS:
            raise _fail(path, stage, f"the typical days stand for {total:.6g} days, not a {YEAR_DAYS}-day year")
    return df
