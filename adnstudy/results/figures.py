"""Figures as :class:`matplotlib.figure.Figure` objects: no pyplot state, no backend switching.

Library code builds figures here and hands them to the stage writer, which
saves them as PNG; nothing is registered with pyplot, so nothing needs closing
and a caller's own matplotlib set-up is left alone.

Every figure uses matplotlib's constrained layout, and its legend sits below
the axes (:func:`legend_below`), never over the data.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure


def new_figure(width_in: float, height_in: float, nrows: int = 1, ncols: int = 1, **subplots: Any) -> tuple[Figure, Any]:
    """A figure (constrained layout) and its axes (one Axes, or an array for a grid)."""
    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    axes = fig.subplots(nrows, ncols, **subplots)
    return fig, axes


def legend_below(fig: Figure, axes: Axes | Iterable[Axes], *, max_columns: int = 6, **legend: Any) -> None:
    """One legend for the entries of ``axes`` (each label once), below them, outside every plotting area."""
    seen: dict[str, Any] = {}
    for ax in np.atleast_1d(np.asarray(axes, dtype=object)).ravel():
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="outside lower center",
                   ncols=min(len(seen), max_columns), **legend)


def paired_bars(names, left, right, labels: tuple[str, str], ylabel: str, title: str, width: float = 6.0):
    """Two bars per named entity (e.g. each agent's cost without and with trading), kUSD, a zero line."""
    fig, ax = new_figure(width, 4.4)
    x = np.arange(len(names))
    ax.bar(x - 0.2, np.asarray(left) / 1e3, 0.4, label=labels[0])
    ax.bar(x + 0.2, np.asarray(right) / 1e3, 0.4, label=labels[1])
    ax.set_xticks(x, list(names))
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.axhline(0.0, color="0.4", lw=0.8)
    legend_below(fig, ax)
    return fig
