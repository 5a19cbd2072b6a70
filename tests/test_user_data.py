"""A user's own data, through the command line (issue 10): their CSV times and separators,
messages that point at the line to fix, chains of defaults files, and ``-v`` anywhere.

Every case here is written into a temporary folder, as a user outside the
repository would; nothing solves an optimisation (``cluster`` runs once, on
three days of data).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import typer
from typer.testing import CliRunner, Result

from adnstudy.cli import app
from adnstudy.config.load import load_case, packaged_defaults
from adnstudy.data.profiles import load_profiles

ROOT = Path(__file__).resolve().parents[1]
BERLIN = ZoneInfo("Europe/Berlin")
runner = CliRunner()

BUSES = """\
# a 4-bus feeder of a user
bus;base_kv;p_mw;q_mvar;customers
1;11.0;0.0;0.0;0

2;11.0;0.30;0.10;30
3;11.0;0.40;0.15;45   # the school
4;11.0;0.20;0.08;20
"""
BRANCHES = """\
from_bus;to_bus;r_ohm;x_ohm
1;2;0.45;0.35
2;3;0.60;0.45
3;4;0.80;0.55
"""
CASE = """\
name: mine
network:
  buses: buses.csv
  branches: branches.csv
  base_mva: 1.0
profiles:
  source: csv
  file: load.csv
{profile_options}  series:
    load: {{kind: load, column: load}}
"""


def invoke(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def error_line(result: Result, code: int = 2) -> str:
    """The one error line of a failed command (no traceback, nothing on stdout)."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def study(folder: Path, times: list[str], *, options: str = "", values: list[float] | None = None,
          sep: str = ",", feeder_sep: str = ",") -> Path:
    """A user's folder: the 4-bus feeder, a load CSV with these times, and the case."""
    write(folder, "buses.csv", BUSES.replace(";", feeder_sep))
    write(folder, "branches.csv", BRANCHES.replace(";", feeder_sep))
    values = values if values is not None else [round(0.5 + 0.4 * np.sin(i / 4), 4) for i in range(len(times))]
    rows = [f"{t}{sep}{v}" for t, v in zip(times, values, strict=True)]
    write(folder, "load.csv", "\n".join([f"time{sep}load", *rows]) + "\n")
    return write(folder, "case.yaml", CASE.format(profile_options=options))


def local_times(start_utc: dt.datetime, hours: int, fmt: str = "%Y-%m-%dT%H:%M:%S%z") -> list[str]:
    """Hourly Berlin local times with their offset (+01:00 in winter, +02:00 in summer)."""
    out = []
    for h in range(hours):
        t = (start_utc + dt.timedelta(hours=h)).astimezone(BERLIN).strftime(fmt)
        out.append(t[:-2] + ":" + t[-2:] if fmt.endswith("%z") else t)
    return out


# ---------------------------------------------------------------- 1. times in profile CSVs
@pytest.mark.parametrize(
    "start_utc, first, last",
    [
        # 2016-03-26 00:00+01:00, then +02:00 from 27 March 03:00
        (dt.datetime(2016, 3, 25, 23, tzinfo=dt.UTC), "2016-03-26 00:00", "2016-03-28"),
        # 2016-10-29 00:00+02:00 is 28 October 23:00 in standard time; +01:00 from 30 October 02:00
        (dt.datetime(2016, 10, 28, 22, tzinfo=dt.UTC), "2016-10-28 23:00", "2016-10-31"),
    ],
    ids=["dst-starts", "dst-ends"],
)
def test_times_with_utc_offsets_across_daylight_saving(tmp_path: Path, start_utc, first, last) -> None:
    times = local_times(start_utc, 72)
    assert {t[-6:] for t in times} == {"+01:00", "+02:00"}
    values = [1.0 + h / 100 for h in range(72)]  # row h is UTC hour h: the order must survive
    case = study(tmp_path, times, values=values)
    result = invoke("validate", case)
    assert result.exit_code == 0, result.output  # was: internal error: TypeError: Only valid with DatetimeIndex
    assert f"profiles: load; 72 hours from {first[:10]} to {last} (times with UTC offsets read in UTC+01:00)" \
        in result.stdout
    # every row lands on its own hour of standard time (UTC+01:00), 24 hours a day
    load = load_profiles(load_case(case))["load"]
    assert load.index[0] == dt.datetime.fromisoformat(first)
    np.testing.assert_allclose(load.to_numpy(), np.array(values) / max(values))
    assert (load.index.to_series().diff().dropna() == dt.timedelta(hours=1)).all()


def test_offsets_of_the_whole_case_are_one_clock(tmp_path: Path) -> None:
    """A second file in UTC ('Z'): both files are read in the smallest offset, UTC."""
    start = dt.datetime(2016, 3, 25, 23, tzinfo=dt.UTC)
    case = study(tmp_path, local_times(start, 72))
    utc = [(start + dt.timedelta(hours=h)).strftime("%Y-%m-%dT%H:%MZ") for h in range(72)]
    write(tmp_path, "pv.csv", "time,pv\n" + "".join(f"{t},{0.01 * (h % 24)}\n" for h, t in enumerate(utc)))
    case.write_text(case.read_text() + "    pv: {kind: pv, column: pv, file: pv.csv}\n")
    result = invoke("validate", case)
    assert result.exit_code == 0, result.output
    assert "72 hours from 2016-03-25 to 2016-03-28 (times with UTC offsets read in UTC)" in result.stdout
    profiles = load_profiles(load_case(case))
    assert profiles.index[0] == dt.datetime(2016, 3, 25, 23)  # 00:00+01:00 is 23:00 UTC
    assert profiles["pv"].iloc[0] == pytest.approx(0.0)


def test_offsets_on_some_rows_only(tmp_path: Path) -> None:
    times = local_times(dt.datetime(2016, 1, 1, tzinfo=dt.UTC), 48)
    times[10] = times[10][:-6]
    case = study(tmp_path, times)
    message = error_line(invoke("validate", case))
    assert message.startswith(f"error: {tmp_path / 'load.csv'}:12: time: row 11: '2016-01-01T11:00:00' "
                              "has no UTC offset but line 2 has one")


DAY_FIRST = [f"{d:02d}.01.2016 {h:02d}:00" for d in range(1, 16) for h in range(24)]  # SimBench's format
ISO = [f"2016-01-{d:02d} {h:02d}:00" for d in range(1, 4) for h in range(24)]


def test_day_first_dates_without_the_option(tmp_path: Path) -> None:
    case = study(tmp_path, DAY_FIRST)
    message = error_line(invoke("validate", case))
    line = 2 + 12 * 24  # the 13th, hour 0
    assert message == (
        f"error: {tmp_path / 'load.csv'}:{line}: time: row {line - 1}: '13.01.2016 00:00' is not a time in "
        "the format of the first row ('01.01.2016 00:00'); the dates are day first: set dayfirst: true"
    )


@pytest.mark.parametrize(
    "options, times",
    [
        ("  dayfirst: true\n", DAY_FIRST),
        ("  time_format: '%d.%m.%Y %H:%M'\n", DAY_FIRST),
        ("  dayfirst: true\n", [f"{dt.datetime(2016, 1, 1) + dt.timedelta(hours=h):%Y-%m-%d %H:%M}"
                                for h in range(360)]),
    ],
    ids=["dayfirst", "time_format", "dayfirst-leaves-iso-alone"],
)
def test_day_first_dates_with_an_option(tmp_path: Path, options: str, times: list[str]) -> None:
    case = study(tmp_path, times, options=options)
    result = invoke("validate", case)
    assert result.exit_code == 0, result.output
    assert "profiles: load; 360 hours from 2016-01-01 to 2016-01-15\n" in result.stdout


def test_time_format_of_a_series_file(tmp_path: Path) -> None:
    """A series with its own file and its own format; the section's file keeps the section's."""
    start = dt.datetime(2016, 1, 1)
    case = study(tmp_path, [f"{start + dt.timedelta(hours=h):%Y-%m-%d %H:%M}" for h in range(48)])
    write(tmp_path, "pv.csv", "time;pv\n" + "".join(
        f"{start + dt.timedelta(hours=h):%d/%m/%Y %Hh};{0.02 * (h % 24)}\n" for h in range(48)))
    case.write_text(case.read_text() + "    pv: {kind: pv, column: pv, file: pv.csv, time_format: '%d/%m/%Y %Hh'}\n")
    result = invoke("validate", case)
    assert result.exit_code == 0, result.output
    assert "profiles: load, pv; 48 hours from 2016-01-01 to 2016-01-02\n" in result.stdout
    assert load_profiles(load_case(case))["pv"].iloc[23] == pytest.approx(0.46)


def test_time_not_matching_the_time_format(tmp_path: Path) -> None:
    times = DAY_FIRST[:48]
    times[30] = "02.01.2016 6:00 PM"
    case = study(tmp_path, times, options="  time_format: '%d.%m.%Y %H:%M'\n")
    assert error_line(invoke("validate", case)) == (
        f"error: {tmp_path / 'load.csv'}:32: time: row 31: '02.01.2016 6:00 PM' does not match "
        "time_format '%d.%m.%Y %H:%M'"
    )


@pytest.mark.parametrize(
    "options, line, field, reason",
    [
        ("  time_format: '%d.%m.%Y %H:%M'\n  dayfirst: true\n", 10, "profiles.dayfirst",
         "give time_format or dayfirst, not both"),
        ("  time_format: 'dd.mm.yyyy'\n", 9, "profiles.time_format", "a time format has '%' directives"),
    ],
    ids=["both", "not-strptime"],
)
def test_time_options_that_cannot_work(tmp_path: Path, options: str, line: int, field: str, reason: str) -> None:
    case = study(tmp_path, DAY_FIRST[:48], options=options)
    message = error_line(invoke("validate", case))
    assert message.startswith(f"error: {case}:{line}: {field}: {reason}"), message


def test_time_format_of_a_series_without_its_own_file(tmp_path: Path) -> None:
    case = study(tmp_path, DAY_FIRST[:48])
    case.write_text(case.read_text().replace("{kind: load, column: load}",
                                             "{kind: load, column: load, dayfirst: true}"))
    message = error_line(invoke("validate", case))
    assert message.startswith(f"error: {case}:10: profiles.series.load.dayfirst: time_format and dayfirst "
                              "of a series apply to its own 'file'"), message


def test_repeated_local_time_names_both_lines(tmp_path: Path) -> None:
    """Local clock time without offsets: 02:00 comes twice when daylight saving ends."""
    naive = [t[:16].replace("T", " ") for t in local_times(dt.datetime(2016, 10, 29, 22, tzinfo=dt.UTC), 48)]
    assert naive[2] == naive[3] == "2016-10-30 02:00"
    case = study(tmp_path, naive)
    assert error_line(invoke("validate", case)) == (
        f"error: {tmp_path / 'load.csv'}:5: time: row 4: '2016-10-30 02:00' is the same time as line 4 "
        "('2016-10-30 02:00') (local time with daylight saving? give each time its UTC offset, e.g. "
        "2016-10-30T02:00+01:00, or use standard time or UTC)"
    )


def test_profile_lines_count_blank_lines(tmp_path: Path) -> None:
    case = study(tmp_path, ISO)
    path = tmp_path / "load.csv"
    rows = path.read_text().splitlines()
    rows[20] = rows[20].split(",")[0] + ",lots"
    path.write_text("\n".join([*rows[:10], "", *rows[10:]]) + "\n")  # a blank line 11
    assert error_line(invoke("validate", case)).startswith(
        f"error: {path}:22: load: row 20: 'lots' is not a number")


def test_spreadsheet_byte_order_mark(tmp_path: Path) -> None:
    case = study(tmp_path, ISO)
    path = tmp_path / "load.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    result = invoke("validate", case)
    assert result.exit_code == 0, result.output


# ------------------------------------------------------------------ 2. feeder CSVs with ';'
def test_feeder_separated_by_semicolons(tmp_path: Path) -> None:
    case = study(tmp_path, ISO, sep=";", feeder_sep=";")  # as a German spreadsheet writes them
    result = invoke("validate", case)
    assert result.exit_code == 0, result.output
    # the user feeder is named by its bus table's file (was: "feeder buses: 4 buses")
    assert "  feeder buses.csv: 4 buses, 3 branches, 0 tie lines, peak load 0.9 MW / 0.33 Mvar\n" in result.stdout


@pytest.mark.parametrize(
    "old, new, line, field, reason",
    [
        ("3;11.0;0.40;0.15;45", "3;11.0;0.40 MW;0.15;45", 6, "p_mw", "row 3: '0.40 MW' is not a number"),
        ("4;11.0;0.20", "3;11.0;0.20", 7, "bus", "bus 3: duplicate bus id"),
        ("4;11.0;0.20", "4;0.01;0.20", 7, "base_kv", "bus 4: base_kv must be from 0.1 to 1,000 kV (got 0.01)"),
    ],
    ids=["not-a-number", "duplicate-bus", "base-kv"],
)
def test_feeder_messages_give_the_file_line(tmp_path: Path, old: str, new: str, line: int, field: str,
                                            reason: str) -> None:
    """Lines are the file's: after a comment line and a blank line (base_kv: was no line at all)."""
    case = study(tmp_path, ISO)
    write(tmp_path, "buses.csv", BUSES.replace(old, new).replace(";", ","))
    message = error_line(invoke("validate", case))
    assert message.startswith(f"error: {tmp_path / 'buses.csv'}:{line}: {field}: {reason}"), message


def test_two_substations_give_the_line_of_the_second(tmp_path: Path) -> None:
    case = study(tmp_path, ISO)
    buses = BUSES.replace("customers\n", "customers;substation\n").replace(";0\n", ";0;true\n")
    buses = buses.replace(";30\n", ";30;false\n").replace(";45 ", ";45;true ").replace(";20\n", ";20;false\n")
    write(tmp_path, "buses.csv", buses.replace(";", ","))
    assert error_line(invoke("validate", case)) == (
        f"error: {tmp_path / 'buses.csv'}:6: substation: exactly one bus must be the substation; "
        "2 are: bus 1 (line 3), bus 3 (line 6)"
    )


# ------------------------------------------------------------------------- 3. messages
@pytest.mark.parametrize(
    "old, new, line, field, bad",
    [
        ("name: mine", "name: my.case", 1, "name", "'.'"),
        ("    load: {kind: load", "    my load: {kind: load", 10, "profiles.series", None),
    ],
    ids=["case-name", "series-name"],
)
def test_names_are_explained_in_words(tmp_path: Path, old: str, new: str, line: int, field: str,
                                      bad: str | None) -> None:
    case = study(tmp_path, ISO)
    case.write_text(case.read_text().replace(old, new))
    message = error_line(invoke("validate", case))
    assert "pattern" not in message and "[A-Za-z" not in message
    rule = "names have 1 to 64 letters, digits, '_' or '-' and start with a letter or '_'"
    if bad is not None:
        assert message == f"error: {case}:{line}: {field}: {bad} is not allowed in a name: {rule} (got 'my.case')"
    else:
        assert message == f"error: {case}:{line}: {field}: key 'my load': ' ' is not allowed in a name: {rule}"


def test_microgrid_name_starting_with_a_digit(tmp_path: Path) -> None:
    case = study(tmp_path, ISO)
    case.write_text(case.read_text() + "microgrids:\n  - {name: 1st, bus: 3, load_peak_mw: 0.1, pcc_limit_mw: 1}\n")
    assert error_line(invoke("validate", case)).startswith(
        f"error: {case}:12: microgrids[0].name: a name cannot start with '1': names have")


def test_cross_field_rule_points_at_the_case_not_the_defaults(tmp_path: Path) -> None:
    """v_min_pu from the defaults file, v_max_pu in the case: the case's line is the one to fix."""
    write(tmp_path, "d.yaml", "network:\n  v_min_pu: 0.95\n")
    case = write(tmp_path, "case.yaml", "defaults: d.yaml\nnetwork:\n  feeder: ieee33\n  v_max_pu: 0.9\n")
    assert error_line(invoke("validate", case)) == (
        f"error: {case}:4: network.v_max_pu: v_min_pu (0.95) must be below v_max_pu (0.9)")


def test_storage_soc_rule_points_at_the_field(tmp_path: Path) -> None:
    text = ("network: {feeder: ieee33}\nmicrogrids:\n  - name: a\n    bus: 5\n    load_peak_mw: 0.1\n"
            "    pcc_limit_mw: 1\n    storage:\n      power_mw: 0.1\n      energy_mwh: 0.4\n"
            "      soc_initial: 0.95\n")
    case = write(tmp_path, "case.yaml", text)
    assert error_line(invoke("validate", case)).startswith(
        f"error: {case}:10: microgrids[0].storage.soc_initial: need soc_min <= soc_initial <= soc_max")


def test_unknown_typical_day_is_one_message(tmp_path: Path) -> None:
    case = study(tmp_path, ISO)
    case.write_text(case.read_text() + (
        "clustering: {k: 2, compare: false}\n"
        "economics:\n  purchase_price_usd_per_mwh: [" + ", ".join(["50"] * 24) + "]\n"
        "  wholesale_price_usd_per_mwh: 50\n"
        "microgrids:\n  - {name: a, bus: 3, load_peak_mw: 0.1, pcc_limit_mw: 1}\n"
        "market: {}\n"
    ))
    out = tmp_path / "out"
    assert invoke("cluster", case, "--out", out).exit_code == 0
    message = error_line(invoke("dispatch", case, "--out", out, "--day", "9"))
    assert message == "error: --scenario 9: no such typical day (the typical days are [0, 1])"
    assert not (out / "dispatch").exists()


# --------------------------------------------------------------------- 4. defaults files
def test_defaults_files_chain(tmp_path: Path) -> None:
    """case -> shared/variant.yaml -> shared/base.yaml: each path is relative to the file naming it."""
    write(tmp_path, "shared/base.yaml", "solver:\n  threads: 1\nmarket:\n  fee_usd_per_mwh: 4\n")
    write(tmp_path, "shared/variant.yaml", "defaults: base.yaml\nmarket:\n  fee_payer: buyer\n")
    write(tmp_path, "base.yaml", "solver: {threads: 0}\n")  # next to the case: not the one meant
    case = write(tmp_path, "case.yaml", "defaults: shared/variant.yaml\nnetwork: {feeder: ieee33}\n"
                                        "solver: {mip_gap: 0.01}\n")
    result = invoke("validate", case)
    assert result.exit_code == 0, result.output  # was: a defaults file cannot itself name defaults
    assert "  sections: market\n" in result.stdout
    config = load_case(case).config
    assert (config.market.fee_usd_per_mwh, config.market.fee_payer) == (4, "buyer")
    assert (config.solver.threads, config.solver.mip_gap) == (1, 0.01)
    assert str(config.defaults) == "shared/variant.yaml"


def test_bad_value_at_the_end_of_a_chain_names_that_file(tmp_path: Path) -> None:
    base = write(tmp_path, "shared/base.yaml", "# the bottom\nmarket:\n  fee_usd_per_mwh: -4\n")
    write(tmp_path, "shared/variant.yaml", "defaults: base.yaml\n")
    case = write(tmp_path, "case.yaml", "defaults: shared/variant.yaml\nnetwork: {feeder: ieee33}\n")
    assert error_line(invoke("validate", case)).startswith(
        f"error: {base}:3: market.fee_usd_per_mwh: Input should be from 0 to 100,000")


def test_defaults_cycle(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "defaults: b.yaml\nsolver: {threads: 1}\n")
    b = write(tmp_path, "b.yaml", "# b names a again\ndefaults: a.yaml\n")
    case = write(tmp_path, "case.yaml", "defaults: a.yaml\nnetwork: {feeder: ieee33}\n")
    assert error_line(invoke("validate", case)) == (
        f"error: {b}:2: defaults: the defaults files name each other in a cycle: a.yaml -> b.yaml -> a.yaml")


def test_packaged_defaults_outside_the_repository(tmp_path: Path) -> None:
    case = write(tmp_path, "case.yaml", "defaults: defaults.yaml\nnetwork: {feeder: ieee33}\n")
    result = invoke("validate", case)
    assert result.exit_code == 0, result.output
    assert "  sections: clustering, economics, market\n" in result.stdout
    config = load_case(case).config
    assert config.economics.purchase_price_usd_per_mwh[12] == 110
    # a file of that name next to the case comes first
    write(tmp_path, "defaults.yaml", "market: {fee_usd_per_mwh: 7}\n")
    assert load_case(case).config.market.fee_usd_per_mwh == 7


def test_missing_bare_defaults_name_lists_the_packaged_ones(tmp_path: Path) -> None:
    case = write(tmp_path, "case.yaml", "defaults: default.yaml\nnetwork: {feeder: ieee33}\n")
    assert error_line(invoke("validate", case)) == (
        f"error: {case}:1: defaults: defaults file 'default.yaml' not found "
        f"(looked for {tmp_path / 'default.yaml'} or a packaged defaults file (defaults.yaml))")


def test_packaged_defaults_are_the_repositorys() -> None:
    """One content: configs/defaults.yaml (the shipped cases') and the package's copy."""
    packaged = packaged_defaults()
    assert sorted(packaged) == ["defaults.yaml"]
    assert packaged["defaults.yaml"].read_bytes() == (ROOT / "configs" / "defaults.yaml").read_bytes()
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["adnstudy"]
    rel = packaged["defaults.yaml"].relative_to(ROOT / "adnstudy")
    assert any(rel.match(g) for g in globs), f"{rel} is not package data: {globs}"


# --------------------------------------------------------------------------------- tariffs
def price_study(folder: Path, spot: list[float]) -> Path:
    """The 4-bus feeder on the packaged defaults, with a PV candidate and a price series as purchase tariff."""
    study(folder, ISO)
    pv = [round(max(0.0, np.sin((h % 24 - 6) / 12 * np.pi)), 4) for h in range(len(ISO))]
    load = [round(0.5 + 0.4 * np.sin(i / 4), 4) for i in range(len(ISO))]
    rows = [f"{t},{x},{p},{s}" for t, x, p, s in zip(ISO, load, pv, spot, strict=True)]
    write(folder, "load.csv", "\n".join(["time,load,pv,spot", *rows]) + "\n")
    return write(folder, "case.yaml", "defaults: defaults.yaml\n" + CASE.format(profile_options="") + (
        "    pv: {kind: pv, column: pv}\n"
        "    spot: {kind: price, column: spot}\n"
        "clustering: {k: 2}\n"
        "candidates: {sites: [{bus: 3, tech: pv, max_mw: 0.2, capex_usd_per_mw: 600000}]}\n"
        "economics: {purchase_price_usd_per_mwh: spot}\n"
    ))


def test_a_price_series_name_replaces_the_defaults_values(tmp_path: Path) -> None:
    case = price_study(tmp_path, [60.0 + h % 24 for h in range(len(ISO))])
    result = invoke("validate", case)
    assert result.exit_code == 0, result.output
    assert "checked for: powerflow, cluster, plan\n" in result.stdout
    eco = load_case(case).config.economics
    assert eco.purchase_price_usd_per_mwh == "spot"  # the case's name, not the defaults file's 24 values
    assert eco.sell_price_usd_per_mwh == [30.0] * 24  # still the defaults file's


def test_a_defaults_feed_in_tariff_above_a_price_series(tmp_path: Path) -> None:
    """The defaults' 30 USD/MWh feed-in price against the case's series, hour by hour; the message points at the
    case's own tariff line, not the defaults file's (was: defaults.yaml:29: economics.sell_price_usd_per_mwh)."""
    spot = [60.0] * len(ISO)
    spot[24 + 13] = 25.0
    case = price_study(tmp_path, spot)
    assert error_line(invoke("validate", case)) == (
        f"error: {case}:16: economics.purchase_price_usd_per_mwh: the feed-in price exceeds the purchase price at "
        "2016-01-02 13:00:00 (30 > 25 USD/MWh): energy bought to be resold would pay without limit (an MG, or the "
        "substation in plan)")


@pytest.mark.parametrize("value", ["40", "{spot: 1}"])
def test_a_tariff_neither_values_nor_a_name(tmp_path: Path, value: str) -> None:
    case = write(tmp_path, "case.yaml", f"network: {{feeder: ieee33}}\neconomics:\n  purchase_price_usd_per_mwh: {value}\n")
    message = error_line(invoke("validate", case))  # was: Input should be a valid list (got 40)
    assert message.startswith(f"error: {case}:3: economics.purchase_price_usd_per_mwh: a tariff is 24 hourly values "
                              "(USD/MWh) or the name of a price series of the profiles")


# ------------------------------------------------------------------------------- 5. -v
COMMANDS = sorted(typer.main.get_command(app).commands)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_lists_verbose(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "-v, --verbose" in result.stdout


def test_verbose_after_the_command(tmp_path: Path) -> None:
    case = write(tmp_path, "case.yaml", "network: {feeder: ieee33}\n")
    result = invoke("validate", case, "-v")
    assert result.exit_code == 0, result.output  # was: No such option: -v
    assert result.stdout.startswith("case case: valid")


def test_verbose_before_and_after_add_up(tmp_path: Path) -> None:
    case = write(tmp_path, "case.yaml", "network: {feeder: ieee33, v_min_pu: 2}\n")
    once = invoke("validate", case, "-v")
    assert once.exit_code == 2 and "Traceback" not in once.stderr
    twice = invoke("-v", "validate", case, "-v")  # -vv: the traceback too
    assert twice.exit_code == 2 and "Traceback" in twice.stderr
    assert twice.stderr.strip().splitlines()[-1].startswith(f"error: {case}:1: network.v_min_pu:")


def test_verbose_shows_adnstudy_info_but_not_other_packages(tmp_path: Path, monkeypatch) -> None:
    import adnstudy.stages.registry as registry

    real = registry.validate_case

    def chatty(case):
        logging.getLogger("pandapower.plotting").info("Failed to import plotly")
        logging.getLogger("adnstudy.checks").info("checking the feeder")
        logging.getLogger("pandapower").warning("a real warning")
        return real(case)

    monkeypatch.setattr(registry, "validate_case", chatty)
    case = write(tmp_path, "case.yaml", "network: {feeder: ieee33}\n")
    result = invoke("validate", case, "-v")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "INFO adnstudy.checks: checking the feeder", "WARNING pandapower: a real warning"]


def test_no_import_chatter_under_verbose() -> None:
    """A fresh process, as a user runs it (was: 'INFO pandapower...: Failed to import plotly')."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "adnstudy", "validate", str(ROOT / "cases" / "ieee33.yaml"), "-v"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "profiles: load, pv, wind; 8784 hours" in done.stdout
