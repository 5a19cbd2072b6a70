"""Provenance: before a stage uses an earlier stage's tables, it checks they are what that stage wrote for this case.

For every earlier stage a stage reads (``Stage.tables_read``: its declared reads,
the optional ones that exist, and another results folder such as
``reliability --plan DIR``), :func:`check_provenance` requires

1. a readable manifest in the earlier stage's folder;
2. each table read byte-identical to what that stage wrote (the manifest's
   ``table_sha256``, recorded at commit by ``StageWriter``);
3. the earlier stage's run key, recomputed now for this case with the options
   its manifest records, equal to the one it recorded: the same case sections,
   data files, package version and (for a stage that itself reads tables, such
   as ``plan``) the same tables of its own earlier stages. The manifest's
   ``depends`` (the key's parts, ``pipeline.key_parts``) names what differs.

A failure is a :class:`~adnstudy.errors.StaleInputError` (exit 2) naming the
folder and the command to re-run. With ``--force-inputs`` (a command option of
every stage that reads tables) each failure becomes a warning on stderr and is
recorded in the stage's manifest (``forced_inputs``).

The stage being run (its options, its key's parts, ``--force-inputs``) is held
in a context variable set by ``pipeline.run_stage`` and ``run_all``
(:func:`running`), so the stages' own code does not thread it through: the
results writer records it (``registry.stage_writer``) and the check reads the
flag.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adnstudy.config.load import Case
from adnstudy.config.overrides import set_flags
from adnstudy.errors import StaleInputError
from adnstudy.results.store import MANIFEST

log = logging.getLogger(__name__)


@dataclass
class StageRun:
    """The stage being run: what its manifest records of its run."""

    stage: str
    options: dict[str, Any]  # its result options (those not at their default)
    depends: dict[str, Any]  # its run key's parts (pipeline.key_parts)
    force_inputs: bool = False
    forced: list[str] = field(default_factory=list)  # the provenance failures --force-inputs let through

    def manifest_fields(self) -> dict[str, Any]:
        return {"options": self.options, "depends": self.depends, "forced_inputs": self.forced}


_RUN: ContextVar[StageRun | None] = ContextVar("adnstudy_stage_run", default=None)


@contextmanager
def running(run: StageRun) -> Iterator[StageRun]:
    token = _RUN.set(run)
    try:
        yield run
    finally:
        _RUN.reset(token)


def current_run(stage: str) -> StageRun | None:
    """The run of ``stage`` in progress, if it was started by ``pipeline`` (None when called directly)."""
    run = _RUN.get()
    return run if run is not None and run.stage == stage else None


def rerun_command(case: Case, folder: Path, stage: str, options: Mapping[str, Any] | None = None) -> str:
    """``'adnstudy <stage> <case> --out <folder> [its options] [--set ...]'``: what writes that folder again (the
    case's overrides too, so the command reproduces this configuration)."""
    from adnstudy.stages.registry import BY_NAME

    flags: list[str] = []
    for opt in BY_NAME[stage].options:
        value = (options or {}).get(opt.name)
        if value is None or opt.kind != "result":
            continue
        spellings = opt.flags[0].split("/")
        if isinstance(value, bool):
            flags.append(spellings[0] if value else spellings[-1])
        else:
            flags += [f"{spellings[0]} {v}" for v in (value if isinstance(value, list) else [value])]
    return f"'adnstudy {' '.join([stage, str(case.path), '--out', str(folder), *flags, *set_flags(case.overrides)])}'"


def check_provenance(case: Case, stage: str, paths: Mapping[tuple[str, str], Path],
                     digests: Mapping[str, str | None]) -> dict[tuple[Path, str], dict[str, Any] | None]:
    """Check each earlier stage whose tables ``stage`` reads (module docstring); their manifests, by
    (results folder, stage) (None where unreadable and forced through)."""
    groups: dict[tuple[Path, str], list[str]] = {}
    for (up, t), path in paths.items():
        groups.setdefault((path.parents[1], up), []).append(t)
    problems: list[str] = []
    manifests: dict[tuple[Path, str], dict[str, Any] | None] = {}
    for (folder, up), tables in groups.items():
        manifest, problem = load_manifest(case, folder, up)
        manifests[folder, up] = manifest
        if problem is None:
            assert manifest is not None
            problem = changed_tables(case, folder, up, manifest, {t: digests[f"{up}/{t}"] for t in tables})
        if problem is None:
            assert manifest is not None
            problem = key_difference(case, folder, up, manifest)
        if problem is not None:
            if stage == "dispatch" and up == "plan":  # the plan is optional: the bare feeder is an answer too
                problem += " (or run dispatch with --no-plan, on the bare feeder)"
            problems.append(problem)
    if problems:
        run = current_run(stage)
        if run is None or not run.force_inputs:
            advice = ", or pass --force-inputs to use it anyway"
            raise StaleInputError("\n".join(p + advice for p in problems))
        for p in problems:
            log.warning("--force-inputs: %s", p)
            run.forced.append(p)
    return manifests


def load_manifest(case: Case, folder: Path, stage: str) -> tuple[dict[str, Any] | None, str | None]:
    """The earlier stage's manifest, or what is wrong with it."""
    path = folder / stage / MANIFEST
    rerun = f"re-run {rerun_command(case, folder, stage)}"
    if not path.is_file():
        return None, (f"{path} is missing: nothing records what produced the tables in {folder / stage} "
                      f"(not written by adnstudy, or copied without it); {rerun}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        reason = (str(exc).splitlines() or [""])[0][:120]
        return None, f"{path} is not a readable manifest ({type(exc).__name__}: {reason}); {rerun}"
    if not isinstance(manifest, dict) or manifest.get("stage") != stage:
        return None, f"{path} is not the manifest of '{stage}'; {rerun}"
    options = manifest.get("options", {})
    rerun = f"re-run {rerun_command(case, folder, stage, options if isinstance(options, dict) else None)}"
    if not isinstance(manifest.get("table_sha256"), dict) or not isinstance(manifest.get("run_key"), str):
        return None, (f"{path} does not record its tables' digests and run key (written by adnstudy "
                      f"{manifest.get('adnstudy_version', '?')}, before these checks existed); {rerun}")
    if not isinstance(options, dict):
        return None, f"{path}: 'options' is not an object; {rerun}"
    return manifest, None


def changed_tables(case: Case, folder: Path, stage: str, manifest: dict[str, Any],
                   digests: Mapping[str, str | None]) -> str | None:
    """The tables read that are not byte-identical to those the stage wrote."""
    changed = [t for t, d in digests.items() if manifest["table_sha256"].get(t) != d]
    if not changed:
        return None
    files = ", ".join(str(folder / stage / f"{t}.parquet") for t in changed)
    what = "were changed after '{}' wrote them" if len(changed) > 1 else "was changed after '{}' wrote it"
    return (f"{files} {what.format(stage)} (its manifest records another SHA-256); "
            f"re-run {rerun_command(case, folder, stage, manifest.get('options'))}")


def key_difference(case: Case, folder: Path, stage: str, manifest: dict[str, Any]) -> str | None:
    """None if the stage's run key for this case (with its recorded options) is the one it recorded; else
    what differs."""
    from adnstudy.pipeline import key_of, key_parts, key_payload
    from adnstudy.stages.registry import BY_NAME

    options = manifest.get("options", {})
    payload = key_payload(case, folder, BY_NAME[stage], options)
    if key_of(payload) == manifest["run_key"]:
        return None
    now, then = key_parts(payload), manifest.get("depends")
    rerun = rerun_command(case, folder, stage, options)
    if not isinstance(then, dict):
        return f"{folder / stage} was produced from other inputs than this case's (its manifest does not say which); re-run {rerun}"
    content: list[str] = []
    for name in _differing(then.get("sections"), now["sections"]):
        content.append(f"{name} changed")
    for name in _differing(then.get("files"), now["files"]):
        kind, _, series = name.partition(":")
        content.append(f"profile file '{series}' changed" if kind == "profile"
                       else "SimBench data changed" if kind == "simbench" else f"feeder table '{name}' changed")
    other: list[str] = []
    if then.get("version") != now["version"]:
        other.append(f"written by adnstudy {then.get('version')}, this is {now['version']}")
    for name in _differing(then.get("tables"), now["tables"]):
        other.append(f"{name} is not the table it read")
    if not content and not other:
        other.append("its run key does not match the inputs it records")
    what = "different case content" if content else "other inputs"
    return f"{folder / stage} was produced from {what} ({'; '.join(content + other)}): re-run {rerun}"


def _differing(then: Any, now: Mapping[str, Any]) -> list[str]:
    """Keys whose values differ, in the order the stage declares them (those no longer read last)."""
    then = then if isinstance(then, dict) else {}
    return [k for k in dict.fromkeys([*now, *then]) if then.get(k) != now.get(k)]
