"""A results folder as the report reads it: the stages present, their manifests, their tables (checked).

The report never re-solves: every number it prints comes from a table or a
manifest read here. A table whose bytes no longer match the SHA-256 its
manifest recorded was changed after its stage wrote it, and the report refuses
it (exit 2) rather than describe results nobody computed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from adnstudy.errors import BadInputTableError, MissingInputError
from adnstudy.results.store import MANIFEST, read_manifest, table_digest
from adnstudy.stages.registry import STAGES

log = logging.getLogger(__name__)

#: Stage folders in the pipeline's order, with the variants some options write.
FOLDERS = ("powerflow", "powerflow_year", "cluster", "reliability", "reliability_plan", "plan", "dispatch",
           "coplan", "coplan_centralised")
STAGE_NAMES = tuple(s.name for s in STAGES)


class NotResultsError(MissingInputError):
    """The folder given is not a results folder (exit 2, nothing written)."""


@dataclass
class Results:
    out_dir: Path
    manifests: dict[str, dict[str, Any]]  # folder -> manifest, for the folders present
    _tables: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict, repr=False)

    def has(self, folder: str, table: str | None = None) -> bool:
        m = self.manifests.get(folder)
        return m is not None and (table is None or table in (m.get("tables") or ()))

    def manifest(self, folder: str) -> dict[str, Any]:
        return self.manifests[folder]

    def summary(self, folder: str) -> dict[str, Any]:
        return self.manifests[folder].get("summary") or {}

    def table(self, folder: str, name: str) -> pd.DataFrame:
        """A table of a present stage, its bytes checked against the manifest's SHA-256."""
        key = (folder, name)
        if key not in self._tables:
            path = self.out_dir / folder / f"{name}.parquet"
            expected = (self.manifests[folder].get("table_sha256") or {}).get(name)
            actual = table_digest(path)
            if actual is None:
                raise BadInputTableError(f"{path} is missing, though {self.out_dir / folder / MANIFEST} lists it: "
                                         f"re-run the {folder} stage")
            if expected is not None and actual != expected:
                raise BadInputTableError(
                    f"{path} was changed after the {folder} stage wrote it (its SHA-256 differs from the one in "
                    f"{self.out_dir / folder / MANIFEST}): the report describes only results a stage computed; "
                    "re-run the stage")
            self._tables[key] = pd.read_parquet(path)
        return self._tables[key]

    @property
    def stages(self) -> list[str]:
        return [f for f in FOLDERS if f in self.manifests]

    @property
    def not_run(self) -> list[str]:
        return [s for s in STAGE_NAMES if s not in self.manifests]

    @cached_property
    def case_record(self) -> dict[str, Any]:
        """The case of the latest stage (name, file, SHA-256s, overrides)."""
        latest = max(self.manifests.values(), key=lambda m: str(m.get("created_utc", "")))
        return latest.get("case") or {}

    @cached_property
    def case(self):
        """The case the stages ran, loaded from its file only when the file and settings are those the manifests
        record (same SHA-256s); else None (the report then says why it leaves out what needs it)."""
        from adnstudy.config.load import load_case
        from adnstudy.config.overrides import parse_set

        rec = self.case_record
        path = Path(rec.get("file") or "")
        if not path.is_file():
            self.case_problem = f"the case file {path} is not there any more"
            return None
        try:
            case = load_case(path, [parse_set(t) for t in rec.get("overrides") or ()])
        except Exception as exc:  # noqa: BLE001 - any failure means: not the case the results came from
            self.case_problem = f"the case file {path} no longer loads ({str(exc).splitlines()[0]})"
            return None
        if case.config_sha256 != rec.get("config_sha256"):
            self.case_problem = f"the case file {path} (or its defaults) changed since the results were written"
            return None
        return case

    case_problem: str = ""

    @cached_property
    def feeder(self):
        """The feeder of the case, when the case is verified and its tables hash as the manifests record."""
        from adnstudy.network.feeder import load_feeder
        from adnstudy.pipeline import input_digests

        case = self.case
        if case is None:
            return None
        recorded: dict[str, str] = {}
        for m in self.manifests.values():
            files = (m.get("depends") or {}).get("files") or {}
            recorded.update({k: v for k, v in files.items() if k in ("buses", "branches", "generators")})
        now = input_digests(case, ("feeder",))
        if any(now.get(k) != v for k, v in recorded.items()):
            self.case_problem = "the feeder tables changed since the results were written"
            return None
        return load_feeder(case.config.network, case.path.parent, case.path)


def annual(df: pd.DataFrame, weight_days: pd.Series, value: str, by: list[str] | None = None) -> Any:
    """Σ over the typical days of ``weight_days`` (indexed by scenario) × the day's ``value`` (hourly rows count one
    hour each): a number, or a Series by the columns ``by``."""
    x = df[value] * df["scenario"].map(weight_days)
    return x.groupby([df[b] for b in by]).sum() if by else float(x.sum())


def open_results(out_dir: Path) -> Results:
    """The stages present in ``out_dir``; a clear error (exit 2) when it is not a results folder."""
    out_dir = Path(out_dir)
    if not out_dir.exists():
        raise NotResultsError(f"{out_dir} does not exist: give a results folder (adnstudy run CASE --out DIR)")
    if not out_dir.is_dir():
        raise NotResultsError(f"{out_dir} is a file, not a results folder")
    if (out_dir / "sweep.json").is_file() or (out_dir / "variants").is_dir():
        variants = sorted(p.name for p in (out_dir / "variants").glob("*") if p.is_dir())
        example = f" {out_dir / 'variants' / variants[0]}" if variants else ""
        raise NotResultsError(
            f"{out_dir} is a sweep's folder ({len(variants)} variants; the table of all is sweep.parquet): "
            f"report one variant, e.g. adnstudy report{example}")
    manifests = {f: m for f in FOLDERS if (m := read_manifest(out_dir, f)) is not None and m.get("stage")}
    if not manifests:
        unreadable = [f for f in FOLDERS if (out_dir / f / MANIFEST).is_file()]
        why = (f"its {', '.join(f + '/' + MANIFEST for f in unreadable)} cannot be read" if unreadable
               else f"it holds no stage folder with a {MANIFEST} ({', '.join(s + '/' for s in STAGE_NAMES)})")
        raise NotResultsError(f"{out_dir} is not a results folder: {why}; results are written by "
                              "adnstudy run CASE --out DIR (or one stage's command)")
    return Results(out_dir=out_dir, manifests=manifests)
