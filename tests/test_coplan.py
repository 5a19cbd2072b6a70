"""Co-planning (issue 12) on the tiny case tests/cases/coplan: the ADN with 3 candidate sites, two MGs with 2 each.

Every joint 0-1 decision is enumerated (2^7 welfare solves): the centralised
optimum must be the best of them, the alternating result is measured against
it, and each investor's best unilateral deviation is recomputed from the same
enumeration. The stage's own figures (distributed vs centralised, individual
rationality, the bargaining split) are checked against their definitions.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from adnstudy.config.load import load_case
from adnstudy.problems.coplan import build_coplan_model, coplan_data
from adnstudy.solve.alternate import alternate, decisions_key
from adnstudy.solve.bargaining import bargain
from adnstudy.solve.conic import FINAL, quiet_solver, solve_conic
from adnstudy.stages.registry import checked_inputs

CASE = ROOT / "tests" / "cases" / "coplan" / "case.yaml"


def adnstudy(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "adnstudy", *args], capture_output=True, text=True, cwd=ROOT)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("coplan")
    for stage in ("cluster", "coplan"):
        res = adnstudy(stage, str(CASE), "--out", str(out))
        assert res.returncode == 0, res.stderr
    return out


@pytest.fixture(scope="module")
def manifest(run: Path) -> dict:
    return json.loads((run / "coplan" / "manifest.json").read_text())


@pytest.fixture(scope="module")
def enumerated(run: Path) -> dict[bytes, float]:
    """The welfare of every joint 0-1 decision (None where it cannot operate)."""
    case = load_case(CASE)
    feeder = checked_inputs(case, "coplan").feeder
    data = coplan_data(case, feeder, pd.read_parquet(run / "cluster" / "typical.parquet"),
                       pd.read_parquet(run / "cluster" / "weights.parquet"))
    model = build_coplan_model(data)
    spaces = [model.combinations(i) for i in range(len(data.names))]
    out = {}
    with quiet_solver():
        for joint in itertools.product(*spaces):
            model.fix(joint)
            solve_conic(model.problem, FINAL, "brute force")
            out[decisions_key(joint)] = (joint, model.welfare_usd)
    return out


def test_brute_force_centralised_is_the_best_combination(manifest, enumerated) -> None:
    best = min(w for _, w in enumerated.values())
    assert len(enumerated) == 2**7
    s = manifest["summary"]
    assert s["centralised_welfare_usd"] == pytest.approx(best, rel=1e-7)
    # the alternating result against the enumeration: never better than the optimum, here within 1 %
    assert s["welfare_at_decisions_centralised_usd"] >= best * (1 - 1e-9)
    assert (s["welfare_at_decisions_centralised_usd"] - best) / best <= 1e-2


def test_distributed_equals_centralised_at_the_final_decisions(manifest) -> None:
    s = manifest["summary"]
    assert abs(s["distributed_gap"]) <= 1e-3
    assert s["pcc_mismatch_mw"] <= 1e-4 and s["reciprocity_mw"] <= 1e-4


def test_individual_rationality_and_the_bargaining_split(run, manifest) -> None:
    agents = pd.read_parquet(run / "coplan" / "agents.parquet")
    gain = agents["gain_usd"].to_numpy()
    assert np.all(gain >= -1e-6 * agents["cost_disagreement_usd"].abs().to_numpy())
    total = manifest["summary"]["disagreement_usd"] - manifest["summary"]["welfare_usd"]
    assert gain.sum() == pytest.approx(total, rel=1e-6)
    powers = agents["bargaining_power"].to_numpy()
    np.testing.assert_allclose(gain / gain.sum(), powers / powers.sum(), rtol=1e-3)
    # costs: before payments + payments; payments net to zero
    assert agents["payment_usd"].sum() == pytest.approx(0.0, abs=1e-6 * abs(total) + 1e-9)
    np.testing.assert_allclose(agents["cost_cooperative_usd"],
                               agents["cost_before_payments_usd"] + agents["payment_usd"], rtol=1e-9)


def test_stability_against_every_unilateral_deviation(run, manifest, enumerated) -> None:
    """Each investor's best deviation (others fixed) from the brute-force table equals the stage's."""
    inv = pd.read_parquet(run / "coplan" / "investment.parquet")
    final = {name: g.sort_values("candidate")["build"].to_numpy().astype(float)
             for name, g in inv[inv["plan"] == "coplan"].groupby("investor", sort=False)}
    names = ["adn", "north", "east"]
    final_key = decisions_key(tuple((final[n],) for n in names))
    base = enumerated[final_key][1]
    agents = pd.read_parquet(run / "coplan" / "agents.parquet").set_index("agent")
    powers = agents["bargaining_power"].to_numpy()
    for i, name in enumerate(names):
        best = min(w for joint, w in enumerated.values()
                   if all(decisions_key((joint[j],)) == decisions_key(((final[n]),)) for j, n in enumerate(names)
                          if j != i))
        expected = max(0.0, base - best) * powers[i] / powers.sum()
        assert agents.loc[name, "best_deviation_gain_usd"] == pytest.approx(expected, abs=1e-3)
    assert manifest["summary"]["stable"] is True


def test_outputs_and_figures(run) -> None:
    folder = run / "coplan"
    for name in ("investment", "agents", "iterations", "trades", "payments", "schedule", "convergence"):
        assert (folder / f"{name}.parquet").is_file()
    for name in ("capacity", "gains", "welfare"):
        assert (folder / f"{name}.png").is_file()
    inv = pd.read_parquet(folder / "investment.parquet")
    assert set(inv["plan"]) == {"alone", "coplan", "centralised"}
    assert (inv.loc[~inv["build"], "capacity_mw"] == 0).all()


def test_the_shipped_33_bus_case_within_one_percent_of_the_centralised_plan(readme_tour) -> None:
    """The README tour's co-planning run of cases/ieee33.yaml (ADN + 3 MGs, K = 8): welfare within 1 % of the
    centralised branch-and-bound's, the distributed upper level on its centralised twin, every investor
    better off, gains split by the bargaining powers, and no investor gaining by deviating alone."""
    folder = readme_tour.results_dir / "coplan"
    s = json.loads((folder / "manifest.json").read_text())["summary"]
    assert s["outcome"] in ("fixed point", "cycle") and s["outer_iterations"] <= 10
    assert abs(s["welfare_gap"]) <= 1e-2
    assert abs(s["distributed_gap"]) <= 1e-3
    assert s["pcc_mismatch_mw"] <= 1e-4 and s["reciprocity_mw"] <= 1e-4
    agents = pd.read_parquet(folder / "agents.parquet")
    gain = agents["gain_usd"].to_numpy()
    assert s["total_gain_usd"] > 0 and np.all(gain >= 0)
    powers = agents["bargaining_power"].to_numpy()
    np.testing.assert_allclose(gain / gain.sum(), powers / powers.sum(), rtol=1e-3)
    assert s["stable"] is True
    assert np.all(agents["best_deviation_gain_usd"] <= 1e-3 * agents["cost_cooperative_usd"].abs())


def test_generalized_split_with_unequal_powers() -> None:
    """1:2:3:4 powers over a star of payments (the ADN and three MGs) plus one MG pair: shares to 1e-6."""
    gains = np.array([100.0, -20.0, 300.0, 50.0])
    powers = np.array([1.0, 2.0, 3.0, 4.0])
    res = bargain(gains, powers, [(0, 1), (0, 2), (0, 3), (1, 2)], tol=1e-9, max_iter=5000)
    np.testing.assert_allclose(res.gains_usd, powers / powers.sum() * gains.sum(), rtol=1e-6)


class _Upper:
    def __init__(self, welfare: float) -> None:
        self.welfare_usd, self.iterations = welfare, 1


def test_alternation_stops_on_a_cycle_with_its_best_member() -> None:
    """Decisions A → B → A: a cycle, not a fixed point; the member with the lower welfare cost is kept."""
    A, B = ((np.array([0.0]),),), ((np.array([1.0]),),)
    welfare = {decisions_key(A): 10.0, decisions_key(B): 7.0}
    out = alternate(lambda d: _Upper(welfare[decisions_key(d)]),
                    [lambda up: (np.array([1.0]),) if up.welfare_usd == 10.0 else (np.array([0.0]),)], A, max_iter=10)
    assert out.outcome == "cycle" and len(out.steps) == 2
    assert decisions_key(out.decisions) == decisions_key(B)


def test_alternation_reports_its_iteration_limit() -> None:
    k = iter(range(100))
    out = alternate(lambda d: _Upper(1.0), [lambda up: (np.array([float(next(k))]),)], ((np.array([-1.0]),),),
                    max_iter=4)
    assert out.outcome == "iteration limit" and not out.converged and len(out.steps) == 4


def test_outer_iteration_limit_is_an_error_that_writes_nothing(run, tmp_path) -> None:
    """The tiny case needs three outer iterations (a cycle); with two the stage fails, naming the last decisions."""
    from conftest import edited_case

    case = edited_case(CASE, tmp_path, ("  adn_bargaining_power: 1.0", "  adn_bargaining_power: 1.0\n  max_iter: 2"))
    out = tmp_path / "out"
    shutil.copytree(run / "cluster", out / "cluster")
    res = adnstudy("coplan", str(case), "--out", str(out))
    assert res.returncode == 1, res.stderr
    assert "coplan.max_iter = 2" in res.stderr and "the last decisions were adn: nothing; north:" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (out / "coplan").exists()


def test_the_loop_changes_decisions_on_the_tiny_case(run, manifest) -> None:
    """Alone, east's turbine does not pay; co-planned (its surplus sold to north) it does: the loop finds it."""
    inv = pd.read_parquet(run / "coplan" / "investment.parquet")
    built = inv[inv["build"]]
    assert not ((built["plan"] == "alone") & (built["investor"] == "east")).any()
    assert ((built["plan"] == "coplan") & (built["investor"] == "east") & (built["tech"] == "wind")).any()
    assert manifest["summary"]["outer_iterations"] >= 2


def test_a_disagreement_point_the_feeder_cannot_carry_is_named(run, tmp_path) -> None:
    """Voltage limits no operation can meet: the MGs' stand-alone plans are named with the limit to blame."""
    from conftest import edited_case

    case = edited_case(CASE, tmp_path, ("  v_min_pu: 0.95", "  v_min_pu: 0.995"),
                       ("  v_substation_range_pu: [1.0, 1.05]", "  v_substation_range_pu: [1.0, 1.0]"))
    out = tmp_path / "out"
    shutil.copytree(run / "cluster", out / "cluster")
    res = adnstudy("coplan", str(case), "--out", str(out))
    assert res.returncode == 1, res.stderr
    assert "the MGs' stand-alone plans (adn: nothing; north: candidates 1; east: nothing)" in res.stderr
    assert "the voltage limits cannot be met" in res.stderr and "Traceback" not in res.stderr
    assert not (out / "coplan").exists()


def test_an_adn_without_candidate_sites_co_plans_with_its_mgs(run, tmp_path) -> None:
    """Only the MGs invest: the ADN has no candidates section, and the result is the same as the ADN's choice
    of nothing above (the tiny case's optimum builds no ADN site)."""
    import re

    from conftest import edited_case

    block = re.search(r"^candidates:\n(?:  .*\n)+", CASE.read_text(), flags=re.M).group(0)
    case = edited_case(CASE, tmp_path, (block, ""))
    out = tmp_path / "out"
    shutil.copytree(run / "cluster", out / "cluster")
    res = adnstudy("coplan", str(case), "--out", str(out))
    assert res.returncode == 0, res.stderr
    inv = pd.read_parquet(out / "coplan" / "investment.parquet")
    assert "adn" not in set(inv["investor"])
    ref = json.loads((run / "coplan" / "manifest.json").read_text())["summary"]["centralised_welfare_usd"]
    mine = json.loads((out / "coplan" / "manifest.json").read_text())["summary"]["centralised_welfare_usd"]
    assert mine == pytest.approx(ref, rel=1e-6)


def test_a_deviation_the_lower_levels_miss_moves_the_loop(run, manifest, enumerated, tmp_path, monkeypatch) -> None:
    """Lower levels that never change anything settle at once, on the disagreement decisions; the stability
    check (the exact lower level) finds the deviations that pay, and the loop moves to the best of them until
    none pays: the result is stable, and the welfare falls at every move (here down to the brute-force
    optimum)."""
    from typer.testing import CliRunner

    from adnstudy.cli import app
    from adnstudy.stages import coplan as stage

    monkeypatch.setattr(stage.Investors, "adn_response", lambda self, up: up.decisions[0])
    monkeypatch.setattr(stage.Investors, "mg_response", lambda self, m, up: up.decisions[m + 1])
    out = tmp_path / "out"
    shutil.copytree(run / "cluster", out / "cluster")
    res = CliRunner().invoke(app, ["coplan", str(CASE), "--out", str(out)])
    assert res.exit_code == 0, res.output
    s = json.loads((out / "coplan" / "manifest.json").read_text())["summary"]
    assert s["deviation_moves"] >= 1 and s["stable"] is True
    assert s["outcome"] == "fixed point" and s["outer_iterations"] == s["deviation_moves"] + 1
    best = min(w for _, w in enumerated.values())
    assert s["welfare_at_decisions_centralised_usd"] == pytest.approx(best, rel=1e-6)
    iters = pd.read_parquet(out / "coplan" / "iterations.parquet")
    per = iters.groupby("iteration").first()
    assert list(per.index) == list(range(1, s["outer_iterations"] + 1))
    assert list(per["chosen_by"]) == ["prices"] + ["check"] * s["deviation_moves"]
    assert (np.diff(per["welfare_usd"]) < 0).all()
    # coplan.follow_deviations: false reports the deviation that pays and stops there
    from conftest import edited_case

    case = edited_case(CASE, tmp_path, ("  adn_bargaining_power: 1.0", "  adn_bargaining_power: 1.0\n  follow_deviations: false"))
    out = tmp_path / "no_restart"
    shutil.copytree(run / "cluster", out / "cluster")
    res = CliRunner().invoke(app, ["coplan", str(case), "--out", str(out)])
    assert res.exit_code == 0, res.output
    s = json.loads((out / "coplan" / "manifest.json").read_text())["summary"]
    assert s["deviation_moves"] == 0 and s["outer_iterations"] == 1 and s["stable"] is False
    assert s["max_deviation_gain_usd"] > 0
    # moves that run out of coplan.max_iter while a deviation still pays: an error, nothing written
    case = edited_case(CASE, tmp_path, ("  adn_bargaining_power: 1.0", "  adn_bargaining_power: 1.0\n  max_iter: 1"))
    out = tmp_path / "limit"
    shutil.copytree(run / "cluster", out / "cluster")
    res = CliRunner().invoke(app, ["coplan", str(case), "--out", str(out)])
    assert res.exit_code == 1, res.output
    assert "coplan.max_iter = 1" in res.output and "would still gain" in res.output
    assert "Traceback" not in res.output and not (out / "coplan").exists()
