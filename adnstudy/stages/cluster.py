"""``adnstudy cluster``: typical days of the case's profiles, with the comparison of methods.

Tables (``docs/results.md``): ``profiles``, ``typical``, ``weights``,
``assignment``, ``metrics``; figures: the decision graph and the typical days.
Later stages read ``typical`` and ``weights`` as their scenarios.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adnstudy.cluster.density_peaks import DensityPeaks, density_peaks_points
from adnstudy.cluster.typical_days import (
    METHODS,
    DayData,
    TypicalDays,
    aggregate,
    elbow,
    score,
    sse_curve,
)
from adnstudy.config.load import Case
from adnstudy.data.typical import YEAR_DAYS, year_weight_days
from adnstudy.results.figures import legend_below, new_figure
from adnstudy.stages.registry import Line, checked_inputs, stage_writer

K_MAX_SUGGEST = 15


def _warm_up() -> None:
    """Start scikit-learn's thread pool once, so the first timed method does not pay for it."""
    from sklearn.cluster import KMeans

    KMeans(2, n_init=1, random_state=0).fit(np.arange(8.0).reshape(4, 2))


def suggest_k(data: DayData, neighbour_fraction: float, kernel: str) -> dict[str, Any]:
    """K from the γ curve and from the elbow of the SSE curve; the suggestion is the larger."""
    k_max = min(K_MAX_SUGGEST, data.n_days - 1)
    dp = density_peaks_points(data.scaled(), neighbour_fraction, kernel)
    k_gamma, why_gamma = dp.suggest_k(k_max)
    sse = sse_curve(data, k_max, neighbour_fraction, kernel, dp)
    k_elbow = elbow(sse)
    k = max(k_gamma, k_elbow)
    why = (
        f"{why_gamma}; the SSE curve for k = 1..{k_max} bends most at k = {k_elbow} "
        f"(SSE {sse[k_elbow - 1]:.1f} vs {sse[0]:.1f} at k = 1). Suggested k = {k}: the larger of the two, "
        "since planning loses more from too few scenarios than from a few extra."
    )
    return {"k": k, "k_gamma": k_gamma, "k_elbow": k_elbow, "sse_curve": sse.tolist(), "reason": why}


def cluster_stage(case: Case, out_dir: Path, run_key: str | None = None) -> dict[str, Any]:
    cfg = case.config.clustering
    inputs = checked_inputs(case, "cluster")
    with stage_writer(out_dir, case, "cluster") as w:
        with w.phase("load"):
            data = inputs.days
        assert cfg is not None
        kwargs = dict(
            representative=cfg.representative,
            kernel=cfg.kernel,
            neighbour_fraction=cfg.neighbour_fraction,
            extreme_days=list(dict.fromkeys(cfg.extreme_days)),
            max_iter=cfg.max_iter,
        )
        _warm_up()
        with w.phase("cluster"):
            main, dp = aggregate(data, cfg.k, method="density_peaks", **kwargs)
        assert dp is not None
        rows = [{"method": "density_peaks", "k": cfg.k, **score(data, main), "seconds": main.seconds}]
        if cfg.compare:
            with w.phase("compare"):
                for method in METHODS[1:]:
                    other, _ = aggregate(data, cfg.k, method=method, **kwargs)
                    rows.append({"method": method, "k": cfg.k, **score(data, other), "seconds": other.seconds})
        with w.phase("write"):
            for name, df in tables(data, main).items():
                w.table(name, df)
            metrics = pd.DataFrame(rows)
            w.table("metrics", metrics)
            w.table("decision", decision_table(dp, main, data))
            w.figure("decision_graph", decision_figure(dp, main, data))
            w.figure("typical_days", typical_figure(data, main))
        best = metrics.set_index("method")
        summary = {
            "k": cfg.k,
            "scenarios": len(main.days),
            "days": int(main.days.sum()),
            "rmse": float(best.loc["density_peaks", "rmse"]),
            "seconds": float(main.seconds),
        }
        if cfg.compare:
            summary["rmse_kmeans_pp"] = float(best.loc["kmeans_pp", "rmse"])
        w.record(
            run_key=run_key,
            solver={"name": "density_peaks+lloyd", "status": "converged",
                    "seed_days": [str(data.dates[i].date()) for i in main.seeds], "dc": dp.dc},
            objective=float(best.loc["density_peaks", "sse"]),
            year_days=YEAR_DAYS,
            summary=summary,
        )
    return summary


def tables(data: DayData, res: TypicalDays) -> dict[str, pd.DataFrame]:
    """Tidy tables: one row per (day, hour, series), (scenario, hour, series), scenario, day.

    ``day`` is a day of the profiles' year; ``scenario`` a typical (or extreme) day.
    """
    n_days, n_series = data.n_days, len(data.series)
    n_clusters = len(res.days)
    profiles = pd.DataFrame({
        "day": np.repeat(np.arange(n_days), 24 * n_series),
        "hour": np.tile(np.repeat(np.arange(24), n_series), n_days),
        "series": np.tile(np.array(data.series), n_days * 24),
        "value": data.values.ravel(),
    })
    typical = pd.DataFrame({
        "scenario": np.repeat(np.arange(n_clusters), 24 * n_series),
        "hour": np.tile(np.repeat(np.arange(24), n_series), n_clusters),
        "series": np.tile(np.array(data.series), n_clusters * 24),
        "value": res.representatives.ravel(),
    })
    weights = pd.DataFrame({
        "scenario": np.arange(n_clusters),
        "days": res.days,
        "weight": res.days / res.days.sum(),
        "weight_days": year_weight_days(res.days),
        "is_extreme": res.is_extreme,
        "representative_date": [str(data.dates[d].date()) if d >= 0 else None for d in res.medoid_day],
    })
    assignment = pd.DataFrame({
        "day": np.arange(n_days),
        "date": data.dates.date,
        "scenario": res.assignment,
    })
    return {"profiles": profiles, "typical": typical, "weights": weights, "assignment": assignment}


def _clustered_days(res: TypicalDays, data: DayData) -> np.ndarray:
    """Days the density peaks saw: all but the extreme days kept as their own scenarios."""
    return np.flatnonzero(~np.isin(np.arange(data.n_days), res.medoid_day[res.is_extreme]))


def decision_table(dp: DensityPeaks, res: TypicalDays, data: DayData) -> pd.DataFrame:
    """One row per clustered day: its density ρ, distance δ to a denser day, γ = ρ·δ, and whether it seeded."""
    keep = _clustered_days(res, data)
    return pd.DataFrame({
        "day": keep,
        "date": data.dates.date[keep],
        "rho": dp.rho,
        "delta": dp.delta,
        "gamma": dp.gamma,
        "seed": np.isin(keep, res.seeds),
    })


def decision_figure(dp: DensityPeaks, res: TypicalDays, data: DayData):
    fig, (ax1, ax2) = new_figure(10, 4.2, 1, 2)
    keep = _clustered_days(res, data)
    seed_local = np.searchsorted(keep, res.seeds)
    ax1.scatter(dp.rho, dp.delta, s=10, c="0.6", label="days")
    ax1.scatter(dp.rho[seed_local], dp.delta[seed_local], s=40, c="C3", label="seeds (largest γ)")
    ax1.set_xlabel("local density ρ")
    ax1.set_ylabel("distance to denser day δ")
    ax1.set_title("decision graph")
    g = np.sort(dp.gamma)[::-1][: min(30, len(dp.gamma))]
    ax2.plot(np.arange(1, len(g) + 1), g, marker="o", ms=3, label="γ, sorted")
    ax2.axvline(res.k + 0.5, color="C3", ls="--", label=f"k = {res.k}")
    ax2.set_xlabel("rank")
    ax2.set_ylabel("γ = ρ·δ")
    ax2.set_title("sorted decision values")
    legend_below(fig, (ax1, ax2))
    return fig


def typical_figure(data: DayData, res: TypicalDays):
    """One panel per series, one line per scenario (extreme days dashed); the legend below the panels."""
    n = len(data.series)
    fig, axes = new_figure(max(4 * n, 7), 4.2, 1, n, squeeze=False)
    for s, ax in enumerate(axes[0]):
        for c in range(len(res.days)):
            style = "--" if res.is_extreme[c] else "-"
            ax.plot(np.arange(24), res.representatives[c, :, s], style, color=f"C{c % 10}",
                    label=f"{c} ({res.days[c]} d{', extreme' if res.is_extreme[c] else ''})")
        ax.set_title(data.series[s])
        ax.set_xlabel("hour")
        ax.set_ylabel("per unit")
        ax.grid(alpha=0.3)
    legend_below(fig, axes[0][0], max_columns=5, fontsize=7, title="scenario (days of the profiles)",
                 title_fontsize=7)
    return fig


def report(case: Case, out_dir: Path, summary: dict[str, Any], options: dict[str, Any]) -> list[Line]:
    """What ``adnstudy cluster`` prints."""
    s = summary
    text = (f"{case.name}: {s['k']} typical days + {s['scenarios'] - s['k']} extreme day(s) for {s['days']} days; "
            f"reconstruction RMSE {s['rmse']:.4f}"
            + (f" (k-means++ x10: {s['rmse_kmeans_pp']:.4f})" if "rmse_kmeans_pp" in s else "")
            + f"; {s['seconds']:.3f} s")
    return [(text, False), (f"results: {out_dir / 'cluster'}", False)]


def suggest_k_report(case: Case) -> list[Line]:
    """``adnstudy cluster --suggest-k``: K from the γ curve and the SSE elbow, explained."""
    cfg = case.config.clustering
    data = checked_inputs(case, "cluster").days
    assert cfg is not None
    s = suggest_k(data, cfg.neighbour_fraction, cfg.kernel)
    return [(f"suggested k = {s['k']} (the case has k = {cfg.k})", False), (s["reason"], False)]
