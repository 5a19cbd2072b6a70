"""Synthetic radial feeders of any size, for the scale benchmarks and tests.

A feeder of N buses is one substation (bus 1) with copies of the IEEE 33-bus
feeder's buses 2–33 hanging from it, each through its own breaker (as a
substation feeds several MV feeders): every copy has the published per-bus
loads and customers, impedances and lateral structure, so voltages and
currents stay those of the 33-bus feeder however large N is. The last copy is
cut to make exactly N buses (its buses keep their parents: the 33-bus
numbering has every parent before its children). Each complete copy keeps the
five published tie lines (normally open) and the shipped case's fuses at the
lateral heads and sectionalisers.

The case YAML is ``cases/ieee33.yaml``'s: same network limits, profiles,
clustering, reliability data (no SAIDI limit unless asked: copies without a
candidate could not improve theirs), and RES candidates placed on the copies
round-robin in the 33-bus case's pattern (``sites`` of them; the 33-bus case's
ten on one copy). Microgrids (the 33-bus case's three, on the first copies)
only when asked.

    python benchmarks/synthetic.py 500 /tmp/feeder500 [--sites 10] [--k 8] [--microgrids 3]

writes ``buses.csv``, ``branches.csv`` and ``case.yaml`` into the folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
IEEE33 = ROOT / "adnstudy" / "data" / "feeders" / "ieee33"
COPY = 32  # buses 2..33 of the 33-bus feeder per copy
FUSES = [(2, 19), (3, 23), (6, 26)]  # cases/ieee33.yaml
SECTIONALISERS = [(8, 9), (12, 13), (15, 16), (28, 29), (23, 24), (20, 21)]
#: cases/ieee33.yaml's candidate sites: bus, tech, max_mw
SITES = [(7, "pv", 1.0), (14, "pv", 1.0), (18, "pv", 0.8), (25, "pv", 1.0), (30, "pv", 1.0),
         (10, "wind", 1.0), (17, "wind", 0.8), (22, "wind", 1.0), (24, "wind", 1.0), (32, "wind", 1.0)]
COSTS = {
    "pv": "capex_usd_per_mw: 600000, fixed_capex_usd: 50000, lifetime_yr: 25, om_usd_per_mw_yr: 15000",
    "wind": "capex_usd_per_mw: 1300000, fixed_capex_usd: 80000, lifetime_yr: 20, om_usd_per_mwh: 8",
}
MICROGRIDS = [  # cases/ieee33.yaml's, by their bus in a copy
    (18, "load_peak_mw: 0.6, pv_mw: 0.5, pcc_limit_mw: 1.0, "
         "generator: {p_max_mw: 0.4, cost_a_usd_per_mw2h: 30, cost_b_usd_per_mwh: 60}, "
         "storage: {power_mw: 0.2, energy_mwh: 0.8, cost_usd_per_mwh: 2}"),
    (25, "load_peak_mw: 0.5, wind_mw: 0.8, pcc_limit_mw: 1.0, "
         "generator: {p_max_mw: 0.3, cost_a_usd_per_mw2h: 40, cost_b_usd_per_mwh: 65}"),
    (33, "load_peak_mw: 0.7, pv_mw: 0.3, wind_mw: 0.3, pcc_limit_mw: 1.0, "
         "generator: {p_max_mw: 0.5, cost_a_usd_per_mw2h: 25, cost_b_usd_per_mwh: 58}, "
         "storage: {power_mw: 0.3, energy_mwh: 1.2, cost_usd_per_mwh: 2}"),
]


def bus_id(copy: int, bus33: int) -> int:
    """The synthetic id of bus ``bus33`` (2..33) of copy ``copy`` (bus 1 is the substation)."""
    return 1 + copy * COPY + (bus33 - 1)


def feeder_tables(n_bus: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bus and branch tables of an ``n_bus``-bus feeder (see the module docstring)."""
    if n_bus < 2:
        raise ValueError("a feeder needs at least two buses")
    buses33 = pd.read_csv(IEEE33 / "buses.csv")
    branches33 = pd.read_csv(IEEE33 / "branches.csv")
    copies = -(-(n_bus - 1) // COPY)
    kept = lambda c: min(COPY, n_bus - 1 - c * COPY) + 1  # noqa: E731  (buses 2..kept of copy c)
    bus_rows = [buses33.iloc[[0]].assign(bus=1)]
    branch_rows = []
    switch = {pair: "fuse" for pair in FUSES} | {pair: "sectionaliser" for pair in SECTIONALISERS}
    closed33 = branches33[branches33["normally_open"].astype(str).str.lower() != "true"]
    ties33 = branches33[branches33["normally_open"].astype(str).str.lower() == "true"]
    for c in range(copies):
        last = kept(c)
        b = buses33[(buses33["bus"] >= 2) & (buses33["bus"] <= last)].copy()
        b["bus"] = [bus_id(c, int(x)) for x in b["bus"]]
        bus_rows.append(b)
        br = closed33[closed33["to_bus"] <= last].copy()
        br["switch"] = [switch.get((int(f), int(t)), s) for f, t, s in zip(br["from_bus"], br["to_bus"], br["switch"],
                                                                           strict=True)]
        tie = ties33[(ties33["from_bus"] <= last) & (ties33["to_bus"] <= last)].copy() if last == COPY + 1 else None
        for part in (br, tie):
            if part is None:
                continue
            part["from_bus"] = [1 if int(x) == 1 else bus_id(c, int(x)) for x in part["from_bus"]]
            part["to_bus"] = [bus_id(c, int(x)) for x in part["to_bus"]]
            branch_rows.append(part)
    buses = pd.concat(bus_rows, ignore_index=True)
    branches = pd.concat(branch_rows, ignore_index=True)
    branches = pd.concat([branches[branches["normally_open"].astype(str).str.lower() != "true"],
                          branches[branches["normally_open"].astype(str).str.lower() == "true"]], ignore_index=True)
    assert len(buses) == n_bus
    return buses, branches


def candidate_sites(n_bus: int, n_sites: int) -> list[tuple[int, str, float]]:
    """``n_sites`` sites in the 33-bus case's pattern (bus id, tech, max_mw): up to ten fill the first copy as in
    the 33-bus case; more go round-robin over the copies, one pattern site per copy at a time."""
    copies = -(-(n_bus - 1) // COPY)
    if n_sites <= 10:
        order = [(c, p) for c in range(copies) for p in range(10)]
    else:
        order = [(c, p) for p in range(10) for c in range(copies)]
    out: list[tuple[int, str, float]] = []
    for c, p in order:
        bus33, tech, max_mw = SITES[p]
        if bus_id(c, bus33) <= n_bus and len(out) < n_sites:
            out.append((bus_id(c, bus33), tech, max_mw))
    return out


def case_yaml(name: str, n_bus: int, *, sites: int, k: int, microgrids: int, saidi_limit_h: float | None,
              tie_restoration: bool) -> str:
    site_lines = "\n".join(f"    - {{bus: {b}, tech: {t}, max_mw: {m}, {COSTS[t]}}}"
                           for b, t, m in candidate_sites(n_bus, sites))
    copies = -(-(n_bus - 1) // COPY)
    mg_lines = []
    for i in range(microgrids):
        bus33, body = MICROGRIDS[i % len(MICROGRIDS)]
        copy = i // len(MICROGRIDS) if copies > 1 else 0
        mg_lines.append(f"  - {{name: mg{i + 1}, bus: {bus_id(copy % copies, bus33)}, {body}}}")
    mgs = ("microgrids:\n" + "\n".join(mg_lines) + "\n") if mg_lines else ""
    saidi = f"\n  saidi_limit_h: {saidi_limit_h}" if saidi_limit_h is not None else ""
    return f"""# Synthetic {n_bus}-bus feeder: copies of the IEEE 33-bus feeder at one substation (benchmarks/synthetic.py).
name: {name}
description: synthetic {n_bus}-bus ADN built from IEEE 33-bus copies
defaults: defaults.yaml

network:
  buses: buses.csv
  branches: branches.csv
  base_mva: 10.0
  v_substation_pu: 1.0
  v_substation_range_pu: [1.0, 1.05]
  v_min_pu: 0.95
  v_max_pu: 1.05
  branch_rating_factor: 2.0

profiles:
  source: simbench
  simbench_code: 1-complete_data-mixed-all-0-sw
  series:
    load: {{kind: load, column: mv_semiurb_pload}}
    pv:   {{kind: pv,   column: PV3}}
    wind: {{kind: wind, column: WP4}}

clustering:
  k: {k}

candidates:
  max_penetration: 0.8
  sites:
{site_lines}

reliability:
  failure_rate_per_yr: 0.1
  repair_h: 5.0
  switching_h: 1.0
  tie_restoration: {str(tie_restoration).lower()}
  island_credit: weighted_mean
  voll_usd_per_mwh: 5000{saidi}
{mgs}"""


def write_case(folder: Path, n_bus: int, *, sites: int = 10, k: int = 8, microgrids: int = 0,
               saidi_limit_h: float | None = None, tie_restoration: bool = False) -> Path:
    """Write ``buses.csv``, ``branches.csv`` and ``case.yaml`` of an ``n_bus``-bus case; return the case file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buses, branches = feeder_tables(n_bus)
    buses.to_csv(folder / "buses.csv", index=False)
    branches.to_csv(folder / "branches.csv", index=False, float_format="%.4f")
    path = folder / "case.yaml"
    path.write_text(case_yaml(f"synthetic{n_bus}", n_bus, sites=sites, k=k, microgrids=microgrids,
                              saidi_limit_h=saidi_limit_h, tie_restoration=tie_restoration))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("buses", type=int)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--sites", type=int, default=10, help="RES candidate sites (default 10)")
    ap.add_argument("--k", type=int, default=8, help="typical days (clustering.k)")
    ap.add_argument("--microgrids", type=int, default=0)
    ap.add_argument("--saidi-limit", type=float, default=None)
    ap.add_argument("--tie-restoration", action="store_true")
    args = ap.parse_args()
    path = write_case(args.folder, args.buses, sites=args.sites, k=args.k, microgrids=args.microgrids,
                      saidi_limit_h=args.saidi_limit, tie_restoration=args.tie_restoration)
    print(path)


if __name__ == "__main__":
    np.seterr(all="raise")
    main()
