"""Which series drive each bus's load and each existing generator's output, over any snapshots.

One helper per idea, used by the annual profiles (:func:`adnstudy.data.profiles.bus_load_profiles`,
bus × hour) and by the typical days (:meth:`adnstudy.data.typical.TypicalDays.bus_load_multipliers`,
bus × (day·hour)) alike:

* a bus's load multiplier is its ``load_profile`` series (empty: the case's first load series), or,
  for a bus of :attr:`~adnstudy.network.feeder.Feeder.load_shares`, the mix Σ_s share_s · series_s
  (shares of the bus's peak ``p_mw``, summing to 1);
* an existing generator's availability is its ``profile`` series (empty: the case's first series of
  its technology's kind; ``other`` → kind ``other``), per unit of its ``p_mw``.

``values`` is series × snapshot in the order of ``names``; the result is one row per bus or generator.
Buses without a mix are a row selection (bit for bit the series), so feeders without mixes give the
numbers they gave before mixes existed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from adnstudy.network.feeder import Feeder

#: The series kind a generator's technology follows when its ``profile`` is empty.
KIND_OF_TECH = {"pv": "pv", "wind": "wind", "other": "other"}


def load_mix_weights(feeder: Feeder, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the mixed buses and their bus × series share matrix (rows: those buses, columns: ``names``)."""
    shares = feeder.load_shares
    if shares.empty:
        return np.zeros(0, dtype=int), np.zeros((0, len(names)))
    col = {n: i for i, n in enumerate(names)}
    mixed = np.unique(shares["bus"].to_numpy(dtype=int))
    row = {int(b): i for i, b in enumerate(mixed)}
    w = np.zeros((len(mixed), len(names)))
    np.add.at(w, (shares["bus"].map(row).to_numpy(), shares["load_profile"].map(col).to_numpy()),
              shares["share"].to_numpy(dtype=float))
    return np.array([feeder.position(int(b)) for b in mixed], dtype=int), w


def bus_load_mix(feeder: Feeder, names: Sequence[str], values: np.ndarray, first_load: str) -> np.ndarray:
    """Bus × snapshot multiplier of each bus's peak load (``values``: load series × snapshot, in ``names``' order)."""
    col = {n: i for i, n in enumerate(names)}
    own = feeder.buses["load_profile"].replace("", first_load).to_numpy()
    out = values[[col[n] for n in own]]
    pos, w = load_mix_weights(feeder, names)
    if len(pos):
        out[pos] = w @ values
    return out


def generator_series(feeder: Feeder, first_of: Mapping[str, str]) -> list[str]:
    """The availability series each existing generator follows (its ``profile``, else its kind's first series)."""
    g = feeder.generators
    return [p if p else first_of[KIND_OF_TECH[t]] for p, t in zip(g["profile"], g["tech"], strict=True)]


def generator_availability(feeder: Feeder, names: Sequence[str], values: np.ndarray,
                           first_of: Mapping[str, str]) -> np.ndarray:
    """Generator × snapshot available power per unit of each unit's ``p_mw`` (``values``: series × snapshot)."""
    col = {n: i for i, n in enumerate(names)}
    rows = [col[n] for n in generator_series(feeder, first_of)]
    return values[rows].reshape(len(rows), values.shape[1])
