"""The planned feeder as a pandapower network (JSON) and a MATPOWER case (``.m``): ``adnstudy export``.

A results folder with a plan (``plan/``) is written as the network the plan
built: the feeder as the plan used it (load scaling applied, assumed ratings
written as ratings), the existing generators, and the built candidate sites as
new units at their buses and sizes. Two operating points (``docs/interop.md``):

* the **design point** (no ``--scenario``/``--hour``): every load at its peak,
  every generator (existing and new) at its capacity, storage idle, the
  substation at ``network.v_substation_pu``;
* an **hour of the plan** (``--scenario S --hour H``): the loads, unit outputs,
  storage charging and microgrid exchanges of that typical-day hour as the
  plan's tables hold them, the substation at the plan's voltage; these are the
  injections of the plan's AC check, so pandapower's ``runpp`` reproduces the
  column ``v_ac_pu`` of ``plan/bus`` for that hour.

The mapping is the inverse of ``adnstudy/interop/importer.py``: the design
point re-imported gives the same bus, branch and tie tables, with the new units
among the generators. Lines carry no charging (the feeder's shunts, which hold
it, are ``shunt`` elements), transformers no magnetising (likewise), and a
branch's r, x, tap and rating land in pandapower's model exactly as the feeder
states them (the importer reads them back from that model).
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from adnstudy.errors import MissingInputError
from adnstudy.network.feeder import Feeder

#: ``--to`` values and the file each writes.
FORMATS = {"pandapower": ".json", "matpower": ".m"}
#: The folder of a results folder that exports go to.
EXPORT_FOLDER = "export"
#: adnstudy's switching device of a branch → the pandapower switch type the importer maps back to it.
SWITCH_TYPES = {"breaker": "CB", "sectionaliser": "LBS", "fuse": "FUSE", "tie": "LBS"}


@dataclass(frozen=True)
class OperatingPoint:
    """One hour of the plan, bus and unit values aligned with the feeder and the planned units."""

    scenario: int
    hour: int
    v_substation_pu: float
    p_load_mw: np.ndarray  # per bus (feeder order)
    q_load_mvar: np.ndarray
    p_unit_mw: np.ndarray  # per planned unit: RES output; storage: charging − discharging (load convention)
    q_unit_mvar: np.ndarray
    soc_mwh: np.ndarray  # per planned unit (NaN but for storage)
    microgrids: pd.DataFrame  # microgrid, bus, p_export_mw
    p_existing_mw: np.ndarray  # per existing generator (feeder.generators order): its output in the plan's hour
    q_existing_mvar: np.ndarray


@dataclass(frozen=True)
class Export:
    """What ``export`` wrote: the files, and the point they describe."""

    files: list[Path]
    point: str
    units: int


# ----------------------------------------------------------------------------------- reading the plan
#: Columns of the new units' table (one row per built unit).
UNIT_COLUMNS = ["site", "name", "bus", "tech", "capacity_mw", "energy_mwh", "profile"]


def _unit(site: int, name: str, bus: int, tech: str, capacity_mw: float, cand) -> dict:
    """One built unit; ``cand`` is its candidate in the case (storage energy, availability series), or None."""
    ratio = (cand.energy_mwh_per_mw or 0.0) if cand is not None else 0.0
    return {"site": site, "name": name, "bus": bus, "tech": "other" if tech == "generator" else tech,
            "capacity_mw": capacity_mw, "energy_mwh": capacity_mw * ratio if tech == "storage" else math.nan,
            "profile": (cand.profile or "") if cand is not None else ""}


def planned_units(results, case) -> pd.DataFrame:
    """The plan's built candidate sites (plan/investment), in :data:`UNIT_COLUMNS`."""
    inv = results.table("plan", "investment")
    built = inv[inv["build"].astype(bool) & (inv["capacity_mw"] > 0)]
    sites = case.config.candidates.sites if case.config.candidates is not None else []
    rows = [_unit(int(r.site), f"plan site {int(r.site)} ({r.tech})", int(r.bus), str(r.tech), float(r.capacity_mw),
                  sites[int(r.site)] if int(r.site) < len(sites) else None) for r in built.itertuples()]
    return pd.DataFrame(rows, columns=UNIT_COLUMNS)


def coplanned_units(results, case) -> pd.DataFrame:
    """The co-planned builds of every investor (coplan/investment, ``plan = coplan``), in :data:`UNIT_COLUMNS`;
    an MG's units sit at its PCC, its generator candidates are ``tech = other``."""
    inv = results.table("coplan", "investment")
    built = inv[(inv["plan"] == "coplan") & inv["build"].astype(bool) & (inv["capacity_mw"] > 0)]
    sites = case.config.candidates.sites if case.config.candidates is not None else []
    mgs = {m.name: m.candidates for m in case.config.microgrids or []}
    rows = []
    for r in built.itertuples():
        k = int(r.candidate)
        pool = sites if r.investor == "adn" else mgs.get(r.investor, [])
        who = "adn site" if r.investor == "adn" else f"{r.investor} candidate"
        rows.append(_unit(k, f"coplan {who} {k} ({r.tech})", int(r.bus), str(r.tech), float(r.capacity_mw),
                          pool[k] if k < len(pool) else None))
    return pd.DataFrame(rows, columns=UNIT_COLUMNS)


def operating_point(results, feeder: Feeder, units: pd.DataFrame, scenario: int, hour: int) -> OperatingPoint:
    """The plan's loads and unit outputs of one typical-day hour.

    ``plan/bus`` gives per bus the load, the planned units' injection (storage net of charging) and the
    microgrids' exchange; ``plan/storage`` each storage site's charging. A bus's RES output is its injection
    less its storage's; several RES sites at one bus share it in proportion to their capacities (the plan's
    tables hold outputs per bus, which is all a power flow sees).
    """
    bus = results.table("plan", "bus")
    scenarios = sorted(int(s) for s in bus["scenario"].unique())
    if scenario not in scenarios:
        raise MissingInputError(f"the plan has no scenario {scenario}: its typical days are "
                                f"{', '.join(map(str, scenarios))}")
    hours = sorted(int(h) for h in bus.loc[bus["scenario"] == scenario, "hour"].unique())
    if hour not in hours:
        raise MissingInputError(f"the plan has no hour {hour} in scenario {scenario}: its hours are "
                                f"{hours[0]}-{hours[-1]}")
    rows = bus[(bus["scenario"] == scenario) & (bus["hour"] == hour)].set_index("bus").reindex(feeder.bus_ids)
    if rows["p_load_mw"].isna().any():
        raise MissingInputError("plan/bus does not hold every bus of the feeder for this hour: the plan was made "
                                "for another feeder; re-run the plan")
    sub = int(feeder.bus_ids[0])
    p_unit = np.zeros(len(units))
    q_unit = np.zeros(len(units))
    soc = np.full(len(units), np.nan)
    storage_at = pd.Series(0.0, index=feeder.bus_ids)
    sto = units["tech"].to_numpy() == "storage"
    if sto.any():
        st = results.table("plan", "storage")
        st = st[(st["scenario"] == scenario) & (st["hour"] == hour)].set_index("site")
        for k in np.flatnonzero(sto):
            row = st.loc[int(units["site"].iloc[k])]
            p_unit[k] = float(row["p_charge_mw"]) - float(row["p_discharge_mw"])
            soc[k] = float(row["soc_mwh"])
            storage_at[int(units["bus"].iloc[k])] -= p_unit[k]
    res = ~sto
    for b, grp in units[res].groupby("bus"):
        share = grp["capacity_mw"].to_numpy() / grp["capacity_mw"].sum()
        p_unit[grp.index.to_numpy()] = (float(rows.at[b, "p_dg_mw"]) - storage_at[b]) * share
        q_unit[grp.index.to_numpy()] = float(rows.at[b, "q_dg_mvar"]) * share
    if results.has("plan", "microgrid_exchange"):
        mg = results.table("plan", "microgrid_exchange")
        mg = mg[(mg["scenario"] == scenario) & (mg["hour"] == hour)][["microgrid", "bus", "p_export_mw"]]
    else:
        mg = pd.DataFrame({"microgrid": pd.Series(dtype=str), "bus": pd.Series(dtype=int),
                           "p_export_mw": pd.Series(dtype=float)})
    gens = feeder.generators
    p_ex, q_ex = np.zeros(len(gens)), np.zeros(len(gens))
    if len(gens):  # the plan dispatches existing units (plan/existing): their output in this hour
        ex = results.table("plan", "existing")
        ex = ex[(ex["scenario"] == scenario) & (ex["hour"] == hour)].set_index("gen").reindex(gens["gen"])
        if ex["p_mw"].isna().any():
            raise MissingInputError("plan/existing does not hold every existing generator of the feeder for this "
                                    "hour: the plan was made for another feeder; re-run the plan")
        p_ex, q_ex = ex["p_mw"].to_numpy(dtype=float), ex["q_mvar"].to_numpy(dtype=float)
    return OperatingPoint(scenario=scenario, hour=hour, v_substation_pu=float(rows.at[sub, "v_ac_pu"]),
                          p_existing_mw=p_ex, q_existing_mvar=q_ex,
                          p_load_mw=rows["p_load_mw"].to_numpy(dtype=float),
                          q_load_mvar=rows["q_load_mvar"].to_numpy(dtype=float), p_unit_mw=p_unit,
                          q_unit_mvar=q_unit, soc_mwh=soc, microgrids=mg.reset_index(drop=True))


# ----------------------------------------------------------------------------------- pandapower
def to_pandapower(feeder: Feeder, units: pd.DataFrame, v_substation_pu: float,
                  point: OperatingPoint | None = None, name: str = ""):
    """The feeder, its existing generators and the planned units as a pandapower network (at ``point``, else at
    the design point: peak loads, units at capacity). Mapping: docs/interop.md."""
    import pandapower as pp

    from adnstudy.interop.importer import _quiet

    with _quiet():
        net = pp.create_empty_network(name=name or feeder.name, f_hz=50.0, sn_mva=feeder.base_mva)
    ids = feeder.bus_ids.astype(int)
    kv = dict(zip(ids, feeder.bus_kv, strict=True))
    pp.create_buses(net, len(ids), vn_kv=feeder.bus_kv, index=ids - 1, name=[f"bus {b}" for b in ids])
    pp.create_ext_grid(net, int(ids[0]) - 1, vm_pu=float(v_substation_pu), va_degree=0.0, name="substation")

    closed = feeder.branches.assign(normally_open=False)
    ties = feeder.ties.assign(normally_open=True)
    branches = pd.concat([closed, ties], ignore_index=True)
    kv_f = branches["from_bus"].map(kv).to_numpy(dtype=float)
    kv_t = branches["to_bus"].map(kv).to_numpy(dtype=float)
    tap = branches["tap_ratio"].to_numpy(dtype=float)
    is_trafo = (kv_f != kv_t) | (tap != 1.0)
    lines, trafos = branches[~is_trafo], branches[is_trafo]
    if len(lines):
        _add_lines(net, lines)
    if len(trafos):
        _add_trafos(net, trafos, kv, feeder.base_mva)

    # bus shunts (line charging, magnetising, capacitors): pandapower's shunt q_mvar > 0 absorbs
    sh = feeder.buses[(feeder.buses["g_shunt_mw"] != 0) | (feeder.buses["b_shunt_mvar"] != 0)]
    if len(sh):
        pp.create_shunts(net, sh["bus"].to_numpy(dtype=int) - 1, q_mvar=-sh["b_shunt_mvar"].to_numpy(dtype=float),
                         p_mw=sh["g_shunt_mw"].to_numpy(dtype=float), vn_kv=sh["base_kv"].to_numpy(dtype=float),
                         step=1, name=[f"shunt at bus {b}" for b in sh["bus"]])

    _add_loads(net, feeder, point)
    _add_generators(net, feeder, units, point)
    net.load["customers"] = (net.load["customers"] if "customers" in net.load.columns
                             else pd.Series(0, index=net.load.index)).fillna(0).astype(int)
    return net


def _add_lines(net, lines: pd.DataFrame) -> None:
    """Branches at one voltage level without a tap: lines of their length (1 km where the feeder has none,
    marked ``length_unknown``), no charging; a switch device is a closed line switch, a tie an open one."""
    import pandapower as pp

    length = lines["length_km"].to_numpy(dtype=float)
    unknown = np.isnan(length)
    length = np.where(unknown, 1.0, length)
    rating = lines["rating_a"].to_numpy(dtype=float)
    idx = pp.create_lines_from_parameters(
        net, lines["from_bus"].to_numpy(dtype=int) - 1, lines["to_bus"].to_numpy(dtype=int) - 1, length_km=length,
        r_ohm_per_km=lines["r_ohm"].to_numpy(dtype=float) / length,
        x_ohm_per_km=lines["x_ohm"].to_numpy(dtype=float) / length, c_nf_per_km=0.0,
        max_i_ka=rating / 1000.0,  # NaN: unrated (the importer reads it back as such)
        name=[f"{f}-{t}" for f, t in zip(lines["from_bus"], lines["to_bus"], strict=True)])
    net.line.loc[idx, "length_unknown"] = unknown
    for col in ("failure_rate_per_yr", "repair_h"):
        net.line.loc[idx, col] = lines[col].to_numpy(dtype=float)
    kinds = lines["switch"].to_numpy()
    open_ = lines["normally_open"].to_numpy(dtype=bool)
    has = open_ | np.isin(kinds, list(SWITCH_TYPES))
    if has.any():
        pp.create_switches(net, lines["from_bus"].to_numpy(dtype=int)[has] - 1, np.asarray(idx)[has], et="l",
                           closed=~open_[has], type=[SWITCH_TYPES.get(k, "LBS") for k in kinds[has]])


def _add_trafos(net, trafos: pd.DataFrame, kv: dict[int, float], base_mva: float) -> None:
    """Branches between levels or with an off-nominal tap: two-winding transformers, hv side at the sending
    end, rated voltages the buses', no magnetising; the series impedance as vk/vkr on the rating (an unrated
    branch is written on ``base_mva`` and marked ``rating_unknown``); τ ≠ 1 is one tap step of (τ − 1)·100 %
    at the hv side, so pandapower's ratio is τ."""
    import pandapower as pp

    if trafos["normally_open"].any():
        bad = trafos[trafos["normally_open"]].iloc[0]
        raise MissingInputError(f"tie {bad['from_bus']}-{bad['to_bus']} joins two voltage levels or has a tap: "
                                "pandapower's open transformer is not read back as a tie")
    f = trafos["from_bus"].to_numpy(dtype=int)
    t = trafos["to_bus"].to_numpy(dtype=int)
    kv_f = np.array([kv[b] for b in f])
    kv_t = np.array([kv[b] for b in t])
    rating = trafos["rating_a"].to_numpy(dtype=float)
    unknown = np.isnan(rating)
    sn = np.where(unknown, base_mva, np.sqrt(3.0) * kv_t * rating / 1000.0)
    r = trafos["r_ohm"].to_numpy(dtype=float)
    x = trafos["x_ohm"].to_numpy(dtype=float)
    to_percent = sn / kv_t**2 * 100.0  # Ω at the lv (receiving) side → % on the rating
    tau = trafos["tap_ratio"].to_numpy(dtype=float)
    tapped = tau != 1.0
    idx = pp.create_transformers_from_parameters(
        net, f - 1, t - 1, sn_mva=sn, vn_hv_kv=kv_f, vn_lv_kv=kv_t, vkr_percent=r * to_percent,
        vk_percent=np.hypot(r, x) * to_percent, pfe_kw=0.0, i0_percent=0.0, shift_degree=0.0,
        tap_side=["hv" if k else None for k in tapped], tap_neutral=np.where(tapped, 0, np.nan),
        tap_min=np.where(tapped, 0, np.nan), tap_max=np.where(tapped, 1, np.nan),
        tap_step_percent=np.where(tapped, (tau - 1.0) * 100.0, np.nan), tap_pos=np.where(tapped, 1, np.nan),
        tap_changer_type=["Ratio" if k else None for k in tapped],
        name=[f"{a}-{b}" for a, b in zip(f, t, strict=True)])
    net.trafo.loc[idx, "rating_unknown"] = unknown
    for col in ("failure_rate_per_yr", "repair_h"):
        net.trafo.loc[idx, col] = trafos[col].to_numpy(dtype=float)
    kinds = trafos["switch"].to_numpy()
    has = np.isin(kinds, list(SWITCH_TYPES))
    if has.any():
        pp.create_switches(net, f[has] - 1, np.asarray(idx)[has], et="t", closed=True,
                           type=[SWITCH_TYPES[k] for k in kinds[has]])


def _add_loads(net, feeder: Feeder, point: OperatingPoint | None) -> None:
    """One load per bus (one per load series where the feeder's ``load_shares`` mixes them), with its
    ``customers`` (on the bus's first load) and ``profile``."""
    import pandapower as pp

    b = feeder.buses
    p = b["p_mw"].to_numpy(dtype=float) if point is None else point.p_load_mw
    q = b["q_mvar"].to_numpy(dtype=float) if point is None else point.q_load_mvar
    shares = feeder.load_shares.groupby("bus")
    rows = []
    for k, r in enumerate(b.itertuples()):
        bus = int(r.bus)
        if bus in shares.groups:
            mix = shares.get_group(bus)
            parts = list(zip(mix["load_profile"], mix["share"].to_numpy(dtype=float), strict=True))
        elif p[k] == 0 and q[k] == 0 and r.customers == 0 and not r.load_profile:
            continue
        else:
            parts = [(r.load_profile, 1.0)]
        for n, (profile, share) in enumerate(parts):
            rows.append({"bus": bus - 1, "p_mw": p[k] * share, "q_mvar": q[k] * share,
                         "customers": int(r.customers) if n == 0 else 0, "profile": str(profile),
                         "name": f"load {bus}" + (f" {profile}" if len(parts) > 1 else "")})
    if rows:
        df = pd.DataFrame(rows)
        idx = pp.create_loads(net, df["bus"].to_numpy(), p_mw=df["p_mw"].to_numpy(), q_mvar=df["q_mvar"].to_numpy(),
                              name=df["name"].tolist())
        net.load.loc[idx, "customers"] = df["customers"].to_numpy()
        net.load.loc[idx, "profile"] = df["profile"].to_numpy()


def _add_generators(net, feeder: Feeder, units: pd.DataFrame, point: OperatingPoint | None) -> None:
    """Existing generators and new RES as static generators (``sn_mva``: installed MW; ``p_mw``: output),
    new storage as pandapower storage, microgrid exchanges at their PCCs (exports as sgens, imports as loads)."""
    import pandapower as pp

    g = feeder.generators
    # at the design point every unit at capacity; in an hour, the plan's dispatch of each (plan/existing)
    p_ex = g["p_mw"].to_numpy(dtype=float) if point is None else point.p_existing_mw
    q_ex = g["q_mvar"].to_numpy(dtype=float) if point is None else point.q_existing_mvar
    sgens = [pd.DataFrame({"bus": g["bus"].to_numpy(dtype=int), "p_mw": p_ex,
                           "q_mvar": q_ex, "sn_mva": g["p_mw"].to_numpy(dtype=float),
                           "name": g["name"].astype(str).to_numpy(), "controllable": g["curtailable"].to_numpy(bool),
                           "tech": g["tech"].astype(str).to_numpy(), "profile": g["profile"].astype(str).to_numpy()})]
    sto = (units["tech"] == "storage").to_numpy()
    res = units[~sto]
    cap = res["capacity_mw"].to_numpy(dtype=float)
    sgens.append(pd.DataFrame({
        "bus": res["bus"].to_numpy(dtype=int), "p_mw": cap if point is None else point.p_unit_mw[~sto],
        "q_mvar": np.zeros(len(res)) if point is None else point.q_unit_mvar[~sto], "sn_mva": cap,
        "name": res["name"].to_numpy(), "controllable": True, "tech": res["tech"].to_numpy(),
        "profile": res["profile"].to_numpy()}))
    mg = point.microgrids if point is not None else pd.DataFrame(columns=["microgrid", "bus", "p_export_mw"])
    exports = mg[mg["p_export_mw"] >= 0]
    sgens.append(pd.DataFrame({
        "bus": exports["bus"].to_numpy(dtype=int), "p_mw": exports["p_export_mw"].to_numpy(dtype=float), "q_mvar": 0.0,
        "sn_mva": np.nan, "name": [f"microgrid {m}" for m in exports["microgrid"]], "controllable": False,
        "tech": "microgrid", "profile": ""}))
    df = pd.concat([d for d in sgens if len(d)], ignore_index=True) if any(len(d) for d in sgens) else None
    if df is not None:
        idx = pp.create_sgens(net, df["bus"].to_numpy() - 1, p_mw=df["p_mw"].to_numpy(), q_mvar=df["q_mvar"].to_numpy(),
                              sn_mva=df["sn_mva"].to_numpy(), name=df["name"].tolist(),
                              controllable=df["controllable"].to_numpy(bool))
        net.sgen.loc[idx, "tech"] = df["tech"].to_numpy()
        net.sgen.loc[idx, "profile"] = df["profile"].to_numpy()
    st = units[sto]
    if len(st):
        cap = st["capacity_mw"].to_numpy(dtype=float)
        energy = st["energy_mwh"].to_numpy(dtype=float)
        pp.create_storages(net, st["bus"].to_numpy(dtype=int) - 1,
                           p_mw=np.zeros(len(st)) if point is None else point.p_unit_mw[sto], max_e_mwh=energy,
                           sn_mva=cap, soc_percent=np.full(len(st), 50.0) if point is None else
                           100.0 * point.soc_mwh[sto] / energy, name=st["name"].tolist(), max_p_mw=cap, min_p_mw=-cap)
    imports = mg[mg["p_export_mw"] < 0]
    if len(imports):
        idx = pp.create_loads(net, imports["bus"].to_numpy(dtype=int) - 1,
                              p_mw=-imports["p_export_mw"].to_numpy(dtype=float), q_mvar=0.0,
                              name=[f"microgrid {m}" for m in imports["microgrid"]])
        net.load.loc[idx, "customers"] = 0
        net.load.loc[idx, "profile"] = ""


# ----------------------------------------------------------------------------------- MATPOWER
def matpower_text(feeder: Feeder, net, v_min_pu: float, v_max_pu: float, name: str = "") -> str:
    """A MATPOWER version 2 case of the exported network.

    Written here because no installed library writes ``.m`` files (pandapower's ``to_mpc`` writes ``.mat``,
    matpowercaseframes only reads). MATPOWER has no static generators, storage or per-load data: each bus's
    Pd, Qd is its net load (loads − static generators + storage charging); the one generator is the slack at
    the substation. Branches come from the feeder: r, x in pu at the receiving end's base, BR_B 0 (charging is
    in the bus shunts Gs, Bs, MW and Mvar at 1 pu), TAP τ where ≠ 1, RATE_A the rating in MVA (0: unrated),
    ties with status 0.
    """
    base = feeder.base_mva
    ids = feeder.bus_ids.astype(int)
    pd_mw = pd.Series(0.0, index=ids - 1)
    qd = pd.Series(0.0, index=ids - 1)
    for table, sign in (("load", 1.0), ("sgen", -1.0), ("storage", 1.0)):
        df = net[table]
        if len(df):
            on = df["in_service"].astype(bool)
            pd_mw = pd_mw.add(sign * (df["p_mw"] * df["scaling"])[on].groupby(df["bus"][on]).sum(), fill_value=0.0)
            qd = qd.add(sign * (df["q_mvar"] * df["scaling"])[on].groupby(df["bus"][on]).sum(), fill_value=0.0)
    vm = float(net.ext_grid["vm_pu"].iloc[0])
    bus_rows = []
    for k in np.argsort(ids, kind="stable"):  # in id order: pandapower's converter numbers buses by row
        b, r = ids[k], feeder.buses.iloc[k]
        bus_rows.append([b, 3 if k == 0 else 1, pd_mw[b - 1], qd[b - 1], r["g_shunt_mw"], r["b_shunt_mvar"], 1,
                         vm if k == 0 else 1.0, 0.0, r["base_kv"], 1, v_max_pu, v_min_pu])
    gen = [[ids[0], 0.0, 0.0, 9999.0, -9999.0, vm, base, 1, 9999.0, -9999.0] + [0] * 11]
    kv = dict(zip(ids, feeder.bus_kv, strict=True))
    branch_rows = []
    for table, status in ((feeder.branches, 1), (feeder.ties, 0)):
        for r in table.itertuples():
            zb = kv[int(r.to_bus)] ** 2 / base
            rate = 0.0 if np.isnan(r.rating_a) else math.sqrt(3.0) * kv[int(r.to_bus)] * r.rating_a / 1000.0
            tau = float(r.tap_ratio)
            branch_rows.append([int(r.from_bus), int(r.to_bus), r.r_ohm / zb, r.x_ohm / zb, 0.0, rate, rate, rate,
                                0.0 if tau == 1.0 else tau, 0.0, status, -360.0, 360.0])

    def matrix(rows: list[list]) -> str:
        return "\n".join("\t" + "\t".join(_num(v) for v in row) + ";" for row in rows)

    return "\n".join([
        f"function mpc = {_m_name(name or feeder.name)}",
        f"%{(name or feeder.name).upper()} written by adnstudy export (MATPOWER case format version 2).",
        "% Pd, Qd: net bus loads of the exported point (loads - static generators + storage charging);",
        "% the only generator is the substation (slack). Branch r, x in pu at the receiving end's base,",
        "% BR_B = 0 (line charging is in the bus shunts Gs, Bs); ties have status 0.",
        "mpc.version = '2';",
        f"mpc.baseMVA = {_num(base)};",
        "",
        "%% bus data",
        "%\tbus_i\ttype\tPd\tQd\tGs\tBs\tarea\tVm\tVa\tbaseKV\tzone\tVmax\tVmin",
        "mpc.bus = [", matrix(bus_rows), "];",
        "",
        "%% generator data",
        "%\tbus\tPg\tQg\tQmax\tQmin\tVg\tmBase\tstatus\tPmax\tPmin\tPc1\tPc2\tQc1min\tQc1max\tQc2min\tQc2max"
        "\tramp_agc\tramp_10\tramp_30\tramp_q\tapf",
        "mpc.gen = [", matrix(gen), "];",
        "",
        "%% branch data",
        "%\tfbus\ttbus\tr\tx\tb\trateA\trateB\trateC\tratio\tangle\tstatus\tangmin\tangmax",
        "mpc.branch = [", matrix(branch_rows), "];",
        "",
    ])


def _num(v) -> str:
    """A number as MATPOWER reads it back bit for bit (shortest round-trip repr; integers plain)."""
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    f = float(v)
    return str(int(f)) if f.is_integer() and abs(f) < 1e15 else repr(f)


def _m_name(name: str) -> str:
    """A MATLAB function name from the case name (letters, digits, underscores; a letter first)."""
    text = "".join(c if c.isalnum() else "_" for c in name)
    return text if text[:1].isalpha() else f"case_{text}"


# ----------------------------------------------------------------------------------- the command
def export(out_dir: Path, to: str, scenario: int | None = None, hour: int | None = None,
           coplan: bool = False) -> Export:
    """Write ``out_dir/export/<case>[-<scenario>-h<hour>]<ext>`` from the folder's plan (``coplan``: the co-planned
    builds, ``<case>-coplan<ext>``, at the design point only); every table is read and checked, and the file
    built, before the folder is touched; the export folder is replaced whole (keeping earlier exports' files)
    under the results folder's lock."""
    from adnstudy.interop.importer import _quiet
    from adnstudy.report.results import open_results
    from adnstudy.results.store import _link_or_copy, out_lock, staged_folder

    if to not in FORMATS:
        raise MissingInputError(f"--to must be one of {', '.join(FORMATS)} (got '{to}')")
    if (scenario is None) != (hour is None):
        raise MissingInputError("give both --scenario and --hour (an hour of the plan), or neither (the design point)")
    if coplan and scenario is not None:
        raise MissingInputError("--coplan exports the co-planned network at its design point only (co-planning "
                                "writes no hour of the feeder's buses); give --scenario/--hour without --coplan, "
                                "for a plan")
    r = open_results(Path(out_dir))
    if coplan and not r.has("coplan", "investment"):
        raise MissingInputError(f"{r.out_dir} has no co-planning results (coplan/): run adnstudy coplan CASE --out "
                                f"{r.out_dir} first")
    if not coplan and (not r.has("plan", "investment") or not r.has("plan", "bus")):
        hint = "; it has co-planning results: --coplan exports their builds" if r.has("coplan") else ""
        raise MissingInputError(f"{r.out_dir} has no plan: export writes the network a plan built; run adnstudy plan "
                                f"CASE --out {r.out_dir} first{hint}")
    case = r.case
    if case is None:
        raise MissingInputError(f"{r.out_dir}: {r.case_problem}; export needs the case the plan was made with")
    feeder = r.feeder
    if feeder is None:
        raise MissingInputError(f"{r.out_dir}: {r.case_problem}; export needs the feeder the plan was made with")
    units = coplanned_units(r, case) if coplan else planned_units(r, case)
    net_cfg = case.config.network
    if scenario is None:
        point, v0, label = None, net_cfg.v_substation_pu, "design point (peak loads, units at capacity)"
        stem = f"{case.name}-coplan" if coplan else case.name
    else:
        point = operating_point(r, feeder, units, int(scenario), int(hour))
        v0, label = point.v_substation_pu, f"scenario {scenario}, hour {hour} of the plan"
        stem = f"{case.name}-{scenario}-h{hour}"
    net = to_pandapower(feeder, units, v0, point, name=stem)
    path_name = stem + FORMATS[to]
    if to == "pandapower":
        import pandapower as pp

        with _quiet():
            text = pp.to_json(net)
    else:
        text = matpower_text(feeder, net, net_cfg.v_min_pu, net_cfg.v_max_pu, name=stem)
    with out_lock(r.out_dir), staged_folder(r.out_dir, EXPORT_FOLDER) as tmp:
        previous = r.out_dir / EXPORT_FOLDER
        if previous.is_dir():
            shutil.copytree(previous, tmp, copy_function=_link_or_copy, dirs_exist_ok=True)
            (tmp / path_name).unlink(missing_ok=True)  # a hard link: never write through it
        (tmp / path_name).write_text(text, encoding="utf-8")
    return Export(files=[r.out_dir / EXPORT_FOLDER / path_name], point=label, units=len(units))
