"""Density peaks (Rodriguez & Laio, Science 344:1492, 2014) as a deterministic K-means seed.

For points with pairwise distances d_ij:

* cut-off distance d_c: the ``neighbour_fraction`` quantile of all pairwise
  distances, so that a point has on average that share of the points within d_c;
* local density ρ_i: ``cutoff`` kernel  ρ_i = #{j ≠ i : d_ij < d_c}, or
  ``gaussian`` kernel  ρ_i = Σ_{j≠i} exp(−(d_ij/d_c)²);
* δ_i = min_{j: ρ_j > ρ_i} d_ij, the distance to the nearest denser point
  (ties in ρ broken by index, so the order is total); for the densest point,
  δ = max_j d_ij;
* decision value γ_i = ρ_i · δ_i. Cluster centres are points that are both dense
  and far from any denser point: the K largest γ.

Everything is a matrix operation on the distance matrix; no randomness.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import pdist, squareform


@dataclass(frozen=True)
class DensityPeaks:
    rho: np.ndarray
    delta: np.ndarray
    gamma: np.ndarray
    nearest_denser: np.ndarray  # index of the nearest denser point (-1 for the densest)
    dc: float

    def seeds(self, k: int) -> np.ndarray:
        """Indices of the k points with the largest γ (stable order: by γ, then index)."""
        order = np.lexsort((np.arange(len(self.gamma)), -self.gamma))
        return order[:k]

    def suggest_k(self, k_max: int) -> tuple[int, str]:
        """K at the largest relative drop of the sorted γ curve (k in 2..k_max)."""
        g = np.sort(self.gamma)[::-1]
        k_max = min(k_max, len(g) - 1)
        if k_max < 2:
            return 1, "too few points to read the γ curve"
        ratio = g[1 : k_max + 1] / np.maximum(g[2 : k_max + 2], 1e-300)  # γ_k / γ_{k+1}, k = 1..
        ks = np.arange(1, len(ratio) + 1)
        mask = ks >= 2
        k = int(ks[mask][np.argmax(ratio[mask])])
        return k, f"γ drops most after its {k} largest values (γ_{k}/γ_{k + 1} = {ratio[k - 1]:.2f})"


def pairwise(x: np.ndarray) -> np.ndarray:
    """Euclidean distance matrix."""
    return squareform(pdist(x, metric="euclidean"))


def density_peaks(dist: np.ndarray, neighbour_fraction: float = 0.02, kernel: str = "gaussian") -> DensityPeaks:
    """ρ, δ and γ of every point from a symmetric distance matrix."""
    n = dist.shape[0]
    if n < 2:
        raise ValueError("density peaks needs at least two points")
    upper = dist[np.triu_indices(n, k=1)]
    dc = float(np.quantile(upper, neighbour_fraction))
    if dc <= 0:  # many identical points: fall back to the smallest positive distance
        positive = upper[upper > 0]
        dc = float(positive.min()) if positive.size else 1.0
    off = ~np.eye(n, dtype=bool)
    if kernel == "cutoff":
        rho = ((dist < dc) & off).sum(axis=1).astype(float)
    elif kernel == "gaussian":
        rho = (np.exp(-((dist / dc) ** 2)) * off).sum(axis=1)
    else:
        raise ValueError(f"unknown kernel {kernel!r}")
    # rank points by density (ties: lower index counts as denser), then for each point
    # look only at points ranked above it
    order = np.lexsort((np.arange(n), -rho))
    rank = np.empty(n, dtype=int)
    rank[order] = np.arange(n)
    denser = rank[None, :] < rank[:, None]  # denser[i, j]: j is denser than i
    masked = np.where(denser, dist, np.inf)
    nearest = np.argmin(masked, axis=1)
    delta = masked[np.arange(n), nearest]
    top = order[0]
    delta[top] = dist[top].max()
    nearest[top] = -1
    return DensityPeaks(rho=rho, delta=delta, gamma=rho * delta, nearest_denser=nearest, dc=dc)
