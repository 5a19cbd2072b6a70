"""Running a sweep on Dask: the variants' stages as a task graph, shared stages run once, one table of results.

Each variant runs the sweep's stages in order in its own folder
(``DIR/variants/<id>/``), exactly as ``adnstudy <stage> CASE --set ...`` would.
A stage's *node key* is the hash of its case payload (``pipeline.case_payload``:
the case sections, data files, version and options its run key hashes) and the
node key of the stage before it: two variants with equal node keys ask the same
question of the same earlier results, so the stage runs once, in the folder of
the first of them (its *owner*), and the others get a copy of its folder
(``results/store.copy_stage``). Every variant's run key is then recomputed on
its own folder, so a shared result is checked to be the one it would have
computed.

Tasks go to a LocalCluster of worker processes (``--workers``, default: one per
core) or to a running scheduler (``--scheduler tcp://host:port``); each task
gets ``cores // tasks on its machine`` threads (``adnstudy/threads.py``). A
failed stage fails the variants that need it and no others; a worker that dies
has its task re-run by Dask elsewhere; ``DIR/sweep.parquet`` is rewritten as
each variant finishes, so an interrupted sweep keeps every finished variant,
and ``--resume`` runs only what is missing.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from adnstudy import __version__
from adnstudy.config.load import Case
from adnstudy.errors import AdnstudyError, MissingInputError
from adnstudy.sweep.spec import Sweep, Variant
from adnstudy.sweep.tasks import (
    CaseRef,
    NodeResult,
    NodeSpec,
    VariantResult,
    VariantSpec,
    finish_variant,
    run_node,
)

log = logging.getLogger(__name__)

TABLE = "sweep.parquet"
RECORD = "sweep.json"
#: While a sweep runs, sweep.parquet is rewritten as variants finish, unless the last rewrite was less than this
#: many times its own duration ago.
RECORD_SHARE = 10
#: Statuses of a variant in sweep.parquet.
OK, NOT_FINAL, FAILED, NOT_RUN = "ok", "not final", "failed", "not run"


class SchedulerError(AdnstudyError):
    """The scheduler given with --scheduler cannot be reached."""

    exit_code = 2


@dataclass
class Node:
    key: str
    stage: str
    options: dict[str, Any]
    folder: str
    owner: int
    after: str | None
    users: list[int] = field(default_factory=list)


@dataclass
class SweepOutcome:
    table: pd.DataFrame
    out_dir: Path
    workers: int
    scheduler: str
    threads: dict[str, int]
    stage_runs: int  # stage runs in the graph (each shared one counted once)
    stage_uses: int  # stages of the variants run (what a shell loop would run)
    seconds: float
    startup_seconds: float = 0.0  # until the workers were ready (a local cluster's start, or the connection)
    interrupted: bool = False

    def count(self, status: str) -> int:
        return int((self.table["status"] == status).sum())


def variant_dir(out_dir: Path, v: Variant) -> Path:
    return out_dir / "variants" / v.id


def complete(sweep: Sweep, case: Case, folder: Path) -> bool:
    """The variant's folder holds every stage of the sweep, complete, with this variant's run key."""
    from adnstudy.pipeline import key_of, key_payload, up_to_date
    from adnstudy.stages.registry import BY_NAME

    for s in sweep.stages:
        stage = BY_NAME[s.name]
        if not up_to_date(folder, stage, key_of(key_payload(case, folder, stage, s.options)), s.options):
            return False
    return True


def finished(sweep: Sweep, v: Variant, case: Case, folder: Path) -> VariantResult | None:
    """The variant's result read from its folder, if that holds every stage complete and up to date."""
    from adnstudy.results.store import read_manifest
    from adnstudy.sweep.tasks import headline

    if not complete(sweep, case, folder):
        return None
    figures: dict[str, Any] = {}
    for s in sweep.stages:
        figures.update(headline(s.name, read_manifest(folder, s.folder) or {}))
    return VariantResult(v.id, OK, "", figures)


def plan_nodes(sweep: Sweep, cases: list[Case], done: set[int] = frozenset()
               ) -> tuple[dict[str, Node], dict[int, list[str]]]:
    """Every variant's chain of stage nodes, shared where the node keys are equal.

    A node's owner is the first variant using it that is already complete (``done``: its folder holds the
    node's results, nothing to run), else the first variant using it.
    """
    from adnstudy.pipeline import case_payload, key_of
    from adnstudy.stages.registry import BY_NAME

    nodes: dict[str, Node] = {}
    chains: dict[int, list[str]] = {}
    for i, case in enumerate(cases):
        after: str | None = None
        chain: list[str] = []
        for s in sweep.stages:
            key = key_of({"inputs": case_payload(case, BY_NAME[s.name], s.options), "after": after})
            node = nodes.setdefault(key, Node(key, s.name, s.options, s.folder, owner=i, after=after))
            if i in done and node.owner not in done:
                node.owner = i
            node.users.append(i)
            chain.append(key)
            after = key
        chains[i] = chain
    return nodes, chains


def run_sweep(sweep: Sweep, cases: list[Case], out_dir: Path, *, workers: int | None = None,
              scheduler: str | None = None, resume: bool = False,
              on_variant: Callable[[VariantResult, int, int], None] | None = None,
              on_start: Callable[[int, int], None] | None = None) -> SweepOutcome:
    """Run the sweep into ``out_dir`` (module docstring); the caller holds ``out_dir``'s lock."""
    t0 = time.perf_counter()
    started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    out_dir = Path(out_dir)
    dirs = [variant_dir(out_dir, v) for v in sweep.variants]
    results: dict[str, VariantResult] = {}
    resumed: set[str] = set()
    by_config: dict[str, str] = {}
    for v, case in zip(sweep.variants, cases, strict=True):
        by_config.setdefault(case.config_sha256, v.id)
    if resume:
        for v, case, d in zip(sweep.variants, cases, dirs, strict=True):
            found = finished(sweep, v, case, d)
            if found is not None:
                results[v.id] = found
                resumed.add(v.id)
    todo = [v.index for v in sweep.variants if v.id not in results]
    for i in todo:
        _keep_only(dirs[i], {s.folder for s in sweep.stages})
    done = {v.index for v in sweep.variants if v.id in results}
    nodes, chains = plan_nodes(sweep, cases, done)
    stage_uses = sum(len(chains[i]) for i in todo)
    stage_runs = len({k for i in todo for k in chains[i] if nodes[k].owner not in done})

    last = [-math.inf, 0.0]  # when the table was last written, and how long that took

    def record(**extra: Any) -> None:
        """The table so far; skipped while rewriting it whole would take over 1/RECORD_SHARE of the time (a
        large sweep's table is written every few seconds, a small one's as each variant finishes)."""
        now = time.monotonic()
        if now - last[0] < RECORD_SHARE * last[1] and len(results) < len(sweep.variants):
            return
        _write_table(out_dir, _table(sweep, results, resumed, by_config))
        _write_record(out_dir, sweep, started=started, **extra)
        last[:] = [time.monotonic(), time.monotonic() - now]

    record(finished_utc=None)
    interrupted = False
    workers_n, address, threads, startup = 0, "none (nothing to run)", {}, 0.0
    if todo:
        client, cluster = _connect(scheduler, workers, len(todo))
        try:
            threads = _threads_per_task(client)
            startup = time.perf_counter() - t0
            workers_n = len(threads)
            address = scheduler or f"LocalCluster ({workers_n} worker processes)"
            if on_start:
                on_start(len(todo), len(sweep.variants))
            futures = _submit(client, sweep, dirs, nodes, {i: chains[i] for i in todo}, done, force=not resume,
                              threads=threads)
            local = client.run(os.getpid) if cluster is not None else {}
            interrupted = _collect(client, futures, sweep, results, on_variant, record)
            if interrupted:
                _stop(local.values())
        finally:
            _close(client, cluster)
        if interrupted:  # variants whose last stage finished as the sweep stopped are complete too
            for v, case, d in zip(sweep.variants, cases, dirs, strict=True):
                found = None if v.id in results else finished(sweep, v, case, d)
                if found is not None:
                    results[v.id] = found
    outcome = SweepOutcome(
        table=_table(sweep, results, resumed, by_config, interrupted=interrupted), out_dir=out_dir, workers=workers_n,
        scheduler=address, threads=threads, stage_runs=stage_runs, stage_uses=stage_uses,
        seconds=time.perf_counter() - t0, startup_seconds=startup, interrupted=interrupted)
    _write_table(out_dir, outcome.table)
    _write_record(out_dir, sweep, started=started, finished_utc=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                  outcome=outcome)
    return outcome


def _keep_only(folder: Path, stage_folders: set[str]) -> None:
    """A variant about to run holds only the sweep's stages: a stage folder left by an earlier sweep with other
    stages would be read as an input (dispatch reads a plan that exists)."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.is_dir() and not path.name.startswith(".") and path.name not in stage_folders \
                and (path / "manifest.json").is_file():
            log.info("%s: removing %s/, not a stage of this sweep", folder, path.name)
            shutil.rmtree(path, ignore_errors=True)


def _connect(scheduler: str | None, workers: int | None, tasks: int):
    """A Dask client: of the scheduler at ``scheduler``, else of a new LocalCluster of worker processes."""
    from distributed import Client, LocalCluster

    from adnstudy.threads import cores

    if scheduler is not None:
        try:
            return Client(scheduler, timeout="20s"), None
        except (OSError, TimeoutError, ValueError) as exc:
            raise SchedulerError(f"--scheduler {scheduler}: cannot connect ({type(exc).__name__}: {exc}); is a "
                                 "Dask scheduler running there (`dask scheduler`)?") from None
    n = workers or max(1, min(cores(), tasks))
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.ERROR)
    return Client(cluster), cluster


def _stop(pids: Any) -> None:
    """Stop a local cluster's workers now (Ctrl-C means now): a stage they were running never commits (the
    stage writer's hidden folder, removed by the next run), and its variant is not run. A remote cluster's
    workers are not ours to kill: their running tasks finish their stage."""
    import signal

    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _close(client: Any, cluster: Any) -> None:
    try:
        client.close(timeout=10)
    finally:
        if cluster is not None:
            cluster.close(timeout=10)


def _threads_per_task(client: Any) -> dict[str, int]:
    """Worker address → threads per task, so that a machine's tasks at once × threads fit its cores."""
    from adnstudy.threads import cores

    client.wait_for_workers(1, timeout=120)
    info = client.scheduler_info(n_workers=-1)["workers"]
    per_worker = client.run(cores)
    busy: dict[str, int] = {}
    for w in info.values():
        busy[w["host"]] = busy.get(w["host"], 0) + int(w["nthreads"])
    return {addr: max(1, int(per_worker.get(addr, 1)) // busy[w["host"]]) for addr, w in info.items()}


def _submit(client: Any, sweep: Sweep, dirs: list[Path], nodes: dict[str, Node], chains: dict[int, list[str]],
            done: set[int], *, force: bool, threads: dict[str, int]) -> dict[Any, str]:
    """The node and variant tasks of the variants to run (``chains``); returns variant future → variant id.

    A node owned by a complete variant is not a task: its result stands in as "up to date".
    """
    futures: dict[str, Any] = {}
    variant_futures: dict[Any, str] = {}
    default = min(threads.values(), default=1)
    for i, chain in chains.items():
        v = sweep.variants[i]
        for depth, key in enumerate(chain):
            if key in futures:
                continue
            node = nodes[key]
            owner = sweep.variants[node.owner]
            if node.owner in done:
                futures[key] = NodeResult(key, node.stage, node.folder, owner.id, str(dirs[node.owner]), "up to date")
                continue
            bring = tuple((str(dirs[nodes[k].owner]), nodes[k].folder) for k in chains[node.owner][:depth]
                          if nodes[k].owner != node.owner)
            spec = NodeSpec(key=key, stage=node.stage, options=node.options, folder=node.folder, owner=owner.id,
                            owner_dir=str(dirs[node.owner]), case=CaseRef(str(sweep.case), owner.overrides),
                            bring=bring, force=force, threads=threads, default_threads=default)
            upstream = futures[node.after] if node.after is not None else None
            futures[key] = client.submit(run_node, spec, upstream, key=f"{node.stage}-{key[:16]}", pure=False)
        vspec = VariantSpec(v.id, str(dirs[i]), CaseRef(str(sweep.case), v.overrides),
                            tuple((s.name, s.options, s.folder) for s in sweep.stages))
        fut = client.submit(finish_variant, vspec, [futures[k] for k in chain], key=f"variant-{i}-{v.id[:40]}",
                            pure=False)
        variant_futures[fut] = v.id
    return variant_futures


def _collect(client: Any, futures: dict[Any, str], sweep: Sweep, results: dict[str, VariantResult],
             on_variant: Callable[[VariantResult, int, int], None] | None, record: Callable[..., None]) -> bool:
    """Wait for the variants, recording each as it finishes; True if interrupted (Ctrl-C or SIGTERM)."""
    from distributed import as_completed

    total, done = len(futures), 0
    try:
        for fut in as_completed(list(futures)):
            vid = futures[fut]
            try:
                res = fut.result()
            except Exception as exc:  # the task itself could not run: a worker died too often, a lost scheduler
                res = VariantResult(vid, FAILED, f"{type(exc).__name__}: {exc}")
            results[vid] = res
            done += 1
            record(finished_utc=None)
            if on_variant:
                on_variant(res, done, total)
    except KeyboardInterrupt:
        client.cancel(list(futures))
        return True
    return False


def _table(sweep: Sweep, results: dict[str, VariantResult], resumed: set[str], by_config: dict[str, str],
           interrupted: bool = False) -> pd.DataFrame:
    """One row per variant: id, varied fields, status, error, seconds, resumed, each stage's headline figures.

    ``<stage>.from`` names the variant whose run produced the stage: the one whose case (``config_sha256``,
    ``by_config``) its manifest records."""
    rows: list[dict[str, Any]] = []
    for v in sweep.variants:
        res = results.get(v.id)
        row: dict[str, Any] = {"variant": v.id}
        if any(x.name for x in sweep.variants):
            row["name"] = v.name
        row.update({p: _cell(v.values.get(p)) for p in sweep.varied})
        if res is None:
            row.update(status=NOT_RUN, error="interrupted" if interrupted else "", seconds=None, resumed=False)
        else:
            stage_s = [x for k, x in res.figures.items() if k.endswith(".stage_seconds") and x is not None]
            row.update(status=res.status, error=res.error, seconds=sum(stage_s) if stage_s else None,
                       resumed=v.id in resumed)
            row.update({k: by_config.get(x, x) if k.endswith(".from") else _cell(x) for k, x in res.figures.items()})
        rows.append(row)
    return _arrow_safe(pd.DataFrame(rows))


def _cell(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, list | dict) else value


def _arrow_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Columns Parquet can hold: a column mixing numbers and text becomes text."""
    for col in df.columns:
        kinds = {type(x) for x in df[col] if x is not None and not (isinstance(x, float) and pd.isna(x))}
        if len(kinds) > 1 and not kinds <= {int, float, bool}:
            df[col] = df[col].map(lambda x: None if x is None or (isinstance(x, float) and pd.isna(x)) else str(x))
    return df


def _write_table(out_dir: Path, df: pd.DataFrame) -> None:
    tmp = out_dir / f".{TABLE}.tmp-{os.getpid()}"
    df.to_parquet(tmp, index=False)
    os.replace(tmp, out_dir / TABLE)


def _write_record(out_dir: Path, sweep: Sweep, *, started: str, finished_utc: str | None,
                  outcome: SweepOutcome | None = None) -> None:
    record: dict[str, Any] = {
        "adnstudy_version": __version__,
        "sweep": {"file": str(sweep.path), "file_sha256": sweep.file_sha256, "name": sweep.name},
        "case": str(sweep.case),
        "stages": [{"stage": s.name, "options": s.options} for s in sweep.stages],
        "variants": len(sweep.variants),
        "started_utc": started,
        "finished_utc": finished_utc,
    }
    if outcome is not None:
        record.update(
            scheduler=outcome.scheduler, workers=outcome.workers, threads_per_task=outcome.threads,
            stage_runs=outcome.stage_runs, stage_uses=outcome.stage_uses, seconds=round(outcome.seconds, 3),
            startup_seconds=round(outcome.startup_seconds, 3),
            interrupted=outcome.interrupted,
            counts={s: outcome.count(s) for s in (OK, NOT_FINAL, FAILED, NOT_RUN)},
            resumed=int(outcome.table["resumed"].sum()),
        )
    tmp = out_dir / f".{RECORD}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, out_dir / RECORD)


def read_table(out_dir: Path) -> pd.DataFrame:
    path = Path(out_dir) / TABLE
    if not path.is_file():
        raise MissingInputError(f"{path} not found: not a sweep's results folder")
    return pd.read_parquet(path)
