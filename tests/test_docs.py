"""Keep the reference docs true to the code.

* ``docs/case.md``: every field of every case-file model has a row in the table
  of its section. Sections are found by the first code span of a heading: the
  field path of the model (``network``, ``profiles.series.<name>``,
  ``candidates.sites[]``, ``microgrids[].storage``), or "Top-level fields" for
  :class:`CaseConfig` itself. The feeder table columns have rows under the
  "Bus table" and "Branch table" headings.
* ``docs/results.md``: every column of every stage table has a row under the
  heading ``### `<stage>/<table>.parquet```, and the manifest keys are named.

Every stage of the registry (``adnstudy/stages/registry.py``) has a function
in :data:`STAGE_TABLES` that returns ``{table name: column names}``, cheaply
(no full solve if avoidable); its tables must be those the registry declares.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel

from adnstudy.config.schema import CaseConfig, NetworkConfig
from adnstudy.network import feeder as feeder_module
from adnstudy.stages.registry import STAGES

ROOT = Path(__file__).resolve().parents[1]
CASE_DOC = ROOT / "docs" / "case.md"
RESULTS_DOC = ROOT / "docs" / "results.md"
TOP_LEVEL = "Top-level fields"

HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
ROW_NAME = re.compile(r"^\|\s*`([^`]+)`")  # first code span of a table row's first cell


# ------------------------------------------------------------------ markdown helpers
def sections(text: str) -> dict[str, str]:
    """Heading text → body, up to the next heading of the same or a higher level."""
    lines = text.splitlines()
    heads: list[tuple[int, int, str]] = []
    fenced = False
    for i, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced  # a '#' line in a code block is no heading
        elif not fenced and (m := HEADING.match(line)):
            heads.append((i, len(m.group(1)), m.group(2).strip()))
    out: dict[str, str] = {}
    for n, (i, level, title) in enumerate(heads):
        end = next((j for j, lv, _ in heads[n + 1 :] if lv <= level), len(lines))
        out[title] = "\n".join(lines[i + 1 : end])
    return out


def find_section(doc: dict[str, str], key: str, *, code: bool = True) -> str | None:
    """Body of the heading whose first code span is ``key`` (``code=False``: whose text starts with it)."""
    for title, body in doc.items():
        span = re.search(r"`([^`]+)`", title)
        if (span is not None and span.group(1) == key) if code else title.startswith(key):
            return body
    return None


def row_names(body: str) -> set[str]:
    return {m.group(1) for line in body.splitlines() if (m := ROW_NAME.match(line.strip()))}


@cache
def case_doc() -> dict[str, str]:
    return sections(CASE_DOC.read_text(encoding="utf-8"))


@cache
def results_doc() -> dict[str, str]:
    return sections(RESULTS_DOC.read_text(encoding="utf-8"))


# ---------------------------------------------------------------- schema traversal
def models_in(annotation: object, path: str) -> Iterator[tuple[str, type[BaseModel]]]:
    """Pydantic models reachable from a type annotation, with their field path."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield path, annotation
        for name, info in annotation.model_fields.items():
            yield from models_in(info.annotation, f"{path}.{name}" if path else name)
        return
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is dict:
        yield from models_in(args[1], f"{path}.<name>")
    elif origin is list:
        yield from models_in(args[0], f"{path}[]")
    elif origin in (typing.Union, types.UnionType, typing.Annotated):
        for arg in args:
            yield from models_in(arg, path)


SCHEMA_MODELS = dict(models_in(CaseConfig, ""))


def test_schema_traversal_finds_every_section():
    # guards the traversal itself: a model it misses would go unchecked
    assert {
        "",
        "network",
        "profiles.series.<name>",
        "candidates.sites[]",
        "microgrids[].generator",
    } <= set(SCHEMA_MODELS)


@pytest.mark.parametrize("path", sorted(SCHEMA_MODELS), ids=lambda p: p or "top-level")
def test_case_doc_has_every_field(path: str):
    model = SCHEMA_MODELS[path]
    key = path or TOP_LEVEL
    body = find_section(case_doc(), key, code=bool(path))
    assert body is not None, f"docs/case.md has no heading for `{key}` ({model.__name__})"
    missing = sorted(set(model.model_fields) - row_names(body))
    assert not missing, f"docs/case.md, section `{key}`: no table row for {missing}"


def test_case_doc_names_every_stage():
    body = find_section(case_doc(), "Which stage needs which section", code=False)
    assert body is not None
    assert {s.name for s in STAGES} <= row_names(body)


def test_case_doc_has_every_feeder_column():
    buses, branches = (
        find_section(case_doc(), k, code=False) for k in ("Bus table", "Branch table")
    )
    assert buses is not None and branches is not None
    # columns the loader names, and those of the shipped tables
    bus_cols = set(feeder_module.BUS_REQUIRED) | {"customers", "substation", "load_profile"}
    branch_cols = set(feeder_module.BRANCH_REQUIRED) | set(feeder_module.BRANCH_OPTIONAL_FLOAT)
    branch_cols |= {"switch", "normally_open"}
    for name in feeder_module.BUILTIN_FEEDERS:
        bus_file, branch_file = feeder_module.builtin_path(name)
        bus_cols |= set(bus_file.read_text().splitlines()[0].split(","))
        branch_cols |= set(branch_file.read_text().splitlines()[0].split(","))
    assert not bus_cols - row_names(buses), "docs/case.md, Bus table"
    assert not branch_cols - row_names(branches), "docs/case.md, Branch table"
    for kind in feeder_module.SWITCH_KINDS:
        assert f"`{kind}`" in branches


def test_case_doc_has_every_generator_column_and_range():
    from adnstudy.network.generators import GENERATOR_RANGES

    body = find_section(case_doc(), "Generator table", code=False)
    assert body is not None
    rows = {line.split("`")[1]: line for line in body.splitlines() if line.startswith("| `")}
    user = set(feeder_module.GENERATOR_COLUMNS) - {"gen"}  # numbered by row, not a column of the file
    assert not user - set(rows), "docs/case.md, Generator table"
    missing = [f"{c}: {r.text()}" for c, r in GENERATOR_RANGES.items() if r.text() not in rows.get(c, "")]
    assert not missing, f"docs/case.md, Generator table, does not state these ranges: {missing}"


# ------------------------------------------------------------------ result tables
@cache
def ieee33_peak():
    from adnstudy.network.powerflow import run_powerflow

    feeder = feeder_module.load_feeder(
        NetworkConfig(feeder="ieee33", branch_rating_factor=2.0), ROOT, "test"
    )
    p = feeder.buses["p_mw"].to_numpy()[:, None]
    q = feeder.buses["q_mvar"].to_numpy()[:, None]
    return feeder, run_powerflow(feeder, p, q), p, q


def powerflow_tables() -> dict[str, list[str]]:
    from adnstudy.stages.powerflow import result_tables

    feeder, res, p, q = ieee33_peak()
    bus, branch, summary = result_tables(feeder, res, p, q, None)
    return {
        "bus": list(bus.columns),
        "branch": list(branch.columns),
        "summary": list(summary.columns),
    }


def cluster_tables() -> dict[str, list[str]]:
    from adnstudy.cluster.typical_days import DayData, aggregate, score
    from adnstudy.stages.cluster import decision_table, tables

    values = np.random.default_rng(0).uniform(size=(12, 24, 3))
    data = DayData(
        dates=pd.date_range("2021-01-01", periods=12, freq="D"), series=("load", "pv", "wind"),
        kinds=("load", "pv", "wind"), values=values, lo=values.min(axis=(0, 1)), hi=values.max(axis=(0, 1)),
    )
    res, dp = aggregate(data, 3, extreme_days=["peak_net_load"])
    out = {name: list(df.columns) for name, df in tables(data, res).items()}
    out["decision"] = list(decision_table(dp, res, data).columns)
    # one energy-error column per series, documented once as a pattern
    metric_cols = [c for c in score(data, res) if not c.startswith("energy_error_")]
    out["metrics"] = ["method", "k", *metric_cols, "energy_error_<series>", "seconds"]
    return out


def plan_tables() -> dict[str, list[str]]:
    """Columns of the plan tables, from a 3-bus plan (no full 33-bus solve)."""
    import tempfile

    from adnstudy.checks import case_feeder
    from adnstudy.config.load import load_case
    from adnstudy.problems.plan import build_plan_model, no_investment_baseline, plan_data
    from adnstudy.solve.conic import solve_conic
    from adnstudy.stages.plan import plan_tables as tables

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        pd.DataFrame({"bus": [1, 2, 3], "base_kv": 11.0, "p_mw": [0, 0.3, 0.2], "q_mvar": [0, 0.1, 0.1]}).to_csv(d / "b.csv", index=False)
        pd.DataFrame({"from_bus": [1, 2], "to_bus": [2, 3], "r_ohm": 0.5, "x_ohm": 0.4}).to_csv(d / "l.csv", index=False)
        (d / "c.yaml").write_text(
            "network: {buses: b.csv, branches: l.csv, base_mva: 1.0}\n"
            "profiles: {source: csv, file: x.csv, series: {load: {kind: load, column: l}, pv: {kind: pv, column: p}}}\n"
            "candidates: {sites: [{bus: 3, tech: pv, max_mw: 0.5, capex_usd_per_mw: 1000}]}\n"
            "economics: {purchase_price_usd_per_mwh: [50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50, 50]}\n"
        )
        case = load_case(d / "c.yaml")
        typical = pd.DataFrame([{"scenario": 0, "hour": h, "series": s, "value": 0.5} for h in range(24) for s in ("load", "pv")])
        weights = pd.DataFrame({"scenario": [0], "days": [365]})
        data = plan_data(case, case_feeder(case), typical, weights)
        model = build_plan_model(data)
        solve_conic(model.problem)
        made = tables(data, model.solution(), np.ones((3, 24)), no_investment_baseline(data))
        out = {name: list(df.columns) for name, df in made.items()}
        from dataclasses import replace

        from adnstudy.stages.plan import microgrid_exchange_table

        with_mg = replace(data, mg_names=("a",), mg_pos=np.array([2]), mg_export=np.zeros((1, data.n_snap)))
        out["microgrid_exchange"] = list(microgrid_exchange_table(with_mg).columns)
        out["existing"] = existing_columns()
        return out


def existing_columns() -> list[str]:
    """Columns of the ``existing`` table of plan and dispatch (one builder: results/tables.py)."""
    from dataclasses import replace

    from adnstudy.network.feeder import empty_generators
    from adnstudy.results.tables import existing_table, scenario_index

    feeder, *_ = ieee33_peak()
    gens = pd.concat([empty_generators(), pd.DataFrame({
        "gen": [1], "name": ["g"], "bus": [3], "tech": ["pv"], "p_mw": [0.5], "q_mvar": [0.0], "profile": [""],
        "curtailable": [False]})])
    one = np.ones((1, 24))
    return list(existing_table(replace(feeder, generators=gens), scenario_index(np.array([0]), 24), one, one,
                               0 * one).columns)


def reliability_tables() -> dict[str, list[str]]:
    from adnstudy.reliability.data import ReliabilityData
    from adnstudy.reliability.evaluate import evaluate
    from adnstudy.reliability.evaluate import reliability_tables as tables

    feeder, *_ = ieee33_peak()
    rd = ReliabilityData(
        feeder=feeder, rate=np.full(feeder.n_branch, 0.1), repair_h=np.full(feeder.n_branch, 5.0),
        device=np.array(["breaker"] + ["none"] * (feeder.n_branch - 1)), switching_h=1.0, ties=[],
        customers=feeder.buses["customers"].to_numpy(float), load_avg_mw=feeder.buses["p_mw"].to_numpy(),
        site_pos=np.empty(0, dtype=int), site_credit=np.empty(0),
    )
    return {name: list(df.columns) for name, df in tables(rd, evaluate(rd), {}).items()}


def plan_all_tables() -> dict[str, list[str]]:
    return {**plan_tables(), **reliability_tables()}


def dispatch_tables() -> dict[str, list[str]]:
    """Columns of the dispatch tables, from two MGs on a 3-bus feeder for one day."""
    import tempfile

    from adnstudy.checks import case_feeder
    from adnstudy.config.load import load_case
    from adnstudy.data.typical import typical_days
    from adnstudy.problems.dispatch import dispatch_days
    from adnstudy.stages.dispatch import _tables, solve_day

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        pd.DataFrame({"bus": [1, 2, 3], "base_kv": 11.0, "p_mw": [0, 0.3, 0.2], "q_mvar": [0, 0.1, 0.1]}).to_csv(d / "b.csv", index=False)
        pd.DataFrame({"from_bus": [1, 2], "to_bus": [2, 3], "r_ohm": 0.5, "x_ohm": 0.4}).to_csv(d / "l.csv", index=False)
        prices = "[" + ", ".join(["50"] * 12 + ["90"] * 12) + "]"
        (d / "c.yaml").write_text(
            "network: {buses: b.csv, branches: l.csv, base_mva: 1.0, v_min_pu: 0.9, v_max_pu: 1.1}\n"
            "profiles: {source: csv, file: x.csv, series: {load: {kind: load, column: l}, pv: {kind: pv, column: p}}}\n"
            f"economics: {{purchase_price_usd_per_mwh: {prices}, sell_price_usd_per_mwh: {prices.replace('50', '20').replace('90', '20')}, "
            "wholesale_price_usd_per_mwh: 40}\n"
            "market: {}\n"
            "candidates: {sites: [{bus: 3, tech: pv, max_mw: 0.5, capex_usd_per_mw: 1000}, "
            "{bus: 2, tech: storage, max_mw: 0.1, energy_mwh_per_mw: 2, capex_usd_per_mw: 1000}]}\n"
            "microgrids:\n"
            "  - {name: a, bus: 2, load_peak_mw: 0.2, pv_mw: 0.4, pcc_limit_mw: 0.5, storage: {power_mw: 0.1, energy_mwh: 0.2}}\n"
            "  - {name: b, bus: 3, load_peak_mw: 0.3, pcc_limit_mw: 0.5, generator: {p_max_mw: 0.2, cost_b_usd_per_mwh: 30}}\n"
        )
        case = load_case(d / "c.yaml")
        pv = np.clip(np.sin((np.arange(24) - 6) / 12 * np.pi), 0, None)
        typical = pd.DataFrame([{"scenario": 0, "hour": h, "series": s, "value": v}
                                for h in range(24) for s, v in (("load", 0.7), ("pv", pv[h]))])
        weights = pd.DataFrame({"scenario": [0], "days": [365]})
        from adnstudy.problems.dispatch import planned_assets

        feeder, td = case_feeder(case), typical_days(case, typical, weights)
        plan = pd.DataFrame({"bus": [3, 2], "tech": ["pv", "storage"], "build": [True, True], "capacity_mw": [0.2, 0.1]})
        days = dispatch_days(case, feeder, td, planned_assets(case, feeder, td, plan, "plan"))
        return {**{name: list(df.columns) for name, df in _tables([solve_day(days[0], case)], 5e-5).items()},
                "existing": existing_columns()}


def coplan_tables() -> dict[str, list[str]]:
    """Columns of the coplan tables, from the tiny co-planning case (cluster and coplan, about 10 s)."""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        case = ROOT / "tests" / "cases" / "coplan" / "case.yaml"
        for stage in ("cluster", "coplan"):
            res = subprocess.run([sys.executable, "-m", "adnstudy", stage, str(case), "--out", tmp],
                                 capture_output=True, text=True)
            assert res.returncode == 0, res.stderr
        return {p.stem: list(pd.read_parquet(p).columns) for p in (Path(tmp) / "coplan").glob("*.parquet")}


#: stage → function returning {table: columns}; add later stages here.
STAGE_TABLES: dict[str, Callable[[], dict[str, list[str]]]] = {
    "powerflow": powerflow_tables,
    "cluster": cluster_tables,
    "plan": plan_all_tables,
    "reliability": reliability_tables,
    "dispatch": dispatch_tables,
    "coplan": cache(coplan_tables),
}


@pytest.mark.parametrize("stage", sorted(STAGE_TABLES))
def test_stage_writes_the_tables_it_declares(stage: str):
    """The registry's declaration (which the results store enforces) is what the stage's table builders make."""
    declared = next(s for s in STAGES if s.name == stage)
    made = set(STAGE_TABLES[stage]())
    assert set(declared.tables) <= made <= set(declared.tables) | set(declared.optional_tables)


def test_every_stage_has_its_tables_checked():
    assert set(STAGE_TABLES) == {s.name for s in STAGES}


@pytest.mark.parametrize("stage", sorted(STAGE_TABLES))
def test_results_doc_has_every_column(stage: str):
    for table, columns in STAGE_TABLES[stage]().items():
        key = f"{stage}/{table}.parquet"
        body = find_section(results_doc(), key)
        assert body is not None, f"docs/results.md has no heading `{key}`"
        missing = [c for c in columns if c not in row_names(body)]
        assert not missing, f"docs/results.md, `{key}`: no row for columns {missing}"


@pytest.fixture(scope="module")
def powerflow_manifest(tmp_path_factory) -> dict:
    from adnstudy.config.load import load_case
    from adnstudy.results.store import read_manifest
    from adnstudy.stages.powerflow import powerflow_stage

    out = tmp_path_factory.mktemp("results")
    powerflow_stage(load_case(ROOT / "cases" / "ieee33.yaml"), out)
    manifest = read_manifest(out, "powerflow")
    assert manifest is not None
    return manifest


def test_powerflow_writes_the_documented_tables(powerflow_manifest):
    assert set(powerflow_manifest["tables"]) == set(powerflow_tables())
    text = RESULTS_DOC.read_text(encoding="utf-8")
    for fig in powerflow_manifest["figures"]:
        assert f"`powerflow/{fig}.png`" in text


def test_results_doc_has_every_manifest_key(powerflow_manifest):
    from adnstudy.stages.powerflow import summarise

    text = RESULTS_DOC.read_text(encoding="utf-8")
    keys = set(powerflow_manifest) | {f"case.{k}" for k in powerflow_manifest["case"]}
    keys |= {f"solver.{k}" for k in powerflow_manifest["solver"]}
    # year mode adds summary keys; summarise() gives them without reading a year of profiles
    feeder, res, _, _ = ieee33_peak()
    hourly = pd.DataFrame(
        {
            "p_loss_mw": [0.1],
            "q_loss_mvar": [0.1],
            "v_min_pu": [0.95],
            "v_min_bus": np.array([2]),
            "p_import_mw": [1.0],
        }
    )
    keys |= {f"summary.{k}" for k in summarise(feeder, hourly, "year")}
    missing = sorted(k for k in keys if f"`{k}`" not in text)
    assert not missing, f"docs/results.md does not name manifest keys {missing}"


# ------------------------------------------------------------------ docs that quote the tool
def test_results_doc_has_no_placeholders():
    text = RESULTS_DOC.read_text(encoding="utf-8")
    for placeholder in ("to be added", "to come", "TODO"):
        assert placeholder not in text, f"docs/results.md still says '{placeholder}'"


def test_case_doc_quotes_the_shipped_candidates():
    """docs/case.md's table of the ieee33 candidates gives the case file's costs (it said PV 900,000 USD/MW)."""
    from adnstudy.config.load import load_case

    sites = load_case(ROOT / "cases" / "ieee33.yaml").config.candidates.sites
    text = CASE_DOC.read_text(encoding="utf-8")
    for tech in ("pv", "wind"):
        row = re.search(rf"^\s*\| {tech} \| ([\d, ]+) \|[^|]*\| ([\d,]+) \| ([\d,]+) \| (\d+) \|", text, re.MULTILINE)
        assert row is not None, f"docs/case.md: no candidate row for {tech}"
        ours = [s for s in sites if s.tech == tech]
        assert [int(b) for b in row.group(1).split(",")] == [s.bus for s in ours]
        doc = (float(row.group(2).replace(",", "")), float(row.group(3).replace(",", "")), int(row.group(4)))
        assert {(s.capex_usd_per_mw, s.fixed_capex_usd, s.lifetime_yr) for s in ours} == {doc}


def test_readme_json_example_is_what_the_cli_prints(tmp_path):
    from typer.testing import CliRunner

    from adnstudy.cli import app

    line = next(x for x in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
                if x.startswith("adnstudy powerflow cases/ieee33.yaml --json"))
    shown = line.split("#", 1)[1].strip()
    result = CliRunner().invoke(app, ["powerflow", str(ROOT / "cases" / "ieee33.yaml"), "--json", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == shown
