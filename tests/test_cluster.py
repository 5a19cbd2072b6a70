"""Typical days: density peaks against brute force, recovery of known clusters, metrics by numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score
from typer.testing import CliRunner

from adnstudy.cli import app
from adnstudy.cluster.density_peaks import (
    _linear_quantile,
    _quantile_ranks,
    density_peaks,
    density_peaks_points,
    pairwise,
)
from adnstudy.cluster.typical_days import DayData, aggregate, score

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def synthetic_days(n_per: int = 60, noise: float = 0.03, seed: int = 1) -> tuple[DayData, np.ndarray]:
    """Four known day shapes of (load, pv, wind), each repeated with small noise."""
    rng = np.random.default_rng(seed)
    h = np.arange(24)
    load = [0.5 + 0.4 * np.sin((h - 6) / 24 * 2 * np.pi), 0.3 + 0.1 * np.cos(h / 24 * 2 * np.pi), 0.8 - 0.3 * (h > 12), 0.4 + 0.02 * h]
    pv = [np.clip(np.sin((h - 6) / 12 * np.pi), 0, None) * a for a in (0.9, 0.2, 0.6, 0.0)]
    wind = [np.full(24, w) for w in (0.1, 0.8, 0.4, 0.6)]
    centres = np.stack([np.stack([load[c], pv[c], wind[c]], axis=1) for c in range(4)])  # c × hour × series
    truth = np.repeat(np.arange(4), n_per)
    values = np.clip(centres[truth] + rng.normal(0, noise, size=(len(truth), 24, 3)), 0, None)
    order = rng.permutation(len(truth))
    values, truth = values[order], truth[order]
    data = DayData(
        dates=pd.date_range("2021-01-01", periods=len(truth), freq="D"),
        series=("load", "pv", "wind"),
        kinds=("load", "pv", "wind"),
        values=values,
        lo=values.min(axis=(0, 1)),
        hi=values.max(axis=(0, 1)),
    )
    return data, truth


def brute_force_density_peaks(x: np.ndarray, frac: float, kernel: str):
    n = len(x)
    d = [[float(np.sqrt(((x[i] - x[j]) ** 2).sum())) for j in range(n)] for i in range(n)]
    pairs = sorted(d[i][j] for i in range(n) for j in range(i + 1, n))
    dc = float(np.quantile(pairs, frac))
    rho = []
    for i in range(n):
        if kernel == "cutoff":
            rho.append(sum(1.0 for j in range(n) if j != i and d[i][j] < dc))
        else:
            rho.append(sum(np.exp(-((d[i][j] / dc) ** 2)) for j in range(n) if j != i))
    delta = []
    for i in range(n):
        denser = [j for j in range(n) if rho[j] > rho[i] or (rho[j] == rho[i] and j < i)]
        delta.append(min(d[i][j] for j in denser) if denser else max(d[i]))
    return np.array(rho), np.array(delta)


@pytest.mark.parametrize("kernel", ["gaussian", "cutoff"])
def test_density_peaks_matches_brute_force(kernel):
    x = np.random.default_rng(3).normal(size=(40, 5))
    dp = density_peaks(pairwise(x), 0.05, kernel)
    rho, delta = brute_force_density_peaks(x, 0.05, kernel)
    np.testing.assert_allclose(dp.rho, rho, rtol=1e-12)
    np.testing.assert_allclose(dp.delta, delta, rtol=1e-12)
    np.testing.assert_allclose(dp.gamma, rho * delta, rtol=1e-12)
    pts = density_peaks_points(x, 0.05, kernel, block=8, matrix_below=0)
    np.testing.assert_allclose(pts.rho, rho, rtol=1e-12)
    np.testing.assert_allclose(pts.delta, delta, rtol=1e-12)



def _awkward_points(case: str) -> np.ndarray:
    rng = np.random.default_rng(11)
    if case == "normal":
        return rng.normal(size=(300, 6))
    if case == "duplicates":  # repeated days: zero distances, tied densities, tied nearest points
        x = rng.normal(size=(200, 4))
        x = np.vstack([x, x[rng.integers(0, 200, 80)]])
        return x[rng.permutation(len(x))]
    if case == "grid":  # integer points: ties in every distance and duplicates
        return rng.integers(0, 4, size=(250, 3)).astype(float)
    if case == "offset":  # a small spread far from the origin: the centring and the error bound
        return 100.0 + 0.01 * rng.normal(size=(260, 8))
    if case == "few_distinct":  # most pairs identical: d_c falls back to the smallest positive distance
        return np.repeat(rng.normal(size=(3, 2)), [90, 60, 30], axis=0)
    raise ValueError(case)


@pytest.mark.parametrize("kernel", ["gaussian", "cutoff"])
@pytest.mark.parametrize("case", ["normal", "duplicates", "grid", "offset", "few_distinct"])
@pytest.mark.parametrize("frac", [0.02, 0.3])
def test_points_path_equals_matrix_path(kernel, case, frac):
    """The blocked computation from the points gives the matrix path's answer, ties included."""
    x = _awkward_points(case)
    ref = density_peaks(pairwise(x), frac, kernel)
    for block in (7, 64, 1024):
        dp = density_peaks_points(x, frac, kernel, block=block, matrix_below=0)
        assert dp.dc == ref.dc
        if kernel == "cutoff":
            np.testing.assert_array_equal(dp.rho, ref.rho)
        else:
            np.testing.assert_allclose(dp.rho, ref.rho, rtol=1e-12)
        n = len(x)
        np.testing.assert_array_equal(np.lexsort((np.arange(n), -dp.rho)), np.lexsort((np.arange(n), -ref.rho)))
        np.testing.assert_array_equal(dp.delta, ref.delta)
        np.testing.assert_array_equal(dp.nearest_denser, ref.nearest_denser)
        np.testing.assert_allclose(dp.gamma, ref.gamma, rtol=1e-12)
        np.testing.assert_array_equal(dp.seeds(n), ref.seeds(n))


def test_points_path_small_sets_use_the_matrix():
    x = _awkward_points("normal")
    dp, ref = density_peaks_points(x), density_peaks(pairwise(x))
    np.testing.assert_array_equal(dp.rho, ref.rho)
    with pytest.raises(ValueError, match="at least two"):
        density_peaks_points(x[:1], matrix_below=0)
    with pytest.raises(ValueError, match="kernel"):
        density_peaks_points(x, kernel="box", matrix_below=0)


def test_linear_quantile_is_numpys():
    rng = np.random.default_rng(5)
    for m in (1, 2, 3, 10, 997, 66795):
        values = np.sort(rng.random(m))
        for q in (0.0, 0.02, 0.05, 0.3, 0.5, 0.77, 0.999, 1.0, *rng.random(5)):
            lo, hi = _quantile_ranks(m, q)
            hi = min(hi, m - 1)
            assert _linear_quantile(values[lo], values[hi], m, q) == np.quantile(values, q)


def test_seeds_land_in_distinct_true_clusters_and_kmeans_recovers_them():
    data, truth = synthetic_days()
    res, dp = aggregate(data, 4)
    assert sorted(truth[res.seeds]) == [0, 1, 2, 3]
    assert adjusted_rand_score(truth, res.assignment) == pytest.approx(1.0)
    # the centroid of each cluster is the mean of the true members
    for c in range(4):
        members = data.values[res.assignment == c]
        np.testing.assert_allclose(res.representatives[c], members.mean(axis=0), atol=1e-12)
    assert res.days.sum() == data.n_days


def test_medoid_is_a_real_day():
    data, _ = synthetic_days()
    res, _ = aggregate(data, 4, representative="medoid")
    for c in range(4):
        np.testing.assert_array_equal(res.representatives[c], data.values[res.medoid_day[c]])
        assert res.assignment[res.medoid_day[c]] == c


def test_score_against_direct_numpy():
    data, _ = synthetic_days(noise=0.1)
    res, _ = aggregate(data, 3, extreme_days=["peak_net_load"])
    m = score(data, res)
    x = (data.values - data.lo) / (data.hi - data.lo)  # day × hour × series
    r = (res.representatives - data.lo) / (data.hi - data.lo)
    recon = r[res.assignment]
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean((x - recon) ** 2)), rel=1e-12)
    inner = res.assignment < 3
    assert m["sse"] == pytest.approx(((x[inner] - recon[inner]) ** 2).sum(), rel=1e-12)
    for s, name in enumerate(data.series):
        orig = data.values[:, :, s]
        rec = res.representatives[res.assignment][:, :, s]
        assert m[f"energy_error_{name}"] == pytest.approx(rec.sum() / orig.sum() - 1, abs=1e-12)
        assert abs(m[f"energy_error_{name}"]) < 1e-12  # centroids and exact extreme days keep energy
    durations = [
        np.sqrt(np.mean(((np.sort(x[:, :, s].ravel()) - np.sort(recon[:, :, s].ravel()))) ** 2))
        for s in range(3)
    ]
    assert m["duration_rmse"] == pytest.approx(np.mean(durations), rel=1e-9)


def test_extreme_days_get_weight_one_and_their_own_profile():
    data, _ = synthetic_days()
    res, _ = aggregate(data, 4, extreme_days=["peak_net_load", "min_net_load"])
    assert res.is_extreme.sum() == 2 and list(res.days[res.is_extreme]) == [1, 1]
    net = data.values[:, :, 0] - data.values[:, :, 1:].sum(axis=2)
    peak_day = int(np.argmax(net.max(axis=1)))
    low_day = int(np.argmin(net.min(axis=1)))
    assert res.assignment[peak_day] == 4 and res.assignment[low_day] == 5
    np.testing.assert_array_equal(res.representatives[4], data.values[peak_day])
    assert res.days.sum() == data.n_days


# ----------------------------------------------------------------- the stage on the shipped case


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    out = tmp_path_factory.mktemp("cluster")
    result = runner.invoke(app, ["cluster", str(ROOT / "cases" / "ieee33.yaml"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out / "cluster"


def test_shipped_case_tables(shipped):
    weights = pd.read_parquet(shipped / "weights.parquet")
    assignment = pd.read_parquet(shipped / "assignment.parquet")
    assert weights["days"].sum() == 366 and weights["weight"].sum() == pytest.approx(1.0)
    counts = assignment.groupby("scenario").size()
    assert counts.reindex(weights["scenario"]).tolist() == weights["days"].tolist()
    # recompute the reconstruction RMSE from the written tables alone
    profiles = pd.read_parquet(shipped / "profiles.parquet")
    typical = pd.read_parquet(shipped / "typical.parquet")
    year = profiles.pivot_table(index=["day", "hour"], columns="series", values="value")
    lo, hi = year.min(), year.max()
    rep = typical.pivot_table(index=["scenario", "hour"], columns="series", values="value")
    recon = rep.loc[list(zip(assignment.set_index("day").loc[year.index.get_level_values("day"), "scenario"], year.index.get_level_values("hour"), strict=True))]
    err = ((year.to_numpy() - recon.to_numpy()) / (hi - lo).to_numpy()) ** 2
    metrics = pd.read_parquet(shipped / "metrics.parquet").set_index("method")
    assert metrics.loc["density_peaks", "rmse"] == pytest.approx(np.sqrt(err.mean()), rel=1e-9)
    # density-peaks seeding is as good as k-means++ with 10 restarts, within 2 %
    assert metrics.loc["density_peaks", "rmse"] <= 1.02 * metrics.loc["kmeans_pp", "rmse"]
    assert set(metrics.index) == {"density_peaks", "kmeans_pp", "random", "kmedoids", "ward"}
    assert (shipped / "decision_graph.png").stat().st_size > 0


def test_weights_for_a_365_day_year(shipped):
    """2016 has 366 days: the raw counts stay, and weight_days (what plan and dispatch use) sums to 365."""
    import json

    weights = pd.read_parquet(shipped / "weights.parquet")
    assert list(weights.columns) == ["scenario", "days", "weight", "weight_days", "is_extreme", "representative_date"]
    assert weights["days"].sum() == 366
    np.testing.assert_allclose(weights["weight_days"], weights["days"] / 366 * 365, rtol=1e-12)
    assert weights["weight_days"].sum() == pytest.approx(365, rel=1e-12)
    assert json.loads((shipped / "manifest.json").read_text())["year_days"] == 365


def test_deterministic(shipped, tmp_path):
    again = runner.invoke(app, ["cluster", str(ROOT / "cases" / "ieee33.yaml"), "--out", str(tmp_path)])
    assert again.exit_code == 0
    for table in ("typical", "weights", "assignment", "profiles"):
        pd.testing.assert_frame_equal(pd.read_parquet(shipped / f"{table}.parquet"), pd.read_parquet(tmp_path / "cluster" / f"{table}.parquet"))


# ------------------------------------------------------------------------------- bad input


def csv_case(tmp_path: Path, *, hours: int = 24 * 20, k: int = 3, mutate=None) -> Path:
    rng = np.random.default_rng(0)
    t = pd.date_range("2021-03-01", periods=hours, freq="h")
    df = pd.DataFrame({
        "time": t.strftime("%Y-%m-%d %H:%M"),
        "load": 0.5 + 0.3 * np.sin(np.arange(hours) / 24 * 2 * np.pi) + rng.uniform(0, 0.1, hours),
        "pv": np.clip(np.sin((np.arange(hours) % 24 - 6) / 12 * np.pi), 0, None) * rng.uniform(0.3, 1, hours),
        "wind": rng.uniform(0, 1, hours),
    })
    if mutate:
        mutate(df)
    df.to_csv(tmp_path / "prof.csv", index=False)
    case = tmp_path / "case.yaml"
    case.write_text(
        "network: {feeder: ieee33}\n"
        "profiles:\n  source: csv\n  file: prof.csv\n  series:\n"
        "    load: {kind: load, column: load}\n    pv: {kind: pv, column: pv}\n    wind: {kind: wind, column: wind}\n"
        f"clustering:\n  k: {k}\n"
    )
    return case


def run_bad(case: Path, tmp_path: Path, *needles: str) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["cluster", str(case), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output
    assert not (out / "cluster").exists()
    assert not out.exists() or not any(out.iterdir())


def test_csv_case_runs(tmp_path):
    result = runner.invoke(app, ["cluster", str(csv_case(tmp_path)), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert pd.read_parquet(tmp_path / "out" / "cluster" / "weights.parquet")["days"].sum() == 20


def test_k_larger_than_days(tmp_path):
    run_bad(csv_case(tmp_path, k=25), tmp_path, "clustering.k", "k = 25", "20 days")


def test_k_below_one(tmp_path):
    run_bad(csv_case(tmp_path, k=0), tmp_path, "clustering.k")


def test_constant_series(tmp_path):
    run_bad(csv_case(tmp_path, mutate=lambda df: df.__setitem__("wind", 0.4)), tmp_path, "profiles.series.wind", "constant")


def test_series_with_nan(tmp_path):
    def gap(df):
        df.loc[30:33, "load"] = np.nan

    run_bad(csv_case(tmp_path, mutate=gap), tmp_path, "prof.csv:32", "load", "missing")


def test_fewer_than_two_days(tmp_path):
    run_bad(csv_case(tmp_path, hours=30, k=1), tmp_path, "at least 2 whole days")
