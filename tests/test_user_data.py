"""A user's own data, through the command line (issue 10): their CSV times and separators,
messages that point at the line to fix, chains of defaults files, and ``-v`` anywhere.

Every case here is written into a temporary folder, as a user outside the
repository would; nothing solves an optimisation (``cluster`` runs once, on
three days of data).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from adnstudy.cli import app

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


ISO = [f"2016-01-{d:02d} {h:02d}:00" for d in range(1, 4) for h in range(24)]


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
