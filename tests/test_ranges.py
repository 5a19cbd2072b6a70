"""Extreme values are input errors: every number of a case, its feeder tables and profile files has a range.

Each example of issue 11 ("Extreme values pass and produce nonsense") fails
with exit 2 and a message naming the field (or file, line and column) and the
range: ``base_mva: 1e308``, ``failure_rate_per_yr: 1e308``, ``max_mw:
1e-320``, an ``inf`` in a profile CSV, ``k: true``; so do ``--time-limit`` of 0,
-5, nan and inf and an unknown ``solver.options`` key. The shipped cases and the
test cases still validate (the ranges are not too tight), and docs/case.md
states every range (checked against the schema, not copied by hand).
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_docs import SCHEMA_MODELS, TOP_LEVEL, case_doc, find_section
from typer.testing import CliRunner, Result

from adnstudy.cli import app
from adnstudy.config.schema import field_range
from adnstudy.network.feeder import COLUMN_RANGES

ROOT = Path(__file__).resolve().parents[1]
IEEE33 = ROOT / "cases" / "ieee33.yaml"
SMALL = ROOT / "tests" / "cases" / "small"
runner = CliRunner()


#: SCIP is an optional extra (adnstudy[bench]); its option checks run where it is installed.
HAVE_SCIP = importlib.util.find_spec("pyscipopt") is not None
NEEDS_SCIP = pytest.mark.skipif(not HAVE_SCIP, reason="PySCIPOpt is not installed (pip install 'adnstudy[bench]')")


def invoke(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def error_line(result: Result) -> str:
    """The one error line of a command that failed on its input (exit 2, no traceback)."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def over_ieee33(tmp_path: Path, text: str) -> Path:
    """A case that is the shipped 33-bus case with ``text`` merged on top (from line 2 on)."""
    case = tmp_path / "case.yaml"
    case.write_text(f"defaults: {IEEE33}\n{text}", encoding="utf-8")
    return case


# ------------------------------------------------------------------ the case file
@pytest.mark.parametrize(
    "text, field, reason",
    [
        ("network: {base_mva: 1e308}\n", "network.base_mva", "Input should be from 0.1 to 1,000 MVA (got '1e308')"),
        ("reliability: {failure_rate_per_yr: 1e308}\n", "reliability.failure_rate_per_yr",
         "Input should be above 0 and at most 100 failures/yr (got '1e308')"),
        ("candidates: {sites: [{bus: 7, tech: pv, max_mw: 1e-320, capex_usd_per_mw: 1000}]}\n",
         "candidates.sites[0].max_mw", "Input should be from 0.001 to 1,000 MW (got '1e-320')"),
        ("candidates: {sites: [{bus: 7, tech: pv, min_mw: 1.0e-9, max_mw: 1, capex_usd_per_mw: 1000}]}\n",
         "candidates.sites[0].min_mw", "Input should be 0 or from 0.001 to 1,000 MW (got 1e-09)"),
        ("clustering: {k: true}\n", "clustering.k", "expected a number, not a boolean (got True)"),
        ("clustering: {k: 5000}\n", "clustering.k", "Input should be from 1 to 1,000 (got 5000)"),
        ("network: {v_max_pu: false}\n", "network.v_max_pu", "expected a number, not a boolean"),
        ("network: {v_min_pu: .inf}\n", "network.v_min_pu", "Input should be a finite number (got inf)"),
        ("economics: {purchase_price_usd_per_mwh: [" + ", ".join(["40"] * 23 + ["1.0e9"]) + "]}\n",
         "economics.purchase_price_usd_per_mwh[23]", "Input should be from 0 to 100,000 USD/MWh (got '1.0e9')"),
        ("economics: {purchase_price_usd_per_mwh: [true" + ", 40" * 23 + "]}\n",
         "economics.purchase_price_usd_per_mwh[0]", "expected a number, not a boolean"),
        ("solver: {time_limit_s: 0}\n", "solver.time_limit_s", "Input should be from 0.01 to 1e7 s (got 0)"),
        ("solver: {time_limit_s: .inf}\n", "solver.time_limit_s", "Input should be a finite number (got inf)"),
        ("solver: {threads: true}\n", "solver.threads", "expected a number, not a boolean"),
        ("reliability: {sectionalisers: [[8, 1000000000000]]}\n", "reliability.sectionalisers[0][1]",
         "Input should be from 1 to 1e9"),
    ],
    ids=["base_mva", "failure_rate", "max_mw_denormal", "min_mw_tiny", "k_true", "k_huge", "v_max_false",
         "v_min_inf", "price_huge", "price_true", "time_limit_zero", "time_limit_inf", "threads_true", "bus_id_huge"],
)
def test_extreme_value_in_the_case_is_an_error_naming_the_field_and_range(
    tmp_path: Path, text: str, field: str, reason: str
) -> None:
    case = over_ieee33(tmp_path, text)
    assert error_line(invoke("validate", case)).startswith(f"error: {case}:2: {field}: {reason}")


@pytest.mark.parametrize("case", [IEEE33, ROOT / "cases" / "ieee69.yaml", *sorted((ROOT / "tests").rglob("*.yaml"))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_and_test_cases_are_within_the_ranges(case: Path) -> None:
    result = invoke("validate", case)
    assert result.exit_code == 0, result.output


def test_every_value_at_its_bounds_is_accepted(tmp_path: Path) -> None:
    """The bounds themselves are plausible values (a closed range includes its ends)."""
    case = over_ieee33(tmp_path, "network: {base_mva: 1000, v_min_pu: 0.5, v_max_pu: 1.5}\n"
                                 "reliability: {failure_rate_per_yr: 100, repair_h: 1000}\n"
                                 "clustering: {k: 8, max_iter: 1000000}\n")
    from adnstudy.config.load import load_case

    cfg = load_case(case).config
    assert cfg.network.base_mva == 1000 and cfg.reliability.failure_rate_per_yr == 100


# ------------------------------------------------------------------ feeder tables and profile files
@pytest.fixture
def small(tmp_path: Path) -> Path:
    """A copy of tests/cases/small (feeder CSVs of its own) with a CSV profile file of four days."""
    folder = tmp_path / "small"
    shutil.copytree(SMALL, folder)
    times = pd.date_range("2021-01-01", periods=96, freq="h")
    hour = times.hour.to_numpy()
    pd.DataFrame({"time": times.strftime("%Y-%m-%d %H:%M"), "load": 0.5 + 0.3 * np.sin(hour / 24 * 2 * np.pi),
                  "pv": np.clip(np.sin((hour - 6) / 12 * np.pi), 0, None).round(4)}).to_csv(folder / "p.csv",
                                                                                            index=False)
    (folder / "case.yaml").write_text(
        "network: {buses: buses.csv, branches: branches.csv, base_mva: 1.0}\n"
        "profiles: {source: csv, file: p.csv, series: {load: {kind: load, column: load}, pv: {kind: pv, column: pv}}}\n",
        encoding="utf-8",
    )
    return folder


def set_cell(path: Path, line: int, column: str, value: str) -> None:
    """Write ``value`` in ``column`` at file line ``line`` of a CSV file (the header is line 1)."""
    rows = path.read_text(encoding="utf-8").splitlines()
    head = rows[0].split(",")
    cells = rows[line - 1].split(",")
    cells[head.index(column)] = value
    rows[line - 1] = ",".join(cells)
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def test_small_copy_validates(small: Path) -> None:
    assert invoke("validate", small / "case.yaml").exit_code == 0


@pytest.mark.parametrize(
    "file, line, column, value, reason",
    [
        ("buses.csv", 3, "p_mw", "1e308", "bus 2: p_mw must be from -1,000 to 1,000 MW (got 1e+308)"),
        ("buses.csv", 3, "base_kv", "1e-30", "base_kv must be from 0.1 to 1,000 kV (got 1e-30)"),
        ("buses.csv", 3, "customers", "1e12", "bus 2: customers must be from 0 to 1e7 (got 1e+12)"),
        ("branches.csv", 3, "r_ohm", "1e-9", "row 2: r_ohm must be from 1e-6 to 1,000 Ω (got 1e-09)"),
        ("branches.csv", 2, "from_bus", "1e300", "row 1: from_bus must be from 1 to 1e9 (got 1e+300)"),
        ("branches.csv", 2, "length_km", "1e308", "row 1: length_km must be from 1e-4 to 1,000 km (got 1e+308)"),
        ("p.csv", 5, "load", "inf", "row 4: 'inf' is not a finite number (series 'load')"),
        ("p.csv", 5, "pv", "-inf", "row 4: '-inf' is not a finite number (series 'pv')"),
        ("p.csv", 5, "load", "1e300", "row 4: 1e+300 is beyond 1e+12 in magnitude"),
    ],
    ids=["p_mw", "base_kv", "customers", "r_ohm", "bus_id", "length", "profile_inf", "profile_minus_inf",
         "profile_huge"],
)
def test_extreme_value_in_a_table_names_file_line_and_column(
    small: Path, file: str, line: int, column: str, value: str, reason: str
) -> None:
    set_cell(small / file, line, column, value)
    message = error_line(invoke("validate", small / "case.yaml"))
    assert message.startswith(f"error: {small / file}:{line}: {column}: ")
    assert reason in message


def test_true_false_is_not_a_number_in_a_table(small: Path) -> None:
    buses = pd.read_csv(small / "buses.csv")
    buses["p_mw"] = True
    buses.to_csv(small / "buses.csv", index=False)
    assert error_line(invoke("validate", small / "case.yaml")) == (
        f"error: {small / 'buses.csv'}:2: p_mw: row 1: 'True' is not a number")
    profile = pd.read_csv(small / "p.csv")
    shutil.copy(SMALL / "buses.csv", small / "buses.csv")
    profile["load"] = [True, False] * 48
    profile.to_csv(small / "p.csv", index=False)
    assert error_line(invoke("validate", small / "case.yaml")) == (
        f"error: {small / 'p.csv'}:2: load: row 1: 'True' is not a number (series 'load')")


def test_profile_values_out_of_plausible_pu_and_price_ranges(small: Path) -> None:
    case = small / "case.yaml"
    case.write_text(case.read_text().replace("column: load}", "column: load, normalise: none}"), encoding="utf-8")
    set_cell(small / "p.csv", 5, "load", "50")  # fifty times the buses' peak loads
    message = error_line(invoke("validate", case))
    assert "profiles.series.load.normalise: a load series with normalise: none" in message and "max 50" in message
    set_cell(small / "p.csv", 5, "load", "0.5")
    text = case.read_text().replace("pv: {kind: pv, column: pv}",
                                    "pv: {kind: pv, column: pv}, spot: {kind: price, column: spot}")
    case.write_text(text + "economics: {purchase_price_usd_per_mwh: spot}\n", encoding="utf-8")
    profile = pd.read_csv(small / "p.csv")
    profile["spot"] = 50.0
    profile.loc[3, "spot"] = 2e6
    profile.to_csv(small / "p.csv", index=False)
    message = error_line(invoke("validate", case))
    assert "profiles.series.spot.column: a price series is in USD/MWh, at most 100,000" in message


# ------------------------------------------------------------------ --time-limit and solver.options
@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "-inf", "1e308"])
def test_time_limit_must_be_a_plausible_number_of_seconds(tmp_path: Path, value: str) -> None:
    out = tmp_path / "out"
    message = error_line(invoke("plan", IEEE33, "--out", out, "--time-limit", value))
    assert message.startswith("error: --time-limit: must be a number of seconds from 0.01 to 1e7 (got ")
    assert not (out / "plan").exists()


@pytest.mark.parametrize(
    "solver, key, named",
    [
        ("{options: {max_itr: 50}}", "max_itr", "not a setting of Clarabel, the default strategy's solver; "
         "did you mean max_iter"),
        pytest.param("{name: SCIP, options: {limits/tme: 60}}", "limits/tme",
                     "not a parameter of SCIP; did you mean limits/time", marks=NEEDS_SCIP),
        ("{name: ECOS_BB, options: {max_iter: 50}}", "max_iter", "not an option of ECOS_BB; did you mean max_iters"),
    ],
    ids=["clarabel", "scip", "ecos_bb"],
)
def test_unknown_solver_option_is_named_with_the_known_ones(tmp_path: Path, solver: str, key: str,
                                                            named: str) -> None:
    case = over_ieee33(tmp_path, f"solver: {solver}\n")
    message = error_line(invoke("validate", case))
    assert message.startswith(f"error: {case}:2: solver.options.{key}: {named}")
    if "SCIP" not in solver:  # a short list: all of them (SCIP's thousands: how they are named)
        assert ("its settings: " in message or "its options: " in message) and ("tol_gap_rel" in message or "mi_rel_eps" in message)


def test_solver_option_of_the_wrong_type_is_an_error(tmp_path: Path) -> None:
    case = over_ieee33(tmp_path, "solver: {name: ECOS_BB, options: {max_iters: 2.5}}\n")
    assert error_line(invoke("validate", case)) == (
        f"error: {case}:2: solver.options.max_iters: ECOS_BB's max_iters cannot be 2.5")


@NEEDS_SCIP
def test_options_are_checked_for_the_solver_of_the_command_line(tmp_path: Path) -> None:
    """Clarabel's max_iter in the case goes to SCIP with --solver SCIP: no SCIP parameter has that name."""
    case = over_ieee33(tmp_path, "solver: {options: {max_iter: 50}}\n")
    out = tmp_path / "out"
    message = error_line(invoke("plan", case, "--out", out, "--solver", "SCIP"))
    assert message.startswith(f"error: {case}:2: solver.options.max_iter: not a parameter of SCIP")
    assert not (out / "plan").exists()


def test_known_solver_options_pass(tmp_path: Path) -> None:
    solvers = ["{options: {max_iter: 300, tol_gap_rel: 1.0e-7}}",
               "{name: ECOS_BB, options: {mi_max_iters: 1000, mi_rel_eps: 1.0e-3}}"]
    if HAVE_SCIP:
        solvers.append("{name: SCIP, options: {limits/nodes: 1000}}")
    for solver in solvers:
        result = invoke("validate", over_ieee33(tmp_path, f"solver: {solver}\n"))
        assert result.exit_code == 0, (solver, result.output)


# ------------------------------------------------------------------ docs/case.md states the ranges
def test_case_doc_states_every_range_of_the_schema() -> None:
    missing = []
    for path, model in SCHEMA_MODELS.items():
        body = find_section(case_doc(), path or TOP_LEVEL, code=bool(path)) or ""
        rows = {line.split("`")[1]: line for line in body.splitlines() if line.startswith("| `")}
        for name, info in model.model_fields.items():
            rng = field_range(info)
            if rng is not None and rng.text() not in rows.get(name, ""):
                missing.append(f"{path}.{name}: {rng.text()}")
    assert not missing, f"docs/case.md does not state these ranges: {missing}"


def test_case_doc_states_every_range_of_the_feeder_tables() -> None:
    body = (find_section(case_doc(), "Bus table", code=False) or "") + (
        find_section(case_doc(), "Branch table", code=False) or "")
    rows = {line.split("`")[1]: line for line in body.splitlines() if line.startswith("| `")}
    missing = [f"{col}: {rng.text()}" for col, rng in COLUMN_RANGES.items() if rng.text() not in rows.get(col, "")]
    assert not missing, f"docs/case.md, feeder tables, does not state these ranges: {missing}"


def test_outage_data_beyond_a_year_is_an_error(tmp_path: Path) -> None:
    """Rates and repair times each in range, but together longer outages than a year has (ASAI < 0 before)."""
    case = over_ieee33(tmp_path, "reliability: {failure_rate_per_yr: 90, repair_h: 900}\n")
    line = error_line(invoke("validate", case))
    assert line.startswith(f"error: {case}:2: reliability: ") and "would be without supply" in line
    assert "more than the 8,760 hours a year has" in line
