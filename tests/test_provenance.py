"""A stage uses an earlier stage's tables only if they are what that stage wrote for this case, and hold sane values.

The issue's examples on the small case: typical days clustered with another K,
another case's cluster folder copied in, a plan made before ``candidates``
were edited, edited and corrupted tables, missing or broken manifests. Each is
refused with exit 2 before anything is solved, naming the folder or file and the
command to re-run; ``--force-inputs`` lets provenance failures through with a
warning recorded in the manifest, never unreadable or out-of-range tables.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import edited_case
from typer.testing import CliRunner, Result

from adnstudy.cli import app
from adnstudy.config.load import load_case
from adnstudy.pipeline import run_key
from adnstudy.stages.registry import BY_NAME, STAGES

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "tests" / "cases" / "small"
runner = CliRunner()


def small_case(folder: Path, *edits: tuple[str, str]) -> Path:
    """The small case (edited) with its feeder tables, in ``folder``."""
    return edited_case(SMALL / "case.yaml", folder, *edits)


def cli(*args: object) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def ok(*args: object) -> Result:
    result = cli(*args)
    assert result.exit_code == 0, result.output
    return result


def refused(result: Result, *needles: str) -> str:
    """Exit 2, one clear message (no traceback) holding every needle."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "internal error" not in result.stderr
    for needle in needles:
        assert needle in result.stderr, f"{needle!r} not in:\n{result.stderr}"
    return result.stderr


@pytest.fixture(scope="module")
def planned(tmp_path_factory) -> tuple[Path, Path]:
    """The small case clustered and planned by its own commands: (case, results folder)."""
    base = tmp_path_factory.mktemp("prov")
    case = small_case(base / "case")
    out = base / "out"
    ok("cluster", case, "--out", out)
    ok("plan", case, "--out", out)
    return case, out


def copy_results(src: Path, dst: Path, *stages: str) -> Path:
    for stage in stages:
        shutil.copytree(src / stage, dst / stage)
    return dst


# ---------------------------------------------------------------------------------- the three examples
@pytest.mark.parametrize("command", ["plan", "dispatch"])
def test_typical_days_of_another_k_are_refused(planned, tmp_path, command) -> None:
    _, src = planned
    out = copy_results(src, tmp_path / "out", "cluster")
    case = small_case(tmp_path / "k2", ("k: 3", "k: 2"))
    refused(cli(command, case, "--out", out, "--no-reliability" if command == "plan" else "--no-plan"),
            f"{out / 'cluster'} was produced from different case content (clustering changed)",
            f"re-run 'adnstudy cluster {case} --out {out}'", "--force-inputs")
    assert sorted(p.name for p in out.iterdir()) == ["cluster"]  # nothing written, no temporary folder


def test_another_cases_cluster_folder_is_refused(planned, tmp_path) -> None:
    """Another case (other profiles) clustered into its own folder; its cluster folder copied in."""
    case, _ = planned
    other = small_case(tmp_path / "other", ("wind: {kind: wind, column: WP4}",
                                            "wind: {kind: wind, column: WP4, normalise: none}"), ("k: 3", "k: 2"))
    ok("cluster", other, "--out", tmp_path / "other_out")
    out = copy_results(tmp_path / "other_out", tmp_path / "out", "cluster")
    refused(cli("dispatch", case, "--out", out, "--day", "0"),
            f"{out / 'cluster'} was produced from different case content (profiles changed; clustering changed)",
            "re-run 'adnstudy cluster")
    assert not (out / "dispatch").exists()


def test_a_plan_made_before_candidates_were_edited_is_refused_unless_forced(planned, tmp_path) -> None:
    _, src = planned
    out = copy_results(src, tmp_path / "out", "cluster", "plan")
    case = small_case(tmp_path / "edited", ("max_penetration: 0.9", "max_penetration: 0.85"))
    message = f"{out / 'plan'} was produced from different case content (candidates changed)"
    refused(cli("dispatch", case, "--out", out, "--day", "0"), message, f"re-run 'adnstudy plan {case} --out {out}'",
            "or run dispatch with --no-plan")
    refused(cli("reliability", case, "--plan", out, "--out", out), message)  # another folder's plan: the same check
    assert sorted(p.name for p in out.iterdir()) == ["cluster", "plan"]
    # forced: a warning on stderr and in the manifest; the run key is the one without --force-inputs
    result = ok("dispatch", case, "--out", out, "--day", "0", "--force-inputs")
    assert f"--force-inputs: {message}" in result.stderr
    manifest = json.loads((out / "dispatch" / "manifest.json").read_text())
    assert len(manifest["forced_inputs"]) == 1 and manifest["forced_inputs"][0].startswith(message)
    assert manifest["run_key"] == run_key(load_case(case), out, BY_NAME["dispatch"], {"scenarios": [0]})
    assert manifest["options"] == {"scenarios": [0]} and manifest["plan"] is not None


def test_a_plan_with_other_options_names_them_in_the_command(planned, tmp_path) -> None:
    """The re-run command carries the options the plan was made with (its manifest's)."""
    _, src = planned
    out = copy_results(src, tmp_path / "out", "cluster")
    case = small_case(tmp_path / "case")
    ok("plan", case, "--out", out, "--no-reliability")
    edited = small_case(tmp_path / "edited", ("max_penetration: 0.9", "max_penetration: 0.85"))
    refused(cli("dispatch", edited, "--out", out, "--day", "0"),
            f"re-run 'adnstudy plan {edited} --out {out} --no-reliability'")
    # a plan without the reliability limits does not depend on them
    loose = small_case(tmp_path / "loose", ("saidi_limit_h: 2.08", "saidi_limit_h: 3.0"))
    stage = BY_NAME["plan"]
    assert "reliability" not in stage.depends_on({"reliability": False})[0]
    assert run_key(load_case(loose), out, stage, {"reliability": False}) == \
        json.loads((out / "plan" / "manifest.json").read_text())["run_key"]


def test_a_stale_plan_names_the_table_it_read(planned, tmp_path) -> None:
    """cluster re-run with another K after the plan: the plan no longer matches the typical days beside it."""
    _, src = planned
    out = copy_results(src, tmp_path / "out", "cluster", "plan")
    k2 = small_case(tmp_path / "k2", ("k: 3", "k: 2"))
    ok("cluster", k2, "--out", out)
    refused(cli("dispatch", k2, "--out", out, "--day", "0"),
            f"{out / 'plan'} was produced from other inputs (cluster/typical is not the table it read; "
            "cluster/weights is not the table it read)", "re-run 'adnstudy plan")


# ---------------------------------------------------------------------------------- manifests and edited tables
def test_missing_corrupt_or_old_manifest_is_an_error(planned, tmp_path) -> None:
    case, src = planned
    out = copy_results(src, tmp_path / "out", "cluster")
    manifest = out / "cluster" / "manifest.json"
    original = manifest.read_text()
    manifest.unlink()
    refused(cli("plan", case, "--out", out), f"{manifest} is missing", f"re-run 'adnstudy cluster {case} --out {out}'")
    manifest.write_text(original[: len(original) // 2])
    refused(cli("plan", case, "--out", out), f"{manifest} is not a readable manifest (JSONDecodeError")
    old = json.loads(original)
    del old["table_sha256"]
    manifest.write_text(json.dumps(old))
    refused(cli("plan", case, "--out", out), f"{manifest} does not record its tables' digests")
    assert not (out / "plan").exists()
    # forced: the plan is made, and its manifest says from what
    manifest.unlink()
    result = ok("plan", case, "--out", out, "--no-reliability", "--force-inputs")
    assert f"--force-inputs: {manifest} is missing" in result.stderr
    forced = json.loads((out / "plan" / "manifest.json").read_text())["forced_inputs"]
    assert len(forced) == 1 and forced[0].startswith(f"{manifest} is missing")


def test_run_reruns_a_stage_whose_own_manifest_is_broken(tmp_path) -> None:
    (tmp_path / "case.yaml").write_text("network: {feeder: ieee33}\n")
    out = tmp_path / "out"
    ok("run", tmp_path / "case.yaml", "--out", out)
    assert re.search(r"^powerflow +up to date", ok("run", tmp_path / "case.yaml", "--out", out).stdout, re.M)
    (out / "powerflow" / "manifest.json").write_text("{not json")
    assert re.search(r"^powerflow +ran", ok("run", tmp_path / "case.yaml", "--out", out).stdout, re.M)
    assert json.loads((out / "powerflow" / "manifest.json").read_text())["stage"] == "powerflow"


def rewrite(path: Path, edit) -> None:
    df = pd.read_parquet(path)
    edit(df)
    df.to_parquet(path, index=False)


def test_an_edited_table_is_refused(planned, tmp_path) -> None:
    case, src = planned
    out = copy_results(src, tmp_path / "out", "cluster")
    table = out / "cluster" / "weights.parquet"
    rewrite(table, set_column("representative_date", lambda df: None))  # a column no reader uses
    refused(cli("plan", case, "--out", out), f"{table} was changed after 'cluster' wrote it", "re-run 'adnstudy cluster")


# ---------------------------------------------------------------------------------- bad tables: never overridable
def corrupt_bytes(kind: str, path: Path) -> None:
    data = path.read_bytes()
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(b"not a parquet file\n" * 20)


@pytest.mark.parametrize("kind", ["empty", "truncated", "garbage"])
def test_unreadable_parquet_names_the_file_and_its_stage(planned, tmp_path, kind) -> None:
    case, src = planned
    out = copy_results(src, tmp_path / "out", "cluster")
    table = out / "cluster" / "typical.parquet"
    corrupt_bytes(kind, table)
    for args in (("plan", case, "--out", out, "--force-inputs"), ("dispatch", case, "--out", out, "--day", "0")):
        refused(cli(*args), f"{table} is not a readable Parquet table", "the table is written by 'cluster'",
                f"re-run 'adnstudy cluster {case} --out {out}'")
    assert sorted(p.name for p in out.iterdir()) == ["cluster"]


def set_value(series: str, k: int, value: float):
    """Set the value of the k-th row of a series in cluster/typical (rows: scenario, hour, series)."""
    def edit(df: pd.DataFrame) -> None:
        df.loc[df.index[df["series"] == series][k], "value"] = value
    return edit


def drop_row(series: str, k: int):
    def edit(df: pd.DataFrame) -> None:
        df.drop(index=df.index[df["series"] == series][k], inplace=True)
    return edit


def set_column(name: str, values):
    def edit(df: pd.DataFrame) -> None:
        df[name] = values(df)
    return edit


def drop_column(name: str):
    def edit(df: pd.DataFrame) -> None:
        df.drop(columns=name, inplace=True)
    return edit


BAD_VALUES = [
    # (table, edit, what the message says)
    ("weights", drop_column("days"), "no column 'days'"),
    ("weights", set_column("days", lambda df: 0), "row 0 (scenario 0): column 'days' is 0, which is not above 0"),
    ("weights", set_column("days", lambda df: df["days"] + 1), "the days sum to 370, but 'cluster' clustered 366 days"),
    ("weights", set_column("weight_days", lambda df: df["weight_days"] * 2), "weight_days sum to 730, not 365"),
    ("weights", set_column("scenario", lambda df: df["scenario"] + 10),
     "typical.parquet: row 0 (scenario 0, hour 0, series 'load'): scenario 0 is not in cluster/weights (its scenarios: "
     "10, 11, 12, 13)"),
    ("typical", set_value("load", 40, -22.0),
     "row 120 (scenario 1, hour 16, series 'load'): column 'value' is -22, outside 0 to 1.05 for a load series"),
    ("typical", set_value("pv", 12, -518.0),
     "column 'value' is -518, outside 0 to 1.05 for a pv series (per unit of rating)"),
    ("typical", set_value("wind", 3, np.nan), "column 'value' is nan, which is not a finite number"),
    ("typical", drop_row("wind", 5), "scenario 0 has 23 of the 24 hours of series 'wind'"),
]


@pytest.mark.parametrize(("table", "edit", "needle"), BAD_VALUES, ids=lambda x: x if isinstance(x, str) else "")
def test_bad_values_are_refused_even_when_forced(planned, tmp_path, table, edit, needle) -> None:
    case, src = planned
    out = copy_results(src, tmp_path / "out", "cluster")
    path = out / "cluster" / f"{table}.parquet"
    rewrite(path, edit)
    refused(cli("plan", case, "--out", out, "--force-inputs"), f"{out / 'cluster'}/", needle,
            "the table is written by 'cluster', re-run 'adnstudy cluster")
    assert not (out / "plan").exists()


def test_a_bad_investment_table_is_refused(planned, tmp_path) -> None:
    case, src = planned
    out = copy_results(src, tmp_path / "out", "cluster", "plan")
    path = out / "plan" / "investment.parquet"
    rewrite(path, set_column("capacity_mw", lambda df: df["capacity_mw"] * 1e6))
    refused(cli("dispatch", case, "--out", out, "--day", "0", "--force-inputs"), f"{path}: row 0 (site 0, bus 4, ",
            "above the candidate's max_mw 0.6", "written by 'plan'")
    rewrite(path, set_column("bus", lambda df: df["bus"] + 100))
    refused(cli("reliability", case, "--plan", out, "--out", out, "--force-inputs"),
            "this case's candidate 0 is wind at bus 4")


# ---------------------------------------------------------------------------------- the option and the run key
def test_force_inputs_is_an_option_of_the_stages_that_read_tables() -> None:
    reads = {s.name for s in STAGES if "force_inputs" in {o.name for o in s.command_options}}
    assert reads == {"reliability", "plan", "dispatch", "coplan"}
    assert cli("cluster", SMALL / "case.yaml", "--force-inputs").exit_code == 2  # no such option


def test_single_stage_commands_record_the_run_key_run_compares(planned) -> None:
    """`adnstudy run` after the stage commands finds cluster and plan up to date (same keys)."""
    case, out = planned
    c = load_case(case)
    for stage in ("cluster", "plan"):
        manifest = json.loads((out / stage / "manifest.json").read_text())
        assert manifest["run_key"] == run_key(c, out, BY_NAME[stage]), stage
        assert manifest["forced_inputs"] == [] and set(manifest["table_sha256"]) == set(manifest["tables"])
