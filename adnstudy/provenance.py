"""Where results came from, and the check that the results a stage reads are its case's.

Every manifest records what produced its tables (``depends``): the package
version, the stage's result options, a digest of each case section (or dotted
field) the stage reads, of each data file, and of each earlier stage's table it
read, plus the digest of every table it wrote (``table_sha256``). The run key
(``pipeline.run_key``) is the hash of ``depends``.

Before a stage reads an earlier stage's tables (:func:`check_upstream`, called
by ``registry.read_inputs``), for each of them:

1. the earlier stage's manifest exists and parses (else the tables have no
   provenance: an error);
2. the table's bytes are those the earlier stage wrote;
3. the earlier stage's ``depends``, recomputed for the *current* case (with
   the options it ran with, and the tables now beside it), equals the recorded
   one: the case sections, data files and upstream tables it used are still
   this case's. The error names what differs and the command to re-run.

``--force-inputs`` turns the refusals of 2 and 3 into warnings recorded in the
manifest (``forced_inputs``). The content checks of :mod:`adnstudy.results.inputs`
(columns, types, ranges, NaN) always apply.
"""

from __future__ import annotations

import hashlib
import json
import logging
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adnstudy import __version__
from adnstudy.errors import MissingInputError

if TYPE_CHECKING:
    from adnstudy.config.load import Case
    from adnstudy.stages.registry import Stage

log = logging.getLogger(__name__)


class StaleInputError(MissingInputError):
    """An earlier stage's results are not this case's (or were changed after it wrote them): exit 2."""


def sha256_json(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def json_options(options: dict[str, Any]) -> dict[str, Any]:
    """Options as JSON values (paths as strings), as the manifest records them."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in sorted(options.items())}


def key_parts(case: Case, out_dir: Path, stage: Stage, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a stage's results depend on, each part as a digest: the manifest's ``depends``."""
    from adnstudy.pipeline import input_digests, section_values
    from adnstudy.results.store import table_digest

    options = options or {}
    sections, files = stage.depends_on(options)
    return {
        "version": __version__,
        "stage": stage.name,
        "options": json_options(options),
        "sections": {name: sha256_json(value) for name, value in section_values(case, sections).items()},
        "files": input_digests(case, files),
        "tables": {f"{up}/{t}": table_digest(path) for (up, t), path in stage.tables_read(out_dir, options).items()},
    }


@dataclass
class StageRun:
    """The stage being run: its options, its ``depends``, and whether its inputs' provenance may be overridden."""

    stage: str
    options: dict[str, Any]
    parts: dict[str, Any]
    force_inputs: bool = False
    forced: list[str] = field(default_factory=list)


#: Set by ``pipeline`` while a stage runs; the stage's writer records it in the manifest.
CURRENT: ContextVar[StageRun | None] = ContextVar("adnstudy_stage_run", default=None)


def _describe(recorded: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between a recorded ``depends`` and the current one, in words."""
    out: list[str] = []
    if recorded.get("version") != now["version"]:
        out.append(f"written by adnstudy {recorded.get('version')}, this is {now['version']}")
    for kind, label in (("sections", "case section '{}'"), ("files", "data file '{}'"),
                        ("tables", "input table '{}'")):
        old, new = recorded.get(kind) or {}, now[kind]
        for name in sorted(set(old) | set(new)):
            if old.get(name) != new.get(name):
                what = label.format(name.removeprefix("profile:"))
                if kind == "tables":
                    out.append(f"{what} {'changed since' if name in old and name in new else 'differs from what it read'}")
                else:
                    out.append(f"{what} {'changed' if name in old and name in new else 'differs'}")
    return out


def _read_manifest(folder: Path, up: str) -> dict[str, Any]:
    path = folder / up / "manifest.json"
    hint = f"re-run 'adnstudy {up}' for this case into {folder}"
    if not path.is_file():
        raise MissingInputError(f"{path} is missing, so the tables beside it have no provenance: {hint}")
    try:
        with open(path, encoding="utf-8") as fh:
            manifest = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MissingInputError(f"{path} is not a readable manifest ({type(exc).__name__}): {hint}") from None
    if not isinstance(manifest, dict):
        raise MissingInputError(f"{path} is not a readable manifest (not a JSON object): {hint}")
    return manifest


def check_upstream(case: Case, reader: Stage, paths: dict[tuple[str, str], Path]) -> list[str]:
    """Refuse (or, with ``--force-inputs``, warn about) earlier stages' tables that are not this case's.

    ``paths``: (stage, table) → file, as ``Stage.tables_read`` gives them. Returns the warnings overridden.
    """
    from adnstudy.results.store import table_digest
    from adnstudy.stages.registry import BY_NAME

    run = CURRENT.get()
    force = run is not None and run.force_inputs and run.stage == reader.name
    by_folder: dict[tuple[Path, str], list[tuple[str, Path]]] = {}
    for (up, t), path in paths.items():
        by_folder.setdefault((path.parents[1], up), []).append((t, path))
    warnings: list[str] = []
    for (folder, up), tables in by_folder.items():
        if not all(p.is_file() for _, p in tables):
            continue  # read_table says which command writes it
        manifest = _read_manifest(folder, up)
        rerun = f"re-run 'adnstudy {up} {case.path} --out {folder}' (or 'adnstudy run')"
        problems: list[str] = []
        written = manifest.get("table_sha256")
        depends = manifest.get("depends")
        if not isinstance(written, dict) or not isinstance(depends, dict):
            problems.append(f"{folder / up} was written by an adnstudy without provenance records "
                            f"({manifest.get('adnstudy_version', 'unknown version')})")
        else:
            changed = [t for t, p in tables if written.get(t) != table_digest(p)]
            if changed:
                problems.append(f"{', '.join(str(folder / up / f'{t}.parquet') for t in changed)} "
                                f"{'was' if len(changed) == 1 else 'were'} changed after '{up}' wrote "
                                f"{'it' if len(changed) == 1 else 'them'}")
            now = key_parts(case, folder, BY_NAME[up], depends.get("options") or {})
            diff = _describe(depends, now)
            if diff:
                problems.append(f"{folder / up} was produced from different inputs than this case's "
                                f"({'; '.join(diff)})")
        if not problems:
            continue
        message = f"{'; '.join(problems)}: {rerun}"
        if reader.name == "dispatch" and up == "plan":
            message += ", or run dispatch with --no-plan"
        if not force:
            raise StaleInputError(f"{message}, or pass --force-inputs to use it anyway")
        log.warning("--force-inputs: %s", message)
        warnings.append(message)
    if run is not None and run.stage == reader.name:
        run.forced.extend(warnings)
    return warnings
