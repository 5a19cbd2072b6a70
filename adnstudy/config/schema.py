"""Typed schema of a case file.

Every section is a frozen pydantic model that rejects unknown fields, so a typo
in a case is an error naming the field instead of a silently ignored setting.
A stage reads only the sections it needs (declared in ``stages/registry.py``);
the others may be absent. Engineering units are carried in the field names (``_mw``, ``_pu``,
``_usd_per_mwh``); conversion to per unit happens once, when a model is built.
The full reference with defaults is ``docs/case.md``.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError


def _no_bool(value: object) -> object:
    """YAML's true/false are not numbers (pydantic's lax mode would take true as 1)."""
    if isinstance(value, bool):
        raise PydanticCustomError("bool_number", "expected a number, not a boolean")
    return value


def _num(x: float) -> str:
    """A bound as people write it: 1,000 and 0.5, but 1e-12 and 1e7."""
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e7:
        return f"{x:,.10g}"
    mantissa, exponent = f"{x:e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


@dataclass(frozen=True)
class Range:
    """The plausible values of a physical quantity: wide enough for any real study, excluding the absurd.

    ``or_zero``: 0 is allowed besides the range (a size that is zero, or at least
    a meaningful minimum). The same words state the range in errors and in
    docs/case.md (a test checks that every ranged field's row states it).
    """

    lo: float
    hi: float
    unit: str = ""
    lo_open: bool = False
    hi_open: bool = False
    or_zero: bool = False

    def contains(self, value: Any) -> Any:
        """Whether ``value`` (a number or an array) is in the range; NaN is not."""
        lo_ok = value > self.lo if self.lo_open else value >= self.lo
        hi_ok = value < self.hi if self.hi_open else value <= self.hi
        inside = lo_ok & hi_ok
        return (inside | (value == 0)) if self.or_zero else inside

    def text(self) -> str:
        """``from 0.1 to 1,000 MVA``, ``above 0 and at most 1``, ``0 or from 0.001 to 1,000 MW``."""
        lo, hi = _num(self.lo), _num(self.hi)
        if self.lo_open:
            words = f"above {lo} and below {hi}" if self.hi_open else f"above {lo} and at most {hi}"
        else:
            words = f"at least {lo} and below {hi}" if self.hi_open else f"from {lo} to {hi}"
        words = f"0 or {words}" if self.or_zero else words
        return f"{words} {self.unit}" if self.unit else words

    def check(self, value: Any) -> Any:
        if not self.contains(value):
            raise PydanticCustomError("range", f"Input should be {self.text()}")
        return value


def quantity(lo: float, hi: float, unit: str = "", *, lo_open: bool = False, hi_open: bool = False,
             or_zero: bool = False, integer: bool = False) -> Any:
    """A number type of the schema: finite, not a boolean, within :class:`Range` (kept as metadata for the docs)."""
    rng = Range(lo, hi, unit, lo_open, hi_open, or_zero)
    if integer:
        return Annotated[int, BeforeValidator(_no_bool), AfterValidator(rng.check), rng]
    return Annotated[float, BeforeValidator(_no_bool), Field(allow_inf_nan=False), AfterValidator(rng.check), rng]


def range_of(annotation: Any) -> Range | None:
    """The :class:`Range` of a type (also inside ``X | None``, a list or a tuple), if it has one."""
    if isinstance(annotation, Range):
        return annotation
    for arg in (*typing.get_args(annotation), *getattr(annotation, "__metadata__", ())):
        if (found := range_of(arg)) is not None:
            return found
    return None


def field_range(info: FieldInfo) -> Range | None:
    """The :class:`Range` of a model field (pydantic moves a top-level ``Annotated``'s metadata to the field)."""
    return next((m for m in info.metadata if isinstance(m, Range)), None) or range_of(info.annotation)


# The named quantities (docs/case.md states each range).
PowerMW = quantity(1e-3, 1000, "MW")  # a size or limit: at least 1 kW
PowerMWOrZero = quantity(1e-3, 1000, "MW", or_zero=True)
EnergyMWh = quantity(1e-3, 10_000, "MWh")
VoltagePU = quantity(0.5, 1.5, "pu")
Price = quantity(0, 100_000, "USD/MWh")
Fraction = quantity(0, 1)
Efficiency = quantity(0.1, 1)
Rate = quantity(0, 100, "failures/yr", lo_open=True)
Hours = quantity(0, 1000, "h", lo_open=True)
Iterations = quantity(1, 1_000_000, integer=True)
Tolerance = quantity(1e-12, 1)
Penalty = quantity(1e-6, 1e6, "USD/(MW²·h)")
Seconds = quantity(0.01, 1e7, "s")
BargainingPower = quantity(1e-3, 1000)  # a weight in the generalized Nash bargaining: above 0
CostA = quantity(0, 100_000, "USD/(MW²·h)")  # a unit's quadratic fuel cost coefficient
BusId = quantity(1, 1e9, integer=True)


NAME_RULE = "names have 1 to 64 letters, digits, '_' or '-' and start with a letter or '_'"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]{0,63}")


def _name(value: str) -> str:
    """A name of the case (case, series, microgrid): what is wrong with it, in words."""
    if _NAME.fullmatch(value):
        return value
    if not value:
        why = "a name cannot be empty"
    elif len(value) > 64:
        why = f"a name is at most 64 characters, this one has {len(value)}"
    elif not (value[0].isascii() and (value[0].isalpha() or value[0] == "_")):
        why = f"a name cannot start with {value[0]!r}"
    else:
        bad = next(c for c in value if not (c.isascii() and (c.isalnum() or c in "_-")))
        why = f"{bad!r} is not allowed in a name"
    raise PydanticCustomError("name", f"{why}: {NAME_RULE}")


Name = Annotated[str, AfterValidator(_name)]


def cross_field_error(message: str, *fields: str | tuple[str | int, ...]) -> PydanticCustomError:
    """A rule between fields of one section, for a model validator to raise.

    The message is reported at the line of one of ``fields`` (the first the case
    file itself gives, else the first any file gives), not at the section. A
    field is a name of the section, or a path below it (``("candidates", 0, "bus")``).
    """
    return PydanticCustomError("cross_field", message, {"fields": fields})


class Strict(BaseModel):
    """Base of every case section: unknown fields are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


# --------------------------------------------------------------------------- network
class NetworkConfig(Strict):
    """The radial feeder: a built-in one by name, or user CSV tables."""

    feeder: Literal["ieee33", "ieee69"] | None = Field(
        None, description="Built-in feeder (Baran & Wu 1989)."
    )
    buses: Path | None = Field(None, description="User bus table (CSV), relative to the case file.")
    branches: Path | None = Field(None, description="User branch table (CSV).")
    pandapower: Path | None = Field(None, description="A pandapower network file (JSON), imported (docs/interop.md).")
    matpower: Path | None = Field(None, description="A MATPOWER case file (.m), imported (docs/interop.md).")
    simbench: str | None = Field(
        None, description="A SimBench grid code (e.g. 1-MV-rural--0-sw), read offline from the simbench package."
    )
    generators: Path | None = Field(
        None, description="Existing generation at buses (CSV, docs/case.md); an imported network brings its own."
    )
    base_mva: quantity(0.1, 1000, "MVA") = Field(10.0, description="Three-phase power base of the per-unit system.")
    v_substation_pu: VoltagePU = Field(1.0, description="Substation voltage for power flows.")
    v_substation_range_pu: tuple[VoltagePU, VoltagePU] | None = Field(
        None,
        description="On-load tap-changer range the optimisation may use; "
        "None fixes the substation at v_substation_pu.",
    )
    v_min_pu: VoltagePU = 0.95
    v_max_pu: VoltagePU = 1.05
    load_scale: quantity(1e-3, 100) = Field(1.0, description="Multiplier on every bus's peak load.")
    p_import_max_mw: PowerMW | None = Field(None, description="Substation import limit (None: unlimited).")
    p_export_max_mw: PowerMWOrZero | None = Field(
        None, description="Substation export (reverse flow) limit; 0 forbids export (None: unlimited)."
    )
    branch_rating_factor: quantity(0.01, 100) | None = Field(
        None,
        description="Branches without rating_a get this multiple of their base-case "
        "peak current (the published IEEE feeders carry no ratings).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> NetworkConfig:
        user = self.buses is not None or self.branches is not None
        given = [k for k in ("feeder", "pandapower", "matpower", "simbench") if getattr(self, k) is not None]
        if not given and not user:
            raise ValueError("give the feeder: 'feeder' (ieee33, ieee69), both 'buses' and 'branches', or one of "
                             "'pandapower', 'matpower', 'simbench'")
        if len(given) + user > 1:
            named = [*given, *(["buses"] if user else [])]
            raise cross_field_error(f"give one feeder source, not {' and '.join(repr(n) for n in named)}",
                                    *[n for n in named if n != "feeder"][:2] or ["feeder"])
        if self.simbench is not None and not self.simbench.strip():
            raise cross_field_error("simbench: give a SimBench grid code, e.g. 1-MV-rural--0-sw", "simbench")
        if self.generators is not None and any(k in given for k in ("pandapower", "matpower", "simbench")):
            raise cross_field_error(f"an imported network ({given[0]}) brings its own generators; drop 'generators'",
                                    "generators")
        if user and (self.buses is None or self.branches is None):
            raise cross_field_error("a user feeder needs both 'buses' and 'branches' CSV files", "buses", "branches")
        if self.v_min_pu >= self.v_max_pu:
            raise cross_field_error(
                f"v_min_pu ({self.v_min_pu}) must be below v_max_pu ({self.v_max_pu})", "v_min_pu", "v_max_pu"
            )
        if self.v_substation_range_pu is not None:
            lo, hi = self.v_substation_range_pu
            if lo > hi:
                raise cross_field_error(
                    "v_substation_range_pu must be [low, high] with low <= high", "v_substation_range_pu"
                )
        return self


# -------------------------------------------------------------------------- profiles
SeriesKind = Literal["load", "pv", "wind", "price", "other"]


def _strptime_format(value: str) -> str:
    if "%" not in value:
        raise PydanticCustomError(
            "time_format", "a time format has '%' directives, e.g. '%d.%m.%Y %H:%M' (Python strptime)"
        )
    return value


TimeFormat = Annotated[str, AfterValidator(_strptime_format)]


def _one_time_rule(model: SeriesConfig | ProfilesConfig) -> None:
    if model.time_format is not None and model.dayfirst:
        raise cross_field_error("give time_format or dayfirst, not both (a format says where the day is)",
                                "dayfirst", "time_format")


class SeriesConfig(Strict):
    """One annual series: where it comes from and how it becomes per unit."""

    kind: SeriesKind
    column: str = Field(description="Column in the SimBench profile tables or the CSV file.")
    file: Path | None = Field(None, description="CSV file for this series (csv source).")
    normalise: Literal["peak", "none"] | None = Field(
        None,
        description="'peak' divides by the series maximum (default for load), 'none' keeps "
        "values that are already per unit of rating (default for pv and wind).",
    )
    time_format: TimeFormat | None = Field(None, description="Time format of this series' own file.")
    dayfirst: bool | None = Field(None, description="Day-first dates in this series' own file.")

    @model_validator(mode="after")
    def _time_of_own_file(self) -> SeriesConfig:
        _one_time_rule(self)
        if self.file is None and (self.time_format is not None or self.dayfirst is not None):
            raise cross_field_error(
                "time_format and dayfirst of a series apply to its own 'file'; "
                "for profiles.file set them in the profiles section",
                "time_format", "dayfirst",
            )
        return self

    @property
    def normalisation(self) -> str:
        if self.normalise is not None:
            return self.normalise
        return "peak" if self.kind == "load" else "none"


class ProfilesConfig(Strict):
    """Annual series for load, PV and wind (and others), resampled to hourly per unit."""

    source: Literal["simbench", "csv"] = "simbench"
    simbench_code: str = Field(
        "1-complete_data-mixed-all-0-sw",
        description="SimBench data set whose shipped profile tables are read.",
    )
    file: Path | None = Field(None, description="Default CSV file of the csv source.")
    time_column: str = "time"
    time_format: TimeFormat | None = Field(
        None, description="strptime format of the times (default: inferred from the first row)."
    )
    dayfirst: bool = Field(False, description="Dates without the year first are day first (dd.mm.yyyy).")
    series: dict[Name, SeriesConfig] = Field(min_length=1, max_length=1000)

    def time_options(self, series: str) -> tuple[str | None, bool]:
        """(time_format, dayfirst) of the file a series is read from: its own settings, else the section's."""
        s = self.series[series]
        if s.time_format is not None or s.dayfirst is not None:
            return s.time_format, bool(s.dayfirst)
        return self.time_format, self.dayfirst

    @model_validator(mode="after")
    def _csv_has_files(self) -> ProfilesConfig:
        _one_time_rule(self)
        if self.source == "simbench" and (self.time_format is not None or self.dayfirst):
            raise cross_field_error("time_format and dayfirst apply to CSV files (source: csv); "
                                    "SimBench times are read as SimBench writes them", "time_format", "dayfirst")
        if self.source == "csv":
            missing = [n for n, s in self.series.items() if s.file is None and self.file is None]
            if missing:
                raise ValueError(
                    f"source 'csv' needs 'file' (or a 'file' per series); none for {missing}"
                )
        if not any(s.kind == "load" for s in self.series.values()):
            raise ValueError("at least one series must be of kind 'load'")
        return self


# ------------------------------------------------------------------------ clustering
class ClusteringConfig(Strict):
    """Typical days (``adnstudy cluster``)."""

    k: quantity(1, 1000, integer=True) = 8
    representative: Literal["centroid", "medoid"] = "centroid"
    kernel: Literal["cutoff", "gaussian"] = "gaussian"
    neighbour_fraction: quantity(0, 1, lo_open=True, hi_open=True) = Field(
        0.02, description="Cut-off distance chosen so a point has this share of points as neighbours."
    )
    extreme_days: list[Literal["peak_net_load", "min_net_load"]] = Field(default_factory=list, max_length=2)
    max_iter: Iterations = 300
    compare: bool = Field(True, description="Also run the comparison methods and report metrics.")


# ------------------------------------------------------------------------ candidates
class CandidateConfig(Strict):
    """One candidate site: a technology at a bus, built or not (0-1), sized within bounds."""

    bus: BusId
    tech: Literal["pv", "wind", "storage"]
    min_mw: PowerMWOrZero = 0.0
    max_mw: PowerMW
    module_mw: PowerMW | None = Field(None, description="Build in whole modules of this size.")
    profile: Name | None = Field(
        None, description="Availability series, of the tech's kind (default: the case's first series of that kind)."
    )
    capex_usd_per_mw: quantity(0, 1e9, "USD/MW")
    fixed_capex_usd: quantity(0, 1e10, "USD") = Field(0.0, description="Site cost paid if built at all.")
    lifetime_yr: quantity(1, 100, "years", integer=True) = 20
    om_usd_per_mwh: Price = 0.0
    om_usd_per_mw_yr: quantity(0, 1e7, "USD/(MW·yr)") = 0.0
    pf_min: quantity(0.1, 1) = 0.95
    energy_mwh_per_mw: quantity(0.01, 1000, "h") | None = Field(None, description="Storage energy-to-power ratio.")
    efficiency: Efficiency = Field(
        0.95, description="Storage one-way (charge and discharge) efficiency."
    )
    islanding: bool = Field(True, description="May supply an island during a fault.")

    @model_validator(mode="after")
    def _bounds(self) -> CandidateConfig:
        if self.min_mw > self.max_mw:
            raise cross_field_error(f"min_mw ({self.min_mw}) exceeds max_mw ({self.max_mw})", "min_mw", "max_mw")
        if self.tech == "storage" and self.energy_mwh_per_mw is None:
            raise cross_field_error("a storage candidate needs energy_mwh_per_mw", "tech")
        return self


class CandidatesConfig(Strict):
    sites: list[CandidateConfig] = Field(min_length=1, max_length=1000)
    max_penetration: Fraction | None = Field(
        None, description="Total RES capacity over the feeder's peak load."
    )
    budget_usd: quantity(1, 1e12, "USD") | None = None


# ------------------------------------------------------------------------- economics
Hourly = Annotated[list[Price], Field(min_length=24, max_length=24)]


#: A tariff: 24 hourly values (the same every day), or the name of a profiles series of kind price (USD/MWh),
#: whose typical days are the tariff (a series name in a case replaces a defaults file's 24 values).
Tariff = Annotated[
    Annotated[Hourly, Tag("hourly values")] | Annotated[Name, Tag("series name")],
    Discriminator(lambda v: "series name" if isinstance(v, str) else "hourly values"),
]


class EconomicsConfig(Strict):
    discount_rate: quantity(0, 0.5) = 0.08
    purchase_price_usd_per_mwh: Tariff = Field(
        description="Price of substation imports: 24 hourly values, or a price series of the profiles."
    )
    sell_price_usd_per_mwh: Tariff | None = Field(
        None, description="Price of substation exports, the same way (default: no export revenue)."
    )
    wholesale_price_usd_per_mwh: Price | None = Field(
        None, description="Value of losses for the ADN operator in dispatch."
    )

    @property
    def price_series(self) -> dict[str, str]:
        """Tariff field → the price series it names."""
        named = {"purchase_price_usd_per_mwh": self.purchase_price_usd_per_mwh,
                 "sell_price_usd_per_mwh": self.sell_price_usd_per_mwh}
        return {k: v for k, v in named.items() if isinstance(v, str)}


# ----------------------------------------------------------------------- reliability
BranchRef = tuple[BusId, BusId]


class ReliabilityConfig(Strict):
    """Branch outage data, switch placement and index limits (IEEE 1366); see docs/reliability.md."""

    failure_rate_per_km_yr: quantity(0, 100, "failures/(km·yr)", lo_open=True) | None = Field(
        None, description="Failure rate per km and year, for branches with length_km and no failure_rate_per_yr."
    )
    failure_rate_per_yr: Rate | None = Field(
        None, description="Failure rate per branch and year, for branches with neither column in the table."
    )
    repair_h: Hours = Field(5.0, description="Repair time, for branches without repair_h in the table.")
    switching_h: Hours = Field(1.0, description="Time to isolate a fault and restore by switching.")
    sectionalisers: list[BranchRef] = Field(
        default_factory=list, max_length=5000, description="Branches (from, to) with a sectionalising switch (added to the table's)."
    )
    fuses: list[BranchRef] = Field(
        default_factory=list, max_length=5000, description="Branches (from, to) with a fuse: a protective device for its lateral."
    )
    tie_restoration: bool = Field(
        True, description="Normally-open tie lines restore isolated areas they reach from healthy supply."
    )
    island_credit: Literal["weighted_mean", "p10"] = Field(
        "weighted_mean",
        description="Island DG credit per MW: the scenarios' weighted mean availability, or its 10th percentile.",
    )
    voll_usd_per_mwh: quantity(0, 1e6, "USD/MWh") = Field(0.0, description="Value of lost load; > 0 adds the EENS cost to plan.")
    saidi_limit_h: quantity(0, 8784, "h", lo_open=True) | None = None
    saifi_limit: quantity(0, 1000, lo_open=True) | None = None
    eens_limit_mwh: quantity(0, 1e7, "MWh", lo_open=True) | None = None

    @model_validator(mode="after")
    def _rates(self) -> ReliabilityConfig:
        if self.failure_rate_per_km_yr is None and self.failure_rate_per_yr is None:
            raise ValueError("give failure_rate_per_yr or failure_rate_per_km_yr")
        if self.switching_h > self.repair_h:
            raise cross_field_error("switching_h must not exceed repair_h", "switching_h", "repair_h")
        return self


# ------------------------------------------------------------------------ microgrids
class GeneratorConfig(Strict):
    """Controllable unit, cost a·p² + b·p + c (USD/h, p in MW)."""

    p_min_mw: PowerMWOrZero = 0.0
    p_max_mw: PowerMW
    cost_a_usd_per_mw2h: CostA = 0.0
    cost_b_usd_per_mwh: Price = 0.0
    cost_c_usd_per_h: quantity(0, 1e6, "USD/h") = 0.0

    @model_validator(mode="after")
    def _limits(self) -> GeneratorConfig:
        if self.p_min_mw > self.p_max_mw:
            raise cross_field_error(
                f"p_min_mw ({self.p_min_mw}) exceeds p_max_mw ({self.p_max_mw})", "p_min_mw", "p_max_mw"
            )
        return self


class MicrogridCandidateConfig(CandidateConfig):
    """An MG owner's candidate (coplan): a candidate site at the MG's PCC, also a controllable unit.

    ``islanding`` and ``pf_min`` are accepted (the candidate schema) but ignored:
    an MG's own assets are behind its PCC, which the ADN sees as one exchange.
    """

    bus: BusId | None = Field(None, description="The MG's PCC (given or not; another bus is an error).")
    tech: Literal["pv", "wind", "storage", "generator"]
    cost_a_usd_per_mw2h: CostA = Field(0.0, description="Generator candidate: quadratic fuel cost coefficient a.")
    cost_b_usd_per_mwh: Price = Field(0.0, description="Generator candidate: linear fuel cost coefficient b.")

    @model_validator(mode="after")
    def _generator_costs(self) -> MicrogridCandidateConfig:
        if self.tech != "generator":
            for name in ("cost_a_usd_per_mw2h", "cost_b_usd_per_mwh"):
                if getattr(self, name) != 0:
                    raise cross_field_error(
                        f"{name} is the fuel cost of a generator candidate; this candidate is tech: {self.tech}",
                        name)
        return self


class StorageConfig(Strict):
    power_mw: PowerMW
    energy_mwh: EnergyMWh
    eta_charge: Efficiency = 0.95
    eta_discharge: Efficiency = 0.95
    soc_min: Fraction = 0.1
    soc_max: Fraction = 0.9
    soc_initial: Fraction = Field(0.5, description="State of charge at the start and (cyclic) the end of the day.")
    cost_usd_per_mwh: Price = Field(0.0, description="Throughput (degradation) cost per MWh discharged.")

    @model_validator(mode="after")
    def _soc(self) -> StorageConfig:
        if self.soc_min >= self.soc_max:
            raise cross_field_error(
                f"soc_min ({self.soc_min}) must be below soc_max ({self.soc_max})", "soc_min", "soc_max"
            )
        if not self.soc_min <= self.soc_initial <= self.soc_max:
            raise cross_field_error(
                f"need soc_min <= soc_initial <= soc_max, got "
                f"{self.soc_min}, {self.soc_initial}, {self.soc_max}",
                "soc_initial", "soc_min", "soc_max",
            )
        return self


class MicrogridConfig(Strict):
    name: Name
    bus: BusId = Field(description="Point of common coupling on the ADN feeder.")
    load_peak_mw: PowerMWOrZero
    load_profile: Name = "load"
    pv_mw: PowerMWOrZero = 0.0
    wind_mw: PowerMWOrZero = 0.0
    pcc_limit_mw: PowerMW = Field(description="Import/export limit at the PCC.")
    generator: GeneratorConfig | None = None
    storage: StorageConfig | None = None
    bargaining_power: BargainingPower = 1.0
    candidates: list[MicrogridCandidateConfig] = Field(
        default_factory=list, max_length=100,
        description="What the MG owner may build (coplan only; plan and dispatch ignore them).",
    )

    @model_validator(mode="after")
    def _candidates_at_pcc(self) -> MicrogridConfig:
        for j, cand in enumerate(self.candidates):
            if cand.bus is not None and cand.bus != self.bus:
                raise cross_field_error(
                    f"an MG candidate sits at the MG's PCC, bus {self.bus}, not bus {cand.bus} "
                    "(leave bus out, or give the MG's bus)", ("candidates", j, "bus"))
        return self


# ---------------------------------------------------------------------------- market
class CoordinationConfig(Strict):
    """The distributed solution of dispatch: ATC (ADN–MG) with ADMM (MG–MG), then ADMM for the payments."""

    max_iter: Iterations = Field(1000, description="Iteration limit of the stage-1 ATC/ADMM loop.")
    tol_mw: quantity(1e-12, 1, "MW") = Field(5e-5, description="Primal residual (PCC mismatch, trade reciprocity) to reach, MW.")
    dual_tol_mw: quantity(1e-12, 1, "MW") = Field(1e-4, description="Dual residual (change of exports and agreed trades) to reach, MW.")
    tol_objective: Tolerance = Field(1e-4, description="Relative change of the objective over the last iterations.")
    rho_trade_usd_per_mw2h: Penalty = Field(20.0, description="ADMM penalty on trade disagreement.")
    rho_pcc_usd_per_mw2h: Penalty = Field(20.0, description="ATC penalty weight on PCC mismatch.")
    anderson_memory: quantity(0, 50, integer=True) = Field(
        5, description="Anderson acceleration of the ATC/ADMM loop: how many past iterates it combines (0: off).")
    payment_max_iter: Iterations = Field(20_000, description="Iteration limit of the payment ADMM.")
    payment_tol: Tolerance = Field(1e-7, description="Payment disagreement to reach, relative to the group's gain.")


class MarketConfig(Strict):
    fee_mode: Literal["flat", "distance"] = "flat"
    fee_usd_per_mwh: quantity(0, 100_000) = Field(
        5.0, description="Flat fee, or fee per ohm of PCC-to-PCC path resistance in 'distance' mode."
    )
    fee_payer: Literal["buyer", "seller", "split"] = "split"
    coordination: CoordinationConfig = Field(default_factory=CoordinationConfig)


# ---------------------------------------------------------------------------- coplan
class CoplanConfig(Strict):
    """Collaborative planning (``adnstudy coplan``): the ADN's bargaining power and the alternating loop."""

    adn_bargaining_power: BargainingPower = Field(
        1.0, description="The ADN's weight in the generalized Nash bargaining (the MGs': their bargaining_power)."
    )
    max_iter: Iterations = Field(10, description="Limit of outer (alternating) iterations.")
    enumerate_max: quantity(1, 4096, integer=True) = Field(
        64, description="An investor's 0-1 deviations are enumerated up to this many combinations, "
        "else found by branch-and-bound."
    )
    stability_tol: Tolerance = Field(
        1e-3, description="Relative gain of a unilateral deviation that still counts as stable."
    )
    follow_deviations: bool = Field(
        True, description="Move to a unilateral deviation the stability check finds profitable, until none is "
        "(the check's centralised solves then steer the loop); false: report it and stop."
    )


# ---------------------------------------------------------------------------- solver
#: The project's own mixed-integer strategies (Clarabel underneath: ``solver.options`` go to Clarabel):
#: ``default`` (outer approximation over the typical days, branch-and-bound where it does not apply) and
#: ``branch_and_bound`` (the branch-and-bound alone).
OWN_STRATEGIES = ("default", "branch_and_bound")


def own_strategy(name: str) -> bool:
    """Whether ``name`` is one of the project's own strategies rather than a CVXPY solver."""
    return name.lower() in OWN_STRATEGIES


class SolverConfig(Strict):
    name: str = Field("default", description="'default' (outer approximation with a HiGHS master, falling back to "
                      "branch-and-bound), 'branch_and_bound', or any installed CVXPY solver name.")
    mip_gap: quantity(1e-9, 0.5) = 1e-3
    time_limit_s: Seconds | None = None
    threads: quantity(1, 1024, integer=True) = 2
    options: dict[str, float | int | str | bool] = Field(default_factory=dict, max_length=100)


# ------------------------------------------------------------------------------ case
class CaseConfig(Strict):
    """A whole case file. ``defaults`` names a YAML file merged underneath it."""

    name: Name | None = None
    description: str = ""
    defaults: Path | None = None
    network: NetworkConfig
    profiles: ProfilesConfig | None = None
    clustering: ClusteringConfig | None = None
    candidates: CandidatesConfig | None = None
    economics: EconomicsConfig | None = None
    reliability: ReliabilityConfig | None = None
    microgrids: Annotated[list[MicrogridConfig], Field(max_length=1000)] | None = None
    market: MarketConfig | None = None
    coplan: CoplanConfig | None = None
    solver: SolverConfig = Field(default_factory=SolverConfig)

    @field_validator("microgrids")
    @classmethod
    def _unique_names(cls, mgs: list[MicrogridConfig] | None) -> list[MicrogridConfig] | None:
        if mgs:
            names = [m.name for m in mgs]
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"microgrid names must be unique; repeated: {dup}")
        return mgs

    @model_validator(mode="after")
    def _coplan_has_microgrids(self) -> CaseConfig:
        if self.coplan is not None and not self.microgrids:
            raise cross_field_error(
                "co-planning is between the ADN and its microgrids: a case with a coplan section needs a "
                "'microgrids' list (at least one); or leave coplan out (coplan: null over a defaults file)", "coplan")
        return self
