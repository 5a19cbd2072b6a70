"""Results store: ``DIR/<stage>/<table>.parquet`` plus ``DIR/<stage>/manifest.json``.

A stage writes into a hidden temporary folder beside its final one and swaps it
in only when the stage finished, so a failed or interrupted stage leaves the
previous results (or nothing) and never a half-written set. The manifest records
what produced the tables: package version, case hashes, inputs, solver record,
timings per phase and the objective.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from adnstudy import __version__
from adnstudy.config.load import Case
from adnstudy.errors import BadInputTableError, MissingInputError

MANIFEST = "manifest.json"


def default_out(case: Case) -> Path:
    return Path("results") / case.name


class StageWriter:
    """Collects one stage's tables, figures and manifest; commits them atomically.

    Use as a context manager::

        with StageWriter(out_dir, "powerflow", case) as w:
            with w.phase("solve"):
                ...
            w.table("bus", df)
            w.record(objective=..., solver={...})
    """

    def __init__(
        self, out_dir: Path, stage: str, case: Case, inputs: dict[str, str | None] | None = None, *,
        folder: str | None = None, tables: tuple[str, ...] | None = None, optional_tables: tuple[str, ...] = (),
        figures: tuple[str, ...] | None = None,
    ):
        self.out_dir = Path(out_dir)
        self.stage = stage
        self.case = case
        self.folder = folder or stage
        self.final = self.out_dir / self.folder
        self.tmp = self.out_dir / f".{self.folder}.tmp-{uuid.uuid4().hex[:8]}"
        #: the tables and figures the stage declares (None: not checked)
        self.declared = (tables, optional_tables, figures)
        self.timings: dict[str, float] = {}
        self.meta: dict[str, Any] = {"inputs": inputs or {}}
        self.tables: list[str] = []
        self.figures: list[str] = []
        self._t0 = time.perf_counter()

    def __enter__(self) -> StageWriter:
        self.tmp.mkdir(parents=True, exist_ok=False)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        try:
            self._commit()
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a phase (build, solve, verify, write ...) for the manifest."""
        t = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t

    def table(self, name: str, df: pd.DataFrame) -> None:
        df.to_parquet(self.tmp / f"{name}.parquet", index=False)
        self.tables.append(name)

    def figure(self, name: str, fig: Any) -> None:
        """Save a matplotlib figure as PNG."""
        fig.savefig(self.tmp / f"{name}.png", dpi=120, bbox_inches="tight")
        self.figures.append(name)

    def record(self, **fields: Any) -> None:
        """Add fields to the manifest (solver record, objective, verification figures ...)."""
        self.meta.update(fields)

    def _check_declared(self) -> None:
        """A stage writes exactly what it declares (stages/registry.py): a contract, not a user error."""
        tables, optional, figures = self.declared
        if tables is not None:
            missing = sorted(set(tables) - set(self.tables))
            unknown = sorted(set(self.tables) - set(tables) - set(optional))
            if missing or unknown:
                raise RuntimeError(f"stage {self.stage} wrote tables {sorted(self.tables)}, declared {list(tables)} "
                                   f"(+ optional {list(optional)}): missing {missing}, undeclared {unknown}")
        if figures is not None and sorted(self.figures) != sorted(figures):
            raise RuntimeError(f"stage {self.stage} drew figures {self.figures}, declared {list(figures)}")

    def _commit(self) -> None:
        self._check_declared()
        self.timings["total"] = time.perf_counter() - self._t0
        manifest = {
            "adnstudy_version": __version__,
            "stage": self.stage,
            "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "case": {
                "name": self.case.name,
                "file": str(self.case.path),
                "file_sha256": self.case.file_sha256,
                "config_sha256": self.case.config_sha256,
            },
            "tables": self.tables,
            # what later stages compare their inputs with (results/provenance.py)
            "table_sha256": {t: table_digest(self.tmp / f"{t}.parquet") for t in self.tables},
            "figures": self.figures,
            "timings_s": {k: round(v, 6) for k, v in self.timings.items()},
            **self.meta,
        }
        with open(self.tmp / MANIFEST, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=2, default=_json_default)
        old = None
        if self.final.exists():
            old = self.out_dir / f".{self.folder}.old-{uuid.uuid4().hex[:8]}"
            os.replace(self.final, old)
        os.replace(self.tmp, self.final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_manifest(out_dir: Path, stage: str) -> dict[str, Any] | None:
    """The stage's manifest, or None if there is none or it cannot be read as a JSON object (a stage whose
    manifest is unreadable is never up to date; ``results/provenance.py`` names the fault to a later stage)."""
    path = Path(out_dir) / stage / MANIFEST
    if not path.is_file():
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            manifest = json.load(fh)
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def table_path(out_dir: Path, stage: str, table: str) -> Path:
    return Path(out_dir) / stage / f"{table}.parquet"


def table_digest(path: Path) -> str | None:
    """Hash of a table file's content: what a later stage's run key holds of the tables it read.

    Tables are written deterministically, so a stage re-run with the same results
    leaves later stages up to date (a manifest's hash would not: it holds times).
    """
    path = Path(path)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def read_table(out_dir: Path, stage: str, table: str, case: Case) -> pd.DataFrame:
    """Read a table an earlier stage wrote, or say which command produces it (missing, or not Parquet)."""
    import pyarrow as pa

    path = table_path(out_dir, stage, table)
    command = f"'adnstudy {stage} {case.path} --out {out_dir}'"
    if not path.is_file():
        raise MissingInputError(f"{path} is missing: it is written by {command}")
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as exc:  # empty, truncated, garbage
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        raise BadInputTableError(
            f"{path} is not a readable Parquet table ({type(exc).__name__}: {reason}; {path.stat().st_size} bytes): "
            f"the table is written by '{stage}', re-run {command}"
        ) from None
