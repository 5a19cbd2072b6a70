"""Honest solver status: named solvers get the case's limits, references are accurate, statuses say what they are.

* A named CVXPY solver gets the gap, the time limit (counted from the start of
  its process, model building included) and threads in its own words; a solver
  without a time limit is announced before it starts; one that is not installed
  is a usage error that names the install command.
* The market's centralised references and the plan's final point end
  ``optimal``: Clarabel's own duality gap and residuals meet the accuracy each
  states (``solve/conic.py``), and the manifest records them.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import cvxpy as cp
import numpy as np
import pytest
from typer.testing import CliRunner

from adnstudy.cli import app
from adnstudy.solve.conic import FINAL, REFERENCE
from adnstudy.solve.native import TIME_LIMITED, solver_options, with_user

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "tests" / "cases" / "small" / "case.yaml"
IEEE33 = ROOT / "cases" / "ieee33.yaml"
runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def small_cluster(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("small")
    assert invoke("cluster", SMALL, "--out", out).exit_code == 0
    return out / "cluster"


@pytest.fixture(scope="module")
def ieee33_cluster(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ieee33")
    assert invoke("cluster", IEEE33, "--out", out).exit_code == 0
    return out / "cluster"


def with_cluster(cluster: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(cluster, out / "cluster")
    return out


def manifest(out: Path, stage: str) -> dict:
    return json.loads((out / stage / "manifest.json").read_text())


# ------------------------------------------------------------------ the limits, in each solver's words
def test_each_solver_gets_gap_time_and_threads_in_its_own_words() -> None:
    assert solver_options("SCIP", 1e-3, 600, 2) == {"scip_params": {"limits/gap": 1e-3, "limits/time": 600.0}}
    assert solver_options("scip", 1e-3, None, 2) == {"scip_params": {"limits/gap": 1e-3}}
    assert solver_options("GUROBI", 1e-3, 600, 4) == {"MIPGap": 1e-3, "Threads": 4, "TimeLimit": 600.0}
    assert solver_options("MOSEK", 1e-3, 600, 4) == {"mosek_params": {
        "MSK_DPAR_MIO_TOL_REL_GAP": 1e-3, "MSK_IPAR_NUM_THREADS": 4, "MSK_DPAR_MIO_MAX_TIME": 600.0}}
    assert solver_options("CPLEX", 1e-3, 600, 4) == {"cplex_params": {
        "mip.tolerances.mipgap": 1e-3, "threads": 4, "timelimit": 600.0}}
    assert solver_options("COPT", 1e-3, 600, 4) == {"RelGap": 1e-3, "Threads": 4, "TimeLimit": 600.0}
    assert solver_options("XPRESS", 1e-3, 599.5, 4) == {"miprelstop": 1e-3, "threads": 4, "maxtime": -600}
    assert solver_options("ECOS_BB", 1e-3, 600, 4) == {"mi_rel_eps": 1e-3, "mi_max_iters": 100000}
    assert "ECOS_BB" not in TIME_LIMITED and {"SCIP", "GUROBI", "MOSEK"} <= set(TIME_LIMITED)


def test_the_users_options_go_over_ours_parameter_dicts_merged() -> None:
    ours = solver_options("SCIP", 1e-3, 600, 2)
    assert with_user(ours, {"scip_params": {"limits/gap": 1e-4}, "verbose_x": 1}) == {
        "scip_params": {"limits/gap": 1e-4, "limits/time": 600.0}, "verbose_x": 1}


def test_scip_gets_the_time_left_when_it_starts_and_builds_the_same_model() -> None:
    """DeadlineSCIP: the limit is what is left of the deadline; its one-pass build solves the same problem."""
    pytest.importorskip("pyscipopt")
    from pyscipopt import Model

    from adnstudy.solve.native import _scip_class

    scip = _scip_class()(time.monotonic() + 5.0)
    model = Model()
    scip._set_params(model, False, {"scip_params": {"limits/time": 600.0}},
                     {cp.settings.BOOL_IDX: [1], cp.settings.INT_IDX: []}, {cp.settings.SOC_DIM: [3]})
    assert 3.0 < model.getParam("limits/time") <= 5.0

    x = cp.Variable(3, integer=True)
    y = cp.Variable(2)
    problem = cp.Problem(cp.Minimize(cp.sum(y) - x[0] + 2 * x[2]),
                         [cp.SOC(y[0], x[:2] - 1.3), cp.norm(cp.hstack([y[1], x[2] - 0.4])) <= 3, x >= -2, x <= 4,
                          y <= 10, x[0] + x[1] <= 5])
    problem.solve(solver="SCIP")
    theirs = problem.value
    problem.solve(solver=_scip_class()(None))
    assert problem.status == "optimal" and problem.value == pytest.approx(theirs, abs=1e-6)


def test_scip_plans_within_its_limits_and_reports_its_gap(small_cluster, tmp_path) -> None:
    """--solver SCIP: the gap target is SCIP's (status 'gaplimit' is a proven gap: optimal), the gap and bound are
    reported, and no CVXPY warning reaches the user."""
    pytest.importorskip("pyscipopt")
    out = with_cluster(small_cluster, tmp_path)
    result = invoke("plan", SMALL, "--out", out, "--solver", "SCIP", "--time-limit", 60)
    assert result.exit_code == 0, result.output
    record = manifest(out, "plan")["solver"]
    assert record["name"] == "SCIP" and record["solver_status"] in ("gaplimit", "optimal")
    assert record["status"] == "optimal" and 0 <= record["gap"] <= record["gap_target"] == 1e-3
    assert record["bound_usd"] <= record["objective_usd"] and record["wall_seconds"] < 60
    assert f"status optimal, gap {record['gap']:.2e}" in result.stdout
    assert "Solution may be inaccurate" not in result.output and "UserWarning" not in result.output


def test_the_native_record_says_what_the_solver_proved() -> None:
    from adnstudy.solve.native import native_record

    base = {"objective": 1.0, "wall_seconds": 3.0, "status": "optimal_inaccurate"}
    gaplimit = native_record({**base, "solver_status": "gaplimit", "primal": 0.9, "bound": 0.8991}, "SCIP", 1e-3, 1e6)
    assert gaplimit["status"] == "optimal" and gaplimit["bound_usd"] == pytest.approx(999_100.0)
    assert gaplimit["gap"] == pytest.approx(9e-4)
    stopped = native_record({**base, "solver_status": "timelimit", "primal": 1.0, "bound": 0.99}, "SCIP", 1e-3, 1.0)
    assert stopped["status"] == "time_limit" and stopped["gap"] == pytest.approx(0.01)
    silent = native_record(base, "MOSEK", 1e-3, 1.0)  # no figures through CVXPY: CVXPY's status, no gap
    assert silent["status"] == "optimal_inaccurate" and silent["gap"] is None and silent["bound_usd"] is None


def test_a_solver_without_a_time_limit_is_announced_before_it_starts(small_cluster, tmp_path, caplog) -> None:
    out = with_cluster(small_cluster, tmp_path)
    t = time.perf_counter()
    with caplog.at_level(logging.WARNING):
        result = invoke("plan", SMALL, "--out", out, "--solver", "ECOS_BB", "--time-limit", 2)
    assert "ECOS_BB takes no time limit: if it has not finished after 2 s it is stopped and no plan is reported" \
        in caplog.text
    assert time.perf_counter() - t < 30  # stopped at the limit (not 1.2 x the limit + 30 s)
    if result.exit_code:  # ECOS_BB did not finish in 2 s on this machine
        assert result.exit_code == 1 and "ECOS_BB did not finish within the time limit of 2 s" in result.stderr


def test_a_solver_that_is_not_installed_names_its_install_command(monkeypatch, tmp_path) -> None:
    import cvxpy

    installed = [s for s in cvxpy.installed_solvers() if s != "SCIP"]
    monkeypatch.setattr(cvxpy, "installed_solvers", lambda: installed)
    for args in (("validate", tmp_case(tmp_path, "solver: {name: SCIP}")),
                 ("plan", IEEE33, "--solver", "SCIP", "--out", tmp_path / "out")):
        result = invoke(*args)
        assert result.exit_code == 2, result.output
        assert "solver 'SCIP' is not installed: pip install 'adnstudy[bench]' (PySCIPOpt, free); or use 'default'" \
            in result.stderr
        assert "Traceback" not in result.output


def tmp_case(tmp_path: Path, extra: str) -> Path:
    text = IEEE33.read_text().replace("../configs/defaults.yaml", str(ROOT / "configs" / "defaults.yaml"))
    path = tmp_path / "case.yaml"
    path.write_text(text.replace("name: ieee33", f"name: ieee33\n{extra}"))
    return path


# ------------------------------------------------------------------------------- accurate references
def test_dispatch_references_end_optimal(ieee33_cluster, tmp_path) -> None:
    """Typical day 1 of the shipped case: both centralised references ended optimal_inaccurate before."""
    out = with_cluster(ieee33_cluster, tmp_path)
    result = invoke("dispatch", IEEE33, "--out", out, "--day", 1)
    assert result.exit_code == 0, result.output
    (day,) = manifest(out, "dispatch")["scenarios"]
    assert day["centralised_status"] == day["disagreement_centralised_status"] == "optimal"
    assert day["centralised_gap_rel"] <= REFERENCE.accept_gap_rel
    assert day["disagreement_centralised_gap_rel"] <= REFERENCE.accept_gap_rel
    assert manifest(out, "dispatch")["summary"]["inaccurate_references"] == []
    assert "WARNING" not in result.output


def test_the_plans_final_point_ends_optimal(ieee33_cluster, tmp_path) -> None:
    """The shipped case's plan (5 s of search): its re-solve ended optimal_inaccurate before."""
    out = with_cluster(ieee33_cluster, tmp_path)
    result = invoke("plan", IEEE33, "--out", out, "--time-limit", 5, "--no-reliability")
    assert result.exit_code == 0, result.output
    record = manifest(out, "plan")["solver"]
    assert record["resolve_status"] == "optimal" and record["resolve_gap_rel"] <= FINAL.accept_gap_rel
    assert manifest(out, "plan")["verification"]["tight"]
    assert "WARNING" not in result.output


def test_an_inaccurate_reference_is_a_warning() -> None:
    from adnstudy.stages.dispatch import reference_warning
    from adnstudy.stages.plan import report

    (line, to_stderr), = reference_warning([{"scenario": 3, "market": "clearing", "status": "optimal_inaccurate",
                                             "gap_rel": 2.5e-6}])
    assert to_stderr and line.startswith("WARNING: the centralised reference of day 3 (clearing) ended "
                                         "'optimal_inaccurate', relative duality gap up to 2.5e-06 (wanted <= 1e-07)")
    summary = {"built": 1, "res_capacity_mw": 1.0, "storage_capacity_mw": 0.0, "storage_energy_mwh": 0.0,
               "baseline_total_usd": 2.0, "saving_usd": 1.0, "total_usd": 1.0, "status": "optimal", "gap": 0.0,
               "max_dv_pu": 0.0, "tight": True, "resolve_status": "optimal_inaccurate"}
    lines = report(_Case(), Path("out"), summary, {})
    assert ("WARNING: the plan's operating point was re-solved to status 'optimal_inaccurate' (relative duality gap "
            "above 1e-06): its tables are less accurate than stated; see manifest solver.resolve_gap_rel", True) in lines


class _Case:
    name = "case"


def test_reference_attempts_are_distinct_and_start_without_equilibration() -> None:
    attempts = list(REFERENCE.attempts())
    first = attempts[0]
    assert first["equilibrate_enable"] is False and first["iterative_refinement_max_iter"] == 50
    assert attempts[1]["equilibrate_enable"] is True
    assert len(attempts) == len({json.dumps(a, sort_keys=True) for a in attempts})
    assert np.isclose(FINAL.accept_gap_rel, 1e-6) and REFERENCE.accept_gap_rel == 1e-7
