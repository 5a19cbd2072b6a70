"""Reliability inputs: branch outage data, switch placement, customers, average loads, DG credit.

Per closed branch: failure rate λ (table ``failure_rate_per_yr``; else
``length_km`` × ``reliability.failure_rate_per_km_yr``; else
``reliability.failure_rate_per_yr``), repair time, and its device: ``breaker``
or ``fuse`` (protective: trips for faults below it), ``sectionaliser``
(isolates), or ``none``. The substation acts as a breaker for branches with no
protective device above them. Normally-open tie lines may restore isolated
areas. See ``docs/reliability.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adnstudy.config.load import Case
from adnstudy.config.schema import ReliabilityConfig
from adnstudy.network.feeder import Feeder

PROTECTIVE = ("breaker", "fuse")
SWITCHING = ("breaker", "fuse", "sectionaliser")
HOURS_PER_YEAR = 8760.0
SUSTAINED_H = 5.0 / 60.0  # IEEE 1366: an interruption longer than 5 minutes is sustained


@dataclass(frozen=True)
class ReliabilityData:
    feeder: Feeder
    rate: np.ndarray  # failures per year, per branch
    repair_h: np.ndarray  # per branch
    device: np.ndarray  # per branch: breaker / fuse / sectionaliser / none
    switching_h: float
    ties: list[tuple[int, int]]  # bus positions joined by usable normally-open ties
    customers: np.ndarray  # per bus
    load_avg_mw: np.ndarray  # per bus, the scenarios' weighted mean load
    site_pos: np.ndarray  # bus position of each candidate site
    site_credit: np.ndarray  # MW of island supply credited per MW of capacity (0: may not island)

    @property
    def protective(self) -> np.ndarray:
        return np.isin(self.device, PROTECTIVE)

    @property
    def switch(self) -> np.ndarray:
        return np.isin(self.device, SWITCHING)


def _branch_index(feeder: Feeder) -> dict[tuple[int, int], int]:
    out = {}
    for k, (a, b) in enumerate(zip(feeder.branches["from_bus"], feeder.branches["to_bus"], strict=True)):
        out[(int(a), int(b))] = k
        out[(int(b), int(a))] = k
    return out


def reliability_data(
    case: Case, feeder: Feeder, load_avg_mw: np.ndarray, site_pos: np.ndarray, site_credit: np.ndarray
) -> ReliabilityData:
    """Merge the branch table's outage columns with the case's ``reliability`` section."""
    cfg: ReliabilityConfig | None = case.config.reliability
    assert cfg is not None
    br = feeder.branches
    rate = br["failure_rate_per_yr"].to_numpy(dtype=float).copy()
    length = br["length_km"].to_numpy(dtype=float)
    by_length = np.isnan(rate) & ~np.isnan(length) & (cfg.failure_rate_per_km_yr is not None)
    if cfg.failure_rate_per_km_yr is not None:
        rate[by_length] = length[by_length] * cfg.failure_rate_per_km_yr
    missing = np.isnan(rate)
    if missing.any():
        if cfg.failure_rate_per_yr is None:
            k = int(np.flatnonzero(missing)[0])
            raise case.error(
                f"branch {br['from_bus'].iloc[k]}-{br['to_bus'].iloc[k]} has no failure rate: give "
                "failure_rate_per_yr (or length_km with failure_rate_per_km_yr)",
                "reliability", "failure_rate_per_yr",
            )
        rate[missing] = cfg.failure_rate_per_yr
    repair = br["repair_h"].to_numpy(dtype=float).copy()
    repair[np.isnan(repair)] = cfg.repair_h
    if np.any(repair < cfg.switching_h):
        k = int(np.flatnonzero(repair < cfg.switching_h)[0])
        raise case.error(
            f"branch {br['from_bus'].iloc[k]}-{br['to_bus'].iloc[k]}: repair time {repair[k]} h is shorter than "
            f"the switching time {cfg.switching_h} h", "reliability", "switching_h",
        )
    if cfg.switching_h < SUSTAINED_H:
        raise case.error(
            "switching_h below 5 minutes makes restorations momentary interruptions, which this model does not count "
            "separately (IEEE 1366 MAIFI); use at least 0.0834 h", "reliability", "switching_h",
        )
    device = br["switch"].to_numpy().astype(object).copy()
    index = _branch_index(feeder)
    for field, kind in (("sectionalisers", "sectionaliser"), ("fuses", "fuse")):
        for i, (a, b) in enumerate(getattr(cfg, field)):
            k = index.get((a, b))
            if k is None:
                raise case.error(f"no closed branch joins buses {a} and {b}", "reliability", field, i)
            if device[k] != "breaker":
                device[k] = kind
    pos = {int(b): i for i, b in enumerate(feeder.bus_ids)}
    ties = []
    if cfg.tie_restoration:
        ties = [(pos[int(a)], pos[int(b)]) for a, b in zip(feeder.ties["from_bus"], feeder.ties["to_bus"], strict=True)]
    return ReliabilityData(
        feeder=feeder, rate=rate, repair_h=repair, device=device.astype(str), switching_h=cfg.switching_h,
        ties=ties, customers=feeder.buses["customers"].to_numpy(dtype=float), load_avg_mw=np.asarray(load_avg_mw, float),
        site_pos=np.asarray(site_pos, int), site_credit=np.asarray(site_credit, float),
    )


def credits(avail: np.ndarray, snap_weight: np.ndarray, how: str) -> np.ndarray:
    """Island supply credited per MW of each site: weighted mean or weighted 10th percentile of availability."""
    w = snap_weight / snap_weight.sum()
    if how == "weighted_mean":
        return avail @ w
    out = np.empty(avail.shape[0])
    for i, a in enumerate(avail):  # one weighted quantile per site (a handful of sites)
        order = np.argsort(a)
        cum = np.cumsum(w[order])
        out[i] = a[order][np.searchsorted(cum, 0.10)]
    return out
