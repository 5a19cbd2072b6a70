"""Results store and the run pipeline: atomic writes, manifests, skip-if-unchanged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from adnstudy.cli import app
from adnstudy.config.load import load_case
from adnstudy.errors import MissingInputError
from adnstudy.results.store import StageWriter, read_table

ROOT = Path(__file__).resolve().parents[1]


def test_failed_stage_leaves_previous_results(tmp_path):
    case = load_case(ROOT / "cases" / "ieee33.yaml")
    with StageWriter(tmp_path, "demo", case) as w:
        w.table("t", pd.DataFrame({"x": [1, 2]}))
    with pytest.raises(RuntimeError):
        with StageWriter(tmp_path, "demo", case) as w:
            w.table("t", pd.DataFrame({"x": [3, 4, 5]}))
            raise RuntimeError("solver died")
    assert pd.read_parquet(tmp_path / "demo" / "t.parquet")["x"].tolist() == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # no temp folders left
    manifest = json.loads((tmp_path / "demo" / "manifest.json").read_text())
    assert manifest["case"]["file_sha256"] == case.file_sha256
    assert manifest["tables"] == ["t"]


def test_missing_input_names_the_command(tmp_path):
    case = load_case(ROOT / "cases" / "ieee33.yaml")
    with pytest.raises(MissingInputError, match=r"adnstudy cluster .*ieee33.yaml --out"):
        read_table(tmp_path, "cluster", "typical", case)


def test_run_skips_unchanged_and_reruns_on_change(tmp_path):
    case_file = tmp_path / "c.yaml"
    shutil.copy(ROOT / "cases" / "ieee69.yaml", case_file)
    text = case_file.read_text().replace("../configs/defaults.yaml", str(ROOT / "configs" / "defaults.yaml"))
    text = text[: text.index("microgrids:")]  # the stages up to cluster are enough here
    case_file.write_text(text)
    out = tmp_path / "out"
    runner = CliRunner()
    first = runner.invoke(app, ["run", str(case_file), "--out", str(out)])
    assert first.exit_code == 0, first.output
    assert "powerflow    ran" in first.stdout
    stamp = (out / "powerflow" / "manifest.json").read_text()
    second = runner.invoke(app, ["run", str(case_file), "--out", str(out)])
    assert "powerflow    up to date" in second.stdout
    assert (out / "powerflow" / "manifest.json").read_text() == stamp
    forced = runner.invoke(app, ["run", str(case_file), "--out", str(out), "--force"])
    assert "powerflow    ran" in forced.stdout
    # a changed case (heavier load) runs again and gives a different answer
    case_file.write_text(text.replace("base_mva: 10.0", "base_mva: 10.0\n  load_scale: 1.1"))
    third = runner.invoke(app, ["run", str(case_file), "--out", str(out)])
    assert "powerflow    ran" in third.stdout
    summary = pd.read_parquet(out / "powerflow" / "summary.parquet")
    assert summary["p_loss_mw"].iloc[0] * 1000 > 230.0


def test_run_key_follows_data_files_and_single_stage_commands(tmp_path):
    """Editing a user feeder table re-runs the stage; a stage run on its own is not run twice."""
    src = ROOT / "adnstudy" / "data" / "feeders" / "ieee33"
    shutil.copy(src / "buses.csv", tmp_path / "b.csv")
    shutil.copy(src / "branches.csv", tmp_path / "l.csv")
    case_file = tmp_path / "c.yaml"
    case_file.write_text("network: {buses: b.csv, branches: l.csv}\n")
    out = tmp_path / "out"
    runner = CliRunner()
    alone = runner.invoke(app, ["powerflow", str(case_file), "--out", str(out)])
    assert alone.exit_code == 0, alone.output
    assert "powerflow    up to date" in runner.invoke(app, ["run", str(case_file), "--out", str(out)]).stdout
    # heavier load at bus 18 in the CSV only: the case text is unchanged, the stage is stale
    buses = pd.read_csv(tmp_path / "b.csv")
    buses.loc[buses["bus"] == 18, "p_mw"] = 0.5
    buses.to_csv(tmp_path / "b.csv", index=False)
    again = runner.invoke(app, ["run", str(case_file), "--out", str(out)])
    assert "powerflow    ran" in again.stdout
    assert pd.read_parquet(out / "powerflow" / "summary.parquet")["p_loss_mw"].iloc[0] * 1000 > 210.0


def test_profile_kinds_are_checked(tmp_path):
    """A microgrid's load_profile must be a load series; a candidate's profile must match its tech."""
    base = (ROOT / "cases" / "ieee33.yaml").read_text().replace(
        "../configs/defaults.yaml", str(ROOT / "configs" / "defaults.yaml")
    )
    runner = CliRunner()
    bad_mg = tmp_path / "mg.yaml"
    bad_mg.write_text(base.replace("    load_peak_mw: 0.6\n", "    load_peak_mw: 0.6\n    load_profile: pv\n"))
    r = runner.invoke(app, ["validate", str(bad_mg)])
    assert r.exit_code == 2 and "microgrids[0].load_profile" in r.stderr and "pv series, not load" in r.stderr
    bad_site = tmp_path / "site.yaml"
    bad_site.write_text(base.replace("{bus: 7,  tech: pv,", "{bus: 7,  tech: pv, profile: wind,"))
    r = runner.invoke(app, ["validate", str(bad_site)])
    assert r.exit_code == 2 and "candidates.sites[0].profile" in r.stderr and "wind series, not pv" in r.stderr


def test_reliability_goes_through_the_runner(tmp_path):
    """reliability records its run key like every stage; a --plan result has its own folder that run leaves alone."""
    case_file = tmp_path / "c.yaml"
    text = (ROOT / "cases" / "ieee33.yaml").read_text().replace("../configs/defaults.yaml", str(ROOT / "configs" / "defaults.yaml"))
    # reliability and powerflow only: no profiles, candidates, economics, microgrids, market or coplan
    keep = [s for s in text.split("\n\n") if not s.lstrip().startswith(("profiles:", "clustering:", "candidates:",
                                                                         "microgrids:", "market:", "coplan:"))]
    case_file.write_text("\n\n".join(keep))
    out = tmp_path / "out"
    runner = CliRunner()
    alone = runner.invoke(app, ["reliability", str(case_file), "--out", str(out)])
    assert alone.exit_code == 0, alone.output
    first = runner.invoke(app, ["run", str(case_file), "--out", str(out)])
    assert "reliability  up to date" in first.stdout, first.stdout
    # a plan's indices (here: the no-DG network through --plan's folder logic) go to reliability_plan/
    fake_plan = tmp_path / "planned"
    (fake_plan / "plan").mkdir(parents=True)
    result = runner.invoke(app, ["reliability", str(case_file), "--out", str(out), "--plan", str(fake_plan)])
    assert result.exit_code == 2 and "plan/investment.parquet is missing" in result.stderr
    assert not (out / "reliability_plan").exists()
    stamp = (out / "reliability" / "manifest.json").read_text()
    again = runner.invoke(app, ["run", str(case_file), "--out", str(out)])
    assert "reliability  up to date" in again.stdout
    assert (out / "reliability" / "manifest.json").read_text() == stamp
