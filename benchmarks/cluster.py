"""Time typical-day clustering on one year and ten years of hourly data.

One year is the shipped 33-bus case's SimBench year (366 days × 24 h × load, PV,
wind). SimBench ships one year only, so the ten-year set repeats it ten times,
each copy with independent multiplicative noise (σ = 5 %), which keeps the
seasonal structure and makes every day distinct. For each set: seconds of every
method (density peaks + Lloyd, k-means++ with 10 restarts, random-init K-means,
k-medoids FasterPAM, Ward), the scoring, and the whole stage's clustering work.

    .venv/bin/python benchmarks/cluster.py [--k 8] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from adnstudy.cluster.typical_days import METHODS, DayData, aggregate, day_data, score
from adnstudy.config.load import load_case
from adnstudy.data.profiles import load_profiles

ROOT = Path(__file__).resolve().parents[1]


def ten_years(one: DayData) -> DayData:
    rng = np.random.default_rng(0)
    values = np.concatenate([one.values * rng.normal(1.0, 0.05, size=one.values.shape) for _ in range(10)])
    values = np.clip(values, 0, None)
    return DayData(
        dates=pd.date_range(one.dates[0], periods=len(values), freq="D"),
        series=one.series, kinds=one.kinds, values=values,
        lo=values.min(axis=(0, 1)), hi=values.max(axis=(0, 1)),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    case = load_case(ROOT / "cases" / "ieee33.yaml")
    kinds = {n: s.kind for n, s in case.config.profiles.series.items()}
    t = time.perf_counter()
    year = day_data(load_profiles(case), kinds)
    read_s = time.perf_counter() - t
    aggregate(year, 2, method="kmeans_pp")  # start the thread pool before timing
    print(f"# k = {args.k}, best of {args.repeat}; reading the SimBench year took {read_s:.2f} s")
    print("# seconds: aggregate + score (best of the repeats); cluster: aggregate alone (best of the repeats)")
    print(f"{'data':<10} {'days':>5} {'method':<14} {'seconds':>8} {'cluster':>8} {'rmse':>8} {'sse':>9}")
    versus = []
    for label, data in (("1 year", year), ("10 years", ten_years(year))):
        total = 0.0
        times = {}
        for method in METHODS:
            best = best_cluster = np.inf
            for _ in range(args.repeat):
                t = time.perf_counter()
                res, _ = aggregate(data, args.k, method=method)
                best_cluster = min(best_cluster, time.perf_counter() - t)
                m = score(data, res)
                best = min(best, time.perf_counter() - t)
            total += best
            times[method] = (best, best_cluster)
            print(f"{label:<10} {data.n_days:>5} {method:<14} {best:>8.3f} {best_cluster:>8.3f} {m['rmse']:>8.4f} {m['sse']:>9.1f}")
        print(f"{label:<10} {data.n_days:>5} {'all methods':<14} {total:>8.3f}")
        versus.append((label, times["density_peaks"], times["kmeans_pp"]))
    print("# density peaks + Lloyd vs k-means++ with 10 restarts, same run (seconds; aggregate + score | aggregate alone)")
    for label, (dp, dp_cluster), (pp, pp_cluster) in versus:
        print(f"{label:<10} density peaks {dp:.3f} | {dp_cluster:.3f}   k-means++ x10 {pp:.3f} | {pp_cluster:.3f}   "
              f"ratio {dp / pp:.2f} | {dp_cluster / pp_cluster:.2f}")


if __name__ == "__main__":
    main()
