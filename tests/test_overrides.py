"""``--set PATH=VALUE``: case fields changed for one run, checked as the file's own, recorded in the manifest.

The parsing and the path walking (``config/overrides.py``) on plain data; the
loading (errors name the ``--set``, not a line of the file); and through the
command line on the shipped and the small case. Nothing here solves more than
the 33-bus peak power flow.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from adnstudy.cli import app
from adnstudy.config.load import load_case
from adnstudy.config.overrides import Override, apply, parse_set
from adnstudy.errors import CaseError
from adnstudy.pipeline import run_key
from adnstudy.results.provenance import rerun_command
from adnstudy.stages.registry import BY_NAME, STAGES, validate_case

ROOT = Path(__file__).resolve().parents[1]
IEEE33 = ROOT / "cases" / "ieee33.yaml"
SMALL = ROOT / "tests" / "cases" / "small" / "case.yaml"
runner = CliRunner()


def cli(*args: object) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def refused(result: Result, *needles: str) -> str:
    """Exit 2 and one line on stderr, no traceback, holding every needle."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def sets(*texts: str) -> list[Override]:
    return [parse_set(t) for t in texts]


# ------------------------------------------------------------------------------ parse_set
@pytest.mark.parametrize(("text", "path", "value"), [
    ("clustering.k=4", "clustering.k", 4),
    ("network.v_min_pu=0.93", "network.v_min_pu", 0.93),
    ("market=null", "market", None),
    ("network.v_substation_range_pu=[1.0, 1.05]", "network.v_substation_range_pu", [1.0, 1.05]),
    ("solver.name=abc", "solver.name", "abc"),
    ("name='4'", "name", "4"),
    ("coplan.follow_deviations=false", "coplan.follow_deviations", False),
    ("market.coordination={max_iter: 50, tol_mw: 0.0001}", "market.coordination", {"max_iter": 50, "tol_mw": 1e-4}),
    ("description=a=b", "description", "a=b"),  # split at the first '='
    ("microgrids[north].bargaining_power=2", "microgrids[north].bargaining_power", 2),
    (" clustering.k = 6", "clustering.k", 6),
])
def test_parse_set_reads_the_value_as_yaml(text: str, path: str, value: object):
    o = parse_set(text)
    assert (o.path, o.value, o.source) == (path, value, f"--set {text}")


@pytest.mark.parametrize(("text", "says"), [
    ("clustering.k", "no '='"),
    ("=4", "empty field path"),
    ("clustering..k=4", "bad field path 'clustering..k' at '..k'"),
    ("clustering.=4", "bad field path"),
    (".clustering.k=4", "bad field path"),
    ("microgrids[0=4", "brackets hold an index or a name"),
    ("microgrids]0[.x=4", "brackets hold an index or a name"),
    ("[0].x=4", "bad field path"),
    ("microgrids[0]x=4", "names are joined by '.'"),
    ("microgrids[].x=4", "empty []"),
    ("clustering.k=[1, 2", "the value is not valid YAML"),
    ("clustering.k={a: [}", "the value is not valid YAML"),
    ("clustering.k=", "no value after '='"),
    ("clustering.k=" + "[" * 40 + "]" * 40, "nested more than 32 levels"),
    ("clustering.k=[&a [1, 1], *a, *a]", None),  # aliases are fine within bounds
])
def test_parse_set_names_the_bad_syntax(text: str, says: str | None):
    if says is None:
        parse_set(text)
        return
    with pytest.raises(CaseError) as err:
        parse_set(text)
    assert str(err.value).startswith(f"--set {text}: "), str(err.value)
    assert says in str(err.value)


@pytest.mark.parametrize("value", [
    4, -0.5, 1e20, 1e-3, math.inf, True, None, "abc", "null", "4", "", "a: b", "it's", "two\nlines", "é [x",
    "1e-3", [1, "a", None, [2.5]], {"k": 4, "mode": "distance", "list": [1, 2]}, {"a b": {"c": []}},
])
def test_text_reads_back_to_the_same_value(value: object):
    o = Override("microgrids[north].pv_mw", value, "test")
    text = o.text()
    assert "\n" not in text
    back = parse_set(text)
    assert (back.path, back.value) == (o.path, value)
    assert type(back.value) is type(value)


def test_text_is_compact():
    assert Override("clustering.k", 4, "s").text() == "clustering.k=4"
    assert Override("a", [1.0, 1.05], "s").text() == "a=[1.0, 1.05]"
    assert Override("a", {"k": 6}, "s").text() == "a={k: 6}"
    assert Override("a", None, "s").text() == "a=null"
    assert Override("a", "null", "s").text() == "a='null'"


# ---------------------------------------------------------------------------------- apply
DATA = {
    "network": {"feeder": "ieee33", "v_min_pu": 0.95},
    "microgrids": [{"name": "north", "bus": 4, "pv_mw": 0.3}, {"name": "east", "bus": 7}, {"name": "west", "bus": 8}],
    "market": None,
}


def test_apply_sets_nested_list_and_named_fields_on_a_copy():
    out = apply(DATA, sets("network.v_min_pu=0.9", "microgrids[1].pv_mw=0.5", "microgrids[west].bus=3",
                           "clustering.k=4", "market.fee_usd_per_mwh=3", "solver.options.max_iters=50"))
    assert out["network"] == {"feeder": "ieee33", "v_min_pu": 0.9}
    assert out["microgrids"][1] == {"name": "east", "bus": 7, "pv_mw": 0.5}
    assert out["microgrids"][2]["bus"] == 3
    assert out["clustering"] == {"k": 4}  # a missing section is created
    assert out["market"] == {"fee_usd_per_mwh": 3}  # so is a null one
    assert out["solver"] == {"options": {"max_iters": 50}}
    assert DATA["network"]["v_min_pu"] == 0.95 and "pv_mw" not in DATA["microgrids"][1]  # the input is untouched


def test_apply_in_order_and_whole_values():
    out = apply(DATA, sets("network.v_min_pu=0.9", "network.v_min_pu=0.92", "microgrids=[{name: solo, bus: 5}]",
                           "microgrids[solo].pv_mw=1", "network={feeder: ieee69}"))
    assert out["network"] == {"feeder": "ieee69"}  # a mapping replaces the section whole
    assert out["microgrids"] == [{"name": "solo", "bus": 5, "pv_mw": 1}]
    value = [1, 2]
    out = apply({}, [Override("x", value, "s")])
    value.append(3)
    assert out["x"] == [1, 2]  # the data do not share the override's value


@pytest.mark.parametrize(("text", "says"), [
    ("microgrids[5].pv_mw=1", "--set microgrids[5].pv_mw=1: microgrids[5]: the case has 3 microgrids "
                              "(indices 0-2 or their names: north, east, west)"),
    ("microgrids[-1].pv_mw=1", "the case has 3 microgrids"),
    ("microgrids[south].pv_mw=1", "microgrids[south]: the case has 3 microgrids (indices 0-2 or their names"),
    ("microgrids.pv_mw=1", "microgrids.pv_mw: microgrids is a list of 3: pick an item first"),
    ("network[0]=1", "network[0]: network is a mapping, not a list"),
    ("network.v_min_pu.low=1", "network.v_min_pu.low: network.v_min_pu is the value 0.95, not a section"),
    ("candidates.sites[0].bus=3", "candidates.sites[0]: candidates.sites is not in the case, not a list"),
    ("market[0]=1", "market[0]: market is not in the case, not a list"),
    ("defaults=other.yaml", "--set defaults=other.yaml: defaults: 'defaults' cannot be changed"),
    ("defaults.x=1", "'defaults' cannot be changed"),
])
def test_apply_names_the_override_and_the_wrong_part(text: str, says: str):
    with pytest.raises(CaseError) as err:
        apply(DATA, sets(text))
    assert str(err.value).startswith(f"--set {text}: ")
    assert says in str(err.value)


def test_apply_refuses_ambiguous_names_and_names_its_source():
    data = {"microgrids": [{"name": "a"}, {"name": "a"}, {"bus": 3}]}
    with pytest.raises(CaseError, match=r"^sweep.yaml:3: microgrids\[a\]: 2 items of microgrids are named 'a'"):
        apply(data, [Override("microgrids[a].bus", 1, "sweep.yaml:3")])
    with pytest.raises(CaseError, match=r"empty"):
        apply({"microgrids": []}, sets("microgrids[0].bus=1"))
    with pytest.raises(CaseError, match=r"^sweep.yaml:4: bad field path"):  # an Override made by hand is checked too
        apply(data, [Override("microgrids[a", 1, "sweep.yaml:4")])


# ------------------------------------------------------------------------------ load_case
def test_load_case_applies_overrides_and_hashes_them():
    plain = load_case(SMALL)
    case = load_case(SMALL, sets("network.v_min_pu=0.93", "microgrids[east].bargaining_power=3"))
    assert case.config.network.v_min_pu == 0.93
    assert case.config.microgrids is not None and case.config.microgrids[1].bargaining_power == 3
    assert case.overrides == tuple(sets("network.v_min_pu=0.93", "microgrids[east].bargaining_power=3"))
    assert case.file_sha256 == plain.file_sha256
    assert case.config_sha256 != plain.config_sha256
    assert load_case(SMALL, sets("network.v_min_pu=0.95")).config_sha256 == plain.config_sha256  # same values


@pytest.mark.parametrize(("texts", "expected"), [
    (("clustering.kk=8",), "--set clustering.kk=8: clustering.kk: unknown field"),
    (("network.v_min_pu=3",), "--set network.v_min_pu=3: network.v_min_pu: Input should be from 0.5 to 1.5 pu (got 3)"),
    # a rule between fields names the override of one of them, also when the file gives the other
    (("network.v_max_pu=0.9",), "--set network.v_max_pu=0.9: network.v_max_pu: v_min_pu (0.95) must be below"),
    (("network.buses=null",), "--set network.buses=null: network.buses: a user feeder needs both"),
    # an error above the fields set (the section's own rule): the latest override below it
    (("network.buses=null", "network.branches=null"), "--set network.branches=null: network: give the feeder: 'feeder' (ieee33, ieee69)"),
    # a section created by an override: what else it needs
    (("coplan.max_iter=3", "microgrids=[]"), "--set coplan.max_iter=3: coplan: co-planning is between"),
    (("microgrids[north].name=east",), "--set microgrids[north].name=east: microgrids: microgrid names must be unique"),
    (("microgrids=[{name: a, bus: 4}]",), "--set microgrids=[{name: a, bus: 4}]: microgrids[0].load_peak_mw: required"),
])
def test_validation_errors_name_the_override(texts: tuple[str, ...], expected: str):
    with pytest.raises(CaseError) as err:
        load_case(SMALL, sets(*texts))
    assert str(err.value).startswith(expected), str(err.value)


def test_errors_after_loading_name_the_override():
    case = load_case(SMALL, sets("microgrids[east].bus=99"))
    assert case.where("microgrids", 1, "bus") == ("--set microgrids[east].bus=99", None)
    assert case.where("microgrids", 1) == ("--set microgrids[east].bus=99", None)  # above it
    assert case.where("microgrids", 0, "bus")[1] is not None  # a field the file gives keeps its line
    assert str(case.error("bus 99 is not on the feeder", "microgrids", 1, "bus")) == (
        "--set microgrids[east].bus=99: microgrids[1].bus: bus 99 is not on the feeder")
    with pytest.raises(CaseError, match=r"^--set microgrids\[east\].bus=99: microgrids\[1\].bus: bus 99"):
        validate_case(case)


def test_a_whole_section_set_replaces_the_lines_below_it():
    case = load_case(SMALL, sets("market={fee_mode: flat, fee_usd_per_mwh: 1}"))
    assert case.where("market", "fee_payer") == ("--set market={fee_mode: flat, fee_usd_per_mwh: 1}", None)
    assert case.config.market is not None and case.config.market.fee_payer == "split"  # the default, not the file's


# ------------------------------------------------------------------------- command line
def test_every_case_command_takes_set():
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    for name in ["validate", "run", *(s.name for s in STAGES)]:
        flags = {f for p in commands[name].params for f in p.opts}
        assert "--set" in flags, name


def test_cli_validate_with_set():
    result = cli("validate", IEEE33, "--set", "network.v_min_pu=0.93")
    assert result.exit_code == 0, result.output
    assert "with --set network.v_min_pu=0.93" in result.stdout


@pytest.mark.parametrize(("args", "needles"), [
    (("--set", "clustering.kk=3"), ("error: --set clustering.kk=3: clustering.kk: unknown field",)),
    (("--set", "network.v_min_pu=0.2"), ("--set network.v_min_pu=0.2", "from 0.5 to 1.5 pu", "(got 0.2)")),
    (("--set", "clustering.k=3", "--set", "microgrids[9].pv_mw=1"),
     ("--set microgrids[9].pv_mw=1: microgrids[9]: the case has 3 microgrids (indices 0-2 or their names: "
      "mg1, mg2, mg3)",)),
    (("--set", "clustering.k"), ("--set clustering.k: no '='",)),
])
def test_cli_refuses_a_bad_set_in_one_line(args: tuple[str, ...], needles: tuple[str, ...], tmp_path: Path):
    refused(cli("validate", IEEE33, *args), *needles)
    out = tmp_path / "out"
    refused(cli("powerflow", IEEE33, "--out", out, *args), *needles)
    assert not out.exists()


def test_powerflow_with_set_changes_the_result_and_the_manifest(tmp_path: Path):
    plain, heavy = tmp_path / "plain", tmp_path / "heavy"
    first = cli("powerflow", IEEE33, "--json", "--out", plain)
    second = cli("powerflow", IEEE33, "--json", "--out", heavy, "--set", "network.load_scale=1.2")
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert json.loads(second.stdout)["p_loss_kw"] > json.loads(first.stdout)["p_loss_kw"] * 1.2
    case = [json.loads((d / "powerflow" / "manifest.json").read_text())["case"] for d in (plain, heavy)]
    assert case[0]["overrides"] == [] and case[1]["overrides"] == ["network.load_scale=1.2"]
    assert case[0]["file_sha256"] == case[1]["file_sha256"]
    assert case[0]["config_sha256"] != case[1]["config_sha256"]


def test_rerun_command_repeats_the_sets(tmp_path: Path):
    case = load_case(SMALL, sets("clustering.k=2", "microgrids[north].pv_mw=0.2"))
    command = rerun_command(case, tmp_path, "cluster")
    assert command.endswith(" --set clustering.k=2 --set 'microgrids[north].pv_mw=0.2''")
    # a stage whose earlier tables are missing names the command with the sets
    result = cli("plan", SMALL, "--out", tmp_path, "--set", "clustering.k=2")
    refused(result, f"it is written by 'adnstudy cluster {SMALL} --out {tmp_path} --set clustering.k=2'")


def test_run_key_follows_only_the_fields_a_stage_reads(tmp_path: Path):
    plain = load_case(IEEE33)

    def key(stage: str, *texts: str) -> str:
        return run_key(load_case(IEEE33, sets(*texts)) if texts else plain, tmp_path, BY_NAME[stage])

    assert key("powerflow", "network.load_scale=1.2") != key("powerflow")
    assert key("powerflow", "clustering.k=6") == key("powerflow")
    assert key("cluster", "clustering.k=6") != key("cluster")
    assert key("cluster", "market.fee_usd_per_mwh=3") == key("cluster")
    assert key("dispatch", "microgrids[mg2].bargaining_power=2") != key("dispatch")
