"""The typical days written by ``cluster``, as arrays for the optimisation stages.

Year convention: every annual figure is for a 365-day (8,760-hour) year. The
typical days' day counts (``cluster/weights.days``) sum to the days of the
profiles (366 for the 2016 SimBench year, or a few weeks of a user's own
data); :func:`year_weight_days` scales them to :data:`YEAR_DAYS`, and the
optimisation stages weight each typical day by that (``weight_days``), so
energy costs and annual capital costs cover the same year.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from adnstudy.config.load import Case
from adnstudy.config.schema import EconomicsConfig
from adnstudy.data.mixes import bus_load_mix, generator_availability
from adnstudy.network.feeder import Feeder

HOURS = 24
#: Days of the year every annual figure stands for (docs/plan.md, "Data and units").
YEAR_DAYS = 365


def year_weight_days(days: np.ndarray) -> np.ndarray:
    """Days of a :data:`YEAR_DAYS`-day year each typical day stands for, from its raw day count."""
    days = np.asarray(days, dtype=float)
    return days / days.sum() * YEAR_DAYS


@dataclass(frozen=True)
class TypicalDays:
    scenarios: np.ndarray  # scenario ids (typical and extreme days), in order
    days_weight: np.ndarray  # days of a YEAR_DAYS-day year each typical day stands for (sums to YEAR_DAYS)
    series: dict[str, np.ndarray]  # series name → (day × hour) per-unit values
    first_of: dict[str, str]  # kind → the case's first series of that kind
    kinds: dict[str, str] = field(default_factory=dict)  # series name → kind

    @property
    def n_days(self) -> int:
        return len(self.scenarios)

    def of_kind(self, kind: str, name: str | None = None) -> np.ndarray:
        """Day × hour values of the named series, or of the case's first series of ``kind``."""
        return self.series[name or self.first_of[kind]]

    def tariffs(self, eco: EconomicsConfig) -> tuple[np.ndarray, np.ndarray]:
        """Purchase and feed-in tariffs (USD/MWh), scenario × hour: the 24 values every day, or the typical
        days of the price series a tariff names (no feed-in tariff: 0)."""

        def tariff(value: list[float] | str | None) -> np.ndarray:
            if isinstance(value, str):
                return np.array(self.series[value], dtype=float)
            return np.tile(np.asarray(value if value is not None else [0.0] * HOURS, dtype=float), (self.n_days, 1))

        return tariff(eco.purchase_price_usd_per_mwh), tariff(eco.sell_price_usd_per_mwh)

    def _stacked(self, names: list[str]) -> np.ndarray:
        return np.stack([self.series[n].ravel() for n in names]).reshape(len(names), self.n_days * HOURS)

    def bus_load_multipliers(self, feeder: Feeder) -> np.ndarray:
        """Bus × (day·hour) multiplier of each bus's peak load (its load series or mix: :func:`bus_load_mix`)."""
        names = [n for n, k in self.kinds.items() if k == "load"]
        return bus_load_mix(feeder, names, self._stacked(names), self.first_of["load"])

    def generator_availability(self, feeder: Feeder) -> np.ndarray:
        """Generator × (day·hour) available power of each existing unit, per unit of its ``p_mw``."""
        names = list(self.series)
        return generator_availability(feeder, names, self._stacked(names), self.first_of)


def typical_days(case: Case, typical: pd.DataFrame, weights: pd.DataFrame) -> TypicalDays:
    """Reshape the long ``cluster/typical`` table; every series of the case must be in it."""
    cfg = case.config.profiles
    assert cfg is not None
    kinds = {n: s.kind for n, s in cfg.series.items()}
    for table, df in (("typical", typical), ("weights", weights)):
        if "scenario" not in df.columns:
            raise case.error(f"cluster/{table} has no 'scenario' column (written by adnstudy before 0.2, which named it "
                             "'cluster'): re-run 'adnstudy cluster' for this case", "clustering")
    weights = weights.sort_values("scenario")
    scenarios = weights["scenario"].to_numpy()
    cube = typical.pivot_table(index=["scenario", "hour"], columns="series", values="value")
    missing = [n for n in kinds if n not in cube.columns]
    if missing:
        raise case.error(
            f"the typical days have no series {missing}: re-run 'adnstudy cluster' for this case", "profiles", "series"
        )
    cube = cube.reindex(pd.MultiIndex.from_product([scenarios, range(HOURS)], names=["scenario", "hour"]))
    first_of: dict[str, str] = {}
    for name, kind in kinds.items():
        first_of.setdefault(kind, name)
    series = {n: cube[n].to_numpy().reshape(len(scenarios), HOURS) for n in kinds}
    # tables written before the normalised column existed carry only the raw day counts
    weight_days = (weights["weight_days"].to_numpy(dtype=float) if "weight_days" in weights.columns
                   else year_weight_days(weights["days"].to_numpy()))
    return TypicalDays(scenarios=scenarios, days_weight=weight_days, series=series, first_of=first_of, kinds=kinds)
