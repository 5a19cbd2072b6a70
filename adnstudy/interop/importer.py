"""Feeders from the tools researchers keep their networks in: pandapower, MATPOWER and SimBench.

Every source becomes a pandapower network first (``pandapower.from_json``,
pandapower's MATPOWER converter, ``simbench.get_simbench_net``), and one
conversion turns that into adnstudy's feeder tables. The electrical data come
from pandapower's own internal model (``to_ppc``: the branch and bus matrices its
``runpp`` solves), so a line's π model, a transformer's T model (as the exact
π equivalent pandapower builds), its tap and a shunt mean here what they mean
there; the network's elements (loads, generators, switches, ratings) come from its
tables. ``docs/interop.md`` states every choice:

* buses joined by closed bus-bus switches are one bus (pandapower fuses them too);
  bus ids are the pandapower index + 1 (the smallest of a fused group);
* in-service lines and transformers between two energised buses are branches, with
  r, x referred to the receiving end, the off-nominal tap at the sending end, and
  parallel ones (same two buses) merged into one equivalent;
* a line with an open switch, or out of service, is a normally-open tie; a line
  open at one end only is still energised from the other, and its charging is a
  shunt at that end, as pandapower computes it;
* line charging, transformer magnetising and shunt elements are bus shunts;
* the external grid's bus is the substation; each load's peak P/Q, customers (a
  ``customers`` column, else one per load) and ``profile`` (SimBench) are kept;
* static generators are existing generation (``Feeder.generators``).

Anything this cannot represent exactly (a second external grid, a voltage-controlled
generator, a three-winding transformer, a meshed operating network, voltage-dependent
loads, ...) is a :class:`CaseError` naming the element.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from adnstudy.data import userfile
from adnstudy.errors import CaseError

#: pandapower element tables adnstudy has no model for; an in-service row of any is an error naming it.
UNSUPPORTED = {
    "gen": "a voltage-controlled generator (PV bus): adnstudy's feeder has one slack and constant-power "
           "injections; give it as a static generator (sgen)",
    "trafo3w": "a three-winding transformer",
    "impedance": "an impedance element (give it as a line)",
    "ward": "a ward equivalent",
    "xward": "an extended ward equivalent",
    "dcline": "a DC line",
    "svc": "a static var compensator",
    "tcsc": "a thyristor-controlled series capacitor",
    "ssc": "a static synchronous compensator",
    "vsc": "a voltage source converter",
    "motor": "a motor",
    "asymmetric_load": "an asymmetric load",
    "asymmetric_sgen": "an asymmetric static generator",
    "storage": "a storage unit (give batteries as candidates or microgrid storage)",
    "source_dc": "a DC source",
    "line_dc": "a DC line",
}
#: pandapower switch types (SimBench's among them) and the device adnstudy's reliability model sees.
SWITCH_TYPES = {"CB": "breaker", "LBS": "sectionaliser", "LS": "sectionaliser", "DS": "sectionaliser",
                "FUSE": "fuse", "FUS": "fuse"}
#: sgen types and profile prefixes that say a static generator's technology.
PV_HINTS, WIND_HINTS = ("pv",), ("wind", "wp", "wt")


@dataclass
class Imported:
    """A network converted to adnstudy's tables (before :func:`adnstudy.network.feeder.build_feeder`)."""

    name: str
    source: str  # the file or code, for messages
    buses: pd.DataFrame
    branches: pd.DataFrame
    generators: pd.DataFrame
    load_shares: pd.DataFrame
    v_ext_grid_pu: float
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ reading sources
@contextlib.contextmanager
def _quiet():
    """pandapower and simbench print and warn freely (numba, deprecations); a study's output stays clean."""
    loggers = [logging.getLogger(n) for n in ("pandapower", "simbench")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels, strict=True):
            lg.setLevel(lv)


def _check_file(path: Path, label: str, what: str, case_file: str | Path | None) -> None:
    why = userfile.problem(path, userfile.MAX_CSV_BYTES, what)
    if why is not None:
        raise CaseError(f"{what} not found: {path}" if why == "not found" else f"{what} {path}: {why}",
                        file=case_file, field=label)


def read_pandapower(path: Path, case_file: str | Path | None = None):
    """A pandapower network from its JSON file."""
    _check_file(path, "network.pandapower", "pandapower network file", case_file)
    import pandapower as pp

    try:
        with _quiet():
            net = pp.from_json(str(path))
    except Exception as exc:  # noqa: BLE001 - any failure to parse is the same user error
        raise CaseError(f"not a pandapower network (JSON) file: {_short(exc)}", file=path) from None
    if not hasattr(net, "bus") or not isinstance(getattr(net, "bus", None), pd.DataFrame):
        raise CaseError("not a pandapower network (JSON) file: it holds no bus table", file=path)
    return net


def read_matpower(path: Path, case_file: str | Path | None = None):
    """A MATPOWER case (``.m``, version 2) as a pandapower network (pandapower's converter, which reads the
    file with matpowercaseframes)."""
    _check_file(path, "network.matpower", "MATPOWER case file", case_file)
    if path.suffix.lower() != ".m":
        raise CaseError(f"a MATPOWER case is a .m file (got '{path.suffix or 'no extension'}')", file=case_file,
                        field="network.matpower")
    text = path.read_text(encoding="utf-8", errors="replace")
    for part in ("mpc.bus", "mpc.branch", "mpc.baseMVA"):
        if part not in text:
            raise CaseError(f"not a MATPOWER case: it has no '{part}' (a version 2 case defines mpc.baseMVA, "
                            "mpc.bus, mpc.gen and mpc.branch)", file=path)
    from pandapower.converter.matpower import from_mpc

    try:
        with _quiet():
            net = from_mpc(str(path), f_hz=50)
    except Exception as exc:  # noqa: BLE001
        raise CaseError(f"not a readable MATPOWER case: {_short(exc)}", file=path) from None
    return net


def simbench_codes() -> list[str]:
    import simbench as sb

    with _quiet():
        return list(sb.collect_all_simbench_codes())


def read_simbench(code: str, case_file: str | Path | None = None):
    """The SimBench grid of this code, read offline from the installed simbench package."""
    import simbench as sb

    codes = simbench_codes()
    if code not in codes:
        import difflib

        close = difflib.get_close_matches(code, codes, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else (
            "; the MV grids are 1-MV-rural--0-sw, 1-MV-semiurb--0-sw, 1-MV-urban--0-sw and 1-MV-comm--0-sw")
        raise CaseError(f"'{code}' is not a SimBench grid code{hint}", file=case_file, field="network.simbench")
    try:
        with _quiet():
            net = sb.get_simbench_net(code)
    except Exception as exc:  # noqa: BLE001
        raise CaseError(f"SimBench grid '{code}' cannot be read: {_short(exc)}", file=case_file,
                        field="network.simbench") from None
    # SimBench names an LV grid's load profile and its renewables' profile alike (lv_rural1: the load table's
    # lv_rural1_pload and the RES table's lv_rural1); a case's series are keyed by name, so the generation one
    # becomes <name>_res
    loads = set(net.load["profile"].dropna().astype(str))
    net.sgen["profile"] = [f"{p}_res" if p in loads else p for p in net.sgen["profile"].astype(str)]
    return net


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def cached_import(kind: str, where: str, case_file: str | Path | None = None) -> Imported:
    """The converted network of a source (``kind``: pandapower, matpower or simbench; ``where``: its file or
    code), converted once per process and file version: a stage loads the feeder more than once, and a
    SimBench grid takes about 3 s to read."""
    stamp = None
    if kind != "simbench":
        path = Path(where)
        _check_file(path, f"network.{kind}", {"pandapower": "pandapower network file",
                                              "matpower": "MATPOWER case file"}[kind], case_file)
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
    return _cached(kind, where, stamp, str(case_file) if case_file is not None else None)


@functools.lru_cache(maxsize=8)
def _cached(kind: str, where: str, stamp, case_file: str | None) -> Imported:
    if kind == "simbench":
        return convert(read_simbench(where, case_file), where, where)
    path = Path(where)
    net = read_pandapower(path, case_file) if kind == "pandapower" else read_matpower(path, case_file)
    return convert(net, path.name, str(path))


# ------------------------------------------------------------------------------------------ conversion
def _in_service(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["in_service"].astype(bool)] if "in_service" in df.columns else df


def _label(element: str, idx, df: pd.DataFrame) -> str:
    name = df.at[idx, "name"] if "name" in df.columns else None
    named = f" '{name}'" if isinstance(name, str) and name.strip() else ""
    return f"{element} {idx}{named}"


def convert(net, name: str, source: str) -> Imported:
    """adnstudy's tables of a pandapower network (``source`` names it in messages: a file or a code)."""
    err = lambda what: CaseError(what, file=source)  # noqa: E731
    for element, why in UNSUPPORTED.items():
        table = net[element] if element in net and isinstance(net[element], pd.DataFrame) else None
        if table is None or not len(table):
            continue
        live = _in_service(table)
        if element == "storage" and len(live):
            live = live[(live["p_mw"].abs() > 0) | (live.get("max_e_mwh", 0) > 0)]
        if len(live):
            idx = live.index[0]
            at = f" at bus {int(table.at[idx, 'bus']) + 1}" if "bus" in table.columns else ""
            raise err(f"{_label(element, idx, table)}{at} is {why}; adnstudy cannot represent it")
    ext = _in_service(net.ext_grid)
    if len(ext) != 1:
        if not len(ext):
            raise err("the network has no external grid in service: adnstudy needs one, the substation")
        shown = ", ".join(f"{_label('ext_grid', i, ext)} at bus {int(ext.at[i, 'bus']) + 1}" for i in ext.index)
        raise err(f"the network has {len(ext)} external grids ({shown}); adnstudy's feeder has one substation")
    loads = _in_service(net.load)
    for col in ("const_z_p_percent", "const_i_p_percent", "const_z_q_percent", "const_i_q_percent",
                "const_z_percent", "const_i_percent"):
        if col in loads.columns and (loads[col].fillna(0) != 0).any():
            idx = loads.index[(loads[col].fillna(0) != 0).to_numpy()][0]
            raise err(f"{_label('load', idx, loads)} is voltage dependent ({col} = {loads.at[idx, col]:g}); "
                      "adnstudy's loads are constant power")
    sw = net.switch
    bus_sw = sw[(sw["et"] == "b") & sw["closed"].astype(bool)]
    if "z_ohm" in bus_sw.columns and (bus_sw["z_ohm"].fillna(0) != 0).any():
        idx = bus_sw.index[(bus_sw["z_ohm"].fillna(0) != 0).to_numpy()][0]
        raise err(f"switch {idx} is a bus-bus switch with an impedance ({bus_sw.at[idx, 'z_ohm']:g} Ω); adnstudy "
                  "fuses closed bus-bus switches and cannot represent its impedance")

    from pandapower.auxiliary import _add_ppc_options
    from pandapower.pd2ppc import _pd2ppc
    from pandapower.pypower import idx_brch as B
    from pandapower.pypower import idx_bus as U

    try:
        with _quiet():
            # the full model runpp builds (pandapower's to_ppc keeps only its in-service part, without the
            # branch conductances), with the options runpp uses by default
            net["_options"] = {}
            _add_ppc_options(net, calculate_voltage_angles=False, trafo_model="t", check_connectivity=True,
                             mode="pf", switch_rx_ratio=2, init_vm_pu="flat", init_va_degree="flat",
                             enforce_q_lims=False, enforce_p_lims=False, recycle=None, voltage_depend_loads=False)
            ppc, _ = _pd2ppc(net)
    except Exception as exc:  # noqa: BLE001
        raise err(f"pandapower cannot build the network's model: {_short(exc)}") from None
    base_ppc = float(ppc["baseMVA"])
    lookup = net._pd2ppc_lookups["bus"]
    bus_ppc = pd.Series({int(b): int(lookup[b]) for b in net.bus.index if b < len(lookup) and lookup[b] >= 0})
    live_bus = ppc["bus"][:, U.BUS_TYPE] != 4
    bus_ppc = bus_ppc[live_bus[bus_ppc.to_numpy()]]
    # a ppc bus stands for its pandapower buses; its id is the smallest one's index + 1
    rep = bus_ppc.groupby(bus_ppc).apply(lambda s: int(s.index.min()))
    ppc_id = {int(k): v + 1 for k, v in rep.items()}  # ppc bus → adnstudy bus id
    pp_id = {int(b): ppc_id[int(p)] for b, p in bus_ppc.items()}  # pandapower bus → adnstudy bus id

    def bus_of(element: str, df: pd.DataFrame, idx) -> int:
        b = int(df.at[idx, "bus"])
        if b not in pp_id:
            raise err(f"{_label(element, idx, df)} is at bus {b + 1}, which is out of service or not connected to "
                      "the external grid")
        return pp_id[b]

    # ---- buses
    ids = sorted(ppc_id.values())
    row_of = {v: k for k, v in ppc_id.items()}
    kv = np.array([ppc["bus"][row_of[i], U.BASE_KV] for i in ids])
    g_mw = np.array([ppc["bus"][row_of[i], U.GS] for i in ids], dtype=float)  # MW at 1 pu, as MATPOWER
    b_mvar = np.array([ppc["bus"][row_of[i], U.BS] for i in ids], dtype=float)
    pos = {b: k for k, b in enumerate(ids)}
    buses = pd.DataFrame({"bus": ids, "base_kv": kv, "p_mw": 0.0, "q_mvar": 0.0, "customers": 0,
                          "substation": False, "load_profile": ""})
    sub_id = bus_of("ext_grid", ext, ext.index[0])
    buses.loc[pos[sub_id], "substation"] = True

    # ---- loads: peak P/Q per bus, customers, profile shares
    lp = loads.assign(_bus=[bus_of("load", loads, i) for i in loads.index])
    scale = lp["scaling"].fillna(1.0) if "scaling" in lp.columns else 1.0
    lp["_p"] = lp["p_mw"] * scale
    lp["_q"] = lp["q_mvar"] * scale
    lp["_cust"] = lp["customers"].fillna(0) if "customers" in lp.columns else 1
    lp["_prof"] = (lp["profile"].fillna("").astype(str).str.strip() if "profile" in lp.columns else "")
    agg = lp.groupby("_bus").agg(p=("_p", "sum"), q=("_q", "sum"), c=("_cust", "sum"))
    for b, row in agg.iterrows():
        buses.loc[pos[b], ["p_mw", "q_mvar"]] = row["p"], row["q"]
        buses.loc[pos[b], "customers"] = int(round(row["c"]))
    shares = []
    for b, grp in lp.groupby("_bus"):
        profs = grp.groupby("_prof")["_p"].sum()
        if len(profs) == 1:
            buses.loc[pos[b], "load_profile"] = profs.index[0]
        else:
            total = float(profs.sum())
            if total <= 0:
                raise err(f"bus {b}: its loads have profiles {', '.join(profs.index)} and a total of {total:g} MW; "
                          "a bus whose loads follow several profiles needs a positive total")
            shares += [{"bus": b, "load_profile": n, "share": float(p) / total} for n, p in profs.items()]
    load_shares = pd.DataFrame(shares, columns=["bus", "load_profile", "share"])

    # ---- branches from pandapower's model
    br = ppc["branch"]
    for col, what in ((B.BR_R_ASYM, "asymmetric series resistance"), (B.BR_X_ASYM, "asymmetric series reactance")):
        if br.shape[1] > col and np.any(br[:, col] != 0):
            raise err(f"the network has a branch with {what}; adnstudy's branches are symmetric")
    ranges = net._pd2ppc_lookups.get("branch", {})
    devices = _line_devices(net)
    rows = []
    line_tie: set[int] = set()
    gb = np.zeros(len(ids), dtype=complex)  # charging and magnetising shunts, MW + j Mvar at 1 pu
    for element in ("line", "trafo"):
        if element not in ranges:
            continue
        start, stop = ranges[element]
        table = net[element]
        for k, idx in enumerate(table.index):
            r = br[start + k]
            if r[B.BR_STATUS] == 0:
                if element == "line":
                    line_tie.add(int(idx))
                continue
            f_p, t_p = int(r[B.F_BUS].real), int(r[B.T_BUS].real)
            tap = float(r[B.TAP].real) or 1.0
            y_from = (r[B.BR_G].real + 1j * r[B.BR_B].real) / 2
            y_to = y_from + ((r[B.BR_G_ASYM].real + 1j * r[B.BR_B_ASYM].real) / 2 if br.shape[1] > B.BR_B_ASYM else 0)
            f_id, t_id = ppc_id.get(f_p), ppc_id.get(t_p)
            z = complex(r[B.BR_R].real, r[B.BR_X].real)
            if f_id is None and t_id is None:
                if element == "line":
                    line_tie.add(int(idx))
                continue
            if f_id is None or t_id is None:  # open at one end: energised from the other
                if element != "line":
                    raise err(f"{_label(element, idx, table)} is open on one side; adnstudy cannot represent a "
                              "transformer energised from one side only (open it on both sides or close it)")
                if f_id is not None:  # seen from the sending end, behind the tap: (y_f + 1/(z + 1/y_t)) / τ²
                    gb[pos[f_id]] += (y_from + 1 / (z + 1 / y_to) if y_to != 0 else y_from) / tap**2
                else:
                    gb[pos[t_id]] += y_to + 1 / (z + 1 / y_from) if y_from != 0 else y_to
                line_tie.add(int(idx))
                continue
            gb[pos[f_id]] += y_from / tap**2
            gb[pos[t_id]] += y_to
            if abs(float(r[B.SHIFT].real)) % 360 and element != "trafo":
                raise err(f"{_label(element, idx, table)} shifts the phase; adnstudy cannot represent it")
            if f_id == t_id:  # both ends on one fused bus: no current in its series branch, its charging stays
                continue
            rows.append({"element": _label(element, idx, table), "kind": element, "idx": idx,
                         "from_bus": f_id, "to_bus": t_id, "z_pu": z, "tap_ratio": tap,
                         **_ratings(element, table, idx, devices)})
    buses["g_shunt_mw"] = g_mw + gb.real * base_ppc
    buses["b_shunt_mvar"] = b_mvar + gb.imag * base_ppc

    branches = _merge_parallel(pd.DataFrame(rows), err)
    _check_radial(branches, ids, err)
    kv_of = dict(zip(buses["bus"], buses["base_kv"], strict=True))
    zb = np.array([kv_of[t] ** 2 / base_ppc for t in branches["to_bus"]])
    z = branches["z_pu"].to_numpy() * zb
    out = pd.DataFrame({
        "from_bus": branches["from_bus"].astype(int), "to_bus": branches["to_bus"].astype(int),
        "r_ohm": z.real, "x_ohm": z.imag, "rating_a": branches["rating_a"], "length_km": branches["length_km"],
        "failure_rate_per_yr": branches["failure_rate_per_yr"], "repair_h": branches["repair_h"],
        "switch": branches["switch"], "normally_open": False, "tap_ratio": branches["tap_ratio"],
    })
    ties = _ties(net, sorted(line_tie), pp_id, err)
    out = pd.concat([out, ties], ignore_index=True) if len(ties) else out
    gens = _generators(net, bus_of, err)
    notes = []
    if len(ties):
        notes.append(f"{len(ties)} normally-open tie line(s) from open switches or out-of-service lines")
    return Imported(name=name, source=source, buses=buses, branches=out, generators=gens, load_shares=load_shares,
                    v_ext_grid_pu=float(ext["vm_pu"].iloc[0]), notes=notes)


def _line_devices(net) -> dict[int, str]:
    """Per line, the switching device its closed switches give it (a breaker before a fuse before a
    sectionaliser: the one that acts first on a fault)."""
    sw = net.switch
    sw = sw[(sw["et"] == "l") & sw["closed"].astype(bool)]
    rank = {"breaker": 0, "fuse": 1, "sectionaliser": 2}
    out: dict[int, str] = {}
    kinds = sw["type"].fillna("").astype(str).str.strip().str.upper() if "type" in sw.columns else pd.Series("", sw.index)
    for line, kind in zip(sw["element"].astype(int), kinds, strict=True):
        device = SWITCH_TYPES.get(kind, "sectionaliser")
        if line not in out or rank[device] < rank[out[line]]:
            out[line] = device
    return out


def _ratings(element: str, table: pd.DataFrame, idx, devices: dict[int, str] | None = None) -> dict:
    """Thermal rating (A at the receiving end), length, outage data and switch of one line or transformer."""
    out = {"rating_a": math.nan, "length_km": math.nan, "failure_rate_per_yr": math.nan, "repair_h": math.nan,
           "switch": "none"}
    df = float(table.at[idx, "df"]) if "df" in table.columns and pd.notna(table.at[idx, "df"]) else 1.0
    par = float(table.at[idx, "parallel"]) if "parallel" in table.columns else 1.0
    if element == "line":
        i_ka = table.at[idx, "max_i_ka"]
        if pd.notna(i_ka) and 0 < i_ka < 1e3:
            out["rating_a"] = float(i_ka) * 1000.0 * df * par
        out["length_km"] = float(table.at[idx, "length_km"])
        if _flag(table, idx, "length_unknown"):  # adnstudy export's 1 km stand-in for a feeder without lengths
            out["length_km"] = math.nan
    else:
        out["rating_a"] = float(table.at[idx, "sn_mva"]) / (math.sqrt(3) * float(table.at[idx, "vn_lv_kv"])) * 1e3 * par
        # unrated: adnstudy export's stand-in sn_mva, or pandapower's MATPOWER converter's for RATE_A = 0 (99999 MVA)
        if _flag(table, idx, "rating_unknown") or float(table.at[idx, "sn_mva"]) >= 99999.0:
            out["rating_a"] = math.nan
    for col in ("failure_rate_per_yr", "repair_h"):
        if col in table.columns and pd.notna(table.at[idx, col]):
            out[col] = float(table.at[idx, col])
    if element == "line" and devices and int(idx) in devices:
        out["switch"] = devices[int(idx)]
    return out


def _flag(table: pd.DataFrame, idx, col: str) -> bool:
    """A true/false column of an element table that may be absent or empty for some rows (then false)."""
    if col not in table.columns:
        return False
    value = table.at[idx, col]
    return bool(value) if pd.notna(value) else False


def _merge_parallel(rows: pd.DataFrame, err) -> pd.DataFrame:
    """Branches between the same two buses, as one equivalent (admittances add, ratings add)."""
    if rows.empty:
        raise err("the network has no branch in operation")
    key = rows[["from_bus", "to_bus"]].min(axis=1).astype(str) + "-" + rows[["from_bus", "to_bus"]].max(axis=1).astype(str)
    out = []
    for _, grp in rows.groupby(key, sort=False):
        if len(grp) == 1:
            out.append(grp.iloc[0].to_dict())
            continue
        first = grp.iloc[0]
        same_way = (grp["from_bus"] == first["from_bus"]).all()
        taps = grp["tap_ratio"].to_numpy()
        if not same_way or np.ptp(taps) > 1e-12:
            raise err(f"{' and '.join(grp['element'])} are parallel with different taps or directions; adnstudy "
                      "merges parallel branches into one and cannot represent the current circulating between them")
        merged = first.to_dict()
        merged["z_pu"] = 1 / np.sum(1 / grp["z_pu"].to_numpy())
        merged["rating_a"] = float(grp["rating_a"].sum(min_count=1))
        merged["length_km"] = float(grp["length_km"].mean())
        merged["element"] = " + ".join(grp["element"])
        out.append(merged)
    return pd.DataFrame(out)


def _check_radial(branches: pd.DataFrame, ids: list[int], err) -> None:
    """The operating network is a tree: the first branch that closes a loop is named."""
    parent = {b: b for b in ids}

    def root(b: int) -> int:
        while parent[b] != b:
            parent[b] = parent[parent[b]]
            b = parent[b]
        return b

    for _, row in branches.iterrows():
        a, c = root(int(row["from_bus"])), root(int(row["to_bus"]))
        if a == c:
            raise err(f"the network is meshed in operation: {row['element']} (bus {row['from_bus']} - bus "
                      f"{row['to_bus']}) closes a loop; adnstudy needs a radial operating network: open a switch on "
                      "one line of each loop (it becomes a normally-open tie)")
        parent[a] = c


def _ties(net, lines: list[int], pp_id: dict[int, int], err) -> pd.DataFrame:
    """Normally-open tie lines: lines with an open switch or out of service, between two energised buses."""
    rows = []
    table = net.line
    for idx in lines:
        f, t = int(table.at[idx, "from_bus"]), int(table.at[idx, "to_bus"])
        if f not in pp_id or t not in pp_id or pp_id[f] == pp_id[t]:
            continue
        length = float(table.at[idx, "length_km"])
        par = float(table.at[idx, "parallel"]) if "parallel" in table.columns else 1.0
        info = _ratings("line", table, idx)
        rows.append({"from_bus": pp_id[f], "to_bus": pp_id[t],
                     "r_ohm": float(table.at[idx, "r_ohm_per_km"]) * length / par,
                     "x_ohm": float(table.at[idx, "x_ohm_per_km"]) * length / par,
                     "rating_a": info["rating_a"], "length_km": info["length_km"],
                     "failure_rate_per_yr": info["failure_rate_per_yr"], "repair_h": info["repair_h"],
                     "switch": "tie", "normally_open": True, "tap_ratio": 1.0})
    return pd.DataFrame(rows)


def _tech(kind: str, profile: str) -> str:
    text = f"{kind} {profile}".lower()
    if any(h in text for h in PV_HINTS):
        return "pv"
    if any(h in text for h in WIND_HINTS):
        return "wind"
    return "other"


def _generators(net, bus_of, err) -> pd.DataFrame:
    sg = _in_service(net.sgen)
    rows = []
    for n, idx in enumerate(sg.index, start=1):
        scale = float(sg.at[idx, "scaling"]) if "scaling" in sg.columns and pd.notna(sg.at[idx, "scaling"]) else 1.0
        profile = str(sg.at[idx, "profile"]).strip() if "profile" in sg.columns and pd.notna(sg.at[idx, "profile"]) else ""
        kind = str(sg.at[idx, "type"]) if "type" in sg.columns and pd.notna(sg.at[idx, "type"]) else ""
        tech = str(sg.at[idx, "tech"]) if "tech" in sg.columns and pd.notna(sg.at[idx, "tech"]) else ""
        tech = tech if tech in ("pv", "wind", "other") else _tech(kind, profile)
        curt = sg.at[idx, "controllable"] if "controllable" in sg.columns else False
        name = sg.at[idx, "name"] if "name" in sg.columns and isinstance(sg.at[idx, "name"], str) else f"sgen {idx}"
        p_mw, q_mvar = float(sg.at[idx, "p_mw"]) * scale, float(sg.at[idx, "q_mvar"]) * scale
        if not (np.isfinite(p_mw) and np.isfinite(q_mvar) and p_mw >= 0):
            raise err(f"{_label('sgen', idx, sg)}: p_mw = {p_mw:g}, q_mvar = {q_mvar:g}; a static generator needs a "
                      "finite p_mw >= 0 (its installed power) and a finite q_mvar")
        rows.append({"gen": n, "name": name, "bus": bus_of("sgen", sg, idx), "tech": tech,
                     "p_mw": p_mw, "q_mvar": q_mvar,
                     "profile": profile, "curtailable": bool(curt) if pd.notna(curt) else False})
    from adnstudy.network.feeder import empty_generators

    return pd.DataFrame(rows) if rows else empty_generators()
