"""One connected study: run keys over what each stage reads, dispatch on the planned network, plan with the
microgrids' exchanges, price series as tariffs, and a dispatch that loses no day when one misses its tolerance.

The small 8-bus case (tests/cases/small) runs everything in seconds; the study
fixture (conftest.py) provides its clustered and planned results.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SMALL, edited_case
from typer.testing import CliRunner

from adnstudy.cli import app
from adnstudy.config.load import load_case
from adnstudy.pipeline import run_key
from adnstudy.stages.registry import STAGES

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def small_variant(tmp_path: Path, name: str, *replacements: tuple[str, str]) -> Path:
    """The small case with text replaced, written (with its feeder tables) into ``tmp_path``."""
    return edited_case(SMALL, tmp_path, *replacements, name=name)


def keys(case_file: Path, out: Path) -> dict[str, str]:
    case = load_case(case_file)
    return {s.name: run_key(case, out, s) for s in STAGES}


# One field of each section, and the stages whose results depend on it (directly: through the tables a
# stage reads, its later stages re-run only if those tables change).
EDITS = [
    ("description", ("description: 8-bus", "description: edited 8-bus"), set()),
    ("network", ("v_min_pu: 0.95", "v_min_pu: 0.94"), {"powerflow", "reliability", "plan", "dispatch", "coplan"}),
    ("profiles", ("wind: {kind: wind, column: WP4}", "wind: {kind: wind, column: WP4, normalise: none}"),
     {"cluster", "reliability", "plan", "dispatch", "coplan"}),
    ("clustering", ("k: 3", "k: 3\n  max_iter: 301"), {"cluster"}),
    ("candidates", ("max_penetration: 0.9", "max_penetration: 0.85"), {"plan", "dispatch", "coplan"}),
    ("reliability", ("repair_h: 4.0", "repair_h: 4.5"), {"reliability", "plan", "coplan"}),
    ("microgrids", ("pcc_limit_mw: 0.5\n    generator: {p_max_mw: 0.2", "pcc_limit_mw: 0.55\n    generator: {p_max_mw: 0.2"),
     {"plan", "dispatch", "coplan"}),
    ("market", ("fee_usd_per_mwh: 2.0", "fee_usd_per_mwh: 2.5"), {"dispatch", "coplan"}),
    ("economics", ("name: small\n", "name: small\neconomics: {discount_rate: 0.07}\n"), {"plan", "dispatch", "coplan"}),
    ("solver", ("name: small\n", "name: small\nsolver: {mip_gap: 2.0e-3}\n"), {"plan", "coplan"}),
    ("solver.options", ("name: small\n", "name: small\nsolver: {options: {max_iter: 400}}\n"), {"plan", "dispatch", "coplan"}),
]


@pytest.mark.parametrize(("section", "edit", "expected"), EDITS, ids=[e[0] for e in EDITS])
def test_run_keys_follow_the_sections_each_stage_reads(small_study, tmp_path, section, edit, expected) -> None:
    out = small_study.runs["main"]  # cluster and plan tables exist: the keys see their contents
    base = keys(small_variant(tmp_path, "base"), out)
    edited = keys(small_variant(tmp_path, "edited", edit), out)
    assert {s for s in base if base[s] != edited[s]} == expected


def outcomes(result) -> dict[str, str]:
    assert result.exit_code == 0, result.output
    return {line.split()[0]: line.split(None, 1)[1] for line in result.stdout.splitlines()
            if line.strip() and not line.startswith("results")}


def test_rerunning_a_stage_with_identical_tables_keeps_later_stages_up_to_date(small_study, tmp_path) -> None:
    out = tmp_path / "out"
    shutil.copytree(small_study.runs["main"], out)
    case = small_variant(tmp_path, "small")  # a copy of the case: same content, another path
    first = outcomes(runner.invoke(app, ["run", str(case), "--out", str(out)]))
    assert {s: o.split()[0] for s, o in first.items()} == {
        "powerflow": "ran", "cluster": "up", "reliability": "up", "plan": "up", "dispatch": "ran",
        "coplan": "not"}  # the small case has no coplan section: "not in case"
    again = runner.invoke(app, ["cluster", str(case), "--out", str(out)])  # same typical days, new manifest
    assert again.exit_code == 0, again.output
    assert all(o.startswith(("up to date", "not in case"))
               for o in outcomes(runner.invoke(app, ["run", str(case), "--out", str(out)])).values())
    # editing the market re-runs dispatch alone; the description nothing
    fee = small_variant(tmp_path, "small", ("fee_usd_per_mwh: 2.0", "fee_usd_per_mwh: 2.5"),
                        ("description: 8-bus", "description: edited 8-bus"))
    ran = outcomes(runner.invoke(app, ["run", str(fee), "--out", str(out)]))
    assert [s for s, o in ran.items() if o.startswith("ran")] == ["dispatch"]


@pytest.fixture(scope="module")
def planned_dispatch(small_study, tmp_path_factory) -> tuple[Path, Path]:
    """Typical day 1 of the small case dispatched on its plan, and on the bare feeder (--no-plan)."""
    base = tmp_path_factory.mktemp("planned")
    out = base / "out"
    shutil.copytree(small_study.runs["main"], out)
    bare = base / "bare"
    shutil.copytree(small_study.runs["main"] / "cluster", bare / "cluster")
    shutil.copytree(small_study.runs["main"] / "plan", bare / "plan")
    for folder, extra in ((out, ()), (bare, ("--no-plan",))):
        result = runner.invoke(app, ["dispatch", str(SMALL), "--out", str(folder), "--scenario", "1", *extra])
        assert result.exit_code == 0, result.output
    return out, bare


def test_dispatch_runs_on_the_planned_network(planned_dispatch) -> None:
    out, bare = planned_dispatch
    manifest = json.loads((out / "dispatch" / "manifest.json").read_text())
    plan_manifest = json.loads((out / "plan" / "manifest.json").read_text())
    assert manifest["plan"]["folder"] == str(out / "plan") and manifest["plan"]["run_key"] == plan_manifest["run_key"]
    import hashlib

    sha = hashlib.sha256((out / "plan" / "investment.parquet").read_bytes()).hexdigest()
    assert manifest["plan"]["investment_sha256"] == sha == manifest["inputs"]["plan/investment"]
    invest = pd.read_parquet(out / "plan" / "investment.parquet")
    units = pd.read_parquet(out / "dispatch" / "adn_units.parquet")
    built = invest[invest["build"]]
    assert sorted(units["bus"].unique()) == sorted(built["bus"])
    # every built unit at its capacity: RES availability x capacity from the typical day, storage its power
    typical = pd.read_parquet(out / "cluster" / "typical.parquet")
    for _, site in built.iterrows():
        u = units[units["bus"] == site["bus"]].sort_values("hour")
        if site["tech"] == "storage":
            assert np.allclose(u["p_available_mw"], site["capacity_mw"])
            assert (np.abs(u["p_mw"]) <= site["capacity_mw"] + 1e-6).all()
        else:
            a = typical[(typical["scenario"] == 1) & (typical["series"] == site["tech"])].sort_values("hour")
            assert np.allclose(u["p_available_mw"], a["value"].to_numpy() * site["capacity_mw"], rtol=1e-9)
            assert (u["p_mw"] <= u["p_available_mw"] + 1e-6).all() and (u["p_mw"] >= 0).all()
    # power balance of every hour: import + MG exports + own units = loads + losses
    adn = pd.read_parquet(out / "dispatch" / "adn.parquet").set_index("hour")
    sched = pd.read_parquet(out / "dispatch" / "schedule.parquet")
    # the MGs' PCC exports sum to their sales to the ADN less their purchases (bilateral trades cancel in the sum)
    mg_export = (sched["p_sell_mw"] - sched["p_buy_mw"]).groupby(sched["hour"]).sum()
    case = load_case(SMALL)
    from adnstudy.checks import CaseInputs
    from adnstudy.data.typical import typical_days

    fd = CaseInputs(case).feeder
    td = typical_days(case, typical, pd.read_parquet(out / "cluster" / "weights.parquet"))
    load = fd.buses["p_mw"].to_numpy() @ td.bus_load_multipliers(fd).reshape(fd.n_bus, td.n_days, 24)[:, 1]
    balance = adn["import_mw"] + mg_export + adn["p_dg_mw"] + adn["p_storage_mw"] - load - adn["loss_mw"]
    assert np.abs(balance).max() < 2e-4  # the coordination's PCC tolerance (5e-5 MW per MG) and table rounding
    # the bare feeder: no plan, no units; the plan's DG displaces substation imports
    bare_manifest = json.loads((bare / "dispatch" / "manifest.json").read_text())
    assert bare_manifest["plan"] is None and not (bare / "dispatch" / "adn_units.parquet").exists()
    bare_adn = pd.read_parquet(bare / "dispatch" / "adn.parquet")
    assert adn["import_mw"].sum() < bare_adn["import_mw"].sum() - 0.5 * adn["p_dg_mw"].sum()
    # the distributed solve meets the centralised reference of the same planned model
    for m in (manifest, bare_manifest):
        assert m["complete"] and abs(m["scenarios"][0]["gap"]) < 1e-3
        assert m["scenarios"][0]["max_dv_pu"] < 1e-4


def test_dispatch_tables_hold_no_solver_noise(planned_dispatch) -> None:
    out, _ = planned_dispatch
    trades = pd.read_parquet(out / "dispatch" / "trades.parquet")
    assert ((trades["p_mw"] == 0) | (trades["p_mw"] >= 5e-5)).all()
    assert (trades.loc[trades["p_mw"] == 0, "fee_usd"] == 0).all()
    sched = pd.read_parquet(out / "dispatch" / "schedule.parquet")
    for col in [c for c in sched.columns if c.endswith(("_mw", "_mwh"))]:
        v = sched[col].abs()
        assert ((v == 0) | (v >= 5e-5)).all(), col


def test_a_day_that_misses_its_tolerance_loses_no_day(small_study, tmp_path) -> None:
    out = tmp_path / "out"
    shutil.copytree(small_study.runs["main"] / "cluster", out / "cluster")
    case = small_variant(tmp_path, "iters", ("fee_payer: buyer", "fee_payer: buyer\n  coordination: {max_iter: 35}"))
    result = runner.invoke(app, ["dispatch", str(case), "--out", str(out)])
    manifest = json.loads((out / "dispatch" / "manifest.json").read_text())
    by_day = {r["scenario"]: r for r in manifest["scenarios"]}
    assert sorted(by_day) == [0, 1, 2, 3]  # every day written
    missed = sorted(int(k) for k in manifest["not_converged"])
    assert missed and missed == sorted(s for s, r in by_day.items() if not r["converged"])
    assert all(by_day[s]["iterations"] == 35 for s in missed)
    assert all(r["iterations"] <= 35 for s, r in by_day.items() if s not in missed)
    assert len(missed) < 4  # and the others converged (accelerated ATC + ADMM here: 30, 33, > 35, > 35)
    assert result.exit_code == 1 and manifest["complete"] is False
    assert f"{len(missed)} of 4 typical day(s) are not final" in result.stderr
    assert all(f"typical day {s}: clearing: the distributed clearing" in result.stderr for s in missed)
    agents = pd.read_parquet(out / "dispatch" / "agents_by_scenario.parquet")
    assert sorted(agents.loc[~agents["converged"], "scenario"].unique()) == missed
    assert not pd.read_parquet(out / "dispatch" / "agents.parquet")["converged"].any()
    # an incomplete stage is never up to date: run solves it again (and says again that it is not final)
    again = runner.invoke(app, ["run", str(case), "--out", str(out)])
    assert again.exit_code == 1 and "are not final" in again.stderr


# --------------------------------------------------------------------------------------------- price series
DEFAULT_BUY = [40, 40, 40, 40, 40, 40, 40, 40, 70, 70, 70, 110, 110, 110, 110, 70, 70, 70, 110, 110, 110, 70, 70, 70]


def csv_variant(tmp_path: Path, name: str, tariff: str | None, price: np.ndarray | None) -> Path:
    """The small case on CSV profiles (the SimBench series it uses, written out), optionally with a price series."""
    from adnstudy.data.profiles import load_profiles

    year = load_profiles(load_case(SMALL))
    table = pd.DataFrame({"time": year.index.strftime("%Y-%m-%d %H:%M"), **{c: year[c].to_numpy() for c in year}})
    series = ("    load: {kind: load, column: load}\n    pv:   {kind: pv,   column: pv}\n"
              "    wind: {kind: wind, column: wind}\n")
    if price is not None:
        table["price"] = price
        series += "    price: {kind: price, column: price}\n"
    table.to_csv(tmp_path / f"{name}.csv", index=False)
    profiles = f"profiles:\n  source: csv\n  file: {name}.csv\n  series:\n{series}"
    old = SMALL.read_text()
    old_profiles = old[old.index("profiles:"):old.index("clustering:")]
    edits = [(old_profiles, profiles + "\n"), ("k: 3", "k: 3\n  compare: false")]
    if tariff is not None:
        edits.append(("name: small\n", f"name: small\neconomics: {{purchase_price_usd_per_mwh: {tariff}}}\n"))
    return small_variant(tmp_path, name, *edits)


def test_a_price_series_is_the_tariff(tmp_path) -> None:
    """The defaults' time-of-use tariff given as a price series (the same 24 values every day) changes nothing:
    the same typical days (a series equal on every day adds nothing to the distances) and the same plan."""
    from adnstudy.data.profiles import load_profiles

    hours = load_profiles(load_case(SMALL)).index.hour.to_numpy()
    runs = {}
    for name, tariff, price in (("lists", None, None), ("series", "price", np.asarray(DEFAULT_BUY, float)[hours])):
        case = csv_variant(tmp_path, name, tariff, price)
        out = tmp_path / f"out_{name}"
        for stage in (["cluster"], ["plan", "--no-reliability"]):
            result = runner.invoke(app, [stage[0], str(case), "--out", str(out), *stage[1:]])
            assert result.exit_code == 0, result.output
        runs[name] = out
    typ = {n: pd.read_parquet(o / "cluster" / "typical.parquet") for n, o in runs.items()}
    series = typ["series"]
    price = series[series["series"] == "price"].sort_values(["scenario", "hour"])
    assert np.allclose(price["value"].to_numpy().reshape(-1, 24), DEFAULT_BUY)
    pd.testing.assert_frame_equal(series[series["series"] != "price"].reset_index(drop=True), typ["lists"])
    cost = {n: pd.read_parquet(o / "plan" / "cost.parquet").set_index("item")["annual_usd"] for n, o in runs.items()}
    assert cost["series"]["total"] == pytest.approx(cost["lists"]["total"], rel=1e-7)
    assert cost["series"]["purchase"] == pytest.approx(cost["lists"]["purchase"], rel=1e-6)


def test_a_price_series_changes_the_tariff_by_day(tmp_path) -> None:
    """Weekend prices at half: the typical days' tariffs are the price series' typical days, day by day."""
    from adnstudy.data.profiles import load_profiles
    from adnstudy.data.typical import typical_days

    idx = load_profiles(load_case(SMALL)).index
    price = np.asarray(DEFAULT_BUY, float)[idx.hour.to_numpy()] * np.where(idx.dayofweek >= 5, 0.5, 1.0)
    case = csv_variant(tmp_path, "weekend", "price", price)
    out = tmp_path / "out"
    assert runner.invoke(app, ["cluster", str(case), "--out", str(out)]).exit_code == 0
    c = load_case(case)
    td = typical_days(c, pd.read_parquet(out / "cluster" / "typical.parquet"),
                      pd.read_parquet(out / "cluster" / "weights.parquet"))
    buy, sell = td.tariffs(c.config.economics)
    assert np.array_equal(buy, td.series["price"]) and np.allclose(sell, 30.0)  # the defaults' feed-in list
    assert buy.min() < 40.0 and len({tuple(row) for row in np.round(buy, 6)}) > 1  # weekends reach the tariff


def test_an_unused_price_series_is_rejected(tmp_path) -> None:
    from adnstudy.data.profiles import load_profiles

    hours = load_profiles(load_case(SMALL)).index.hour.to_numpy()
    case = csv_variant(tmp_path, "unused", None, np.asarray(DEFAULT_BUY, float)[hours])
    result = runner.invoke(app, ["validate", str(case)])
    assert result.exit_code == 2
    assert "profiles.series.price" in result.stderr and "no tariff uses it" in result.stderr
    assert "Traceback" not in result.output


def test_plan_carries_the_microgrids_stand_alone_exchanges(small_study) -> None:
    """On the small feeder no limit binds the MGs' exchanges, so each MG's exchange in the plan costs it its own
    optimum at the tariffs (solved here by its own agent, day by day) — up to cents a year, where the losses the
    operator also weighs tip a nearly indifferent MG's timing; the plan records the exchanges."""
    from adnstudy.checks import CaseInputs
    from adnstudy.data.typical import typical_days
    from adnstudy.problems.microgrid import MicrogridAgent, microgrid_days

    out = small_study.runs["main"]
    case = load_case(SMALL)
    feeder = CaseInputs(case).feeder
    weights = pd.read_parquet(out / "cluster" / "weights.parquet")
    td = typical_days(case, pd.read_parquet(out / "cluster" / "typical.parquet"), weights)
    own = {}
    for day in microgrid_days(case, feeder, td):
        for d in day:
            own.setdefault(d.name, []).append(MicrogridAgent(d).solve_alone())
    record = json.loads((out / "plan" / "manifest.json").read_text())["microgrids"]
    assert record["exchange_status"] == ["optimal"] * td.n_days  # each day's exchanges within the reference accuracy
    record = record["by_microgrid"]
    exchange = pd.read_parquet(out / "plan" / "microgrid_exchange.parquet")
    bus = pd.read_parquet(out / "plan" / "bus.parquet")
    for name, schedules in own.items():
        annual = float(td.days_weight @ np.array([s.cost_usd for s in schedules]))
        assert record[name]["standalone_cost_usd_per_yr"] == pytest.approx(annual, rel=1e-4)
        assert record[name]["standalone_cost_usd_per_yr"] >= annual - 1e-6 * abs(annual)  # never below its optimum
        mine = exchange[exchange["microgrid"] == name]
        at_bus = bus[bus["bus"] == record[name]["bus"]].sort_values(["scenario", "hour"])["p_microgrid_mw"]
        np.testing.assert_allclose(mine.sort_values(["scenario", "hour"])["p_export_mw"], at_bus, atol=1e-12)
        hours = np.repeat(td.days_weight, 24)
        x = mine.sort_values(["scenario", "hour"])["p_export_mw"].to_numpy()
        assert record[name]["import_mwh_per_yr"] == pytest.approx(hours @ np.maximum(-x, 0), rel=1e-6, abs=1e-6)
