"""Shared study runs: the expensive stages on the shipped and the small case, run once per session.

Several test modules read the same results (the regression pins, the plan and
dispatch checks), so each run happens once, through the command line as a user
would, into a session folder.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from adnstudy.cli import app

ROOT = Path(__file__).resolve().parents[1]
IEEE33 = ROOT / "cases" / "ieee33.yaml"
SMALL = ROOT / "tests" / "cases" / "small" / "case.yaml"
README = (ROOT / "README.md").read_text(encoding="utf-8")
#: Typical days of the shipped case whose market the tests run: on day 4 all three MGs trade.
DISPATCH_SCENARIOS = (0, 4)
runner = CliRunner()


def edited_case(source: Path, folder: Path, *edits: tuple[str, str], name: str = "case") -> Path:
    """A copy of case file ``source`` in ``folder`` as ``<name>.yaml``, each (old, new) text replaced once found.

    Its defaults file is made absolute and the feeder tables it names by relative path are copied beside it
    (where not already there), so the copy reads what the original reads and a test may edit its tables.
    """
    text = source.read_text()

    def absolute(match: re.Match[str]) -> str:
        value = match[2]
        return match[1] + (value if Path(value).is_absolute() else str((source.parent / value).resolve()))

    text = re.sub(r"^(defaults:\s*)(\S+)\s*$", absolute, text, flags=re.M)
    folder.mkdir(parents=True, exist_ok=True)
    for table in re.findall(r"^\s*(?:buses|branches):\s*(\S+\.csv)\s*$", text, flags=re.M):
        if not Path(table).is_absolute() and not (folder / table).exists():
            shutil.copy(source.parent / table, folder / table)
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def invoke(*args: str) -> None:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, f"adnstudy {' '.join(map(str, args))}\n{result.output}"


@dataclass(frozen=True)
class Study:
    """Result folders of one case: each run's own ``--out`` folder, named by what it ran."""

    case: Path
    runs: dict[str, Path]  # run name -> results folder (holding <stage>/ folders)
    stages: dict[str, tuple[str, ...]]  # run name -> the stages that run produced (others are copies)


def run_study(case: Path, base: Path, scenarios: tuple[int, ...]) -> Study:
    """cluster, plan, plan --no-reliability, reliability, dispatch per scenario; each run in its own folder."""
    main = base / "main"
    invoke("cluster", case, "--out", main)
    invoke("plan", case, "--out", main)
    invoke("reliability", case, "--out", main)
    runs = {"main": main}
    stages = {"main": ("cluster", "plan", "reliability")}
    norel = base / "no_reliability"
    shutil.copytree(main / "cluster", norel / "cluster")
    invoke("plan", case, "--out", norel, "--no-reliability")
    runs["no_reliability"] = norel
    stages["no_reliability"] = ("plan",)
    for s in scenarios:
        folder = base / f"dispatch_{s}"
        shutil.copytree(main / "cluster", folder / "cluster")
        invoke("dispatch", case, "--out", folder, "--day", str(s))
        runs[f"dispatch_{s}"] = folder
        stages[f"dispatch_{s}"] = ("dispatch",)
    return Study(case=case, runs=runs, stages=stages)


@pytest.fixture(scope="session")
def ieee33_study(tmp_path_factory) -> Study:
    return run_study(IEEE33, tmp_path_factory.mktemp("ieee33"), DISPATCH_SCENARIOS)


@pytest.fixture(scope="session")
def small_study(tmp_path_factory) -> Study:
    return run_study(SMALL, tmp_path_factory.mktemp("small"), (0, 1))


# ------------------------------------------------------------------------- the README's tour
def section(title: str) -> str:
    """The body of the README's ``## title`` section."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, flags=re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def tour_lines() -> list[str]:
    """The lines of the quick tour's code block."""
    match = re.search(r"^```sh\n(.*?)^```", section("Quick tour"), flags=re.M | re.S)
    assert match, "the quick tour has no ```sh block"
    return [line for line in match.group(1).splitlines() if line.strip()]


def tour_command(line: str) -> list[str]:
    """The arguments of an ``adnstudy ...`` or ``python -m adnstudy ...`` line, without its comment."""
    words = shlex.split(line, comments=True)
    if words[:3] == ["python", "-m", "adnstudy"]:
        return words[3:]
    assert words[0] == "adnstudy", f"not an adnstudy command: {line!r}"
    return words[1:]


@dataclass(frozen=True)
class Tour:
    """The README's quick tour as run: its folder, each command's result, the output of its ``run`` line."""

    folder: Path
    lines: list[str]
    results: list[tuple[str, list[str], Any]]  # (line, arguments, CliRunner result), up to the first failure
    run_output: str

    @property
    def results_dir(self) -> Path:
        return self.folder / "results" / "ieee33"


@pytest.fixture(scope="session")
def readme_tour(tmp_path_factory) -> Tour:
    """Every command line of the README's quick tour, in order, in a folder laid out as a clone (the shipped
    33-bus study in full: test_readme.py checks the tour, test_coplan.py the co-planning figures it made)."""
    folder = tmp_path_factory.mktemp("tour")
    for name in ("cases", "configs"):
        (folder / name).symlink_to(ROOT / name, target_is_directory=True)
    lines = tour_lines()
    results, run_output = [], ""
    here = Path.cwd()
    os.chdir(folder)
    try:
        for line in lines[1:]:
            args = tour_command(line)
            result = runner.invoke(app, args)
            results.append((line, args, result))
            if result.exit_code != 0:
                break
            if args[0] == "run":
                run_output = result.stdout
    finally:
        os.chdir(here)
    return Tour(folder=folder, lines=lines, results=results, run_output=run_output)


def _in_group(item, name: str) -> None:
    """Put a test in an xdist group: its id gets ``@name``, which ``--dist loadgroup`` schedules as one unit.

    This is what xdist does for an ``xdist_group`` mark, done here because xdist 3.8 sets ``item._nodeid``,
    which pytest 9.2 no longer reads (it keeps the id in ``_id``), so marks no longer group anything."""
    new = f"{item.nodeid}@{name}"
    if hasattr(item, "_id"):
        from _pytest.nodes import coerce_node_id

        item._id = coerce_node_id(new)
    else:
        item._nodeid = new


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items) -> None:
    """Under pytest-xdist (``make test`` runs two workers with ``--dist loadgroup``) the tests that share an
    expensive session fixture run on one worker, so the fixture is built once: the README tour (the shipped
    study in full, ~6 min) and the 33-bus study."""
    if not getattr(config.option, "loadgroup", False):  # set in xdist's workers under --dist loadgroup
        return
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "readme_tour" in names:
            _in_group(item, "tour")
        elif "ieee33_study" in names:
            _in_group(item, "ieee33")
