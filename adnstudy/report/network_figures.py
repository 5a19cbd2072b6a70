"""Network figures of the plan report: a single-line diagram of the feeder and voltage envelopes per lateral.

Pure functions from tables to :class:`matplotlib.figure.Figure` objects in the
report's style (:mod:`adnstudy.report.style`); no pyplot.

:func:`layout` draws the radial feeder as a tidy tree: the substation at the
left, each bus one column right of its parent (x = branches from the
substation), the child with the deepest subtree continuing its parent's row and
every other child opening a row of its own below. Rows are given depth first,
the laterals leaving furthest downstream nearest their parent's row, so a
lateral's vertical drop only passes rows lying wholly to its right: no branch
crosses another. One row per leaf.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from adnstudy.network.feeder import Feeder
from adnstudy.report.style import PAGE_IN, PALETTE, TECH_COLOURS, figure, legend_below, style

TIE_LABEL = "tie line (normally open)"
TECH_NAMES = {"pv": "PV", "wind": "wind", "storage": "storage", "generator": "generator"}
TECH_MARKERS = {"pv": "^", "wind": "P", "storage": "X", "generator": "p"}
ROW_IN = 0.42  # height of one row of the diagram (at most)
TIE_RISE = 0.45  # rows a tie line between two buses of one row rises above it


@dataclass(frozen=True)
class Layout:
    """Where each bus sits in the single-line diagram.

    ``position[bus] = (x, row)``: x is the number of branches from the substation,
    rows count downward from the main feeder (row 0). ``rows[i]`` lists the buses
    drawn on row ``i``; ``laterals[i]`` is the path from the substation to the end
    of row ``i`` (the main feeder first); ``names[i]`` its title, e.g.
    ``"main feeder 1–18"`` or ``"lateral 2 → 19–22"``.
    """

    position: dict[int, tuple[int, int]]
    rows: list[list[int]]
    laterals: list[list[int]]
    names: list[str]
    parent: dict[int, int]  # bus → its parent bus (the substation has none)

    @property
    def n_rows(self) -> int:
        return len(self.rows)


def layout(feeder: Feeder) -> Layout:
    """The tidy single-line layout of a radial feeder (see the module docstring)."""
    ids = [int(b) for b in feeder.bus_ids]
    root = ids[0]
    children: dict[int, list[int]] = {b: [] for b in ids}
    parent: dict[int, int] = {}
    for u, v in zip(feeder.branches["from_bus"], feeder.branches["to_bus"], strict=True):
        children[int(u)].append(int(v))
        parent[int(v)] = int(u)
    # subtree height, children before parents (branches are breadth first, so reversed is bottom-up)
    height = dict.fromkeys(ids, 0)
    for v in reversed(feeder.branches["to_bus"].astype(int).tolist()):
        height[parent[v]] = max(height[parent[v]], height[v] + 1)

    position: dict[int, tuple[int, int]] = {}
    rows: list[list[int]] = []
    stack = [(root, 0)]
    while stack:
        start, x = stack.pop()
        row, bus, side = len(rows), start, []
        rows.append([])
        while True:
            position[bus] = (x, row)
            rows[row].append(bus)
            if not children[bus]:
                break
            main = max(children[bus], key=lambda c: height[c])  # first of the deepest
            side.append([(c, x + 1) for c in reversed(children[bus]) if c != main])
            bus, x = main, x + 1
        for pushes in side:  # the last pushed (furthest downstream) is drawn first, nearest this row
            stack.extend(pushes)

    laterals, names = [], []
    for row in rows:
        up, b = [], row[0]
        while b in parent:
            b = parent[b]
            up.append(b)
        laterals.append(up[::-1] + row)
        span = f"{row[0]}–{row[-1]}" if len(row) > 1 else f"{row[0]}"
        names.append(f"main feeder {span}" if not up else f"lateral {up[0]} → {span}")
    return Layout(position, rows, laterals, names, parent)


def plan_map_inputs(bus: pd.DataFrame, branch: pd.DataFrame, investment: pd.DataFrame | None = None,
                    exchange: pd.DataFrame | None = None, column: str = "v_pu") -> dict[str, object]:
    """:func:`feeder_map`'s data from the plan tables: lowest voltage per bus, highest loading per branch,
    built sites, MG PCCs."""
    out: dict[str, object] = {
        "v_bus_pu": bus.groupby("bus")[column].min(),
        "loading_pct": branch.groupby(["from_bus", "to_bus"])["loading_pct"].max(),
    }
    if investment is not None:
        out["sites"] = investment.loc[investment["build"] & (investment["capacity_mw"] > 0),
                                      ["bus", "tech", "capacity_mw"]]
    if exchange is not None:
        out["microgrids"] = (exchange[["microgrid", "bus"]].drop_duplicates()
                             .rename(columns={"microgrid": "name"}).reset_index(drop=True))
    return out


def _branch_path(lay: Layout, u: int, v: int) -> list[tuple[float, float]]:
    """Orthogonal polyline of branch u → v: down from the parent to the child's row, then right."""
    (xu, ru), (xv, rv) = lay.position[u], lay.position[v]
    return [(xu, -ru), (xu, -rv), (xv, -rv)]


def _arc(p: tuple[float, float], q: tuple[float, float], bulge: float, n: int = 40) -> np.ndarray:
    """A quadratic Bézier from p to q whose middle is ``bulge`` × the chord away from it (to the left of p→q)."""
    p_, q_ = np.asarray(p, float), np.asarray(q, float)
    d = q_ - p_
    ctrl = (p_ + q_) / 2 + 2 * bulge * np.array([-d[1], d[0]])
    s = np.linspace(0, 1, n)[:, None]
    return (1 - s) ** 2 * p_ + 2 * (1 - s) * s * ctrl + s**2 * q_


def feeder_map(feeder: Feeder, lay: Layout, v_bus_pu: pd.Series, loading_pct: pd.Series,
               sites: pd.DataFrame | None = None, microgrids: pd.DataFrame | None = None,
               v_label: str = "lowest voltage over the plan's hours (pu)",
               loading_label: str = "highest loading over the plan's hours (%)",
               title: str = "") -> Figure:
    """Single-line diagram, page wide: buses coloured by voltage, branches by loading (unrated grey),
    tie lines dashed, the substation a square, built units and MG PCCs marked below their bus.

    Artists carry ``gid`` ``"tie"``, ``"site"`` and ``"microgrid"`` (one per tie line, built unit, MG).
    """
    sites = sites if sites is not None else pd.DataFrame(columns=["bus", "tech", "capacity_mw"])
    microgrids = microgrids if microgrids is not None else pd.DataFrame(columns=["name", "bus"])
    xy = {b: (x, -r) for b, (x, r) in lay.position.items()}
    x_max = max(x for x, _ in xy.values())
    with style():
        row_in = max(0.32, min(ROW_IN, 3.0 / lay.n_rows))  # many rows: a little closer together
        fig, axes = figure(PAGE_IN, 1.45 + row_in * lay.n_rows, 2, 5, height_ratios=[1, 0.05],
                           width_ratios=[0.15, 1, 0.25, 1, 0.15])
        gs = axes[0, 0].get_subplotspec().get_gridspec()
        for a in axes[0]:
            a.remove()
        ax = fig.add_subplot(gs[0, :])
        ax.set_axis_off()
        ax.set_title(title)

        # branches, coloured by loading
        pairs = list(zip(feeder.branches["from_bus"].astype(int), feeder.branches["to_bus"].astype(int),
                         strict=True))
        load = loading_pct.reindex(pd.MultiIndex.from_tuples(pairs)).to_numpy(dtype=float)
        l_norm = Normalize(0.0, max(100.0, float(np.nanmax(load))) if np.isfinite(load).any() else 100.0)
        l_cmap = _truncated("YlOrRd", 0.25)
        rated = np.isfinite(load)
        segs = [_branch_path(lay, u, v) for u, v in pairs]
        ax.add_collection(LineCollection([s for s, ok in zip(segs, rated, strict=True) if ok], cmap=l_cmap,
                                         norm=l_norm, array=load[rated], linewidths=2.2, capstyle="round",
                                         joinstyle="round", zorder=1))
        if (~rated).any():
            ax.add_collection(LineCollection([s for s, ok in zip(segs, rated, strict=True) if not ok],
                                             colors="0.7", linewidths=2.2, zorder=1, label="unrated branch"))

        # tie lines: dashed arcs, above their row when both ends share it
        for u, v in zip(feeder.ties["from_bus"].astype(int), feeder.ties["to_bus"].astype(int), strict=True):
            p, q = sorted([xy[u], xy[v]])
            bulge = TIE_RISE / (q[0] - p[0]) if p[1] == q[1] else 0.18 if p[1] > q[1] else -0.18
            pts = _arc(p, q, bulge)
            ax.plot(pts[:, 0], pts[:, 1], ls=(0, (3, 2)), lw=0.8, color="0.25", zorder=0.5, gid="tie",
                    label=TIE_LABEL)

        # buses, coloured by voltage
        buses = np.array(list(xy))
        pts = np.array([xy[b] for b in buses], dtype=float)
        v = v_bus_pu.reindex(buses).to_numpy(dtype=float)
        lo, hi = (float(np.nanmin(v)), float(np.nanmax(v))) if np.isfinite(v).any() else (0.95, 1.05)
        v_norm = Normalize(lo - 0.005, hi + 0.005) if hi - lo < 1e-3 else Normalize(lo, hi)
        v_cmap = _truncated("viridis", 0.0)
        ax.scatter(pts[:, 0], pts[:, 1], c=np.where(np.isfinite(v), v, np.nan), cmap=v_cmap, norm=v_norm,
                   s=16, edgecolors="0.15", linewidths=0.4, zorder=3, plotnonfinite=True)
        sub = feeder.bus_ids[0]
        ax.plot(*xy[int(sub)], marker="s", ms=8, mfc="none", mec="k", mew=1.1, ls="none", zorder=4,
                label="substation")
        for b, (x, y) in zip(buses, pts, strict=True):
            ax.annotate(str(b), (x, y), xytext=(0, 6.5 if b == sub else 3.6), textcoords="offset points", ha="center",
                        va="bottom", fontsize=5.5, color="0.15", zorder=5)

        # built units and MGs hang below their bus (right of a lateral's drop), spread when several share one
        drops = {lay.parent[r[0]] for r in lay.rows[1:]}
        hung = [("site", r.bus, r) for r in sites.itertuples(index=False)]
        hung += [("microgrid", r.bus, r) for r in microgrids.itertuples(index=False)]
        at_bus: dict[int, int] = {}
        for _, b, _ in hung:
            at_bus[int(b)] = at_bus.get(int(b), 0) + 1
        seen: dict[int, int] = {}
        for kind, b, row in hung:
            b = int(b)
            k, n = seen.get(b, 0), at_bus[b]
            seen[b] = k + 1
            x0, y0 = xy[b]
            x = x0 + (0.3 if b in drops else 0.0) + 0.42 * (k - (n - 1) / 2)
            y = y0 - 0.36
            ax.plot([x0, x], [y0, y], color="0.45", lw=0.5, zorder=2)
            if kind == "site":
                tech = str(row.tech)
                ax.plot(x, y, marker=TECH_MARKERS.get(tech, "o"), ms=6, ls="none",
                        color=TECH_COLOURS.get(tech, PALETTE[4]), mec="k", mew=0.4, zorder=4, gid="site",
                        label=f"{TECH_NAMES.get(tech, tech)} built (MW)")
                text = f"{row.capacity_mw:.2g}"
            else:
                ax.plot(x, y, marker="D", ms=5, ls="none", mfc="white", mec="k", mew=0.8, zorder=4,
                        gid="microgrid", label="microgrid at its PCC")
                text = str(row.name)
            beside = n == 1  # beside the marker; below it when neighbours share the bus
            ax.annotate(text, (x, y), xytext=(4, 0) if beside else (0, -4), textcoords="offset points",
                        ha="left" if beside else "center", va="center" if beside else "top", fontsize=5.5,
                        zorder=5)

        ax.set_xlim(-0.7, x_max + 0.7)
        same_row_tie = any(xy[int(u)][1] == xy[int(v)][1] for u, v in zip(feeder.ties["from_bus"],
                                                                           feeder.ties["to_bus"], strict=True))
        ax.set_ylim(-(lay.n_rows - 1) - 0.6, 0.4 + (TIE_RISE if same_row_tie else 0.0))
        for cax, mappable, label in ((axes[1, 1], ScalarMappable(v_norm, v_cmap), v_label),
                                     (axes[1, 3], ScalarMappable(l_norm, l_cmap), loading_label)):
            bar = fig.colorbar(mappable, cax=cax, orientation="horizontal", label=label)
            bar.ax.grid(False)
            bar.ax.xaxis.set_major_locator(MaxNLocator(5))
        for cax in axes[1, ::2]:
            cax.remove()
        legend_below(fig, ax)
    return fig


def _truncated(name: str, start: float):
    """A colormap without its palest ``start`` fraction (so light values stay visible on white)."""
    from matplotlib import colormaps
    from matplotlib.colors import LinearSegmentedColormap

    base = colormaps[name]
    return LinearSegmentedColormap.from_list(f"{name}_from_{start}", base(np.linspace(start, 1.0, 256)))


def lateral_envelopes(lay: Layout, bus_table: pd.DataFrame, column: str = "v_pu") -> pd.DataFrame:
    """Per lateral and position along its path from the substation: the bus and the min, mean and max
    voltage over every (scenario, hour) snapshot of ``bus_table``."""
    stats = bus_table.groupby("bus")[column].agg(["min", "mean", "max"])
    frames = [pd.DataFrame({"lateral": name, "position": np.arange(len(path)), "bus": path})
              for name, path in zip(lay.names, lay.laterals, strict=True)]
    env = pd.concat(frames, ignore_index=True)
    vals = stats.reindex(env["bus"]).to_numpy()
    env[["v_min_pu", "v_mean_pu", "v_max_pu"]] = vals
    return env


def voltage_by_lateral(lay: Layout, bus_table: pd.DataFrame, column: str = "v_pu", v_min: float | None = None,
                       v_max: float | None = None, title: str = "",
                       snapshot_name: Callable[[int, int], str] | None = None) -> Figure:
    """Small multiples, one panel per lateral (shared y): the band between the lowest and highest voltage
    of every snapshot, the mean, the worst snapshot (lowest voltage anywhere) dashed, the limits.

    ``snapshot_name(scenario, hour)`` names the worst snapshot in the legend (default: its scenario and hour)."""
    env = lateral_envelopes(lay, bus_table, column)
    scenario, hour = (int(bus_table.loc[bus_table[column].idxmin(), c]) for c in ("scenario", "hour"))
    snap = bus_table[(bus_table["scenario"] == scenario) & (bus_table["hour"] == hour)]
    v_worst = snap.set_index("bus")[column]
    worst = snapshot_name(scenario, hour) if snapshot_name else f"scenario {scenario}, hour {hour}"
    n = len(lay.laterals)
    ncols = 2 if n <= 4 else 3 if n <= 9 else 4
    nrows = -(-n // ncols)
    with style():
        fig, axes = figure(PAGE_IN, 0.55 + 1.45 * nrows, nrows, ncols, sharey=True, squeeze=False)
        for i, ax in enumerate(axes.ravel()):
            if i >= n:
                ax.set_axis_off()
                continue
            e = env[env["lateral"] == lay.names[i]]
            x = e["position"].to_numpy()
            ax.fill_between(x, e["v_min_pu"], e["v_max_pu"], color=PALETTE[0], alpha=0.25, lw=0,
                            label="range over all snapshots")
            ax.plot(x, e["v_mean_pu"], color=PALETTE[0], label="mean")
            ax.plot(x, v_worst.reindex(e["bus"]).to_numpy(), color=PALETTE[3], ls="--",
                    label=f"worst snapshot ({worst})")
            for lim, lab in ((v_min, "limits"), (v_max, "limits")):
                if lim is not None:
                    ax.axhline(lim, color="0.3", lw=0.7, ls=":", label=lab)
            step = -(-len(x) // 9)  # at most about nine bus labels a panel, the last bus always one
            ticks = list(range(0, len(x), step))
            if ticks[-1] != len(x) - 1:
                if len(x) - 1 - ticks[-1] < step / 2 and len(ticks) > 1:
                    ticks.pop()  # too close to the last bus to label both
                ticks.append(len(x) - 1)
            if i > 0:  # the buses this lateral shares with the feeder upstream of it
                ax.axvspan(x[0] - 0.3, len(x) - len(lay.rows[i]) - 0.5, color="0.5", alpha=0.12, lw=0,
                           label="upstream of the lateral")
            ax.set_xticks(ticks, [str(b) for b in e["bus"].to_numpy()[ticks]], fontsize=6)
            ax.set_xlim(x[0] - 0.3, x[-1] + 0.3)
            ax.set_title(lay.names[i])
            if i % ncols == 0:
                ax.set_ylabel("voltage (pu)")
            if i // ncols == nrows - 1 or i + ncols >= n:
                ax.set_xlabel("bus (from the substation)")
        if title:
            fig.suptitle(title)
        legend_below(fig, axes)
    return fig


__all__ = ["Layout", "feeder_map", "lateral_envelopes", "layout", "plan_map_inputs", "voltage_by_lateral"]
