"""A sweep file: a base case, the stages to run, and the variants — each the base case with some fields changed.

The variants are the product of three axes (docs/sweep.md):

* ``variants``: named variants, each with its own field changes (default: the base case alone);
* ``grid``: field path → list of values, every combination;
* ``zip``: field path → list of values, the lists varied together (equal lengths).

A field change is the same as ``--set path=value`` on a stage command
(``config/overrides.py``); ``set`` applies changes to every variant. The file is
read like a case (typed, unknown fields refused, errors at their line), and
:func:`validate` loads and checks every variant's case before anything runs,
so one bad variant stops the whole sweep with its name.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field, TypeAdapter, ValidationError, model_validator

from adnstudy.config.load import Case, _case_error, _read_yaml, load_case
from adnstudy.config.overrides import Override
from adnstudy.config.schema import Name, Strict, cross_field_error
from adnstudy.errors import AdnstudyError, CaseError

#: A sweep larger than this is refused before anything is built (a typo in a grid multiplies quickly).
MAX_VARIANTS = 10_000
#: A variant's folder name is cut to this many characters (plus a hash of the whole).
MAX_ID = 96


def _values(values: list[Any]) -> list[Any]:
    if not values:
        raise ValueError("needs at least one value")
    return values


Values = Annotated[list[Any], AfterValidator(_values)]


class VariantSpec(Strict):
    """One named variant: its field changes over the base case (and the sweep's ``set``)."""

    name: Name
    set: dict[str, Any] = Field(default_factory=dict, description="Field path → value.")


class SweepFile(Strict):
    """A whole sweep file."""

    name: Name | None = None
    description: str = ""
    case: Path = Field(description="The base case, relative to the sweep file.")
    stages: Annotated[list[str | dict[str, dict[str, Any]]], Field(min_length=1)] = Field(
        description="Stage names in pipeline order; {stage: {option: value}} gives a stage's options."
    )
    set: dict[str, Any] = Field(default_factory=dict, description="Field changes of every variant.")
    grid: dict[str, Values] = Field(default_factory=dict, description="Field path → values: every combination.")
    zip: dict[str, Values] = Field(default_factory=dict, description="Field path → values, varied together.")
    variants: list[VariantSpec] = Field(default_factory=list, description="Named variants.")

    @model_validator(mode="after")
    def _rules(self) -> SweepFile:
        lengths = {p: len(v) for p, v in self.zip.items()}
        if len(set(lengths.values())) > 1:
            raise cross_field_error(f"the lists of a zip are varied together, so they need equal lengths "
                                    f"(got {', '.join(f'{p}: {n}' for p, n in lengths.items())})", "zip")
        names = [v.name for v in self.variants]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise cross_field_error(f"variant names must be unique; repeated: {dup}", "variants")
        varied = [*self.grid, *self.zip]
        twice = sorted({p for p in varied if varied.count(p) > 1})
        if twice:
            raise cross_field_error(f"{twice[0]} is varied by both grid and zip; give it in one of them", "zip")
        return self


@dataclass(frozen=True)
class StageSpec:
    """A stage of the sweep with its options (the result options of its command)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def folder(self) -> str:
        from adnstudy.stages.registry import BY_NAME

        return BY_NAME[self.name].folder_for(self.options)


@dataclass(frozen=True)
class Variant:
    """The base case with field changes: its folder name, the varied values, and the changes to apply."""

    id: str
    index: int
    values: dict[str, Any]  # field path -> value, for the fields the grid and zip vary
    overrides: tuple[Override, ...]
    name: str | None = None  # of a named variant


@dataclass(frozen=True)
class Sweep:
    path: Path
    name: str
    case: Path
    stages: tuple[StageSpec, ...]
    variants: tuple[Variant, ...]
    varied: tuple[str, ...]  # the field paths grid and zip vary, in file order
    file_sha256: str


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file: its fields, stages, options and variants (not yet the variants' cases)."""
    path = Path(path)
    data, lines, raw = _read_yaml(path, "a sweep file")
    line_map = {k: (str(path), v) for k, v in lines.items()}
    try:
        spec = SweepFile.model_validate(data)
    except ValidationError as exc:
        raise _case_error(exc, path, line_map) from None

    def line(*loc: str | int) -> int | None:
        return lines.get(tuple(loc))

    case = spec.case if spec.case.is_absolute() else (path.parent / spec.case).resolve()
    if not case.is_file():
        raise CaseError(f"base case {case} not found", file=path, field="case", line=line("case"))
    stages = _stages(spec, path, line)
    variants = _variants(spec, path, line)
    return Sweep(path=path.resolve(), name=spec.name or path.stem, case=case, stages=stages, variants=variants,
                 varied=(*spec.grid, *spec.zip), file_sha256=hashlib.sha256(raw).hexdigest())


def _stages(spec: SweepFile, path: Path, line) -> tuple[StageSpec, ...]:
    from adnstudy.stages.registry import BY_NAME, STAGES

    order = [s.name for s in STAGES]
    out: list[StageSpec] = []
    for i, item in enumerate(spec.stages):
        where = {"file": path, "field": f"stages[{i}]", "line": line("stages", i)}
        if isinstance(item, dict):
            if len(item) != 1:
                raise CaseError("a stage with options is one mapping {stage: {option: value}}", **where)
            name, given = next(iter(item.items()))
        else:
            name, given = item, {}
        if name not in BY_NAME:
            raise CaseError(f"unknown stage {name!r} (stages: {', '.join(order)})", **where)
        stage = BY_NAME[name]
        options = {o.name: o for o in stage.options if o.kind == "result"}
        if stage.folder_reads is not None:
            options.pop(stage.folder_reads[0], None)  # another results folder: not a sweep's
        checked: dict[str, Any] = {}
        for key, value in given.items():
            if key not in options:
                raise CaseError(f"{name} has no option {key!r} in a sweep (options: {', '.join(options) or 'none'})",
                                **where)
            try:
                checked[key] = TypeAdapter(options[key].annotation).validate_python(value)
            except ValidationError as exc:
                raise CaseError(f"option {key}: {exc.errors()[0]['msg']} (got {value!r})", **where) from None
        out.append(StageSpec(name, stage.result_options(checked)))
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise CaseError(f"a stage is listed twice: {names}", file=path, field="stages", line=line("stages"))
    if names != sorted(names, key=order.index):
        raise CaseError(f"stages run in pipeline order ({', '.join(order)}); got {', '.join(names)}",
                        file=path, field="stages", line=line("stages"))
    for s in out:
        missing = [up for up in BY_NAME[s.name].requires if up not in names]
        if missing:
            raise CaseError(f"{s.name} reads the tables of {missing[0]}: list {missing[0]} before it",
                            file=path, field="stages", line=line("stages"))
    return tuple(out)


def _variants(spec: SweepFile, path: Path, line) -> tuple[Variant, ...]:
    named = spec.variants or [None]
    grid = list(itertools.product(*spec.grid.values())) if spec.grid else [()]
    zipped = list(zip(*spec.zip.values(), strict=True)) if spec.zip else [()]
    count = len(named) * len(grid) * len(zipped)
    if count > MAX_VARIANTS:
        raise CaseError(f"{count:,} variants; a sweep has at most {MAX_VARIANTS:,} (split it)", file=path)
    varied = [*spec.grid, *spec.zip]
    labels = _labels(varied)

    def source(*loc: str | int) -> str:  # where the value is written (the variant is named by validate)
        at = line(*loc)
        return f"{path}{f':{at}' if at else ''}"

    base = [Override(p, v, source("set", p)) for p, v in spec.set.items()]
    out: list[Variant] = []
    ids: set[str] = set()
    for index, (variant, g, z) in enumerate(itertools.product(named, grid, zipped)):
        values = dict(zip(varied, (*g, *z), strict=True))
        parts = ([variant.name] if variant is not None else []) + [
            f"{labels[p]}={_fmt(v)}" for p, v in values.items()]
        vid = _folder_name(",".join(parts) or "base")
        if vid in ids:
            vid = f"{vid}-{index}"
        ids.add(vid)
        own = [] if variant is None else [
            Override(p, v, source("variants", spec.variants.index(variant), "set", p)) for p, v in variant.set.items()]
        axis = [Override(p, v, source("grid" if p in spec.grid else "zip", p)) for p, v in values.items()]
        out.append(Variant(id=vid, index=index, values=values, overrides=(*base, *own, *axis),
                           name=variant.name if variant is not None else None))
    return tuple(out)


def _labels(paths: list[str]) -> dict[str, str]:
    """Each varied path's label in folder names: its last field name, or the whole path where two share it."""
    last = {p: re.split(r"[.\[]", p.rstrip("]"))[-1] for p in paths}
    return {p: (last[p] if list(last.values()).count(last[p]) == 1 else p) for p in paths}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str | int | bool) or value is None:
        return str(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _folder_name(text: str) -> str:
    """A folder name of the variant's label: letters, digits and ``._=+,-``; long ones cut, with a hash."""
    name = re.sub(r"[^A-Za-z0-9._=+,-]+", "-", text).strip("-.") or "variant"
    if len(name) > MAX_ID:
        name = f"{name[:MAX_ID - 9]}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    return name


def validate(sweep: Sweep) -> list[Case]:
    """Every variant's case, loaded and checked for the sweep's stages; the first bad one is an error naming it."""
    from adnstudy.checks import CaseInputs
    from adnstudy.stages.registry import validate_case

    cases: list[Case] = []
    profiles: dict[str, Any] = {}  # the profiles section's value -> its year, read once for all the variants
    for v in sweep.variants:
        try:
            case = load_case(sweep.case, overrides=v.overrides)
            inputs = CaseInputs(case)
            section = case.config.profiles
            key = json.dumps(section.model_dump(mode="json"), sort_keys=True) if section is not None else ""
            if key in profiles:
                inputs.__dict__["profiles"] = profiles[key]  # CaseInputs.profiles is a cached property
            validate_case(case, [s.name for s in sweep.stages], inputs)
            if "profiles" in inputs.__dict__:
                profiles[key] = inputs.__dict__["profiles"]
        except AdnstudyError as exc:
            raise CaseError(f"variant '{v.id}' ({v.index + 1} of {len(sweep.variants)}) of {sweep.path.name}: "
                            f"{exc}") from None
        cases.append(case)
    return cases
