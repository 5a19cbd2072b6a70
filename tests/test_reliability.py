"""Reliability: indices by formula on a hand-sized feeder, evaluator = optimiser, limits that bind or not."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from adnstudy.checks import case_feeder
from adnstudy.cli import app
from adnstudy.config.load import load_case
from adnstudy.formulation.reliability import reliability_matrices
from adnstudy.reliability.data import HOURS_PER_YEAR, reliability_data
from adnstudy.reliability.evaluate import evaluate

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

#   1 ─b1(breaker)─ 2 ─b2─ 3 ─b3(sectionaliser)─ 4
#                   └─b4(fuse)─ 5
HAND_CASE = """
network: {buses: b.csv, branches: l.csv}
reliability:
  failure_rate_per_yr: 1.0
  repair_h: 4.0
  switching_h: 1.0
  sectionalisers: [[3, 4]]
  fuses: [[2, 5]]
"""


def hand_case(tmp_path: Path, extra: str = "", ties: bool = False) -> Path:
    pd.DataFrame({"bus": [1, 2, 3, 4, 5], "base_kv": 11.0, "p_mw": [0, 0.1, 0.2, 0.3, 0.4],
                  "q_mvar": 0.0, "customers": [0, 10, 20, 30, 40]}).to_csv(tmp_path / "b.csv", index=False)
    lines = pd.DataFrame({
        "from_bus": [1, 2, 3, 2], "to_bus": [2, 3, 4, 5], "r_ohm": 0.1, "x_ohm": 0.1,
        "failure_rate_per_yr": [0.1, 0.2, 0.3, 0.4], "switch": ["breaker", "none", "none", "none"],
        "normally_open": False,
    })
    if ties:
        lines.loc[len(lines)] = {"from_bus": 4, "to_bus": 5, "r_ohm": 0.1, "x_ohm": 0.1, "failure_rate_per_yr": 0.1,
                                 "switch": "tie", "normally_open": True}
    lines.to_csv(tmp_path / "l.csv", index=False)
    (tmp_path / "case.yaml").write_text(HAND_CASE + extra)
    return tmp_path / "case.yaml"


def hand_data(case_file: Path, site_bus: int | None = None, credit: float = 0.5):
    case = load_case(case_file)
    feeder = case_feeder(case)
    load = feeder.buses["p_mw"].to_numpy()
    pos = np.array([feeder.position(site_bus)]) if site_bus else np.empty(0, dtype=int)
    return reliability_data(case, feeder, load, pos, np.full(len(pos), credit)), feeder


def test_hand_computed_indices(tmp_path):
    """Worked by hand (λ = .1, .2, .3, .4 on b1..b4; r = 4 h; switching 1 h):

    b1, b2 (main, above the sectionaliser): the breaker trips, nothing isolates closer than
    the breaker → buses 2-5 out for 4 h. b3 (below the sectionaliser): the breaker trips, the
    sectionaliser opens → 2, 3, 5 back after 1 h, 4 waits 4 h. b4 (fused lateral): only 5, 4 h.
    """
    rd, feeder = hand_data(hand_case(tmp_path))
    res = evaluate(rd)
    f = np.array([0.6, 0.6, 0.6, 1.0])  # buses 2..5
    u = np.array([0.1 * 4 + 0.2 * 4 + 0.3 * 1, 0.1 * 4 + 0.2 * 4 + 0.3 * 1, 0.1 * 4 + 0.2 * 4 + 0.3 * 4,
                  0.1 * 4 + 0.2 * 4 + 0.3 * 1 + 0.4 * 4])
    n = np.array([10, 20, 30, 40])
    load = np.array([0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(res.failures_per_yr[1:], f)
    np.testing.assert_allclose(res.unavailability_h_per_yr[1:], u)
    assert res.saifi == pytest.approx((n @ f) / 100)  # 0.76
    assert res.saidi_h == pytest.approx((n @ u) / 100)  # 2.41
    assert res.caidi_h == pytest.approx(res.saidi_h / res.saifi)
    assert res.asai == pytest.approx(1 - res.saidi_h / HOURS_PER_YEAR)
    assert res.eens_mwh == pytest.approx(load @ u)
    assert (res.saifi, res.saidi_h) == (pytest.approx(0.76), pytest.approx(2.41))
    # the planner's matrices say the same
    mat = reliability_matrices(rd)
    np.testing.assert_allclose(mat.failures, res.failures_per_yr, atol=1e-12)
    np.testing.assert_allclose(mat.unavail0, res.unavailability_h_per_yr, atol=1e-12)


def test_island_and_tie_restoration(tmp_path):
    # DG at bus 4 credited 0.5 per MW: 0.5 MW is short of its 0.3 MW load, 0.6 MW covers it
    rd, _ = hand_data(hand_case(tmp_path), site_bus=4, credit=0.5)
    short, enough = evaluate(rd, np.array([0.5])), evaluate(rd, np.array([0.6]))
    assert short.unavailability_h_per_yr[3] == pytest.approx(2.4)
    # faults b1, b2 isolate at the breaker; the island below the sectionaliser is back after 1 h
    assert enough.unavailability_h_per_yr[3] == pytest.approx(0.1 * 1 + 0.2 * 1 + 0.3 * 4)
    assert enough.saidi_h == pytest.approx((15 + 30 + 30 * 1.5 + 124) / 100)
    mat = reliability_matrices(rd)
    assert len(mat.island_switch) == 1 and mat.island_load_mw[0] == pytest.approx(0.3)
    np.testing.assert_allclose(mat.unavail0 - mat.G[:, 0], enough.unavailability_h_per_yr, atol=1e-12)
    # a sectionaliser on b2 too and a tie 4-5: for a fault on b2 the area below b3 is fed through the tie
    d2 = tmp_path / "tie"
    d2.mkdir()
    case2 = hand_case(d2, ties=True)
    case2.write_text(case2.read_text().replace("sectionalisers: [[3, 4]]", "sectionalisers: [[3, 4], [2, 3]]"))
    rd2, _ = hand_data(case2)
    res2 = evaluate(rd2)
    # bus 4: b1 → 4 h (everything isolated, the tie's far end too); b2 → tie, 1 h; b3 → 4 h
    assert res2.unavailability_h_per_yr[3] == pytest.approx(0.1 * 4 + 0.2 * 1 + 0.3 * 4)
    np.testing.assert_allclose(reliability_matrices(rd2).unavail0, res2.unavailability_h_per_yr, atol=1e-12)


def test_reliability_command_matches_hand_figures(tmp_path):
    result = runner.invoke(app, ["reliability", str(hand_case(tmp_path)), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(tmp_path / "out" / "reliability" / "reliability.parquet").set_index("index")
    assert table.loc["SAIFI", "value"] == pytest.approx(0.76)
    assert table.loc["SAIDI", "value"] == pytest.approx(2.41)
    assert table.loc["EENS", "unit"] == "MWh/yr"
    bus = pd.read_parquet(tmp_path / "out" / "reliability" / "bus_reliability.parquet")
    assert bus["eens_mwh_per_yr"].sum() == pytest.approx(table.loc["EENS", "value"])


# ------------------------------------------------------------------ the shipped case, 2 typical days


def shipped_variant(tmp_path: Path, name: str, **replace: str) -> Path:
    text = (ROOT / "cases" / "ieee33.yaml").read_text().replace("../configs/defaults.yaml", str(ROOT / "configs" / "defaults.yaml"))
    text = text.replace("clustering:\n  k: 8", "clustering:\n  k: 2").replace("voll_usd_per_mwh: 5000", "voll_usd_per_mwh: 0")
    for old, new in replace.items():
        text = text.replace(old, new)
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Plans of the shipped case (K = 2, VOLL 0): without reliability, a loose and a tight SAIDI limit."""
    tmp = tmp_path_factory.mktemp("rel")
    base = shipped_variant(tmp, "base")
    assert runner.invoke(app, ["cluster", str(base), "--out", str(tmp / "none")]).exit_code == 0
    out = {}
    for label, limit in (("none", None), ("loose", "10.0"), ("tight", "5.9")):
        case = base if limit is None else shipped_variant(tmp, label, **{"saidi_limit_h: 8.0": f"saidi_limit_h: {limit}"})
        folder = tmp / label
        if label != "none":
            shutil.copytree(tmp / "none" / "cluster", folder / "cluster")
        args = ["plan", str(case), "--out", str(folder)] + (["--no-reliability"] if limit is None else [])
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        out[label] = (case, folder)
    return out


def test_loose_limit_leaves_the_plan_alone(study):
    a = pd.read_parquet(study["none"][1] / "plan" / "investment.parquet")
    b = pd.read_parquet(study["loose"][1] / "plan" / "investment.parquet")
    assert a["build"].tolist() == b["build"].tolist()
    np.testing.assert_allclose(a["capacity_mw"], b["capacity_mw"], atol=1e-4)


def test_tight_limit_binds_and_changes_the_plan(study):
    none_case, none_dir = study["none"]
    # the unconstrained plan's SAIDI, by fault enumeration, violates the tight limit ...
    result = runner.invoke(app, ["reliability", str(study["tight"][0]), "--plan", str(none_dir), "--out", str(none_dir)])
    assert result.exit_code == 0, result.output
    before = pd.read_parquet(none_dir / "reliability_plan" / "reliability.parquet").set_index("index").loc["SAIDI", "value"]
    assert before > 5.9
    # ... so the constrained plan differs and meets it
    tight = study["tight"][1] / "plan"
    rel = pd.read_parquet(tight / "reliability.parquet").set_index("index")
    assert rel.loc["SAIDI", "value"] <= 5.9 + 1e-9
    a = pd.read_parquet(none_dir / "plan" / "investment.parquet")
    b = pd.read_parquet(tight / "investment.parquet")
    assert not np.allclose(a["capacity_mw"], b["capacity_mw"], atol=1e-3)


def test_evaluator_equals_optimiser_on_shipped_case(study):
    """The plan stage's own check (1e-6), and the separate command reproducing its table."""
    case, folder = study["tight"]
    manifest = json.loads((folder / "plan" / "manifest.json").read_text())
    assert manifest["reliability"]["max_rel_difference"] <= 1e-6
    result = runner.invoke(app, ["reliability", str(case), "--plan", str(folder), "--out", str(folder)])
    assert result.exit_code == 0
    a = pd.read_parquet(folder / "plan" / "reliability.parquet")
    b = pd.read_parquet(folder / "reliability_plan" / "reliability.parquet")
    np.testing.assert_allclose(a["value"], b["value"], rtol=1e-12)
    # and without DG: the matrices against enumeration on the shipped feeder
    case_obj = load_case(case)
    feeder = case_feeder(case_obj)
    rd = reliability_data(case_obj, feeder, feeder.buses["p_mw"].to_numpy(), np.empty(0, dtype=int), np.empty(0))
    np.testing.assert_allclose(reliability_matrices(rd).unavail0, evaluate(rd).unavailability_h_per_yr, atol=1e-12)


def test_unreachable_limit_is_named(study, tmp_path):
    case = shipped_variant(tmp_path, "impossible", **{"saidi_limit_h: 8.0": "saidi_limit_h: 3.0"})
    shutil.copytree(study["none"][1] / "cluster", tmp_path / "out" / "cluster")
    result = runner.invoke(app, ["plan", str(case), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "reliability constraint" in result.stderr and "saidi_limit_h" in result.stderr
    assert not (tmp_path / "out" / "plan").exists()
