"""Regression pins: every stage's tables and headline numbers on the small and the shipped case.

The references under ``tests/regression/`` were written by the code before the
model restructuring (issue 9) and must keep holding after any change that is
not meant to change results. Regenerate them only for an intended change of
results, and say why in the commit::

    ADNSTUDY_UPDATE_REGRESSION=1 python -m pytest tests/test_regression.py

Tolerances are those of the solves that produce each table. The plan's costs
agree to 1e-6: its final point is solved to a 1e-9 duality gap. Its operating
point agrees to 1e-4 of each column's scale in voltages and to
1e-3 in powers: where the optimum is flat (the substation's tap within its
range, DG reactive power, storage timing between hours of equal price) any
point within the duality gap is optimal, and a reordering of the same
constraints moves Clarabel's answer there (by up to ~1e-4 pu, ~1e-3 of the
reactive powers) while the cost moves by 1e-7. The market's distributed schedules agree
to the ATC/ADMM residual tolerance (5e-5 MW, here 1e-3 of the column's scale).
Renamed tables and columns are mapped through :data:`RENAMED` (the index
vocabulary of docs/results.md: ``scenario`` and ``hour`` for typical days).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REFERENCE = Path(__file__).resolve().parent / "regression"
UPDATE = os.environ.get("ADNSTUDY_UPDATE_REGRESSION") == "1"

#: (stage, old table name) -> (new table name, {old column: new column}); also applied to the references.
RENAMED: dict[tuple[str, str], tuple[str, dict[str, str]]] = {
    ("cluster", "typical"): ("typical", {"cluster": "scenario"}),
    ("cluster", "weights"): ("weights", {"cluster": "scenario", "representative_day": "representative_date"}),
    ("cluster", "assignment"): ("assignment", {"cluster": "scenario"}),
    **{("dispatch", t): (t, {"day": "scenario"}) for t in
       ("schedule", "trades", "payments", "adn", "network", "convergence")},
    ("dispatch", "agents_by_day"): ("agents_by_scenario", {"day": "scenario"}),
}
#: Columns that are timings, not results.
TIMING = {"seconds"}
#: (stage, table) -> (relative tolerance, tolerance relative to the column's largest magnitude)
TOLERANCE: dict[tuple[str, str], tuple[float, float]] = {
    ("plan", "bus"): (1e-3, 1e-3),
    ("plan", "branch"): (1e-3, 1e-3),
    ("plan", "investment"): (1e-6, 1e-6),
    ("plan", "cost"): (1e-6, 1e-6),
    **{("dispatch", t): (1e-3, 1e-3) for t in
       ("schedule", "trades", "payments", "agents", "agents_by_scenario", "adn", "network")},
}
DEFAULT_TOLERANCE = (1e-9, 1e-9)
#: below this any difference is solver noise (1e-8 MW, pu, USD)
ABS_FLOOR = 1e-8
#: columns held tighter than their table: the voltages of the operating point (currents are not: an idle
#: branch's current is the square root of a number near the solver's tolerance)
COLUMN_TOLERANCE = {"v_pu": (1e-4, 1e-4), "v_ac_pu": (1e-4, 1e-4)}


def canonical(stage: str, table: str, df: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    new, columns = RENAMED.get((stage, table), (table, {}))
    return new, df.rename(columns=columns)


def read_tables(folder: Path, stages: tuple[str, ...]) -> dict[tuple[str, str], pd.DataFrame]:
    """Every table of the given stages in a results folder, under its current name."""
    out = {}
    for path in sorted(folder.glob("*/*.parquet")):
        stage = path.parent.name
        if stage not in stages:
            continue
        table, df = canonical(stage, path.stem, pd.read_parquet(path))
        out[stage, table] = df
    return out


def compare_table(key: tuple[str, str], ours: pd.DataFrame, ref: pd.DataFrame) -> None:
    stage, table = key
    if (stage, table) == ("dispatch", "convergence"):
        compare_convergence(ours, ref)
        return
    assert list(ours.columns) == list(ref.columns), f"{stage}/{table}: columns differ"
    assert len(ours) == len(ref), f"{stage}/{table}: {len(ours)} rows, reference {len(ref)}"
    # row order is not a result: both sides in the order of their identifying (non-float) columns
    ids = [c for c in ref.columns if not pd.api.types.is_float_dtype(ref[c])]
    if ids:
        ours = ours.sort_values(ids, kind="mergesort", ignore_index=True)
        ref = ref.sort_values(ids, kind="mergesort", ignore_index=True)
    for col in ref.columns:
        if col in TIMING:
            continue
        rtol, stol = TOLERANCE.get(key, DEFAULT_TOLERANCE)
        if key in TOLERANCE and col in COLUMN_TOLERANCE:
            rtol, stol = COLUMN_TOLERANCE[col]
        a, b = ours[col], ref[col]
        if pd.api.types.is_numeric_dtype(b) and not pd.api.types.is_bool_dtype(b):
            x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
            scale = float(np.nanmax(np.abs(y))) if np.isfinite(y).any() else 0.0
            np.testing.assert_allclose(x, y, rtol=rtol, atol=max(stol * scale, ABS_FLOOR),
                                       err_msg=f"{stage}/{table}.{col}")
        else:
            assert a.astype(str).tolist() == b.astype(str).tolist(), f"{stage}/{table}.{col}"


def compare_convergence(ours: pd.DataFrame, ref: pd.DataFrame) -> None:
    """Iterative histories: the same runs, iteration counts within 10 %, final residuals below tolerance."""
    keys = ["scenario", "stage", "method"]
    a = ours.groupby(keys)["iteration"].max()
    b = ref.groupby(keys)["iteration"].max()
    assert list(a.index) == list(b.index)
    assert (np.abs(a - b) <= np.maximum(2, 0.1 * b)).all(), pd.concat([a, b], axis=1, keys=["ours", "reference"])
    central = ours[ours["method"] == "centralised"].set_index(["scenario", "stage"])["objective_usd"]
    central_ref = ref[ref["method"] == "centralised"].set_index(["scenario", "stage"])["objective_usd"]
    np.testing.assert_allclose(central, central_ref, rtol=1e-6)


def headline(folder: Path, stages: tuple[str, ...]) -> dict[str, float]:
    """The numbers a user reads in the summaries, from the manifests."""
    out: dict[str, float] = {}
    for manifest in sorted(folder.glob("*/manifest.json")):
        stage = manifest.parent.name
        if stage not in stages:
            continue
        m = json.loads(manifest.read_text())
        if m.get("objective") is not None:
            out[f"{stage}.objective"] = float(m["objective"])
        for k, v in (m.get("summary") or {}).items():
            if isinstance(v, bool) or not isinstance(v, int | float) or k in TIMING or k.endswith("_s"):
                continue
            out[f"{stage}.summary.{k}"] = float(v)
        if stage == "plan":
            out["plan.solver.resolved_objective_usd"] = m["solver"]["resolved_objective_usd"]
        rows = m.get("days") or (m["scenarios"] if isinstance(m.get("scenarios"), list) else [])
        for row in rows:
            s = row.get("scenario", row.get("day"))
            for k in ("centralised_objective_usd", "disagreement_centralised_usd"):
                out[f"dispatch.scenario{s}.{k}"] = float(row[k])
    return {HEADLINE_RENAMED.get(k, k): v for k, v in out.items()}


#: headline keys renamed with the index vocabulary
HEADLINE_RENAMED = {"dispatch.summary.days": "dispatch.summary.scenarios"}
#: headline keys that are not pinned: proven gaps and solver counters vary within their tolerance
NOT_PINNED = ("plan.summary.gap", "dispatch.summary.max_gap", "dispatch.summary.max_iterations",
              "dispatch.summary.max_pcc_mismatch_mw", "dispatch.summary.max_reciprocity_mw",
              "plan.summary.max_dv_pu", "dispatch.summary.max_dv_pu", "cluster.summary.seconds")


def check_study(study, name: str) -> None:
    root = REFERENCE / name
    if UPDATE:
        shutil.rmtree(root, ignore_errors=True)
        for run, folder in study.runs.items():
            for path in folder.glob("*/*.parquet"):
                if path.parent.name not in study.stages[run]:
                    continue
                target = root / run / path.parent.name / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, target)
            (root / run / "headline.json").write_text(json.dumps(headline(folder, study.stages[run]), indent=1, sort_keys=True))
        pytest.skip("references written")
    for run, folder in study.runs.items():
        stages = study.stages[run]
        ours, ref = read_tables(folder, stages), read_tables(root / run, stages)
        assert sorted(ours) == sorted(ref), f"{name}/{run}: tables differ"
        for key, df in ref.items():
            compare_table(key, ours[key], df)
        pinned = {HEADLINE_RENAMED.get(k, k): v for k, v in json.loads((root / run / "headline.json").read_text()).items()}
        now = headline(folder, stages)
        for key, value in pinned.items():
            if key in NOT_PINNED:
                continue
            assert key in now, f"{name}/{run}: no {key}"
            rtol = 1e-3 if key.startswith("dispatch.") else 1e-6
            assert now[key] == pytest.approx(value, rel=rtol, abs=1e-6), f"{name}/{run}: {key}"


def test_small_case_is_unchanged(small_study) -> None:
    check_study(small_study, "small")


def test_shipped_case_is_unchanged(ieee33_study) -> None:
    check_study(ieee33_study, "ieee33")
