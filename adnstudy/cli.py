"""Command line: thin commands, one library call each; errors become a message and an exit code.

Exit codes: 0 success, 2 bad input (case, feeder, profiles, missing inputs,
usage; a results folder another run is writing), 1 a solve or computation that
failed, 130 Ctrl-C (SIGINT), 143 SIGTERM.
"""

from __future__ import annotations

import functools
import inspect
import logging
import sys
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from adnstudy import __version__, interrupt
from adnstudy.errors import AdnstudyError
from adnstudy.stages.registry import STAGES, Stage, resolve

app = typer.Typer(
    name="adnstudy",
    help="Study runner for active distribution networks and microgrids.\n\n"
    "Example: adnstudy run cases/ieee33.yaml",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)

F = TypeVar("F", bound=Callable[..., Any])


class _State:
    verbose = 0  # -v given before the command
    log_handler: logging.Handler | None = None


STATE = _State()

CaseArg = Annotated[Path, typer.Argument(help="Case file (YAML).", metavar="CASE", show_default=False)]
OutOpt = Annotated[
    Path | None,
    typer.Option("--out", "-o", help="Results folder (default: results/<case name>).", show_default=False),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="PATH=VALUE", show_default=False,
                 help="Change a case field for this run, e.g. --set clustering.k=6 or "
                 "--set microgrids[north].bargaining_power=2; repeatable. Same paths as the case file (docs/case.md)."),
]
VerboseOpt = Annotated[
    int,
    typer.Option("--verbose", "-v", count=True, show_default=False,
                 help="Solver logs and progress (-vv: tracebacks); before or after the command."),
]


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


class _OwnInfo(logging.Filter):
    """adnstudy's info and debug lines; other packages' only from warnings up (not their import chatter)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name.split(".")[0] == "adnstudy"


def set_verbosity(level: int) -> None:
    """Log to stderr at WARNING, INFO (-v) or DEBUG (-vv); a fresh handler on the current stderr."""
    STATE.verbose = level
    root = logging.getLogger()
    if STATE.log_handler is not None:
        root.removeHandler(STATE.log_handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_OwnInfo())
    root.addHandler(handler)
    STATE.log_handler = handler
    root.setLevel(logging.DEBUG if level >= 2 else logging.INFO if level else logging.WARNING)


def handled(func: F) -> F:
    """A command that takes -v after its name too, and turns library errors into one line on stderr.

    The message goes to stderr with the error's exit code; no traceback (-vv shows it).
    """
    signature = inspect.signature(func, eval_str=True)

    @functools.wraps(func)
    def wrapper(*args: Any, verbose: int = 0, **kwargs: Any) -> Any:
        set_verbosity(STATE.verbose + verbose)  # -v before and after the command add up
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except AdnstudyError as exc:
            if STATE.verbose >= 2:
                traceback.print_exc()
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt as exc:  # Ctrl-C (130) or SIGTERM (143): the stage's writer cleaned up
            _fail(f"{interrupt.describe(exc)}; no results were written for the unfinished stage",
                  interrupt.exit_code(exc))
        except Exception as exc:  # an unexpected failure is still a clean message
            if STATE.verbose:
                traceback.print_exc()
            _fail(f"internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)", 1)

    verbose = inspect.Parameter("verbose", inspect.Parameter.KEYWORD_ONLY, default=0, annotation=VerboseOpt)
    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), verbose]
    )
    return wrapper  # type: ignore[return-value]


@contextmanager
def progress(message: str):
    """A spinner on stderr for long steps, shown only on a terminal."""
    if sys.stderr.isatty():
        from rich.console import Console

        with Console(stderr=True).status(message):
            yield
    else:
        yield


def _version(value: bool) -> None:
    if value:
        typer.echo(f"adnstudy {__version__}")
        raise typer.Exit(0)


@app.callback()
def main_options(
    verbose: VerboseOpt = 0,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    STATE.verbose = verbose


def _load(case: Path, overrides: list[str] | None = None):
    """The case with the ``--set`` fields changed (each checked as the case file's own fields are)."""
    from adnstudy.config.load import load_case
    from adnstudy.config.overrides import parse_set

    return load_case(case, [parse_set(text) for text in overrides or ()])


def _out(case_obj, out: Path | None) -> Path:
    from adnstudy.results.store import default_out

    return out if out is not None else default_out(case_obj)


@app.command()
@handled
def validate(case: CaseArg, overrides: SetOpt = None) -> None:
    """Check a case file, its feeder and its profiles without solving anything.

    Example: adnstudy validate cases/ieee33.yaml
    """
    from adnstudy.stages.registry import validate_case

    c = _load(case, overrides)
    inputs, stages = validate_case(c)
    feeder = inputs.feeder
    lines = [
        f"case {c.name}: valid ({c.path})",
        *(["  with --set " + ", ".join(o.text() for o in c.overrides)] if c.overrides else []),
        f"  feeder {feeder.name}: {feeder.n_bus} buses, {feeder.n_branch} branches, "
        f"{len(feeder.ties)} tie lines, peak load {feeder.buses['p_mw'].sum():.4g} MW / "
        f"{feeder.buses['q_mvar'].sum():.4g} Mvar",
        *feeder_details(feeder),
    ]
    if c.config.profiles is not None:
        from adnstudy.data.profiles import OFFSET_ATTR

        profiles = inputs.profiles
        zone = profiles.attrs.get(OFFSET_ATTR)
        lines.append(
            f"  profiles: {', '.join(profiles.columns)}; {len(profiles)} hours from "
            f"{profiles.index[0]:%Y-%m-%d} to {profiles.index[-1]:%Y-%m-%d}"
            + (f" (times with UTC offsets read in {zone})" if zone else "")
        )
    sections = [s for s in ("clustering", "candidates", "economics", "reliability", "microgrids", "market", "coplan")
                if getattr(c.config, s) is not None]
    lines.append(f"  sections: {', '.join(sections) or 'none beyond network'}")
    lines.append(f"  checked for: {', '.join(stages)}")
    typer.echo("\n".join(lines))


def feeder_details(feeder) -> list[str]:
    """What ``validate`` says of a feeder beyond its size: voltage levels, shunts, existing generation, load
    mixes and the import's notes (nothing for the built-in IEEE feeders)."""
    import numpy as np

    out = []
    kv = feeder.bus_kv
    levels = kv[feeder.f] != kv[feeder.t]
    n_tr = int(np.count_nonzero(levels | (feeder.tap != 1.0)))
    if n_tr or feeder.has_shunts:
        out.append(f"  voltage levels {feeder.voltage_text}, {n_tr} transformer branch(es); bus shunts "
                   f"{feeder.buses['g_shunt_mw'].sum() * 1e3:.4g} kW / {feeder.buses['b_shunt_mvar'].sum():.4g} Mvar "
                   "at 1 pu")
    gens = feeder.generators
    if len(gens):
        by = gens.groupby("tech")["p_mw"].sum()
        out.append(f"  existing generation: {len(gens)} units, {gens['p_mw'].sum():.4g} MW ("
                   + ", ".join(f"{t} {v:.4g} MW" for t, v in by.items())
                   + f"), {int(gens['curtailable'].sum())} curtailable")
    if len(feeder.load_shares):
        out.append(f"  {feeder.load_shares['bus'].nunique()} bus(es) mix load profiles (loads of several classes)")
    out += [f"  note: {n}" for n in feeder.notes]
    return out


def _stage_command(stage: Stage) -> Callable[..., None]:
    """The command of a registry stage: its options, its help, one library call, its report."""

    def command(case: Path, out: Path | None = None, overrides: list[str] | None = None, **given: Any) -> None:
        from adnstudy.pipeline import run_stage
        from adnstudy.results.store import out_lock

        c = _load(case, overrides)
        for opt in stage.options:
            if opt.kind == "action" and given.get(opt.name):
                with progress(stage.progress):
                    lines = resolve(opt.action)(c)
                _echo(lines)
                return
        out_dir = _out(c, out)
        with out_lock(out_dir), progress(stage.progress):  # the folder is this run's until it ends
            summary = run_stage(c, out_dir, stage.name, **given)
            _echo(resolve(stage.report)(c, out_dir, summary, given))

    params = [
        inspect.Parameter("case", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=CaseArg),
        inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=OutOpt),
        inspect.Parameter("overrides", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=SetOpt),
    ] + [
        inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=o.default,
                          annotation=Annotated[o.annotation, typer.Option(*o.flags, help=o.help, metavar=o.metavar)])
        for o in stage.command_options
    ]
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__name__ = stage.name
    command.__doc__ = stage.help
    return command


def _echo(lines: list[tuple[str, bool]]) -> None:
    for text, to_stderr in lines:
        typer.echo(text, err=to_stderr)


for _stage in STAGES:  # one command per stage of the registry
    app.command(name=_stage.name)(handled(_stage_command(_stage)))


@app.command()
@handled
def run(
    case: CaseArg,
    out: OutOpt = None,
    overrides: SetOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Run every stage even if up to date.")] = False,
) -> None:
    """Run every stage the case has sections for, in order, skipping those already up to date.

    Example: adnstudy run cases/ieee33.yaml --out results/ieee33
    """
    from adnstudy.pipeline import run_all
    from adnstudy.results.store import out_lock

    c = _load(case, overrides)
    out_dir = _out(c, out)

    def start(name: str) -> None:
        if STATE.verbose:
            typer.echo(f"running {name} ...", err=True)

    with out_lock(out_dir), progress("Running the study"):  # one lock across all the stages
        outcomes = run_all(c, out_dir, force=force, on_start=start)
    width = max(len(o.stage) for o in outcomes)
    for o in outcomes:
        detail = o.detail.splitlines()[0] if o.status == "not final" else o.detail
        typer.echo(f"{o.stage:<{width}}  {o.status:<12} {detail}")
    typer.echo(f"results: {out_dir}")
    incomplete = [o for o in outcomes if o.status == "not final"]
    if incomplete:
        _fail("\n".join(o.detail for o in incomplete), 1)


@app.command()
@handled
def sweep(
    sweep_file: Annotated[Path, typer.Argument(help="Sweep file (YAML).", metavar="SWEEP", show_default=False)],
    out: Annotated[Path | None, typer.Option("--out", "-o", show_default=False,
                                             help="Results folder (default: results/<sweep name>).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, show_default=False, metavar="N",
                                                help="Worker processes of the local cluster (default: one per core).")
                       ] = None,
    scheduler: Annotated[str | None, typer.Option("--scheduler", show_default=False, metavar="ADDRESS",
                                                  help="A running Dask scheduler, e.g. tcp://10.0.0.5:8786, instead "
                                                  "of a local cluster.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Skip variants whose results are complete and up to "
                                         "date; run the rest.")] = False,
) -> None:
    """Run a case's stages over many variants (grid, zip, named) on Dask; one row per variant in sweep.parquet.

    Every variant is validated before anything runs. Stages that variants share (same inputs) run once. A failed
    variant is recorded and the others go on (exit 1 at the end). Results: OUT/variants/<id>/<stage>/ and
    OUT/sweep.parquet.

    Example: adnstudy sweep cases/sweeps/ieee33_plan.yaml --workers 2
    """
    from adnstudy.results.store import out_lock
    from adnstudy.sweep.run import FAILED, NOT_FINAL, OK, run_sweep
    from adnstudy.sweep.spec import load_sweep
    from adnstudy.sweep.spec import validate as validate_variants

    if workers is not None and scheduler is not None:
        _fail("--workers starts a local cluster; with --scheduler the running cluster's workers are used "
              "(start them with `dask worker ADDRESS --nworkers N`)", 2)
    spec = load_sweep(sweep_file)
    with progress(f"Validating {len(spec.variants)} variants"):
        cases = validate_variants(spec)
    out_dir = out if out is not None else Path("results") / spec.name
    with out_lock(out_dir), SweepProgress(len(spec.variants)) as bar:
        outcome = run_sweep(spec, cases, out_dir, workers=workers, scheduler=scheduler, resume=resume,
                            on_variant=bar.variant, on_start=bar.start)
    t = outcome.table
    typer.echo(f"sweep {spec.name}: {len(t)} variants; {outcome.count(OK)} ok"
               + (f" ({int(t['resumed'].sum())} complete from before)" if t["resumed"].any() else "")
               + f", {outcome.count(NOT_FINAL)} not final, {outcome.count(FAILED)} failed"
               + f"; {outcome.stage_runs} stage runs for {outcome.stage_uses} variant stages; "
               f"{outcome.seconds:.1f} s on {outcome.scheduler}")
    typer.echo(f"results: {out_dir / 'sweep.parquet'}")
    if outcome.interrupted:
        left = int((t["status"] == "not run").sum())
        _fail(f"interrupted: {len(t) - left} variants finished and are kept, {left} not run; run again with "
              "--resume to finish", 130)
    bad = t[t["status"].isin([FAILED, NOT_FINAL])]
    if len(bad):
        lines = [f"  {r.variant}: {r.status}: {str(r.error).splitlines()[0] if r.error else ''}"
                 for r in bad.itertuples()]
        _fail(f"{len(bad)} of {len(t)} variants did not finish cleanly:\n" + "\n".join(lines), 1)


@app.command()
@handled
def report(
    results: Annotated[Path, typer.Argument(help="Results folder (of adnstudy run, any stage, or a sweep variant).",
                                            metavar="DIR", show_default=False)],
) -> None:
    """Write DIR/report/: report.md, a self-contained report.html, a CSV per table and a PNG per figure.

    One section per stage present in DIR, in the pipeline's order; stages not run are listed as such. Every number
    comes from DIR's tables and manifests (nothing is re-solved); a table changed after its stage wrote it is refused.

    Example: adnstudy report results/ieee33
    """
    from adnstudy.report.build import write_report
    from adnstudy.report.doc import Figure, Table

    with progress("Writing the report"):
        folder, doc = write_report(results)
    blocks = list(doc.walk())
    typer.echo(f"report of {results}: {sum(isinstance(b, Table) for b in blocks)} tables, "
               f"{sum(isinstance(b, Figure) for b in blocks)} figures; sections: "
               + ", ".join(s.title.split(":")[0] for s in doc.sections))
    typer.echo(f"results: {folder / 'report.html'} (and report.md)")


@app.command()
@handled
def export(
    results: Annotated[Path, typer.Argument(help="Results folder with a plan (of adnstudy run or plan).",
                                            metavar="DIR", show_default=False)],
    to: Annotated[str, typer.Option("--to", metavar="FORMAT", show_default=False,
                                    help="pandapower (a JSON network) or matpower (a version 2 .m case).")],
    scenario: Annotated[int | None, typer.Option("--scenario", metavar="S", show_default=False,
                                                 help="Typical day of the operating point (with --hour).")] = None,
    hour: Annotated[int | None, typer.Option("--hour", metavar="H", show_default=False,
                                             help="Hour of that day, 0-23 (with --scenario).")] = None,
    coplan: Annotated[bool, typer.Option("--coplan", help="The co-planned builds of every investor (coplan/) "
                                         "instead of the plan's, at the design point: <case>-coplan.json/.m.")
                      ] = False,
) -> None:
    """Write the planned network into DIR/export/: the feeder, its generators and the built units.

    Without --scenario/--hour it is the design point (peak loads, units at capacity, the case's substation
    voltage): <case>.json or <case>.m; with them, that hour of the plan (its loads, outputs, storage and MG
    exchanges, substation voltage), which pandapower's runpp solves to the plan's v_ac_pu:
    <case>-<S>-h<H>.json or .m. Mapping and what is lost: docs/interop.md.

    Example: adnstudy export results/ieee33 --to pandapower --scenario 4 --hour 19
    """
    from adnstudy.interop.export import export as write_export

    with progress("Writing the network"):
        done = write_export(results, to, scenario, hour, coplan=coplan)
    typer.echo(f"{to} network of {results}, {done.point}: {done.units} new unit(s)")
    for path in done.files:
        typer.echo(f"wrote {path}")


class SweepProgress:
    """A progress bar of variants on a terminal; elsewhere one line per finished variant (on stderr)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.bar: Any = None

    def __enter__(self) -> SweepProgress:
        if sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), transient=True)
            self.bar.__enter__()
            self.task = self.bar.add_task("variants", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def start(self, todo: int, total: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, total=todo, description=f"variants ({total - todo} complete from before)"
                            if todo < total else "variants")
        elif todo < total or STATE.verbose:
            typer.echo(f"running {todo} of {total} variants", err=True)

    def variant(self, res: Any, done: int, total: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=done)
            if res.status != "ok":
                self.bar.console.print(f"{res.id}: {res.status}: {res.error.splitlines()[0] if res.error else ''}")
        else:
            typer.echo(f"[{done}/{total}] {res.id}: {res.status}"
                       + (f": {res.error.splitlines()[0]}" if res.error else ""), err=True)


def main() -> None:
    """The command (``adnstudy.entry.main`` installs the signal handlers before importing this module)."""
    interrupt.install()
    try:
        app()
    except KeyboardInterrupt as exc:  # outside a command, e.g. while typer parses the arguments
        typer.echo(f"error: {interrupt.describe(exc)}", err=True)
        sys.exit(interrupt.exit_code(exc))


if __name__ == "__main__":  # pragma: no cover
    main()
