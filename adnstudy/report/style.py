"""One figure style for the report and the reproduction: sized for an A4 paper's column, labelled, legible.

A figure built inside :func:`style` uses 8-pt text (legible when printed at its
size), thin grid lines and a colour-blind-safe palette; its width is
:data:`COLUMN_IN` (one column of a two-column A4 paper) or :data:`PAGE_IN` (the
text width). Figures are saved at :data:`DPI` so they stay sharp when dropped
into a paper at that size.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from typing import Any

import matplotlib as mpl
from matplotlib.figure import Figure

from adnstudy.results.figures import legend_below, new_figure

COLUMN_IN = 3.5  # one column of a two-column A4 paper (IEEE: 3.5 in)
PAGE_IN = 7.16  # the text width of the same paper
DPI = 300

# Okabe & Ito's colour-blind-safe palette, black last.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
TECH_COLOURS = {"pv": "#E69F00", "wind": "#0072B2", "storage": "#009E73", "generator": "#D55E00"}

RC: dict[str, Any] = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.frameon": False,
    "axes.grid": True,
    "grid.linewidth": 0.4,
    "grid.alpha": 0.5,
    "axes.linewidth": 0.6,
    "lines.linewidth": 1.0,
    "lines.markersize": 3.5,
    "axes.prop_cycle": mpl.cycler(color=PALETTE),
    "figure.dpi": 100,
    "savefig.dpi": DPI,
}


@contextmanager
def style() -> Iterator[None]:
    """Build figures in the report's style (matplotlib's rc settings for the block only)."""
    with mpl.rc_context(RC):
        yield


def figure(width_in: float = COLUMN_IN, height_in: float = 2.4, nrows: int = 1, ncols: int = 1,
           **subplots: Any) -> tuple[Figure, Any]:
    """A constrained-layout figure in the report's style (call inside :func:`style`)."""
    return new_figure(width_in, height_in, nrows, ncols, **subplots)


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes at :data:`DPI` (its rc settings applied as when it was built)."""
    buf = BytesIO()
    with style():
        fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.03)
    return buf.getvalue()


__all__ = ["COLUMN_IN", "DPI", "PAGE_IN", "PALETTE", "TECH_COLOURS", "figure", "legend_below", "png_bytes", "style"]
