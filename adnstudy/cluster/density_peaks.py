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
:func:`density_peaks_points` computes the same from the points in blocks, without
the n × n matrix (the path used for more than a few hundred days).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import cdist, pdist, squareform


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



# ------------------------------------------------------------------ from the points, in blocks
#
# The matrix path above holds n × n distances, an n × n exp and two n × n masks: for ten
# years of days (n = 3,660) that is most of the seeding time. ``density_peaks_points`` gives
# the same answer from the points, in row blocks (block × n) of the upper triangle, never
# more than one block at a time:
#
# * squared distances come from one GEMM per block, [x, |x|², 1]·[−2x, 1, |x|²]ᵀ on the
#   centred points. They differ from ``pdist``'s by at most a rounding-error bound of the dot
#   products (``error_bound``, far above the error seen in practice), so every decision that
#   could go either way within that bound is taken again on pdist's own numbers:
#   ``_exact_sq`` sums the squared differences column by column as pdist's kernel does, bit
#   for bit;
# * a float32 pass keeps the pairs below a threshold read from a sample of pairs. d_c: the two
#   order statistics numpy's linear quantile interpolates between are found among them and
#   recomputed exactly in a band of ± the bound (the k-th smallest moves by at most the
#   bound), so d_c is np.quantile's to the last bit;
# * ρ: cut-off counts come from the kept pairs (every pair closer than d_c is kept), exact:
#   pairs within the bound of d_c are recomputed. Gaussian sums take a float64 pass of exp
#   and agree to ~1e-15 relative; any two points whose ρ, or γ, are within the error bound
#   of each other get their ρ recomputed from an exact distance row with the matrix path's
#   arithmetic, so the density order and the seeds are the matrix path's;
# * δ: a point's nearest denser point is, for almost every point, among its kept pairs; the
#   few points without a denser one there (the peaks, outliers) are searched against all
#   denser points. Candidates within the bound of the minimum are recomputed exactly and the
#   nearest taken, ties to the lower index, as ``argmin`` does on the matrix.

_EPS = float(np.finfo(float).eps)
_MATRIX_BELOW = 500  # below this many points (one year: 366 days) the matrix path is as fast, and is the reference
_controller = None


def _blas_one_thread():
    """One BLAS thread: the blocks are small, and a pool on a loaded machine costs more than it gives."""
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")


def _exact_sq(x: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """pdist's squared euclidean distance of each pair (i, j), bit for bit: Σ_k (x_ik − x_jk)² in column order."""
    acc = np.zeros(len(i))
    for s in range(0, len(i), 4096):  # chunks: small temporaries, reused memory
        diff = (x[i[s : s + 4096]] - x[j[s : s + 4096]]).T.copy()  # a row per coordinate: contiguous rows
        diff *= diff
        part = acc[s : s + 4096]
        for row in diff:
            part += row
    return acc


def _quantile_ranks(m: int, q: float) -> tuple[int, int]:
    """0-based ranks of the two order statistics ``np.quantile`` (linear) interpolates between."""
    vi = (m - 1) * q
    if vi >= m - 1:
        return m - 1, m - 1
    lo = max(0, int(np.floor(vi)))
    return lo, lo + 1


def _linear_quantile(lo_value: float, hi_value: float, m: int, q: float) -> float:
    """``np.quantile(values, q)`` (method "linear") from the order statistics it interpolates between."""
    vi = (m - 1) * q
    t = vi - np.floor(vi) if 0 <= vi < m - 1 else 0.0
    diff = hi_value - lo_value
    return float(hi_value - diff * (1 - t)) if t >= 0.5 else float(lo_value + diff * t)


def density_peaks_points(
    x: np.ndarray,
    neighbour_fraction: float = 0.02,
    kernel: str = "gaussian",
    *,
    block: int = 256,
    matrix_below: int = _MATRIX_BELOW,
) -> DensityPeaks:
    """``density_peaks(pairwise(x), ...)`` from the points: the same ρ (gaussian: to ~1e-15
    relative, in the same order), δ, nearest denser point, d_c and seeds, without an n × n array."""
    x = np.ascontiguousarray(x, dtype=float)
    n = x.shape[0]
    if n < 2:
        raise ValueError("density peaks needs at least two points")
    if kernel not in ("cutoff", "gaussian"):
        raise ValueError(f"unknown kernel {kernel!r}")
    spread = float(((x - x.mean(axis=0)) ** 2).sum(axis=1).max()) if x.size else 0.0
    if n < matrix_below or not 1e-30 < spread < 1e30:  # small sets; float32 would under- or overflow
        return density_peaks(pairwise(x), neighbour_fraction, kernel)
    with _blas_one_thread():
        return _from_points(x, neighbour_fraction, kernel, max(8, int(block)))


def _f32_up(value: float) -> float:
    """The smallest float32 ≥ value (a threshold compared against float32 distances)."""
    v = np.float32(value)
    return float(v if v >= value else np.nextafter(v, np.float32(np.inf)))


def _from_points(x: np.ndarray, q: float, kernel: str, block: int) -> DensityPeaks:
    n, dims = x.shape
    xc = x - x.mean(axis=0)
    sq = np.einsum("ij,ij->i", xc, xc)
    xa = np.hstack([xc, sq[:, None], np.ones((n, 1))])  # xa[i] · ya[:, j] = |x_i − x_j|²
    ya = np.ascontiguousarray(np.hstack([-2.0 * xc, np.ones((n, 1)), sq[:, None]]).T)
    xa32, ya32 = xa.astype(np.float32), ya.astype(np.float32)

    # |GEMM − pdist| on a squared distance: the dot products' rounding (γ_{d+2} on magnitudes
    # ≤ 4 max|x_c|², plus the inputs' rounding to float32), the centring and pdist's own sum,
    # with room to spare
    def error_bound(eps: float) -> float:
        return 16.0 * (dims + 10) * eps * max(float(sq.max()), 1e-300)

    bound, bound32 = error_bound(_EPS), error_bound(float(np.finfo(np.float32).eps))
    tri = np.tril(np.ones((block, block), dtype=bool))
    buf64, buf32 = np.empty(block * n), np.empty(block * n, dtype=np.float32)  # reused: no fresh pages per block
    kept = np.empty(block * n, dtype=bool)

    def upper(s: int, a: np.ndarray, b: np.ndarray, buf: np.ndarray) -> np.ndarray:
        """Squared distances of rows s..s+block to columns s..n, +inf where j ≤ i."""
        e = min(s + block, n)
        d2 = buf[: (e - s) * (n - s)].reshape(e - s, n - s)
        np.matmul(a[s:e], b[:, s:], out=d2)
        d2[:, : e - s][tri[: e - s, : e - s]] = np.inf
        return d2

    # ---- one float32 pass: keep the pairs below a threshold read from a sample of pairs
    m = n * (n - 1) // 2
    lo, hi = _quantile_ranks(m, q)
    step = max(1, n // 256)
    rows, cols = np.arange(0, n, step), np.arange(step // 2, n, step)
    sample = (xa32[rows] @ ya32[:, cols]).ravel()[(rows[:, None] != cols[None, :]).ravel()].astype(float)
    share = min(1.0, (hi + 1) / m * 1.3 + 0.01)
    threshold = _f32_up(float(np.quantile(sample, share))) if share < 1.0 and sample.size else np.inf
    while True:
        vals, pi, pj = [], [], []
        for s in range(0, n, block):
            d2 = upper(s, xa32, ya32, buf32)
            idx = np.flatnonzero(np.less_equal(d2, threshold, out=kept[: d2.size].reshape(d2.shape)))
            w = d2.shape[1]
            vals.append(d2.ravel()[idx])
            pi.append(s + idx // w)
            pj.append(s + idx % w)
        v = np.concatenate(vals).astype(float)
        if v.size > hi:
            part = np.partition(v, [lo, hi])
            # the kept pairs must hold every pair that might be the k-th smallest, or closer than d_c
            enough = part[hi] + 4 * bound32 + 16 * _EPS * (abs(part[hi]) + bound32)
            if enough <= threshold:
                break
            threshold = _f32_up(enough)
        else:
            share = min(1.0, 2 * share)
            threshold = _f32_up(float(np.quantile(sample, share))) if share < 1.0 else np.inf
    pi, pj = np.concatenate(pi), np.concatenate(pj)
    del vals

    # ---- d_c
    band_lo, band_hi = part[lo] - 2 * bound32, part[hi] + 2 * bound32
    below = int(np.count_nonzero(v < band_lo))
    inband = np.flatnonzero((v >= band_lo) & (v <= band_hi))
    exact = np.sort(_exact_sq(x, pi[inband], pj[inband]))
    dc = _linear_quantile(float(np.sqrt(exact[lo - below])), float(np.sqrt(exact[hi - below])), m, q)
    if dc <= 0:  # many identical points: the smallest positive distance, as the matrix path (rare: exact)
        upper_exact = pdist(x, metric="euclidean")
        positive = upper_exact[upper_exact > 0]
        dc = float(positive.min()) if positive.size else 1.0

    # ---- ρ
    rho_exact = np.zeros(n, dtype=bool)
    if kernel == "cutoff":  # from the kept pairs: every pair closer than d_c is among them
        dc2 = dc * dc
        margin = 2 * bound32 + 8 * _EPS * dc2
        inside = v < dc2 - margin
        unsure = np.flatnonzero(np.abs(v - dc2) <= margin)
        inside[unsure[np.sqrt(_exact_sq(x, pi[unsure], pj[unsure])) < dc]] = True
        rho = (np.bincount(pi[inside], minlength=n) + np.bincount(pj[inside], minlength=n)).astype(float)
        rho_exact[:] = True
    else:  # a float64 pass: each block's rows from its row sums, its columns from its column sums
        rho = np.zeros(n)
        scale = -1.0 / (dc * dc)
        for s in range(0, n, block):
            d2 = upper(s, xa, ya, buf64)
            np.multiply(d2, scale, out=d2)
            np.exp(d2, out=d2)
            rho[s : s + d2.shape[0]] += d2.sum(axis=1)
            rho[s:] += d2.sum(axis=0)
        # |ρ − matrix ρ| ≤ ρ·(bound/d_c² + (2n + 8)ε) + 3nε: exp's argument, exp and the sum
        rho_err_rel = bound / (dc * dc) + (2 * n + 8) * _EPS
        rho_err_abs = 3 * n * _EPS

    def fix_near_ties(values: np.ndarray, err: np.ndarray) -> None:
        """Recompute ρ exactly for every point whose value is within the error bounds of a neighbour's."""
        o = np.argsort(-values, kind="stable")
        gap = values[o[:-1]] - values[o[1:]]
        near = gap < 2 * (err[o[:-1]] + err[o[1:]])  # equal values with no error (γ = 0 twice) are not near
        if near.any():
            redo = np.unique(np.concatenate([o[:-1][near], o[1:][near]]))
            redo = redo[~rho_exact[redo]]
            rho[redo] = _exact_rho(x, redo, dc)
            rho_exact[redo] = True

    if kernel == "gaussian":
        fix_near_ties(rho, np.where(rho_exact, 0.0, rho * rho_err_rel + rho_err_abs))

    # ---- δ: the nearest denser point among the kept pairs, else among all denser points
    order = np.lexsort((np.arange(n), -rho))
    rank = np.empty(n, dtype=int)
    rank[order] = np.arange(n)
    flip = rank[pj] > rank[pi]  # pj is the less dense end: the pair is a candidate for pj
    src, dst = np.where(flip, pj, pi), np.where(flip, pi, pj)
    low = np.full(n, np.inf)
    np.minimum.at(low, src, v)
    reach = low + 3 * bound32 + 8 * _EPS * np.abs(low)  # every pair that might be the nearest is below this
    found = reach <= threshold
    found[order[0]] = False
    take = found[src] & (v <= reach[src])
    delta = np.empty(n)
    nearest = np.empty(n, dtype=int)
    _nearest_exact(x, src[take], dst[take], delta, nearest)
    rest = np.flatnonzero(~found)
    rest = rest[rest != order[0]]
    for r0 in range(0, len(rest), block):
        who = rest[r0 : r0 + block]
        d2 = buf64[: len(who) * n].reshape(len(who), n)
        np.matmul(xa[who], ya, out=d2)
        d2[rank[None, :] >= rank[who][:, None]] = np.inf
        cut = d2.min(axis=1)
        rr, cc = np.nonzero(d2 <= (cut + 3 * bound + 8 * _EPS * np.abs(cut))[:, None])
        _nearest_exact(x, who[rr], cc, delta, nearest)
    top = order[0]
    delta[top] = cdist(x[top : top + 1], x).max()
    nearest[top] = -1

    # ---- γ: the seeds are the largest γ, so near ties in γ get the exact ρ too
    if kernel == "gaussian":
        gamma = rho * delta
        err = np.where(rho_exact, 0.0, (rho * rho_err_rel + rho_err_abs) * delta + 2 * _EPS * gamma)
        fix_near_ties(gamma, err)
    return DensityPeaks(rho=rho, delta=delta, gamma=rho * delta, nearest_denser=nearest, dc=dc)


def _nearest_exact(x: np.ndarray, i: np.ndarray, j: np.ndarray, delta: np.ndarray, nearest: np.ndarray) -> None:
    """For each point in ``i``, the nearest of its candidates ``j`` by pdist's distance, ties to the lower index."""
    if not len(i):
        return
    d = np.sqrt(_exact_sq(x, i, j))
    pick = np.lexsort((j, d, i))
    i, j, d = i[pick], j[pick], d[pick]
    head = np.flatnonzero(np.r_[True, i[1:] != i[:-1]])
    delta[i[head]] = d[head]
    nearest[i[head]] = j[head]


def _exact_rho(x: np.ndarray, idx: np.ndarray, dc: float) -> np.ndarray:
    """Gaussian ρ of the points ``idx`` by the matrix path's arithmetic on pdist's distances."""
    dist = cdist(x[idx], x)
    off = np.ones(dist.shape, dtype=bool)
    off[np.arange(len(idx)), idx] = False
    return (np.exp(-((dist / dc) ** 2)) * off).sum(axis=1)
