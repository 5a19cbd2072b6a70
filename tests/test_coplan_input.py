"""Bad input for co-planning (issue 12), through ``adnstudy validate``: exit 2, one line naming the field, no traceback.

The case schema of ``coplan``: each MG's ``candidates`` (the candidate-site
schema at the MG's PCC, with a ``generator`` tech and its fuel cost) and the
``coplan`` section (the ADN's bargaining power, the alternating loop's
settings). Nothing here solves anything: the errors come from loading the case
or from the ``coplan investors`` check, before any model is built.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import IEEE33, ROOT, SMALL, edited_case
from typer.testing import CliRunner, Result

from adnstudy.checks import COPLAN_INVESTORS, CaseInputs
from adnstudy.cli import app
from adnstudy.config.load import load_case
from adnstudy.errors import CaseError

runner = CliRunner()

#: two candidates for the small case's first MG (north, PCC at bus 4), appended after its storage line
NORTH_STORAGE = "    storage: {power_mw: 0.1, energy_mwh: 0.4, cost_usd_per_mwh: 2}\n"
PV = "{tech: pv, max_mw: 0.3, capex_usd_per_mw: 600000, fixed_capex_usd: 20000}"
GAS = "{tech: generator, max_mw: 0.2, capex_usd_per_mw: 500000, cost_b_usd_per_mwh: 62}"


def with_candidates(*items: str) -> tuple[str, str]:
    """An edit giving the small case's MG 'north' these candidates (YAML flow mappings)."""
    return NORTH_STORAGE, NORTH_STORAGE + "    candidates:\n" + "".join(f"      - {c}\n" for c in items)


def small_case(tmp_path: Path, *edits: tuple[str, str], coplan: str = "coplan: {}\n") -> Path:
    """The small case with ``edits`` and a coplan section appended."""
    path = edited_case(SMALL, tmp_path, *edits)
    path.write_text(path.read_text() + coplan)
    return path


def validate(case: Path) -> Result:
    return runner.invoke(app, ["validate", str(case)])


def refused(result: Result, case: Path, field: str, *words: str) -> str:
    """The one error line of a refused case: exit 2, no traceback, naming the case file and ``field``."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert re.match(rf"error: {re.escape(str(case))}:\d+: {re.escape(field)}: ", line), line
    for w in words:
        assert w in line, line
    return line


def line_no(case: Path, message: str) -> int:
    return int(message.split(f"{case}:")[1].split(":")[0])


# ------------------------------------------------------------------ MG candidates
def test_mg_candidate_without_max_mw_names_it(tmp_path: Path) -> None:
    case = small_case(tmp_path, with_candidates(PV, "{tech: wind, capex_usd_per_mw: 1300000}"))
    line = refused(validate(case), case, "microgrids[0].candidates[1].max_mw", "required field is missing")
    assert "more problem" not in line  # the only problem: one clear message
    assert case.read_text().splitlines()[line_no(case, line) - 1].strip().startswith("- {tech: wind")


def test_mg_candidate_without_capex_names_it(tmp_path: Path) -> None:
    case = small_case(tmp_path, with_candidates("{tech: storage, max_mw: 0.2, energy_mwh_per_mw: 4}"))
    refused(validate(case), case, "microgrids[0].candidates[0].capex_usd_per_mw", "required field is missing")


def test_mg_candidate_without_size_or_cost_names_max_mw_first(tmp_path: Path) -> None:
    case = small_case(tmp_path, with_candidates("{tech: pv}"))
    refused(validate(case), case, "microgrids[0].candidates[0].max_mw", "required field is missing",
            "[and 1 more problem(s)]")


def test_mg_candidate_at_another_bus_than_the_pcc(tmp_path: Path) -> None:
    case = small_case(tmp_path, with_candidates(PV, "{bus: 5, tech: pv, max_mw: 0.2, capex_usd_per_mw: 600000}"))
    line = refused(validate(case), case, "microgrids[0].candidates[1].bus", "PCC, bus 4, not bus 5")
    assert "bus: 5" in case.read_text().splitlines()[line_no(case, line) - 1]


def test_mg_candidate_at_its_pcc_and_a_generator_are_accepted(tmp_path: Path) -> None:
    case = small_case(tmp_path, with_candidates("{bus: 4, tech: pv, max_mw: 0.3, capex_usd_per_mw: 600000}", GAS))
    result = validate(case)
    assert result.exit_code == 0, result.output
    assert "sections: clustering, candidates, economics, reliability, microgrids, market, coplan" in result.stdout
    gas = load_case(case).config.microgrids[0].candidates[1]
    assert (gas.tech, gas.bus, gas.cost_b_usd_per_mwh, gas.cost_a_usd_per_mw2h) == ("generator", None, 62, 0)


@pytest.mark.parametrize("field", ["cost_b_usd_per_mwh", "cost_a_usd_per_mw2h"])
def test_generator_fuel_cost_on_a_pv_candidate(tmp_path: Path, field: str) -> None:
    case = small_case(tmp_path, with_candidates(f"{{tech: pv, max_mw: 0.3, capex_usd_per_mw: 600000, {field}: 60}}"))
    refused(validate(case), case, f"microgrids[0].candidates[0].{field}", "fuel cost of a generator candidate",
            "tech: pv")


def test_zero_fuel_cost_on_a_pv_candidate_is_accepted(tmp_path: Path) -> None:
    case = small_case(tmp_path, with_candidates("{tech: pv, max_mw: 0.3, capex_usd_per_mw: 1, cost_b_usd_per_mwh: 0}"))
    assert validate(case).exit_code == 0


def test_storage_candidate_of_an_mg_needs_its_energy_ratio(tmp_path: Path) -> None:
    case = small_case(tmp_path, with_candidates("{tech: storage, max_mw: 0.2, capex_usd_per_mw: 350000}"))
    refused(validate(case), case, "microgrids[0].candidates[0].tech", "needs energy_mwh_per_mw")


def test_mg_candidate_of_an_unknown_tech(tmp_path: Path) -> None:
    case = small_case(tmp_path, with_candidates("{tech: diesel, max_mw: 0.2, capex_usd_per_mw: 1}"))
    refused(validate(case), case, "microgrids[0].candidates[0].tech", "'generator'")


# ------------------------------------------------------------------ bargaining powers
@pytest.mark.parametrize("value", ["0", "-1"])
def test_adn_bargaining_power_must_be_positive(tmp_path: Path, value: str) -> None:
    case = small_case(tmp_path, with_candidates(PV), coplan=f"coplan:\n  adn_bargaining_power: {value}\n")
    refused(validate(case), case, "coplan.adn_bargaining_power", "from 0.001 to 1,000", f"(got {value})")


def test_mg_bargaining_power_must_be_positive(tmp_path: Path) -> None:
    case = small_case(tmp_path, with_candidates(PV), ("bargaining_power: 2.0", "bargaining_power: 0"))
    refused(validate(case), case, "microgrids[1].bargaining_power", "from 0.001 to 1,000", "(got 0)")


@pytest.mark.parametrize("text, field, words", [
    ("coplan: {max_iter: 0}\n", "coplan.max_iter", "from 1 to 1,000,000"),
    ("coplan: {enumerate_max: 5000}\n", "coplan.enumerate_max", "from 1 to 4,096"),
    ("coplan: {stability_tol: 2}\n", "coplan.stability_tol", "from 1e-12 to 1"),
    ("coplan: {max_iters: 5}\n", "coplan.max_iters", "unknown field"),
])
def test_coplan_settings_out_of_range(tmp_path: Path, text: str, field: str, words: str) -> None:
    case = small_case(tmp_path, with_candidates(PV), coplan=text)
    refused(validate(case), case, field, words)


# ------------------------------------------------------------------ investors
def test_coplan_without_microgrids(tmp_path: Path) -> None:
    text = SMALL.read_text()
    mgs = text[text.index("microgrids:"):text.index("market:")]
    case = small_case(tmp_path, (mgs, ""))
    line = refused(validate(case), case, "coplan", "needs a 'microgrids' list", "coplan: null")
    assert case.read_text().splitlines()[line_no(case, line) - 1].startswith("coplan:")


def test_coplan_with_an_empty_microgrid_list(tmp_path: Path) -> None:
    text = SMALL.read_text()
    mgs = text[text.index("microgrids:"):text.index("market:")]
    case = small_case(tmp_path, (mgs, "microgrids: []\n\n"))
    refused(validate(case), case, "coplan", "needs a 'microgrids' list")


def test_coplan_null_over_a_defaults_file_removes_it(tmp_path: Path) -> None:
    """A variant of the shipped case without microgrids leaves coplan out with coplan: null."""
    case = tmp_path / "variant.yaml"
    case.write_text(f"defaults: {IEEE33}\nmicrogrids: null\nmarket: null\ncoplan: null\n")
    result = validate(case)
    assert result.exit_code == 0, result.output
    assert "coplan" not in result.stdout.split("sections:")[1].splitlines()[0]


@pytest.fixture
def coplan_checks() -> None:
    """``validate`` runs COPLAN_INVESTORS for a case with a coplan section: the coplan stage's check."""
    from adnstudy.stages import registry

    assert COPLAN_INVESTORS in registry.BY_NAME["coplan"].checks


def no_candidates(source: Path) -> list[tuple[str, str]]:
    """Edits removing the ADN's candidates section and every MG's candidates of a case file."""
    text = source.read_text()
    adn = re.search(r"^candidates:\n(?:[ #].*\n|\n)*?(?=^\S)", text, flags=re.M)
    assert adn is not None
    edits = [(adn.group(0), "")]
    edits += [(m.group(0), "") for m in re.finditer(r"^    candidates:\n(?:      - .*\n)+", text, flags=re.M)]
    return edits


def test_coplan_with_no_candidates_for_any_investor(tmp_path: Path, coplan_checks: None) -> None:
    case = edited_case(IEEE33, tmp_path, *no_candidates(IEEE33))
    cfg = load_case(case).config
    assert cfg.candidates is None and not any(mg.candidates for mg in cfg.microgrids) and cfg.coplan is not None
    line = refused(validate(case), case, "coplan", "co-planning needs candidates for at least one investor",
                   "candidates.sites", "microgrids[].candidates")
    assert case.read_text().splitlines()[line_no(case, line) - 1].startswith("coplan:")


def test_candidates_of_one_mg_alone_are_enough(tmp_path: Path, coplan_checks: None) -> None:
    case = small_case(tmp_path, *no_candidates(SMALL)[:1], with_candidates(PV))
    assert load_case(case).config.candidates is None
    result = validate(case)
    assert result.exit_code == 0, result.output


def test_adn_candidates_alone_are_enough(tmp_path: Path) -> None:
    case = small_case(tmp_path)
    COPLAN_INVESTORS(CaseInputs(load_case(case)))  # no error


def test_mg_pv_candidate_needs_a_pv_series(tmp_path: Path, coplan_checks: None) -> None:
    case = small_case(tmp_path, with_candidates("{tech: wind, max_mw: 0.3, capex_usd_per_mw: 1, profile: pv}"))
    refused(validate(case), case, "microgrids[0].candidates[0].profile", "'pv' is a pv series, not wind")


def test_check_runs_only_with_a_coplan_section(tmp_path: Path) -> None:
    case = edited_case(SMALL, tmp_path, *no_candidates(SMALL))  # no coplan section: nothing to check
    COPLAN_INVESTORS(CaseInputs(load_case(case)))
    with_section = small_case(tmp_path / "c", *no_candidates(SMALL))
    with pytest.raises(CaseError, match="co-planning needs candidates for at least one investor"):
        COPLAN_INVESTORS(CaseInputs(load_case(with_section)))


# ------------------------------------------------------------------ the shipped cases
@pytest.mark.parametrize("name", ["ieee33", "ieee69"])
def test_shipped_cases_have_mg_candidates_and_a_coplan_section(name: str) -> None:
    case = load_case(ROOT / "cases" / f"{name}.yaml")
    cfg = case.config
    assert cfg.coplan is not None and cfg.coplan.adn_bargaining_power == 1.0
    for mg in cfg.microgrids:
        assert 2 <= len(mg.candidates) <= 4
        assert all(0.2 <= c.max_mw <= 0.8 < mg.pcc_limit_mw and c.bus is None for c in mg.candidates)
    techs = {c.tech for mg in cfg.microgrids for c in mg.candidates}
    assert techs == {"pv", "wind", "storage", "generator"}
    COPLAN_INVESTORS(CaseInputs(case))
