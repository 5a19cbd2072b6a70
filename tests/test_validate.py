"""``adnstudy validate`` rejects every case a stage would reject for a reason in the case file.

Each stage runs the checks the registry gives it (``adnstudy/stages/registry.py``)
before it solves anything; ``validate`` runs those of every stage the case has
sections for. Below, one bad case per way a check can fail: ``validate`` and
the stage both exit 2 with the same message, and the stage writes nothing. A
check registered without a case here fails :func:`test_every_check_is_walked`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cvxpy
import pytest
from typer.testing import CliRunner

from adnstudy.cli import app
from adnstudy.stages.registry import all_checks

ROOT = Path(__file__).resolve().parents[1]
CASE = ROOT / "cases" / "ieee33.yaml"
runner = CliRunner()


@dataclass(frozen=True)
class Bad:
    check: str  # name of the registered check that rejects it
    stages: tuple[str, ...]  # stage commands that reject it too
    edits: tuple[tuple[str, str], ...]  # text replacements in the shipped case
    field: str  # the field the message names
    says: str  # and a fragment of what it says


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
        "solver.name", "'NOSUCH' is not a CVXPY solver; use 'default' (branch-and-bound on Clarabel) or one of"),
    Bad("solver", ("plan",), (("name: ieee33", "name: ieee33\nsolver: {name: GUROBI}"),),
        "solver.name", "solver 'GUROBI' is not installed: pip install gurobipy"),
    Bad("solver", ("plan",), (("name: ieee33", "name: ieee33\nsolver: {name: HIGHS}"),),
        "solver.name", "solver 'HIGHS' cannot solve the plan's mixed-integer SOCP"),
    Bad("solver", ("plan",), (("name: ieee33", "name: ieee33\nsolver: {options: {no_such_setting: 1}}"),),
        "solver.options.no_such_setting", "not a setting of Clarabel"),
    Bad("solver options", ("dispatch",), (("name: ieee33", "name: ieee33\nsolver: {options: {max_iter: fast}}"),),
        "solver.options.max_iter", "Clarabel's max_iter cannot be 'fast'"),
]


def variant(tmp_path: Path, bad: Bad) -> Path:
    text = CASE.read_text().replace("../configs/defaults.yaml", str(ROOT / "configs" / "defaults.yaml"))
    for old, new in bad.edits:
        assert old in text, old
        text = text.replace(old, new)
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
                                             ("ieee69", "powerflow, cluster, dispatch")])
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
