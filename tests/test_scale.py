"""Scale: the year's power flow in chunks, the model-size estimate, and a model too large for the machine.

``benchmarks/scale.py`` measures memory and time against feeder size (docs/benchmarks.md "Scale"); these
tests pin what it relies on, on small inputs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from adnstudy.checks import CaseInputs
from adnstudy.cli import app
from adnstudy.cluster.typical_days import aggregate, day_data
from adnstudy.config.load import load_case
from adnstudy.data.typical import HOURS
from adnstudy.network import powerflow as pf
from adnstudy.problems.plan import build_plan_model, plan_data, with_reliability
from adnstudy.solve.size import MEMORY_LIMIT_ENV, estimate, largest_fitting, plan_dimensions
from adnstudy.stages.cluster import tables

ROOT = Path(__file__).resolve().parents[1]
IEEE33 = ROOT / "cases" / "ieee33.yaml"
SMALL = ROOT / "tests" / "cases" / "small" / "case.yaml"
sys.path.insert(0, str(ROOT / "benchmarks"))
from synthetic import write_case  # noqa: E402

runner = CliRunner()


def test_year_power_flow_in_chunks_equals_one_sweep():
    """Every snapshot is swept on its own, so any chunking gives the one-shot numbers bit for bit."""
    inputs = CaseInputs(load_case(IEEE33))
    fd, mult = inputs.feeder, inputs.bus_load_multipliers
    p, q = fd.buses["p_mw"].to_numpy()[:, None] * mult, fd.buses["q_mvar"].to_numpy()[:, None] * mult
    whole = pf.run_powerflow(fd, p, q)
    for cells in (fd.n_bus * 97, fd.n_bus * 1000):  # uneven and larger chunks
        parts = list(pf.run_powerflow_chunks(fd, mult, cells=cells))
        assert len(parts) == -(-mult.shape[1] // (cells // fd.n_bus))
        for name in ("v", "i_branch", "s_from", "loss"):
            assert np.array_equal(np.concatenate([getattr(r, name) for *_, r in parts], axis=1), getattr(whole, name))
    # one snapshot alone is solved exactly as within the year
    alone = pf.run_powerflow(fd, p[:, 4000], q[:, 4000])
    assert np.array_equal(alone.v[:, 0], whole.v[:, 4000])


def test_powerflow_year_tables_do_not_depend_on_the_chunk(tmp_path, monkeypatch):
    """``adnstudy powerflow --year`` in chunks of 50 hours writes the tables of one chunk of the whole year."""
    outs = {}
    for label, cells in (("whole", 10**9), ("chunked", 8 * 50)):
        monkeypatch.setattr(pf, "CHUNK_CELLS", cells)
        out = tmp_path / label
        result = runner.invoke(app, ["powerflow", str(SMALL), "--year", "--out", str(out)])
        assert result.exit_code == 0, result.output
        outs[label] = out / "powerflow_year"
    for table in ("bus", "branch", "summary"):
        whole = pd.read_parquet(outs["whole"] / f"{table}.parquet")
        chunked = pd.read_parquet(outs["chunked"] / f"{table}.parquet")
        assert len(whole) == 8784 * {"bus": 8, "branch": 7, "summary": 1}[table]
        pd.testing.assert_frame_equal(whole, chunked, check_exact=True)
    assert (pd.read_parquet(outs["chunked"] / "bus.parquet")["snapshot"].diff().fillna(0) >= 0).all()


@pytest.mark.parametrize("case_file, k, reliability", [(SMALL, 3, True), (IEEE33, 2, False)])
def test_size_estimate_matches_the_compiled_model(case_file, k, reliability):
    """Variables, rows and nonzeros from the dimensions are within a few per cent of CVXPY's compiled model."""
    case = load_case(case_file)
    inputs = CaseInputs(case)
    cfg = case.config.profiles
    year = day_data(inputs.profiles, {n: s.kind for n, s in cfg.series.items()})
    res, _ = aggregate(year, k)
    tb = tables(year, res)
    data = plan_data(case, inputs.feeder, tb["typical"], tb["weights"])
    if reliability:
        data = with_reliability(case, data)
    compiled = build_plan_model(data).problem.get_problem_data(cp.CLARABEL)[0]
    dims = plan_dimensions(case, inputs.feeder, reliability=reliability, threads=1)
    clustering = case.config.clustering
    assert dims.snapshots == HOURS * (clustering.k + len(clustering.extreme_days))  # what cluster will make
    dims = replace(dims, snapshots=data.n_snap)  # the k of this test
    est = estimate(dims)
    for name, measured in (("variables", compiled["c"].size), ("rows", compiled["A"].shape[0]),
                           ("nonzeros", compiled["A"].nnz)):
        ratio = getattr(est, name) / measured
        assert 0.9 < ratio < 1.1, f"{name}: estimated {getattr(est, name)}, compiled {measured}"


def plan_cli(case: Path, out: Path, cap_mb: str | None, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(MEMORY_LIMIT_ENV, None)
    if cap_mb is not None:
        env[MEMORY_LIMIT_ENV] = cap_mb
    return subprocess.run([sys.executable, "-m", "adnstudy", "plan", str(case), "--out", str(out), *extra],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def big_case(tmp_path_factory) -> Path:
    return write_case(tmp_path_factory.mktemp("synthetic2000"), 2000, k=8)


def test_plan_too_large_for_the_memory_cap_says_so_before_building(big_case, tmp_path):
    """A 2,000-bus feeder at K = 8 under a 6 GB cap: exit 2 with the estimate, the cap and what would fit, before
    any table is read (the case has not even been clustered) or written."""
    out = tmp_path / "out"
    proc = plan_cli(big_case, out, "6000")
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr
    assert "Traceback" not in err
    assert "the planning model of synthetic2000 will not fit in memory" in err
    assert "2000 buses, 1999 branches, 192 snapshots" in err and "6,000 MB is the cap ADNSTUDY_MEMORY_LIMIT_MB=6000" in err
    dims = plan_dimensions(load_case(big_case), type("F", (), {"n_bus": 2000, "n_branch": 1999})(),
                           reliability=True, threads=2)
    assert f"estimated {estimate(dims).memory_mb:,.0f} MB" in err
    k = largest_fitting(dims, HOURS, 6000.0)
    assert 1 < k < 8
    assert f"it would fit with {k} typical days instead of 8 (clustering.k)" in err
    assert "cluster" not in err.replace("clustering.k", "")  # before the missing typical days are noticed
    assert not out.exists() or not any(out.iterdir())


def test_plan_names_no_fitting_option_when_nothing_fits(big_case, tmp_path):
    proc = plan_cli(big_case, tmp_path / "out", "100", "--no-reliability")
    assert proc.returncode == 2, proc.stderr
    assert "not even one typical day on one thread fits" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_memory_cap_must_be_a_positive_number(tmp_path):
    proc = plan_cli(SMALL, tmp_path / "out", "lots")
    assert proc.returncode == 2
    assert "ADNSTUDY_MEMORY_LIMIT_MB='lots' is not a positive number of MB" in proc.stderr


def test_synthetic_feeder_of_33_buses_is_the_ieee33_feeder(tmp_path):
    """The benchmark feeders are copies of the published one: 33 buses give its base case exactly."""
    case = write_case(tmp_path, 33)
    a, b = CaseInputs(load_case(case)).feeder, CaseInputs(load_case(IEEE33)).feeder
    assert np.array_equal(a.bus_ids, b.bus_ids) and np.allclose(a.r_pu, b.r_pu) and len(a.ties) == len(b.ties)
    assert np.array_equal(a.branches["rating_a"], b.branches["rating_a"])
    assert HOURS == 24


def test_dispatch_too_large_for_the_memory_cap_says_so_before_building(tmp_path):
    """One typical day's network model of a 2,000-bus feeder with microgrids under a 200 MB cap: exit 2 with the
    estimate before the (missing) typical days are read."""
    text = (ROOT / "tests" / "cases" / "small" / "case.yaml").read_text()
    case = write_case(tmp_path / "feeder", 2000, k=8)
    extra = text[text.index("microgrids:"):]
    case.write_text(case.read_text() + "\n" + extra)
    env = {**os.environ, "PYTHONPATH": str(ROOT), MEMORY_LIMIT_ENV: "200"}
    proc = subprocess.run([sys.executable, "-m", "adnstudy", "dispatch", str(case), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "the dispatch model of one typical day of" in proc.stderr and "will not fit in memory" in proc.stderr
    assert "2000 buses, 1999 branches, 24 snapshots" in proc.stderr and "Traceback" not in proc.stderr
    assert "cluster" not in proc.stderr
