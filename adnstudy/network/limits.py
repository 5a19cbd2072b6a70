"""The network's operating limits in per unit: one object for every model of the feeder.

Voltage range at the buses, the substation's (tap-changer) range, branch
current ratings and the substation's import/export limits, converted once from
the case's ``network`` section and the feeder's rating column. The planning
model and the market's ADN read the same object.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adnstudy.config.schema import NetworkConfig
from adnstudy.network.feeder import Feeder


@dataclass(frozen=True)
class NetworkLimits:
    v_min_pu: float
    v_max_pu: float
    v_substation_pu: tuple[float, float]  # the substation's range (low = high: fixed)
    i_max_pu: np.ndarray  # per branch; NaN = unrated
    p_import_max_pu: float | None = None  # None: unlimited
    p_export_max_pu: float | None = None

    @classmethod
    def of(cls, net: NetworkConfig, feeder: Feeder) -> NetworkLimits:
        base = feeder.base_mva
        return cls(
            v_min_pu=net.v_min_pu,
            v_max_pu=net.v_max_pu,
            v_substation_pu=net.v_substation_range_pu or (net.v_substation_pu, net.v_substation_pu),
            i_max_pu=feeder.branches["rating_a"].to_numpy(dtype=float) / 1000.0 / feeder.i_base_ka,
            p_import_max_pu=None if net.p_import_max_mw is None else net.p_import_max_mw / base,
            p_export_max_pu=None if net.p_export_max_mw is None else net.p_export_max_mw / base,
        )
