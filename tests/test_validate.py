"""``adnstudy validate`` rejects every case a stage would reject for a reason in the case file.

Each stage runs the checks the registry gives it (``adnstudy/stages/registry.py``)
before it solves anything; ``validate`` runs those of every stage the case has
sections for. Below, one bad case per way a check can fail: ``validate`` and
the stage both exit 2 with the same message, and the stage writes nothing. A
check registered without a case here fails :func:`test_every_check_is_walked`.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import cvxpy
import numpy as np
import pandas as pd
import pytest
from conftest import edited_case
from typer.testing import CliRunner

from adnstudy.cli import app
from adnstudy.stages.registry import all_checks

ROOT = Path(__file__).resolve().parents[1]
CASE = ROOT / "cases" / "ieee33.yaml"
FEEDER = ROOT / "adnstudy" / "data" / "feeders" / "ieee33"
runner = CliRunner()
#: The shipped case on its feeder's own CSV tables (copied beside the variant), loads written in kW.
KW_FEEDER = (("  feeder: ieee33", "  buses: buses.csv\n  branches: branches.csv"),)


@dataclass(frozen=True)
class Bad:
    check: str  # name of the registered check that rejects it
    stages: tuple[str, ...]  # stage commands that reject it too
    edits: tuple[tuple[str, str], ...]  # text replacements in the shipped case
    field: str  # the field the message names
    says: str  # and a fragment of what it says
    kw_loads: bool = False  # the variant's feeder tables beside it, with its loads in kW


BAD = [
    Bad("feeder", ("plan", "dispatch"), (("{bus: 7,  tech: pv,", "{bus: 99,  tech: pv,"),),
        "candidates.sites[0].bus", "bus 99 is not on feeder ieee33"),
    Bad("profiles", ("cluster",), (("column: mv_semiurb_pload", "column: no_such_load"),),
        "profiles.series.load.column", "column 'no_such_load' is in none of the SimBench profile tables"),
    Bad("clustering days", ("cluster",), (("clustering:\n  k: 8", "clustering:\n  k: 400"),),
        "clustering.k", "k = 400 is larger than the 366 days available"),
    Bad("prices", ("plan", "dispatch"),
        (("name: ieee33", "name: ieee33\neconomics:\n  sell_price_usd_per_mwh: [" + ", ".join(["50"] * 24) + "]"),),
        "economics.sell_price_usd_per_mwh", "exceeds the purchase price at hour 0"),
    Bad("wholesale price", ("dispatch",),
        (("name: ieee33", "name: ieee33\neconomics:\n  wholesale_price_usd_per_mwh: null"),),
        "economics.wholesale_price_usd_per_mwh", "values the ADN's losses at this price"),
    Bad("outage data", ("reliability", "plan"),
        (("failure_rate_per_yr: 0.1 ", "failure_rate_per_km_yr: 0.1 "),),
        "reliability.failure_rate_per_yr", "branch 1-2 has no failure rate"),
    Bad("outage data", ("reliability", "plan"), (("fuses: [[2, 19],", "fuses: [[2, 30],"),),
        "reliability.fuses[0]", "no closed branch joins buses 2 and 30"),
    Bad("outage data", ("reliability", "plan"), (("switching_h: 1.0", "switching_h: 0.05"),),
        "reliability.switching_h", "below 5 minutes"),
    Bad("SAIFI limit", ("plan",), (("saidi_limit_h: 8.0", "saidi_limit_h: 8.0\n  saifi_limit: 1.0"),),
        "reliability.saifi_limit", "above the limit 1"),
    Bad("solver", ("plan",), (("name: ieee33", "name: ieee33\nsolver: {name: NOSUCH}"),),
        "solver.name", "'NOSUCH' is not a CVXPY solver; use 'default' (the project's strategy), 'branch_and_bound' or one of"),
    Bad("solver", ("plan",), (("name: ieee33", "name: ieee33\nsolver: {name: GUROBI}"),),
        "solver.name", "solver 'GUROBI' is not installed: pip install gurobipy"),
    Bad("solver", ("plan",), (("name: ieee33", "name: ieee33\nsolver: {name: HIGHS}"),),
        "solver.name", "solver 'HIGHS' cannot solve the plan's mixed-integer SOCP"),
    Bad("solver", ("plan",), (("name: ieee33", "name: ieee33\nsolver: {options: {no_such_setting: 1}}"),),
        "solver.options.no_such_setting", "not a setting of Clarabel"),
    Bad("solver options", ("dispatch",), (("name: ieee33", "name: ieee33\nsolver: {options: {max_iter: fast}}"),),
        "solver.options.max_iter", "Clarabel's max_iter cannot be 'fast'"),
    # loads in kW: the power flow behind branch_rating_factor fails first, then (without it) the peak power flow
    Bad("feeder", ("powerflow", "dispatch"), KW_FEEDER, "buses.csv: p_mw",
        "the feeder cannot carry its peak load of 3,715 MW (372 times the 10 MVA base at 12.66 kV): its AC power "
        "flow does not converge. p_mw and q_mvar are in MW and Mvar: if the loads are in kW, divide them by 1000",
        kw_loads=True),
    Bad("peak load", ("powerflow",), (*KW_FEEDER, ("  branch_rating_factor: 2.0\n", "")), "buses.csv: p_mw",
        "its AC power flow does not converge. p_mw and q_mvar are in MW and Mvar: if the loads are in kW", kw_loads=True),
    Bad("microgrid supply", ("plan", "dispatch"), (("    load_peak_mw: 0.6\n", "    load_peak_mw: 2.0\n"),),
        "microgrids[0].pcc_limit_mw", "microgrid mg1 cannot cover its own load at 2016-12-09 18:00: load 2.000 MW "
        "against at most 0.600 MW of its own (unit, storage, PV/wind) and 1 MW over its PCC, short by 0.400 MW"),
    Bad("coplan investors", ("coplan",),
        (("      - {tech: wind,      max_mw: 0.5,", "      - {tech: wind, profile: pv, max_mw: 0.5,"),),
        "microgrids[2].candidates[0].profile", "profile 'pv' is a pv series, not wind"),
    Bad("branch ratings", ("plan", "dispatch"), (("branch_rating_factor: 2.0", "branch_rating_factor: 0.5"),),
        "network.branch_rating_factor", "branch 24-25 must carry at least 0.530 MW at 2016-01-22 15:00 (the load "
        "beyond it less the most its MGs and candidates there could supply), above its rating of 11 A (0.253 MVA "
        "at 1.05 pu)"),
]


def variant(tmp_path: Path, bad: Bad) -> Path:
    text = CASE.read_text().replace("../configs/defaults.yaml", str(ROOT / "configs" / "defaults.yaml"))
    for old, new in bad.edits:
        assert old in text, old
        text = text.replace(old, new)
    if bad.kw_loads:
        buses = pd.read_csv(FEEDER / "buses.csv")
        buses[["p_mw", "q_mvar"]] *= 1000.0
        buses.to_csv(tmp_path / "buses.csv", index=False)
        (tmp_path / "branches.csv").write_text((FEEDER / "branches.csv").read_text())
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


def test_every_check_is_walked() -> None:
    checks = all_checks()
    registered = {c.name for stage_checks in checks.values() for c in stage_checks}
    assert registered == {b.check for b in BAD}
    for b in BAD:  # each bad case names only stages that run the check
        for stage in b.stages:
            assert b.check in {c.name for c in checks[stage]}, (b.check, stage)


@pytest.mark.parametrize("bad", BAD, ids=lambda b: f"{b.check}:{b.field}")
def test_validate_rejects_what_the_stages_reject(bad: Bad, tmp_path: Path) -> None:
    if "is not installed" in bad.says and bad.says.split("'")[1] in cvxpy.installed_solvers():
        pytest.skip("the solver this case names as missing is installed here")
    case = variant(tmp_path, bad)
    checked = runner.invoke(app, ["validate", str(case)])
    assert checked.exit_code == 2, checked.output
    message = checked.stderr.strip()
    assert bad.field in message and bad.says in message, message
    assert "Traceback" not in checked.output
    for stage in bad.stages:
        out = tmp_path / stage
        result = runner.invoke(app, [stage, str(case), "--out", str(out)])
        assert result.exit_code == 2, (stage, result.output)
        assert result.stderr.strip() == message, stage  # the same check, the same words
        assert not out.exists() or not any(out.iterdir()), f"{stage} wrote {list(out.iterdir())}"


def test_reliability_stage_reports_a_saifi_limit_it_cannot_meet(tmp_path: Path) -> None:
    """The SAIFI check guards the plan (a constraint there); the reliability stage only reports the limit."""
    bad = next(b for b in BAD if b.check == "SAIFI limit")
    result = runner.invoke(app, ["reliability", str(variant(tmp_path, bad)), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("case", "stages"), [("ieee33", "powerflow, cluster, reliability, plan, dispatch"),
                                             ("ieee69", "powerflow, cluster, reliability, plan, dispatch")])
def test_shipped_cases_are_checked_for_every_stage(case: str, stages: str) -> None:
    result = runner.invoke(app, ["validate", str(ROOT / "cases" / f"{case}.yaml")])
    assert result.exit_code == 0, result.output
    assert f"checked for: {stages}" in result.stdout


def test_a_missing_mixed_integer_solver_does_not_stop_the_market(tmp_path: Path) -> None:
    """dispatch solves with Clarabel only: a case naming an absent MIP solver is rejected by plan, not dispatch."""
    bad = next(b for b in BAD if b.field == "solver.name")
    out = tmp_path / "out"
    result = runner.invoke(app, ["dispatch", str(variant(tmp_path, bad)), "--out", str(out)])
    assert result.exit_code == 2 and "adnstudy cluster" in result.stderr  # past the checks, to its missing input


# ------------------------------------------------------------------ what only a solve can find, named
SMALL = ROOT / "tests" / "cases" / "small"


@pytest.fixture(scope="module")
def small_cluster(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("small")
    assert runner.invoke(app, ["cluster", str(SMALL / "case.yaml"), "--out", str(out)]).exit_code == 0
    return out / "cluster"


def small_variant(tmp_path: Path, edits: tuple[tuple[str, str], ...], cluster: Path) -> tuple[Path, Path]:
    """The small case with its tables beside it, edited; a results folder holding its typical days."""
    edited_case(SMALL / "case.yaml", tmp_path, *edits)
    shutil.copytree(cluster, tmp_path / "out" / "cluster")
    return tmp_path / "case.yaml", tmp_path / "out"


def test_a_dispatch_infeasible_for_a_voltage_limit_names_the_bus_and_hour(small_cluster, tmp_path: Path) -> None:
    """No tap range and v_min 0.995: validate cannot see it; the dispatch names where the limit binds."""
    case, out = small_variant(tmp_path, (("v_substation_range_pu: [1.0, 1.05]", "v_substation_range_pu: [1.0, 1.0]"),
                                         ("v_min_pu: 0.95", "v_min_pu: 0.995")), small_cluster)
    assert runner.invoke(app, ["validate", str(case)]).exit_code == 0
    result = runner.invoke(app, ["dispatch", str(case), "--out", str(out), "--day", "0"])
    assert result.exit_code == 1, result.output
    assert re.search(r"infeasible \(solver status 'infeasible'\): the network cannot carry the MGs' exchanges and its "
                     r"loads within the voltage limits \(network.v_min_pu / v_max_pu, v_substation_range_pu\); at its "
                     r"least violation bus \d falls to 0\.98\d\d pu \(v_min_pu 0\.995\) at hour \d+ of typical day 0",
                     result.stderr), result.stderr


def test_a_dispatch_infeasible_for_a_rating_names_the_branch_and_hour(small_cluster, tmp_path: Path) -> None:
    """Bus 4 draws 0.5 Mvar through a 15 A branch: its active power passes validate's check, the apparent does not."""
    buses = pd.read_csv(SMALL / "buses.csv")
    buses.loc[buses["bus"] == 4, "q_mvar"] = 0.5
    buses.to_csv(tmp_path / "buses.csv", index=False)
    branches = pd.read_csv(SMALL / "branches.csv")
    branches["rating_a"] = np.where((branches["from_bus"] == 3) & (branches["to_bus"] == 4), 15.0, np.nan)
    branches.to_csv(tmp_path / "branches.csv", index=False)
    case, out = small_variant(tmp_path, (("  branch_rating_factor: 2.5\n", ""),), small_cluster)
    assert runner.invoke(app, ["validate", str(case)]).exit_code == 0
    result = runner.invoke(app, ["dispatch", str(case), "--out", str(out), "--day", "0"])
    assert result.exit_code == 1, result.output
    assert re.search(r"within the branch ratings \(rating_a or network.branch_rating_factor\); at its least violation "
                     r"branch 3-4 carries 1\.\d\d times its rating of 15 A at hour \d+ of typical day 0",
                     result.stderr), result.stderr


def test_a_power_flow_that_does_not_converge_names_the_bus_table_and_the_unit(tmp_path: Path) -> None:
    from adnstudy.config.schema import NetworkConfig
    from adnstudy.errors import SolveError
    from adnstudy.network.feeder import load_feeder
    from adnstudy.network.powerflow import run_powerflow

    variant(tmp_path, next(b for b in BAD if b.check == "peak load"))
    feeder = load_feeder(NetworkConfig(buses=Path("buses.csv"), branches=Path("branches.csv")), tmp_path,
                         tmp_path / "bad.yaml")
    with pytest.raises(SolveError) as err:
        run_powerflow(feeder, feeder.buses["p_mw"].to_numpy(), feeder.buses["q_mvar"].to_numpy())
    assert f"the bus loads in {tmp_path / 'buses.csv'} (p_mw and q_mvar are in MW and Mvar; loads given in kW are " \
           "1000 times too large)" in str(err.value)
