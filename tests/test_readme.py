"""The README stays true: its quick tour runs as written, and its table of what each stage reads and
writes is the stage registry's.

The tour (the session fixture ``readme_tour`` of conftest.py) runs every line of the README's "Quick
tour" block through the command line, in order, in a fresh folder that holds the repository's ``cases``
and ``configs`` (as a clone does): each must succeed and the closing ``adnstudy run`` must find every
stage up to date — each was run by a line above with the options ``run`` uses. It solves the shipped
33-bus study in full (about six minutes, most of it ``coplan``; test_coplan.py checks its figures).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from conftest import Tour, section
from typer.testing import CliRunner

from adnstudy.stages.registry import STAGES, Stage

ROOT = Path(__file__).resolve().parents[1]
STAGE_NAMES = {s.name for s in STAGES}
runner = CliRunner()


def code_spans(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


# ------------------------------------------------------------------------------ quick tour
def test_quick_tour_runs_as_written(readme_tour: Tour) -> None:
    assert readme_tour.lines[0] == ". .venv/bin/activate"  # the one line that is not a command
    for line, _args, result in readme_tour.results:
        assert result.exit_code == 0, f"{line}\nexit {result.exit_code}:\n{result.output}"
    commands = [args[0] for _, args, _ in readme_tour.results]
    assert "run" in commands, "the tour has no 'adnstudy run' line"
    after = commands[commands.index("run") + 1:]
    assert not STAGE_NAMES & set(after), f"stage commands after 'adnstudy run': {after}"
    status = dict(re.findall(r"^(\w+) +(up to date|ran|not in case|not final)", readme_tour.run_output, flags=re.M))
    assert status == {s.name: "up to date" for s in STAGES if s.in_run}, readme_tour.run_output


# ----------------------------------------------------------------------- which stage reads what
def variants(stage: Stage) -> list[dict[str, Any]]:
    """The stage's default options, and each option that changes results set on its own."""
    out: list[dict[str, Any]] = [{}]
    for o in stage.options:
        if o.kind == "result":
            out.append({o.name: (not o.default) if isinstance(o.default, bool) else "DIR"})
    return out


def flags(stage: Stage) -> set[str]:
    return {f for o in stage.options for spelling in o.flags for f in spelling.split("/")}


def reading_options(stage: Stage) -> set[str]:
    """Options that change what the stage reads or where it writes: the README's row must name them."""
    names = {name for name, _ in stage.option_reads} | {up for up, _ in stage.optional_reads}
    if stage.folder_reads is not None:
        names.add(stage.folder_reads[0])
    names |= {o.name for o in stage.options if stage.folder_for({o.name: True}) != stage.folder_for()}
    return {o.name for o in stage.options if o.name in names}


def stage_rows() -> dict[str, list[str]]:
    rows = [line for line in section("Which stage reads what").splitlines() if line.startswith("| `")]
    out = {}
    for row in rows:
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        assert len(cells) == 4, row
        out[code_spans(cells[0])[0]] = cells[1:]
    return out


def test_stage_table_lists_every_stage_in_order() -> None:
    assert list(stage_rows()) == [s.name for s in STAGES]


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_stage_table_is_the_registrys(stage: Stage) -> None:
    sections_cell, reads_cell, writes_cell = stage_rows()[stage.name]
    row = " ".join((sections_cell, reads_cell, writes_cell))
    options = [s.split()[0] for s in code_spans(row) if s.startswith("--")]
    assert set(options) <= flags(stage), f"options the stage does not have: {set(options) - flags(stage)}"
    for name in reading_options(stage):
        spelled = next(o.flags[0] for o in stage.options if o.name == name).split("/")
        assert any(f in options for f in spelled), f"the row does not say what {spelled} changes"

    depends = [stage.depends_on(v) for v in variants(stage)]
    sections = {s for secs, _ in depends for s in secs}
    files = {f for _, fs in depends for f in fs}
    assert {s for s in code_spans(sections_cell) if not s.startswith("--")} == sections
    assert ("feeder tables" in sections_cell) == ("feeder" in files)
    assert ("profile files" in sections_cell) == ("profiles" in files)

    declared = (*stage.reads, *stage.optional_reads, *(stage.folder_reads[1] if stage.folder_reads else ()))
    assert {s for s in code_spans(reads_cell) if not s.startswith("--")} == {f"{up}/{t}" for up, t in declared}
    assert (reads_cell == "none") == (not declared)

    written = [s for s in code_spans(writes_cell) if not s.startswith("--")]
    assert {s for s in written if s.endswith("/")} == {f"{stage.folder_for(v)}/" for v in variants(stage)}
    assert {s for s in written if not s.endswith("/")} == {*stage.tables, *stage.optional_tables}
