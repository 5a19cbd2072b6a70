"""Typical days: a year of hourly series → K weighted representative days.

Each day is one point of 24 hours × S series, every series min–max scaled to
[0, 1] over the year so that no series dominates the distance. The main method
seeds Lloyd's K-means with the K density peaks (:mod:`.density_peaks`), which
makes the result deterministic without restarts. Comparison methods run on the
same points and K; every method is scored by :func:`score` on the same year.
See ``docs/cluster.md`` for the definitions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.metrics import davies_bouldin_score, silhouette_score

from adnstudy.cluster.density_peaks import DensityPeaks, density_peaks_points, pairwise

METHODS = ("density_peaks", "kmeans_pp", "random", "kmedoids", "ward")


@dataclass(frozen=True)
class DayData:
    """A year cut into days: values are day × hour × series, per unit."""

    dates: pd.DatetimeIndex
    series: tuple[str, ...]
    kinds: tuple[str, ...]
    values: np.ndarray
    lo: np.ndarray  # per-series minimum over the year (scaling)
    hi: np.ndarray
    #: per-series weight of the squared distance (None: every series weighs 1)
    weights: np.ndarray | None = None
    #: per-series MW coefficient of the feeder's net load, for the extreme days (None: Σ load − Σ PV and wind)
    net_mw: np.ndarray | None = None

    @property
    def n_days(self) -> int:
        return self.values.shape[0]

    def features(self, days: np.ndarray) -> np.ndarray:
        """Day × (series·hour) features of day × hour × series values: each series scaled to [0, 1] over the
        year, times √weight (so a series' squared distances count its weight)."""
        v = (days - self.lo) / (self.hi - self.lo)
        if self.weights is not None:
            v = v * np.sqrt(self.weights)
        return v.transpose(0, 2, 1).reshape(len(days), -1)

    def scaled(self) -> np.ndarray:
        """The year's feature matrix (:meth:`features` of every day)."""
        return self.features(self.values)


def day_data(profiles: pd.DataFrame, kinds: dict[str, str], weights: np.ndarray | None = None,
             net_mw: np.ndarray | None = None) -> DayData:
    """Whole days of an hourly frame (partial first/last days are dropped); ``weights``, ``net_mw``: per series
    (columns), see :class:`DayData`."""
    counts = profiles.groupby(profiles.index.normalize()).size()
    whole = counts.index[counts == 24]
    frame = profiles[profiles.index.normalize().isin(whole)]
    values = frame.to_numpy(dtype=float).reshape(len(whole), 24, frame.shape[1])
    lo = values.min(axis=(0, 1))
    hi = values.max(axis=(0, 1))
    return DayData(
        dates=pd.DatetimeIndex(whole),
        series=tuple(frame.columns),
        kinds=tuple(kinds[c] for c in frame.columns),
        values=values,
        lo=lo,
        hi=hi,
        weights=weights,
        net_mw=net_mw,
    )


@dataclass(frozen=True)
class TypicalDays:
    """Result of one method: representatives, weights and the day → cluster map."""

    method: str
    representatives: np.ndarray  # cluster × hour × series, per unit
    days: np.ndarray  # days represented by each cluster
    is_extreme: np.ndarray  # bool per cluster
    assignment: np.ndarray  # cluster of each day of the year
    medoid_day: np.ndarray  # day index when the representative is a real day, else -1
    seconds: float
    seeds: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=int))  # seed day indices (density peaks)

    @property
    def k(self) -> int:
        return int((~self.is_extreme).sum())


def extreme_day_indices(data: DayData, which: tuple[str, ...] | list[str]) -> np.ndarray:
    """Days holding the hour of largest / smallest net load.

    Net load per hour = Σ load series − Σ PV and wind series, all per unit
    (i.e. as if RES capacity equalled the feeder's peak load); with ``data.net_mw``
    (a feeder with existing generation or load mixes) the feeder's own net load in MW,
    Σ_s net_mw_s · series_s.
    """
    kinds = np.array(data.kinds)
    if data.net_mw is not None:
        net = data.values @ data.net_mw
    else:
        net = (data.values[:, :, kinds == "load"].sum(axis=2)
               - data.values[:, :, np.isin(kinds, ("pv", "wind"))].sum(axis=2))
    out: list[int] = []
    for name in which:
        day = int(np.argmax(net.max(axis=1))) if name == "peak_net_load" else int(np.argmin(net.min(axis=1)))
        if day not in out:
            out.append(day)
    return np.array(out, dtype=int)


def aggregate(
    data: DayData,
    k: int,
    *,
    method: str = "density_peaks",
    representative: str = "centroid",
    kernel: str = "gaussian",
    neighbour_fraction: float = 0.02,
    extreme_days: tuple[str, ...] | list[str] = (),
    max_iter: int = 300,
    restarts: int = 10,
) -> tuple[TypicalDays, DensityPeaks | None]:
    """Cluster the days into ``k`` groups (plus one scenario per extreme day)."""
    t0 = time.perf_counter()
    x_all = data.scaled()
    extremes = extreme_day_indices(data, extreme_days)
    keep = np.setdiff1d(np.arange(data.n_days), extremes)
    x = x_all[keep]
    if k > len(x):
        raise ValueError(f"k = {k} exceeds the {len(x)} days available for clustering")
    dp: DensityPeaks | None = None
    seeds = np.empty(0, dtype=int)
    medoids: np.ndarray | None = None
    if method == "density_peaks":
        dp = density_peaks_points(x, neighbour_fraction, kernel)
        seeds = dp.seeds(k)
        labels = _lloyd(x, x[seeds], max_iter)
    elif method == "kmeans_pp":
        labels = KMeans(k, init="k-means++", n_init=restarts, random_state=0, max_iter=max_iter).fit(x).labels_
    elif method == "random":
        labels = KMeans(k, init="random", n_init=1, random_state=0, max_iter=max_iter).fit(x).labels_
    elif method == "kmedoids":
        import kmedoids

        res = kmedoids.fasterpam(pairwise(x), k, init="build", random_state=0, n_cpu=1)
        labels = np.asarray(res.labels, dtype=int)
        medoids = np.asarray(res.medoids, dtype=int)
    elif method == "ward":
        labels = AgglomerativeClustering(k, linkage="ward").fit(x).labels_
    else:
        raise ValueError(f"unknown method {method!r}; one of {METHODS}")
    labels = np.asarray(labels, dtype=int)
    if medoids is None:
        centroids = np.vstack([x[labels == c].mean(axis=0) for c in range(k)])
        if representative == "medoid":
            medoids = np.array([_closest(x, labels, c, centroids[c]) for c in range(k)])
    # representatives in per unit: real days are copied exactly, centroids are member means
    if medoids is not None:
        medoid_day = keep[medoids]
        reps = data.values[medoid_day]
    else:
        medoid_day = np.full(k, -1)
        reps = np.stack([data.values[keep[labels == c]].mean(axis=0) for c in range(k)])
    counts = np.bincount(labels, minlength=k)
    assignment = np.empty(data.n_days, dtype=int)
    assignment[keep] = labels
    assignment[extremes] = k + np.arange(len(extremes))
    rep_all = np.concatenate([reps, data.values[extremes]]) if len(extremes) else reps
    result = TypicalDays(
        method=method,
        representatives=rep_all,
        days=np.concatenate([counts, np.ones(len(extremes), dtype=int)]),
        is_extreme=np.concatenate([np.zeros(k, dtype=bool), np.ones(len(extremes), dtype=bool)]),
        assignment=assignment,
        medoid_day=np.concatenate([medoid_day, extremes]),
        seconds=time.perf_counter() - t0,
        seeds=keep[seeds],
    )
    return result, dp


def _lloyd(x: np.ndarray, init: np.ndarray, max_iter: int) -> np.ndarray:
    """Lloyd's algorithm from given centres, run until the labels stop changing."""
    km = KMeans(len(init), init=init, n_init=1, algorithm="lloyd", max_iter=max_iter, tol=0.0)
    return km.fit(x).labels_


def _closest(x: np.ndarray, labels: np.ndarray, c: int, centre: np.ndarray) -> int:
    members = np.flatnonzero(labels == c)
    return int(members[np.argmin(((x[members] - centre) ** 2).sum(axis=1))])


def score(data: DayData, result: TypicalDays) -> dict[str, float]:
    """Quality of a result on the full year (see docs/cluster.md for each definition)."""
    x_all = data.scaled()
    k = result.k
    rep_scaled = data.features(result.representatives)
    clustered = result.assignment < k
    xc, lc = x_all[clustered], result.assignment[clustered]
    sse = float(((xc - rep_scaled[lc]) ** 2).sum())
    n_labels = len(np.unique(lc))
    sil = float(silhouette_score(xc, lc)) if 2 <= n_labels <= len(xc) - 1 else float("nan")
    dbi = float(davies_bouldin_score(xc, lc)) if n_labels >= 2 else float("nan")
    recon = rep_scaled[result.assignment]
    rmse = float(np.sqrt(np.mean((x_all - recon) ** 2)))
    # duration curves and energy per series, on the hourly values of the whole year
    orig = data.values.reshape(-1, len(data.series))
    rec = result.representatives[result.assignment].reshape(-1, len(data.series))
    span = data.hi - data.lo
    dur = [
        float(np.sqrt(np.mean(((np.sort(orig[:, s]) - np.sort(rec[:, s])) / span[s]) ** 2)))
        for s in range(len(data.series))
    ]
    out = {"sse": sse, "silhouette": sil, "davies_bouldin": dbi, "rmse": rmse, "duration_rmse": float(np.mean(dur))}
    for s, name in enumerate(data.series):
        total = orig[:, s].sum()
        out[f"energy_error_{name}"] = float((rec[:, s].sum() - total) / total) if total else float("nan")
    return out


def sse_curve(data: DayData, k_max: int, neighbour_fraction: float, kernel: str,
              dp: DensityPeaks | None = None) -> np.ndarray:
    """Within-cluster SSE of density-peaks K-means for k = 1..k_max (``dp``: the days' density peaks, if known)."""
    x = data.scaled()
    if dp is None:
        dp = density_peaks_points(x, neighbour_fraction, kernel)
    out = []
    for k in range(1, k_max + 1):
        labels = _lloyd(x, x[dp.seeds(k)], 300)
        cent = np.vstack([x[labels == c].mean(axis=0) for c in range(k)])
        out.append(float(((x - cent[labels]) ** 2).sum()))
    return np.array(out)


def elbow(values: np.ndarray) -> int:
    """Index (1-based k) of the point farthest below the chord from the first to the last value."""
    n = len(values)
    if n < 3:
        return n
    ks = np.arange(1, n + 1, dtype=float)
    xs = (ks - 1) / (n - 1)
    ys = (values - values.min()) / max(values.max() - values.min(), 1e-300)
    chord = ys[0] + (ys[-1] - ys[0]) * xs
    return int(ks[np.argmax(chord - ys)])
