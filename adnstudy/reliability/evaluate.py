"""Reliability indices by enumerating every branch fault (IEEE 1366), with or without a plan.

For a permanent fault on branch k (rate λ_k, repair time r_k):

1. the nearest protective device at or above k (breaker or fuse; else the
   substation) trips: every bus below it is interrupted;
2. the nearest switch at or above k opens to isolate the fault; buses the
   protective device interrupted but that lie above this switch are restored
   after the switching time t_sw;
3. the isolated part splits at the switches directly below the isolating one:
   the section holding the fault waits for repair (r_k); each area below one of
   those switches is restored after t_sw if a tie line reaches it from healthy
   supply, or if its planned DG, credited per MW, covers its average load (a
   successful island); otherwise it waits for repair too.

Per bus: failures λ summed over the faults that interrupt it, unavailability
Σ λ·duration, EENS = average load × unavailability. System: SAIFI, SAIDI,
CAIDI, ASAI, EENS. This module walks the tree fault by fault with sets, on
purpose independently of the matrix formulation the planner uses
(:mod:`adnstudy.formulation.reliability`), so each checks the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from adnstudy.reliability.data import HOURS_PER_YEAR, PROTECTIVE, SWITCHING, ReliabilityData

ISLAND_TOL_MW = 1e-7


@dataclass(frozen=True)
class ReliabilityResult:
    failures_per_yr: np.ndarray  # per bus
    unavailability_h_per_yr: np.ndarray
    eens_mwh_per_yr: np.ndarray
    saifi: float
    saidi_h: float
    caidi_h: float
    asai: float
    eens_mwh: float
    islands_ok: dict[int, bool]  # switch branch → island below it succeeds

    def indices(self) -> dict[str, float]:
        return {"SAIFI": self.saifi, "SAIDI": self.saidi_h, "CAIDI": self.caidi_h, "ASAI": self.asai, "EENS": self.eens_mwh}


def system_indices(rd: ReliabilityData, failures: np.ndarray, unavail: np.ndarray) -> dict[str, float]:
    n_cust = rd.customers.sum()
    saifi = float(rd.customers @ failures / n_cust)
    saidi = float(rd.customers @ unavail / n_cust)
    return {
        "SAIFI": saifi, "SAIDI": saidi, "CAIDI": saidi / saifi if saifi > 0 else 0.0,
        "ASAI": 1.0 - saidi / HOURS_PER_YEAR, "EENS": float(rd.load_avg_mw @ unavail),
    }


def evaluate(rd: ReliabilityData, capacity_mw: np.ndarray | None = None) -> ReliabilityResult:
    """Indices for the network with the given site capacities (None or zeros: no DG)."""
    fd = rd.feeder
    n, m = fd.n_bus, fd.n_branch
    cap = np.zeros(len(rd.site_pos)) if capacity_mw is None else np.asarray(capacity_mw, float)
    children: list[list[int]] = [[] for _ in range(n)]  # branches leaving each bus
    for k in range(m):
        children[fd.f[k]].append(k)

    def below(k: int | None) -> set[int]:
        """Buses fed through branch k (all buses for None: the substation)."""
        if k is None:
            return set(range(n))
        out, stack = set(), [int(fd.t[k])]
        while stack:
            j = stack.pop()
            out.add(j)
            stack.extend(int(fd.t[c]) for c in children[j])
        return out

    def first_above(k: int, kinds: tuple[str, ...], strict: bool = False) -> int | None:
        """Nearest branch at (or strictly) above k whose device is one of ``kinds``."""
        a = int(fd.parent_branch[fd.f[k]]) if strict else k
        while a >= 0:
            if rd.device[a] in kinds:
                return a
            a = int(fd.parent_branch[fd.f[a]])
        return None

    switches = [k for k in range(m) if rd.device[k] in SWITCHING]
    parent_switch = {s: first_above(s, SWITCHING, strict=True) for s in switches}
    island_ok: dict[int, bool] = {}
    for s in switches:
        area = below(s)
        supply = float(sum(rd.site_credit[i] * cap[i] for i in range(len(cap)) if rd.site_pos[i] in area))
        load = float(sum(rd.load_avg_mw[j] for j in area))
        island_ok[s] = supply > 0 and supply >= load - ISLAND_TOL_MW
    failures = np.zeros(n)
    unavail = np.zeros(n)
    t_sw = rd.switching_h
    for k in range(m):
        lam, rep = rd.rate[k], rd.repair_h[k]
        affected = below(first_above(k, PROTECTIVE))
        iso_switch = first_above(k, SWITCHING)
        isolated = below(iso_switch)
        duration = {j: t_sw for j in affected - isolated}
        for j in isolated:
            duration[j] = rep
        for s in (s for s in switches if parent_switch[s] == iso_switch and s != iso_switch):
            area = below(s)
            if not area <= isolated:
                continue
            tie = any((a in area and b not in isolated) or (b in area and a not in isolated) for a, b in rd.ties)
            if tie or island_ok[s]:
                for j in area:
                    duration[j] = t_sw
        for j, d in duration.items():
            failures[j] += lam
            unavail[j] += lam * d
    idx = system_indices(rd, failures, unavail)
    return ReliabilityResult(
        failures_per_yr=failures, unavailability_h_per_yr=unavail, eens_mwh_per_yr=rd.load_avg_mw * unavail,
        saifi=idx["SAIFI"], saidi_h=idx["SAIDI"], caidi_h=idx["CAIDI"], asai=idx["ASAI"], eens_mwh=idx["EENS"],
        islands_ok=island_ok,
    )


UNITS = {"SAIFI": "interruptions/customer/yr", "SAIDI": "h/customer/yr", "CAIDI": "h/interruption",
         "ASAI": "fraction", "EENS": "MWh/yr"}


def reliability_tables(
    rd: ReliabilityData, res: ReliabilityResult, limits: dict[str, float | None], tol: float = 1e-6
) -> dict[str, pd.DataFrame]:
    """``reliability`` (index, value, unit, limit, binding) and ``bus_reliability`` tables."""
    rows = []
    for name, value in res.indices().items():
        limit = limits.get(name)
        binding = limit is not None and value >= limit * (1 - tol)
        rows.append({"index": name, "value": value, "unit": UNITS[name], "limit": limit, "binding": bool(binding)})
    bus = pd.DataFrame({
        "bus": rd.feeder.bus_ids, "failures_per_yr": res.failures_per_yr,
        "unavailability_h_per_yr": res.unavailability_h_per_yr, "eens_mwh_per_yr": res.eens_mwh_per_yr,
    })
    return {"reliability": pd.DataFrame(rows), "bus_reliability": bus}
