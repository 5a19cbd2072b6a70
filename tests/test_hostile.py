"""Hostile input files: each is refused quickly, with exit 2 and one clear message, in bounded memory.

Every test runs the real command line in a child process under a memory cap
(RLIMIT_AS) and a generous timeout, as a user's shell would: an alias bomb, deep
nesting, huge lists and lines, devices, FIFOs and directories where a file is
expected. The limits are documented in docs/case.md, "Limits on input files".
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "tests" / "cases" / "small"
#: the address space a child may use: validating the shipped cases needs far less
MEMORY_CAP = 1536 * 1024 * 1024
TIMEOUT_S = 30
CSV_PROFILES = """\
network: {feeder: ieee33}
profiles:
  source: csv
  file: PROFILE
  series:
    load: {kind: load, column: load}
"""


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def adnstudy(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(
        [sys.executable, "-m", "adnstudy", *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd,
        timeout=TIMEOUT_S, preexec_fn=_cap_memory,
    )


def refused(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Exit 2, one ``error:`` line on stderr holding every fragment, no traceback, nothing on stdout."""
    assert result.returncode == 2, f"exit {result.returncode}:\n{result.stderr[-2000:]}"
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr[-2000:]
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def alias_bomb(levels: int = 9) -> str:
    """The "billion laughs": each anchor a list of ten aliases of the one before (10**levels strings)."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join(["network: {feeder: ieee33}", *lines, f"description: *a{levels - 1}"]) + "\n"


@pytest.fixture
def special(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    """A path that is not a regular file, and the kind the message must name."""
    if request.param == "fifo":
        path = tmp_path / "pipe"
        os.mkfifo(path)
        return path, "not a regular file but a FIFO"
    if request.param == "directory":
        path = tmp_path / "folder"
        path.mkdir()
        return path, "a directory, not a file"
    return Path(request.param), "not a regular file but a character device"


SPECIALS = ["/dev/zero", "fifo", "directory"]


# ------------------------------------------------------------------------------ YAML
def test_alias_bomb(tmp_path: Path) -> None:
    case = write(tmp_path / "case.yaml", alias_bomb())
    assert case.stat().st_size < 1024
    refused(adnstudy("validate", case), f"{case}:", "the aliases (*name) expand to more than 20,000 values")


def test_alias_bomb_in_defaults_file(tmp_path: Path) -> None:
    bomb = write(tmp_path / "shared.yaml", alias_bomb())
    case = write(tmp_path / "case.yaml", "defaults: shared.yaml\nnetwork: {feeder: ieee33}\n")
    refused(adnstudy("validate", case), f"{bomb}:", "expand to more than 20,000 values")


def test_alias_to_itself(tmp_path: Path) -> None:
    case = write(tmp_path / "case.yaml", "network: &n {feeder: ieee33, more: *n}\n")
    refused(adnstudy("validate", case), f"{case}:1: ", "an alias (*name) refers to a mapping or list that contains it")


def test_alias_chain_too_deep(tmp_path: Path) -> None:
    # each alias nests the one before: shallow in the file, 100 levels when expanded
    chain = "a0: &a0 [1]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 100))
    case = write(tmp_path / "case.yaml", "network: {feeder: ieee33}\n" + chain)
    refused(adnstudy("validate", case), f"{case}:", "the aliases (*name) expand to more than 32 levels")


@pytest.mark.parametrize("style", ["flow", "block"])
def test_deep_nesting(tmp_path: Path, style: str) -> None:
    if style == "flow":  # 100,000 levels: a RecursionError before
        text = "network: " + "[" * 100_000 + "]" * 100_000 + "\n"
    else:
        text = "network:\n" + "".join("  " * i + "-\n" for i in range(1, 500))
    case = write(tmp_path / "case.yaml", text)
    line = 1 if style == "flow" else 33
    refused(adnstudy("validate", case), f"{case}:{line}: ", "nested more than 32 levels deep")


def test_case_file_too_large(tmp_path: Path) -> None:
    # a 20 MB flat list of numbers: 222 s and > 5.5 GB before
    numbers = ", ".join(["0.125"] * 2_900_000)
    case = write(tmp_path / "case.yaml", f"network: {{feeder: ieee33}}\ndescription: [{numbers}]\n")
    assert case.stat().st_size > 20_000_000
    refused(adnstudy("validate", case), f"error: {case}: the file is 20 MB; a case file may be at most 1 MB")


def test_too_many_values(tmp_path: Path) -> None:
    # under the size cap, but far more values than any case has
    case = write(tmp_path / "case.yaml", "network: {feeder: ieee33}\ndescription:\n" + "- 1\n" * 30_000)
    assert case.stat().st_size < 1024 * 1024
    refused(adnstudy("validate", case), f"{case}:", "more than 20,000 values")


def test_defaults_file_too_large(tmp_path: Path) -> None:
    write(tmp_path / "shared.yaml", "network: {feeder: ieee33}\n" + "# padding\n" * 120_000)
    case = write(tmp_path / "case.yaml", "defaults: shared.yaml\n")
    refused(adnstudy("validate", case), f"{case}:1: defaults: defaults file {tmp_path / 'shared.yaml'}: the file is",
            "a defaults file may be at most 1 MB")


TARIFF_25 = "economics: {purchase_price_usd_per_mwh: [" + ", ".join(["50"] * 25) + "]}\n"
MICROGRIDS_1001 = "microgrids:\n" + "".join(
    f"  - {{name: m{i}, bus: 18, load_peak_mw: 0.1, pcc_limit_mw: 0.5}}\n" for i in range(1001))
OPTIONS_101 = "solver: {options: {" + ", ".join(f"o{i}: 1" for i in range(101)) + "}}\n"


@pytest.mark.parametrize(
    "field, text, fragment",
    [
        ("economics.purchase_price_usd_per_mwh", TARIFF_25, "List should have at most 24 items"),
        ("microgrids", MICROGRIDS_1001, "List should have at most 1000 items"),
        ("solver.options", OPTIONS_101, "Dictionary should have at most 100 items"),
    ],
    ids=["tariff", "microgrids", "solver-options"],
)
def test_list_longer_than_the_schema_allows(tmp_path: Path, field: str, text: str, fragment: str) -> None:
    case = write(tmp_path / "case.yaml", "network: {feeder: ieee33}\n" + text)
    refused(adnstudy("validate", case), f"{case}:2: {field}: ", fragment)


def test_merge_keys_are_accepted(tmp_path: Path) -> None:
    """Anchors and ``<<`` merge keys are a legitimate way to share fields; errors in them keep their lines."""
    text = """\
name: merged
network: {feeder: ieee33}
microgrids:
  - &mg
    name: a
    bus: 18
    load_peak_mw: 0.3
    pv_mw: 0.35
    pcc_limit_mw: 0.5
  - <<: *mg
    name: b
    bus: 25
"""
    case = write(tmp_path / "case.yaml", text)
    result = adnstudy("validate", case)
    assert result.returncode == 0, result.stderr
    assert "case merged: valid" in result.stdout
    assert "sections: microgrids" in result.stdout
    # an explicit key of the merging item is reported at its own line
    write(case, text + "    pcc_limit_mw: -1\n")
    refused(adnstudy("validate", case), f"{case}:13: microgrids[1].pcc_limit_mw: ")
    # a merged value at the anchor's line
    write(case, text.replace("pv_mw: 0.35", "pv_mw: -0.35"))
    refused(adnstudy("validate", case), f"{case}:8: microgrids[0].pv_mw: ")


# ------------------------------------------------------------------ special files
@pytest.mark.parametrize("special", [*SPECIALS, "/dev/urandom"], indirect=True)
def test_case_file_is_special(special: tuple[Path, str]) -> None:
    path, kind = special
    refused(adnstudy("validate", path), f"error: {path}: {kind}")


@pytest.mark.parametrize("special", SPECIALS, indirect=True)
def test_defaults_file_is_special(tmp_path: Path, special: tuple[Path, str]) -> None:
    path, kind = special
    case = write(tmp_path / "case.yaml", f"network: {{feeder: ieee33}}\ndefaults: {path}\n")
    refused(adnstudy("validate", case), f"{case}:2: defaults: defaults file {path}: {kind}")


@pytest.mark.parametrize("special", SPECIALS, indirect=True)
def test_profile_file_is_special(tmp_path: Path, special: tuple[Path, str]) -> None:
    path, kind = special
    case = write(tmp_path / "case.yaml", CSV_PROFILES.replace("PROFILE", str(path)))
    refused(adnstudy("validate", case), f"{case}:4: profiles.file: profile file {path}: {kind}")


@pytest.mark.parametrize("special", SPECIALS, indirect=True)
@pytest.mark.parametrize("table", ["buses", "branches"])
def test_feeder_table_is_special(tmp_path: Path, special: tuple[Path, str], table: str) -> None:
    path, kind = special
    tables = {"buses": SMALL / "buses.csv", "branches": SMALL / "branches.csv", table: path}
    case = write(tmp_path / "case.yaml", f"network:\n  buses: {tables['buses']}\n  branches: {tables['branches']}\n")
    line = 2 if table == "buses" else 3
    refused(adnstudy("validate", case), f"{case}:{line}: network.{table}: feeder table {path}: {kind}")


# ------------------------------------------------------------------------------ CSV
def test_csv_file_too_large(tmp_path: Path) -> None:
    profile = tmp_path / "p.csv"
    with profile.open("wb") as fh:  # sparse: no disk used
        fh.truncate(201_000_000)
    case = write(tmp_path / "case.yaml", CSV_PROFILES.replace("PROFILE", "p.csv"))
    refused(adnstudy("validate", case), f"{case}:4: profiles.file: profile file {profile}: the file is 201 MB; "
            "a feeder table or profile file may be at most 200 MB")


def test_csv_single_100_mb_line(tmp_path: Path) -> None:
    profile = tmp_path / "p.csv"
    with profile.open("wb") as fh:  # a header line, then 100 MB without a line break
        fh.write(b"time,load\n")
        fh.truncate(100_000_000)
    case = write(tmp_path / "case.yaml", CSV_PROFILES.replace("PROFILE", "p.csv"))
    refused(adnstudy("validate", case), f"{profile}:2: the line is over 1 MB long")


@pytest.mark.parametrize("columns, fragment", [
    (2_000_000, ":1: the line is over 1 MB long"),
    (20_000, ":1: the line has 20,000 fields; a table may have at most 10,000 columns"),
], ids=["millions", "twenty-thousand"])
def test_csv_too_many_columns(tmp_path: Path, columns: int, fragment: str) -> None:
    profile = write(tmp_path / "p.csv", "time,load," + ",".join(f"c{i}" for i in range(columns - 2)) + "\n")
    case = write(tmp_path / "case.yaml", CSV_PROFILES.replace("PROFILE", "p.csv"))
    refused(adnstudy("validate", case), f"{profile}{fragment}")


def test_csv_row_far_wider_than_its_header(tmp_path: Path) -> None:
    # pandas would take its extra fields for an index of 400,000 levels: 39 s and 1 GB before
    profile = write(tmp_path / "p.csv", "time,load\n" + "1," * 400_000 + "\n")
    case = write(tmp_path / "case.yaml", CSV_PROFILES.replace("PROFILE", "p.csv"))
    refused(adnstudy("validate", case), f"{profile}:2: the line has 400,001 fields")


# ------------------------------------------------------------- no file content in messages
SECRET = "hunter2-do-not-print"


@pytest.mark.parametrize("where", ["defaults", "profile", "buses"])
@pytest.mark.parametrize("content", [
    f"password: {SECRET}: x\n",  # not valid YAML
    f"{SECRET}\n",  # a single value, not a mapping; a CSV with one column
    f"[{SECRET}\n",  # unclosed
    f"a,b\n{SECRET},{SECRET},{SECRET}\n",  # a row longer than the header
    b"\xff" + SECRET.encode() + b"\n",  # not UTF-8
], ids=["yaml-error", "one-value", "unclosed", "ragged-csv", "not-utf8"])
def test_referenced_file_content_is_not_echoed(tmp_path: Path, where: str, content: str | bytes) -> None:
    """A case may name any file (``defaults: /etc/...``): a message says what is wrong, never what the file holds."""
    secret = write(tmp_path / "secret.txt", content)
    if where == "defaults":
        text = f"defaults: {secret}\nnetwork: {{feeder: ieee33}}\n"
    elif where == "profile":
        text = CSV_PROFILES.replace("PROFILE", str(secret))
    else:
        text = f"network:\n  buses: {secret}\n  branches: {SMALL / 'branches.csv'}\n"
    case = write(tmp_path / "case.yaml", text)
    message = refused(adnstudy("validate", case))
    assert SECRET not in message
    assert "hunter2" not in message
