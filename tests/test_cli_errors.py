"""The bad-input contract of the command line, proved through the real CLI.

Every bad case gets ONE line on stderr (``error: FILE[:LINE]: FIELD: what is wrong``),
exit code 2, no traceback, and nothing written to the ``--out`` folder (no stage
folder, no hidden temporary folder). A computation that fails on a valid input
(a power flow that cannot converge) exits 1 with the cause. Nothing here solves an
optimisation; the only power flow run is the one that fails at its first sweep.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from adnstudy import __version__
from adnstudy.cli import app

ROOT = Path(__file__).resolve().parents[1]
FEEDER = ROOT / "adnstudy" / "data" / "feeders" / "ieee33"
SHIPPED_CASES = (ROOT / "cases" / "ieee33.yaml", ROOT / "cases" / "ieee69.yaml")
DEFAULTS = ROOT / "configs" / "defaults.yaml"
MINIMAL = "network: {feeder: ieee33}\n"
USER_FEEDER = "network: {buses: b.csv, branches: l.csv}\n"

runner = CliRunner()

#: How each command is called on a case: validate reads everything, powerflow and
#: run write to --out, powerflow --year also reads the profiles.
COMMANDS = {
    "validate": ("validate",),
    "powerflow": ("powerflow", "--out", "{out}"),
    "run": ("run", "--out", "{out}"),
    "powerflow-year": ("powerflow", "--year", "--out", "{out}"),
}
CASE_COMMANDS = ("validate", "powerflow", "run")
FEEDER_COMMANDS = ("validate", "powerflow")
PROFILE_COMMANDS = ("validate", "powerflow-year")


# ----------------------------------------------------------------------------- helpers
@pytest.fixture
def study(tmp_path: Path) -> Study:
    return Study(tmp_path.resolve())


class Study:
    """A folder with a case file, the tables it refers to, and an --out folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.case = folder / "case.yaml"
        self.out = folder / "out"

    def write(self, name: str, text: str | bytes) -> Path:
        path = self.folder / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path

    def user_feeder(self, buses: str | None = None, branches: str | None = None) -> None:
        """The shipped 33-bus tables as a user feeder b.csv / l.csv (optionally replaced)."""
        self.write("b.csv", buses if buses is not None else bus_table())
        self.write("l.csv", branches if branches is not None else branch_table())
        self.write("case.yaml", USER_FEEDER)

    def cli(self, command: str) -> Result:
        """Run a command of COMMANDS on the case (``--out`` is this study's out folder)."""
        args = [a.format(out=self.out) for a in COMMANDS[command]]
        return runner.invoke(app, [*args, str(self.case)])


def bus_table() -> str:
    return (FEEDER / "buses.csv").read_text(encoding="utf-8")


def branch_table() -> str:
    return (FEEDER / "branches.csv").read_text(encoding="utf-8")


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} is not in the template exactly once"
    return text.replace(old, new)


def line_of(text: str, fragment: str) -> int:
    """1-based line of the only line containing ``fragment``."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if fragment in line]
    assert len(hits) == 1, f"{fragment!r} is on lines {hits}"
    return hits[0]


def shipped_case(**replacements: str) -> str:
    """cases/ieee33.yaml with its defaults made absolute and the given lines replaced."""
    text = (ROOT / "cases" / "ieee33.yaml").read_text(encoding="utf-8")
    text = replace_once(text, "defaults: ../configs/defaults.yaml", f"defaults: {DEFAULTS}")
    for old, new in replacements.items():
        text = replace_once(text, old, new)
    return text


def hourly_csv(values: list[float | str], *, step_min: int = 60) -> str:
    """A profile CSV with a ``time`` and a ``load`` column, one row per value."""
    start = dt.datetime(2021, 1, 1)
    rows = [
        f"{start + dt.timedelta(minutes=step_min * i):%Y-%m-%d %H:%M},{v}"
        for i, v in enumerate(values)
    ]
    return "\n".join(["time,load", *rows]) + "\n"


def day_shape(hours: int = 48) -> list[float | str]:
    return [round(0.4 + 0.6 * ((h % 24) / 23), 4) for h in range(hours)]


CSV_PROFILES = """\
network: {feeder: ieee33}
profiles:
  source: csv
  file: p.csv
  series:
    load: {kind: load, column: load}
"""


def assert_nothing_written(out: Path) -> None:
    """No stage folder and no hidden temporary folder: the folder is absent or empty."""
    if out.exists():
        assert sorted(p.name for p in out.iterdir()) == []


def assert_error(result: Result, *fragments: str, out: Path | None = None, code: int = 2) -> str:
    """The contract: exit code, one ``error:`` line holding every fragment, no traceback."""
    assert result.exit_code == code, f"exit {result.exit_code}, expected {code}:\n{result.output}"
    # exited on purpose: an exception that escaped the CLI would be stored here instead
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.stdout == "", f"nothing on stdout for a failure, got {result.stdout!r}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"one message expected, got:\n{result.stderr}"
    message = lines[0]
    assert message.startswith("error: ")
    if code == 2:
        assert "internal error" not in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    if out is not None:
        assert_nothing_written(out)
    return message


def where(file: Path, line: int | None, field: str | None = None) -> str:
    """How a message starts after ``error: ``: FILE[:LINE][: FIELD]."""
    text = f"{file}:{line}" if line is not None else str(file)
    return f"error: {text}: {field}: " if field else f"error: {text}: "


# -------------------------------------------------------------------------- good paths
@pytest.mark.parametrize("case", SHIPPED_CASES, ids=lambda p: p.stem)
def test_validate_shipped_case(case: Path) -> None:
    result = runner.invoke(app, ["validate", str(case)])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert f"case {case.stem}: valid" in result.stdout
    assert "  profiles: " in result.stdout


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"adnstudy {__version__}"


@pytest.mark.parametrize("command", sorted(typer.main.get_command(app).commands))
def test_help_of_every_command_shows_an_example(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    takes = r"results/\S+" if command in ("report", "export") else r"\S+\.yaml"  # they take a results folder
    assert re.search(rf"Example: adnstudy {command} {takes}", result.stdout), result.stdout


def test_csv_profiles_with_padded_header_are_valid(study: Study) -> None:
    study.write("case.yaml", CSV_PROFILES)
    study.write("p.csv", hourly_csv(day_shape()).replace("time,load", "time, load ", 1))
    result = study.cli("validate")
    assert result.exit_code == 0, result.output
    assert "profiles: load; 48 hours" in result.stdout


# --------------------------------------------------------------------- the case file
@pytest.mark.parametrize("command", CASE_COMMANDS)
def test_case_file_missing(study: Study, command: str) -> None:
    assert_error(study.cli(command), where(study.case, None) + "file not found", out=study.out)


@pytest.mark.parametrize("command", CASE_COMMANDS)
@pytest.mark.parametrize(
    "text, line, reason",
    [
        ("", None, "the file is empty"),
        ("  \n\n", None, "the file is empty"),
        ("# a case to be written\n\n", None, "the file has only comments"),
        ("- network\n- profiles\n", 1, "a case must be a YAML mapping of sections, not a list"),
        ("just some words\n", 1, "a case must be a YAML mapping of sections, not a str"),
    ],
    ids=["empty", "blank", "comments-only", "list", "scalar"],
)
def test_case_file_not_a_mapping(
    study: Study, command: str, text: str, line: int | None, reason: str
) -> None:
    study.write("case.yaml", text)
    assert_error(study.cli(command), where(study.case, line) + reason, out=study.out)


@pytest.mark.parametrize("command", CASE_COMMANDS)
@pytest.mark.parametrize(
    "text, line",
    [
        ("network:\n  feeder: ieee33\n  v_substation_range_pu: [1.0, 1.05\nprofiles: {}\n", 4),
        ("network:\n  feeder: ieee33\n\tbase_mva: 10\n", 3),
        ("name: x\nnetwork: feeder: ieee33\n", 2),
        ("from_bus,to_bus,r_ohm\n1,2,0.1\n2,3,0.2\n", None),
    ],
    ids=["unclosed-list", "tab", "nested-colon", "a-csv-file"],
)
def test_case_file_not_yaml(study: Study, command: str, text: str, line: int | None) -> None:
    study.write("case.yaml", text)
    if line is None:  # a CSV parses as one YAML string
        assert_error(
            study.cli(command),
            where(study.case, 1) + "a case must be a YAML mapping",
            out=study.out,
        )
    else:
        assert_error(
            study.cli(command), where(study.case, line) + "not valid YAML: ", out=study.out
        )


def test_case_file_not_utf8(study: Study) -> None:
    study.write("case.yaml", b"network: {feeder: ieee33}\nname: caf\xe9\n")
    assert_error(
        study.cli("validate"), where(study.case, None) + "cannot read file (", out=study.out
    )


@pytest.mark.parametrize("command", CASE_COMMANDS)
def test_repeated_key(study: Study, command: str) -> None:
    study.write("case.yaml", "network:\n  feeder: ieee33\n  v_min_pu: 0.9\n  v_min_pu: 0.93\n")
    assert_error(
        study.cli(command),
        where(study.case, 4, "network.v_min_pu") + "repeated key (first given on line 3)",
        out=study.out,
    )


# ------------------------------------------------------------ types, required, unknown
@pytest.mark.parametrize("command", CASE_COMMANDS)
def test_wrong_type(study: Study, command: str) -> None:
    study.write("case.yaml", "# a comment first\nnetwork:\n  feeder: ieee33\n  v_min_pu: low\n")
    assert_error(
        study.cli(command),
        where(study.case, 4, "network.v_min_pu"),
        "valid number",
        "(got 'low')",
        out=study.out,
    )


def test_wrong_type_in_flow_mapping(study: Study) -> None:
    study.write("case.yaml", 'network: {feeder: ieee33, v_min_pu: "low"}\n')
    assert_error(
        study.cli("validate"),
        where(study.case, 1, "network.v_min_pu"),
        "valid number",
        "(got 'low')",
    )


def test_section_of_wrong_type(study: Study) -> None:
    study.write("case.yaml", MINIMAL + "candidates: [1, 2]\n")
    assert_error(study.cli("validate"), where(study.case, 2, "candidates"), "valid dictionary")


@pytest.mark.parametrize("command", CASE_COMMANDS)
def test_missing_required_field_in_list_item(study: Study, command: str) -> None:
    text = MINIMAL + (
        "candidates:\n"
        "  sites:\n"
        "    - {bus: 7, tech: pv, max_mw: 1.0, capex_usd_per_mw: 900000}\n"
        "    - {bus: 14, tech: pv, capex_usd_per_mw: 900000}\n"
    )
    study.write("case.yaml", text)
    assert_error(
        study.cli(command),
        where(study.case, 5, "candidates.sites[1].max_mw") + "required field is missing",
        out=study.out,
    )


def test_missing_network_section(study: Study) -> None:
    study.write("case.yaml", "name: nothing_here\n")
    assert_error(
        study.cli("validate"), where(study.case, None, "network") + "required field is missing"
    )


@pytest.mark.parametrize("command", CASE_COMMANDS)
def test_unknown_field(study: Study, command: str) -> None:
    study.write("case.yaml", "name: typo\nnetwork:\n  feedr: ieee33\n")
    assert_error(
        study.cli(command), where(study.case, 3, "network.feedr") + "unknown field", out=study.out
    )


def test_unknown_field_flow_style(study: Study) -> None:
    study.write("case.yaml", "network: {feedr: ieee33}\n")
    assert_error(study.cli("validate"), where(study.case, 1, "network.feedr") + "unknown field")


@pytest.mark.parametrize("command", CASE_COMMANDS)
def test_unknown_field_in_list_item(study: Study, command: str) -> None:
    # the misspelt required field is also "missing"; the message must name the misspelling
    text = MINIMAL + (
        "candidates:\n"
        "  sites:\n"
        "    - {bus: 7, tech: pv, max_mw: 1.0, capex_usd_per_mw: 900000}\n"
        "    - bus: 14\n"
        "      tech: pv\n"
        "      max_mw: 1.0\n"
        "      capex_usd_per_mv: 900000\n"
    )
    study.write("case.yaml", text)
    assert_error(
        study.cli(command),
        where(study.case, 8, "candidates.sites[1].capex_usd_per_mv") + "unknown field",
        out=study.out,
    )


def test_unknown_field_in_shipped_case(study: Study) -> None:
    text = shipped_case(
        **{"storage: {power_mw: 0.2, energy_mwh: 0.8,": "storage: {power_mw: 0.2, energy_mw: 0.8,"}
    )
    study.write("case.yaml", text)
    line = line_of(text, "energy_mw: 0.8")
    assert_error(
        study.cli("powerflow"),
        where(study.case, line, "microgrids[0].storage.energy_mw") + "unknown field",
        out=study.out,
    )


# ------------------------------------------------------------------ values out of range
@pytest.mark.parametrize("command", CASE_COMMANDS)
@pytest.mark.parametrize(
    "value, reason",
    [
        (".nan", "finite number (got nan)"),
        (".inf", "finite number (got inf)"),
        ("-10", "from 0.1 to 1,000 MVA (got -10)"),
        ("0", "from 0.1 to 1,000 MVA (got 0)"),
    ],
    ids=["nan", "inf", "negative", "zero"],
)
def test_base_mva_must_be_positive_and_finite(
    study: Study, command: str, value: str, reason: str
) -> None:
    study.write("case.yaml", f"network:\n  feeder: ieee33\n  base_mva: {value}\n")
    assert_error(
        study.cli(command),
        where(study.case, 3, "network.base_mva") + "Input should be",
        reason,
        out=study.out,
    )


def test_negative_capex(study: Study) -> None:
    site = "{bus: 17, tech: wind, max_mw: 0.8, capex_usd_per_mw: 1300000,"
    text = shipped_case(**{site: site.replace("1300000", "-1300000")})
    study.write("case.yaml", text)
    assert_error(
        study.cli("run"),
        where(study.case, line_of(text, "-1300000"), "candidates.sites[6].capex_usd_per_mw"),
        "from 0 to 1e9 USD/MW (got -1300000)",
        out=study.out,
    )


def test_nan_in_list_of_prices(study: Study) -> None:
    prices = ", ".join(["40"] * 23 + [".nan"])
    study.write("case.yaml", MINIMAL + f"economics:\n  purchase_price_usd_per_mwh: [{prices}]\n")
    assert_error(
        study.cli("validate"),
        where(study.case, 3, "economics.purchase_price_usd_per_mwh[23]"),
        "finite number (got nan)",
    )


@pytest.mark.parametrize("command", CASE_COMMANDS)
@pytest.mark.parametrize("v_min, v_max", [(1.05, 0.95), (1.0, 1.0)], ids=["reversed", "equal"])
def test_v_min_not_below_v_max(study: Study, command: str, v_min: float, v_max: float) -> None:
    study.write(
        "case.yaml",
        f"name: volts\nnetwork:\n  feeder: ieee33\n  v_min_pu: {v_min}\n  v_max_pu: {v_max}\n",
    )
    # at the line of the field, not of the section (issue 10)
    assert_error(
        study.cli(command),
        where(study.case, 4, "network.v_min_pu") + f"v_min_pu ({v_min}) must be below v_max_pu ({v_max})",
        out=study.out,
    )


# ----------------------------------------------------------------------- unknown buses
@pytest.mark.parametrize("command", FEEDER_COMMANDS)
def test_branch_to_unknown_bus(study: Study, command: str) -> None:
    branches = replace_once(branch_table(), "32,33,0.3410", "32,34,0.3410")
    study.user_feeder(branches=branches)
    assert_error(
        study.cli(command),
        where(study.folder / "l.csv", line_of(branches, "32,34,"), "to_bus"),
        "bus 34 is not in the bus table b.csv",
        out=study.out,
    )


@pytest.mark.parametrize("command", FEEDER_COMMANDS)
def test_microgrid_at_unknown_bus(study: Study, command: str) -> None:
    text = shipped_case(**{"    bus: 33\n": "    bus: 40\n"})
    study.write("case.yaml", text)
    assert_error(
        study.cli(command),
        where(study.case, line_of(text, "bus: 40"), "microgrids[2].bus"),
        "bus 40 is not on feeder ieee33",
        out=study.out,
    )


@pytest.mark.parametrize("command", CASE_COMMANDS)
def test_candidate_at_unknown_bus(study: Study, command: str) -> None:
    text = shipped_case(**{"- {bus: 25, tech: pv,": "- {bus: 125, tech: pv,"})
    study.write("case.yaml", text)
    assert_error(
        study.cli(command),
        where(study.case, line_of(text, "bus: 125"), "candidates.sites[3].bus"),
        "bus 125 is not on feeder ieee33",
        out=study.out,
    )


def test_microgrid_at_the_substation(study: Study) -> None:
    study.write(
        "case.yaml",
        MINIMAL + "microgrids:\n  - {name: a, bus: 1, load_peak_mw: 0.5, pcc_limit_mw: 1}\n",
    )
    assert_error(
        study.cli("validate"), where(study.case, 3, "microgrids[0].bus"), "is the substation"
    )


# ---------------------------------------------------------------------- feeder tables
def _loop_branch(message: str, branches: str) -> None:
    """The line the message gives holds the branch it names as closing the loop."""
    m = re.search(
        r"l\.csv:(\d+): from_bus: the feeder is meshed: branch (\d+)-(\d+) closes a loop", message
    )
    assert m, message
    line, a, b = int(m[1]), m[2], m[3]
    row = branches.splitlines()[line - 1].split(",")
    assert {row[0], row[1]} == {a, b}, f"line {line} is {row}, not branch {a}-{b}"


@pytest.mark.parametrize("command", FEEDER_COMMANDS)
@pytest.mark.parametrize("ties_first", [False, True], ids=["ties-last", "ties-first"])
def test_meshed_feeder(study: Study, command: str, ties_first: bool) -> None:
    branches = replace_once(
        branch_table(), "9,15,2.0000,2.0000,tie,true", "9,15,2.0000,2.0000,tie,false"
    )
    if ties_first:  # open tie rows before the closed ones: line numbers must still be table lines
        header, *rows = branches.splitlines()
        branches = "\n".join([header, *rows[-5:], *rows[:-5]]) + "\n"
    study.user_feeder(branches=branches)
    message = assert_error(
        study.cli(command), "the feeder is meshed", "normally_open=true", out=study.out
    )
    _loop_branch(message, branches)


@pytest.mark.parametrize("command", FEEDER_COMMANDS)
def test_disconnected_feeder(study: Study, command: str) -> None:
    branches = replace_once(branch_table(), "5,6,0.8190,0.7070,none,false\n", "")
    study.user_feeder(branches=branches)
    assert_error(
        study.cli(command),
        where(study.folder / "l.csv", None),
        "the feeder is disconnected: bus(es) 6, 7,",
        "substation bus 1",
        out=study.out,
    )


@pytest.mark.parametrize("command", FEEDER_COMMANDS)
def test_duplicate_bus_id(study: Study, command: str) -> None:
    buses = replace_once(bus_table(), "\n5,12.66,", "\n4,12.66,")
    study.user_feeder(buses=buses)
    assert_error(
        study.cli(command),
        where(study.folder / "b.csv", 6, "bus") + "bus 4: duplicate bus id",
        out=study.out,
    )


@pytest.mark.parametrize("command", FEEDER_COMMANDS)
@pytest.mark.parametrize("r", ["0", "-0.3811"])
def test_non_positive_resistance(study: Study, command: str, r: str) -> None:
    branches = replace_once(branch_table(), "4,5,0.3811,", f"4,5,{r},")
    study.user_feeder(branches=branches)
    assert_error(
        study.cli(command),
        where(study.folder / "l.csv", 5, "r_ohm") + "row 4: resistance must be positive",
        out=study.out,
    )


@pytest.mark.parametrize("command", FEEDER_COMMANDS)
def test_non_numeric_cell(study: Study, command: str) -> None:
    buses = replace_once(bus_table(), "\n4,12.66,0.12,", "\n4,12.66,0.12kW,")
    study.user_feeder(buses=buses)
    assert_error(
        study.cli(command),
        where(study.folder / "b.csv", 5, "p_mw") + "row 4: '0.12kW' is not a number",
        out=study.out,
    )


def test_missing_cell(study: Study) -> None:
    branches = replace_once(branch_table(), "3,4,0.3660,0.1864,", "3,4,0.3660,,")
    study.user_feeder(branches=branches)
    assert_error(
        study.cli("validate"), where(study.folder / "l.csv", 4, "x_ohm") + "row 3: value is missing"
    )


def test_fractional_bus_id_in_branch_table(study: Study) -> None:
    branches = replace_once(branch_table(), "\n4,5,0.3811,", "\n4,5.5,0.3811,")
    study.user_feeder(branches=branches)
    assert_error(
        study.cli("validate"),
        where(study.folder / "l.csv", 5, "to_bus") + "row 4: bus ids must be integers",
    )


def test_missing_column(study: Study) -> None:
    study.user_feeder(buses=replace_once(bus_table(), "q_mvar", "qmvar"))
    assert_error(
        study.cli("validate"),
        where(study.folder / "b.csv", None, "q_mvar") + "missing column 'q_mvar'",
    )


def test_ragged_csv(study: Study) -> None:
    study.user_feeder(buses=replace_once(bus_table(), "\n4,12.66,", "\n4,12.66,1,2,3,4,"))
    assert_error(
        study.cli("validate"),
        where(study.folder / "b.csv", 5) + "not a readable CSV table (",
        "Expected 5 fields in line 5, saw 9",
    )


@pytest.mark.parametrize("command", FEEDER_COMMANDS)
@pytest.mark.parametrize("table, line", [("buses", 1), ("branches", 3)])
def test_feeder_table_not_found(study: Study, command: str, table: str, line: int) -> None:
    study.user_feeder()
    study.write(
        "case.yaml",
        "network:\n  buses: b.csv\n  branches: lines.csv\n"
        if table == "branches"
        else "network: {buses: buses.csv, branches: l.csv}\n",
    )
    missing = study.folder / ("lines.csv" if table == "branches" else "buses.csv")
    assert_error(
        study.cli(command),
        where(study.case, line, f"network.{table}") + f"feeder table not found: {missing}",
        out=study.out,
    )


# --------------------------------------------------------------------------- profiles
@pytest.mark.parametrize("command", PROFILE_COMMANDS)
def test_profile_file_not_found(study: Study, command: str) -> None:
    study.write("case.yaml", CSV_PROFILES)
    assert_error(
        study.cli(command),
        where(study.case, 4, "profiles.file") + f"profile file not found: {study.folder / 'p.csv'}",
        out=study.out,
    )


@pytest.mark.parametrize("command", PROFILE_COMMANDS)
def test_profile_column_missing_csv(study: Study, command: str) -> None:
    study.write("case.yaml", CSV_PROFILES.replace("column: load", "column: demand"))
    study.write("p.csv", hourly_csv(day_shape()))
    assert_error(
        study.cli(command),
        where(study.case, 6, "profiles.series.load.column") + "p.csv has no column 'demand'",
        out=study.out,
    )


@pytest.mark.parametrize("command", PROFILE_COMMANDS)
def test_profile_column_missing_simbench(study: Study, command: str) -> None:
    text = shipped_case(**{"{kind: wind, column: WP4}": "{kind: wind, column: WP44}"})
    study.write("case.yaml", text)
    assert_error(
        study.cli(command),
        where(study.case, line_of(text, "WP44"), "profiles.series.wind.column"),
        "column 'WP44' is in none of the SimBench profile tables of 1-complete_data-mixed-all-0-sw",
        out=study.out,
    )


@pytest.mark.parametrize("command", PROFILE_COMMANDS)
@pytest.mark.parametrize(
    "cell, step_min, reason",
    [
        ("", 60, "value is missing"),
        ("NaN", 60, "value is missing"),
        ("", 15, "value is missing"),
        ("high", 15, "'high' is not a number"),
    ],
    ids=["empty-hourly", "nan-hourly", "empty-15min", "text-15min"],
)
def test_profile_gap(study: Study, command: str, cell: str, step_min: int, reason: str) -> None:
    # 15-minute data: an hourly mean must not quietly average over the gap
    values = day_shape(192 if step_min == 15 else 48)
    values[9] = cell
    study.write("case.yaml", CSV_PROFILES)
    study.write("p.csv", hourly_csv(values, step_min=step_min))
    assert_error(
        study.cli(command),
        where(study.folder / "p.csv", 11, "load") + f"row 10: {reason} (series 'load')",
        out=study.out,
    )


@pytest.mark.parametrize("command", PROFILE_COMMANDS)
def test_profile_rows_missing(study: Study, command: str) -> None:
    text = hourly_csv(day_shape())
    lines = text.splitlines()
    study.write("case.yaml", CSV_PROFILES)
    study.write("p.csv", "\n".join(lines[:8] + lines[10:]) + "\n")  # hours 7 and 8 are not there
    assert_error(
        study.cli(command),
        where(study.case, 6, "profiles.series.load.column"),
        "no data for the hour from 2021-01-01 07:00:00",
        out=study.out,
    )


@pytest.mark.parametrize("command", PROFILE_COMMANDS)
@pytest.mark.parametrize(
    "cell, reason", [("", "time is missing"), ("tomorrow", "'tomorrow' is not a time")]
)
def test_profile_bad_time(study: Study, command: str, cell: str, reason: str) -> None:
    lines = hourly_csv(day_shape()).splitlines()
    lines[5] = cell + "," + lines[5].split(",")[1]
    study.write("case.yaml", CSV_PROFILES)
    study.write("p.csv", "\n".join(lines) + "\n")
    assert_error(
        study.cli(command),
        where(study.folder / "p.csv", 6, "time") + f"row 5: {reason}",
        out=study.out,
    )


@pytest.mark.parametrize("command", PROFILE_COMMANDS)
def test_profile_not_utf8(study: Study, command: str) -> None:
    study.write("case.yaml", CSV_PROFILES)
    text = hourly_csv(day_shape())
    study.write("p.csv", text.encode() + b"2021-01-03 00:00,\xff\n")
    assert_error(
        study.cli(command),
        where(study.folder / "p.csv", len(text.splitlines()) + 1),
        "'utf-8' codec can't decode byte 0xff",
        out=study.out,
    )


@pytest.mark.parametrize("command", PROFILE_COMMANDS)
def test_negative_load_series(study: Study, command: str) -> None:
    values = day_shape()
    values[30] = -0.25
    study.write("case.yaml", CSV_PROFILES)
    study.write("p.csv", hourly_csv(values))
    assert_error(
        study.cli(command),
        where(study.case, 6, "profiles.series.load.column"),
        "a load series must not be negative (min -0.25)",
        out=study.out,
    )


# --------------------------------------------------------------------------- defaults
@pytest.mark.parametrize("command", CASE_COMMANDS)
def test_defaults_file_not_found(study: Study, command: str) -> None:
    study.write("case.yaml", "name: d\ndefaults: ../configs/nope.yaml\n" + MINIMAL)
    assert_error(
        study.cli(command),
        where(study.case, 2, "defaults"),
        "defaults file '../configs/nope.yaml' not found",
        str((study.folder / "../configs/nope.yaml").resolve()),
        out=study.out,
    )


def test_bad_value_in_defaults_file_names_that_file(study: Study) -> None:
    defaults = study.write("d.yaml", "# shared\nsolver:\n  threads: 0\n")
    study.write("case.yaml", "defaults: d.yaml\n" + MINIMAL)
    assert_error(
        study.cli("validate"), where(defaults, 3, "solver.threads"), "from 1 to 1,024 (got 0)"
    )


# ---------------------------------------------------------------- computation failures
@pytest.mark.parametrize("command", ["validate", "powerflow", "run"])
def test_a_peak_load_the_feeder_cannot_carry_is_bad_input(study: Study, command: str) -> None:
    """The peak power flow does not converge: a case error (the peak load check) naming load_scale."""
    study.write("case.yaml", "network: {feeder: ieee33, load_scale: 50}\n")
    assert_error(
        study.cli(command),
        where(study.case, 1, "network.load_scale"),
        "the feeder cannot carry its peak load of 185.8 MW (18.6 times the 10 MVA base at 12.66 kV): its AC power "
        "flow does not converge; load_scale 50 multiplies the loads of",
        out=study.out,
    )
