"""Command line: thin commands, one library call each; errors become a message and an exit code.

Exit codes: 0 success, 2 bad input (case, feeder, profiles, missing inputs,
usage), 1 a solve or computation that failed.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from adnstudy import __version__
from adnstudy.errors import AdnstudyError

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
    verbose = 0


STATE = _State()

CaseArg = Annotated[Path, typer.Argument(help="Case file (YAML).", metavar="CASE", show_default=False)]
OutOpt = Annotated[
    Path | None,
    typer.Option("--out", "-o", help="Results folder (default: results/<case name>).", show_default=False),
]


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def handled(func: F) -> F:
    """Turn library errors into one line on stderr and the right exit code; no traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except AdnstudyError as exc:
            if STATE.verbose >= 2:
                traceback.print_exc()
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted; no results were written for the unfinished stage", 130)
        except Exception as exc:  # an unexpected failure is still a clean message
            if STATE.verbose:
                traceback.print_exc()
            _fail(f"internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)", 1)

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
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="Solver logs (-vv: tracebacks).")] = 0,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    STATE.verbose = verbose
    logging.basicConfig(
        level=logging.DEBUG if verbose >= 2 else logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def _load(case: Path):
    from adnstudy.config.load import load_case

    return load_case(case)


def _out(case_obj, out: Path | None) -> Path:
    from adnstudy.results.store import default_out

    return out if out is not None else default_out(case_obj)


@app.command()
@handled
def validate(case: CaseArg) -> None:
    """Check a case file, its feeder and its profiles without solving anything.

    Example: adnstudy validate cases/ieee33.yaml
    """
    from adnstudy.checks import validate_case

    c = _load(case)
    inputs, stages = validate_case(c)
    feeder = inputs.feeder
    lines = [
        f"case {c.name}: valid ({c.path})",
        f"  feeder {feeder.name}: {feeder.n_bus} buses, {feeder.n_branch} branches, "
        f"{len(feeder.ties)} tie lines, peak load {feeder.buses['p_mw'].sum():.4g} MW / "
        f"{feeder.buses['q_mvar'].sum():.4g} Mvar",
    ]
    if c.config.profiles is not None:
        profiles = inputs.profiles
        lines.append(
            f"  profiles: {', '.join(profiles.columns)}; {len(profiles)} hours from "
            f"{profiles.index[0]:%Y-%m-%d} to {profiles.index[-1]:%Y-%m-%d}"
        )
    sections = [s for s in ("clustering", "candidates", "economics", "reliability", "microgrids", "market")
                if getattr(c.config, s) is not None]
    lines.append(f"  sections: {', '.join(sections) or 'none beyond network'}")
    lines.append(f"  checked for: {', '.join(stages)}")
    typer.echo("\n".join(lines))


@app.command()
@handled
def powerflow(
    case: CaseArg,
    out: OutOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    year: Annotated[bool, typer.Option("--year", help="Every hour of the case's profiles, not just the peak.")] = False,
) -> None:
    """AC power flow (backward/forward sweep) of the case's peak snapshot, or of every hour.

    Prints losses and the minimum voltage (published bus numbers, substation = 1)
    and writes bus, branch and summary tables to OUT/powerflow/.

    Example: adnstudy powerflow cases/ieee33.yaml --json
    """
    from adnstudy.pipeline import run_stage

    c = _load(case)
    out_dir = _out(c, out)
    with progress("Solving the AC power flow"):
        summary = run_stage(c, out_dir, "powerflow", mode="year" if year else "peak")
    if json_out:
        typer.echo(json.dumps(summary))
        return
    net = c.config.network
    where = "at the peak" if not year else f"in the worst of {summary['hours']} hours"
    typer.echo(
        f"{c.name}: losses {where} {summary['p_loss_kw']:.2f} kW, {summary['q_loss_kvar']:.2f} kvar; "
        f"minimum voltage {summary['v_min_pu']:.4f} pu at bus {summary['v_min_bus']}"
    )
    if year:
        typer.echo(f"annual energy losses {summary['energy_loss_mwh']:.1f} MWh of {summary['energy_import_mwh']:.1f} MWh imported")
    if summary["v_min_pu"] < net.v_min_pu:
        typer.echo(f"note: below the case's lower limit v_min_pu = {net.v_min_pu}", err=True)
    typer.echo(f"results: {out_dir / 'powerflow'}")


@app.command()
@handled
def cluster(
    case: CaseArg,
    out: OutOpt = None,
    suggest_k: Annotated[
        bool, typer.Option("--suggest-k", help="Propose K from the γ curve and the SSE elbow, explain, and stop.")
    ] = False,
) -> None:
    """Typical days by density-peaks-seeded K-means, compared with the usual alternatives.

    Writes profiles, typical, weights, assignment and metrics tables and two
    figures to OUT/cluster/.

    Example: adnstudy cluster cases/ieee33.yaml
    """
    from adnstudy.pipeline import run_stage
    from adnstudy.stages.cluster import case_days
    from adnstudy.stages.cluster import suggest_k as propose

    c = _load(case)
    if suggest_k:
        c.require("cluster")
        cfg = c.config.clustering
        assert cfg is not None
        with progress("Reading the γ and SSE curves"):
            s = propose(case_days(c), cfg.neighbour_fraction, cfg.kernel)
        typer.echo(f"suggested k = {s['k']} (the case has k = {cfg.k})")
        typer.echo(s["reason"])
        return
    out_dir = _out(c, out)
    with progress("Clustering typical days"):
        summary = run_stage(c, out_dir, "cluster")
    typer.echo(
        f"{c.name}: {summary['k']} typical days + {summary['scenarios'] - summary['k']} extreme day(s) "
        f"for {summary['days']} days; reconstruction RMSE {summary['rmse']:.4f}"
        + (f" (k-means++ x10: {summary['rmse_kmeans_pp']:.4f})" if "rmse_kmeans_pp" in summary else "")
        + f"; {summary['seconds']:.3f} s"
    )
    typer.echo(f"results: {out_dir / 'cluster'}")


@app.command()
@handled
def plan(
    case: CaseArg,
    out: OutOpt = None,
    solver: Annotated[
        str | None,
        typer.Option("--solver", help="'default' (branch-and-bound on Clarabel) or a CVXPY solver: SCIP, GUROBI, MOSEK, ECOS_BB."),
    ] = None,
    time_limit: Annotated[float | None, typer.Option("--time-limit", help="Seconds; the best plan found is kept.")] = None,
    with_reliability: Annotated[
        bool, typer.Option("--reliability/--no-reliability", help="Use the case's reliability section (default: yes).")
    ] = True,
) -> None:
    """RES siting and sizing over the typical days (MISOCP over DistFlow), checked by AC power flow.

    Needs the typical days of 'adnstudy cluster'. Writes investment, bus, branch
    and cost tables and two figures to OUT/plan/.

    Example: adnstudy plan cases/ieee33.yaml --time-limit 120
    """
    from adnstudy.pipeline import run_stage

    c = _load(case)
    out_dir = _out(c, out)
    options = {k: v for k, v in {"solver": solver, "time_limit": time_limit}.items() if v is not None}
    if not with_reliability:
        options["reliability"] = False
    with progress("Solving the planning MISOCP"):
        s = run_stage(c, out_dir, "plan", **options)
    gap = "n/a" if s["gap"] is None else f"{s['gap']:.2e}"
    typer.echo(
        f"{c.name}: {s['built']} site(s), {s['capacity_mw']:.3f} MW; annual cost {s['total_usd']:,.0f} USD; "
        f"status {s['status']}, gap {gap}; AC check max |dV| {s['max_dv_pu']:.1e} pu"
        + (f"; SAIDI {s['SAIDI_h']:.3f} h, EENS {s['EENS_mwh']:.2f} MWh" if "SAIDI_h" in s else "")
    )
    if not s["tight"]:
        typer.echo(
            "WARNING: the SOC relaxation is not tight at this plan: the SOCP voltages differ from the AC "
            "power flow by more than 1e-4 pu; the operating point is not physical (see manifest 'verification')",
            err=True,
        )
    if s["status"] != "optimal":
        typer.echo(f"note: the plan is not proven optimal (status {s['status']}); see manifest 'solver'", err=True)
    typer.echo(f"results: {out_dir / 'plan'}")


@app.command()
@handled
def reliability(
    case: CaseArg,
    out: OutOpt = None,
    plan_dir: Annotated[
        Path | None, typer.Option("--plan", help="Results folder of a plan whose DG may supply islands.")
    ] = None,
) -> None:
    """IEEE 1366 indices (SAIFI, SAIDI, CAIDI, ASAI, EENS) by enumerating every branch fault.

    Writes reliability and bus_reliability tables to OUT/reliability/.

    Example: adnstudy reliability cases/ieee33.yaml --plan results/ieee33
    """
    from adnstudy.stages.reliability import reliability_stage

    c = _load(case)
    out_dir = _out(c, out)
    s = reliability_stage(c, out_dir, plan_dir=plan_dir)
    what = f"with the plan in {plan_dir}" if plan_dir is not None else "without DG"
    typer.echo(
        f"{c.name} ({what}): SAIFI {s['SAIFI']:.4f} /yr, SAIDI {s['SAIDI']:.4f} h/yr, CAIDI {s['CAIDI']:.4f} h, "
        f"ASAI {s['ASAI']:.6f}, EENS {s['EENS']:.3f} MWh/yr"
    )
    typer.echo(f"results: {out_dir / 'reliability'}")


@app.command()
@handled
def dispatch(
    case: CaseArg,
    out: OutOpt = None,
    scenario: Annotated[list[int] | None, typer.Option("--scenario", "--day", help="Only this typical day (a scenario id); repeat for several.")] = None,
) -> None:
    """Day-ahead MG–ADN dispatch with bilateral trading: welfare clearing, then Nash-bargaining payments.

    Solved distributedly (ATC between the ADN and the MGs, closed-form ADMM
    among the MGs) and centrally as the reference, for every typical day of
    'adnstudy cluster'. Writes schedule, trades, payments, agents, adn,
    network and convergence tables and three figures to OUT/dispatch/.

    Example: adnstudy dispatch cases/ieee33.yaml --day 0
    """
    from adnstudy.pipeline import run_stage

    c = _load(case)
    out_dir = _out(c, out)
    options = {"scenarios": sorted(set(scenario))} if scenario else {}
    with progress("Clearing the market and bargaining, day by day"):
        s = run_stage(c, out_dir, "dispatch", **options)
    gains = ", ".join(f"{k} {v:,.2f}" for k, v in s["gains_usd"].items())
    span = "per year" if not scenario else "for the chosen typical day(s) x their weights"
    typer.echo(
        f"{c.name}: {s['scenarios']} typical day(s); market cost {s['distributed_usd']:,.2f} USD {span} "
        f"(centralised {s['centralised_usd']:,.2f}, max gap {s['max_gap']:.1e}); at most {s['max_iterations']} "
        f"ATC/ADMM iterations, PCC mismatch {s['max_pcc_mismatch_mw']:.1e} MW, reciprocity "
        f"{s['max_reciprocity_mw']:.1e} MW; MG gains {gains} USD"
    )
    typer.echo(f"results: {out_dir / 'dispatch'}")


@app.command()
@handled
def run(
    case: CaseArg,
    out: OutOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Run every stage even if up to date.")] = False,
) -> None:
    """Run every stage the case has sections for, in order, skipping those already up to date.

    Example: adnstudy run cases/ieee33.yaml --out results/ieee33
    """
    from adnstudy.pipeline import run_all

    c = _load(case)
    out_dir = _out(c, out)

    def start(name: str) -> None:
        if STATE.verbose:
            typer.echo(f"running {name} ...", err=True)

    with progress("Running the study"):
        outcomes = run_all(c, out_dir, force=force, on_start=start)
    for o in outcomes:
        typer.echo(f"{o.stage:<10} {o.status:<12} {o.detail}")
    typer.echo(f"results: {out_dir}")


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
