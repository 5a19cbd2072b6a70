"""What a Dask worker runs for a sweep: one stage of one variant (a *node*), and the finish of a variant.

A node runs in the folder of its *owner*, the first variant that needs it; the
other variants that share it (same case payload, same earlier nodes: see
``sweep/run.py``) get a copy of its folder. Everything here takes and returns
plain data (paths, dicts, the variant's field changes) so it pickles to any
worker; each task loads the variant's case itself.

Failures are results, not exceptions: a stage that fails (bad input, infeasible,
solver error) returns ``status="failed"`` with its message, so the variants that
do not need it go on and the sweep reports it. A worker that dies mid-task is
Dask's to handle (the scheduler re-runs the task elsewhere); whatever the dead
task left in a variant folder is a hidden scratch folder that the next writer's
lock removes (``results/store.py``).
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adnstudy.config.overrides import Override

log = logging.getLogger(__name__)

#: Node outcomes after which later stages still run (``not final``: written, but marked incomplete).
USABLE = ("ran", "up to date", "not final")


@dataclass(frozen=True)
class CaseRef:
    """A variant's case: the base case file and the variant's field changes."""

    path: str
    overrides: tuple[Override, ...]

    def load(self):
        return _load(self.path, self.overrides)


@functools.lru_cache(maxsize=64)
def _load(path: str, overrides: tuple[Override, ...]):
    from adnstudy.config.load import load_case

    return load_case(path, overrides=overrides)


@dataclass(frozen=True)
class NodeSpec:
    key: str
    stage: str
    options: dict[str, Any]
    folder: str
    owner: str  # the owner variant's id
    owner_dir: str
    case: CaseRef
    #: earlier stages of the owner's chain that other variants ran: (their folder, stage folder) to copy in first
    bring: tuple[tuple[str, str], ...]
    force: bool  # run even if the owner's folder holds it up to date (no --resume)
    threads: dict[str, int]  # worker address -> threads per task
    default_threads: int = 1


@dataclass(frozen=True)
class NodeResult:
    key: str
    stage: str
    folder: str
    owner: str
    owner_dir: str
    status: str  # "ran", "up to date", "not final", "failed", "skipped" (an earlier stage failed)
    error: str = ""
    seconds: float = 0.0
    threads: int = 1


def run_node(spec: NodeSpec, upstream: NodeResult | None) -> NodeResult:
    """Run one stage in its owner's folder, after copying in the earlier stages others ran."""
    def result(status: str, error: str = "", seconds: float = 0.0, threads: int = 1) -> NodeResult:
        return NodeResult(spec.key, spec.stage, spec.folder, spec.owner, spec.owner_dir, status, error, seconds,
                          threads)

    if upstream is not None and upstream.status not in USABLE:
        why = upstream.error if upstream.status == "skipped" else f"{upstream.stage} failed: {upstream.error}"
        return result("skipped", why)
    threads = _threads(spec)
    t0 = time.perf_counter()
    try:
        from adnstudy import threads as budget
        from adnstudy.errors import AdnstudyError, IncompleteResultsError
        from adnstudy.pipeline import key_of, key_payload, run_stage, up_to_date
        from adnstudy.results.store import copy_stage
        from adnstudy.stages.registry import BY_NAME

        with budget.limited(threads):
            case = spec.case.load()
            out = Path(spec.owner_dir)
            for src, folder in spec.bring:
                copy_stage(Path(src), folder, out)
            stage = BY_NAME[spec.stage]
            if not spec.force and up_to_date(out, stage, key_of(key_payload(case, out, stage, spec.options)),
                                             spec.options):
                return result("up to date", threads=threads)
            try:
                run_stage(case, out, spec.stage, **spec.options)
            except IncompleteResultsError as exc:
                return result("not final", str(exc), time.perf_counter() - t0, threads)
    except AdnstudyError as exc:
        return result("failed", str(exc), time.perf_counter() - t0, threads)
    except Exception as exc:  # a bug is still one variant's failure, with its cause
        log.exception("sweep node %s failed", spec.key)
        return result("failed", f"internal error: {type(exc).__name__}: {exc}", time.perf_counter() - t0, threads)
    return result("ran", seconds=time.perf_counter() - t0, threads=threads)


def _threads(spec: NodeSpec) -> int:
    try:
        from distributed import get_worker

        return spec.threads.get(get_worker().address, spec.default_threads)
    except (ImportError, ValueError):  # not on a worker (called directly)
        return spec.default_threads


@dataclass(frozen=True)
class VariantSpec:
    id: str
    dir: str
    case: CaseRef
    stages: tuple[tuple[str, dict[str, Any], str], ...]  # (stage, options, folder)


@dataclass
class VariantResult:
    id: str
    status: str  # "ok", "not final", "failed"
    error: str = ""
    figures: dict[str, Any] = field(default_factory=dict)  # "<stage>.<headline>" -> value


def finish_variant(spec: VariantSpec, nodes: list[NodeResult]) -> VariantResult:
    """Copy in the stages other variants ran, check each is this variant's result, and read its headline figures."""
    failed = next((n for n in nodes if n.status not in USABLE), None)
    if failed is not None:
        why = failed.error if failed.status == "skipped" else f"{failed.stage} failed: {failed.error}"
        return VariantResult(spec.id, "failed", why, _sources(nodes))
    try:
        from adnstudy.pipeline import run_key
        from adnstudy.results.store import copy_stage, read_manifest
        from adnstudy.stages.registry import BY_NAME

        case = spec.case.load()
        out = Path(spec.dir)
        for node in nodes:
            if Path(node.owner_dir) != out:
                copy_stage(Path(node.owner_dir), node.folder, out)
        figures: dict[str, Any] = {}
        for name, options, folder in spec.stages:  # each stage's run key, recomputed for this variant
            manifest = read_manifest(out, folder) or {}
            if manifest.get("run_key") != run_key(case, out, BY_NAME[name], options):
                return VariantResult(spec.id, "failed", f"internal error: {out / folder} is not this variant's "
                                     "result (its run key differs)", _sources(nodes))
            figures.update(headline(name, manifest))
    except Exception as exc:
        log.exception("sweep variant %s failed", spec.id)
        return VariantResult(spec.id, "failed", f"internal error: {type(exc).__name__}: {exc}", _sources(nodes))
    incomplete = [n for n in nodes if n.status == "not final"]
    if incomplete:
        return VariantResult(spec.id, "not final", incomplete[0].error.splitlines()[0], figures)
    return VariantResult(spec.id, "ok", "", figures)


def _sources(nodes: list[NodeResult]) -> dict[str, Any]:
    """``<stage>.from``: the variant whose run produced the stage's results (itself, or one it shares them with)."""
    return {f"{n.stage}.from": n.owner for n in nodes}


def headline(stage: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """A stage's headline figures from its manifest: its ``summary`` (flattened), seconds and threads, and
    ``<stage>.from``: the case (``config_sha256``) whose run produced it, which the sweep turns into a variant id."""
    out: dict[str, Any] = {}

    def flat(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                flat(f"{prefix}.{k}", v)
        else:
            out[prefix] = value

    out[f"{stage}.from"] = (manifest.get("case") or {}).get("config_sha256")  # whose run: named by sweep/run.py
    flat(stage, manifest.get("summary") or {})
    out[f"{stage}.stage_seconds"] = (manifest.get("timings_s") or {}).get("total")
    solver = manifest.get("solver") or {}
    if "threads" in solver:
        out[f"{stage}.threads"] = solver["threads"]
    return out
