"""``make reproduce``'s table builders: a T1 table from a tiny K sweep agrees with the Parquet it read."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from adnstudy.cli import app
from adnstudy.reproduce import main
from tests.conftest import SMALL

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A T1-style sweep (the cluster stage at K = 2 and 3) of the small case, through the command line."""
    base = tmp_path_factory.mktemp("reproduce")
    path = base / "t1.yaml"
    path.write_text(f"case: {SMALL}\nstages: [cluster]\ngrid:\n  clustering.k: [2, 3]\n")
    result = CliRunner().invoke(app, ["sweep", str(path), "--out", str(base / "runs" / "t1"), "--workers", "1"])
    assert result.exit_code == 0, result.output
    return base / "runs"


def test_t1_table_is_the_parquet_it_read(runs: Path, tmp_path: Path):
    assert main(["T1", "--runs", str(runs), "--out", str(tmp_path)]) == 0
    folder = tmp_path / "T1"
    assert {p.name for p in folder.iterdir()} == {"T1.md", "t1_methods.csv", "t1_rmse_by_k.csv", "t1_rmse_vs_k.png"}
    by_k = pd.read_csv(folder / "t1_rmse_by_k.csv").set_index("k")
    assert list(by_k.index) == [2, 3]
    for k in (2, 3):
        metrics = pd.read_parquet(runs / "t1" / "variants" / f"k={k}" / "cluster" / "metrics.parquet")
        assert len(metrics) == 5
        for method, rmse in zip(metrics["method"], metrics["rmse"], strict=True):
            assert by_k.loc[k, f"rmse_{method}"] == pytest.approx(rmse, rel=1e-12)
    # the methods table is the largest K swept when K = 8 is not: every metric as read
    detail = pd.read_csv(folder / "t1_methods.csv")
    metrics = pd.read_parquet(runs / "t1" / "variants" / "k=3" / "cluster" / "metrics.parquet")
    assert list(detail["method"]) == list(metrics["method"])
    for ours, theirs in (("sse_scaled2", "sse"), ("silhouette", "silhouette"), ("rmse_scaled", "rmse"),
                         ("energy_error_frac_wind", "energy_error_wind")):
        assert detail[ours].to_numpy() == pytest.approx(metrics[theirs].to_numpy(), rel=1e-12, abs=1e-15)
    md = (folder / "T1.md").read_text()
    assert "| 3 | " in md and "t1_rmse_vs_k.png" in md


def test_missing_sweep_is_one_error_line_and_writes_nothing(runs: Path, tmp_path: Path, capsys):
    out = tmp_path / "out"
    assert main(["T1", "--runs", str(tmp_path / "none"), "--out", str(out)]) == 2
    assert main(["T2", "--runs", str(runs), "--out", str(out)]) == 2  # the T2 sweeps were not run
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)
    assert "t2_ieee33" in err[1] and "sweep.parquet" in err[1]
    assert not out.exists()


def test_reproduce_sweeps_are_valid():
    """Every sweep file of make reproduce loads, and each variant's case passes the sweep's checks."""
    from adnstudy.sweep.spec import load_sweep, validate

    files = sorted((ROOT / "cases" / "sweeps" / "reproduce").glob("*.yaml"))
    assert len(files) == 9
    for path in files:
        sweep = load_sweep(path)
        assert sweep.name == path.stem and len(validate(sweep)) == len(sweep.variants)
