"""Tidy result tables shared by the stages: one bus table shape and one branch table shape.

Like pandapower's ``res_bus``/``res_line`` for power flow and OPF alike, every
stage that reports bus or branch quantities builds its table here: one row per
(index…, bus) or (index…, from_bus, to_bus), snapshots in order, buses in the
feeder's order. The index vocabulary (docs/results.md): ``snapshot`` for an
hour of a power flow, ``scenario`` and ``hour`` for an hour of a typical day.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from adnstudy.network.feeder import Feeder

Index = Mapping[str, np.ndarray]


def scenario_index(scenarios: np.ndarray, hours: int) -> dict[str, np.ndarray]:
    """Per snapshot, its typical day (``scenario``) and ``hour``, for snapshots ordered day by day."""
    scenarios = np.asarray(scenarios)
    return {"scenario": np.repeat(scenarios, hours), "hour": np.tile(np.arange(hours), len(scenarios))}


def _rows(index: Index, per_snapshot: int) -> dict[str, np.ndarray]:
    return {k: np.repeat(np.asarray(v), per_snapshot) for k, v in index.items()}


def bus_table(feeder: Feeder, index: Index, columns: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """One row per (snapshot, bus); ``columns`` are bus × snapshot arrays."""
    n_snap = len(next(iter(index.values())))
    out = _rows(index, feeder.n_bus)
    out["bus"] = np.tile(feeder.bus_ids, n_snap)
    for name, values in columns.items():
        out[name] = np.asarray(values).T.ravel()
    return pd.DataFrame(out)


def branch_table(feeder: Feeder, index: Index, columns: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """One row per (snapshot, branch), branches as (from_bus, to_bus); ``columns`` are branch × snapshot arrays."""
    n_snap = len(next(iter(index.values())))
    out = _rows(index, feeder.n_branch)
    out["from_bus"] = np.tile(feeder.branches["from_bus"].to_numpy(), n_snap)
    out["to_bus"] = np.tile(feeder.branches["to_bus"].to_numpy(), n_snap)
    for name, values in columns.items():
        out[name] = np.asarray(values).T.ravel()
    return pd.DataFrame(out)


def zero_below(df: pd.DataFrame, tol: float, suffixes: tuple[str, ...] = ("_mw", "_mwh", "_mvar")) -> pd.DataFrame:
    """Values of the power and energy columns below ``tol`` in magnitude set to exact zeros.

    Iterative and interior-point solvers leave ~1e-10 where the answer is 0; the
    tables users read hold the answer, not the solver's noise.
    """
    out = df.copy()
    for col in out.columns:
        if col.endswith(suffixes) and pd.api.types.is_float_dtype(out[col]):
            v = out[col].to_numpy()
            out[col] = np.where(np.abs(v) < tol, 0.0, v)
    return out
def branch_loading(feeder: Feeder, i_ka: np.ndarray) -> dict[str, np.ndarray]:
    """Branch × snapshot columns ``rating_ka`` (the feeder's ``rating_a``; NaN: unrated) and ``loading_pct``."""
    rating_ka = feeder.branches["rating_a"].to_numpy(dtype=float)[:, None] / 1000.0
    return {"rating_ka": np.broadcast_to(rating_ka, i_ka.shape), "loading_pct": 100.0 * i_ka / rating_ka}


def existing_table(feeder: Feeder, index: Index, p_available_mw: np.ndarray, p_mw: np.ndarray,
                   q_mvar: np.ndarray) -> pd.DataFrame:
    """One row per (snapshot, existing unit): ``gen, bus, tech``, the index, its available and used power and
    the curtailment (``Feeder.generators``; arrays unit × snapshot, MW). The same shape in plan and dispatch."""
    g = feeder.generators
    n_snap = len(next(iter(index.values())))
    out = {c: np.tile(g[c].to_numpy(), n_snap) for c in ("gen", "bus", "tech")}
    out.update(_rows(index, len(g)))
    for name, values in (("p_available_mw", p_available_mw), ("p_mw", p_mw), ("q_mvar", q_mvar),
                         ("p_curtailed_mw", np.maximum(p_available_mw - p_mw, 0.0))):
        out[name] = np.asarray(values).T.ravel()
    return pd.DataFrame(out)
