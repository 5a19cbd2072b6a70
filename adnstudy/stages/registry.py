"""The stage contract: every stage declared once, and everything else built from the declaration.

A :class:`Stage` names the case sections it needs, the tables of earlier
stages it reads, the tables and figures it writes, the checks it relies on,
its options (those that change results are part of its run key) and how its
summary is reported. From :data:`STAGES`:

* the command line makes one command per stage (``cli.py``), with the
  stage's options, help and report;
* ``adnstudy run`` runs the stages in order and skips those up to date
  (``pipeline.py``);
* ``adnstudy validate`` runs the checks of every stage the case has sections
  for (:func:`validate_case`), and each stage runs its own before solving
  (:func:`checked_inputs`);
* a stage reads exactly the tables it declares (:func:`read_inputs`), and the
  results store refuses to commit tables it did not declare.

Stage modules are imported only when a stage runs, so ``adnstudy --help``
does not pay for the solvers.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from adnstudy.checks import (
    BRANCH_RATINGS,
    CLUSTER_DAYS,
    COPLAN_INVESTORS,
    FEEDER,
    MICROGRID_SUPPLY,
    OUTAGE_DATA,
    PEAK_LOAD,
    PRICES,
    PROFILES,
    SAIFI_LIMIT,
    SOLVER,
    SOLVER_OPTIONS,
    WHOLESALE_PRICE,
    CaseInputs,
    Check,
)
from adnstudy.config.load import Case
from adnstudy.errors import CaseError
from adnstudy.results.store import StageWriter, read_table, table_digest, table_path

#: A line the command prints after the stage: (text, to stderr).
Line = tuple[str, bool]


def resolve(ref: str) -> Callable[..., Any]:
    """``"package.module:function"`` → the function (imported now)."""
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Option:
    """A command-line option of a stage."""

    name: str  # keyword of the stage's run function (and of its report)
    flags: tuple[str, ...]  # how the command line spells it
    annotation: Any  # its type, as Typer reads it
    default: Any
    help: str
    #: "result": passed to the stage and part of its run key; "display": only changes what is printed;
    #: "action": a flag that runs ``action`` (a "module:function" of the case) instead of the stage;
    #: "input": how the stage treats its inputs (not passed to the stage, not in its run key: --force-inputs)
    kind: str = "result"
    action: str | None = None
    metavar: str | None = None


#: Every command of a stage that reads earlier stages' tables has it (``Stage.command_options``): use those
#: tables although they fail the provenance check (``results/provenance.py``), with a warning in the manifest.
FORCE_INPUTS = Option(
    "force_inputs", ("--force-inputs",), bool, False,
    "Use earlier stages' tables even if they do not match this case (missing manifest, edited table, other case "
    "content): a warning, recorded in the manifest. Unreadable or out-of-range tables are still refused.",
    kind="input",
)


@dataclass(frozen=True)
class Stage:
    name: str
    help: str  # the command's help (first line: the summary), with an example
    sections: tuple[str, ...]  # case sections besides network
    reads: tuple[tuple[str, str], ...]  # (stage, table) of earlier stages
    tables: tuple[str, ...]  # always written
    run: str  # "module:function"(case, out_dir, run_key=..., **options) -> summary dict
    report: str  # "module:function"(case, out_dir, summary, options) -> list[Line]
    progress: str  # what the spinner says while it runs
    checks: tuple[Check, ...] = (FEEDER,)
    optional_tables: tuple[str, ...] = ()  # written only in some cases (e.g. with a reliability section)
    figures: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()
    in_run: bool = True  # part of `adnstudy run`
    #: results folder for given options, when it is not the stage's name
    folder: Callable[[Mapping[str, Any]], str] | None = None
    #: what else its results depend on, for its run key: case sections (or dotted fields) read when present,
    #: and data files ("feeder": the feeder tables, "profiles": the profile files)
    also_reads: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    #: tables of earlier stages read when they exist in the results folder, unless the option named like
    #: that stage is False (dispatch reads the plan unless --no-plan)
    optional_reads: tuple[tuple[str, str], ...] = ()
    #: an option that names another results folder, and the (stage, table)s read from there when it is given
    folder_reads: tuple[str, tuple[tuple[str, str], ...]] | None = None
    #: option → further case sections and files ("files:profiles") read when the option is set
    option_reads: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: option → case sections not read when the option is False (plan --no-reliability)
    option_skips: tuple[tuple[str, tuple[str, ...]], ...] = ()
    reads_network: bool = True  # its results depend on the network section and the feeder tables

    @property
    def requires(self) -> tuple[str, ...]:
        """Earlier stages whose tables this one reads."""
        return tuple(dict.fromkeys(s for s, _ in self.reads))

    def depends_on(self, options: Mapping[str, Any] | None = None) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(case sections or dotted fields, data files) this stage's results depend on, given its options."""
        options = options or {}
        extra = [x for name, xs in self.option_reads if options.get(name) for x in xs]
        skipped = {x for name, xs in self.option_skips if options.get(name) is False for x in xs}
        net = ("network",) if self.reads_network else ()
        sections = (*net, *self.sections, *(x for x in self.also_reads if x not in skipped),
                    *(x for x in extra if not x.startswith("files:")))
        files = (*(("feeder",) if self.reads_network else ()), *self.files,
                 *(x.removeprefix("files:") for x in extra if x.startswith("files:")))
        return tuple(dict.fromkeys(sections)), tuple(dict.fromkeys(files))

    def tables_read(self, out_dir: Path, options: Mapping[str, Any] | None = None) -> dict[tuple[str, str], Path]:
        """(stage, table) → the file this stage reads for it, given its options and what exists in ``out_dir``."""
        options = options or {}
        out: dict[tuple[str, str], Path] = {}
        for up, t in self.reads:
            out[up, t] = table_path(out_dir, up, t)
        for up, t in self.optional_reads:
            path = table_path(out_dir, up, t)
            if options.get(up, True) is not False and path.is_file():
                out[up, t] = path
        if self.folder_reads is not None and options.get(self.folder_reads[0]) is not None:
            src = Path(options[self.folder_reads[0]])
            for up, t in self.folder_reads[1]:
                out[up, t] = table_path(src, up, t)
        return out

    @property
    def reads_tables(self) -> bool:
        """It reads tables of earlier stages (always, when they exist, or with an option)."""
        return bool(self.reads or self.optional_reads or self.folder_reads)

    @property
    def command_options(self) -> tuple[Option, ...]:
        """The options of its command: its own, and ``--force-inputs`` if it reads earlier stages' tables."""
        return (*self.options, FORCE_INPUTS) if self.reads_tables else self.options

    def folder_for(self, options: Mapping[str, Any] | None = None) -> str:
        return self.folder(options or {}) if self.folder is not None else self.name

    def result_options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The options that change results, as given (those left at their default are left out)."""
        return {o.name: given[o.name] for o in self.options
                if o.kind == "result" and o.name in given and given[o.name] != o.default}


#: The solver settings a MIP stage's results depend on: all but ``threads``, which changes how fast the answer
#: comes, not the question (``adnstudy/threads.py``; a sweep caps it per task).
SOLVER_FIELDS = ("solver.name", "solver.mip_gap", "solver.time_limit_s", "solver.options")


STAGES: tuple[Stage, ...] = (
    Stage(
        name="powerflow",
        help="AC power flow (backward/forward sweep) of the case's peak snapshot, or of every hour.\n\n"
        "Prints losses and the minimum voltage (published bus numbers, substation = 1) and writes bus, "
        "branch and summary tables to OUT/powerflow/ (with --year: to OUT/powerflow_year/).\n\n"
        "Example: adnstudy powerflow cases/ieee33.yaml --json",
        sections=(), reads=(), tables=("bus", "branch", "summary"), figures=("voltage_profile",),
        checks=(FEEDER, PEAK_LOAD),
        run="adnstudy.stages.powerflow:powerflow_stage", report="adnstudy.stages.powerflow:report",
        progress="Solving the AC power flow",
        options=(
            Option("year", ("--year",), bool, False, "Every hour of the case's profiles, not just the peak."),
            Option("json", ("--json",), bool, False, "Print the summary as JSON.", kind="display"),
        ),
        option_reads=(("year", ("profiles", "files:profiles")),),
        folder=lambda opts: "powerflow_year" if opts.get("year") else "powerflow",
    ),
    Stage(
        name="cluster",
        help="Typical days by density-peaks-seeded K-means, compared with the usual alternatives.\n\n"
        "Writes profiles, typical, weights, assignment, metrics and decision tables and two figures to OUT/cluster/.\n\n"
        "Example: adnstudy cluster cases/ieee33.yaml",
        sections=("profiles", "clustering"), reads=(),
        tables=("profiles", "typical", "weights", "assignment", "metrics", "decision"),
        figures=("decision_graph", "typical_days"), checks=(FEEDER, PROFILES, CLUSTER_DAYS),
        run="adnstudy.stages.cluster:cluster_stage", report="adnstudy.stages.cluster:report",
        progress="Clustering typical days",
        options=(
            Option("suggest_k", ("--suggest-k",), bool, False,
                   "Propose K from the γ curve and the SSE elbow, explain, and stop.", kind="action",
                   action="adnstudy.stages.cluster:suggest_k_report"),
        ),
        reads_network=False, files=("profiles",),
    ),
    Stage(
        name="reliability",
        help="IEEE 1366 indices (SAIFI, SAIDI, CAIDI, ASAI, EENS) by enumerating every branch fault.\n\n"
        "Writes reliability and bus_reliability tables to OUT/reliability/ (with --plan DIR: the indices of "
        "that plan's network, to OUT/reliability_plan/).\n\n"
        "Example: adnstudy reliability cases/ieee33.yaml --plan results/ieee33",
        sections=("reliability",), reads=(), tables=("reliability", "bus_reliability"),
        checks=(FEEDER, OUTAGE_DATA),
        run="adnstudy.stages.reliability:reliability_stage", report="adnstudy.stages.reliability:report",
        progress="Enumerating branch faults",
        options=(
            Option("plan_dir", ("--plan",), Path | None, None,
                   "Results folder of a plan whose DG may supply islands.", metavar="DIR"),
        ),
        folder=lambda opts: "reliability_plan" if opts.get("plan_dir") is not None else "reliability",
        also_reads=("profiles",), files=("profiles",),
        folder_reads=("plan_dir", (("plan", "investment"), ("cluster", "typical"), ("cluster", "weights"))),
        option_reads=(("plan_dir", ("candidates", "economics")),),
    ),
    Stage(
        name="plan",
        help="RES siting and sizing over the typical days (MISOCP over DistFlow), checked by AC power flow.\n\n"
        "Needs the typical days of 'adnstudy cluster'. Writes investment, bus, branch, cost (beside the "
        "no-investment baseline) and storage tables (and the reliability tables when the case has a reliability "
        "section) and two figures to OUT/plan/.\n\n"
        "Example: adnstudy plan cases/ieee33.yaml --time-limit 120",
        sections=("profiles", "candidates", "economics"), reads=(("cluster", "typical"), ("cluster", "weights")),
        tables=("investment", "bus", "branch", "cost", "storage"),
        optional_tables=("reliability", "bus_reliability", "microgrid_exchange", "existing"),
        figures=("voltage_profile", "sited_capacity"),
        checks=(FEEDER, PROFILES, PRICES, MICROGRID_SUPPLY, BRANCH_RATINGS, OUTAGE_DATA, SAIFI_LIMIT, SOLVER),
        run="adnstudy.stages.plan:plan_stage", report="adnstudy.stages.plan:report",
        progress="Solving the planning MISOCP",
        options=(
            Option("solver", ("--solver",), str | None, None,
                   "'default' (outer approximation, HiGHS master + Clarabel per day), 'branch_and_bound' or a CVXPY solver: SCIP, GUROBI, MOSEK, ECOS_BB.",
                   metavar="NAME"),
            Option("time_limit", ("--time-limit",), float | None, None, "Seconds; the best plan found is kept.",
                   metavar="SECONDS"),
            Option("reliability", ("--reliability/--no-reliability",), bool, True,
                   "Use the case's reliability section (default: yes)."),
        ),
        also_reads=("reliability", "microgrids", *SOLVER_FIELDS), option_skips=(("reliability", ("reliability",)),),
    ),
    Stage(
        name="dispatch",
        help="Day-ahead MG–ADN dispatch with bilateral trading: welfare clearing, then Nash-bargaining payments.\n\n"
        "Solved distributedly (ATC between the ADN and the MGs, closed-form ADMM among the MGs) and centrally "
        "as the reference, for every typical day of 'adnstudy cluster'. Writes schedule, trades, payments, "
        "agents, agents_by_scenario, adn, network and convergence tables and three figures to OUT/dispatch/.\n\n"
        "Example: adnstudy dispatch cases/ieee33.yaml --scenario 0",
        sections=("profiles", "economics", "microgrids", "market"),
        reads=(("cluster", "typical"), ("cluster", "weights")),
        tables=("schedule", "trades", "payments", "agents", "agents_by_scenario", "adn", "network", "convergence"),
        optional_tables=("adn_units", "existing"),
        figures=("convergence", "trades", "costs"),
        checks=(FEEDER, PROFILES, PRICES, WHOLESALE_PRICE, MICROGRID_SUPPLY, BRANCH_RATINGS, SOLVER_OPTIONS),
        run="adnstudy.stages.dispatch:dispatch_stage", report="adnstudy.stages.dispatch:report",
        progress="Clearing the market and bargaining, day by day",
        options=(
            Option("scenarios", ("--scenario", "--day"), list[int] | None, None,
                   "Only this typical day (a scenario id of cluster/typical); repeat for several.", metavar="N"),
            Option("plan", ("--plan/--no-plan",), bool, True,
                   "Run on the planned network when OUT/plan exists (default), or on the bare feeder."),
        ),
        also_reads=("candidates", "solver.options"), optional_reads=(("plan", "investment"),),
    ),
    Stage(
        name="coplan",
        help="Collaborative planning of the ADN and MG investors by generalized Nash bargaining.\n\n"
        "Each investor plans alone (the disagreement point); then an alternating optimisation fixes the 0-1 "
        "decisions, clears welfare over the typical days distributedly (ATC + ADMM) and lets each investor "
        "re-choose its own; payments share the gain by bargaining power. Checked against the centralised "
        "welfare optimum and each investor's best unilateral deviation. Writes investment, agents, iterations, "
        "trades, payments, schedule and convergence tables and three figures to OUT/coplan/ (with "
        "--centralised: only the centralised plan, to OUT/coplan_centralised/).\n\n"
        "Example: adnstudy coplan cases/ieee33.yaml",
        sections=("profiles", "economics", "microgrids", "market", "coplan"),
        reads=(("cluster", "typical"), ("cluster", "weights")),
        tables=("investment",), optional_tables=("agents", "iterations", "trades", "payments", "schedule", "convergence"),
        figures=("capacity", "gains", "welfare"),
        checks=(FEEDER, PROFILES, PRICES, WHOLESALE_PRICE, MICROGRID_SUPPLY, BRANCH_RATINGS, OUTAGE_DATA, SAIFI_LIMIT,
                COPLAN_INVESTORS, SOLVER),
        run="adnstudy.stages.coplan:coplan_stage", report="adnstudy.stages.coplan:report",
        progress="Co-planning: disagreement point, alternating optimisation, centralised reference, stability",
        options=(
            Option("centralised_only", ("--centralised",), bool, False,
                   "Only the centralised welfare-maximising plan (the reference), to OUT/coplan_centralised/."),
            Option("reliability", ("--reliability/--no-reliability",), bool, True,
                   "Use the case's reliability section for the ADN (default: yes)."),
        ),
        folder=lambda opts: "coplan_centralised" if opts.get("centralised_only") else "coplan",
        also_reads=("candidates", "reliability", *SOLVER_FIELDS), option_skips=(("reliability", ("reliability",)),),
    ),
)
BY_NAME: dict[str, Stage] = {s.name: s for s in STAGES}


def missing_sections(case: Case, stage: Stage) -> list[str]:
    return [s for s in stage.sections if getattr(case.config, s) is None]


def require(case: Case, stage: Stage) -> None:
    """Raise a clear error if a section the stage needs is absent."""
    missing = missing_sections(case, stage)
    if missing:
        raise CaseError(f"stage '{stage.name}' needs the '{missing[0]}' section, which this case does not have",
                        file=case.path, field=missing[0])


def checked_inputs(case: Case, stage: str, inputs: CaseInputs | None = None) -> CaseInputs:
    """The stage's sections are present and its checks pass; its case inputs, loaded once."""
    s = BY_NAME[stage]
    require(case, s)
    inputs = inputs or CaseInputs(case)
    for check in s.checks:
        check(inputs)
    return inputs


def read_inputs(case: Case, out_dir: Path, stage: str, options: Mapping[str, Any] | None = None
                ) -> tuple[dict[tuple[str, str], pd.DataFrame], dict[str, str | None]]:
    """The tables the stage reads (declared, and optional ones that exist) and their content digests.

    Each table must be readable Parquet, be what its stage wrote for this case (``results/provenance.py``;
    ``--force-inputs`` makes that a warning) and hold what the stage relies on (``results/schemas.py``).
    The digests go into the stage's manifest (``inputs``: ``"stage/table"`` → sha256), the same
    values its run key holds.
    """
    from adnstudy.results.provenance import check_provenance
    from adnstudy.results.schemas import check_tables

    paths = BY_NAME[stage].tables_read(out_dir, options)
    tables = {(up, t): read_table(path.parents[1], up, t, case) for (up, t), path in paths.items()}
    digests = {f"{up}/{t}": table_digest(path) for (up, t), path in paths.items()}
    manifests = check_provenance(case, stage, paths, digests)
    check_tables(case, tables, paths, manifests)
    return tables, digests


def applicable_stages(case: Case) -> list[str]:
    """Stages whose case sections are all present, in order."""
    return [s.name for s in STAGES if not missing_sections(case, s)]


def validate_case(case: Case, stages: list[str] | None = None, inputs: CaseInputs | None = None
                  ) -> tuple[CaseInputs, list[str]]:
    """Run the checks of ``stages`` (each needing its sections; default: every stage the case has sections for),
    each check once; return the inputs and those stages."""
    inputs = inputs or CaseInputs(case)
    if stages is None:
        stages = applicable_stages(case)
    done: set[str] = set()
    for name in stages:
        require(case, BY_NAME[name])
        for check in BY_NAME[name].checks:
            if check.name not in done:
                check(inputs)
                done.add(check.name)
    return inputs, stages


def all_checks() -> dict[str, tuple[Check, ...]]:
    """Stage name → its checks."""
    return {s.name: s.checks for s in STAGES}


def stage_writer(out_dir: Path, case: Case, stage: str, inputs: dict[str, str | None] | None = None,
                 options: Mapping[str, Any] | None = None) -> StageWriter:
    """The results writer of a stage, holding it to the tables and figures it declares."""
    from adnstudy.results.provenance import current_run

    s = BY_NAME[stage]
    writer = StageWriter(out_dir, stage, case, inputs=inputs, folder=s.folder_for(options), tables=s.tables,
                         optional_tables=s.optional_tables, figures=s.figures)
    run = current_run(stage)
    if run is not None:  # run through the command line or `adnstudy run`: options, key parts, forced inputs
        writer.record(**run.manifest_fields())
    return writer
