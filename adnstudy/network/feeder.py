"""Radial feeders as typed tables, checked on load, with the per-unit arrays models need.

A feeder is two tables (see ``docs/case.md``):

* buses: ``bus, base_kv, p_mw, q_mvar, customers`` and optionally ``substation``
  (true on exactly one bus; without the column the first row is the substation),
  ``load_profile`` (the load series scaling the bus, default the case's first
  load series) and ``g_shunt_mw``, ``b_shunt_mvar`` (a shunt at the bus: line
  charging, transformer magnetising, a capacitor; its power at 1 pu);
* branches: ``from_bus, to_bus, r_ohm, x_ohm`` and optionally ``rating_a``,
  ``length_km``, ``failure_rate_per_yr``, ``repair_h``, ``switch``
  (``breaker``, ``sectionaliser``, ``fuse``, ``tie`` or ``none``),
  ``normally_open`` (tie lines; they are not part of the radial operating network)
  and ``tap_ratio`` (an off-nominal ideal transformer at the ``from_bus`` end).

A branch between buses of different ``base_kv`` is a transformer; every branch's
``r_ohm``, ``x_ohm`` and ``rating_a`` are referred to its ``to_bus`` side, so its
per-unit values use that bus's voltage base.

Closed branches are oriented away from the substation. The path matrix ``T``
(branch × bus, 1 where the branch lies on the path from the substation to the
bus) gives branch currents and voltage drops of a radial network in one product
each, for any number of snapshots; with off-nominal taps the weighted path
matrix ``W`` (each entry the product of 1/τ of the taps between the branch and
the bus) does the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
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
BUS_OPTIONAL_FLOAT = ("g_shunt_mw", "b_shunt_mvar")
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
    "g_shunt_mw": Range(-1000, 1000, "MW"),
    "b_shunt_mvar": Range(-1000, 1000, "Mvar"),
    "tap_ratio": Range(0.5, 1.5),
}


#: Columns of :attr:`Feeder.generators`, one row per existing generating unit: ``gen`` (id, 1, 2, ...),
#: ``name`` (the source's name, text), ``bus``, ``tech`` (``pv``, ``wind`` or ``other``), ``p_mw`` (installed
#: capacity), ``q_mvar`` (reactive output at full active output: the unit keeps this power factor),
#: ``profile`` (its availability series, per unit of ``p_mw``; empty: the case's first series of
#: ``tech``'s kind) and ``curtailable`` (the operator may reduce its output below the available power).
GENERATOR_COLUMNS = ("gen", "name", "bus", "tech", "p_mw", "q_mvar", "profile", "curtailable")


def empty_generators() -> pd.DataFrame:
    return pd.DataFrame({
        "gen": pd.Series(dtype=int), "name": pd.Series(dtype=str), "bus": pd.Series(dtype=int),
        "tech": pd.Series(dtype=str), "p_mw": pd.Series(dtype=float), "q_mvar": pd.Series(dtype=float),
        "profile": pd.Series(dtype=str), "curtailable": pd.Series(dtype=bool),
    })


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
    #: Existing generation at buses (:data:`GENERATOR_COLUMNS`; empty: none).
    generators: pd.DataFrame = field(default_factory=lambda: empty_generators())
    #: Buses whose load is a mix of load series: ``bus, load_profile, share`` (shares of the bus's peak
    #: ``p_mw``, summing to 1 per bus). A bus not listed follows its ``load_profile`` column alone.
    #: What an import wants the user to know (adnstudy validate prints it).
    notes: tuple[str, ...] = ()
    load_shares: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        {"bus": pd.Series(dtype=int), "load_profile": pd.Series(dtype=str), "share": pd.Series(dtype=float)}))

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
    def bus_kv(self) -> np.ndarray:
        return self.buses["base_kv"].to_numpy(dtype=float)

    @property
    def voltage_text(self) -> str:
        """The feeder's voltage levels, highest first: ``12.66 kV``, ``110/20 kV``."""
        return "/".join(f"{kv:g}" for kv in sorted(set(self.bus_kv.tolist()), reverse=True)) + " kV"

    @property
    def z_base_ohm(self) -> np.ndarray:
        """Impedance base of each branch, Ω, at its receiving (``to_bus``) end."""
        return self.bus_kv[self.t] ** 2 / self.base_mva

    @property
    def i_base_ka(self) -> np.ndarray:
        """Current base of each branch, kA, at its receiving (``to_bus``) end."""
        return self.base_mva / (np.sqrt(3.0) * self.bus_kv[self.t])

    @property
    def r_pu(self) -> np.ndarray:
        return self.branches["r_ohm"].to_numpy() / self.z_base_ohm

    @property
    def x_pu(self) -> np.ndarray:
        return self.branches["x_ohm"].to_numpy() / self.z_base_ohm

    @property
    def tap(self) -> np.ndarray:
        """Off-nominal ratio τ of each branch's ideal transformer at its sending end (1: none)."""
        return self.branches["tap_ratio"].to_numpy(dtype=float)

    @property
    def has_taps(self) -> bool:
        return bool(np.any(self.tap != 1.0))

    @property
    def g_shunt_pu(self) -> np.ndarray:
        """Shunt conductance per bus, pu (active power drawn at 1 pu)."""
        return self.buses["g_shunt_mw"].to_numpy(dtype=float) / self.base_mva

    @property
    def b_shunt_pu(self) -> np.ndarray:
        """Shunt susceptance per bus, pu (reactive power supplied at 1 pu; positive: capacitive)."""
        return self.buses["b_shunt_mvar"].to_numpy(dtype=float) / self.base_mva

    @property
    def has_shunts(self) -> bool:
        return bool(np.any(self.g_shunt_pu != 0.0) or np.any(self.b_shunt_pu != 0.0))

    @cached_property
    def voltage_ratio(self) -> np.ndarray:
        """Per bus, the product of 1/τ of the taps on its path: its no-load voltage per pu at the substation."""
        c = np.ones(self.n_bus)
        for k in range(self.n_branch):  # breadth-first order: a branch's sending end is done before it
            c[self.t[k]] = c[self.f[k]] / self.tap[k]
        return c

    @cached_property
    def weighted_path(self) -> sp.csr_matrix:
        """Branch × bus: the path matrix with each entry c_bus / c_to(branch) (:attr:`voltage_ratio`).

        The current through branch k's impedance is ``W[k] @ I_load`` and a bus voltage
        ``c · V0 − Wᵀ (z ⊙ I)``; without taps ``W`` is the path matrix.
        """
        if not self.has_taps:
            return self.path
        T = self.path.tocoo()
        c = self.voltage_ratio
        return sp.csr_matrix((c[T.col] / c[self.t[T.row]], (T.row, T.col)), shape=T.shape)

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
    if net.pandapower is not None or net.matpower is not None or net.simbench is not None:
        feeder = _imported_feeder(net, base_dir, case_file)
        return _finish(feeder, net)
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
    if net.generators is not None:  # existing generation of a built-in or CSV feeder (network/generators.py)
        from adnstudy.network.generators import read_generators

        feeder = replace(feeder, generators=read_generators(
            net.generators if net.generators.is_absolute() else base_dir / net.generators, feeder))
    return _finish(feeder, net)


def _imported_feeder(net: NetworkConfig, base_dir: Path, case_file: str | Path) -> Feeder:
    """The feeder of a pandapower file, a MATPOWER case or a SimBench code (adnstudy/interop/importer.py)."""
    from adnstudy.interop import importer

    if net.simbench is not None:
        imp = importer.cached_import("simbench", net.simbench, case_file)
    else:
        kind = "pandapower" if net.pandapower is not None else "matpower"
        rel = getattr(net, kind)
        imp = importer.cached_import(kind, str(rel if rel.is_absolute() else base_dir / rel), case_file)
    feeder = build_feeder(imp.name, imp.buses, imp.branches, net.base_mva, f"{imp.source} (buses)",
                          f"{imp.source} (branches)")
    notes = tuple(imp.notes)
    if abs(imp.v_ext_grid_pu - net.v_substation_pu) > 1e-9:
        notes += (f"the source's external grid is at {imp.v_ext_grid_pu:g} pu; this case uses "
                  f"network.v_substation_pu = {net.v_substation_pu:g}",)
    return replace(feeder, generators=imp.generators.copy(), load_shares=imp.load_shares.copy(), notes=notes)


def _finish(feeder: Feeder, net: NetworkConfig) -> Feeder:
    """The case's load scaling and assumed ratings on a loaded feeder."""
    if net.load_scale != 1.0:
        feeder = feeder.with_loads_scaled(net.load_scale)
    if net.branch_rating_factor is not None:
        feeder = with_assumed_ratings(feeder, net.branch_rating_factor, net.v_substation_pu)
    return feeder


class _Table:
    """A feeder table being checked: its file, its rows, and each row's line in the file.

    ``noun`` names a row by its id in messages (``bus 7``); ``ranges`` are the plausible values of its columns.
    """

    noun = "bus"
    ranges = COLUMN_RANGES

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
            label = f"{self.noun} {ids.iloc[i]}" if ids is not None else f"row {i + 1}"
            raise self.error(i, col, f"{label}: {what}")

    def within(self, col: str, values: pd.Series, ids: pd.Series | None = None) -> None:
        """Every given value of a column is in its plausible range (:data:`COLUMN_RANGES`)."""
        rng = self.ranges[col]
        given = values.notna().to_numpy()
        bad = given & ~rng.contains(values.to_numpy(dtype=float))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            label = f"{self.noun} {ids.iloc[i]}" if ids is not None else f"row {i + 1}"
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
    for col in BUS_OPTIONAL_FLOAT:
        v = bt.numeric(col, required=False)
        bt.within(col, v, b["bus"])
        b[col] = v.fillna(0.0)
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
    tap = lt.numeric("tap_ratio", required=False)
    lt.within("tap_ratio", tap)
    br["tap_ratio"] = tap.fillna(1.0)
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
    if swap.any():
        closed = _refer_to_receiving_end(closed, swap, fb, tb, b.set_index("bus")["base_kv"])
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


def _refer_to_receiving_end(closed: pd.DataFrame, swap: np.ndarray, fb: np.ndarray, tb: np.ndarray,
                            kv: pd.Series) -> pd.DataFrame:
    """Branches listed against the flow, re-referred to their new receiving end.

    Per unit, a branch is V_f/τ − z·I = V_t. Read the other way round it is an ideal
    transformer 1/τ at the new sending end with impedance τ²·z and current I/τ; the
    ohms and amperes then change by the ratio of the two ends' voltage bases. A line
    (τ = 1, one voltage level) is unchanged.
    """
    closed = closed.copy()
    tau = closed["tap_ratio"].to_numpy()
    kv_old = kv.loc[tb].to_numpy()  # the table's to_bus: the old receiving end
    kv_new = kv.loc[fb].to_numpy()
    z_scale = np.where(swap, tau**2 * (kv_new / kv_old) ** 2, 1.0)
    closed["r_ohm"] = closed["r_ohm"].to_numpy() * z_scale
    closed["x_ohm"] = closed["x_ohm"].to_numpy() * z_scale
    closed["rating_a"] = closed["rating_a"].to_numpy() * np.where(swap, kv_old / kv_new / tau, 1.0)
    closed["tap_ratio"] = np.where(swap, 1.0 / tau, tau)
    return closed


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
