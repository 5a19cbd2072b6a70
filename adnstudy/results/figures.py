"""Figures as :class:`matplotlib.figure.Figure` objects: no pyplot state, no backend switching.

Library code builds figures here and hands them to the stage writer, which
saves them as PNG; nothing is registered with pyplot, so nothing needs closing
and a caller's own matplotlib set-up is left alone.
"""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure


def new_figure(width_in: float, height_in: float, nrows: int = 1, ncols: int = 1, **subplots: Any) -> tuple[Figure, Any]:
    """A figure and its axes (one Axes, or an array for a grid)."""
    fig = Figure(figsize=(width_in, height_in))
    axes = fig.subplots(nrows, ncols, **subplots)
    return fig, axes
