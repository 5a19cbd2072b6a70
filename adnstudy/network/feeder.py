"""Radial feeders as typed tables, checked on load, with the per-unit arrays models need.

A feeder is two tables (see ``docs/case.md``):

* buses: ``bus, base_kv, p_mw, q_mvar, customers`` and optionally ``substation``
  (true on exactly one bus; without the column the first row is the substation)
  and ``load_profile`` (the load series scaling the bus, default the case's first
  load series);
* branches: ``from_bus, to_bus, r_ohm, x_ohm`` and optionally ``rating_a``,
  ``length_km``, ``failure_rate_per_yr``, ``repair_h``, ``switch``
  (``breaker``, ``sectionaliser``, ``fuse``, ``tie`` or ``none``) and
  ``normally_open`` (tie lines; they are not part of the radial operating network).

Closed branches are oriented away from the substation. The path matrix ``T``
(branch × bus, 1 where the branch lies on the path from the substation to the
bus) gives branch currents and voltage drops of a radial network in one product
each, for any number of snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from adnstudy.config.schema import NetworkConfig, Range
from adnstudy.data import csvfile
from adnstudy.errors import CaseError

BUILTIN_FEEDERS = ("ieee33", "ieee69")
SWITCH_KINDS = ("breaker", "sectionaliser", "fuse", "tie", "none")

BUS_REQUIRED = ("bus", "base_kv", "p_mw", "q_mvar")
BRANCH_REQUIRED = ("from_bus", "to_bus", "r_ohm", "x_ohm")
BRANCH_OPTIONAL_FLOAT = ("rating_a", "length_km", "failure_rate_per_yr", "repair_h")
#: Plausible values of the numeric columns (docs/case.md states them; a test checks it).
COLUMN_RANGES = {
    "bus": Range(1, 1e9),
    "from_bus": Range(1, 1e9),
    "to_bus": Range(1, 1e9),
    "base_kv": Range(0.1, 1000, "kV"),
    "p_mw": Range(-1000, 1000, "MW"),
    "q_mvar": Range(-1000, 1000, "Mvar"),
    "customers": Range(0, 1e7),
    "r_ohm": Range(1e-6, 1000, "Ω"),
    "x_ohm": Range(0, 1000, "Ω"),
    "rating_a": Range(0.1, 100_000, "A"),
    "length_km": Range(1e-4, 1000, "km"),
    "failure_rate_per_yr": Range(0, 100, "failures/yr", lo_open=True),
    "repair_h": Range(0, 1000, "h", lo_open=True),
}


@dataclass(frozen=True, eq=False)
class Feeder:
    """A checked radial feeder.

    ``buses`` keeps the table order with the substation moved first; ``branches``
    holds the closed (operating) branches oriented parent → child, ``ties`` the
    normally-open ones. Arrays are positional: bus ``i`` is ``buses.iloc[i]``,
    branch ``k`` is ``branches.iloc[k]``.
    """

    name: str
    buses: pd.DataFrame
    branches: pd.DataFrame
    ties: pd.DataFrame
    base_mva: float
    base_kv: float
    f: np.ndarray  # sending-end bus position of each branch
    t: np.ndarray  # receiving-end bus position of each branch
    parent_branch: np.ndarray  # per bus, the branch feeding it (-1 at the substation)
    path: sp.csr_matrix  # branch × bus, 1 if the branch lies on the substation→bus path
    bus_file: str = "buses"  # where the tables came from, for messages
    branch_file: str = "branches"

    @property
    def n_bus(self) -> int:
        return len(self.buses)

    @property
    def n_branch(self) -> int:
        return len(self.branches)

    @property
    def bus_ids(self) -> np.ndarray:
        return self.buses["bus"].to_numpy()

    @property
    def z_base_ohm(self) -> float:
        return self.base_kv**2 / self.base_mva

    @property
    def i_base_ka(self) -> float:
        return self.base_mva / (np.sqrt(3.0) * self.base_kv)

    @property
    def r_pu(self) -> np.ndarray:
        return self.branches["r_ohm"].to_numpy() / self.z_base_ohm

    @property
    def x_pu(self) -> np.ndarray:
        return self.branches["x_ohm"].to_numpy() / self.z_base_ohm

    @property
    def p_load_pu(self) -> np.ndarray:
        return self.buses["p_mw"].to_numpy() / self.base_mva

    @property
    def q_load_pu(self) -> np.ndarray:
        return self.buses["q_mvar"].to_numpy() / self.base_mva

    def position(self, bus_id: int) -> int:
        """Position of a published bus id in the arrays."""
        hits = np.flatnonzero(self.bus_ids == bus_id)
        if len(hits) == 0:
            raise KeyError(bus_id)
        return int(hits[0])

    def with_loads_scaled(self, factor: float) -> Feeder:
        """The same feeder with every bus's peak load times ``factor`` (a new object)."""
        buses = self.buses.copy()
        buses[["p_mw", "q_mvar"]] *= factor
        return replace(self, buses=buses)

    def with_ratings(self, rating_a: np.ndarray) -> Feeder:
        """The same feeder with these branch ratings (A) (a new object)."""
        branches = self.branches.copy()
        branches["rating_a"] = np.asarray(rating_a, dtype=float)
        return replace(self, branches=branches)

    def incidence(self) -> sp.csr_matrix:
        """Bus × branch incidence: +1 at the sending end, −1 at the receiving end."""
        m = self.n_branch
        rows = np.concatenate([self.f, self.t])
        cols = np.concatenate([np.arange(m), np.arange(m)])
        vals = np.concatenate([np.ones(m), -np.ones(m)])
        return sp.csr_matrix((vals, (rows, cols)), shape=(self.n_bus, m))


def builtin_path(name: str) -> tuple[Path, Path]:
    base = resources.files("adnstudy") / "data" / "feeders" / name
    return Path(str(base / "buses.csv")), Path(str(base / "branches.csv"))


def load_feeder(net: NetworkConfig, base_dir: Path, case_file: str | Path) -> Feeder:
    """Read, check and orient the feeder the case's ``network`` section names."""
    if net.feeder is not None:
        bus_file, branch_file = builtin_path(net.feeder)
        name = net.feeder
    else:
        assert net.buses is not None and net.branches is not None
        bus_file = net.buses if net.buses.is_absolute() else base_dir / net.buses
        branch_file = net.branches if net.branches.is_absolute() else base_dir / net.branches
        for label, p in (("network.buses", bus_file), ("network.branches", branch_file)):
            why = csvfile.problem(p, "feeder table")
            if why is not None:
                raise CaseError(why, file=case_file, field=label)
        name = Path(bus_file).name  # a user feeder is known by its bus table
    buses = csvfile.read_table(Path(bus_file), comment="#")
    branches = csvfile.read_table(Path(branch_file), comment="#")
    feeder = build_feeder(name, buses, branches, net.base_mva, bus_file, branch_file)
    if net.load_scale != 1.0:
        feeder = feeder.with_loads_scaled(net.load_scale)
    if net.branch_rating_factor is not None:
        feeder = with_assumed_ratings(feeder, net.branch_rating_factor, net.v_substation_pu)
    return feeder


class _Table:
    """A feeder table being checked: its file, its rows, and each row's line in the file."""

    def __init__(self, file: Path, frame: pd.DataFrame) -> None:
        self.file = file
        self.frame = frame
        self.lines = csvfile.lines_of(frame).to_numpy()

    def error(self, row: int, col: str, what: str) -> CaseError:
        return CaseError(what, file=self.file, field=col, line=int(self.lines[row]))

    def check(self, mask: np.ndarray, col: str, what: str, ids: pd.Series | None = None) -> None:
        """No row where ``mask`` holds; the first that does is named by bus id (or row) and line."""
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            label = f"bus {ids.iloc[i]}" if ids is not None else f"row {i + 1}"
            raise self.error(i, col, f"{label}: {what}")

    def within(self, col: str, values: pd.Series, ids: pd.Series | None = None) -> None:
        """Every given value of a column is in its plausible range (:data:`COLUMN_RANGES`)."""
        rng = COLUMN_RANGES[col]
        given = values.notna().to_numpy()
        bad = given & ~rng.contains(values.to_numpy(dtype=float))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            label = f"bus {ids.iloc[i]}" if ids is not None else f"row {i + 1}"
            raise self.error(i, col, f"{label}: {col} must be {rng.text()} (got {values.iloc[i]:g})")

    def numeric(self, col: str, *, required: bool) -> pd.Series:
        """Column as float; non-numbers (also true/false) are errors naming the row and its line."""
        df = self.frame
        if col not in df.columns:
            if required:
                raise CaseError(f"missing column '{col}'", file=self.file, field=col)
            return pd.Series(np.nan, index=df.index, dtype=float)
        if df[col].dtype == bool:  # pandas reads a column of True/False as booleans, which to_numeric takes as 1/0
            raise self.error(0, col, f"row 1: {str(df[col].iloc[0])!r} is not a number")
        values = pd.to_numeric(df[col], errors="coerce")
        bad = (values.isna() & df[col].notna()).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise self.error(i, col, f"row {i + 1}: {df[col].iloc[i]!r} is not a number")
        if required:
            self.check(values.isna().to_numpy(), col, "value is missing")
        self.check(np.isinf(values.to_numpy()), col, "value is not finite")
        return values.astype(float)

    def flags(self, col: str) -> np.ndarray:
        """A true/false column (absent: all false)."""
        df = self.frame
        if col not in df.columns:
            return np.zeros(len(df), dtype=bool)
        text = df[col].astype(str).str.strip().str.lower()
        truth = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False, "nan": False, "": False}
        self.check(~text.isin(list(truth)).to_numpy(), col, "must be true or false")
        return text.map(truth).to_numpy(dtype=bool)


def build_feeder(
    name: str,
    buses: pd.DataFrame,
    branches: pd.DataFrame,
    base_mva: float,
    bus_file: Path | str = "buses",
    branch_file: Path | str = "branches",
) -> Feeder:
    """Check the two tables and build the oriented radial feeder.

    Messages give the file line of a row: the index of a table read by
    :func:`adnstudy.data.csvfile.read_table`, else the row's position after a header line.
    """
    bt, lt = _Table(Path(bus_file), buses), _Table(Path(branch_file), branches)
    bus_file, branch_file = bt.file, lt.file
    if len(buses) < 2:
        raise CaseError("a feeder needs at least two buses", file=bus_file)
    # ---- buses
    b = pd.DataFrame()
    ids = bt.numeric("bus", required=True)
    bt.check((ids != np.round(ids)).to_numpy() | (ids < 1).to_numpy(), "bus", "bus ids must be integers >= 1")
    bt.within("bus", ids)
    b["bus"] = ids.astype(int)
    bt.check(b["bus"].duplicated().to_numpy(), "bus", "duplicate bus id", b["bus"])
    for col in ("base_kv", "p_mw", "q_mvar"):
        b[col] = bt.numeric(col, required=True)
    bt.check((b["base_kv"] <= 0).to_numpy(), "base_kv", "base_kv must be positive", b["bus"])
    for col in ("base_kv", "p_mw", "q_mvar"):
        bt.within(col, b[col], b["bus"])
    kv = b["base_kv"].to_numpy()
    bt.check(kv != kv[0], "base_kv",
             f"base_kv differs from {kv[0]:g} kV of bus {b['bus'].iloc[0]} (line {bt.lines[0]}); all buses must "
             "share one base_kv (transformers inside the feeder are not modelled)", b["bus"])
    cust = bt.numeric("customers", required=False).fillna(0.0)
    bt.check(((cust < 0) | (cust != np.round(cust))).to_numpy(), "customers", "customers must be a whole number >= 0",
             b["bus"])
    bt.within("customers", cust, b["bus"])
    b["customers"] = cust.astype(int)
    if "load_profile" in buses.columns:
        b["load_profile"] = buses["load_profile"].fillna("").astype(str).str.strip()
    else:
        b["load_profile"] = ""
    sub = bt.flags("substation")
    if "substation" in buses.columns:
        rows = np.flatnonzero(sub)
        if len(rows) == 0:
            raise CaseError("exactly one bus must be the substation; none is marked true", file=bus_file,
                            field="substation")
        if len(rows) > 1:
            shown = ", ".join(f"bus {b['bus'].iloc[r]} (line {bt.lines[r]})" for r in rows)
            raise bt.error(rows[1], "substation", f"exactly one bus must be the substation; {len(rows)} are: {shown}")
        root_row = int(rows[0])
    else:
        root_row = 0
    order = [root_row] + [i for i in range(len(b)) if i != root_row]
    b = b.iloc[order].reset_index(drop=True)
    pos = {int(v): i for i, v in enumerate(b["bus"])}

    # ---- branches
    if len(branches) == 0:
        raise CaseError("the branch table is empty", file=branch_file)
    br = pd.DataFrame()
    for col in ("from_bus", "to_bus"):
        v = lt.numeric(col, required=True)
        lt.check((v != np.round(v)).to_numpy(), col, "bus ids must be integers")
        lt.within(col, v)
        br[col] = v.astype(int)
    for col in ("r_ohm", "x_ohm"):
        br[col] = lt.numeric(col, required=True)
    lt.check((br["r_ohm"] <= 0).to_numpy(), "r_ohm", "resistance must be positive")
    lt.check((br["x_ohm"] < 0).to_numpy(), "x_ohm", "reactance must not be negative")
    for col in ("r_ohm", "x_ohm"):
        lt.within(col, br[col])
    for col in BRANCH_OPTIONAL_FLOAT:
        v = lt.numeric(col, required=False)
        lt.check((v <= 0).to_numpy(), col, f"{col} must be positive where given")
        lt.within(col, v)
        br[col] = v
    sw = branches["switch"].fillna("none").astype(str).str.strip().str.lower() if "switch" in branches.columns else pd.Series("none", index=br.index)
    lt.check(~sw.isin(SWITCH_KINDS).to_numpy(), "switch", f"switch must be one of {', '.join(SWITCH_KINDS)}")
    br["switch"] = sw.to_numpy()
    br["normally_open"] = lt.flags("normally_open")
    for col in ("from_bus", "to_bus"):
        unknown = ~br[col].isin(list(pos))
        if unknown.any():
            i = int(np.flatnonzero(unknown.to_numpy())[0])
            raise lt.error(i, col, f"row {i + 1}: bus {br[col].iloc[i]} is not in the bus table {bus_file.name}")
    lt.check((br["from_bus"] == br["to_bus"]).to_numpy(), "to_bus", "a branch must join two different buses")
    key = br[["from_bus", "to_bus"]].min(axis=1).astype(str) + "-" + br[["from_bus", "to_bus"]].max(axis=1).astype(str)
    lt.check(key.duplicated().to_numpy(), "from_bus", "duplicate branch between the same two buses")

    br = br.reset_index(drop=True)
    closed_lines = lt.lines[~br["normally_open"].to_numpy()]  # file lines of the closed rows, for messages
    closed = br[~br["normally_open"]].reset_index(drop=True)
    ties = br[br["normally_open"]].reset_index(drop=True)
    f, t, parent_branch, oriented = _orient(closed, pos, b, branch_file, closed_lines)
    closed = closed.iloc[oriented["order"]].reset_index(drop=True)
    swap = oriented["swapped"]
    fb, tb = closed["from_bus"].to_numpy().copy(), closed["to_bus"].to_numpy().copy()
    closed["from_bus"] = np.where(swap, tb, fb)
    closed["to_bus"] = np.where(swap, fb, tb)
    path = _path_matrix(f, t, parent_branch, len(b))
    return Feeder(
        name=name,
        buses=b,
        branches=closed,
        ties=ties,
        base_mva=float(base_mva),
        base_kv=float(b["base_kv"].iloc[0]),
        f=f,
        t=t,
        parent_branch=parent_branch,
        path=path,
        bus_file=str(bus_file),
        branch_file=str(branch_file),
    )


def _orient(closed: pd.DataFrame, pos: dict[int, int], b: pd.DataFrame, file: Path, lines: np.ndarray):
    """Breadth-first from the substation: orient branches, find loops and unreached buses.

    ``lines[k]`` is the file line of closed branch ``k`` (normally-open rows are
    left out of ``closed``), for messages.
    """
    n = len(b)
    a = closed["from_bus"].map(pos).to_numpy()
    c = closed["to_bus"].map(pos).to_numpy()
    adj: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    for k, (u, v) in enumerate(zip(a, c, strict=True)):
        adj[u].append((v, k))
        adj[v].append((u, k))
    parent_branch = np.full(n, -1)
    seen = np.zeros(n, dtype=bool)
    seen[0] = True
    used = np.zeros(len(closed), dtype=bool)
    order: list[int] = []
    f_list: list[int] = []
    t_list: list[int] = []
    swapped = np.zeros(len(closed), dtype=bool)
    queue = [0]
    while queue:
        u = queue.pop(0)
        for v, k in adj[u]:
            if used[k]:
                continue
            used[k] = True
            if seen[v]:
                row = closed.iloc[k]
                raise CaseError(
                    f"the feeder is meshed: branch {row['from_bus']}-{row['to_bus']} closes a loop "
                    "(mark tie lines normally_open=true; the operating network must be radial)",
                    file=file,
                    field="from_bus",
                    line=int(lines[k]),
                )
            seen[v] = True
            parent_branch[v] = len(order)
            order.append(k)
            f_list.append(u)
            t_list.append(v)
            swapped[k] = a[k] != u
            queue.append(v)
    if not seen.all():
        missing = b["bus"].to_numpy()[~seen].tolist()
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise CaseError(
            f"the feeder is disconnected: bus(es) {shown} cannot be reached from substation bus {b['bus'].iloc[0]}",
            file=file,
        )
    return (
        np.array(f_list, dtype=int),
        np.array(t_list, dtype=int),
        parent_branch,
        {"order": np.array(order, dtype=int), "swapped": swapped[np.array(order, dtype=int)]},
    )


def _path_matrix(f: np.ndarray, t: np.ndarray, parent_branch: np.ndarray, n: int) -> sp.csr_matrix:
    """Branch × bus path matrix; branches are in breadth-first order, so parents come first."""
    rows: list[np.ndarray] = [np.empty(0, dtype=int)] * n
    for k in range(len(f)):  # one pass over branches, reusing the parent's path
        rows[t[k]] = np.append(rows[f[k]], k)
    r = np.concatenate(rows) if n else np.empty(0, dtype=int)
    c = np.concatenate([np.full(len(x), j) for j, x in enumerate(rows)])
    return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(f), n))


def with_assumed_ratings(feeder: Feeder, factor: float, v0: float) -> Feeder:
    """Unrated branches get ``factor`` × their base-case peak current (stated assumption)."""
    from adnstudy.network.powerflow import run_powerflow

    res = run_powerflow(feeder, feeder.buses["p_mw"].to_numpy(), feeder.buses["q_mvar"].to_numpy(), v0_pu=v0)
    i_a = res.i_branch_ka[:, 0] * 1000.0
    rating = feeder.branches["rating_a"].to_numpy()
    return feeder.with_ratings(np.where(np.isnan(rating), np.ceil(factor * i_a), rating))
