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
from typing import TYPE_CHECKING

import numpy as np

from adnstudy.network.feeder import Feeder

if TYPE_CHECKING:
    from adnstudy.config.load import Case

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
    """Generator × snapshot available power per unit of each unit's ``p_mw`` (``values``: series × snapshot).

    Clipped at 0: an ``other`` series is read as given, and a unit's standby draw is load, not negative supply.
    """
    col = {n: i for i, n in enumerate(names)}
    rows = [col[n] for n in generator_series(feeder, first_of)]
    return np.maximum(values[rows].reshape(len(rows), values.shape[1]), 0.0)


def series_mw(case: Case, feeder: Feeder) -> tuple[np.ndarray, np.ndarray] | None:
    """MW behind each series of ``profiles.series`` (in order): the peak MW of the loads that follow it (a mixed
    bus's ``p_mw`` × its share) and the installed ``p_mw`` of the existing units that follow it; None for a feeder
    without existing generation or load mixes."""
    cfg = case.config.profiles
    if cfg is None or (feeder.generators.empty and feeder.load_shares.empty):
        return None
    names = list(cfg.series)
    col = {n: i for i, n in enumerate(names)}
    first_of: dict[str, str] = {}
    for n, s in cfg.series.items():
        first_of.setdefault(s.kind, n)
    load_mw, gen_mw = np.zeros(len(names)), np.zeros(len(names))
    peak = np.abs(feeder.buses["p_mw"].to_numpy(dtype=float))
    own = feeder.buses["load_profile"].replace("", first_of["load"]).to_numpy()
    load_names = [n for n in names if cfg.series[n].kind == "load"]
    pos, w = load_mix_weights(feeder, load_names)
    solo = np.ones(feeder.n_bus, dtype=bool)
    solo[pos] = False
    np.add.at(load_mw, [col[n] for n in own[solo]], peak[solo])
    load_mw[[col[n] for n in load_names]] += (peak[pos][:, None] * w).sum(axis=0)
    if not feeder.generators.empty:
        np.add.at(gen_mw, [col[n] for n in generator_series(feeder, first_of)],
                  feeder.generators["p_mw"].to_numpy(dtype=float))
    return load_mw, gen_mw


def feature_weights(case: Case, feeder: Feeder) -> np.ndarray | None:
    """Clustering weight of each series of ``profiles.series`` (in order), or None: every series weighs 1.

    A feeder with existing generation or load mixes (an imported SimBench grid: 20+ series) weighs the series
    that drive it by the MW that follow them (:func:`series_mw`: loads by peak MW, generators by capacity),
    scaled so that together they weigh as many as they are (their mean weight is 1, as before), and every
    other series (candidates', microgrids', prices, ``other``) weighs 1, as before; a driving series that
    candidates, microgrids or tariffs also use weighs at least 1. A feeder without either gives None: the
    features of every case before mixes existed, bit for bit (docs/cluster.md, "Data").
    """
    mw = series_mw(case, feeder)
    if mw is None:
        return None
    total = mw[0] + mw[1]
    driving = total > 0
    weights = np.ones(len(total))
    weights[driving] = driving.sum() * total[driving] / total[driving].sum()
    cfg = case.config.profiles
    assert cfg is not None
    first_of: dict[str, str] = {}
    for n, s in cfg.series.items():
        first_of.setdefault(s.kind, n)
    used = set(case_series(case, first_of))
    keep = np.array([n in used for n in cfg.series]) & driving
    weights[keep] = np.maximum(weights[keep], 1.0)
    return weights


def net_load_mw(case: Case, feeder: Feeder) -> np.ndarray | None:
    """Per series, its MW coefficient in the feeder's net load (load MW − existing generation MW behind it), for
    the extreme days; None without existing generation or load mixes (docs/cluster.md)."""
    mw = series_mw(case, feeder)
    return None if mw is None else mw[0] - mw[1]


def case_series(case: Case, first_of: Mapping[str, str]) -> list[str]:
    """The series the case's candidates, microgrids and tariffs follow (besides the feeder's own)."""
    cfg = case.config
    out = [s.profile or first_of.get(s.tech, "") for s in (cfg.candidates.sites if cfg.candidates else [])
           if s.tech != "storage"]
    for mg in cfg.microgrids or []:
        out += [mg.load_profile] + [first_of.get(t, "") for t in ("pv", "wind") if getattr(mg, f"{t}_mw") > 0]
        out += [c.profile or first_of.get(c.tech, "") for c in mg.candidates if c.tech in ("pv", "wind")]
    if cfg.economics is not None:
        out += list(cfg.economics.price_series.values())
    return out
