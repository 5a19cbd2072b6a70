"""No stage trusts results that are not its case's: stale, foreign, edited or broken upstream tables are refused
(exit 2, naming the stage to re-run) before anything is solved; ``--force-inputs`` overrides the provenance
check with a recorded warning, never the content checks.

Each test reproduces a defect of issue 11 that used to exit 0 with a wrong result (or an internal error).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import IEEE33, SMALL
from test_pipeline import small_variant
from typer.testing import CliRunner

from adnstudy.cli import app

runner = CliRunner()


def cli(*args) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def clustered(tmp_path_factory) -> Path:
    """The small case clustered (k = 3) and planned, once."""
    out = tmp_path_factory.mktemp("prov") / "out"
    for stage in ("cluster", "plan"):
        code, text = cli(stage, SMALL, "--out", out)
        assert code == 0, text
    return out


def copy_of(out: Path, tmp_path: Path, *stages: str) -> Path:
    dst = tmp_path / "out"
    for s in stages:
        shutil.copytree(out / s, dst / s)
    return dst


def test_plan_refuses_the_typical_days_of_another_k(clustered, tmp_path) -> None:
    out = copy_of(clustered, tmp_path, "cluster")
    case = small_variant(tmp_path, "k2", ("k: 3", "k: 2"))
    code, text = cli("plan", case, "--out", out)
    assert code == 2, text
    assert "case section 'clustering' changed" in text and "re-run 'adnstudy cluster" in text
    assert "--force-inputs" in text
    assert not (out / "plan").exists()


def test_dispatch_refuses_another_cases_typical_days_unless_forced(clustered, tmp_path) -> None:
    """Another case's cluster folder copied in gave exit 0 and a market cost of 13,857.76 instead of 3,239.53 USD."""
    other = tmp_path / "ieee33"
    code, text = cli("cluster", IEEE33, "--out", other)
    assert code == 0, text
    out = tmp_path / "out"
    shutil.copytree(other / "cluster", out / "cluster")
    code, text = cli("dispatch", SMALL, "--out", out, "--day", "0")
    assert code == 2, text
    assert f"{out / 'cluster'} was produced from different inputs" in text
    assert "case section 'clustering' changed" in text  # same SimBench profiles, other K
    assert not (out / "dispatch").exists()

    code, text = cli("dispatch", SMALL, "--out", out, "--day", "0", "--force-inputs")
    manifest = json.loads((out / "dispatch" / "manifest.json").read_text())
    assert code == 0, text
    assert len(manifest["forced_inputs"]) == 1 and "cluster" in manifest["forced_inputs"][0]


def test_dispatch_refuses_a_plan_whose_candidates_were_edited(clustered, tmp_path) -> None:
    """Dispatch used OUT/plan's capacities even after the case's candidates changed."""
    out = copy_of(clustered, tmp_path, "cluster", "plan")
    case = small_variant(tmp_path, "pen", ("max_penetration: 0.9", "max_penetration: 0.85"))
    code, text = cli("dispatch", case, "--out", out, "--day", "0")
    assert code == 2, text
    assert "case section 'candidates' changed" in text and "re-run 'adnstudy plan" in text and "--no-plan" in text
    code, text = cli("dispatch", case, "--out", out, "--day", "0", "--no-plan")
    assert code == 0, text


def test_a_plan_made_on_other_typical_days_is_stale(clustered, tmp_path) -> None:
    """Re-clustering after planning makes the plan stale for dispatch: the tables it read changed since."""
    out = copy_of(clustered, tmp_path, "cluster", "plan")
    weights = pd.read_parquet(out / "cluster" / "weights.parquet")
    manifest = json.loads((out / "cluster" / "manifest.json").read_text())
    case = small_variant(tmp_path, "k2", ("k: 3", "k: 2"))
    code, text = cli("cluster", case, "--out", out)
    assert code == 0, text
    assert len(pd.read_parquet(out / "cluster" / "weights.parquet")) != len(weights)
    code, text = cli("dispatch", case, "--out", out, "--day", "0")
    assert code == 2, text
    assert "input table 'cluster/typical' changed since" in text and "re-run 'adnstudy plan" in text
    assert manifest["table_sha256"]


def test_an_edited_table_is_refused_and_its_content_checked_even_when_forced(clustered, tmp_path) -> None:
    """weights.days = 0 gave 'market cost 0.00 USD' with exit 0."""
    out = copy_of(clustered, tmp_path, "cluster")
    path = out / "cluster" / "weights.parquet"
    weights = pd.read_parquet(path)
    weights["days"] = 0
    weights["weight_days"] = 0.0
    weights.to_parquet(path, index=False)
    code, text = cli("dispatch", SMALL, "--out", out, "--day", "0")
    assert code == 2, text
    assert f"{path} was changed after 'cluster' wrote it" in text
    code, text = cli("dispatch", SMALL, "--out", out, "--day", "0", "--force-inputs")
    assert code == 2, text
    assert f"{path}: column 'days' is 0" in text and "below its range" in text
    assert not (out / "dispatch").exists()


@pytest.mark.parametrize(("series", "value", "expected"), [
    ("load", -22.0, "a load value is -22"), ("pv", -518.0, "a pv value is -518"), ("wind", float("nan"), "is nan"),
])
def test_corrupt_typical_days_are_named_not_solved(clustered, tmp_path, series, value, expected) -> None:
    """A 200-byte corruption gave load -22 pu and PV -518 pu, then a misleading 'infeasible: branch ratings'."""
    out = copy_of(clustered, tmp_path, "cluster")
    path = out / "cluster" / "typical.parquet"
    typical = pd.read_parquet(path)
    typical.loc[typical.index[typical["series"] == series][5], "value"] = value
    typical.to_parquet(path, index=False)
    code, text = cli("plan", SMALL, "--out", out, "--force-inputs")
    assert code == 2, text
    assert str(path) in text and expected in text and "re-run 'cluster'" in text
    assert "infeasible" not in text


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "no_column"])
def test_an_unreadable_table_is_an_input_error(clustered, tmp_path, damage) -> None:
    """0-byte, truncated or garbage Parquet, or a missing column, gave 'internal error: ArrowInvalid/KeyError'."""
    out = copy_of(clustered, tmp_path, "cluster")
    path = out / "cluster" / "typical.parquet"
    data = path.read_bytes()
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"PAR1" + bytes(range(256)) * 4)
    else:
        pd.read_parquet(path).drop(columns="hour").to_parquet(path, index=False)
    code, text = cli("plan", SMALL, "--out", out, "--force-inputs")
    assert code == 2, text
    assert str(path) in text and "internal error" not in text
    assert ("column 'hour' is missing" in text) if damage == "no_column" else ("not a readable Parquet table" in text)


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_a_missing_or_corrupt_manifest_is_an_error(clustered, tmp_path, damage) -> None:
    out = copy_of(clustered, tmp_path, "cluster")
    manifest = out / "cluster" / "manifest.json"
    if damage == "missing":
        manifest.unlink()
    else:
        manifest.write_text(manifest.read_text()[:100])
    code, text = cli("plan", SMALL, "--out", out)
    assert code == 2, text
    assert str(manifest) in text and "re-run 'adnstudy cluster'" in text
    assert ("is missing" in text) if damage == "missing" else ("not a readable manifest" in text)


def test_reliability_of_a_plan_checks_the_plan_folder(clustered, tmp_path) -> None:
    case = small_variant(tmp_path, "pen", ("max_penetration: 0.9", "max_penetration: 0.85"))
    code, text = cli("reliability", case, "--out", tmp_path / "r", "--plan", clustered)
    assert code == 2, text
    assert f"{clustered / 'plan'} was produced from different inputs" in text
    code, text = cli("reliability", SMALL, "--out", tmp_path / "r", "--plan", clustered)
    assert code == 0, text
