"""``adnstudy powerflow``: the base case of the feeder by AC power flow.

``peak`` solves the published peak snapshot (every bus at its peak load, existing
generation off: the design case, as ``network.branch_rating_factor`` rates branches);
``year`` solves every hour of the case's profiles at the net loads (load − existing
generation at its availability that hour), vectorised over the hours of a chunk, and
adds annual energy losses (for a 365-day year, as every stage counts it), into
its own folder ``powerflow_year/``. Tables (see ``docs/results.md``): ``bus``,
``branch`` and ``summary``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from adnstudy.config.load import Case
from adnstudy.data.typical import HOURS, YEAR_DAYS
from adnstudy.formulation.distflow import at_buses
from adnstudy.network.feeder import Feeder
from adnstudy.network.powerflow import PowerFlowResult, run_powerflow_chunks
from adnstudy.results.figures import new_figure
from adnstudy.results.tables import branch_loading, branch_table, bus_table
from adnstudy.stages.registry import BY_NAME, Line, checked_inputs, stage_writer

Mode = Literal["peak", "year"]


def powerflow_stage(case: Case, out_dir: Path, run_key: str | None = None, year: bool = False) -> dict[str, Any]:
    """Solve and write the base-case power flow (``year``: every hour of the profiles); return the summary.

    The hours are solved and written in chunks (:func:`~adnstudy.network.powerflow.run_powerflow_chunks`),
    so memory is bounded by a chunk, not by buses × hours; the tables are those of one sweep over the year.
    """
    net = case.config.network
    mode: Mode = "year" if year else "peak"
    inputs = checked_inputs(case, "powerflow")
    with stage_writer(out_dir, case, "powerflow", options={"year": year}) as w:
        with w.phase("load"):
            feeder = inputs.feeder
            generation = None
            if mode == "peak":
                mult = np.ones((feeder.n_bus, 1))
                times = None
            else:
                mult = inputs.bus_load_multipliers
                times = inputs.profiles.index
                if not feeder.generators.empty:
                    generation = existing_output_mw(feeder, inputs.generator_availability)
        parts = {name: w.table_parts(name) for name in ("bus", "branch")}
        summaries: list[pd.DataFrame] = []
        worst_v: dict[int, np.ndarray] = {}  # each chunk's lowest-voltage snapshot → its bus voltages
        iterations, mismatch = 0, 0.0
        chunks = run_powerflow_chunks(feeder, mult, v0_pu=net.v_substation_pu, generation=generation)
        while True:
            with w.phase("solve"):
                chunk = next(chunks, None)
            if chunk is None:
                break
            sl, p, q, res = chunk
            iterations, mismatch = max(iterations, res.iterations), max(mismatch, res.max_mismatch_pu)
            with w.phase("write"):
                bus, branch, summary = result_tables(feeder, res, p, q, None if times is None else times[sl],
                                                     first=sl.start)
                parts["bus"].write(bus)
                parts["branch"].write(branch)
                summaries.append(summary)
                low = int(np.argmin(summary["v_min_pu"].to_numpy()))
                worst_v[sl.start + low] = res.v_pu[:, low]
            del bus, branch, res, p, q
        with w.phase("write"):
            for part in parts.values():
                part.close()
            summary = pd.concat(summaries, ignore_index=True)
            w.table("summary", summary)
            figures = summarise(feeder, summary, mode)
            w.figure("voltage_profile", voltage_figure(feeder, worst_v[figures.get("worst_snapshot", 0)], figures))
        w.record(
            run_key=run_key,
            mode=mode,
            **({"year_days": YEAR_DAYS} if mode == "year" else {}),
            solver={"name": "backward_forward_sweep", "status": "converged", "iterations": iterations,
                    "max_mismatch_pu": mismatch},
            objective=None,
            summary=figures,
        )
    return figures


def existing_output_mw(feeder: Feeder, availability: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bus × hour active and reactive output of the existing units (all of the available power: a power flow
    has no operator to curtail), MW and Mvar."""
    g = feeder.generators
    to_bus = at_buses(feeder.n_bus, np.array([feeder.position(b) for b in g["bus"]]))
    return (to_bus @ (availability * g["p_mw"].to_numpy(dtype=float)[:, None]),
            to_bus @ (availability * g["q_mvar"].to_numpy(dtype=float)[:, None]))


def result_tables(
    feeder: Feeder, res: PowerFlowResult, p: np.ndarray, q: np.ndarray, times: pd.DatetimeIndex | None,
    first: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Tidy tables, one row per (snapshot, bus) and (snapshot, branch), and one per snapshot
    (snapshots numbered from ``first``)."""
    n_snap = res.v.shape[1]
    cols = np.arange(n_snap)
    snap = first + cols
    index = {"snapshot": snap}
    v_pu = res.v_pu
    bus = bus_table(feeder, index, {"v_pu": v_pu, "va_deg": res.va_deg, "p_load_mw": p, "q_load_mvar": q})
    i_ka = res.i_branch_ka
    branch = branch_table(feeder, index, {
        "p_mw": res.s_from.real * feeder.base_mva, "q_mvar": res.s_from.imag * feeder.base_mva, "i_ka": i_ka,
        "loss_mw": res.loss.real * feeder.base_mva, "loss_mvar": res.loss.imag * feeder.base_mva,
        **branch_loading(feeder, i_ka),
    })
    vmin_pos = np.argmin(v_pu, axis=0)
    summary = pd.DataFrame({
        "snapshot": snap,
        "time": times if times is not None else pd.NaT,
        # what the substation supplies: the feeder's head branches plus any load at the substation bus
        "p_import_mw": res.s_from.real[feeder.f == 0].sum(axis=0) * feeder.base_mva + p[0],
        "q_import_mvar": res.s_from.imag[feeder.f == 0].sum(axis=0) * feeder.base_mva + q[0],
        "p_loss_mw": res.p_loss_mw,
        "q_loss_mvar": res.q_loss_mvar,
        "v_min_pu": v_pu[vmin_pos, cols],
        "v_min_bus": feeder.bus_ids[vmin_pos],
    })
    return bus, branch, summary


def summarise(feeder: Feeder, summary: pd.DataFrame, mode: Mode) -> dict[str, Any]:
    """Headline figures at the worst snapshot (lowest voltage; the peak in peak mode), and energy over a year.

    Annual energies are for a ``YEAR_DAYS``-day year: the sums over the profiles' hours (8,784 in a
    leap year, or a few weeks of a user's data) scaled by ``YEAR_DAYS · 24`` / hours.
    """
    worst = int(summary["v_min_pu"].idxmin()) if mode == "year" else 0
    row = summary.iloc[worst]
    out: dict[str, Any] = {
        "p_loss_kw": float(row["p_loss_mw"] * 1000.0),
        "q_loss_kvar": float(row["q_loss_mvar"] * 1000.0),
        "v_min_pu": float(row["v_min_pu"]),
        "v_min_bus": int(row["v_min_bus"]),
    }
    if mode == "year":
        out["hours"] = int(len(summary))
        to_year = YEAR_DAYS * HOURS / len(summary)
        out["energy_loss_mwh"] = float(summary["p_loss_mw"].sum() * to_year)
        out["energy_import_mwh"] = float(summary["p_import_mw"].sum() * to_year)
        out["worst_snapshot"] = worst
    return out


def voltage_figure(feeder: Feeder, v_pu: np.ndarray, figures: dict[str, Any]):
    """The bus voltages ``v_pu`` of the worst snapshot."""
    fig, ax = new_figure(7, 3.2)
    ax.plot(np.arange(feeder.n_bus), v_pu, marker="o", ms=3)
    ax.set_xticks(np.arange(feeder.n_bus)[:: max(1, feeder.n_bus // 16)])
    ax.set_xticklabels(feeder.bus_ids[:: max(1, feeder.n_bus // 16)])
    ax.set_xlabel("bus")
    ax.set_ylabel("voltage (pu)")
    ax.set_title(f"{feeder.name}: voltage at the worst snapshot (min {figures['v_min_pu']:.4f} pu at bus {figures['v_min_bus']})")
    ax.grid(alpha=0.3)
    return fig


def report(case: Case, out_dir: Path, summary: dict[str, Any], options: dict[str, Any]) -> list[Line]:
    """What ``adnstudy powerflow`` prints."""
    import json

    if options.get("json"):
        return [(json.dumps(rounded(summary)), False)]
    net = case.config.network
    year = options.get("year", False)
    where = "at the peak" if not year else f"in the worst of {summary['hours']} hours"
    lines: list[Line] = [(
        f"{case.name}: losses {where} {summary['p_loss_kw']:.2f} kW, {summary['q_loss_kvar']:.2f} kvar; "
        f"minimum voltage {summary['v_min_pu']:.4f} pu at bus {summary['v_min_bus']}", False)]
    if year:
        net_mwh = summary["energy_import_mwh"]  # net of exports: negative where existing generation exceeds the load
        lines.append((f"annual energy losses {summary['energy_loss_mwh']:.1f} MWh; {abs(net_mwh):.1f} MWh "
                      f"{'imported' if net_mwh >= 0 else 'exported'} net (a {YEAR_DAYS}-day year)", False))
    if summary["v_min_pu"] < net.v_min_pu:
        lines.append((f"note: below the case's lower limit v_min_pu = {net.v_min_pu}", True))
    lines.append((f"results: {out_dir / BY_NAME['powerflow'].folder_for(options)}", False))
    return lines


#: Decimals of the printed summary (--json) by unit suffix: those of the text report; the manifest keeps
#: full precision.
DECIMALS = {"_kw": 2, "_kvar": 2, "_pu": 4, "_mwh": 1}


def rounded(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary as ``--json`` prints it: floats rounded by their unit."""
    def decimals(key: str) -> int | None:
        return next((d for suffix, d in DECIMALS.items() if key.endswith(suffix)), None)

    return {k: round(v, decimals(k)) if isinstance(v, float) and decimals(k) is not None else v
            for k, v in summary.items()}
