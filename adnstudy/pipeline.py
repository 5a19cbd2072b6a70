"""Running stages: one now (each stage command), or all of them in order (``adnstudy run``).

A stage is skipped by ``run`` when its manifest carries the same *run key*: a
hash of what its results depend on, and nothing else —

* the package version and the stage's result options;
* the case sections (or fields) the stage reads, as declared in the registry
  (``Stage.depends_on``): editing ``market`` re-runs only ``dispatch``, editing
  ``description`` nothing;
* the contents of the data files it reads (feeder tables, profile files, the
  SimBench data set);
* the contents of the earlier stages' tables it reads (``Stage.tables_read``),
  so re-running ``cluster`` with identical typical days leaves ``plan`` and
  ``dispatch`` up to date.

``--force`` runs everything again. Single-stage commands record the same key,
so ``run`` after them skips what they already did with the same options. A
stage whose manifest says it is incomplete (``complete: false``: a dispatch day
that did not converge) is never up to date.

Each manifest also records the key's parts (``depends``, :func:`key_parts`) and
the stage's result options, so a later stage can recompute an earlier stage's
key for the current case and name what differs (``results/provenance.py``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adnstudy import __version__
from adnstudy.config.load import Case
from adnstudy.errors import IncompleteResultsError
from adnstudy.results.provenance import StageRun, running
from adnstudy.results.store import file_sha256, read_manifest, table_digest
from adnstudy.stages.registry import BY_NAME, FORCE_INPUTS, STAGES, Stage, missing_sections, resolve


def input_digests(case: Case, files: tuple[str, ...] = ("feeder", "profiles")) -> dict[str, str]:
    """Hashes of the data files the case reads, of the kinds named ("feeder", "profiles")."""
    from adnstudy.network.feeder import builtin_path

    out: dict[str, str] = {}
    if "feeder" in files:
        net = case.config.network
        if net.simbench is not None:  # an imported network: its file, or the simbench package's grid
            from importlib.metadata import version

            out["network"] = f"simbench {version('simbench')}:{net.simbench}"
        elif net.pandapower is not None or net.matpower is not None:
            source = case.resolve(net.pandapower if net.pandapower is not None else net.matpower)
            if source.is_file():
                out["network"] = file_sha256(source)
        else:
            if net.feeder is not None:
                buses, branches = builtin_path(net.feeder)
            else:
                assert net.buses is not None and net.branches is not None
                buses, branches = case.resolve(net.buses), case.resolve(net.branches)
            out.update({k: file_sha256(p) for k, p in (("buses", buses), ("branches", branches)) if p.is_file()})
        if net.generators is not None and case.resolve(net.generators).is_file():  # existing generation: a feeder table
            out["generators"] = file_sha256(case.resolve(net.generators))
    prof = case.config.profiles
    if "profiles" in files and prof is not None:
        if prof.source == "simbench":
            from importlib.metadata import version

            out["simbench"] = f"{version('simbench')}:{prof.simbench_code}"
        else:
            for name, series in prof.series.items():
                rel = series.file or prof.file
                if rel is not None and case.resolve(rel).is_file():
                    out[f"profile:{name}"] = file_sha256(case.resolve(rel))
    return out


def section_values(case: Case, sections: tuple[str, ...]) -> dict[str, Any]:
    """The case's value of each section or dotted field (None where absent), as JSON-ready data."""
    out: dict[str, Any] = {}
    for path in sections:
        value: Any = case.config
        for part in path.split("."):
            value = getattr(value, part, None) if value is not None else None
        if hasattr(value, "model_dump"):
            value = value.model_dump(mode="json")
        elif isinstance(value, list):
            value = [v.model_dump(mode="json") if hasattr(v, "model_dump") else v for v in value]
        out[path] = value
    return out


def case_payload(case: Case, stage: Stage, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The run key's parts that come from the case and its data files: all but earlier stages' tables.

    Two cases with equal payloads ask a stage the same question of the same earlier
    results; ``adnstudy sweep`` runs such a stage once for all of them.
    """
    options = options or {}
    sections, files = stage.depends_on(options)
    return {
        "version": __version__,
        "stage": stage.name,
        "options": {k: str(v) for k, v in options.items()},
        "sections": section_values(case, sections),
        "files": input_digests(case, files),
    }


def key_payload(case: Case, out_dir: Path, stage: Stage, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What the stage's run key hashes (module docstring)."""
    tables = stage.tables_read(out_dir, options)
    return {**case_payload(case, stage, options),
            "tables": {f"{up}/{t}": table_digest(path) for (up, t), path in tables.items()}}


def key_of(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def run_key(case: Case, out_dir: Path, stage: Stage, options: Mapping[str, Any] | None = None) -> str:
    """Hash of what the stage's results depend on (module docstring)."""
    return key_of(key_payload(case, out_dir, stage, options))


def key_parts(payload: dict[str, Any]) -> dict[str, Any]:
    """The run key's parts as the manifest records them (``depends``): each section's value by its SHA-256, so
    a later stage can name what differs (``results/provenance.py``)."""
    return {
        "version": payload["version"],
        "options": payload["options"],
        "sections": {name: key_of({"value": v}) for name, v in payload["sections"].items()},
        "files": payload["files"],
        "tables": payload["tables"],
    }


@dataclass(frozen=True)
class StageOutcome:
    stage: str
    status: str  # "ran", "up to date", "not in case", "not final" (written, but some part missed its tolerance)
    detail: str = ""


def applicable(case: Case, stage: Stage) -> str | None:
    """None if the case has what the stage needs, else the reason to leave it out."""
    missing = missing_sections(case, stage)
    return f"case has no {', '.join(missing)} section" if missing else None


def run_stage(case: Case, out_dir: Path, name: str, **options: Any) -> dict[str, Any]:
    """Run one stage now (as its own command does), recording its run key."""
    stage = BY_NAME[name]
    opts = stage.result_options(options)
    payload = key_payload(case, out_dir, stage, opts)
    run = StageRun(stage.name, opts, key_parts(payload), force_inputs=bool(options.get(FORCE_INPUTS.name)))
    with running(run):
        return resolve(stage.run)(case, out_dir, run_key=key_of(payload), **opts)


def up_to_date(out_dir: Path, stage: Stage, key: str, options: Mapping[str, Any] | None = None) -> bool:
    """The stage's results in ``out_dir`` carry run key ``key`` and are complete (module docstring)."""
    old = read_manifest(out_dir, stage.folder_for(options))
    return old is not None and old.get("run_key") == key and bool(old.get("complete", True))


def run_all(
    case: Case, out_dir: Path, *, force: bool = False, on_start: Callable[[str], None] | None = None
) -> list[StageOutcome]:
    """Every stage of ``adnstudy run`` in order, with its default options; skip those up to date."""
    outcomes: list[StageOutcome] = []
    for stage in (s for s in STAGES if s.in_run):
        reason = applicable(case, stage)
        if reason:
            outcomes.append(StageOutcome(stage.name, "not in case", reason))
            continue
        payload = key_payload(case, out_dir, stage)
        key = key_of(payload)
        if not force and up_to_date(out_dir, stage, key):
            outcomes.append(StageOutcome(stage.name, "up to date", "inputs and case unchanged"))
            continue
        if on_start:
            on_start(stage.name)
        try:
            with running(StageRun(stage.name, {}, key_parts(payload))):
                summary = resolve(stage.run)(case, out_dir, run_key=key)
        except IncompleteResultsError as exc:  # written and marked; later stages may still run
            outcomes.append(StageOutcome(stage.name, "not final", str(exc)))
            continue
        outcomes.append(StageOutcome(stage.name, "ran", _short(summary)))
    return outcomes


def _short(summary: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items())
